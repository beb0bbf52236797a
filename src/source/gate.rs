//! Admission in front of a source, shared by every kind: a cap on statements running at once
//! (with the acquire timeout), a bounded queue of waiters beyond it, and a circuit breaker that
//! fails fast while the database is unreachable. Knows nothing about drivers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use super::SourceError;
use crate::config::SourceConfig;

/// The admission state of one source.
#[derive(Debug)]
pub struct Gate {
    name: String,
    size: usize,
    max_waiting: usize,
    acquire_timeout: Duration,
    waiting: AtomicUsize,
    permits: Arc<Semaphore>,
    breaker: Breaker,
}

impl Gate {
    pub fn new(cfg: &SourceConfig) -> Self {
        Self {
            name: cfg.name.clone(),
            size: cfg.max_concurrent,
            max_waiting: cfg.max_waiting,
            acquire_timeout: cfg.acquire_timeout,
            waiting: AtomicUsize::new(0),
            permits: Arc::new(Semaphore::new(cfg.max_concurrent)),
            breaker: Breaker::new(cfg.breaker_failures, cfg.breaker_cooldown),
        }
    }

    pub fn acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }

    /// Wait for a turn to run a statement: refused at once while the breaker is open or the
    /// queue is full, refused with [`SourceError::Busy`] after the acquire timeout.
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, SourceError> {
        self.breaker.check()?;
        self.acquire().await
    }

    /// A turn without the breaker (describing statements for `check --db`).
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, SourceError> {
        if let Ok(p) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(p);
        }
        // A bounded queue: beyond it, fail at once rather than pile up.
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(SourceError::QueueFull);
        }
        let waited = tokio::time::timeout(
            self.acquire_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        match waited {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(SourceError::Closed),
            Err(_) => Err(SourceError::Busy(self.acquire_timeout)),
        }
    }

    /// Tell the breaker how a statement went: only an unreachable database counts against it.
    pub fn report<T>(&self, result: &Result<T, SourceError>) {
        match result {
            Err(SourceError::Unavailable(_)) => self.breaker.failure(&self.name),
            _ => self.breaker.success(&self.name),
        }
    }

    pub fn stats(&self) -> crate::metrics::PoolStats {
        crate::metrics::PoolStats {
            size: self.size,
            in_use: self.size.saturating_sub(self.permits.available_permits()),
            waiting: self.waiting.load(Ordering::Relaxed),
            breaker_open: self.breaker.is_open(),
        }
    }
}

/// Fails fast after repeated connection failures, then lets one request probe.
#[derive(Debug)]
struct Breaker {
    threshold: u32,
    base: Duration,
    state: Mutex<BreakerState>,
}

#[derive(Debug, Default)]
struct BreakerState {
    failures: u32,
    open_until: Option<Instant>,
    cooldown: Duration,
}

impl Breaker {
    fn new(threshold: u32, base: Duration) -> Self {
        Self {
            threshold,
            base,
            state: Mutex::new(BreakerState {
                cooldown: base,
                ..BreakerState::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_open(&self) -> bool {
        self.lock().open_until.is_some()
    }

    /// Refuse while open; once the cooldown is over, let one request through as a probe
    /// (the others keep failing fast until it reports).
    fn check(&self) -> Result<(), SourceError> {
        let mut s = self.lock();
        match s.open_until {
            Some(until) if Instant::now() < until => {
                Err(SourceError::CircuitOpen(until - Instant::now()))
            }
            Some(_) => {
                s.open_until = Some(Instant::now() + s.cooldown);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn success(&self, name: &str) {
        let mut s = self.lock();
        if s.open_until.is_some() {
            info!(source = %name, "circuit closed: the source answers again");
        }
        s.failures = 0;
        s.open_until = None;
        s.cooldown = self.base;
    }

    fn failure(&self, name: &str) {
        let mut s = self.lock();
        s.failures += 1;
        if s.failures >= self.threshold {
            // Jitter spreads the probes of many replicas.
            let jitter = s.cooldown.mul_f64(rand::random::<f64>() * 0.2);
            let wait = s.cooldown + jitter;
            if s.open_until.is_none() {
                warn!(source = %name, failures = s.failures, "circuit open: failing fast for {wait:?}");
            }
            s.open_until = Some(Instant::now() + wait);
            s.cooldown = (s.cooldown * 2).min(Duration::from_mins(1));
        }
    }
}
