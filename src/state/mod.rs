//! The gateway's durable state: one embedded store file, `<data dir>/patina-state.redb`.
//!
//! It owns what must outlive a request and a restart: today the `Idempotency-Key` records
//! (`idempotency.rs`: claim, complete, release, purge); the write queue and dead letters will
//! live in the same file later. It knows nothing of routes, identities or HTTP: callers build
//! the opaque keys, compute the body fingerprints, decide what to store and run these
//! synchronous calls on a blocking thread (`tokio::task::spawn_blocking`).
//!
//! Why redb: it is pure Rust (nothing to link, nothing to run beside the gateway: no server,
//! one file in the data directory), its transactions are ACID, and it writes copy-on-write
//! B-trees whose commits are checksummed, so a crash, a power cut or `kill -9` leaves the last
//! committed state and never a half-written one. `complete` and `purge_expired` commit with
//! `Durability::Immediate`, that is, fsynced before the call returns: that is what makes "a
//! response the client saw survives `kill -9`" true. `claim` and `release` commit without an
//! fsync of their own (they reach the disk with the next durable commit): a claim lost in a
//! crash only lets a retry run at once instead of after its lease, and the write it guarded
//! either committed in the database (the same window exists with a durable claim, once the
//! lease passes) or did not. One fsync per idempotent write instead of two.
//! redb runs one write transaction at a time, so a claim's look-up and its mark are one atomic
//! step: of many concurrent claims for one key exactly one runs. One process holds the file;
//! a second gateway on the same data directory is refused at open.
//!
//! Times are wall-clock milliseconds since the UNIX epoch stored inside each record, so leases
//! and expiries mean the same after a restart.

mod idempotency;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use redb::{Database, Durability, TableDefinition, WriteTransaction};

pub use idempotency::{Claim, Fingerprint, MAX_KEY_LEN, StoredResponse};

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
    #[error("the state store {path} holds an idempotency record it cannot read (key {key:?})")]
    BadRecord { path: PathBuf, key: String },
    #[error(
        "an idempotency key of {len} bytes is longer than the {max} bytes the state store keeps"
    )]
    KeyTooLong { len: usize, max: usize },
}

/// The open store. `Send + Sync`: share one in an `Arc`; calls from many threads are safe
/// (redb serializes the writes, reads run beside them).
pub struct Store {
    db: Database,
    path: PathBuf,
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
        let store = Store { db, path };
        // Create the tables once, so readers never meet a missing one.
        let txn = store.begin_write()?;
        txn.open_table(IDEMPOTENCY).map_err(|e| store.fail(e))?;
        store.commit(txn)?;
        Ok(store)
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
