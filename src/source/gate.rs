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
    waiting: Arc<AtomicUsize>,
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
            waiting: Arc::new(AtomicUsize::new(0)),
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

    /// A turn for lookups that already hold their places in the queue (a batch's lane), by
    /// `deadline`, the oldest one's acquire timeout: no place of its own is taken, so waiters
    /// that filled the queue are not refused for it.
    pub async fn enter_held(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, SourceError> {
        self.breaker.check()?;
        if let Ok(p) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(p);
        }
        match tokio::time::timeout_at(deadline.into(), Arc::clone(&self.permits).acquire_owned())
            .await
        {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(SourceError::Closed),
            Err(_) => Err(SourceError::Busy(self.acquire_timeout)),
        }
    }

    /// A turn now, or none: `Ok(None)` when every connection is busy; the breaker is asked
    /// only once a turn was free (so a refused try leaves no probe behind).
    pub fn try_enter(&self) -> Result<Option<OwnedSemaphorePermit>, SourceError> {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(p) => self.breaker.check().map(|()| Some(p)),
            Err(_) => Ok(None),
        }
    }

    /// A place in the wait queue held by a lookup waiting for its batch (given back on
    /// drop); `None` when the queue is full.
    pub fn hold_place(&self) -> Option<Place> {
        Place::take(&self.waiting, self.max_waiting)
    }

    /// A turn without the breaker (describing statements for `check --db`).
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, SourceError> {
        if let Ok(p) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(p);
        }
        // A bounded queue: beyond it, fail at once rather than pile up. The place in the queue
        // is given back however the wait ends, also when the caller stops waiting.
        let Some(_place) = Place::take(&self.waiting, self.max_waiting) else {
            return Err(SourceError::QueueFull);
        };
        match tokio::time::timeout(
            self.acquire_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(SourceError::Closed),
            Err(_) => Err(SourceError::Busy(self.acquire_timeout)),
        }
    }

    /// Tell the breaker how a statement went. Only an unreachable database counts against
    /// it, and only an answer from the database (rows, or an error of its own) closes it:
    /// a busy pool or a timeout says nothing either way.
    pub fn report<T>(&self, result: &Result<T, SourceError>) {
        match result {
            Err(SourceError::Unavailable(_)) => self.breaker.failure(&self.name),
            Ok(_)
            | Err(
                SourceError::Query(_)
                | SourceError::Decode(_)
                | SourceError::OutOfRange { .. }
                | SourceError::BadValue(_)
                | SourceError::Conflict(_)
                | SourceError::Constraint(_)
                | SourceError::Deadlock(_)
                | SourceError::Stopped,
            ) => {
                self.breaker.success(&self.name);
            }
            Err(_) => self.breaker.neutral(),
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

/// One place in the wait queue, given back on drop (by a request waiting for a connection, or
/// by a lookup waiting for its batch).
#[derive(Debug)]
pub struct Place(Arc<AtomicUsize>);

impl Place {
    fn take(waiting: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        if waiting.fetch_add(1, Ordering::Relaxed) >= max {
            waiting.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Place(Arc::clone(waiting)))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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
    /// A probe was let through and has not reported yet.
    probing: bool,
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
            // The cooldown is over: this request probes; the others keep failing fast until
            // it reports (or until another cooldown passes, if it never does).
            Some(_) => {
                s.open_until = Some(Instant::now() + s.cooldown);
                s.probing = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// A result that says nothing about the database's health: a probe that ended so lets
    /// the next request probe.
    fn neutral(&self) {
        let mut s = self.lock();
        if s.probing {
            s.probing = false;
            s.open_until = Some(Instant::now());
        }
    }

    fn success(&self, name: &str) {
        let mut s = self.lock();
        if s.open_until.is_some() {
            info!(source = %name, "circuit closed: the source answers again");
        }
        s.failures = 0;
        s.open_until = None;
        s.probing = false;
        s.cooldown = self.base;
    }

    fn failure(&self, name: &str) {
        let mut s = self.lock();
        s.failures += 1;
        let reopen = if s.open_until.is_some() {
            // Open already: only the probe's failure lengthens the cooldown; requests that
            // were in flight when it opened change nothing.
            if !s.probing {
                return;
            }
            s.probing = false;
            s.cooldown = (s.cooldown * 2).min(Duration::from_mins(1));
            true
        } else {
            s.failures >= self.threshold
        };
        if reopen {
            // Jitter spreads the probes of many replicas.
            let jitter = s.cooldown.mul_f64(rand::random::<f64>() * 0.2);
            let wait = s.cooldown + jitter;
            if s.open_until.is_none() {
                warn!(source = %name, failures = s.failures, "circuit open: failing fast for {wait:?}");
            }
            s.open_until = Some(Instant::now() + wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_only_the_probe_lengthens_the_cooldown() {
        let b = Breaker::new(3, Duration::from_millis(50));
        for _ in 0..2 {
            b.failure("s");
        }
        assert!(b.check().is_ok(), "below the threshold");
        b.failure("s");
        assert!(matches!(b.check(), Err(SourceError::CircuitOpen(_))));
        // Failures of requests that were in flight when it opened.
        for _ in 0..10 {
            b.failure("s");
        }
        assert_eq!(b.lock().cooldown, Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(70));
        assert!(b.check().is_ok(), "the probe goes through");
        assert!(
            matches!(b.check(), Err(SourceError::CircuitOpen(_))),
            "one probe at a time"
        );
        b.failure("s");
        assert_eq!(b.lock().cooldown, Duration::from_millis(100));
        std::thread::sleep(Duration::from_millis(130));
        assert!(b.check().is_ok());
        b.success("s");
        assert!(b.check().is_ok());
        assert_eq!(b.lock().cooldown, Duration::from_millis(50));
    }

    #[test]
    fn a_neutral_probe_lets_the_next_request_probe() {
        let b = Breaker::new(1, Duration::from_millis(30));
        b.failure("s");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.check().is_ok());
        b.neutral();
        assert!(
            b.check().is_ok(),
            "the busy probe did not block the next one"
        );
    }

    #[test]
    fn a_place_in_the_queue_is_given_back_when_dropped() {
        let waiting = Arc::new(AtomicUsize::new(0));
        let a = Place::take(&waiting, 2).expect("first");
        let b = Place::take(&waiting, 2).expect("second");
        assert!(Place::take(&waiting, 2).is_none(), "the queue is full");
        drop(a);
        assert!(Place::take(&waiting, 2).is_some());
        drop(b);
        assert_eq!(waiting.load(Ordering::Relaxed), 0);
    }
}
