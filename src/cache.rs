//! The response cache: per route (`cache = "5s"` in the mapping), keyed by the catalog's
//! generation (a reload never serves what older mappings produced), the route and the values
//! bound to the statement — which include claim-bound values, so callers filtered by
//! their claims never share entries. Concurrent identical requests share one query (request
//! coalescing). Memory is bounded by an entry cap. Errors are never cached.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::codec::BindValue;

/// A finished response body.
#[derive(Debug, Clone)]
pub struct Cached {
    pub body: Arc<[u8]>,
    pub rows: usize,
    /// Strong validator of the body.
    pub etag: String,
    /// The next page's cursor, when there is a next page.
    pub next: Option<Arc<str>>,
    /// An unpaged list that had more rows than `max_rows` and was cut there.
    pub truncated: bool,
    /// `Patina-Invalid-Fields`, when values that did not decode were served by their policy.
    pub invalid: Option<Arc<str>>,
    /// How long the wait for a connection, the statement and the envelope took when this
    /// was made.
    pub acquire_time: Option<Duration>,
    pub db_time: Option<Duration>,
    pub encode_time: Option<Duration>,
    /// A `batch` route's lookup: how many lookups its statement answered (1: alone).
    pub batch: Option<usize>,
}

#[derive(Debug)]
struct Entry {
    created: Instant,
    ttl: Duration,
    cell: OnceCell<Cached>,
}

/// Above this many entries, expired ones are dropped (and all, if that is not enough).
const MAX_ENTRIES: usize = 10_000;

/// How a lookup was answered, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    /// Waited for a query another request started.
    Coalesced,
    Miss,
}

#[derive(Debug, Default)]
pub struct ResponseCache {
    entries: Mutex<HashMap<u64, (String, Arc<Entry>)>>,
}

/// The cache key: the catalog's generation (a reload never serves what the previous mappings
/// produced), the route id and the bound values.
pub fn key(generation: u64, route: &str, binds: &[BindValue]) -> (u64, String) {
    let text = format!("{generation}\u{1f}{route}\u{1f}{binds:?}");
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    (h.finish(), text)
}

impl ResponseCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&self, key: (u64, String), ttl: Duration) -> Arc<Entry> {
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((text, e)) = map.get(&key.0)
            && *text == key.1
            && e.created.elapsed() < e.ttl
        {
            return Arc::clone(e);
        }
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, e)| e.created.elapsed() < e.ttl);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        let e = Arc::new(Entry {
            created: Instant::now(),
            ttl,
            cell: OnceCell::new(),
        });
        map.insert(key.0, (key.1, Arc::clone(&e)));
        e
    }

    /// The cached response for `key`, or the one `fill` produces (shared with every identical
    /// request that arrives meanwhile).
    pub async fn get_or_fill<E, F, Fut>(
        &self,
        key: (u64, String),
        ttl: Duration,
        fill: F,
    ) -> Result<(Cached, Outcome), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Cached, E>>,
    {
        let entry = self.entry(key, ttl);
        if let Some(c) = entry.cell.get() {
            return Ok((c.clone(), Outcome::Hit));
        }
        let mut ran = false;
        let result = entry
            .cell
            .get_or_try_init(|| {
                ran = true;
                fill()
            })
            .await;
        result.map(|c| {
            (
                c.clone(),
                if ran {
                    Outcome::Miss
                } else {
                    Outcome::Coalesced
                },
            )
        })
    }

    /// Drop every entry (the mappings were reloaded: nothing cached can be served again).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A cached response with this body and row count, and no timings.
    fn cached(body: &[u8], rows: usize) -> Cached {
        Cached {
            body: Arc::from(body),
            rows,
            etag: String::new(),
            next: None,
            truncated: false,
            invalid: None,
            acquire_time: None,
            db_time: None,
            encode_time: None,
            batch: None,
        }
    }

    #[tokio::test]
    async fn concurrent_identical_requests_share_one_fill() {
        let cache = Arc::new(ResponseCache::new());
        let fills = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let cache = Arc::clone(&cache);
            let fills = Arc::clone(&fills);
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fill(
                        key(1, "r", &[BindValue::Int(1)]),
                        Duration::from_secs(5),
                        || async {
                            fills.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok::<_, ()>(cached(b"x", 1))
                        },
                    )
                    .await
            }));
        }
        for t in tasks {
            assert!(t.await.expect("task").is_ok());
        }
        assert_eq!(fills.load(Ordering::SeqCst), 1);
        let (_, o) = cache
            .get_or_fill(
                key(1, "r", &[BindValue::Int(1)]),
                Duration::from_secs(5),
                || async { Err::<Cached, ()>(()) },
            )
            .await
            .expect("hit");
        assert_eq!(o, Outcome::Hit);
    }

    #[tokio::test]
    async fn errors_are_not_cached_and_entries_expire() {
        let cache = ResponseCache::new();
        let k = || key(1, "r", &[BindValue::Text("a".into())]);
        let e = cache
            .get_or_fill(k(), Duration::from_millis(30), || async {
                Err::<Cached, &str>("down")
            })
            .await;
        assert!(e.is_err());
        let (_, o) = cache
            .get_or_fill(k(), Duration::from_millis(30), || async {
                Ok::<_, ()>(cached(b"y", 0))
            })
            .await
            .expect("filled");
        assert_eq!(o, Outcome::Miss);
        tokio::time::sleep(Duration::from_millis(40)).await;
        let (_, o) = cache
            .get_or_fill(k(), Duration::from_millis(30), || async {
                Ok::<_, ()>(cached(b"z", 0))
            })
            .await
            .expect("refilled");
        assert_eq!(o, Outcome::Miss, "expired");
    }

    #[tokio::test]
    async fn another_catalog_generation_never_hits() {
        let cache = ResponseCache::new();
        let fill = |body: &'static [u8]| move || async move { Ok::<_, ()>(cached(body, 1)) };
        let ttl = Duration::from_mins(1);
        let (c, _) = cache
            .get_or_fill(key(1, "r", &[BindValue::Int(1)]), ttl, fill(b"old"))
            .await
            .expect("filled");
        assert_eq!(&*c.body, b"old");
        let (c, o) = cache
            .get_or_fill(key(2, "r", &[BindValue::Int(1)]), ttl, fill(b"new"))
            .await
            .expect("filled");
        assert_eq!((&*c.body, o), (&b"new"[..], Outcome::Miss));
        cache.clear();
        assert!(cache.is_empty());
    }
}
