//! Prometheus metrics, kept in memory and rendered as text on `/metrics`: requests by route and
//! status, latency histograms by route, statement latency by source, pool occupancy,
//! rate-limit rejections, reload outcomes, the write queue (depth, oldest pending, deliveries
//! by outcome, attempts, dead letters). Owns no HTTP; callers record, `/metrics` renders.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Most route/client pairs kept for calls to deprecated routes.
const DEPRECATED_SERIES: usize = 1000;

/// Bucket bounds of the number of lookups in one batched statement.
const BATCH_BUCKETS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// Bucket bounds of attempts per finished delivery.
const ATTEMPT_BUCKETS: [u64; 7] = [1, 2, 3, 5, 8, 13, 21];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{b}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// A histogram of whole numbers (attempts, lookups per statement) over fixed bounds.
#[derive(Debug)]
struct Counted<const N: usize> {
    counts: [u64; N],
    sum: u64,
    count: u64,
}

impl<const N: usize> Default for Counted<N> {
    fn default() -> Self {
        Self {
            counts: [0; N],
            sum: 0,
            count: 0,
        }
    }
}

impl<const N: usize> Counted<N> {
    fn observe(&mut self, bounds: &[u64; N], n: u64) {
        for (c, b) in self.counts.iter_mut().zip(bounds) {
            if n <= *b {
                *c += 1;
            }
        }
        self.sum += n;
        self.count += 1;
    }

    /// The series of `name`, with `labels` (`key="value"` pairs, or none) on each.
    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[u64; N]) {
        let (each, own) = if labels.is_empty() {
            (String::new(), String::new())
        } else {
            (format!("{labels},"), format!("{{{labels}}}"))
        };
        for (c, b) in self.counts.iter().zip(bounds) {
            let _ = writeln!(out, "{name}_bucket{{{each}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{each}le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{own} {}", self.sum);
        let _ = writeln!(out, "{name}_count{own} {}", self.count);
    }
}

/// All counters of the process.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    writes: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Shadow comparisons by route and result (`equal`, `different`, `error`, `skipped`).
    shadow: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Shadow statements' time, by route.
    shadow_latency: Mutex<BTreeMap<String, Histogram>>,
    /// Calls to deprecated routes by route and client identity.
    deprecated: Mutex<BTreeMap<(String, String), u64>>,
    undecodable: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    deliveries: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Attempts per finished delivery: counts per bucket of [`ATTEMPT_BUCKETS`], sum, count.
    attempts: Mutex<Counted<{ ATTEMPT_BUCKETS.len() }>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Per `batch` route, requests by the size of the statement they ran in: counts per
    /// bucket of [`BATCH_BUCKETS`], sum, count.
    batches: Mutex<BTreeMap<String, Counted<{ BATCH_BUCKETS.len() }>>>,
    queries: Mutex<BTreeMap<String, Histogram>>,
    pub rate_limited: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    cache_coalesced: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
}

/// A source's pool, as `/metrics` reports it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    pub size: usize,
    pub in_use: usize,
    pub waiting: usize,
    pub breaker_open: bool,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_string(), status)).or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            m.entry(route.to_string()).or_default().observe(seconds);
        }
    }

    /// A shadow comparison's result, and how long the shadow statement took.
    pub fn shadow(&self, route: &str, result: &'static str, seconds: Option<f64>) {
        if let Ok(mut m) = self.shadow.lock() {
            *m.entry((route.to_string(), result)).or_default() += 1;
        }
        if let Some(s) = seconds
            && let Ok(mut m) = self.shadow_latency.lock()
        {
            m.entry(route.to_string()).or_default().observe(s);
        }
    }

    /// A call to a deprecated route by `client` (its identity label). Past
    /// [`DEPRECATED_SERIES`] route/client pairs, new clients are counted as `other`.
    pub fn deprecated_call(&self, route: &str, client: &str) {
        if let Ok(mut m) = self.deprecated.lock() {
            let key = (route.to_string(), client.to_string());
            if m.len() >= DEPRECATED_SERIES && !m.contains_key(&key) {
                *m.entry((route.to_string(), "other".into())).or_default() += 1;
            } else {
                *m.entry(key).or_default() += 1;
            }
        }
    }

    /// Stored values of `field` that did not decode, served by `policy` (`error`, `null`, `raw`).
    pub fn undecodable(&self, route: &str, field: &str, policy: &'static str, n: usize) {
        if let Ok(mut m) = self.undecodable.lock() {
            *m.entry((route.to_string(), field.to_string(), policy))
                .or_default() += n as u64;
        }
    }

    /// A write's outcome: `written`, `replayed`, `refused` (4xx) or `failed` (5xx).
    pub fn write(&self, route: &str, outcome: &'static str) {
        if let Ok(mut m) = self.writes.lock() {
            *m.entry((route.to_string(), outcome)).or_default() += 1;
        }
    }

    /// A delivery attempt's outcome (`delivered`, `retried`, `dead`); `attempts` when it was
    /// the last one.
    pub fn delivery(&self, route: &str, outcome: &'static str, attempts: Option<u32>) {
        if let Ok(mut m) = self.deliveries.lock() {
            *m.entry((route.to_string(), outcome)).or_default() += 1;
        }
        if let Some(n) = attempts
            && let Ok(mut h) = self.attempts.lock()
        {
            h.observe(&ATTEMPT_BUCKETS, u64::from(n));
        }
    }

    /// The write queue's figures, read from the store at render time (`None` when no store
    /// is open: nothing was ever queued).
    pub fn render_queue(
        &self,
        out: &mut String,
        stats: Option<&crate::state::QueueStats>,
        capacity: usize,
        now_ms: u64,
    ) {
        let gauge = |out: &mut String, name: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        };
        gauge(
            out,
            "patina_queue_capacity",
            "Most deliveries the write queue holds.",
        );
        let _ = writeln!(out, "patina_queue_capacity {capacity}");
        gauge(
            out,
            "patina_queue_pending_total",
            "Deliveries waiting, all routes.",
        );
        let _ = writeln!(
            out,
            "patina_queue_pending_total {}",
            stats.map_or(0, |s| s.pending)
        );
        gauge(out, "patina_queue_depth", "Deliveries waiting, by route.");
        let routes = stats.map(|s| &s.routes);
        for (route, r) in routes.into_iter().flatten() {
            let _ = writeln!(
                out,
                "patina_queue_depth{{route=\"{}\"}} {}",
                escape(route),
                r.pending
            );
        }
        gauge(
            out,
            "patina_queue_oldest_pending_seconds",
            "Age of the oldest waiting delivery, by route.",
        );
        for (route, r) in routes.into_iter().flatten() {
            let age = r
                .oldest_accepted_at
                .map_or(0, |at| now_ms.saturating_sub(at) / 1000);
            let _ = writeln!(
                out,
                "patina_queue_oldest_pending_seconds{{route=\"{}\"}} {age}",
                escape(route)
            );
        }
        gauge(out, "patina_dead_letters", "Dead letters kept, by route.");
        for (route, r) in routes.into_iter().flatten() {
            let _ = writeln!(
                out,
                "patina_dead_letters{{route=\"{}\"}} {}",
                escape(route),
                r.dead
            );
        }
        out.push_str(
            "# HELP patina_deliveries_total Delivery attempts, by route and outcome (delivered, retried, dead).\n\
             # TYPE patina_deliveries_total counter\n",
        );
        if let Ok(m) = self.deliveries.lock() {
            for ((route, outcome), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "patina_deliveries_total{{route=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape(route)
                );
            }
        }
        out.push_str(
            "# HELP patina_delivery_attempts Attempts a finished delivery took.\n\
             # TYPE patina_delivery_attempts histogram\n",
        );
        if let Ok(h) = self.attempts.lock() {
            h.render(out, "patina_delivery_attempts", "", &ATTEMPT_BUCKETS);
        }
    }

    pub fn cache(&self, outcome: crate::cache::Outcome) {
        let c = match outcome {
            crate::cache::Outcome::Hit => &self.cache_hits,
            crate::cache::Outcome::Miss => &self.cache_misses,
            crate::cache::Outcome::Coalesced => &self.cache_coalesced,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A lookup of a `batch` route ran in a statement with `size` lookups (1: alone).
    pub fn batch(&self, route: &str, size: usize) {
        if let Ok(mut m) = self.batches.lock() {
            m.entry(route.to_string())
                .or_default()
                .observe(&BATCH_BUCKETS, size as u64);
        }
    }

    pub fn query(&self, source: &str, seconds: f64) {
        if let Ok(mut m) = self.queries.lock() {
            m.entry(source.to_string()).or_default().observe(seconds);
        }
    }

    /// The text exposition format. `pools` and `breakers` are read at render time.
    pub fn render(&self, pools: &[(String, PoolStats)], routes: usize) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP patina_requests_total Requests served, by route and status.\n");
        out.push_str("# TYPE patina_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "patina_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        out.push_str(
            "# HELP patina_writes_total Write requests, by route and outcome (written, replayed, refused, failed).\n",
        );
        out.push_str("# TYPE patina_writes_total counter\n");
        if let Ok(m) = self.writes.lock() {
            for ((route, outcome), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "patina_writes_total{{route=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape(route)
                );
            }
        }
        out.push_str(
            "# HELP patina_shadow_comparisons_total Shadow answers compared with the served one, by route and result (equal, different, error, skipped).\n",
        );
        out.push_str("# TYPE patina_shadow_comparisons_total counter\n");
        if let Ok(m) = self.shadow.lock() {
            for ((route, result), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "patina_shadow_comparisons_total{{route=\"{}\",result=\"{result}\"}} {n}",
                    escape(route)
                );
            }
        }
        out.push_str(
            "# HELP patina_shadow_duration_seconds Time of the shadow statement, by route (beside patina_request_duration_seconds).\n",
        );
        out.push_str("# TYPE patina_shadow_duration_seconds histogram\n");
        if let Ok(m) = self.shadow_latency.lock() {
            for (route, h) in m.iter() {
                h.render(
                    &mut out,
                    "patina_shadow_duration_seconds",
                    &format!("route=\"{}\"", escape(route)),
                );
            }
        }
        out.push_str(
            "# HELP patina_deprecated_requests_total Calls to deprecated routes, by route and client identity (sub:, key:, anonymous).\n",
        );
        out.push_str("# TYPE patina_deprecated_requests_total counter\n");
        if let Ok(m) = self.deprecated.lock() {
            for ((route, client), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "patina_deprecated_requests_total{{route=\"{}\",client=\"{}\"}} {n}",
                    escape(route),
                    escape(client)
                );
            }
        }
        out.push_str(
            "# HELP patina_undecodable_values_total Stored values a column's codec could not decode, by route, field and on_invalid policy.\n",
        );
        out.push_str("# TYPE patina_undecodable_values_total counter\n");
        if let Ok(m) = self.undecodable.lock() {
            for ((route, field, policy), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "patina_undecodable_values_total{{route=\"{}\",field=\"{}\",policy=\"{policy}\"}} {n}",
                    escape(route),
                    escape(field)
                );
            }
        }
        out.push_str("# HELP patina_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE patina_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for (route, h) in m.iter() {
                h.render(
                    &mut out,
                    "patina_request_duration_seconds",
                    &format!("route=\"{}\"", escape(route)),
                );
            }
        }
        out.push_str(
            "# HELP patina_batch_size Lookups of a batch route by the number of lookups in the statement they ran in (1: alone).\n",
        );
        out.push_str("# TYPE patina_batch_size histogram\n");
        if let Ok(m) = self.batches.lock() {
            for (route, sizes) in m.iter() {
                let labels = format!("route=\"{}\"", escape(route));
                sizes.render(&mut out, "patina_batch_size", &labels, &BATCH_BUCKETS);
            }
        }
        out.push_str(
            "# HELP patina_query_duration_seconds Statement time including the wait for a connection, by source.\n",
        );
        out.push_str("# TYPE patina_query_duration_seconds histogram\n");
        if let Ok(m) = self.queries.lock() {
            for (source, h) in m.iter() {
                h.render(
                    &mut out,
                    "patina_query_duration_seconds",
                    &format!("source=\"{}\"", escape(source)),
                );
            }
        }
        out.push_str("# HELP patina_pool_connections Connections of a source's pool, by state.\n");
        out.push_str("# TYPE patina_pool_connections gauge\n");
        for (name, p) in pools {
            let n = escape(name);
            let _ = writeln!(
                out,
                "patina_pool_connections{{source=\"{n}\",state=\"in_use\"}} {}",
                p.in_use
            );
            let _ = writeln!(
                out,
                "patina_pool_connections{{source=\"{n}\",state=\"idle\"}} {}",
                p.size.saturating_sub(p.in_use)
            );
            let _ = writeln!(out, "patina_pool_waiting{{source=\"{n}\"}} {}", p.waiting);
            let _ = writeln!(
                out,
                "patina_breaker_open{{source=\"{n}\"}} {}",
                u8::from(p.breaker_open)
            );
        }
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "patina_rate_limited_total",
            "Requests refused with 429.",
            self.rate_limited.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP patina_cache_requests_total Lookups of cached routes, by outcome.\n\
             # TYPE patina_cache_requests_total counter\n\
             patina_cache_requests_total{{outcome=\"hit\"}} {}\n\
             patina_cache_requests_total{{outcome=\"miss\"}} {}\n\
             patina_cache_requests_total{{outcome=\"coalesced\"}} {}",
            self.cache_hits.load(Ordering::Relaxed),
            self.cache_misses.load(Ordering::Relaxed),
            self.cache_coalesced.load(Ordering::Relaxed)
        );
        out.push_str("# HELP patina_reloads_total Mapping reloads, by outcome.\n# TYPE patina_reloads_total counter\n");
        let _ = writeln!(
            out,
            "patina_reloads_total{{outcome=\"ok\"}} {}\npatina_reloads_total{{outcome=\"failed\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP patina_routes Routes being served.\n# TYPE patina_routes gauge\npatina_routes {routes}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request("getJob", 200, 0.003);
        m.request("getJob", 200, 0.2);
        m.request("getJob", 404, 0.001);
        m.query("demo", 0.002);
        let text = m.render(
            &[(
                "demo".into(),
                PoolStats {
                    size: 4,
                    in_use: 1,
                    waiting: 0,
                    breaker_open: false,
                },
            )],
            7,
        );
        assert!(
            text.contains("patina_requests_total{route=\"getJob\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "patina_request_duration_seconds_bucket{route=\"getJob\",le=\"0.005\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("patina_request_duration_seconds_count{route=\"getJob\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("patina_pool_connections{source=\"demo\",state=\"idle\"} 3"),
            "{text}"
        );
        assert!(text.contains("patina_routes 7"), "{text}");
    }

    #[test]
    fn renders_the_write_queue() {
        let m = Metrics::default();
        m.delivery("note", "retried", None);
        m.delivery("note", "delivered", Some(2));
        let mut stats = crate::state::QueueStats {
            pending: 3,
            ..Default::default()
        };
        stats.routes.insert(
            "note".into(),
            crate::state::RouteStats {
                pending: 3,
                oldest_accepted_at: Some(1_000),
                dead: 1,
            },
        );
        let mut text = String::new();
        m.render_queue(&mut text, Some(&stats), 100, 61_000);
        for line in [
            "patina_queue_capacity 100",
            "patina_queue_pending_total 3",
            "patina_queue_depth{route=\"note\"} 3",
            "patina_queue_oldest_pending_seconds{route=\"note\"} 60",
            "patina_dead_letters{route=\"note\"} 1",
            "patina_deliveries_total{route=\"note\",outcome=\"retried\"} 1",
            "patina_delivery_attempts_bucket{le=\"1\"} 0",
            "patina_delivery_attempts_bucket{le=\"2\"} 1",
            "patina_delivery_attempts_count 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
