//! The write queue: writes accepted for later delivery, each kept until its database has it
//! (delivered) or an operator has seen it fail (dead). It owns how deliveries are kept and
//! indexed: acceptance (durable, group-committed, with its `Idempotency-Key` record in the same
//! transaction and the queue's size cap checked there), which deliveries are due, the order
//! within one order key, outcomes, dead letters, replay and drop, and the figures per route.
//! What a stored request means, when to retry and how long to wait are the caller's: it hands
//! over the request as opaque text and each outcome with its next attempt's time.
//!
//! Order: every accepted delivery gets the next sequence number. A delivery with an order key
//! is due only while it is the oldest pending one of its key; when it is delivered or dead,
//! the next one of the key becomes due. Deliveries without a key, and other keys, never wait
//! for it. A replayed dead letter gets a new sequence number: it goes behind what its key
//! accepted meanwhile.
//!
//! Tables (all in the store's one file):
//! - `deliveries`: id → the record (JSON: small, readable by an operator, versioned by field);
//! - `due`: (next attempt ms, seq) → id: what a worker may take, soonest first;
//! - `keyed`: (order key, seq) → id: every pending delivery that has an order key;
//! - `pending`: (route, seq) → accepted ms: what is waiting, per route (depth, oldest);
//! - `dead`: (route, seq) → id: the dead letters;
//! - `delivered`: (finished ms, seq) → id: delivered records, purged after their retention;
//! - `queue_meta`: the next sequence number.

use std::collections::BTreeMap;
use std::time::Duration;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use super::idempotency::{self, Claim, Fingerprint, StoredResponse, millis};
use super::{Op, Reply, Store, StoreError};
use crate::clock::now_ms;

const DELIVERIES: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("deliveries");
const DUE: redb::TableDefinition<(u64, u64), &str> = redb::TableDefinition::new("due");
const KEYED: redb::TableDefinition<(&str, u64), &str> = redb::TableDefinition::new("keyed");
const PENDING: redb::TableDefinition<(&str, u64), u64> = redb::TableDefinition::new("pending");
const DEAD: redb::TableDefinition<(&str, u64), &str> = redb::TableDefinition::new("dead");
const DELIVERED: redb::TableDefinition<(u64, u64), &str> = redb::TableDefinition::new("delivered");
const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("queue_meta");

/// Attempts kept in a record's history (the count goes on beyond it).
const HISTORY: usize = 50;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Delivered,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Dead => "dead",
        }
    }
}

/// One attempt at delivering, or an operator's action on the letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it ended, ms since the UNIX epoch.
    pub at: u64,
    /// `delivered`, `replayed`, or the failure's category (`unavailable`, `timeout`,
    /// `constraint`, …).
    pub outcome: String,
    /// What went wrong, in words safe to show an operator (no SQL, no driver text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What the database answered to a delivered write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryResult {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The written row(s) as JSON text, when the route returns any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// A delivery as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub seq: u64,
    pub route: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_key: Option<String>,
    /// Who sent it (the identity's label).
    pub identity: String,
    /// The request, in the caller's encoding.
    pub request: String,
    /// The mapping generation it was accepted (or last replayed) under.
    pub generation: u64,
    pub accepted_at: u64,
    pub status: Status,
    /// Attempts since it was accepted or last replayed.
    pub tries: u32,
    /// Every attempt (the last `HISTORY`), oldest first.
    pub attempts: Vec<Attempt>,
    /// When the next attempt is due (pending only).
    pub next_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<DeliveryResult>,
}

/// A write to accept.
#[derive(Debug, Clone)]
pub struct Accept {
    /// Unique across every store (it is what a dedup table on the database records).
    pub id: String,
    pub route: String,
    /// The order key (route and value, as the caller composes it).
    pub order_key: Option<String>,
    pub identity: String,
    pub request: String,
    pub generation: u64,
    /// Refuse when this many deliveries are already pending.
    pub max_pending: usize,
    /// The `Idempotency-Key` record to write beside it, with the answer it replays.
    pub idempotency: Option<IdempotentAccept>,
}

/// The idempotency record of an accepted write.
#[derive(Debug, Clone)]
pub struct IdempotentAccept {
    pub key: String,
    pub fingerprint: Fingerprint,
    /// The answer to store (and to give now).
    pub response: StoredResponse,
    pub ttl: Duration,
}

/// What `accept` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Queued, on disk.
    Queued,
    /// The key was used before for the same request: its first answer, nothing queued.
    Replay(StoredResponse),
    /// The key was used before for another request; nothing queued.
    Mismatch,
    /// The key's first request is still running as a direct write; nothing queued.
    InFlight,
    /// The queue holds `max_pending` deliveries already; nothing queued.
    Full,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered(DeliveryResult),
    /// A transient failure: try again at `next_at`.
    Retry {
        next_at: u64,
        category: String,
        detail: String,
    },
    /// A permanent failure, or retries used up: a dead letter.
    Dead {
        category: String,
        detail: String,
    },
}

/// An outcome to record.
#[derive(Debug)]
pub(crate) struct Finish {
    id: String,
    at: u64,
    outcome: Outcome,
}

/// The queue's figures for one route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteStats {
    pub pending: u64,
    /// When the oldest pending delivery was accepted (ms).
    pub oldest_accepted_at: Option<u64>,
    pub dead: u64,
}

/// The queue's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub pending: u64,
    pub dead: u64,
    pub routes: BTreeMap<String, RouteStats>,
}

/// The queue's tables, open in one write transaction.
pub(super) struct Tables<'t> {
    deliveries: redb::Table<'t, &'static str, &'static [u8]>,
    due: redb::Table<'t, (u64, u64), &'static str>,
    keyed: redb::Table<'t, (&'static str, u64), &'static str>,
    pending: redb::Table<'t, (&'static str, u64), u64>,
    dead: redb::Table<'t, (&'static str, u64), &'static str>,
    delivered: redb::Table<'t, (u64, u64), &'static str>,
    meta: redb::Table<'t, &'static str, u64>,
}

fn encode(d: &Delivery) -> Vec<u8> {
    serde_json::to_vec(d).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Option<Delivery> {
    serde_json::from_slice(bytes).ok()
}

fn corrupt(id: &str) -> redb::Error {
    redb::Error::Corrupted(format!("delivery {id} cannot be read"))
}

impl<'t> Tables<'t> {
    pub(super) fn open(txn: &'t redb::WriteTransaction) -> Result<Self, redb::TableError> {
        Ok(Self {
            deliveries: txn.open_table(DELIVERIES)?,
            due: txn.open_table(DUE)?,
            keyed: txn.open_table(KEYED)?,
            pending: txn.open_table(PENDING)?,
            dead: txn.open_table(DEAD)?,
            delivered: txn.open_table(DELIVERED)?,
            meta: txn.open_table(META)?,
        })
    }

    fn next_seq(&mut self) -> Result<u64, redb::StorageError> {
        let seq = self.meta.get("seq")?.map_or(1, |v| v.value());
        self.meta.insert("seq", seq + 1)?;
        Ok(seq)
    }

    fn get(&self, id: &str) -> Result<Option<Delivery>, redb::Error> {
        match self.deliveries.get(id)? {
            Some(v) => decode(v.value()).map(Some).ok_or_else(|| corrupt(id)),
            None => Ok(None),
        }
    }

    fn put(&mut self, d: &Delivery) -> Result<(), redb::StorageError> {
        self.deliveries
            .insert(d.id.as_str(), encode(d).as_slice())?;
        Ok(())
    }

    /// Make `d` (pending, with its seq) wait: due now unless an older one of its key waits.
    fn enqueue(&mut self, d: &Delivery) -> Result<(), redb::StorageError> {
        self.pending
            .insert((d.route.as_str(), d.seq), d.accepted_at)?;
        let behind = match &d.order_key {
            Some(k) => {
                let waiting = self
                    .keyed
                    .range((k.as_str(), 0)..=(k.as_str(), u64::MAX))?
                    .next()
                    .is_some();
                self.keyed.insert((k.as_str(), d.seq), d.id.as_str())?;
                waiting
            }
            None => false,
        };
        if !behind {
            self.due.insert((d.next_at, d.seq), d.id.as_str())?;
        }
        Ok(())
    }

    /// Take `d` out of the waiting tables; the next one of its key becomes due at `now`.
    fn dequeue(&mut self, d: &Delivery, now: u64) -> Result<(), redb::StorageError> {
        self.pending.remove((d.route.as_str(), d.seq))?;
        self.due.remove((d.next_at, d.seq))?;
        if let Some(k) = &d.order_key {
            self.keyed.remove((k.as_str(), d.seq))?;
            let next = self
                .keyed
                .range((k.as_str(), 0)..=(k.as_str(), u64::MAX))?
                .next()
                .transpose()?
                .map(|(key, id)| (key.value().1, id.value().to_string()));
            if let Some((seq, id)) = next {
                self.due.insert((now, seq), id.as_str())?;
                // The record's next_at must say where its due entry is.
                let found = self
                    .deliveries
                    .get(id.as_str())?
                    .and_then(|v| decode(v.value()));
                if let Some(mut n) = found {
                    n.next_at = now;
                    self.put(&n)?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn accept(
        &mut self,
        idem: &mut redb::Table<'_, &str, &[u8]>,
        a: &Accept,
    ) -> Result<Accepted, redb::Error> {
        let now = now_ms();
        if let Some(i) = &a.idempotency {
            let found = match idem.get(i.key.as_str())? {
                // An unreadable record counts as absent: it is overwritten below.
                Some(v) => idempotency::judge_record(v.value(), &i.fingerprint, now)
                    .ok()
                    .flatten(),
                None => None,
            };
            match found {
                Some(Claim::Replay(r)) => return Ok(Accepted::Replay(r)),
                Some(Claim::Mismatch) => return Ok(Accepted::Mismatch),
                Some(Claim::InFlight) => return Ok(Accepted::InFlight),
                Some(Claim::Run) | None => {}
            }
        }
        if usize::try_from(self.pending.len()?).unwrap_or(usize::MAX) >= a.max_pending {
            return Ok(Accepted::Full);
        }
        let d = Delivery {
            id: a.id.clone(),
            seq: self.next_seq()?,
            route: a.route.clone(),
            order_key: a.order_key.clone(),
            identity: a.identity.clone(),
            request: a.request.clone(),
            generation: a.generation,
            accepted_at: now,
            status: Status::Pending,
            tries: 0,
            attempts: Vec::new(),
            next_at: now,
            finished_at: None,
            result: None,
        };
        self.put(&d)?;
        self.enqueue(&d)?;
        if let Some(i) = &a.idempotency {
            idempotency::put_completed(idem, &i.key, &i.fingerprint, &i.response, i.ttl, now)?;
        }
        Ok(Accepted::Queued)
    }

    pub(super) fn finish(&mut self, f: &Finish) -> Result<(), redb::Error> {
        let Some(mut d) = self.get(&f.id)? else {
            return Ok(());
        };
        // Only a pending delivery has an attempt to record (an operator may have dropped it).
        if d.status != Status::Pending {
            return Ok(());
        }
        d.tries += 1;
        match &f.outcome {
            Outcome::Delivered(result) => {
                self.dequeue(&d, f.at)?;
                push(&mut d.attempts, f.at, "delivered", None);
                d.status = Status::Delivered;
                d.finished_at = Some(f.at);
                d.result = Some(result.clone());
                self.delivered.insert((f.at, d.seq), d.id.as_str())?;
            }
            Outcome::Retry {
                next_at,
                category,
                detail,
            } => {
                self.due.remove((d.next_at, d.seq))?;
                push(&mut d.attempts, f.at, category, Some(detail));
                d.next_at = *next_at;
                self.due.insert((d.next_at, d.seq), d.id.as_str())?;
            }
            Outcome::Dead { category, detail } => {
                self.dequeue(&d, f.at)?;
                push(&mut d.attempts, f.at, category, Some(detail));
                d.status = Status::Dead;
                d.finished_at = Some(f.at);
                self.dead.insert((d.route.as_str(), d.seq), d.id.as_str())?;
            }
        }
        self.put(&d)?;
        Ok(())
    }

    /// Put a dead letter back in the queue, behind what its key accepted meanwhile.
    fn replay(&mut self, id: &str, generation: u64, now: u64) -> Result<bool, redb::Error> {
        let Some(mut d) = self.get(id)? else {
            return Ok(false);
        };
        if d.status != Status::Dead {
            return Ok(false);
        }
        self.dead.remove((d.route.as_str(), d.seq))?;
        d.seq = self.next_seq()?;
        d.status = Status::Pending;
        d.tries = 0;
        d.generation = generation;
        d.next_at = now;
        d.finished_at = None;
        push(&mut d.attempts, now, "replayed", None);
        self.put(&d)?;
        self.enqueue(&d)?;
        Ok(true)
    }

    /// Forget a dead letter for good.
    fn drop_dead(&mut self, id: &str) -> Result<bool, redb::Error> {
        let Some(d) = self.get(id)? else {
            return Ok(false);
        };
        if d.status != Status::Dead {
            return Ok(false);
        }
        self.dead.remove((d.route.as_str(), d.seq))?;
        self.deliveries.remove(id)?;
        Ok(true)
    }
}

fn push(history: &mut Vec<Attempt>, at: u64, outcome: &str, detail: Option<&str>) {
    if history.len() >= HISTORY {
        history.remove(0);
    }
    history.push(Attempt {
        at,
        outcome: outcome.to_string(),
        detail: detail.map(str::to_string),
    });
}

impl Store {
    /// Accept a write: with its `Idempotency-Key` record (when given) and within the size cap,
    /// in one durable transaction shared with the changes waiting beside it (group commit).
    /// Returns once it is on disk.
    pub fn accept(&self, a: Accept) -> Result<Accepted, StoreError> {
        if let Some(i) = &a.idempotency
            && i.key.len() > idempotency::MAX_KEY_LEN
        {
            return Err(StoreError::KeyTooLong {
                len: i.key.len(),
                max: idempotency::MAX_KEY_LEN,
            });
        }
        match self.commit_grouped(Op::Accept(Box::new(a)))? {
            Reply::Accepted(a) => Ok(a),
            Reply::Done => Ok(Accepted::Queued),
        }
    }

    /// Record how an attempt ended (durably, group-committed).
    pub fn finish(&self, id: &str, outcome: Outcome) -> Result<(), StoreError> {
        self.finish_at(id, outcome, now_ms())
    }

    pub fn finish_at(&self, id: &str, outcome: Outcome, at: u64) -> Result<(), StoreError> {
        self.commit_grouped(Op::Finish(Finish {
            id: id.to_string(),
            at,
            outcome,
        }))
        .map(|_| ())
    }

    fn read(&self) -> Result<ReadTransaction, StoreError> {
        self.db.begin_read().map_err(|e| self.fail(e))
    }

    fn decode_or_fail(&self, id: &str, bytes: &[u8]) -> Result<Delivery, StoreError> {
        decode(bytes).ok_or_else(|| StoreError::BadDelivery {
            path: self.path.clone(),
            id: id.to_string(),
        })
    }

    /// Up to `limit` deliveries due at `now`, soonest first, leaving out those `skip` names
    /// (the ones a worker is already running).
    pub fn due(
        &self,
        now: u64,
        limit: usize,
        skip: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<Delivery>, StoreError> {
        let txn = self.read()?;
        let due = txn.open_table(DUE).map_err(|e| self.fail(e))?;
        let deliveries = txn.open_table(DELIVERIES).map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for entry in due
            .range::<(u64, u64)>(..=(now, u64::MAX))
            .map_err(|e| self.fail(e))?
        {
            if out.len() >= limit {
                break;
            }
            let (_, id) = entry.map_err(|e| self.fail(e))?;
            let id = id.value();
            if skip(id) {
                continue;
            }
            if let Some(v) = deliveries.get(id).map_err(|e| self.fail(e))? {
                out.push(self.decode_or_fail(id, v.value())?);
            }
        }
        Ok(out)
    }

    /// When the soonest pending attempt is due (ms), if any.
    pub fn next_due(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.read()?;
        let due = txn.open_table(DUE).map_err(|e| self.fail(e))?;
        let first = due.first().map_err(|e| self.fail(e))?;
        Ok(first.map(|(k, _)| k.value().0))
    }

    /// One delivery, whatever its status.
    pub fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        let txn = self.read()?;
        let deliveries = txn.open_table(DELIVERIES).map_err(|e| self.fail(e))?;
        match deliveries.get(id).map_err(|e| self.fail(e))? {
            Some(v) => Ok(Some(self.decode_or_fail(id, v.value())?)),
            None => Ok(None),
        }
    }

    /// The dead letters (of one route, or all), oldest first, at most `limit`.
    pub fn dead_letters(
        &self,
        route: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let txn = self.read()?;
        let dead = txn.open_table(DEAD).map_err(|e| self.fail(e))?;
        let deliveries = txn.open_table(DELIVERIES).map_err(|e| self.fail(e))?;
        let range = match route {
            Some(r) => dead.range((r, 0)..=(r, u64::MAX)),
            None => dead.range::<(&str, u64)>(..),
        }
        .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for entry in range {
            if out.len() >= limit {
                break;
            }
            let (_, id) = entry.map_err(|e| self.fail(e))?;
            if let Some(v) = deliveries.get(id.value()).map_err(|e| self.fail(e))? {
                out.push(self.decode_or_fail(id.value(), v.value())?);
            }
        }
        out.sort_by_key(|d| d.seq);
        Ok(out)
    }

    /// Put dead letters back in the queue (as accepted under `generation` now); which ids
    /// were dead and went back.
    pub fn replay(&self, ids: &[String], generation: u64) -> Result<Vec<String>, StoreError> {
        let txn = self.begin_write()?;
        let mut replayed = Vec::new();
        {
            let mut t = Tables::open(&txn).map_err(|e| self.fail(e))?;
            let now = now_ms();
            for id in ids {
                if t.replay(id, generation, now).map_err(|e| self.fail(e))? {
                    replayed.push(id.clone());
                }
            }
        }
        self.commit(txn)?;
        Ok(replayed)
    }

    /// Replay every dead letter of `route`; their ids.
    pub fn replay_route(&self, route: &str, generation: u64) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = self
            .dead_letters(Some(route), usize::MAX)?
            .into_iter()
            .map(|d| d.id)
            .collect();
        self.replay(&ids, generation)
    }

    /// Forget dead letters; which ids were dead and went.
    pub fn drop_dead(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let txn = self.begin_write()?;
        let mut dropped = Vec::new();
        {
            let mut t = Tables::open(&txn).map_err(|e| self.fail(e))?;
            for id in ids {
                if t.drop_dead(id).map_err(|e| self.fail(e))? {
                    dropped.push(id.clone());
                }
            }
        }
        self.commit(txn)?;
        Ok(dropped)
    }

    /// Depth, oldest pending and dead letters, per route.
    pub fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let txn = self.read()?;
        let pending = txn.open_table(PENDING).map_err(|e| self.fail(e))?;
        let dead = txn.open_table(DEAD).map_err(|e| self.fail(e))?;
        let mut stats = QueueStats::default();
        for entry in pending.iter().map_err(|e| self.fail(e))? {
            let (k, at) = entry.map_err(|e| self.fail(e))?;
            let (route, _) = k.value();
            let r = stats.routes.entry(route.to_string()).or_default();
            r.pending += 1;
            let at = at.value();
            r.oldest_accepted_at = Some(r.oldest_accepted_at.map_or(at, |o| o.min(at)));
            stats.pending += 1;
        }
        for entry in dead.iter().map_err(|e| self.fail(e))? {
            let (k, _) = entry.map_err(|e| self.fail(e))?;
            stats
                .routes
                .entry(k.value().0.to_string())
                .or_default()
                .dead += 1;
            stats.dead += 1;
        }
        Ok(stats)
    }

    /// How many deliveries are pending (what the size cap counts).
    pub fn pending_len(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let pending = txn.open_table(PENDING).map_err(|e| self.fail(e))?;
        pending.len().map_err(|e| self.fail(e))
    }

    /// Forget delivered records finished more than `keep` ago; how many went.
    pub fn purge_delivered(&self, keep: Duration) -> Result<usize, StoreError> {
        let before = now_ms().saturating_sub(millis(keep));
        let txn = self.begin_write()?;
        let mut purged = 0;
        {
            let mut t = Tables::open(&txn).map_err(|e| self.fail(e))?;
            let old: Vec<((u64, u64), String)> = t
                .delivered
                .range::<(u64, u64)>(..(before, 0))
                .map_err(|e| self.fail(e))?
                .map(|e| e.map(|(k, v)| (k.value(), v.value().to_string())))
                .collect::<Result<_, _>>()
                .map_err(|e| self.fail(e))?;
            for (k, id) in old {
                t.delivered.remove(k).map_err(|e| self.fail(e))?;
                t.deliveries.remove(id.as_str()).map_err(|e| self.fail(e))?;
                purged += 1;
            }
        }
        if purged > 0 {
            self.commit(txn)?;
        } else {
            txn.abort().map_err(|e| self.fail(e))?;
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests;
