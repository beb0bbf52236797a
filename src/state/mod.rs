//! The gateway's durable state: one embedded store file, `<data dir>/patina-state.redb`.
//!
//! It owns what must outlive a request and a restart: the `Idempotency-Key` records
//! (`idempotency.rs`: claim, complete, release, purge) and the write queue with its dead letters
//! (`queue.rs`: accept, due, finish, replay, drop, stats). It knows nothing of routes,
//! identities or HTTP: callers build the opaque keys and the stored request, compute the body
//! fingerprints, decide what to store and when to retry, and run these synchronous calls on a
//! blocking thread (`tokio::task::spawn_blocking`).
//!
//! Why redb: it is pure Rust (nothing to link, nothing to run beside the gateway: no server,
//! one file in the data directory), its transactions are ACID, and it writes copy-on-write
//! B-trees whose commits are checksummed, so a crash, a power cut or `kill -9` leaves the last
//! committed state and never a half-written one. Completions are written by one committer
//! thread, every completion, accepted write and delivery outcome waiting at that moment in one
//! durable transaction (a group commit: one fsync for many writes). `complete`, `accept`,
//! `finish` and `purge_expired` commit with
//! `Durability::Immediate`, that is, fsynced before the call returns: that is what makes "a
//! response the client saw survives `kill -9`" true. `claim` and `release` commit without an
//! fsync of their own (they reach the disk with the next durable commit): a claim lost in a
//! crash only lets a retry run at once instead of after its lease, and the write it guarded
//! either committed in the database (the same window exists with a durable claim, once the
//! lease passes) or did not. An idempotent write costs at most one fsync, shared with the
//! completions waiting beside it.
//! redb runs one write transaction at a time, so a claim's look-up and its mark are one atomic
//! step: of many concurrent claims for one key exactly one runs. One process holds the file;
//! a second gateway on the same data directory is refused at open.
//!
//! Times are wall-clock milliseconds since the UNIX epoch stored inside each record, so leases
//! and expiries mean the same after a restart.

mod backend;
mod idempotency;
mod queue;
pub mod redis;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, Durability, TableDefinition, WriteTransaction};

pub use backend::{Keys, QueueError, QueueStore};
pub use idempotency::{Claim, Fingerprint, MAX_KEY_LEN, StoredResponse};
pub use queue::{
    Accept, Accepted, Attempt, Delivery, DeliveryResult, IdempotentAccept, Outcome, QueueStats,
    RouteStats, Status,
};

/// The store's file name inside the data directory.
pub const FILE_NAME: &str = "patina-state.redb";

/// Idempotency records: opaque key → encoded record (see `idempotency.rs`).
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");

/// Why a store call failed. Every message is a sentence that names the store's file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the state store {path} is open in another process; each gateway needs its own data directory"
    )]
    InUse { path: PathBuf },
    #[error("cannot open the state store {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("the state store {path} failed: {source}")]
    Storage { path: PathBuf, source: redb::Error },
    #[error("the state store {path} could not commit a group of changes: {reason}")]
    Committer { path: PathBuf, reason: String },
    #[error("the state store {path} holds an idempotency record it cannot read (key {key:?})")]
    BadRecord { path: PathBuf, key: String },
    #[error("the state store {path} holds a delivery it cannot read (id {id:?})")]
    BadDelivery { path: PathBuf, id: String },
    #[error(
        "an idempotency key of {len} bytes is longer than the {max} bytes the state store keeps"
    )]
    KeyTooLong { len: usize, max: usize },
}

/// The open store. `Send + Sync`: share one in an `Arc`; calls from many threads are safe
/// (redb serializes the writes, reads run beside them).
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
    /// To the committer thread, which writes waiting changes together (group commit).
    completions: Option<crossbeam_channel::Sender<Pending>>,
    committer: Option<std::thread::JoinHandle<()>>,
}

/// A completion to write.
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) key: String,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) response: StoredResponse,
    pub(crate) ttl: std::time::Duration,
    pub(crate) now: u64,
}

/// A change the committer writes in its next group.
#[derive(Debug)]
pub(crate) enum Op {
    Complete(Completion),
    Accept(Box<Accept>),
    Finish(queue::Finish),
}

/// What a change came to, once committed.
#[derive(Debug)]
pub(crate) enum Reply {
    Done,
    Accepted(Accepted),
}

/// A change and where its caller waits for the commit holding it.
struct Pending {
    op: Op,
    done: crossbeam_channel::Sender<Result<Reply, String>>,
}

/// Most completions written in one transaction.
const GROUP_MAX: usize = 512;

impl Drop for Store {
    fn drop(&mut self) {
        // The committer ends when its channel closes; wait for it, so the file is closed when
        // the store is gone (a reopen right after must not find it in use).
        self.completions.take();
        if let Some(t) = self.committer.take() {
            let _ = t.join();
        }
    }
}

/// The committer: take every change waiting, write them in one durable transaction, tell
/// each caller how it went.
fn commit_groups(db: &Database, incoming: &crossbeam_channel::Receiver<Pending>) {
    while let Ok(first) = incoming.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match incoming.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let written = (|| -> Result<Vec<Reply>, redb::Error> {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            let mut replies = Vec::with_capacity(group.len());
            {
                let mut idem = txn.open_table(IDEMPOTENCY)?;
                let mut q = queue::Tables::open(&txn)?;
                for p in &group {
                    replies.push(match &p.op {
                        Op::Complete(c) => {
                            idempotency::put_completed(
                                &mut idem,
                                &c.key,
                                &c.fingerprint,
                                &c.response,
                                c.ttl,
                                c.now,
                            )?;
                            Reply::Done
                        }
                        Op::Accept(a) => Reply::Accepted(q.accept(&mut idem, a)?),
                        Op::Finish(f) => {
                            q.finish(f)?;
                            Reply::Done
                        }
                    });
                }
            }
            txn.commit()?;
            Ok(replies)
        })();
        match written {
            Ok(replies) => {
                for (p, r) in group.into_iter().zip(replies) {
                    let _ = p.done.send(Ok(r));
                }
            }
            Err(e) => {
                let reason = e.to_string();
                for p in group {
                    let _ = p.done.send(Err(reason.clone()));
                }
            }
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Open or create `<dir>/patina-state.redb`, creating `dir` when it is missing. A file left
    /// by a crash is repaired to its last commit here.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let db = match Database::create(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::InUse { path });
            }
            Err(source) => return Err(StoreError::Open { path, source }),
        };
        let db = Arc::new(db);
        let (tx, rx) = crossbeam_channel::unbounded::<Pending>();
        let committer = {
            let db = Arc::clone(&db);
            std::thread::Builder::new()
                .name("state-commit".into())
                .spawn(move || commit_groups(&db, &rx))
                .map_err(|source| StoreError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?
        };
        let store = Store {
            db,
            path,
            completions: Some(tx),
            committer: Some(committer),
        };
        // Create the tables once, so readers never meet a missing one.
        let txn = store.begin_write()?;
        txn.open_table(IDEMPOTENCY).map_err(|e| store.fail(e))?;
        queue::Tables::open(&txn).map_err(|e| store.fail(e))?;
        store.commit(txn)?;
        Ok(store)
    }

    /// Hand a change to the committer and wait until the transaction holding it is on disk.
    fn commit_grouped(&self, op: Op) -> Result<Reply, StoreError> {
        let (done, wait) = crossbeam_channel::bounded(1);
        let gone = || StoreError::Committer {
            path: self.path.clone(),
            reason: "the committer has stopped".into(),
        };
        self.completions
            .as_ref()
            .ok_or_else(gone)?
            .send(Pending { op, done })
            .map_err(|_| gone())?;
        match wait.recv() {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(reason)) => Err(StoreError::Committer {
                path: self.path.clone(),
                reason,
            }),
            Err(_) => Err(gone()),
        }
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A write transaction that commits durably (fsynced before `commit` returns).
    fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.begin_write_with(Durability::Immediate)
    }

    /// A write transaction that is atomic and isolated like any other but reaches the disk
    /// only with the next durable commit (no fsync of its own); after a crash the store is as
    /// of the last durable commit.
    fn begin_write_lazy(&self) -> Result<WriteTransaction, StoreError> {
        self.begin_write_with(Durability::None)
    }

    fn begin_write_with(&self, durability: Durability) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.fail(e))?;
        txn.set_durability(durability).map_err(|e| self.fail(e))?;
        Ok(txn)
    }

    fn commit(&self, txn: WriteTransaction) -> Result<(), StoreError> {
        txn.commit().map_err(|e| self.fail(e))
    }

    /// A redb failure, named with this store's file.
    fn fail(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Storage {
            path: self.path.clone(),
            source: e.into(),
        }
    }
}

/// A 32-byte secret kept in `<dir>/<name>`: read when the file is there, else made at random
/// and written (readable by its owner only). Page cursors are signed with it, so that they
/// stay valid across restarts.
pub fn load_or_create_secret(dir: &Path, name: &str) -> std::io::Result<[u8; 32]> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            std::io::Error::other(format!(
                "{} is not a 32-byte key; remove it to have a new one made",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            let key: [u8; 32] = rand::random();
            let tmp = dir.join(format!(".{name}.tmp"));
            {
                use std::io::Write as _;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(&tmp)?;
                f.write_all(&key)?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &path)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}
