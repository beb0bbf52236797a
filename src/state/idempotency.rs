//! `Idempotency-Key` records: the first response to a keyed request, kept for a while so a
//! retry replays it instead of running again.
//!
//! A record is either in flight (claimed, the request is running; held until a lease runs out,
//! so a crashed process's claim frees itself) or completed (the stored response). Both carry
//! the fingerprint of the body that made them and an expiry; a record past its expiry, or in
//! flight past its lease, counts as absent. What a key is made of (identity, route, header
//! value), what a fingerprint covers, which headers are worth storing and what each `Claim`
//! becomes in HTTP terms is the caller's business.
//!
//! A record is a small binary value: version 1, the fingerprint, a state byte, the lease and
//! the expiry (u64 little-endian milliseconds since the UNIX epoch), then for a completed
//! record the status, the headers (length-prefixed) and the body (the rest).

use std::fmt;
use std::time::Duration;

use crate::clock::now_ms;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use sha2::{Digest, Sha256};

use super::{IDEMPOTENCY, Store, StoreError};

/// Longest key kept, in bytes; a longer one is refused with `StoreError::KeyTooLong`.
pub const MAX_KEY_LEN: usize = 1024;

/// SHA-256 of what identifies a request body (the caller decides which parts).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Hash `parts`, each prefixed by its length, so `["ab", "c"]` and `["a", "bc"]` differ.
    pub fn of(parts: &[&[u8]]) -> Fingerprint {
        let mut h = Sha256::new();
        for part in parts {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        Fingerprint(h.finalize().into())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", hex::encode(self.0))
    }
}

/// The response a completed record replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What `Store::claim` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// No record (or an expired one): the caller runs the request now; the record is in flight
    /// until completed or released (or its lease runs out).
    Run,
    /// A completed record with the same fingerprint: replay it.
    Replay(StoredResponse),
    /// Someone holds the key with the same fingerprint and is still running it (lease not
    /// expired).
    InFlight,
    /// A live record for this key has another fingerprint (in flight or completed).
    Mismatch,
}

impl Store {
    /// Atomically (one durable write transaction) look `key` up and, when it is absent or
    /// expired, record it as in flight with `fingerprint`, a lease until now + `lease` and an
    /// expiry at now + `ttl`.
    pub fn claim(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        lease: Duration,
        ttl: Duration,
    ) -> Result<Claim, StoreError> {
        self.claim_at(key, fingerprint, lease, ttl, now_ms())
    }

    /// Store the response for a claimed key durably, replacing the in-flight mark; kept until
    /// now + `ttl`. Should the lease have run out and another body have claimed the key since,
    /// that record is left alone and this response is not stored.
    ///
    /// Completions from many threads share fsyncs: the store's committer writes every
    /// completion waiting at that moment in one durable transaction (a group commit), and each
    /// caller returns once the transaction holding its own is on disk.
    pub fn complete(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        check_key(key)?;
        self.commit_grouped(super::Op::Complete(super::Completion {
            key: key.to_string(),
            fingerprint: *fingerprint,
            response: response.clone(),
            ttl,
            now: now_ms(),
        }))
        .map(|_| ())
    }

    /// Forget an in-flight record (the request failed in a way a retry may repeat safely, e.g.
    /// its transaction rolled back). Removes it only while it is in flight with `fingerprint`.
    pub fn release(&self, key: &str, fingerprint: &Fingerprint) -> Result<(), StoreError> {
        check_key(key)?;
        let txn = self.begin_write_lazy()?;
        let removed = {
            let mut table = txn.open_table(IDEMPOTENCY).map_err(|e| self.fail(e))?;
            let held = match table.get(key).map_err(|e| self.fail(e))? {
                Some(v) => Head::decode(v.value())
                    .is_some_and(|h| h.in_flight && h.fingerprint == fingerprint.0),
                None => false,
            };
            if held {
                table.remove(key).map_err(|e| self.fail(e))?;
            }
            held
        };
        self.commit_if(txn, removed)
    }

    /// Delete every expired record (and every in-flight one past its lease, and any record
    /// this version cannot read); returns how many went.
    pub fn purge_expired(&self) -> Result<usize, StoreError> {
        self.purge_expired_at(now_ms())
    }

    /// How many records the store holds, expired ones not yet purged included.
    pub fn len(&self) -> Result<usize, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fail(e))?;
        let table = txn.open_table(IDEMPOTENCY).map_err(|e| self.fail(e))?;
        let n = table.len().map_err(|e| self.fail(e))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Whether the store holds no record at all.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    pub(super) fn claim_at(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        lease: Duration,
        ttl: Duration,
        now: u64,
    ) -> Result<Claim, StoreError> {
        check_key(key)?;
        let txn = self.begin_write_lazy()?;
        let claim = {
            let mut table = txn.open_table(IDEMPOTENCY).map_err(|e| self.fail(e))?;
            let found = match table.get(key).map_err(|e| self.fail(e))? {
                Some(v) => self.judge(key, v.value(), fingerprint, now)?,
                None => None,
            };
            match found {
                Some(claim) => claim,
                None => {
                    let record = encode_in_flight(
                        fingerprint,
                        now.saturating_add(millis(lease)),
                        now.saturating_add(millis(ttl)),
                    );
                    table
                        .insert(key, record.as_slice())
                        .map_err(|e| self.fail(e))?;
                    Claim::Run
                }
            }
        };
        self.commit_if(txn, claim == Claim::Run)?;
        Ok(claim)
    }

    /// What a stored record means for a claim with `fingerprint` at `now`; `None` when it
    /// counts as absent.
    fn judge(
        &self,
        key: &str,
        bytes: &[u8],
        fingerprint: &Fingerprint,
        now: u64,
    ) -> Result<Option<Claim>, StoreError> {
        let bad = || StoreError::BadRecord {
            path: self.path.clone(),
            key: key.to_string(),
        };
        judge_record(bytes, fingerprint, now).map_err(|()| bad())
    }

    /// [`Store::complete`] at a given time, in a transaction of its own (tests move the clock).
    #[cfg(test)]
    pub(super) fn complete_at(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        response: &StoredResponse,
        ttl: Duration,
        now: u64,
    ) -> Result<(), StoreError> {
        check_key(key)?;
        let txn = self.begin_write()?;
        let store = {
            let mut table = txn.open_table(IDEMPOTENCY).map_err(|e| self.fail(e))?;
            put_completed(&mut table, key, fingerprint, response, ttl, now)
                .map_err(|e| self.fail(e))?
        };
        self.commit_if(txn, store)
    }

    pub(super) fn purge_expired_at(&self, now: u64) -> Result<usize, StoreError> {
        let txn = self.begin_write()?;
        let mut purged = 0;
        {
            let mut table = txn.open_table(IDEMPOTENCY).map_err(|e| self.fail(e))?;
            table
                .retain(|_, v| {
                    let keep = Head::decode(v).is_some_and(|h| h.live(now));
                    if !keep {
                        purged += 1;
                    }
                    keep
                })
                .map_err(|e| self.fail(e))?;
        }
        self.commit_if(txn, purged > 0)?;
        Ok(purged)
    }

    /// Commit (durably) when something was written, else give the transaction up without an
    /// fsync.
    fn commit_if(&self, txn: redb::WriteTransaction, wrote: bool) -> Result<(), StoreError> {
        if wrote {
            self.commit(txn)
        } else {
            txn.abort().map_err(|e| self.fail(e))
        }
    }
}

/// What a stored record means for a claim with `fingerprint` at `now`: `Ok(None)` when it
/// counts as absent, `Err(())` when it cannot be read.
pub(super) fn judge_record(
    bytes: &[u8],
    fingerprint: &Fingerprint,
    now: u64,
) -> Result<Option<Claim>, ()> {
    let head = Head::decode(bytes).ok_or(())?;
    if !head.live(now) {
        return Ok(None);
    }
    Ok(Some(if head.fingerprint != fingerprint.0 {
        Claim::Mismatch
    } else if head.in_flight {
        Claim::InFlight
    } else {
        Claim::Replay(decode_response(bytes).ok_or(())?)
    }))
}

/// Write a completed record for `key` unless another body holds it (a live record with another
/// fingerprint); whether it was written.
pub(super) fn put_completed(
    table: &mut redb::Table<'_, &str, &[u8]>,
    key: &str,
    fingerprint: &Fingerprint,
    response: &StoredResponse,
    ttl: Duration,
    now: u64,
) -> Result<bool, redb::StorageError> {
    let taken = match table.get(key)? {
        Some(v) => {
            Head::decode(v.value()).is_some_and(|h| h.fingerprint != fingerprint.0 && h.live(now))
        }
        None => false,
    };
    if !taken {
        let record = encode_completed(fingerprint, now.saturating_add(millis(ttl)), response);
        table.insert(key, record.as_slice())?;
    }
    Ok(!taken)
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::KeyTooLong {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

const VERSION: u8 = 1;
const IN_FLIGHT: u8 = 0;
const COMPLETED: u8 = 1;
/// Version, fingerprint, state, lease, expiry.
const HEAD_LEN: usize = 1 + 32 + 1 + 8 + 8;

/// The fixed front of every record: enough to decide liveness and fingerprint.
#[derive(Debug)]
struct Head {
    fingerprint: [u8; 32],
    in_flight: bool,
    lease_until: u64,
    expires: u64,
}

impl Head {
    fn decode(bytes: &[u8]) -> Option<Head> {
        let mut r = Reader(bytes);
        if r.take(1)? != [VERSION] {
            return None;
        }
        let fingerprint = r.take(32)?.try_into().ok()?;
        let in_flight = match r.take(1)?[0] {
            IN_FLIGHT => true,
            COMPLETED => false,
            _ => return None,
        };
        Some(Head {
            fingerprint,
            in_flight,
            lease_until: r.u64()?,
            expires: r.u64()?,
        })
    }

    /// Whether the record still counts at `now`: before its expiry and, in flight, within its
    /// lease.
    fn live(&self, now: u64) -> bool {
        now < self.expires && (!self.in_flight || now < self.lease_until)
    }
}

fn encode_head(out: &mut Vec<u8>, fingerprint: &Fingerprint, state: u8, lease: u64, expires: u64) {
    out.push(VERSION);
    out.extend_from_slice(&fingerprint.0);
    out.push(state);
    out.extend_from_slice(&lease.to_le_bytes());
    out.extend_from_slice(&expires.to_le_bytes());
}

fn encode_in_flight(fingerprint: &Fingerprint, lease_until: u64, expires: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_LEN);
    encode_head(&mut out, fingerprint, IN_FLIGHT, lease_until, expires);
    out
}

fn encode_completed(fingerprint: &Fingerprint, expires: u64, response: &StoredResponse) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_LEN + 16 + response.body.len());
    encode_head(&mut out, fingerprint, COMPLETED, 0, expires);
    out.extend_from_slice(&response.status.to_le_bytes());
    put_len(&mut out, response.headers.len());
    for (name, value) in &response.headers {
        put_len(&mut out, name.len());
        out.extend_from_slice(name.as_bytes());
        put_len(&mut out, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(&response.body);
    out
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&(len as u64).to_le_bytes());
}

/// The response of a completed record (`None` for an in-flight or unreadable one).
fn decode_response(bytes: &[u8]) -> Option<StoredResponse> {
    if Head::decode(bytes)?.in_flight {
        return None;
    }
    let mut r = Reader(&bytes[HEAD_LEN..]);
    let status = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
    let count = usize::try_from(r.u64()?).ok()?;
    // Each header takes at least its two lengths: a count beyond that is a broken record.
    if count > r.0.len() / 16 {
        return None;
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        let value = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        headers.push((name, value));
    }
    Some(StoredResponse {
        status,
        headers,
        body: r.0.to_vec(),
    })
}

/// Reads a record front to back; every step is `None` past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A length-prefixed byte string.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n)
    }
}
