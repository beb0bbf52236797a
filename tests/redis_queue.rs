//! The write queue on Redis (`RedisQueue`), against a real server: acceptance with its
//! idempotency record (shared with direct writes), the size cap, order per key, retries, dead
//! letters, replay, drop, purge, and two replicas leasing from one queue without ever taking
//! the same delivery twice. The server's URL comes from PATINA_TEST_REDIS (deploy/test.sh
//! starts a private one); without it the tests skip, loudly, unless PATINA_REQUIRE_REDIS is
//! set. Each test keeps its keys under a prefix of its own.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use patina::clock::now_ms;
use patina::secret::Secret;
use patina::state::redis::{Redis, RedisIdempotency, RedisQueue};
use patina::state::{
    Accept, Accepted, Claim, Delivery, DeliveryResult, Fingerprint, IdempotentAccept, Outcome,
    Status, StoredResponse,
};

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

async fn connect(url: &str) -> Arc<Redis> {
    Arc::new(
        Redis::connect(&Secret::new(url.to_string()), Duration::from_secs(5))
            .await
            .expect("connect"),
    )
}

/// A queue under a prefix of its own, and the prefix (for a second connection to it).
async fn queue(url: &str) -> (RedisQueue, String) {
    let prefix = format!("patina:test:q:{}:", unique());
    (
        RedisQueue::with_prefix(connect(url).await, prefix.clone()),
        prefix,
    )
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

fn ids(d: &[Delivery]) -> Vec<&str> {
    d.iter().map(|d| d.id.as_str()).collect()
}

fn delivered() -> Outcome {
    Outcome::Delivered(DeliveryResult {
        status: 201,
        location: Some("/v1/notes/1".into()),
        body: Some("{\"id\":1}".into()),
    })
}

fn dead() -> Outcome {
    Outcome::Dead {
        category: "constraint".into(),
        detail: "a constraint refused the write".into(),
    }
}

const MINUTE: Duration = Duration::from_mins(1);

#[test]
fn redis_queue_delivers_in_order_per_key_and_retries_later() {
    let Some(url) = common::redis_url("the Redis queue test") else {
        return;
    };
    runtime().block_on(async {
        let (q, _) = queue(&url).await;
        for (id, key) in [("a1", "job:1"), ("b1", "job:2"), ("a2", "job:1"), ("n", "")] {
            let key = (!key.is_empty()).then_some(key);
            assert_eq!(
                q.accept(write(id, "r", key)).await.expect("accept"),
                Accepted::Queued
            );
        }
        let t = now_ms() + 3_600_000;
        // a2 waits behind a1 (same key); the others are due, in the order accepted.
        assert_eq!(
            ids(&q.lease(t, 100, MINUTE).await.expect("lease")),
            ["a1", "b1", "n"]
        );
        // Leased, they are nobody else's.
        assert!(q.lease(t, 100, MINUTE).await.expect("lease").is_empty());
        q.finish(
            "a1",
            Outcome::Retry {
                next_at: t + 1_000,
                category: "unavailable".into(),
                detail: "the database is unreachable".into(),
            },
            t,
        )
        .await
        .expect("retry");
        q.finish("b1", delivered(), t).await.expect("b1");
        q.finish("n", delivered(), t).await.expect("n");
        assert_eq!(q.next_due().await.expect("next"), Some(t + 1_000));
        // a1 waits for its retry, a2 for a1.
        assert!(
            q.lease(t + 999, 100, MINUTE)
                .await
                .expect("lease")
                .is_empty()
        );
        assert_eq!(
            ids(&q.lease(t + 1_000, 100, MINUTE).await.expect("lease")),
            ["a1"]
        );
        q.finish("a1", delivered(), t + 1_000).await.expect("a1");
        // a2 is due from the moment a1 was delivered.
        let a2 = q.lease(t + 1_000, 100, MINUTE).await.expect("lease");
        assert_eq!(ids(&a2), ["a2"]);
        assert_eq!(a2[0].next_at, t + 1_000);
        let a1 = q.delivery("a1").await.expect("read").expect("kept");
        assert_eq!(a1.status, Status::Delivered);
        assert_eq!((a1.tries, a1.attempts.len()), (2, 2));
        assert_eq!(a1.attempts[0].outcome, "unavailable");
        assert_eq!(a1.finished_at, Some(t + 1_000));
        assert_eq!(
            a1.result.expect("result").location.as_deref(),
            Some("/v1/notes/1")
        );
        assert_eq!(a1.order_key.as_deref(), Some("job:1"));
        assert!(q.delivery("nope").await.expect("read").is_none());
        assert_eq!(q.pending_len().await.expect("len"), 1);
    });
}

#[test]
fn redis_queue_dead_letters_release_their_key_and_replay_goes_behind() {
    let Some(url) = common::redis_url("the Redis queue test") else {
        return;
    };
    runtime().block_on(async {
        let (q, _) = queue(&url).await;
        for id in ["x1", "x2", "x3"] {
            q.accept(write(id, "r", Some("k"))).await.expect("accept");
        }
        let t = now_ms() + 3_600_000;
        assert_eq!(ids(&q.lease(t, 10, MINUTE).await.expect("lease")), ["x1"]);
        q.finish("x1", dead(), t).await.expect("dead");
        assert_eq!(ids(&q.lease(t, 10, MINUTE).await.expect("lease")), ["x2"]);
        let letters = q.dead_letters(None, 10).await.expect("dead");
        assert_eq!(ids(&letters), ["x1"]);
        assert_eq!(letters[0].status, Status::Dead);
        let stats = q.queue_stats().await.expect("stats");
        assert_eq!((stats.pending, stats.dead), (2, 1));
        assert_eq!(stats.routes["r"].dead, 1);
        assert_eq!(stats.routes["r"].pending, 2);
        assert!(stats.routes["r"].oldest_accepted_at.is_some());
        // Replayed, it queues behind x2 and x3 of its key.
        assert_eq!(
            q.replay(&["x1".into(), "nope".into()], 2)
                .await
                .expect("replay"),
            ["x1"]
        );
        let x1 = q.delivery("x1").await.expect("read").expect("kept");
        assert_eq!(
            (x1.status, x1.tries, x1.generation, x1.finished_at),
            (Status::Pending, 0, 2, None)
        );
        assert_eq!(x1.attempts.last().expect("history").outcome, "replayed");
        q.finish("x2", delivered(), t).await.expect("x2");
        assert_eq!(ids(&q.lease(t, 10, MINUTE).await.expect("lease")), ["x3"]);
        q.finish("x3", delivered(), t).await.expect("x3");
        assert_eq!(ids(&q.lease(t, 10, MINUTE).await.expect("lease")), ["x1"]);
        assert!(q.dead_letters(None, 10).await.expect("dead").is_empty());
        // Only dead letters can be dropped.
        assert!(q.drop_dead(&["x1".into()]).await.expect("drop").is_empty());
        q.finish("x1", dead(), t).await.expect("dead");
        assert_eq!(q.drop_dead(&["x1".into()]).await.expect("drop"), ["x1"]);
        assert!(q.delivery("x1").await.expect("read").is_none());
        let stats = q.queue_stats().await.expect("stats");
        assert_eq!((stats.pending, stats.dead), (0, 0));
        assert!(stats.routes.is_empty(), "{stats:?}");
    });
}

#[test]
fn redis_queue_lists_and_replays_the_dead_letters_of_one_route() {
    let Some(url) = common::redis_url("the Redis queue test") else {
        return;
    };
    runtime().block_on(async {
        let (q, _) = queue(&url).await;
        for (id, route) in [("p1", "r1"), ("p2", "r2"), ("p3", "r2")] {
            q.accept(write(id, route, None)).await.expect("accept");
        }
        let t = now_ms() + 3_600_000;
        assert_eq!(q.lease(t, 10, MINUTE).await.expect("lease").len(), 3);
        for id in ["p3", "p1", "p2"] {
            q.finish(id, dead(), t).await.expect("dead");
        }
        // Oldest first (by acceptance), at most `limit`, of one route or all.
        assert_eq!(
            ids(&q.dead_letters(None, 10).await.expect("all")),
            ["p1", "p2", "p3"]
        );
        assert_eq!(
            ids(&q.dead_letters(None, 2).await.expect("two")),
            ["p1", "p2"]
        );
        assert_eq!(
            ids(&q.dead_letters(Some("r2"), 10).await.expect("r2")),
            ["p2", "p3"]
        );
        assert!(q.dead_letters(Some("r3"), 10).await.expect("r3").is_empty());
        let mut replayed = q.replay_route("r2", 5).await.expect("replay");
        replayed.sort();
        assert_eq!(replayed, ["p2", "p3"]);
        assert_eq!(ids(&q.dead_letters(None, 10).await.expect("all")), ["p1"]);
        let again = q
            .lease(now_ms() + 3_600_000, 10, MINUTE)
            .await
            .expect("lease");
        assert_eq!(ids(&again), ["p2", "p3"]);
        assert!(again.iter().all(|d| d.generation == 5));
        let stats = q.queue_stats().await.expect("stats");
        assert_eq!(stats.routes["r1"].dead, 1);
        assert_eq!(stats.routes["r2"].pending, 2);
    });
}

#[test]
fn redis_queue_refuses_when_full_and_counts_only_pending() {
    let Some(url) = common::redis_url("the Redis queue test") else {
        return;
    };
    runtime().block_on(async {
        let (q, _) = queue(&url).await;
        let mut a = write("1", "r", None);
        a.max_pending = 2;
        assert_eq!(q.accept(a.clone()).await.expect("1"), Accepted::Queued);
        a.id = "2".into();
        assert_eq!(q.accept(a.clone()).await.expect("2"), Accepted::Queued);
        a.id = "3".into();
        assert_eq!(q.accept(a.clone()).await.expect("3"), Accepted::Full);
        assert!(q.delivery("3").await.expect("read").is_none());
        q.finish("1", delivered(), now_ms())
            .await
            .expect("delivered");
        assert_eq!(q.accept(a).await.expect("3 again"), Accepted::Queued);
        assert_eq!(q.pending_len().await.expect("len"), 2);
        // An id is accepted once.
        let mut b = write("2", "r", None);
        b.max_pending = 10;
        assert!(q.accept(b).await.is_err());
    });
}

#[test]
fn redis_queue_idempotency_key_accepts_once_and_shares_records_with_direct_writes() {
    let Some(url) = common::redis_url("the Redis queue test") else {
        return;
    };
    runtime().block_on(async {
        let (q, _) = queue(&url).await;
        let idem = RedisIdempotency::new(Arc::clone(q.redis()));
        let key = format!("user:ann\nr\n{}", unique());
        let answer = StoredResponse {
            status: 202,
            headers: vec![("location".into(), "/v1/_deliveries/d1".into())],
            body: b"{\"id\":\"d1\"}".to_vec(),
        };
        let keyed = |id: &str, key: &str, body: &str| {
            let mut a = write(id, "r", None);
            a.idempotency = Some(IdempotentAccept {
                key: key.into(),
                fingerprint: Fingerprint::of(&[body.as_bytes()]),
                response: answer.clone(),
                ttl: Duration::from_hours(1),
            });
            a
        };
        assert_eq!(
            q.accept(keyed("d1", &key, "a")).await.expect("first"),
            Accepted::Queued
        );
        assert_eq!(
            q.accept(keyed("d2", &key, "a")).await.expect("retry"),
            Accepted::Replay(answer.clone())
        );
        assert_eq!(
            q.accept(keyed("d3", &key, "b")).await.expect("other body"),
            Accepted::Mismatch
        );
        assert_eq!(
            ids(&q.lease(now_ms(), 10, MINUTE).await.expect("lease")),
            ["d1"]
        );
        // A direct write with the key replays the queued answer...
        let fp = Fingerprint::of(&[b"a"]);
        assert_eq!(
            idem.claim(&key, &fp, MINUTE, Duration::from_hours(1))
                .await
                .expect("claim"),
            Claim::Replay(answer.clone())
        );
        // ...and a key a direct write holds in flight is not queued.
        let other = format!("user:ann\nr\n{}", unique());
        assert_eq!(
            idem.claim(&other, &fp, MINUTE, Duration::from_hours(1))
                .await
                .expect("claim"),
            Claim::Run
        );
        assert_eq!(
            q.accept(keyed("d4", &other, "a")).await.expect("in flight"),
            Accepted::InFlight
        );
        assert!(q.delivery("d4").await.expect("read").is_none());
        // A key longer than the state keeps is refused before Redis.
        let long = "k".repeat(patina::state::MAX_KEY_LEN + 1);
        assert!(q.accept(keyed("d5", &long, "a")).await.is_err());
    });
}

#[test]
fn redis_queue_purges_delivered_records_after_their_retention() {
    let Some(url) = common::redis_url("the Redis queue test") else {
        return;
    };
    runtime().block_on(async {
        let (q, _) = queue(&url).await;
        q.accept(write("p", "r", None)).await.expect("accept");
        q.finish("p", delivered(), 1_000)
            .await
            .expect("delivered long ago");
        q.accept(write("q", "r", None)).await.expect("accept");
        q.finish("q", delivered(), now_ms())
            .await
            .expect("delivered now");
        assert_eq!(
            q.purge_delivered(Duration::from_hours(1))
                .await
                .expect("purge"),
            1
        );
        assert!(q.delivery("p").await.expect("read").is_none());
        assert!(q.delivery("q").await.expect("read").is_some());
    });
}

#[test]
fn redis_queue_lease_that_runs_out_goes_to_another_replica() {
    let Some(url) = common::redis_url("the Redis queue test") else {
        return;
    };
    runtime().block_on(async {
        let (a, prefix) = queue(&url).await;
        let b = RedisQueue::with_prefix(connect(&url).await, prefix);
        a.accept(write("w", "r", Some("k"))).await.expect("accept");
        a.accept(write("w2", "r", Some("k"))).await.expect("accept");
        let t = now_ms() + 1_000;
        // A leases it for 200 ms and dies; B sees nothing until the lease ends.
        assert_eq!(
            ids(&a.lease(t, 10, Duration::from_millis(200)).await.expect("a")),
            ["w"]
        );
        assert_eq!(b.next_due().await.expect("next"), Some(t + 200));
        assert!(b.lease(t + 199, 10, MINUTE).await.expect("b").is_empty());
        let again = b.lease(t + 200, 10, MINUTE).await.expect("b");
        assert_eq!(ids(&again), ["w"]);
        assert_eq!(again[0].next_at, t + 200);
        b.finish("w", delivered(), t + 300)
            .await
            .expect("b finishes");
        // A's late word changes nothing: the delivery is done.
        a.finish(
            "w",
            Outcome::Retry {
                next_at: t + 400,
                category: "timeout".into(),
                detail: String::new(),
            },
            t + 400,
        )
        .await
        .expect("a finishes late");
        let w = b.delivery("w").await.expect("read").expect("kept");
        assert_eq!((w.status, w.tries), (Status::Delivered, 1));
        // The key goes on.
        assert_eq!(ids(&a.lease(t + 500, 10, MINUTE).await.expect("a")), ["w2"]);
    });
}

#[test]
fn redis_queue_two_replicas_never_deliver_one_write_twice() {
    let Some(url) = common::redis_url("the Redis queue test") else {
        return;
    };
    runtime().block_on(async {
        let (a, prefix) = queue(&url).await;
        let a = Arc::new(a);
        let b = Arc::new(RedisQueue::with_prefix(connect(&url).await, prefix));
        // 200 writes over 8 keys, accepted through both replicas at once.
        let accepting: Vec<_> = (0..8)
            .map(|k| {
                let q = Arc::clone(if k % 2 == 0 { &a } else { &b });
                tokio::spawn(async move {
                    for i in 0..25 {
                        let mut w = write(&format!("k{k}-{i:02}"), "r", Some(&format!("k{k}")));
                        w.max_pending = 1_000;
                        assert_eq!(q.accept(w).await.expect("accept"), Accepted::Queued);
                    }
                })
            })
            .collect();
        for t in accepting {
            t.await.expect("accepting task");
        }
        assert_eq!(a.pending_len().await.expect("len"), 200);
        // Both replicas lease and deliver until nothing is left; every lease is noted in order.
        let log: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
        let workers: Vec<_> = [Arc::clone(&a), Arc::clone(&b)]
            .into_iter()
            .enumerate()
            .map(|(n, q)| {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let deadline = std::time::Instant::now() + MINUTE;
                    loop {
                        assert!(std::time::Instant::now() < deadline, "still delivering");
                        let got = q.lease(now_ms(), 5, MINUTE).await.expect("lease");
                        if got.is_empty() {
                            if q.pending_len().await.expect("len") == 0 {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            continue;
                        }
                        log.lock()
                            .expect("log")
                            .extend(got.iter().map(|d| (n, d.id.clone())));
                        for d in got {
                            q.finish(&d.id, delivered(), now_ms())
                                .await
                                .expect("finish");
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.expect("worker");
        }
        let log = log.lock().expect("log").clone();
        // Every id exactly once.
        let mut times: HashMap<&str, usize> = HashMap::new();
        for (_, id) in &log {
            *times.entry(id.as_str()).or_default() += 1;
        }
        assert_eq!(times.len(), 200);
        assert!(
            times.values().all(|&n| n == 1),
            "delivered twice: {times:?}"
        );
        // Per key, in the order accepted.
        let mut per_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (_, id) in &log {
            per_key
                .entry(&id[..id.find('-').expect("dash")])
                .or_default()
                .push(id);
        }
        for (key, got) in per_key {
            let mut sorted = got.clone();
            sorted.sort_unstable();
            assert_eq!(got, sorted, "key {key} out of order");
        }
        // Both replicas did some of the work.
        assert!(log.iter().any(|(n, _)| *n == 0) && log.iter().any(|(n, _)| *n == 1));
        let d = a.delivery("k3-24").await.expect("read").expect("kept");
        assert_eq!((d.status, d.tries), (Status::Delivered, 1));
        let stats = b.queue_stats().await.expect("stats");
        assert_eq!((stats.pending, stats.dead), (0, 0));
    });
}
