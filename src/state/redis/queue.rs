//! The write queue on the shared Redis, for gateways that run as several replicas: the same
//! deliveries, order per key, outcomes, dead letters, replay, drop and figures as the embedded
//! queue (`state/queue.rs`, whose module note gives the semantics), kept so that any replica
//! can accept, any can deliver, and no two deliver the same write at once. What a request
//! means, when to retry and how long to wait stay the caller's, as for the embedded queue.
//!
//! Every change is one Lua script, so each is atomic on the server: accept (with its
//! `Idempotency-Key` record, in the format of `idempotency.rs` so that a key used by a direct
//! write and by a queued one cannot mix, and the size cap), lease, finish, replay, drop and
//! purge. Reads are scripts too, so that a record and its indexes are read at one instant.
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

/// Lua shared by the scripts. ARGV[1] is always the key prefix.
macro_rules! prelude {
    () => {
        r"
local p = ARGV[1]
local function rec(id)
  local h = redis.call('HGETALL', p .. 'd:' .. id)
  if #h == 0 then return false end
  return {h, redis.call('LRANGE', p .. 'a:' .. id, 0, -1)}
end
local function tidy(route)
  if redis.call('ZCARD', p .. 'pending:' .. route) == 0
     and redis.call('ZCARD', p .. 'dead:' .. route) == 0 then
    redis.call('SREM', p .. 'routes', route)
  end
end
local function history(id, attempt)
  local a = p .. 'a:' .. id
  redis.call('RPUSH', a, attempt)
  redis.call('LTRIM', a, -50, -1)
end
local function member(seq, id)
  return string.format('%020d', seq) .. ':' .. id
end
local function enqueue(id, m, route, okey, accepted_at, next_at)
  redis.call('ZADD', p .. 'pending', accepted_at, id)
  redis.call('ZADD', p .. 'pending:' .. route, accepted_at, id)
  redis.call('SADD', p .. 'routes', route)
  local behind = false
  if okey then
    local kl = p .. 'key:' .. okey
    behind = redis.call('LLEN', kl) > 0
    redis.call('RPUSH', kl, id)
  end
  if not behind then redis.call('ZADD', p .. 'due', next_at, m) end
end
"
    };
}

/// KEYS[1] (optional): the idempotency record. ARGV: prefix, id, route, has order key (`1`),
/// order key, identity, request, generation, now, max pending, fingerprint, TTL ms, status,
/// headers, body. Returns {'queued'} | {'full'} | the claim script's answers.
const ACCEPT: &str = concat!(
    prelude!(),
    r"
local id = ARGV[2]
local idem = KEYS[1]
if idem then
  local r = redis.call('HMGET', idem, 'fp', 'state', 'status', 'headers', 'body')
  if r[1] then
    if r[1] ~= ARGV[11] then return {'mismatch'} end
    if r[2] == 'f' then return {'inflight'} end
    return {'replay', r[3], r[4], r[5]}
  end
end
if redis.call('ZCARD', p .. 'pending') >= tonumber(ARGV[10]) then return {'full'} end
local d = p .. 'd:' .. id
if redis.call('EXISTS', d) == 1 then
  return redis.error_reply('a delivery ' .. id .. ' exists already')
end
local seq = redis.call('INCR', p .. 'seq')
local m = member(seq, id)
redis.call('HSET', d, 'id', id, 'seq', seq, 'm', m, 'route', ARGV[3], 'identity', ARGV[6],
  'request', ARGV[7], 'generation', ARGV[8], 'accepted_at', ARGV[9], 'status', 'pending',
  'tries', 0, 'next_at', ARGV[9])
local okey = false
if ARGV[4] == '1' then
  okey = ARGV[5]
  redis.call('HSET', d, 'order_key', okey)
end
redis.call('DEL', p .. 'a:' .. id)
enqueue(id, m, ARGV[3], okey, ARGV[9], ARGV[9])
if idem then
  redis.call('DEL', idem)
  redis.call('HSET', idem, 'fp', ARGV[11], 'state', 'c', 'status', ARGV[13], 'headers', ARGV[14],
    'body', ARGV[15])
  redis.call('PEXPIRE', idem, ARGV[12])
end
return {'queued'}
"
);

/// ARGV: prefix, now, lease end, limit. Returns the leased records.
const LEASE: &str = concat!(
    prelude!(),
    r"
local now = ARGV[2]
local expired = redis.call('ZRANGEBYSCORE', p .. 'leased', '-inf', now, 'WITHSCORES')
for i = 1, #expired, 2 do
  local m = expired[i]
  redis.call('ZADD', p .. 'due', expired[i + 1], m)
  redis.call('HSET', p .. 'd:' .. string.sub(m, 22), 'next_at', expired[i + 1])
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', p .. 'leased', '-inf', now) end
local out = {}
local taken = redis.call('ZRANGEBYSCORE', p .. 'due', '-inf', now, 'LIMIT', 0, ARGV[4])
for _, m in ipairs(taken) do
  redis.call('ZREM', p .. 'due', m)
  local r = rec(string.sub(m, 22))
  if r then
    redis.call('ZADD', p .. 'leased', ARGV[3], m)
    out[#out + 1] = r
  end
end
return out
"
);

/// ARGV: prefix, id, at, kind (`delivered` | `retry` | `dead`), the attempt as JSON, and the
/// result as JSON (delivered) or the next attempt's time (retry). Returns 1 when recorded.
const FINISH: &str = concat!(
    prelude!(),
    r"
local id = ARGV[2]
local at = ARGV[3]
local kind = ARGV[4]
local d = p .. 'd:' .. id
local r = redis.call('HMGET', d, 'status', 'm', 'route', 'order_key', 'seq')
if r[1] ~= 'pending' then return 0 end
local m, route, okey = r[2], r[3], r[4]
redis.call('HINCRBY', d, 'tries', 1)
history(id, ARGV[5])
redis.call('ZREM', p .. 'leased', m)
if kind == 'retry' then
  redis.call('HSET', d, 'next_at', ARGV[6])
  if not okey or redis.call('LINDEX', p .. 'key:' .. okey, 0) == id then
    redis.call('ZADD', p .. 'due', ARGV[6], m)
  end
  return 1
end
redis.call('ZREM', p .. 'due', m)
redis.call('ZREM', p .. 'pending', id)
redis.call('ZREM', p .. 'pending:' .. route, id)
if okey then
  local kl = p .. 'key:' .. okey
  local head = redis.call('LINDEX', kl, 0)
  redis.call('LREM', kl, 1, id)
  if head == id then
    local nxt = redis.call('LINDEX', kl, 0)
    if nxt then
      local nm = redis.call('HGET', p .. 'd:' .. nxt, 'm')
      if nm then
        redis.call('ZADD', p .. 'due', at, nm)
        redis.call('HSET', p .. 'd:' .. nxt, 'next_at', at)
      end
    end
  end
end
redis.call('HSET', d, 'finished_at', at)
if kind == 'delivered' then
  redis.call('HSET', d, 'status', 'delivered', 'result', ARGV[6])
  redis.call('ZADD', p .. 'delivered', at, id)
else
  redis.call('HSET', d, 'status', 'dead')
  redis.call('ZADD', p .. 'dead:' .. route, r[5], id)
end
tidy(route)
return 1
"
);

/// ARGV: prefix, generation, now, the `replayed` attempt as JSON, mode (`ids` | `route`), then
/// the ids or the route. Returns the ids that were dead and went back.
const REPLAY: &str = concat!(
    prelude!(),
    r"
local ids = {}
if ARGV[5] == 'route' then
  ids = redis.call('ZRANGE', p .. 'dead:' .. ARGV[6], 0, -1)
else
  for i = 6, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local out = {}
for _, id in ipairs(ids) do
  local d = p .. 'd:' .. id
  local r = redis.call('HMGET', d, 'status', 'route', 'order_key', 'accepted_at')
  if r[1] == 'dead' then
    redis.call('ZREM', p .. 'dead:' .. r[2], id)
    local seq = redis.call('INCR', p .. 'seq')
    local m = member(seq, id)
    redis.call('HSET', d, 'seq', seq, 'm', m, 'status', 'pending', 'tries', 0,
      'generation', ARGV[2], 'next_at', ARGV[3])
    redis.call('HDEL', d, 'finished_at')
    history(id, ARGV[4])
    enqueue(id, m, r[2], r[3], r[4], ARGV[3])
    out[#out + 1] = id
  end
end
return out
"
);

/// ARGV: prefix, ids…. Returns the ids that were dead and went.
const DROP: &str = concat!(
    prelude!(),
    r"
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local d = p .. 'd:' .. id
  local r = redis.call('HMGET', d, 'status', 'route')
  if r[1] == 'dead' then
    redis.call('ZREM', p .. 'dead:' .. r[2], id)
    redis.call('DEL', d, p .. 'a:' .. id)
    tidy(r[2])
    out[#out + 1] = id
  end
end
return out
"
);

/// ARGV: prefix, before (ms, excluded), batch. Returns how many records went.
const PURGE: &str = concat!(
    prelude!(),
    r"
local ids = redis.call('ZRANGEBYSCORE', p .. 'delivered', '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do
  redis.call('ZREM', p .. 'delivered', id)
  if redis.call('HGET', p .. 'd:' .. id, 'status') == 'delivered' then
    redis.call('DEL', p .. 'd:' .. id, p .. 'a:' .. id)
  end
end
return #ids
"
);

/// ARGV: prefix, ids…. Returns the records found.
const GET: &str = concat!(
    prelude!(),
    r"
local out = {}
for i = 2, #ARGV do
  local r = rec(ARGV[i])
  if r then out[#out + 1] = r end
end
return out
"
);

/// ARGV: prefix, one route (`1`) or all, the route, limit, limit - 1. Returns the oldest dead
/// letters' records, by seq.
const DEAD: &str = concat!(
    prelude!(),
    r"
local routes
if ARGV[2] == '1' then routes = {ARGV[3]} else routes = redis.call('SMEMBERS', p .. 'routes') end
local all = {}
for _, r in ipairs(routes) do
  local e = redis.call('ZRANGE', p .. 'dead:' .. r, 0, ARGV[5], 'WITHSCORES')
  for i = 1, #e, 2 do all[#all + 1] = {tonumber(e[i + 1]), e[i]} end
end
table.sort(all, function(a, b) return a[1] < b[1] end)
local lim = tonumber(ARGV[4])
local out = {}
for i = 1, #all do
  if #out >= lim then break end
  local r = rec(all[i][2])
  if r then out[#out + 1] = r end
end
return out
"
);

/// ARGV: prefix. Returns {route, pending, oldest accepted_at or '', dead} per route.
const STATS: &str = concat!(
    prelude!(),
    r"
local out = {}
for _, r in ipairs(redis.call('SMEMBERS', p .. 'routes')) do
  local first = redis.call('ZRANGE', p .. 'pending:' .. r, 0, 0, 'WITHSCORES')
  out[#out + 1] = {r, redis.call('ZCARD', p .. 'pending:' .. r), first[2] or '',
    redis.call('ZCARD', p .. 'dead:' .. r)}
end
return out
"
);

/// ARGV: prefix. Returns {the soonest due time or '', the soonest lease end or ''}.
const NEXT: &str = r"
local p = ARGV[1]
local a = redis.call('ZRANGE', p .. 'due', 0, 0, 'WITHSCORES')
local b = redis.call('ZRANGE', p .. 'leased', 0, 0, 'WITHSCORES')
return {a[2] or '', b[2] or ''}
";

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
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_redis_writes_them() {
        assert_eq!(ms("1712345678901"), Some(1_712_345_678_901));
        assert_eq!(ms("1.8446744073709552e+19"), Some(u64::MAX));
        assert_eq!(ms(""), None);
        assert_eq!(ms("-1"), None);
    }

    #[test]
    fn a_record_is_read_from_its_fields_and_attempts() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let fields = [
            ("id", "d1"),
            ("seq", "7"),
            ("m", "00000000000000000007:d1"),
            ("route", "r"),
            ("order_key", "job:1"),
            ("identity", "user:ann"),
            ("request", "{}"),
            ("generation", "2"),
            ("accepted_at", "1000"),
            ("status", "delivered"),
            ("tries", "1"),
            ("next_at", "1000"),
            ("finished_at", "1500"),
            ("result", r#"{"status":201}"#),
        ];
        let flat = fields
            .iter()
            .flat_map(|(k, v)| [bulk(k), bulk(v)])
            .collect();
        let v = Value::Array(vec![
            Value::Array(flat),
            Value::Array(vec![bulk(&attempt(1500, "delivered", None))]),
        ]);
        let d = read_record(&v).expect("record");
        assert_eq!(
            (d.seq, d.status, d.finished_at, d.order_key.as_deref()),
            (7, Status::Delivered, Some(1500), Some("job:1"))
        );
        assert_eq!(d.result.expect("result").status, 201);
        assert_eq!(d.attempts[0].outcome, "delivered");
        // A record without its fields is refused, not half read.
        assert!(
            read_record(&Value::Array(vec![
                Value::Array(vec![]),
                Value::Array(vec![])
            ]))
            .is_none()
        );
    }
}
