//! The write queue: acceptance with its idempotency record, the size cap, order per key,
//! retries, dead letters, replay, drop, figures and reopening.

use std::time::Duration;

use super::{Accept, Accepted, DeliveryResult, IdempotentAccept, Outcome, Status};
use crate::state::{Fingerprint, Store, StoredResponse};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    (dir, store)
}

fn write(id: &str, route: &str, key: Option<&str>) -> Accept {
    Accept {
        id: id.into(),
        route: route.into(),
        order_key: key.map(str::to_string),
        identity: "user:ann".into(),
        request: format!("{{\"n\":\"{id}\"}}"),
        generation: 1,
        max_pending: 100,
        idempotency: None,
    }
}

fn ids(d: &[super::Delivery]) -> Vec<&str> {
    d.iter().map(|d| d.id.as_str()).collect()
}

fn due_now(s: &Store) -> Vec<super::Delivery> {
    s.due(u64::MAX - 1, 100, &|_| false).expect("due")
}

fn delivered() -> Outcome {
    Outcome::Delivered(DeliveryResult {
        status: 201,
        location: Some("/v1/notes/1".into()),
        body: Some("{\"id\":1}".into()),
    })
}

#[test]
fn queue_accepts_and_delivers_in_order_per_key() {
    let (_dir, s) = store();
    for (id, key) in [("a1", "job:1"), ("b1", "job:2"), ("a2", "job:1"), ("n", "")] {
        let key = (!key.is_empty()).then_some(key);
        assert_eq!(
            s.accept(write(id, "r", key)).expect("accept"),
            Accepted::Queued
        );
    }
    // a2 waits behind a1 (same key); the others are due.
    assert_eq!(ids(&due_now(&s)), ["a1", "b1", "n"]);
    // a1 fails for now: a2 still waits, a1 is due again later.
    s.finish(
        "a1",
        Outcome::Retry {
            next_at: u64::MAX - 10,
            category: "unavailable".into(),
            detail: "the database is unreachable".into(),
        },
    )
    .expect("retry");
    assert_eq!(ids(&due_now(&s)), ["b1", "n", "a1"]);
    assert_eq!(
        ids(&s.due(0, 100, &|_| false).expect("due")),
        Vec::<&str>::new()
    );
    s.finish("a1", delivered()).expect("delivered");
    // a2 is due from the moment a1 was delivered, behind what was due before.
    assert_eq!(ids(&due_now(&s)), ["b1", "n", "a2"]);
    let a1 = s.delivery("a1").expect("read").expect("kept");
    assert_eq!(a1.status, Status::Delivered);
    assert_eq!(a1.tries, 2);
    assert_eq!(a1.attempts.len(), 2);
    assert_eq!(a1.attempts[0].outcome, "unavailable");
    assert_eq!(
        a1.result.expect("result").location.as_deref(),
        Some("/v1/notes/1")
    );
    // Skipped ids (in flight) are left out.
    assert_eq!(
        ids(&s.due(u64::MAX - 1, 100, &|id| id == "b1").expect("due")),
        ["n", "a2"]
    );
}

#[test]
fn queue_dead_letters_release_their_key_and_replay_goes_behind() {
    let (_dir, s) = store();
    for id in ["x1", "x2", "x3"] {
        s.accept(write(id, "r", Some("k"))).expect("accept");
    }
    s.finish(
        "x1",
        Outcome::Dead {
            category: "constraint".into(),
            detail: "a constraint refused the write".into(),
        },
    )
    .expect("dead");
    assert_eq!(ids(&due_now(&s)), ["x2"]);
    let dead = s.dead_letters(None, 10).expect("dead");
    assert_eq!(ids(&dead), ["x1"]);
    assert_eq!(dead[0].status, Status::Dead);
    let stats = s.queue_stats().expect("stats");
    assert_eq!((stats.pending, stats.dead), (2, 1));
    assert_eq!(stats.routes["r"].dead, 1);
    // Replayed, it queues behind x2 and x3 of its key.
    assert_eq!(
        s.replay(&["x1".into(), "nope".into()], 2).expect("replay"),
        ["x1"]
    );
    let x1 = s.delivery("x1").expect("read").expect("kept");
    assert_eq!(
        (x1.status, x1.tries, x1.generation),
        (Status::Pending, 0, 2)
    );
    assert_eq!(x1.attempts.last().expect("history").outcome, "replayed");
    s.finish("x2", delivered()).expect("x2");
    assert_eq!(ids(&due_now(&s)), ["x3"]);
    s.finish("x3", delivered()).expect("x3");
    assert_eq!(ids(&due_now(&s)), ["x1"]);
    assert!(s.dead_letters(None, 10).expect("dead").is_empty());
    // Only dead letters can be dropped.
    assert!(s.drop_dead(&["x1".into()]).expect("drop").is_empty());
    s.finish(
        "x1",
        Outcome::Dead {
            category: "constraint".into(),
            detail: String::new(),
        },
    )
    .expect("dead");
    assert_eq!(s.drop_dead(&["x1".into()]).expect("drop"), ["x1"]);
    assert!(s.delivery("x1").expect("read").is_none());
    assert_eq!(s.queue_stats().expect("stats").dead, 0);
}

#[test]
fn queue_refuses_when_full_and_counts_only_pending() {
    let (_dir, s) = store();
    let mut a = write("1", "r", None);
    a.max_pending = 2;
    assert_eq!(s.accept(a.clone()).expect("1"), Accepted::Queued);
    a.id = "2".into();
    assert_eq!(s.accept(a.clone()).expect("2"), Accepted::Queued);
    a.id = "3".into();
    assert_eq!(s.accept(a.clone()).expect("3"), Accepted::Full);
    assert!(s.delivery("3").expect("read").is_none());
    s.finish("1", delivered()).expect("delivered");
    assert_eq!(s.accept(a).expect("3 again"), Accepted::Queued);
    assert_eq!(s.pending_len().expect("len"), 2);
}

#[test]
fn queue_idempotency_key_accepts_once_and_replays_the_first_answer() {
    let (_dir, s) = store();
    let answer = StoredResponse {
        status: 202,
        headers: vec![("location".into(), "/v1/_deliveries/d1".into())],
        body: b"{\"id\":\"d1\"}".to_vec(),
    };
    let keyed = |id: &str, body: &str| {
        let mut a = write(id, "r", None);
        a.idempotency = Some(IdempotentAccept {
            key: "user:ann\nr\nk1".into(),
            fingerprint: Fingerprint::of(&[body.as_bytes()]),
            response: answer.clone(),
            ttl: Duration::from_hours(1),
        });
        a
    };
    assert_eq!(s.accept(keyed("d1", "a")).expect("first"), Accepted::Queued);
    assert_eq!(
        s.accept(keyed("d2", "a")).expect("retry"),
        Accepted::Replay(answer.clone())
    );
    assert_eq!(
        s.accept(keyed("d3", "b")).expect("other body"),
        Accepted::Mismatch
    );
    assert_eq!(ids(&due_now(&s)), ["d1"]);
}

#[test]
fn queue_accepts_from_many_threads_and_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = std::sync::Arc::new(Store::open(dir.path()).expect("open"));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let s = std::sync::Arc::clone(&s);
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let id = format!("{t}-{i}");
                        let key = format!("k{t}");
                        let mut a = write(&id, "r", Some(&key));
                        a.max_pending = 1000;
                        s.accept(a).expect("accept");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
    }
    let s = Store::open(dir.path()).expect("reopen");
    assert_eq!(s.pending_len().expect("len"), 200);
    // One due per key, each its key's first.
    let due = due_now(&s);
    assert_eq!(due.len(), 8);
    assert!(due.iter().all(|d| d.id.ends_with("-0")), "{:?}", ids(&due));
    let stats = s.queue_stats().expect("stats");
    assert_eq!(stats.routes["r"].pending, 200);
    assert!(stats.routes["r"].oldest_accepted_at.is_some());
}

#[test]
fn queue_purges_delivered_records_after_their_retention() {
    let (_dir, s) = store();
    s.accept(write("p", "r", None)).expect("accept");
    s.finish_at("p", delivered(), 1_000)
        .expect("delivered long ago");
    s.accept(write("q", "r", None)).expect("accept");
    s.finish("q", delivered()).expect("delivered now");
    assert_eq!(
        s.purge_delivered(Duration::from_hours(1)).expect("purge"),
        1
    );
    assert!(s.delivery("p").expect("read").is_none());
    assert!(s.delivery("q").expect("read").is_some());
}
