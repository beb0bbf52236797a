//! Tests of what the Redis state computes without a server: URL redaction, the durability
//! verdict, the GCRA's keys and answers, the claim script's answers. The scripts themselves
//! run against a real Redis in `tests/redis.rs`.

use std::time::Duration;

use redis::Value;

use super::ratelimit::{interval_micros, key, outcome};
use super::*;
use crate::state::{Claim, StoredResponse};

#[test]
fn urls_are_redacted_for_logs() {
    for (url, shown) in [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@h:6379/0", "redis://***@h:6379/0"),
        ("rediss://user:p@ss@h", "rediss://***@h"),
        (
            "redis+unix:///run/redis.sock?pass=pw",
            "redis+unix:///run/redis.sock?***",
        ),
        ("garbage", "***"),
    ] {
        assert_eq!(redact_redis_url(url), shown);
    }
}

#[test]
fn error_texts_lose_the_password() {
    let hidden = hidden_parts("redis://app:s%40cret@h:6379/0");
    assert_eq!(hidden, ["s%40cret", "s@cret"]);
    assert_eq!(
        scrubbed(&hidden, "WRONGPASS for s@cret and s%40cret"),
        "WRONGPASS for *** and ***"
    );
    assert!(hidden_parts("redis://h:6379/").is_empty());
}

#[test]
fn bad_urls_are_refused_without_the_password() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let e = Redis::lazy(&Secret::new("redis://:pw@h:notaport/0"))
            .expect_err("refused")
            .to_string();
        assert!(e.contains("redis://***@h:notaport/0"), "{e}");
        assert!(!e.contains("pw"), "{e}");
    });
}

#[test]
fn durability_verdicts() {
    let always = DurabilityReport::judge(Some("yes"), Some("always"));
    assert_eq!(always.durability, Durability::Always);
    let everysec = DurabilityReport::judge(Some("yes"), Some("everysec"));
    assert_eq!(everysec.durability, Durability::EverySecond);
    assert!(
        everysec.message.contains("up to one second"),
        "{}",
        everysec.message
    );
    let no_fsync = DurabilityReport::judge(Some("yes"), Some("no"));
    assert_eq!(no_fsync.durability, Durability::Lossy);
    let no_aof = DurabilityReport::judge(Some("no"), Some("everysec"));
    assert_eq!(no_aof.durability, Durability::Lossy);
    assert!(
        no_aof.message.contains("appendonly no"),
        "{}",
        no_aof.message
    );
    assert_eq!(
        DurabilityReport::judge(None, None).durability,
        Durability::Lossy
    );
    let unknown = DurabilityReport::unknown("ERR unknown command 'CONFIG'");
    assert_eq!(unknown.durability, Durability::Unknown);
    assert!(unknown.message.contains("could not be checked"));
    assert_eq!(
        serde_json::to_value(&everysec).expect("json")["durability"],
        "every_second"
    );
}

#[test]
fn gcra_keys_and_intervals() {
    assert_eq!(
        key(100, Duration::from_mins(1), "r|user:alice"),
        "patina:rl:100/60000ms:r|user:alice"
    );
    assert_eq!(interval_micros(100, Duration::from_mins(1)), 600_000);
    assert_eq!(interval_micros(3, Duration::from_secs(1)), 333_333);
    assert_eq!(interval_micros(0, Duration::ZERO), 1, "never zero");
}

#[test]
fn gcra_answers() {
    assert_eq!(
        outcome(&[1, 99, 600_000, 0], 100),
        Some(GcraOutcome {
            allowed: true,
            remaining: 99,
            reset: Duration::from_millis(600),
            retry_after: None,
        })
    );
    let refused = outcome(&[0, 0, 60_000_000, 250_000], 100).expect("read");
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after, Some(Duration::from_millis(250)));
    assert_eq!(outcome(&[1, 2], 100), None);
    assert_eq!(
        outcome(&[1, 500, 0, 0], 100).map(|o| o.remaining),
        Some(100),
        "never more than the limit"
    );
}

#[test]
fn claim_answers() {
    let bulk = |s: &[u8]| Value::BulkString(s.to_vec());
    assert_eq!(idempotency::read_claim(&[bulk(b"run")]), Some(Claim::Run));
    assert_eq!(
        idempotency::read_claim(&[bulk(b"inflight")]),
        Some(Claim::InFlight)
    );
    assert_eq!(
        idempotency::read_claim(&[bulk(b"mismatch")]),
        Some(Claim::Mismatch)
    );
    assert_eq!(
        idempotency::read_claim(&[
            bulk(b"replay"),
            bulk(b"201"),
            bulk(br#"[["location","/v1/x/1"]]"#),
            bulk(b"{\"id\":1}"),
        ]),
        Some(Claim::Replay(StoredResponse {
            status: 201,
            headers: vec![("location".into(), "/v1/x/1".into())],
            body: b"{\"id\":1}".to_vec(),
        }))
    );
    assert_eq!(idempotency::read_claim(&[bulk(b"replay")]), None);
    assert_eq!(idempotency::read_claim(&[]), None);
    assert_eq!(
        idempotency::record_key("k1"),
        "patina:idem:k1",
        "records share the prefix"
    );
}
