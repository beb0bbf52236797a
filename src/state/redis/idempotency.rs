//! `Idempotency-Key` records on the shared Redis, so that a retry that lands on another replica
//! replays too. The semantics are those of the embedded store (`state/idempotency.rs`): claim
//! is one atomic look-up-and-mark answering the same [`Claim`], complete stores the response
//! unless another body holds the key, release frees an in-flight claim of the same body. Each
//! is one Lua script, so each is atomic on the server.
//!
//! A record is a hash under `patina:idem:<key>`: `fp` (the fingerprint, 32 bytes), `state`
//! (`f` in flight, `c` completed) and, completed, `status`, `headers` (JSON pairs) and `body`.
//! Expiry is Redis's own: an in-flight record lives for its lease (or the TTL, if shorter), a
//! completed one for the TTL. So "past its lease or expiry counts as absent" holds by itself,
//! and nothing needs purging.
//!
//! How durable an acknowledged completion is depends on the server's `appendfsync` (see
//! [`super::DurabilityReport`]).

use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::{KEY_PREFIX, Redis, RedisStateError};
use crate::state::{Claim, Fingerprint, MAX_KEY_LEN, StoredResponse};

/// KEYS[1]: the record. ARGV: fingerprint, lease ms, TTL ms.
/// Returns {'run'} | {'inflight'} | {'mismatch'} | {'replay', status, headers, body}.
const CLAIM: &str = r"
local r = redis.call('HMGET', KEYS[1], 'fp', 'state', 'status', 'headers', 'body')
if r[1] then
  if r[1] ~= ARGV[1] then return {'mismatch'} end
  if r[2] == 'f' then return {'inflight'} end
  return {'replay', r[3], r[4], r[5]}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'f')
local lease = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
if ttl < lease then lease = ttl end
redis.call('PEXPIRE', KEYS[1], lease)
return {'run'}
";

/// KEYS[1]: the record. ARGV: fingerprint, TTL ms, status, headers, body.
/// Returns 1 when stored, 0 when another body holds the key.
const COMPLETE: &str = r"
local fp = redis.call('HGET', KEYS[1], 'fp')
if fp and fp ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'c', 'status', ARGV[3], 'headers', ARGV[4], 'body', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// KEYS[1]: the record. ARGV: fingerprint. Returns 1 when an in-flight claim was removed.
const RELEASE: &str = r"
local r = redis.call('HMGET', KEYS[1], 'fp', 'state')
if r[1] == ARGV[1] and r[2] == 'f' then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// The idempotency records on the shared Redis. Cheap to share in an `Arc`.
#[derive(Debug)]
pub struct RedisIdempotency {
    redis: Arc<Redis>,
    claim: redis::Script,
    complete: redis::Script,
    release: redis::Script,
}

impl RedisIdempotency {
    pub fn new(redis: Arc<Redis>) -> RedisIdempotency {
        RedisIdempotency {
            redis,
            claim: redis::Script::new(CLAIM),
            complete: redis::Script::new(COMPLETE),
            release: redis::Script::new(RELEASE),
        }
    }

    /// The connection the records live on.
    pub fn redis(&self) -> &Arc<Redis> {
        &self.redis
    }

    /// Atomically look `key` up and, when it is absent (or expired, or in flight past its
    /// lease), record it as in flight with `fingerprint` for `lease` (at most `ttl`).
    pub async fn claim(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        lease: Duration,
        ttl: Duration,
    ) -> Result<Claim, RedisStateError> {
        check_key(key)?;
        let mut c = self.redis.connection();
        let mut call = self.claim.key(record_key(key));
        call.arg(&fingerprint.0[..])
            .arg(millis(lease))
            .arg(millis(ttl));
        let reply: Vec<Value> = self.redis.call(call.invoke_async(&mut c)).await?;
        read_claim(&reply).ok_or_else(|| {
            self.redis
                .bad_reply(format!("the claim script answered {} values", reply.len()))
        })
    }

    /// Store the response for a claimed key, replacing the in-flight mark; kept for `ttl`.
    /// Should another body hold the key (the lease ran out and it claimed since), that record
    /// is left alone and this response is not stored.
    pub async fn complete(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<(), RedisStateError> {
        check_key(key)?;
        let headers = serde_json::to_string(&response.headers)
            .map_err(|e| self.redis.bad_reply(format!("headers: {e}")))?;
        let mut c = self.redis.connection();
        let mut call = self.complete.key(record_key(key));
        call.arg(&fingerprint.0[..])
            .arg(millis(ttl))
            .arg(response.status)
            .arg(headers)
            .arg(&response.body[..]);
        let _stored: i64 = self.redis.call(call.invoke_async(&mut c)).await?;
        Ok(())
    }

    /// Forget an in-flight record, only while it is in flight with `fingerprint`.
    pub async fn release(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
    ) -> Result<(), RedisStateError> {
        check_key(key)?;
        let mut c = self.redis.connection();
        let mut call = self.release.key(record_key(key));
        call.arg(&fingerprint.0[..]);
        let _removed: i64 = self.redis.call(call.invoke_async(&mut c)).await?;
        Ok(())
    }
}

/// The Redis key of an idempotency key.
pub fn record_key(key: &str) -> String {
    format!("{KEY_PREFIX}idem:{key}")
}

fn check_key(key: &str) -> Result<(), RedisStateError> {
    if key.len() > MAX_KEY_LEN {
        return Err(RedisStateError::KeyTooLong {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// Milliseconds, at least 1 (`PEXPIRE 0` would delete at once).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Read the claim script's answer.
pub(super) fn read_claim(reply: &[Value]) -> Option<Claim> {
    let text = |v: &Value| -> Option<Vec<u8>> {
        match v {
            Value::BulkString(b) => Some(b.clone()),
            Value::SimpleString(s) => Some(s.clone().into_bytes()),
            _ => None,
        }
    };
    let tag = text(reply.first()?)?;
    Some(match (tag.as_slice(), reply.len()) {
        (b"run", 1) => Claim::Run,
        (b"inflight", 1) => Claim::InFlight,
        (b"mismatch", 1) => Claim::Mismatch,
        (b"replay", 4) => {
            let status = std::str::from_utf8(&text(&reply[1])?).ok()?.parse().ok()?;
            let headers = serde_json::from_slice(&text(&reply[2])?).ok()?;
            Claim::Replay(StoredResponse {
                status,
                headers,
                body: text(&reply[3])?,
            })
        }
        _ => return None,
    })
}
