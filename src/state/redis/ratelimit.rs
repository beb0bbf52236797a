//! Rate limits shared by every replica: a GCRA (generic cell rate algorithm, the one governor
//! runs in process) as one Lua script, so that reading a bucket and moving it is one atomic step
//! on the server, whichever replica asks.
//!
//! A bucket is one key, `patina:rl:<limit>/<window ms>:<bucket>`, holding its theoretical
//! arrival time in microseconds of the server's clock (`TIME`: the replicas' clocks never
//! meet). It expires when the bucket would be full again, so idle buckets cost nothing. What a
//! bucket string is made of (route, identity) and what the outcome becomes in HTTP terms is
//! the caller's business.

use std::sync::Arc;
use std::time::Duration;

use super::{KEY_PREFIX, Redis, RedisStateError};

/// GCRA with a burst of `limit`: `limit` requests at once, then one per `window / limit`.
/// KEYS[1]: the bucket. ARGV[1]: the emission interval in µs; ARGV[2]: the limit.
/// Returns {allowed (0|1), remaining, µs until the bucket is full, µs until a retry can pass}.
const GCRA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local span = interval * limit
local new_tat = tat + interval
local allow_at = new_tat - span
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((span - (new_tat - now)) / interval), new_tat - now, 0}
";

/// The outcome of one take from a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcraOutcome {
    pub allowed: bool,
    /// Requests that could still pass at once.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// When refused: until a retry can pass.
    pub retry_after: Option<Duration>,
}

/// Rate-limit buckets on the shared Redis.
#[derive(Debug)]
pub struct Gcra {
    redis: Arc<Redis>,
    script: redis::Script,
}

impl Gcra {
    pub fn new(redis: Arc<Redis>) -> Gcra {
        Gcra {
            redis,
            script: redis::Script::new(GCRA),
        }
    }

    /// The connection the buckets live on.
    pub fn redis(&self) -> &Arc<Redis> {
        &self.redis
    }

    /// Take one request from `bucket` under `limit` per `window` (EVALSHA; the script is
    /// loaded again by itself when the server lost it).
    pub async fn take(
        &self,
        limit: u32,
        window: Duration,
        bucket: &str,
    ) -> Result<GcraOutcome, RedisStateError> {
        let limit = limit.max(1);
        let mut c = self.redis.connection();
        let key = key(limit, window, bucket);
        let mut call = self.script.key(&key);
        call.arg(interval_micros(limit, window)).arg(limit);
        let reply: Vec<i64> = self.redis.call(call.invoke_async(&mut c)).await?;
        outcome(&reply, limit).ok_or_else(|| {
            self.redis
                .bad_reply(format!("the rate-limit script answered {reply:?}"))
        })
    }
}

/// The key of `bucket` under a limit: the limit is part of it, so a changed limit starts
/// afresh instead of reading a bucket kept under another interval.
pub fn key(limit: u32, window: Duration, bucket: &str) -> String {
    format!("{KEY_PREFIX}rl:{limit}/{}ms:{bucket}", window.as_millis())
}

/// Microseconds between two requests at the steady rate (at least 1).
pub fn interval_micros(limit: u32, window: Duration) -> u64 {
    u64::try_from(window.as_micros() / u128::from(limit.max(1)))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Read the script's answer.
pub fn outcome(reply: &[i64], limit: u32) -> Option<GcraOutcome> {
    let &[allowed, remaining, reset, retry] = reply else {
        return None;
    };
    let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    let allowed = allowed == 1;
    Some(GcraOutcome {
        allowed,
        remaining: u32::try_from(remaining).unwrap_or(0).min(limit),
        reset: micros(reset),
        retry_after: (!allowed).then(|| micros(retry)),
    })
}
