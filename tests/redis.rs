//! Shared state on Redis (`[state] backend = "redis"`): rate limits that hold across two
//! gateways, idempotency records claimed on one connection and replayed on another, fail open
//! and closed with Redis away, and the durability check. The tests that need a server read its
//! URL from PATINA_TEST_REDIS (deploy/test.sh starts a private one) and skip, loudly, without
//! it, unless PATINA_REQUIRE_REDIS is set.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Gateway, Options};
use patina::secret::Secret;
use patina::state::redis::{Durability, Redis, RedisIdempotency};
use patina::state::{Claim, Fingerprint, StoredResponse};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Something no other run of the tests uses (the server outlives a run).
fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{}{nanos}", std::process::id())
}

/// A public route limited to `rate`, with an id of its own (so its bucket is new).
fn limited_route(id: &str, rate: &str) -> String {
    format!(
        "source = \"demo\"\n[[route]]\nid = \"{id}\"\npath = \"/limited\"\npublic = true\n\
         rate_limit = \"{rate}\"\nsql = \"SELECT 1 AS X\"\n"
    )
}

/// A gateway serving `mapping` with `[state]` as given.
fn gateway(mapping: &str, state: &str) -> Gateway {
    let files = [("v1/t.toml", mapping)];
    Gateway::start(
        &common::sqlite(),
        &Options {
            mappings: Some(&files),
            config_extra: state,
            ..Options::default()
        },
    )
}

fn redis_state(url: &str, unreachable: &str) -> String {
    format!(
        "[state]\nbackend = \"redis\"\nredis_url = \"{url}\"\nredis_unreachable = \"{unreachable}\"\n"
    )
}

#[test]
fn a_rate_limit_holds_across_two_gateways() {
    let Some(url) = common::redis_url("the Redis state test") else {
        return;
    };
    let route = limited_route(&format!("limited{}", unique()), "100/minute");
    let a = Arc::new(gateway(&route, &redis_state(&url, "closed")));
    let b = Arc::new(gateway(&route, &redis_state(&url, "closed")));
    // 200 requests from 8 threads, alternating between the two gateways.
    let started = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let bases = [a.base.clone(), b.base.clone()];
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                (0..25)
                    .map(|i| {
                        let base = &bases[(t + i) % 2];
                        let r = client
                            .get(format!("{base}/v1/limited"))
                            .send()
                            .expect("request");
                        let status = r.status().as_u16();
                        let retry = r
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        (status, retry, r.text().unwrap_or_default())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    let elapsed = started.elapsed();
    let allowed = all.iter().filter(|(s, _, _)| *s == 200).count();
    let refused: Vec<_> = all.iter().filter(|(s, _, _)| *s == 429).collect();
    assert_eq!(
        allowed + refused.len(),
        200,
        "only 200 and 429: {:?}",
        all.iter().find(|(s, _, _)| *s != 200 && *s != 429)
    );
    // The burst of 100, plus one more for every 600 ms the requests took (the bucket refills
    // at 100 per minute while they run): within 5 %.
    let refilled = usize::try_from(elapsed.as_millis() / 600).expect("small");
    assert!(
        (95..=105 + refilled).contains(&allowed),
        "100/minute across both gateways, within 5 %: {allowed} allowed in {elapsed:?}"
    );
    eprintln!("{allowed} of 200 allowed in {elapsed:?}");
    for (_, retry, _) in refused {
        let secs: u64 = retry
            .as_deref()
            .expect("a 429 carries Retry-After")
            .parse()
            .expect("seconds");
        assert!((1..=60).contains(&secs), "{secs}");
    }
}

#[test]
fn idempotency_records_are_shared_between_connections() {
    let Some(url) = common::redis_url("the Redis state test") else {
        return;
    };
    let rt = runtime();
    rt.block_on(async {
        let connect = || async {
            Arc::new(
                Redis::connect(&Secret::new(url.clone()), Duration::from_secs(5))
                    .await
                    .expect("connect"),
            )
        };
        let a = RedisIdempotency::new(connect().await);
        let b = RedisIdempotency::new(connect().await);
        let key = format!("test|{}", unique());
        let body = Fingerprint::of(&[b"{\"qty\":1}"]);
        let other = Fingerprint::of(&[b"{\"qty\":2}"]);
        let lease = Duration::from_secs(30);
        let ttl = Duration::from_mins(1);

        assert_eq!(
            a.claim(&key, &body, lease, ttl).await.expect("claim"),
            Claim::Run
        );
        assert_eq!(
            b.claim(&key, &body, lease, ttl).await.expect("claim"),
            Claim::InFlight,
            "the other replica sees the claim"
        );
        assert_eq!(
            b.claim(&key, &other, lease, ttl).await.expect("claim"),
            Claim::Mismatch
        );
        // Releasing with another body does nothing; with the same body frees the key.
        b.release(&key, &other).await.expect("release");
        assert_eq!(
            b.claim(&key, &body, lease, ttl).await.expect("claim"),
            Claim::InFlight
        );
        a.release(&key, &body).await.expect("release");
        assert_eq!(
            b.claim(&key, &body, lease, ttl).await.expect("claim"),
            Claim::Run
        );

        let response = StoredResponse {
            status: 201,
            headers: vec![("location".into(), "/v1/notes/7".into())],
            body: b"{\"id\":7}".to_vec(),
        };
        b.complete(&key, &body, &response, ttl)
            .await
            .expect("complete");
        assert_eq!(
            a.claim(&key, &body, lease, ttl).await.expect("claim"),
            Claim::Replay(response.clone()),
            "replica A replays what B answered"
        );
        assert_eq!(
            a.claim(&key, &other, lease, ttl).await.expect("claim"),
            Claim::Mismatch
        );
        a.release(&key, &body).await.expect("release");
        assert_eq!(
            a.claim(&key, &body, lease, ttl).await.expect("claim"),
            Claim::Replay(response.clone()),
            "a completed record is not released"
        );
        // A completion from another body does not replace the record.
        a.complete(&key, &other, &response, ttl)
            .await
            .expect("complete");
        assert_eq!(
            b.claim(&key, &other, lease, ttl).await.expect("claim"),
            Claim::Mismatch
        );

        // Expiry: a completed record lives for its TTL, an in-flight one for its lease.
        let short = format!("test|short|{}", unique());
        assert_eq!(
            a.claim(&short, &body, lease, Duration::from_millis(300))
                .await
                .expect("claim"),
            Claim::Run
        );
        a.complete(&short, &body, &response, Duration::from_millis(300))
            .await
            .expect("complete");
        assert!(matches!(
            b.claim(&short, &body, lease, ttl).await.expect("claim"),
            Claim::Replay(_)
        ));
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(
            b.claim(&short, &other, Duration::from_millis(200), ttl)
                .await
                .expect("claim"),
            Claim::Run,
            "the record expired"
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(
            a.claim(&short, &body, lease, ttl).await.expect("claim"),
            Claim::Run,
            "an in-flight claim past its lease counts as absent"
        );
        let long = "k".repeat(patina::state::MAX_KEY_LEN + 1);
        assert!(a.claim(&long, &body, lease, ttl).await.is_err());
    });
}

#[test]
fn the_durability_check_reports_the_servers_settings() {
    let Some(url) = common::redis_url("the Redis state test") else {
        return;
    };
    let rt = runtime();
    rt.block_on(async {
        let redis = Redis::connect(&Secret::new(url), Duration::from_secs(5))
            .await
            .expect("connect");
        let report = redis.durability().expect("checked at connect");
        // deploy/test.sh starts its Redis with appendonly yes, appendfsync everysec.
        assert_eq!(report.appendonly.as_deref(), Some("yes"), "{report:?}");
        assert!(
            matches!(
                report.durability,
                Durability::EverySecond | Durability::Always
            ),
            "{report:?}"
        );
        assert_eq!(
            redis.check_durability().await.expect("check"),
            report,
            "the same again"
        );
    });
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn rate_limits_fail_closed_or_open_when_redis_is_away() {
    let url = format!("redis://:hunter2@127.0.0.1:{}/", closed_port());
    let route = limited_route("limitedAway", "100/minute");
    let closed = gateway(&route, &redis_state(&url, "closed"));
    let open = gateway(&route, &redis_state(&url, "open"));
    for _ in 0..3 {
        let started = Instant::now();
        let r = closed.anonymous("/v1/limited");
        let p = r.problem(503, "rate-limit-unavailable");
        assert!(r.header("retry-after").is_some(), "{p}");
        assert!(!r.text.contains("hunter2"), "{}", r.text);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "refused without a long wait"
        );
        let r = open.anonymous("/v1/limited");
        assert_eq!(r.status, 200, "fail open lets it through: {}", r.text);
        assert!(
            r.header("ratelimit-limit").is_none(),
            "no limit was decided"
        );
    }
}

#[test]
fn a_route_without_limits_never_asks_redis() {
    let url = format!("redis://127.0.0.1:{}/", closed_port());
    let mapping = "source = \"demo\"\n[[route]]\nid = \"free\"\npath = \"/free\"\npublic = true\n\
                   sql = \"SELECT 1 AS X\"\n";
    let gw = gateway(mapping, &redis_state(&url, "closed"));
    assert_eq!(gw.anonymous("/v1/free").status, 200);
}

/// A write whose `Idempotency-Key` cannot be recorded (Redis is away) is refused with 503, a
/// `Retry-After` and nothing written, and without the Redis password.
#[test]
fn an_idempotent_write_without_its_store_is_refused_with_retry_after() {
    let url = format!("redis://:hunter2@127.0.0.1:{}/", closed_port());
    let mapping = "source = \"demo\"\n[[route]]\nid = \"touch\"\nmethod = \"POST\"\npath = \"/touch\"\n\
                   public = true\n[[route.step]]\nsql = \"SELECT 1 AS X\"\n";
    let gw = gateway(mapping, &redis_state(&url, "closed"));
    let r = gw.send(
        reqwest::Method::POST,
        "/v1/touch",
        &[("Idempotency-Key", "k-1")],
        None,
    );
    let p = r.problem(503, "state-unavailable");
    assert_eq!(r.header("retry-after"), Some("1"), "{p}");
    assert!(!r.text.contains("hunter2"), "{}", r.text);
}
