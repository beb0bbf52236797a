//! Rate limits per identity: GCRA buckets keyed by token subject, API key id or client
//! address, one limiter per distinct quota. Produces the numbers for `RateLimit-*` and
//! `Retry-After`.
//!
//! Two backends behind one [`RateLimits::decide`]: in process (governor; each replica counts
//! alone; memory stays bounded: idle buckets are dropped as the key count grows), or on the
//! shared Redis (`[state] backend = "redis"`: every replica takes from the same buckets, through
//! `state::redis::Gcra`). When Redis cannot be reached, `[state] redis_unreachable` decides:
//! `open` lets the request through unlimited (with a warning now and then), `closed` refuses it.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::{RateSpec, Unreachable};
use crate::state::redis::{Gcra, GcraOutcome, Redis};

/// The governor quota of a rate: `limit` requests per `window`, all of them in one burst.
fn quota(spec: RateSpec) -> Quota {
    let burst = NonZeroU32::new(spec.limit).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(spec.window / spec.limit)
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst)
}

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// The outcome of one check, with what the headers report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset: u64,
    /// Seconds to wait before a retry can succeed (when refused).
    pub retry_after: Option<u64>,
}

/// Buckets above this many keys trigger a sweep of idle ones.
const SWEEP_ABOVE: usize = 50_000;

/// All limiters of the gateway.
#[derive(Debug, Default)]
pub struct RateLimits {
    limiters: Mutex<HashMap<RateSpec, Arc<Limiter>>>,
    checks: AtomicU64,
    /// The buckets on Redis, when replicas share them.
    shared: Option<Shared>,
}

/// Rate limits on the shared Redis.
#[derive(Debug)]
struct Shared {
    gcra: Gcra,
    unreachable: Unreachable,
    /// When the last "Redis unreachable" warning went out, in ms after `epoch` (0: never).
    warned: AtomicU64,
    epoch: Instant,
}

/// Fail open warns at most this often while Redis stays away.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// A limit could not be decided: Redis cannot be reached and the config says to fail closed.
#[derive(Debug, thiserror::Error)]
#[error("rate limits cannot be checked: {reason}")]
pub struct Undecided {
    pub reason: String,
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl RateLimits {
    /// Limits counted in this process.
    pub fn new() -> Self {
        Self::default()
    }

    /// Limits counted on the shared Redis; `unreachable` says what to do when it is away.
    pub fn shared(redis: Arc<Redis>, unreachable: Unreachable) -> Self {
        Self {
            shared: Some(Shared {
                gcra: Gcra::new(redis),
                unreachable,
                warned: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
            ..Self::default()
        }
    }

    /// Whether the buckets are on Redis.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Take one request from `bucket` under `spec`, on whichever backend holds the buckets.
    /// `Ok(None)`: Redis could not be reached and the limits fail open (no decision, no
    /// headers). In process this never waits.
    pub async fn decide(
        &self,
        spec: RateSpec,
        bucket: &str,
    ) -> Result<Option<Decision>, Undecided> {
        let Some(shared) = &self.shared else {
            return Ok(Some(self.check(spec, bucket)));
        };
        match shared.gcra.take(spec.limit, spec.window, bucket).await {
            Ok(o) => Ok(Some(decision(spec, o))),
            Err(e) => {
                shared.warn_unreachable(&e);
                match shared.unreachable {
                    Unreachable::Closed => Err(Undecided {
                        reason: e.to_string(),
                    }),
                    Unreachable::Open => Ok(None),
                }
            }
        }
    }

    fn limiter(&self, spec: RateSpec) -> Arc<Limiter> {
        let mut map = self
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(map.entry(spec).or_insert_with(|| {
            Arc::new(
                RateLimiter::keyed(quota(spec)).with_middleware::<StateInformationMiddleware>(),
            )
        }))
    }

    /// Take one request from `bucket` under `spec`.
    pub fn check(&self, spec: RateSpec, bucket: &str) -> Decision {
        let limiter = self.limiter(spec);
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(1024) && limiter.len() > SWEEP_ABOVE {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let interval = spec.window / spec.limit;
        match limiter.check_key(&bucket.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit: spec.limit,
                    remaining,
                    reset: ceil_secs(interval * (spec.limit - remaining)),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Decision {
                    allowed: false,
                    limit: spec.limit,
                    remaining: 0,
                    reset: ceil_secs(interval * spec.limit),
                    retry_after: Some(ceil_secs(wait).max(1)),
                }
            }
        }
    }

    /// Keys currently held in process, across limiters (for tests and metrics).
    pub fn buckets(&self) -> usize {
        self.limiters
            .lock()
            .map_or(0, |m| m.values().map(|l| l.len()).sum())
    }
}

impl Shared {
    /// Say that Redis is away and what the limits do meanwhile, unless that was said less
    /// than [`WARN_EVERY`] ago.
    fn warn_unreachable(&self, e: &crate::state::redis::RedisStateError) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let last = self.warned.load(Ordering::Relaxed);
        let every = u64::try_from(WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= every)
            && self
                .warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let meanwhile = match self.unreachable {
                Unreachable::Open => {
                    "requests pass unlimited ([state] redis_unreachable = \"open\")"
                }
                Unreachable::Closed => {
                    "limited requests are refused with 503 ([state] redis_unreachable = \"closed\")"
                }
            };
            tracing::warn!(
                error = %e,
                "rate limits cannot be checked on Redis: {meanwhile}; said at most every {}s",
                WARN_EVERY.as_secs()
            );
        }
    }
}

/// The headers' numbers for a take from a Redis bucket.
fn decision(spec: RateSpec, o: GcraOutcome) -> Decision {
    Decision {
        allowed: o.allowed,
        limit: spec.limit,
        remaining: o.remaining,
        reset: ceil_secs(o.reset),
        retry_after: o.retry_after.map(|w| ceil_secs(w).max(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_n_then_refused_per_bucket() {
        let limits = RateLimits::new();
        let spec = RateSpec::parse("3/minute").expect("spec");
        let remaining: Vec<u32> = (0..3).map(|_| limits.check(spec, "a").remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limits.check(spec, "a");
        assert!(!refused.allowed);
        assert!(
            refused.retry_after.is_some_and(|s| (1..=20).contains(&s)),
            "{refused:?}"
        );
        assert!(
            limits.check(spec, "b").allowed,
            "another identity has its own bucket"
        );
        assert_eq!(limits.buckets(), 2);
    }

    #[test]
    fn redis_outcomes_become_the_same_headers() {
        let spec = RateSpec::parse("100/minute").expect("spec");
        let ok = decision(
            spec,
            GcraOutcome {
                allowed: true,
                remaining: 99,
                reset: Duration::from_millis(600),
                retry_after: None,
            },
        );
        assert_eq!(
            ok,
            Decision {
                allowed: true,
                limit: 100,
                remaining: 99,
                reset: 1,
                retry_after: None
            }
        );
        let refused = decision(
            spec,
            GcraOutcome {
                allowed: false,
                remaining: 0,
                reset: Duration::from_mins(1),
                retry_after: Some(Duration::from_millis(10)),
            },
        );
        assert_eq!(refused.retry_after, Some(1), "never less than a second");
        assert_eq!(refused.reset, 60);
    }

    #[test]
    fn in_process_limits_decide_without_redis() {
        let limits = RateLimits::new();
        assert!(!limits.is_shared());
        let spec = RateSpec::parse("1/minute").expect("spec");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let first = rt.block_on(limits.decide(spec, "a")).expect("decided");
        assert!(first.is_some_and(|d| d.allowed));
        let second = rt.block_on(limits.decide(spec, "a")).expect("decided");
        assert!(second.is_some_and(|d| !d.allowed));
    }
}
