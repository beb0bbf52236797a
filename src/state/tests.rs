//! The state store's idempotency records: claims, replays, leases, expiry, purge, threads and
//! reopening. Times are passed in (`*_at`) where a test needs the clock to move.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::{Claim, Fingerprint, MAX_KEY_LEN, Store, StoreError, StoredResponse};

const LEASE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_hours(24);
const T0: u64 = 1_700_000_000_000;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    (dir, store)
}

fn fp(body: &str) -> Fingerprint {
    Fingerprint::of(&[b"POST", b"/v1/jobs", body.as_bytes()])
}

fn created(body: &str) -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("location".into(), "/v1/jobs/42".into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn state_claim_complete_then_replay() {
    let (_dir, s) = store();
    let f = fp(r#"{"note":"hi"}"#);
    assert_eq!(s.claim("k", &f, LEASE, TTL).expect("claim"), Claim::Run);
    s.complete("k", &f, &created(r#"{"id":42}"#), TTL)
        .expect("complete");
    assert_eq!(
        s.claim("k", &f, LEASE, TTL).expect("claim"),
        Claim::Replay(created(r#"{"id":42}"#))
    );
    assert_eq!(s.len().expect("len"), 1);
}

#[test]
fn state_replays_empty_headers_and_body() {
    let (_dir, s) = store();
    let f = fp("");
    let empty = StoredResponse {
        status: 204,
        headers: vec![],
        body: vec![],
    };
    assert_eq!(s.claim("k", &f, LEASE, TTL).expect("claim"), Claim::Run);
    s.complete("k", &f, &empty, TTL).expect("complete");
    assert_eq!(
        s.claim("k", &f, LEASE, TTL).expect("claim"),
        Claim::Replay(empty)
    );
}

#[test]
fn state_another_fingerprint_is_a_mismatch_in_flight_or_completed() {
    let (_dir, s) = store();
    let (a, b) = (fp("a"), fp("b"));
    assert_eq!(s.claim("k", &a, LEASE, TTL).expect("claim"), Claim::Run);
    assert_eq!(
        s.claim("k", &b, LEASE, TTL).expect("claim"),
        Claim::Mismatch
    );
    s.complete("k", &a, &created("a"), TTL).expect("complete");
    assert_eq!(
        s.claim("k", &b, LEASE, TTL).expect("claim"),
        Claim::Mismatch
    );
    // Other keys are untouched.
    assert_eq!(s.claim("k2", &b, LEASE, TTL).expect("claim"), Claim::Run);
}

#[test]
fn state_a_running_claim_is_in_flight() {
    let (_dir, s) = store();
    let f = fp("a");
    assert_eq!(s.claim("k", &f, LEASE, TTL).expect("claim"), Claim::Run);
    assert_eq!(
        s.claim("k", &f, LEASE, TTL).expect("claim"),
        Claim::InFlight
    );
}

#[test]
fn state_a_lapsed_lease_runs_again() {
    let (_dir, s) = store();
    let f = fp("a");
    let lease_ms = 30_000;
    assert_eq!(
        s.claim_at("k", &f, LEASE, TTL, T0).expect("claim"),
        Claim::Run
    );
    assert_eq!(
        s.claim_at("k", &f, LEASE, TTL, T0 + lease_ms - 1)
            .expect("claim"),
        Claim::InFlight
    );
    assert_eq!(
        s.claim_at("k", &f, LEASE, TTL, T0 + lease_ms)
            .expect("claim"),
        Claim::Run
    );
    // The new claim holds its own lease; another body may take a lapsed claim too.
    assert_eq!(
        s.claim_at("k", &f, LEASE, TTL, T0 + lease_ms + 1)
            .expect("claim"),
        Claim::InFlight
    );
    assert_eq!(
        s.claim_at("k", &fp("b"), LEASE, TTL, T0 + 3 * lease_ms)
            .expect("claim"),
        Claim::Run
    );
}

#[test]
fn state_a_lapsed_lease_with_a_real_clock() {
    let (_dir, s) = store();
    let f = fp("a");
    let lease = Duration::from_millis(50);
    assert_eq!(s.claim("k", &f, lease, TTL).expect("claim"), Claim::Run);
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(s.claim("k", &f, lease, TTL).expect("claim"), Claim::Run);
}

#[test]
fn state_an_expired_response_runs_again() {
    let (_dir, s) = store();
    let f = fp("a");
    let ttl = Duration::from_mins(1);
    assert_eq!(
        s.claim_at("k", &f, LEASE, ttl, T0).expect("claim"),
        Claim::Run
    );
    s.complete_at("k", &f, &created("a"), ttl, T0 + 1_000)
        .expect("complete");
    // Kept for ttl from completion.
    assert_eq!(
        s.claim_at("k", &f, LEASE, ttl, T0 + 60_999).expect("claim"),
        Claim::Replay(created("a"))
    );
    assert_eq!(
        s.claim_at("k", &f, LEASE, ttl, T0 + 61_000).expect("claim"),
        Claim::Run
    );
    // Expired, a different body is no mismatch either.
    s.complete_at("k", &f, &created("a"), ttl, T0 + 61_000)
        .expect("complete");
    assert_eq!(
        s.claim_at("k", &fp("b"), LEASE, ttl, T0 + 200_000)
            .expect("claim"),
        Claim::Run
    );
}

#[test]
fn state_release_forgets_only_its_own_in_flight_claim() {
    let (_dir, s) = store();
    let (a, b) = (fp("a"), fp("b"));
    assert_eq!(s.claim("k", &a, LEASE, TTL).expect("claim"), Claim::Run);
    // Another fingerprint cannot release it.
    s.release("k", &b).expect("release");
    assert_eq!(
        s.claim("k", &a, LEASE, TTL).expect("claim"),
        Claim::InFlight
    );
    s.release("k", &a).expect("release");
    assert_eq!(s.len().expect("len"), 0);
    assert_eq!(s.claim("k", &a, LEASE, TTL).expect("claim"), Claim::Run);
    // A completed record is not released.
    s.complete("k", &a, &created("a"), TTL).expect("complete");
    s.release("k", &a).expect("release");
    assert_eq!(
        s.claim("k", &a, LEASE, TTL).expect("claim"),
        Claim::Replay(created("a"))
    );
    // Releasing what is not there is fine.
    s.release("nothing", &a).expect("release");
}

#[test]
fn state_complete_leaves_a_key_another_body_has_taken() {
    let (_dir, s) = store();
    let (a, b) = (fp("a"), fp("b"));
    assert_eq!(
        s.claim_at("k", &a, LEASE, TTL, T0).expect("claim"),
        Claim::Run
    );
    // a's lease lapses; b claims the key and is still running when a completes.
    assert_eq!(
        s.claim_at("k", &b, LEASE, TTL, T0 + 40_000).expect("claim"),
        Claim::Run
    );
    s.complete_at("k", &a, &created("a"), TTL, T0 + 41_000)
        .expect("complete");
    assert_eq!(
        s.claim_at("k", &b, LEASE, TTL, T0 + 42_000).expect("claim"),
        Claim::InFlight
    );
    // A completion whose record was purged meanwhile is still stored.
    s.complete_at("gone", &a, &created("a"), TTL, T0)
        .expect("complete");
    assert_eq!(
        s.claim_at("gone", &a, LEASE, TTL, T0 + 1).expect("claim"),
        Claim::Replay(created("a"))
    );
}

#[test]
fn state_purge_deletes_expired_records_and_lapsed_claims() {
    let (_dir, s) = store();
    let f = fp("a");
    let short = Duration::from_secs(10);
    // Completed, expires at T0 + 10 s.
    s.claim_at("done-old", &f, LEASE, short, T0).expect("claim");
    s.complete_at("done-old", &f, &created("a"), short, T0)
        .expect("complete");
    // Completed, kept a day.
    s.claim_at("done-new", &f, LEASE, TTL, T0).expect("claim");
    s.complete_at("done-new", &f, &created("a"), TTL, T0)
        .expect("complete");
    // In flight, lease lapses at T0 + 30 s.
    s.claim_at("running-old", &f, LEASE, TTL, T0)
        .expect("claim");
    // In flight, lease lapses at T0 + 90 s.
    s.claim_at("running-new", &f, LEASE, TTL, T0 + 60_000)
        .expect("claim");
    assert_eq!(s.len().expect("len"), 4);
    assert_eq!(s.purge_expired_at(T0 + 5_000).expect("purge"), 0);
    assert_eq!(s.purge_expired_at(T0 + 31_000).expect("purge"), 2);
    assert_eq!(s.len().expect("len"), 2);
    assert_eq!(
        s.claim_at("done-new", &f, LEASE, TTL, T0 + 31_000)
            .expect("claim"),
        Claim::Replay(created("a"))
    );
    assert_eq!(
        s.claim_at("running-new", &f, LEASE, TTL, T0 + 31_000)
            .expect("claim"),
        Claim::InFlight
    );
    // With the real clock (years after T0) everything left has expired.
    assert_eq!(s.purge_expired().expect("purge"), 2);
    assert!(s.is_empty().expect("is_empty"));
}

#[test]
fn state_twenty_threads_one_key_exactly_one_runs() {
    let (_dir, s) = store();
    let s = Arc::new(s);
    let f = fp("same body");
    let start = Arc::new(Barrier::new(20));
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let (s, start) = (Arc::clone(&s), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                s.claim("one key", &f, LEASE, TTL).expect("claim")
            })
        })
        .collect();
    let claims: Vec<Claim> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let runs = claims.iter().filter(|c| **c == Claim::Run).count();
    let in_flight = claims.iter().filter(|c| **c == Claim::InFlight).count();
    assert_eq!((runs, in_flight), (1, 19), "{claims:?}");
}

#[test]
fn state_a_reopened_store_still_replays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("data").join("state");
    let f = fp("a");
    {
        let s = Store::open(&nested).expect("open creates the directory");
        assert_eq!(s.claim("k", &f, LEASE, TTL).expect("claim"), Claim::Run);
        s.complete("k", &f, &created("a"), TTL).expect("complete");
        assert_eq!(s.claim("k2", &f, LEASE, TTL).expect("claim"), Claim::Run);
    }
    let s = Store::open(&nested).expect("reopen");
    assert_eq!(
        s.claim("k", &f, LEASE, TTL).expect("claim"),
        Claim::Replay(created("a"))
    );
    assert_eq!(
        s.claim("k2", &f, LEASE, TTL).expect("claim"),
        Claim::InFlight
    );
    assert!(s.path().ends_with("data/state/patina-state.redb"));
}

#[test]
fn state_refuses_a_second_open_and_long_keys() {
    let (dir, s) = store();
    let err = Store::open(dir.path()).expect_err("second open");
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
    assert!(err.to_string().contains("patina-state.redb"), "{err}");

    let f = fp("a");
    let long = "x".repeat(MAX_KEY_LEN + 1);
    let err = s.claim(&long, &f, LEASE, TTL).expect_err("long key");
    assert!(
        matches!(err, StoreError::KeyTooLong { len: 1025, .. }),
        "{err:?}"
    );
    let exact = "x".repeat(MAX_KEY_LEN);
    assert_eq!(s.claim(&exact, &f, LEASE, TTL).expect("claim"), Claim::Run);
}

#[test]
fn state_open_names_the_path_it_cannot_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let err = Store::open(&file.join("sub")).expect_err("under a file");
    assert!(err.to_string().contains("a-file"), "{err}");

    let junk = dir.path().join("junk");
    std::fs::create_dir(&junk).expect("mkdir");
    std::fs::write(junk.join(super::FILE_NAME), b"not a redb file at all").expect("write");
    let err = Store::open(&junk).expect_err("junk file");
    assert!(err.to_string().contains("patina-state.redb"), "{err}");
}

#[test]
fn state_fingerprints_prefix_each_part_with_its_length() {
    assert_ne!(
        Fingerprint::of(&[b"ab", b"c"]),
        Fingerprint::of(&[b"a", b"bc"])
    );
    assert_eq!(
        Fingerprint::of(&[b"ab", b"c"]),
        Fingerprint::of(&[b"ab", b"c"])
    );
    assert_ne!(Fingerprint::of(&[]), Fingerprint::of(&[b""]));
    assert!(format!("{:?}", Fingerprint::of(&[])).starts_with("Fingerprint("));
}

#[test]
fn state_store_is_send_sync_and_debug_shows_only_the_path() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
    let (_dir, s) = store();
    let shown = format!("{s:?}");
    assert!(shown.starts_with("Store { path: "), "{shown}");
}

#[test]
fn state_unreadable_records_are_errors_and_purged() {
    let (_dir, s) = store();
    let txn = s.begin_write().expect("txn");
    {
        let mut t = txn.open_table(super::IDEMPOTENCY).expect("table");
        t.insert("bad", [9u8, 1, 2].as_slice()).expect("insert");
    }
    s.commit(txn).expect("commit");
    let err = s
        .claim("bad", &fp("a"), LEASE, TTL)
        .expect_err("bad record");
    assert!(matches!(err, StoreError::BadRecord { .. }), "{err:?}");
    assert_eq!(s.purge_expired().expect("purge"), 1);
    assert_eq!(
        s.claim("bad", &fp("a"), LEASE, TTL).expect("claim"),
        Claim::Run
    );
}

#[test]
fn state_completions_from_many_threads_share_commits_and_all_survive() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let s = Arc::new(Store::open(dir.path()).expect("open"));
        let threads: Vec<_> = (0..64)
            .map(|i| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let key = format!("k{i}");
                    let f = fp(&key);
                    assert_eq!(s.claim(&key, &f, LEASE, TTL).expect("claim"), Claim::Run);
                    s.complete(&key, &f, &created(&key), TTL).expect("complete");
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
    }
    let s = Store::open(dir.path()).expect("reopen at once: the committer closed the file");
    for i in 0..64 {
        let key = format!("k{i}");
        assert_eq!(
            s.claim(&key, &fp(&key), LEASE, TTL).expect("claim"),
            Claim::Replay(created(&key)),
            "{key}"
        );
    }
}
