//! Protecting the legacy database: response cache with request coalescing, ETags, the
//! concurrency cap, and the circuit breaker when the database goes away and comes back
//! (simulated by a TCP proxy that these tests cut and restore, so other tests' connections
//! are untouched).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Gateway;
use common::proxy::Proxy;

fn metric(gw: &Gateway, line_prefix: &str) -> u64 {
    let text = gw.get("/metrics").text;
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{line_prefix}` in:\n{text}"))
}

const CACHED_SLOW: &str = "source = \"demo\"\n[[route]]\nid = \"slow\"\npath = \"/slow\"\npublic = true\ncache = \"5s\"\nsql = \"SELECT 1 AS X FROM pg_sleep(0.3)\"\n";

#[test]
fn fifty_identical_requests_cost_one_query() {
    let Some(db) = common::postgres() else { return };
    let gw = common::with_mapping(&db, CACHED_SLOW, "");
    let base = gw.base.clone();
    let barrier = Arc::new(std::sync::Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let base = base.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                reqwest::blocking::get(format!("{base}/v1/slow")).map_or(0, |r| r.status().as_u16())
            })
        })
        .collect();
    let statuses: Vec<u16> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        metric(&gw, "patina_query_duration_seconds_count{source=\"demo\"} "),
        1
    );
    assert_eq!(
        metric(&gw, "patina_cache_requests_total{outcome=\"miss\"} "),
        1
    );
    let shared = metric(&gw, "patina_cache_requests_total{outcome=\"coalesced\"} ")
        + metric(&gw, "patina_cache_requests_total{outcome=\"hit\"} ");
    assert_eq!(shared, 49);
    let r = gw.get("/v1/slow");
    assert_eq!(r.header("cache-control"), Some("private, max-age=5"));
    assert!(
        r.header("server-timing")
            .is_some_and(|t| t.contains("cache;desc=\"hit\""))
    );
}

#[test]
fn etag_and_not_modified() {
    let gw = Gateway::demo(&common::sqlite());
    let r = gw.get("/v1/jobs/100001");
    let etag = r.header("etag").expect("ETag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let again = gw.request(
        reqwest::Method::GET,
        "/v1/jobs/100001",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304);
    assert!(again.text.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let other = gw.request(
        reqwest::Method::GET,
        "/v1/jobs/100002",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(other.status, 200);
}

#[test]
fn concurrency_cap_is_never_exceeded() {
    let Some(mut db) = common::postgres() else {
        return;
    };
    db.connection_string
        .push_str("pqopt={application_name=patina-cap};");
    let gw = common::with_mapping(
        &db,
        "source = \"demo\"\n[[route]]\nid = \"s\"\npath = \"/s/{n}\"\npublic = true\nsql = \"SELECT CAST(:n AS INTEGER) AS N FROM pg_sleep(0.2)\"\nparams.n = \"integer\"\n",
        "pool = { max = 6, max_concurrent = 2, acquire_timeout = \"20s\", max_waiting = 100 }",
    );
    let url = std::env::var("PATINA_TEST_PG_PSQL").expect("PATINA_TEST_PG_PSQL");
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(Mutex::new(0usize));
    let watcher = {
        let (done, peak) = (Arc::clone(&done), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let out = std::process::Command::new("psql")
                    .args(["-X", "-A", "-t", "-q", "-d", &url, "-c"])
                    .arg("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'patina-cap' AND state = 'active'")
                    .output()
                    .expect("psql");
                let n: usize = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .unwrap_or(0);
                let mut p = peak.lock().expect("lock");
                *p = (*p).max(n);
                drop(p);
                std::thread::sleep(Duration::from_millis(30));
            }
        })
    };
    let base = gw.base.clone();
    let burst: Vec<_> = (0..12)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || {
                reqwest::blocking::get(format!("{base}/v1/s/{i}"))
                    .map_or(0, |r| r.status().as_u16())
            })
        })
        .collect();
    let statuses: Vec<u16> = burst
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    done.store(true, Ordering::Relaxed);
    watcher.join().expect("watcher");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let peak = *peak.lock().expect("lock");
    assert!(
        (1..=2).contains(&peak),
        "at most 2 statements at once, saw {peak}"
    );
}

#[test]
fn database_loss_fails_fast_then_recovers() {
    let Some(mut db) = common::postgres() else {
        return;
    };
    let proxy = Proxy::start(db.port());
    db.connection_string = db.at_port(proxy.port);
    db.connection_string
        .push_str("pqopt={application_name=patina-loss};");
    let gw = common::with_mapping(
        &db,
        "source = \"demo\"\n[[route]]\nid = \"n\"\npath = \"/n\"\npublic = true\nsql = \"SELECT COUNT(*) AS N FROM JOBMST\"\n",
        "login_timeout = \"2s\"\npool = { max = 2, breaker_failures = 3, breaker_cooldown = \"1s\" }",
    );
    assert_eq!(gw.get("/v1/n").status, 200);
    proxy.cut();
    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = gw.get("/v1/n");
        statuses.push(r.status);
        if r.status != 200 {
            r.problem(503, "source-unavailable");
            assert!(r.header("retry-after").is_some());
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no hang: {:?}",
        started.elapsed()
    );
    assert!(
        statuses.iter().filter(|s| **s == 503).count() >= 6,
        "{statuses:?}"
    );
    assert!(
        gw.get("/metrics")
            .text
            .contains("patina_breaker_open{source=\"demo\"} 1")
    );
    assert_eq!(gw.get("/readyz").status, 503);
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = gw.get("/v1/n").status;
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(gw.get("/readyz").status, 200);
    assert!(
        gw.get("/metrics")
            .text
            .contains("patina_breaker_open{source=\"demo\"} 0")
    );
    // Connections cut under the gateway were dropped, not kept: no more than the pool.
    let url = std::env::var("PATINA_TEST_PG_PSQL").expect("PATINA_TEST_PG_PSQL");
    let out = std::process::Command::new("psql")
        .args(["-X", "-A", "-t", "-q", "-d", &url, "-c"])
        .arg("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'patina-loss'")
        .output()
        .expect("psql");
    let sessions: usize = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("count");
    assert!(
        (1..=2).contains(&sessions),
        "{sessions} sessions for a pool of 2"
    );
}
