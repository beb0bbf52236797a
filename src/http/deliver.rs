//! The delivery loop: it takes due deliveries from the state store, runs up to
//! `[queue] concurrency` of them at once (`queue::deliver` each), records every outcome
//! durably, and sleeps until the next one is due, a write is queued, or a dead letter is
//! replayed. One loop per gateway; started with the server, it opens the store only once the
//! mappings have a queued route or the store already exists (deliveries accepted before a
//! restart go on where they stopped: a delivery that was running when the process died is
//! simply due again).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use super::AppState;
use crate::state::{Outcome, Store};

/// Longest sleep between looks at the store (a retry's time may come meanwhile).
const IDLE: Duration = Duration::from_secs(1);

/// Run deliveries for as long as the server runs.
pub async fn run(state: web::Data<AppState>) {
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tasks = JoinSet::new();
    loop {
        let Some(store) = store_if_needed(&state) else {
            tokio::select! {
                () = state.delivery_wake.notified() => {}
                () = tokio::time::sleep(IDLE) => {}
            }
            continue;
        };
        let free = state
            .queue
            .concurrency
            .saturating_sub(running.lock().map_or(0, |r| r.len()));
        let mut took = 0;
        if free > 0 {
            let (s, r) = (Arc::clone(&store), Arc::clone(&running));
            let due = web::block(move || {
                s.due(crate::clock::now_ms(), free, &|id| {
                    r.lock().is_ok_and(|r| r.contains(id))
                })
            })
            .await;
            match due {
                Ok(Ok(due)) => {
                    took = due.len();
                    for d in due {
                        if let Ok(mut r) = running.lock() {
                            r.insert(d.id.clone());
                        }
                        let (state, store, running) =
                            (state.clone(), Arc::clone(&store), Arc::clone(&running));
                        tasks.spawn_local(async move {
                            let outcome = super::queue::deliver(&state, &d).await;
                            record(&state, &store, &d, outcome).await;
                            if let Ok(mut r) = running.lock() {
                                r.remove(&d.id);
                            }
                        });
                    }
                }
                Ok(Err(e)) => error!(error = %e, "due deliveries could not be read"),
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
        let wait = next_wait(&store).await;
        tokio::select! {
            () = state.delivery_wake.notified() => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The store, when there is anything to deliver from it.
fn store_if_needed(state: &AppState) -> Option<Arc<Store>> {
    if let Some(s) = state.open_store() {
        return Some(s);
    }
    let queued = state
        .catalog()
        .routes
        .iter()
        .any(|r| r.write.as_ref().is_some_and(|w| w.queue.is_some()));
    let exists = state.state_dir.join(crate::state::FILE_NAME).exists();
    if !queued && !exists {
        return None;
    }
    match state.store() {
        Ok(s) => Some(s),
        Err(e) => {
            error!(error = %e, "the state store cannot be opened; queued writes wait");
            None
        }
    }
}

/// How long until the soonest retry is due (at most [`IDLE`]).
async fn next_wait(store: &Arc<Store>) -> Duration {
    let s = Arc::clone(store);
    match web::block(move || s.next_due()).await {
        Ok(Ok(Some(at))) => {
            Duration::from_millis(at.saturating_sub(crate::clock::now_ms())).min(IDLE)
        }
        _ => IDLE,
    }
}

/// Record an outcome durably (retrying while the store refuses: the attempt must not be lost
/// from the record, and the delivery stays due until it is written).
async fn record(
    state: &AppState,
    store: &Arc<Store>,
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
        let (s, id, o) = (Arc::clone(store), d.id.clone(), outcome.clone());
        match web::block(move || s.finish(&id, o)).await {
            Ok(Ok(())) => {
                state
                    .metrics
                    .delivery(&d.route, label, finished.then_some(d.tries + 1));
                return;
            }
            Ok(Err(e)) => {
                error!(delivery = %d.id, error = %e, "a delivery's outcome could not be recorded");
            }
            Err(e) => {
                error!(delivery = %d.id, error = %e, "a delivery's outcome could not be recorded");
            }
        }
    }
}
