//! Shared state on Redis, for gateways that run as several replicas (`[state] backend =
//! "redis"`): the connection every Redis-backed part shares ([`Redis`]), the start-up check of
//! the server's durability settings ([`DurabilityReport`]), and the Redis forms of the rate
//! limits (`ratelimit.rs`: a GCRA script), of the `Idempotency-Key` records
//! (`idempotency.rs`: claim, complete and release as scripts) and of the write queue
//! (`queue.rs`: deliveries leased to one replica at a time).
//!
//! It knows nothing of the config file, HTTP or identities: callers pass the URL (a
//! [`Secret`]), the opaque keys and the numbers. What a failure means to a request (fail open or
//! closed, which problem) is the caller's business; here a failure is a [`RedisStateError`]
//! whose message never holds the password.
//!
//! One multiplexed connection (redis' `ConnectionManager`, which reconnects by itself) carries
//! every call; cloning it is cheap. Every call is bounded by [`CALL_TIMEOUT`], and after a
//! connection failure calls fail at once for [`RETRY_AFTER`] instead of each waiting for a
//! dead server: a gateway whose Redis is down answers quickly, one way or the other.
//! Every key starts with [`KEY_PREFIX`].

pub mod idempotency;
pub mod queue;
pub mod ratelimit;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tracing::{info, warn};

use crate::secret::Secret;

pub use idempotency::RedisIdempotency;
pub use queue::RedisQueue;
pub use ratelimit::{Gcra, GcraOutcome};

/// The start of every key the gateway writes.
pub const KEY_PREFIX: &str = "patina:";

/// Longest one attempt to open a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest one call (a command or a script, the connection included) may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long calls fail at once after a connection failure, before one tries again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a Redis call failed. Messages name the server by its redacted URL.
#[derive(Debug, thiserror::Error)]
pub enum RedisStateError {
    #[error("the Redis URL {url} is not usable: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("Redis at {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Redis at {url} refused a call: {reason}")]
    Failed { url: String, reason: String },
    #[error("Redis at {url} answered what the gateway cannot read: {reason}")]
    BadReply { url: String, reason: String },
    #[error("an idempotency key of {len} bytes is longer than the {max} bytes the state keeps")]
    KeyTooLong { len: usize, max: usize },
}

impl RedisStateError {
    /// Whether the server could not be reached (as opposed to answering with an error).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RedisStateError::Unreachable { .. })
    }
}

/// The connection to the shared Redis. `Send + Sync`; share one in an `Arc`.
pub struct Redis {
    conn: ConnectionManager,
    /// The URL without credentials, for messages.
    shown: String,
    /// Texts that must not reach a message (the password, as written and decoded).
    hidden: Vec<String>,
    /// Calls fail at once until this many milliseconds after `epoch` (0: try).
    retry_at: AtomicU64,
    epoch: Instant,
    durability: Mutex<Option<DurabilityReport>>,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// A connection that opens on first use (no I/O here). Must be called inside a Tokio
    /// runtime; the URL is checked now.
    pub fn lazy(url: &Secret) -> Result<Redis, RedisStateError> {
        let shown = redact_redis_url(url.expose());
        let hidden = hidden_parts(url.expose());
        if url.expose().starts_with("rediss://") {
            // Two rustls providers are linked (ring and aws-lc-rs); the client asks for the
            // process default, so name one. An earlier choice stays.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let scrub = |e: &redis::RedisError| scrubbed(&hidden, &e.to_string());
        let client = redis::Client::open(url.expose()).map_err(|e| RedisStateError::BadUrl {
            url: shown.clone(),
            reason: scrub(&e),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
            RedisStateError::BadUrl {
                url: shown.clone(),
                reason: scrub(&e),
            }
        })?;
        Ok(Redis {
            conn,
            shown,
            hidden,
            retry_at: AtomicU64::new(0),
            epoch: Instant::now(),
            durability: Mutex::new(None),
        })
    }

    /// Connect now, within `timeout`, and check the server's durability settings (logged, and
    /// kept for [`Redis::durability`]).
    pub async fn connect(url: &Secret, timeout: Duration) -> Result<Redis, RedisStateError> {
        let redis = Redis::lazy(url)?;
        let started = Instant::now();
        redis.ping().await?;
        let left = timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, redis.check_durability()).await {
            Ok(r) => {
                r?;
            }
            Err(_) => return Err(redis.unreachable("the durability check timed out")),
        }
        Ok(redis)
    }

    /// The URL without credentials.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// The shared connection (a cheap clone), for the parts built on this one. Calls made on
    /// it directly are not bounded by [`CALL_TIMEOUT`]: wrap them in [`Redis::call`].
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// One round trip.
    pub async fn ping(&self) -> Result<(), RedisStateError> {
        let mut c = self.connection();
        let pong: String = self.call(redis::cmd("PING").query_async(&mut c)).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(self.bad_reply(format!("PING answered {pong:?}")))
        }
    }

    /// Run one call on the connection: bounded by [`CALL_TIMEOUT`], refused at once while a
    /// recent connection failure stands, and its error made safe to print.
    pub async fn call<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisStateError> {
        let now = self.now_ms();
        let retry_at = self.retry_at.load(Ordering::Relaxed);
        if now < retry_at {
            return Err(self.unreachable(&format!(
                "it failed less than {}s ago; the next try is in {}ms",
                RETRY_AFTER.as_secs(),
                retry_at - now
            )));
        }
        let outcome = tokio::time::timeout(CALL_TIMEOUT, call).await;
        match outcome {
            Ok(Ok(v)) => {
                if retry_at != 0 {
                    self.retry_at.store(0, Ordering::Relaxed);
                }
                Ok(v)
            }
            Ok(Err(e)) if is_connection_error(&e) => Err(self.failed_to_reach(&e.to_string())),
            Ok(Err(e)) => Err(RedisStateError::Failed {
                url: self.shown.clone(),
                reason: scrubbed(&self.hidden, &e.to_string()),
            }),
            Err(_) => {
                Err(self.failed_to_reach(&format!("no answer within {}s", CALL_TIMEOUT.as_secs())))
            }
        }
    }

    /// Read `appendonly` and `appendfsync`, judge them, log the verdict (WARN when
    /// acknowledged writes can be lost, or when the settings cannot be read), keep it for
    /// [`Redis::durability`] and return it. Fails only when Redis cannot be reached.
    pub async fn check_durability(&self) -> Result<DurabilityReport, RedisStateError> {
        let report = match (
            self.config_get("appendonly").await,
            self.config_get("appendfsync").await,
        ) {
            (Ok(only), Ok(fsync)) => DurabilityReport::judge(only.as_deref(), fsync.as_deref()),
            (Err(e), _) | (_, Err(e)) if e.is_unreachable() => return Err(e),
            (Err(e), _) | (_, Err(e)) => DurabilityReport::unknown(&e.to_string()),
        };
        report.log(&self.shown);
        *self
            .durability
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report.clone());
        Ok(report)
    }

    /// The last durability check's verdict (for health details), if one ran.
    pub fn durability(&self) -> Option<DurabilityReport> {
        self.durability
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// `CONFIG GET name`: its value, `None` when the server does not know the setting.
    async fn config_get(&self, name: &str) -> Result<Option<String>, RedisStateError> {
        let mut c = self.connection();
        let pairs: Vec<(String, String)> = self
            .call(
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg(name)
                    .query_async(&mut c),
            )
            .await?;
        Ok(pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v))
    }

    fn now_ms(&self) -> u64 {
        // Never 0, so that 0 can mean "no failure stands".
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }

    /// A connection failure: calls fail at once for [`RETRY_AFTER`].
    fn failed_to_reach(&self, reason: &str) -> RedisStateError {
        let retry = u64::try_from(RETRY_AFTER.as_millis()).unwrap_or(u64::MAX);
        self.retry_at
            .store(self.now_ms().saturating_add(retry), Ordering::Relaxed);
        self.unreachable(reason)
    }

    fn unreachable(&self, reason: &str) -> RedisStateError {
        RedisStateError::Unreachable {
            url: self.shown.clone(),
            reason: scrubbed(&self.hidden, reason),
        }
    }

    pub(crate) fn bad_reply(&self, reason: impl Into<String>) -> RedisStateError {
        RedisStateError::BadReply {
            url: self.shown.clone(),
            reason: scrubbed(&self.hidden, &reason.into()),
        }
    }
}

/// Whether a client error means the server is away (rather than that it said no).
fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
}

/// How safe the server keeps what it acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// `appendonly yes`, `appendfsync always`: every acknowledged write is on disk.
    Always,
    /// `appendonly yes`, `appendfsync everysec`: a power loss can take up to one second.
    EverySecond,
    /// Acknowledged writes can be lost (no append-only file, or one the OS flushes when it
    /// likes).
    Lossy,
    /// The settings could not be read (`CONFIG` disabled or renamed).
    Unknown,
}

/// What the start-up check found, and what it means.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DurabilityReport {
    pub durability: Durability,
    pub appendonly: Option<String>,
    pub appendfsync: Option<String>,
    /// One sentence for operators (the one logged).
    pub message: String,
}

impl DurabilityReport {
    /// Judge the values of `appendonly` and `appendfsync` (`None`: not reported).
    pub fn judge(appendonly: Option<&str>, appendfsync: Option<&str>) -> DurabilityReport {
        let only = appendonly.map(str::to_ascii_lowercase);
        let fsync = appendfsync.map(str::to_ascii_lowercase);
        let (durability, message) = match (only.as_deref(), fsync.as_deref()) {
            (Some("yes"), Some("always")) => (
                Durability::Always,
                "appendonly yes, appendfsync always: every acknowledged write is on disk before \
                 Redis answers"
                    .to_string(),
            ),
            (Some("yes"), Some("everysec")) => (
                Durability::EverySecond,
                "appendonly yes, appendfsync everysec: a crash of Redis loses nothing, but a \
                 power loss or kernel crash can lose up to one second of acknowledged writes \
                 (set appendfsync always to close that window)"
                    .to_string(),
            ),
            (Some("yes"), other) => (
                Durability::Lossy,
                format!(
                    "appendonly yes, appendfsync {}: the OS flushes the append-only file when it \
                     likes, so a power loss or kernel crash can lose many seconds of \
                     acknowledged writes (queued deliveries, idempotency records); set \
                     appendfsync everysec or always",
                    other.unwrap_or("(unknown)")
                ),
            ),
            (other, _) => (
                Durability::Lossy,
                format!(
                    "appendonly {}: without the append-only file a restart of Redis loses every \
                     acknowledged write since the last snapshot (queued deliveries, idempotency \
                     records); set appendonly yes and appendfsync everysec or always",
                    other.unwrap_or("(unknown)")
                ),
            ),
        };
        DurabilityReport {
            durability,
            appendonly: only,
            appendfsync: fsync,
            message,
        }
    }

    /// The settings could not be read.
    pub fn unknown(reason: &str) -> DurabilityReport {
        DurabilityReport {
            durability: Durability::Unknown,
            appendonly: None,
            appendfsync: None,
            message: format!(
                "the durability settings could not be checked ({reason}): make sure Redis runs \
                 with appendonly yes and appendfsync everysec or always, or acknowledged writes \
                 can be lost"
            ),
        }
    }

    /// Log the verdict: INFO when nothing acknowledged is lost short of a power loss, WARN
    /// otherwise.
    pub fn log(&self, url: &str) {
        match self.durability {
            Durability::Always | Durability::EverySecond => {
                info!(redis = url, "Redis durability: {}", self.message);
            }
            Durability::Lossy | Durability::Unknown => {
                warn!(redis = url, "Redis durability: {}", self.message);
            }
        }
    }
}

/// A Redis URL fit for logs: credentials (`user:password@`) and any query (where a Unix
/// socket URL carries its password) replaced by `***`.
pub fn redact_redis_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_string();
    };
    // The authority ends at the first `/`, `?` or `#`; credentials end at its last `@`.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority.rfind('@').map_or_else(
        || authority.to_string(),
        |at| format!("***@{}", &authority[at + 1..]),
    );
    let tail = match tail.find(['?', '#']) {
        Some(cut) => format!("{}?***", &tail[..cut]),
        None => tail.to_string(),
    };
    format!("{scheme}://{host}{tail}")
}

/// The password of a URL, as written and percent-decoded, and its query: what a message must
/// not show.
fn hidden_parts(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some((_, rest)) = url.split_once("://") else {
        out.push(url.to_string());
        return out;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if let Some(at) = authority.rfind('@') {
        let userinfo = &authority[..at];
        let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
        if !password.is_empty() {
            out.push(password.to_string());
            let decoded = percent_encoding::percent_decode_str(password)
                .decode_utf8_lossy()
                .into_owned();
            if decoded != password {
                out.push(decoded);
            }
        }
    }
    if let Some(q) = tail.find('?') {
        out.push(tail[q + 1..].to_string());
    }
    out.retain(|s| !s.is_empty());
    out
}

/// `text` with every hidden part replaced by `***`.
fn scrubbed(hidden: &[String], text: &str) -> String {
    hidden
        .iter()
        .fold(text.to_string(), |t, h| t.replace(h.as_str(), "***"))
}
