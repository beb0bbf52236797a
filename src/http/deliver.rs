//! The delivery loop: it takes due deliveries from the state store, runs up to
//! `[queue] concurrency` of them at once (`queue::deliver` each), records every outcome
//! durably, and sleeps until the next one is due, a write is queued, or a dead letter is
//! replayed. One loop per gateway; started with the server, it opens the store only once the
//! mappings have a queued route or the store already exists (deliveries accepted before a
//! restart go on where they stopped: a delivery that was running when the process died is
//! simply due again).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::web;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use super::AppState;
use crate::state::{Outcome, QueueStore};

/// Longest sleep between looks at the store (a retry's time may come meanwhile).
const IDLE: Duration = Duration::from_secs(1);

/// Run deliveries for as long as the server runs.
pub async fn run(state: web::Data<AppState>) {
    let running = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    loop {
        let Some(queue) = queue_if_needed(&state) else {
            tokio::select! {
                () = state.delivery_wake.notified() => {}
                () = tokio::time::sleep(IDLE) => {}
            }
            continue;
        };
        let free = state
            .queue
            .concurrency
            .saturating_sub(running.load(Ordering::Relaxed));
        let mut took = 0;
        if free > 0 {
            match queue
                .lease(crate::clock::now_ms(), free, state.queue.lease)
                .await
            {
                Ok(due) => {
                    took = due.len();
                    for d in due {
                        running.fetch_add(1, Ordering::Relaxed);
                        let (state, queue, running) =
                            (state.clone(), Arc::clone(&queue), Arc::clone(&running));
                        tasks.spawn_local(async move {
                            let outcome = super::queue::deliver(&state, &d).await;
                            record(&state, &queue, &d, outcome).await;
                            running.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                }
                Err(e) => error!(error = %e, "due deliveries could not be read"),
            }
        }
        // Reap what finished; then wait for a reason to look again.
        while tasks.try_join_next().is_some() {}
        if took > 0 && took == free {
            // More may be due right away.
            tokio::select! {
                Some(_) = tasks.join_next() => {}
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            continue;
        }
        let wait = match queue.next_due().await {
            Ok(Some(at)) => {
                Duration::from_millis(at.saturating_sub(crate::clock::now_ms())).min(IDLE)
            }
            _ => IDLE,
        };
        tokio::select! {
            () = state.delivery_wake.notified() => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The queue, when there is anything to deliver from it.
fn queue_if_needed(state: &AppState) -> Option<Arc<QueueStore>> {
    if let Some(q) = state.open_queue_store() {
        return Some(q);
    }
    let queued = state
        .catalog()
        .routes
        .iter()
        .any(|r| r.write.as_ref().is_some_and(|w| w.queue.is_some()));
    let exists = state.state_dir.join(crate::state::FILE_NAME).exists();
    if !queued && !exists && state.redis().is_none() {
        return None;
    }
    match state.queue_store() {
        Ok(q) => Some(q),
        Err(e) => {
            error!(error = %e, "the write queue cannot be reached; queued writes wait");
            None
        }
    }
}

/// Record an outcome durably (retrying while the store refuses: the attempt must not be lost
/// from the record; until it is written the delivery stays due).
async fn record(
    state: &AppState,
    queue: &QueueStore,
    d: &crate::state::Delivery,
    outcome: Outcome,
) {
    let label = match &outcome {
        Outcome::Delivered(_) => "delivered",
        Outcome::Retry { .. } => "retried",
        Outcome::Dead { .. } => "dead",
    };
    match &outcome {
        Outcome::Delivered(_) => {
            info!(delivery = %d.id, route = %d.route, attempts = d.tries + 1, "delivered");
        }
        Outcome::Retry {
            category, next_at, ..
        } => warn!(
            delivery = %d.id,
            route = %d.route,
            attempt = d.tries + 1,
            error = %category,
            retry_in_ms = next_at.saturating_sub(crate::clock::now_ms()),
            "delivery failed; will retry"
        ),
        Outcome::Dead { category, detail } => error!(
            delivery = %d.id,
            route = %d.route,
            attempts = d.tries + 1,
            error = %category,
            detail = %detail,
            "delivery failed for good: dead letter"
        ),
    }
    let finished = !matches!(outcome, Outcome::Retry { .. });
    for wait in [0u64, 100, 1000, 5000] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        match queue
            .finish(&d.id, outcome.clone(), crate::clock::now_ms())
            .await
        {
            Ok(()) => {
                state
                    .metrics
                    .delivery(&d.route, label, finished.then_some(d.tries + 1));
                return;
            }
            Err(e) => {
                error!(delivery = %d.id, error = %e, "a delivery's outcome could not be recorded");
            }
        }
    }
}
