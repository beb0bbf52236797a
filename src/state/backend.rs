//! The write queue behind one face, whichever backend keeps it: the embedded store (one
//! gateway: its calls run on a blocking thread, and the deliveries this process is running
//! are remembered here, so none is taken twice) or Redis (several replicas: deliveries are
//! leased, and a lease that runs out makes its delivery due again for any replica). The HTTP
//! side, the delivery loop and `patina dlq` call only this.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    Accept, Accepted, Claim, Delivery, Fingerprint, Outcome, QueueStats, Store, StoreError,
    StoredResponse,
};

/// Why a queue call failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Redis(#[from] super::redis::RedisStateError),
    #[error("a state store call did not finish: {0}")]
    Join(String),
}

/// The write queue.
#[derive(Debug)]
pub enum QueueStore {
    Embedded(Embedded),
    Redis(Box<super::redis::queue::RedisQueue>),
}

/// The embedded store, and the deliveries this process has taken and not finished.
#[derive(Debug)]
pub struct Embedded {
    store: Arc<Store>,
    running: Arc<Mutex<HashSet<String>>>,
}

/// Run a store call on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, QueueError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| QueueError::Join(e.to_string()))?
        .map_err(QueueError::Store)
}

impl QueueStore {
    pub fn embedded(store: Arc<Store>) -> QueueStore {
        QueueStore::Embedded(Embedded {
            store,
            running: Arc::default(),
        })
    }

    /// Which backend keeps the queue (for `/healthz` and logs).
    pub fn redis(queue: super::redis::RedisQueue) -> QueueStore {
        QueueStore::Redis(Box::new(queue))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            QueueStore::Embedded(_) => "embedded",
            QueueStore::Redis(_) => "redis",
        }
    }

    pub async fn accept(&self, a: Accept) -> Result<Accepted, QueueError> {
        match self {
            QueueStore::Embedded(e) => {
                let s = Arc::clone(&e.store);
                blocking(move || s.accept(a)).await
            }
            QueueStore::Redis(r) => Ok(r.accept(a).await?),
        }
    }

    /// Take up to `limit` due deliveries for this process to run; none of them is handed out
    /// again until it is finished (or, on Redis, until `lease` runs out).
    pub async fn lease(
        &self,
        now: u64,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        match self {
            QueueStore::Embedded(e) => {
                let (s, running) = (Arc::clone(&e.store), Arc::clone(&e.running));
                blocking(move || {
                    let due = s.due(now, limit, &|id| {
                        running.lock().is_ok_and(|r| r.contains(id))
                    })?;
                    if let Ok(mut r) = running.lock() {
                        r.extend(due.iter().map(|d| d.id.clone()));
                    }
                    Ok(due)
                })
                .await
            }
            QueueStore::Redis(r) => Ok(r.lease(now, limit, lease).await?),
        }
    }

    /// Record how an attempt ended, and end its lease.
    pub async fn finish(&self, id: &str, outcome: Outcome, at: u64) -> Result<(), QueueError> {
        match self {
            QueueStore::Embedded(e) => {
                let (s, running, id) =
                    (Arc::clone(&e.store), Arc::clone(&e.running), id.to_string());
                blocking(move || {
                    let done = s.finish_at(&id, outcome, at);
                    // Written or not, this process no longer runs it: an unrecorded outcome
                    // leaves it due, to run again (the dedup table keeps that harmless).
                    if let Ok(mut r) = running.lock() {
                        r.remove(&id);
                    }
                    done
                })
                .await
            }
            QueueStore::Redis(r) => Ok(r.finish(id, outcome, at).await?),
        }
    }

    pub async fn next_due(&self) -> Result<Option<u64>, QueueError> {
        match self {
            QueueStore::Embedded(e) => {
                let s = Arc::clone(&e.store);
                blocking(move || s.next_due()).await
            }
            QueueStore::Redis(r) => Ok(r.next_due().await?),
        }
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<Delivery>, QueueError> {
        match self {
            QueueStore::Embedded(e) => {
                let (s, id) = (Arc::clone(&e.store), id.to_string());
                blocking(move || s.delivery(&id)).await
            }
            QueueStore::Redis(r) => Ok(r.delivery(id).await?),
        }
    }

    pub async fn dead_letters(
        &self,
        route: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, QueueError> {
        match self {
            QueueStore::Embedded(e) => {
                let (s, route) = (Arc::clone(&e.store), route.map(str::to_string));
                blocking(move || s.dead_letters(route.as_deref(), limit)).await
            }
            QueueStore::Redis(r) => Ok(r.dead_letters(route, limit).await?),
        }
    }

    pub async fn replay(&self, ids: &[String], generation: u64) -> Result<Vec<String>, QueueError> {
        match self {
            QueueStore::Embedded(e) => {
                let (s, ids) = (Arc::clone(&e.store), ids.to_vec());
                blocking(move || s.replay(&ids, generation)).await
            }
            QueueStore::Redis(r) => Ok(r.replay(ids, generation).await?),
        }
    }

    pub async fn replay_route(
        &self,
        route: &str,
        generation: u64,
    ) -> Result<Vec<String>, QueueError> {
        match self {
            QueueStore::Embedded(e) => {
                let (s, route) = (Arc::clone(&e.store), route.to_string());
                blocking(move || s.replay_route(&route, generation)).await
            }
            QueueStore::Redis(r) => Ok(r.replay_route(route, generation).await?),
        }
    }

    pub async fn drop_dead(&self, ids: &[String]) -> Result<Vec<String>, QueueError> {
        match self {
            QueueStore::Embedded(e) => {
                let (s, ids) = (Arc::clone(&e.store), ids.to_vec());
                blocking(move || s.drop_dead(&ids)).await
            }
            QueueStore::Redis(r) => Ok(r.drop_dead(ids).await?),
        }
    }

    pub async fn queue_stats(&self) -> Result<QueueStats, QueueError> {
        match self {
            QueueStore::Embedded(e) => {
                let s = Arc::clone(&e.store);
                blocking(move || s.queue_stats()).await
            }
            QueueStore::Redis(r) => Ok(r.queue_stats().await?),
        }
    }

    pub async fn purge_delivered(&self, keep: Duration) -> Result<usize, QueueError> {
        match self {
            QueueStore::Embedded(e) => {
                let s = Arc::clone(&e.store);
                blocking(move || s.purge_delivered(keep)).await
            }
            QueueStore::Redis(r) => Ok(r.purge_delivered(keep).await?),
        }
    }
}

/// The `Idempotency-Key` records of direct writes, whichever backend keeps them.
#[derive(Debug)]
pub enum Keys {
    Embedded(Arc<Store>),
    Redis(super::redis::RedisIdempotency),
}

impl Keys {
    pub async fn claim(
        &self,
        key: &str,
        fingerprint: Fingerprint,
        lease: Duration,
        ttl: Duration,
    ) -> Result<Claim, QueueError> {
        match self {
            Keys::Embedded(s) => {
                let (s, key) = (Arc::clone(s), key.to_string());
                blocking(move || s.claim(&key, &fingerprint, lease, ttl)).await
            }
            Keys::Redis(r) => Ok(r.claim(key, &fingerprint, lease, ttl).await?),
        }
    }

    pub async fn complete(
        &self,
        key: &str,
        fingerprint: Fingerprint,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<(), QueueError> {
        match self {
            Keys::Embedded(s) => {
                let (s, key) = (Arc::clone(s), key.to_string());
                blocking(move || s.complete(&key, &fingerprint, &response, ttl)).await
            }
            Keys::Redis(r) => Ok(r.complete(key, &fingerprint, &response, ttl).await?),
        }
    }

    pub async fn release(&self, key: &str, fingerprint: Fingerprint) -> Result<(), QueueError> {
        match self {
            Keys::Embedded(s) => {
                let (s, key) = (Arc::clone(s), key.to_string());
                blocking(move || s.release(&key, &fingerprint)).await
            }
            Keys::Redis(r) => Ok(r.release(key, &fingerprint).await?),
        }
    }
}
