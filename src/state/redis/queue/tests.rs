//! Reading what the queue's scripts answer, without a server; the scripts themselves run
//! against a real Redis in `tests/redis_queue.rs`.

use super::*;

#[test]
fn times_are_read_as_redis_writes_them() {
    assert_eq!(ms("1712345678901"), Some(1_712_345_678_901));
    assert_eq!(ms("1.8446744073709552e+19"), Some(u64::MAX));
    assert_eq!(ms(""), None);
    assert_eq!(ms("-1"), None);
}

#[test]
fn a_record_is_read_from_its_fields_and_attempts() {
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    let fields = [
        ("id", "d1"),
        ("seq", "7"),
        ("m", "00000000000000000007:d1"),
        ("route", "r"),
        ("order_key", "job:1"),
        ("identity", "user:ann"),
        ("request", "{}"),
        ("generation", "2"),
        ("accepted_at", "1000"),
        ("status", "delivered"),
        ("tries", "1"),
        ("next_at", "1000"),
        ("finished_at", "1500"),
        ("result", r#"{"status":201}"#),
    ];
    let flat = fields
        .iter()
        .flat_map(|(k, v)| [bulk(k), bulk(v)])
        .collect();
    let v = Value::Array(vec![
        Value::Array(flat),
        Value::Array(vec![bulk(&attempt(1500, "delivered", None))]),
    ]);
    let d = read_record(&v).expect("record");
    assert_eq!(
        (d.seq, d.status, d.finished_at, d.order_key.as_deref()),
        (7, Status::Delivered, Some(1500), Some("job:1"))
    );
    assert_eq!(d.result.expect("result").status, 201);
    assert_eq!(d.attempts[0].outcome, "delivered");
    // A record without its fields is refused, not half read.
    assert!(
        read_record(&Value::Array(vec![
            Value::Array(vec![]),
            Value::Array(vec![])
        ]))
        .is_none()
    );
}
