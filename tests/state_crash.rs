//! The state store survives `kill -9`: a writer process reports each key once `complete` has
//! returned, is killed with SIGKILL while it keeps writing, and every key it reported is then
//! replayed, body intact, from the reopened store.
//!
//! The test binary plays both parts: run with `PATINA_STATE_CRASH_WRITER=<dir>` it is the
//! writer (the same test, re-executed by itself).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use patina::state::{Claim, Fingerprint, Store, StoredResponse};

const WRITER: &str = "PATINA_STATE_CRASH_WRITER";
const TEST_NAME: &str = "a_killed_writer_loses_no_completed_key";
const LEASE: Duration = Duration::from_mins(1);
const TTL: Duration = Duration::from_hours(1);
/// Keys the parent waits for before it kills the writer.
const REPORTED_BEFORE_KILL: usize = 20;

fn key(i: u64) -> String {
    format!("identity|POST /v1/orders|key-{i}")
}

fn fingerprint(i: u64) -> Fingerprint {
    Fingerprint::of(&[format!("body {i}").as_bytes()])
}

fn response(i: u64) -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![("location".into(), format!("/v1/orders/{i}"))],
        // Big enough to span several pages, so a torn write would show.
        body: format!("{{\"order\":{i},\"pad\":\"{}\"}}", "x".repeat(10_000)).into_bytes(),
    }
}

/// The writer: completes keys one after another, printing each after `complete` returns,
/// until killed (or, should the parent be gone, for at most 20 s).
fn write_until_killed(dir: &Path) {
    let store = Store::open(dir).expect("writer opens the store");
    let started = Instant::now();
    for i in 0.. {
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
        let k = key(i);
        assert_eq!(
            store.claim(&k, &fingerprint(i), LEASE, TTL).expect("claim"),
            Claim::Run
        );
        store
            .complete(&k, &fingerprint(i), &response(i), TTL)
            .expect("complete");
        // println! flushes at the newline: the parent sees the line once this returns.
        println!("completed {i}");
    }
}

#[test]
fn a_killed_writer_loses_no_completed_key() {
    if let Some(dir) = std::env::var_os(WRITER) {
        write_until_killed(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(WRITER, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the writer");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut reported = Vec::new();
    while reported.len() < REPORTED_BEFORE_KILL {
        let Some(line) = lines.next() else {
            let status = child.wait().expect("wait");
            panic!("the writer stopped after {} keys: {status}", reported.len());
        };
        if let Some(i) = line.expect("read").strip_prefix("completed ") {
            reported.push(i.parse::<u64>().expect("a key number"));
        }
    }
    child.kill().expect("SIGKILL the writer");
    child.wait().expect("reap the writer");
    // Whatever it printed before dying counts too.
    for line in lines {
        if let Some(i) = line.expect("read").strip_prefix("completed ") {
            reported.push(i.parse().expect("a key number"));
        }
    }

    let store = Store::open(dir.path()).expect("reopen after the kill");
    for &i in &reported {
        assert_eq!(
            store
                .claim(&key(i), &fingerprint(i), LEASE, TTL)
                .expect("claim"),
            Claim::Replay(response(i)),
            "key {i} was reported complete"
        );
    }
    // The store stays usable after the crash.
    let next = reported.iter().max().expect("some keys") + 1_000;
    assert_eq!(
        store
            .claim(&key(next), &fingerprint(next), LEASE, TTL)
            .expect("claim"),
        Claim::Run
    );
}
