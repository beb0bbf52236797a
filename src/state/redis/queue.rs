//! The write queue on the shared Redis, for gateways that run as several replicas: the same
//! deliveries, order per key, outcomes, dead letters, replay, drop and figures as the embedded
//! queue (`state/queue.rs`, whose module note gives the semantics), kept so that any replica
//! can accept, any can deliver, and no two deliver the same write at once. What a request
//! means, when to retry and how long to wait stay the caller's, as for the embedded queue.
//!
//! Every change is one Lua script, so each is atomic on the server: accept (with its
//! `Idempotency-Key` record, in the format of `idempotency.rs` so that a key used by a direct
//! write and by a queued one cannot mix, and the size cap), lease, finish, replay, drop and
//! purge. Reads are scripts too, so that a record and its indexes are read at one instant. The
//! scripts are in `queue/scripts.rs`; this file prepares their arguments and reads their answers.
//!
//! Why sorted sets and scripts, not a Redis Stream with a consumer group: a consumer group
//! hands out entries in the order they were added, once each, to whichever consumer asks. The
//! queue needs two things it does not give: a due time per delivery (a retry waits its
//! exponential backoff, while others go ahead), and order per key (the second write of a key
//! waits until the first is delivered or dead, without holding up other keys). So the due
//! deliveries are a sorted set by due time, holding only the head of each key. What a
//! consumer group does give, the lease set gives too: a taken delivery is leased until a
//! deadline; a replica that dies with deliveries in flight leaves their leases to run out, and
//! then another replica takes them (as `XAUTOCLAIM` would claim a dead consumer's pending
//! entries). A leased delivery is not in the due set, so no two replicas take it at once.
//! Delivery stays at-least-once (a replica slower than its lease, or one that dies after the
//! database committed): the dedup table closes that gap, as with the embedded queue.
//!
//! Keys, under the prefix (`patina:q:` unless a test gives its own):
//! - `d:<id>` hash: the record's fields (`id`, `seq`, `route`, `order_key`, `identity`,
//!   `request`, `generation`, `accepted_at`, `status`, `tries`, `next_at`, `finished_at`,
//!   `result` as JSON, and `m`, its member in the sets below); `a:<id>` list: its attempts as
//!   JSON, oldest first, the last 50. A hash rather than one JSON text because the scripts
//!   edit it: Lua's JSON codec writes numbers beyond 14 digits in exponent form and an empty
//!   list as `{}`, so the scripts set fields and never decode a record.
//! - `due` sorted set, score the next attempt's time (ms), member `m` = seq (20 digits) `:` id,
//!   so that ties go by acceptance: what a replica may take.
//! - `leased` sorted set, score the lease's end, member `m`: what replicas are delivering.
//! - `key:<order key>` list: the pending ids of the key, oldest first; its head alone is due
//!   or leased.
//! - `pending` and `pending:<route>` sorted sets, score accepted_at, member id: the size cap and
//!   the figures per route; `routes` set: the routes with pending deliveries or dead letters.
//! - `dead:<route>` sorted set, score seq, member id: the dead letters.
//! - `delivered` sorted set, score finished_at, member id: delivered records, purged later.
//! - `seq`: the last sequence number.
//!
//! Scores are milliseconds since the epoch, exact in a double. Times come from the clock of the
//! replica that calls (accepted_at, due times, lease ends): the replicas' clocks are assumed
//! close (NTP); a clock that is off by a second only moves a due time or a lease by as much.
//!
//! One Redis (or a Sentinel-managed primary) is supported, not Redis Cluster: the scripts
//! compute the keys of the records they find in the sets, which a cluster does not allow.
//!
//! Durability: an accepted write is acknowledged once Redis holds it in memory and has written
//! it to its append-only file; with `appendfsync everysec` a power loss can take up to the last
//! second of acknowledged writes (`always` closes that window). The start-up check
//! (`DurabilityReport`) warns about settings that lose more.

mod scripts;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::idempotency::{read_claim, record_key};
use super::{KEY_PREFIX, Redis, RedisStateError};
use crate::state::{
    Accept, Accepted, Attempt, Claim, Delivery, DeliveryResult, MAX_KEY_LEN, Outcome, QueueStats,
    Status,
};
use scripts::{ACCEPT, DEAD, DROP, FINISH, GET, LEASE, NEXT, PURGE, REPLAY, STATS};

/// How many delivered records one purge script removes (so that none blocks Redis long).
const PURGE_BATCH: usize = 500;

/// The write queue on the shared Redis. Cheap to share in an `Arc`.
#[derive(Debug)]
pub struct RedisQueue {
    redis: Arc<Redis>,
    prefix: String,
    accept: redis::Script,
    lease: redis::Script,
    finish: redis::Script,
    replay: redis::Script,
    drop: redis::Script,
    purge: redis::Script,
    get: redis::Script,
    dead: redis::Script,
    stats: redis::Script,
    next: redis::Script,
}

impl RedisQueue {
    /// The queue under `patina:q:`.
    pub fn new(redis: Arc<Redis>) -> RedisQueue {
        RedisQueue::with_prefix(redis, format!("{KEY_PREFIX}q:"))
    }

    /// The queue under another prefix (tests keep theirs apart this way). Idempotency records
    /// stay under `patina:idem:`, shared with direct writes.
    pub fn with_prefix(redis: Arc<Redis>, prefix: impl Into<String>) -> RedisQueue {
        RedisQueue {
            redis,
            prefix: prefix.into(),
            accept: redis::Script::new(ACCEPT),
            lease: redis::Script::new(LEASE),
            finish: redis::Script::new(FINISH),
            replay: redis::Script::new(REPLAY),
            drop: redis::Script::new(DROP),
            purge: redis::Script::new(PURGE),
            get: redis::Script::new(GET),
            dead: redis::Script::new(DEAD),
            stats: redis::Script::new(STATS),
            next: redis::Script::new(NEXT),
        }
    }

    /// The connection the queue lives on.
    pub fn redis(&self) -> &Arc<Redis> {
        &self.redis
    }

    /// Run a prepared script invocation.
    async fn run<T: redis::FromRedisValue>(
        &self,
        call: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisStateError> {
        let mut c = self.redis.connection();
        self.redis.call(call.invoke_async(&mut c)).await
    }

    /// Accept a write: with its `Idempotency-Key` record (when given) and within the size cap,
    /// in one script. Returns once Redis has it (see the module note on durability).
    pub async fn accept(&self, a: Accept) -> Result<Accepted, RedisStateError> {
        if let Some(i) = &a.idempotency
            && i.key.len() > MAX_KEY_LEN
        {
            return Err(RedisStateError::KeyTooLong {
                len: i.key.len(),
                max: MAX_KEY_LEN,
            });
        }
        let now = crate::clock::now_ms();
        let mut call = self.accept.prepare_invoke();
        call.arg(&self.prefix)
            .arg(&a.id)
            .arg(&a.route)
            .arg(if a.order_key.is_some() { "1" } else { "0" })
            .arg(a.order_key.as_deref().unwrap_or(""))
            .arg(&a.identity)
            .arg(&a.request)
            .arg(a.generation)
            .arg(now)
            .arg(a.max_pending.to_string());
        match &a.idempotency {
            Some(i) => {
                let headers = serde_json::to_string(&i.response.headers)
                    .map_err(|e| self.redis.bad_reply(format!("headers: {e}")))?;
                call.key(record_key(&i.key))
                    .arg(&i.fingerprint.0[..])
                    .arg(millis(i.ttl))
                    .arg(i.response.status)
                    .arg(headers)
                    .arg(&i.response.body[..]);
            }
            None => {
                call.arg("").arg(1).arg(0).arg("").arg("");
            }
        }
        let reply: Vec<Value> = self.run(&call).await?;
        match reply.first().and_then(text).as_deref() {
            Some("queued") => return Ok(Accepted::Queued),
            Some("full") => return Ok(Accepted::Full),
            _ => {}
        }
        match read_claim(&reply) {
            Some(Claim::Replay(r)) => Ok(Accepted::Replay(r)),
            Some(Claim::Mismatch) => Ok(Accepted::Mismatch),
            Some(Claim::InFlight) => Ok(Accepted::InFlight),
            Some(Claim::Run) | None => Err(self
                .redis
                .bad_reply(format!("the accept script answered {reply:?}"))),
        }
    }

    /// Take up to `limit` due deliveries (soonest first), leasing each until now + `lease` so
    /// no other replica takes it meanwhile; a delivery whose lease ran out (its replica died)
    /// is due again.
    pub async fn lease(
        &self,
        now_ms: u64,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, RedisStateError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut call = self.lease.prepare_invoke();
        call.arg(&self.prefix)
            .arg(now_ms)
            .arg(now_ms.saturating_add(millis(lease)))
            .arg(i64::try_from(limit).unwrap_or(i64::MAX));
        let reply: Vec<Value> = self.run(&call).await?;
        self.records(&reply)
    }

    /// Record an attempt's outcome at `at` (ms); also ends the lease. Only a pending delivery
    /// changes; Delivered and Dead make the next delivery of the same order key due; Retry
    /// moves its due time; Dead lists it as a dead letter of its route.
    pub async fn finish(&self, id: &str, outcome: Outcome, at: u64) -> Result<(), RedisStateError> {
        let (kind, attempt, extra) = match &outcome {
            Outcome::Delivered(result) => (
                "delivered",
                attempt(at, "delivered", None),
                serde_json::to_string(result).unwrap_or_default(),
            ),
            Outcome::Retry {
                next_at,
                category,
                detail,
            } => (
                "retry",
                attempt(at, category, Some(detail)),
                next_at.to_string(),
            ),
            Outcome::Dead { category, detail } => {
                ("dead", attempt(at, category, Some(detail)), String::new())
            }
        };
        let mut call = self.finish.prepare_invoke();
        call.arg(&self.prefix)
            .arg(id)
            .arg(at)
            .arg(kind)
            .arg(attempt)
            .arg(extra);
        let _recorded: i64 = self.run(&call).await?;
        Ok(())
    }

    /// When something next needs a replica (ms): the soonest due attempt or, sooner, the end
    /// of a lease (a replica that dies leaves its deliveries due then).
    pub async fn next_due(&self) -> Result<Option<u64>, RedisStateError> {
        let mut call = self.next.prepare_invoke();
        call.arg(&self.prefix);
        let reply: Vec<String> = self.run(&call).await?;
        Ok(reply.iter().filter_map(|s| ms(s)).min())
    }

    /// One delivery, whatever its status.
    pub async fn delivery(&self, id: &str) -> Result<Option<Delivery>, RedisStateError> {
        let mut call = self.get.prepare_invoke();
        call.arg(&self.prefix).arg(id);
        let reply: Vec<Value> = self.run(&call).await?;
        Ok(self.records(&reply)?.into_iter().next())
    }

    /// The dead letters (of one route, or all), oldest first, at most `limit`.
    pub async fn dead_letters(
        &self,
        route: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, RedisStateError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut call = self.dead.prepare_invoke();
        call.arg(&self.prefix)
            .arg(if route.is_some() { "1" } else { "0" })
            .arg(route.unwrap_or(""))
            .arg(limit)
            .arg(limit - 1);
        let reply: Vec<Value> = self.run(&call).await?;
        self.records(&reply)
    }

    /// Put dead letters back in the queue (as accepted under `generation` now), behind what
    /// their keys accepted meanwhile; which ids were dead and went back.
    pub async fn replay(
        &self,
        ids: &[String],
        generation: u64,
    ) -> Result<Vec<String>, RedisStateError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self.replay_call(generation, "ids");
        call.arg(ids);
        self.run(&call).await
    }

    /// Replay every dead letter of `route`; their ids.
    pub async fn replay_route(
        &self,
        route: &str,
        generation: u64,
    ) -> Result<Vec<String>, RedisStateError> {
        let mut call = self.replay_call(generation, "route");
        call.arg(route);
        self.run(&call).await
    }

    fn replay_call(&self, generation: u64, mode: &str) -> redis::ScriptInvocation<'_> {
        let now = crate::clock::now_ms();
        let mut call = self.replay.prepare_invoke();
        call.arg(&self.prefix)
            .arg(generation)
            .arg(now)
            .arg(attempt(now, "replayed", None))
            .arg(mode);
        call
    }

    /// Forget dead letters; which ids were dead and went.
    pub async fn drop_dead(&self, ids: &[String]) -> Result<Vec<String>, RedisStateError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self.drop.prepare_invoke();
        call.arg(&self.prefix).arg(ids);
        self.run(&call).await
    }

    /// Depth, oldest pending and dead letters, per route.
    pub async fn queue_stats(&self) -> Result<QueueStats, RedisStateError> {
        let mut call = self.stats.prepare_invoke();
        call.arg(&self.prefix);
        let reply: Vec<(String, u64, String, u64)> = self.run(&call).await?;
        let mut stats = QueueStats::default();
        for (route, pending, oldest, dead) in reply {
            if pending == 0 && dead == 0 {
                continue;
            }
            let r = stats.routes.entry(route).or_default();
            r.pending = pending;
            r.oldest_accepted_at = ms(&oldest);
            r.dead = dead;
            stats.pending += pending;
            stats.dead += dead;
        }
        Ok(stats)
    }

    /// How many deliveries are pending (what the size cap counts).
    pub async fn pending_len(&self) -> Result<u64, RedisStateError> {
        let mut c = self.redis.connection();
        let key = format!("{}pending", self.prefix);
        self.redis
            .call(redis::cmd("ZCARD").arg(key).query_async(&mut c))
            .await
    }

    /// Forget delivered records finished more than `keep` ago; how many went.
    pub async fn purge_delivered(&self, keep: Duration) -> Result<usize, RedisStateError> {
        let before = crate::clock::now_ms().saturating_sub(millis(keep));
        let mut purged = 0;
        loop {
            let mut call = self.purge.prepare_invoke();
            call.arg(&self.prefix).arg(before).arg(PURGE_BATCH);
            let n: usize = self.run(&call).await?;
            purged += n;
            if n < PURGE_BATCH {
                return Ok(purged);
            }
        }
    }

    /// The records in a script's answer.
    fn records(&self, reply: &[Value]) -> Result<Vec<Delivery>, RedisStateError> {
        reply
            .iter()
            .map(|v| {
                read_record(v).ok_or_else(|| {
                    self.redis
                        .bad_reply(format!("a delivery record cannot be read: {v:?}"))
                })
            })
            .collect()
    }
}

/// An attempt as the scripts keep it.
fn attempt(at: u64, outcome: &str, detail: Option<&str>) -> String {
    serde_json::to_string(&Attempt {
        at,
        outcome: outcome.to_string(),
        detail: detail.map(str::to_string),
    })
    .unwrap_or_default()
}

/// Milliseconds, at least 1 (`PEXPIRE 0` would delete at once).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A time as Redis writes it: digits, or a score beyond 2^53 in exponent form.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn ms(s: &str) -> Option<u64> {
    s.parse().ok().or_else(|| {
        s.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// `{hash fields and values, attempts}` as the scripts' `rec` returns it.
fn read_record(v: &Value) -> Option<Delivery> {
    let Value::Array(parts) = v else { return None };
    let [Value::Array(flat), Value::Array(attempts)] = parts.as_slice() else {
        return None;
    };
    let mut f: HashMap<String, String> = HashMap::new();
    for pair in flat.chunks(2) {
        let [k, v] = pair else { return None };
        f.insert(text(k)?, text(v)?);
    }
    let attempts = attempts
        .iter()
        .map(|a| serde_json::from_str(&text(a)?).ok())
        .collect::<Option<Vec<Attempt>>>()?;
    let num = |k: &str| f.get(k).and_then(|s| ms(s));
    let status = match f.get("status")?.as_str() {
        "pending" => Status::Pending,
        "delivered" => Status::Delivered,
        "dead" => Status::Dead,
        _ => return None,
    };
    let result = match f.get("result") {
        Some(r) => Some(serde_json::from_str::<DeliveryResult>(r).ok()?),
        None => None,
    };
    Some(Delivery {
        id: f.get("id")?.clone(),
        seq: num("seq")?,
        route: f.get("route")?.clone(),
        order_key: f.get("order_key").cloned(),
        identity: f.get("identity")?.clone(),
        request: f.get("request")?.clone(),
        generation: num("generation")?,
        accepted_at: num("accepted_at")?,
        status,
        tries: u32::try_from(num("tries")?).ok()?,
        attempts,
        next_at: num("next_at")?,
        finished_at: num("finished_at"),
        result,
    })
}

#[cfg(test)]
mod tests;
