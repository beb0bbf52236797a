//! Rate limits per identity: GCRA buckets (governor) keyed by token subject, API key id or
//! client address, one limiter per distinct quota. Memory stays bounded: idle buckets are
//! dropped as the key count grows. Produces the numbers for `RateLimit-*` and `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::RateSpec;

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
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl RateLimits {
    pub fn new() -> Self {
        Self::default()
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

    /// Keys currently held, across limiters (for tests and metrics).
    pub fn buckets(&self) -> usize {
        self.limiters
            .lock()
            .map_or(0, |m| m.values().map(|l| l.len()).sum())
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
}
