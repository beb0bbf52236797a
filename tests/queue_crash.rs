//! No accepted write is lost, none is written twice: real `patina serve` processes, killed with
//! SIGKILL, over a database that goes away (SQLite: its file is not there yet; PostgreSQL: a
//! proxy in front of it is cut), and a connection cut right after the database committed.
//! `patina dlq` is run against the running gateway (through its socket) and a stopped one.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::{Served, TestDb, query_db, token};

/// Queued notes ordered per job, with a dedup table.
const MAPPING: &str = r#"source = "demo"

[[route]]
id = "queueNote"
method = "POST"
path = "/jobs/{job_number}/notes/queued"
scopes = ["jobs:write"]
delivery = "queued"
order_key = "job_number"
dedup_table = "PATINA.DELIVERED"
retry = { base = "50ms", cap = "500ms", max_attempts = 1000, max_age = "1h" }
params.job_number = { type = "integer", minimum = 1 }
body.text = { type = "string", min_length = 1, max_length = 60 }

[[route.step]]
sql = """
INSERT INTO JOBNOTE (JOBNO, NOTSQ, NOTTX, NOTBY, NOTDT)
SELECT J.JOBNO, (SELECT COALESCE(MAX(N.NOTSQ), 0) + 1 FROM JOBNOTE N WHERE N.JOBNO = J.JOBNO),
       :text, 'QUEUE', 0
FROM JOBMST J WHERE J.JOBNO = :job_number
"""
"#;

const WRITES: usize = 1000;

/// A gateway's files: mappings, config (state in `state/`), over `connection_string`.
fn setup(dir: &Path, dialect: &str, connection_string: &str) -> std::path::PathBuf {
    setup_with(dir, dialect, connection_string, "")
}

/// The same, with more settings in `[state]`.
fn setup_with(
    dir: &Path,
    dialect: &str,
    connection_string: &str,
    state_extra: &str,
) -> std::path::PathBuf {
    let mappings = dir.join("mappings/v1");
    std::fs::create_dir_all(&mappings).expect("mkdir");
    std::fs::write(mappings.join("q.toml"), MAPPING).expect("mapping");
    let config = dir.join("patina.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nmappings = \"mappings\"\n[state]\ndir = \"state\"\n{state_extra}\n[queue]\nconcurrency = 8\nlease = \"3s\"\n\
             [sources.demo]\nkind = \"odbc\"\ndialect = \"{dialect}\"\nconnection_string = \"{}\"\n\
             pool = {{ max = {pool}, acquire_timeout = \"2s\" }}\n{}",
            connection_string.replace('\\', "\\\\").replace('"', "\\\""),
            common::auth_section(&dir.join("keys.toml")),
            // SQLite takes one writer at a time: more connections only wait on its lock.
            pool = if dialect == "sqlite" { 1 } else { 8 },
        ),
    )
    .expect("config");
    config
}

fn auth() -> String {
    format!(
        "Bearer {}",
        token("tester", "jobs:read jobs:write", serde_json::json!({}))
    )
}

/// Send `WRITES` queued notes over `jobs` (text `c<i>`), from 8 threads; every one must be 202.
fn send_all(base: &str, jobs: &[u32]) {
    send_all_to(&[base], jobs);
}

/// The same, each thread to one of `bases` in turn.
fn send_all_to(bases: &[&str], jobs: &[u32]) {
    let auth = auth();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (auth, base) = (&auth, bases[t % bases.len()]);
            s.spawn(move || {
                let client = reqwest::blocking::Client::new();
                // Each thread sends whole jobs, so the order per job is the order sent.
                for (j, job) in jobs.iter().enumerate() {
                    if j % 8 != t {
                        continue;
                    }
                    for i in 0..WRITES / jobs.len() {
                        let res = client
                            .post(format!("{base}/v1/jobs/{job}/notes/queued"))
                            .header("Authorization", auth)
                            .header("Content-Type", "application/json")
                            .body(format!(r#"{{"text": "c{i}"}}"#))
                            .send()
                            .expect("request");
                        assert_eq!(res.status(), 202, "{}", res.text().unwrap_or_default());
                    }
                }
            });
        }
    });
}

/// Forget the notes of `jobs` (the shared PostgreSQL database outlives a run).
fn fresh(db: &TestDb, jobs: &[u32]) {
    if db.dialect == "sqlite" {
        return; // a database of the test's own, not there yet
    }
    let list = jobs
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    query_db(db, &format!("DELETE FROM JOBNOTE WHERE JOBNO IN ({list})"));
}

/// The notes of `jobs` written by the queue: (job, sequence, text).
fn queued_notes(db: &TestDb, jobs: &[u32]) -> Vec<(u32, i64, String)> {
    let list = jobs
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    query_db(
        db,
        &format!(
            "SELECT JOBNO, NOTSQ, NOTTX FROM JOBNOTE WHERE NOTBY = 'QUEUE' AND JOBNO IN ({list}) \
             ORDER BY JOBNO, NOTSQ"
        ),
    )
    .into_iter()
    .map(|r| {
        let num = |v: &Option<String>| {
            v.as_deref()
                .and_then(|v| v.trim_end_matches(".0").parse::<i64>().ok())
                .expect("number")
        };
        (
            u32::try_from(num(&r[0])).expect("job"),
            num(&r[1]),
            r[2].clone().unwrap_or_default().trim_end().to_string(),
        )
    })
    .collect()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every note arrived exactly once, in the order sent per job.
fn check_exactly_once_in_order(db: &TestDb, jobs: &[u32]) {
    let notes = queued_notes(db, jobs);
    assert_eq!(
        notes.len(),
        WRITES,
        "every accepted write arrived, none twice"
    );
    for job in jobs {
        let texts: Vec<&str> = notes
            .iter()
            .filter(|(j, _, _)| j == job)
            .map(|(_, _, t)| t.as_str())
            .collect();
        let want: Vec<String> = (0..WRITES / jobs.len()).map(|i| format!("c{i}")).collect();
        assert_eq!(texts, want, "job {job}: each note once, in the order sent");
    }
}

fn dlq(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_patina"))
        .arg("dlq")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("patina dlq runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Database away → 1000 writes accepted → it comes back → `kill -9` mid-delivery → restart:
/// all arrive, each once, in order per job.
fn survives(db: &TestDb, jobs: &[u32], dir: &Path, config: &Path, down: &dyn Fn(), up: &dyn Fn()) {
    fresh(db, jobs);
    down();
    let first = common::serve(config);
    send_all(&first.base, jobs);
    let metrics = reqwest::blocking::get(format!("{}/metrics", first.base))
        .and_then(reqwest::blocking::Response::text)
        .expect("metrics");
    assert!(
        metrics.contains(&format!("patina_queue_pending_total {WRITES}")),
        "{metrics}"
    );
    // The CLI reaches the running gateway through its socket.
    let (ok, out, err) = dlq(config, &["list"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("no dead letters"), "{out}");
    up();
    // Let part of the queue through, then kill the process in the middle of it.
    wait_for("the first deliveries", Duration::from_mins(1), || {
        queued_notes(db, jobs).len() >= WRITES / 5
    });
    kill_9(first);
    let delivered_before = queued_notes(db, jobs).len();
    assert!(
        delivered_before < WRITES,
        "the kill came too late to test anything"
    );
    let second = common::serve(config);
    wait_for("every delivery", Duration::from_mins(2), || {
        queued_notes(db, jobs).len() >= WRITES
    });
    // Settle: nothing more arrives (no duplicate comes late).
    std::thread::sleep(Duration::from_millis(500));
    check_exactly_once_in_order(db, jobs);
    drop(second);
    let _ = dir;
}

fn kill_9(mut s: Served) {
    let _ = s.child.kill(); // SIGKILL
    let _ = s.child.wait();
}

#[test]
fn sqlite_a_killed_gateway_loses_no_queued_write_and_writes_none_twice() {
    let (dir, db) = common::sqlite_fresh();
    let real = db
        .connection_string
        .split(';')
        .find_map(|kv| kv.strip_prefix("Database="))
        .expect("path")
        .to_string();
    let away = dir.path().join("later/demo.db");
    let later = format!("Driver={{SQLite3}};Database={};NoCreat=1", away.display());
    let config = setup(dir.path(), "sqlite", &later);
    let jobs: Vec<u32> = (200_241..200_251).collect();
    let moved = TestDb {
        connection_string: format!("Driver={{SQLite3}};Database={}", away.display()),
        dialect: "sqlite",
    };
    let reader = db.clone();
    survives(&moved, &jobs, dir.path(), &config, &|| {}, &|| {
        std::fs::create_dir_all(away.parent().expect("dir")).expect("mkdir");
        std::fs::copy(&real, &away).expect("the database comes back");
    });
    let _ = reader;
    // Stopped: the CLI opens the store itself.
    let (ok, out, err) = dlq(&config, &["list"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("no dead letters"), "{out}");
    let (ok, _, err) = dlq(&config, &["replay", "no-such-id"]);
    assert!(!ok, "replaying nothing fails");
    assert!(err.contains("no dead letter matched"), "{err}");
}

/// The PostgreSQL connection string with its port replaced.
fn through(db: &TestDb, port: u16) -> String {
    db.connection_string
        .split(';')
        .map(|kv| {
            if kv.to_ascii_lowercase().starts_with("port=") {
                format!("Port={port}")
            } else {
                kv.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn pg_port(db: &TestDb) -> u16 {
    db.connection_string
        .split(';')
        .find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.eq_ignore_ascii_case("port").then(|| v.parse().ok())?
        })
        .expect("the PostgreSQL connection string names its port")
}

#[test]
fn postgres_a_killed_gateway_loses_no_queued_write_and_writes_none_twice() {
    let Some(db) = common::postgres() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = Proxy::start(pg_port(&db));
    let config = setup(dir.path(), "postgres", &through(&db, proxy.port));
    let jobs: Vec<u32> = (200_251..200_261).collect();
    survives(
        &db,
        &jobs,
        dir.path(),
        &config,
        &|| {
            proxy.cut();
        },
        &|| proxy.restore(),
    );
}

#[test]
fn postgres_a_connection_lost_after_commit_writes_once() {
    let Some(db) = common::postgres() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = Proxy::start(pg_port(&db));
    let config = setup(dir.path(), "postgres", &through(&db, proxy.port));
    let gw = common::serve(&config);
    let job = 200_261;
    fresh(&db, &[job]);
    proxy.cut_after_next_commit();
    let res = reqwest::blocking::Client::new()
        .post(format!("{}/v1/jobs/{job}/notes/queued", gw.base))
        .header("Authorization", auth())
        .header("Content-Type", "application/json")
        .body(r#"{"text": "committed, answer lost"}"#)
        .send()
        .expect("request");
    assert_eq!(res.status(), 202);
    let href = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_string();
    let mut last = serde_json::Value::Null;
    wait_for("the delivery", Duration::from_mins(1), || {
        last = reqwest::blocking::Client::new()
            .get(format!("{}{href}", gw.base))
            .header("Authorization", auth())
            .send()
            .and_then(reqwest::blocking::Response::json)
            .unwrap_or_default();
        last["status"] == "delivered"
    });
    assert_eq!(
        proxy.commits_cut.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the connection was cut after a COMMIT"
    );
    assert!(
        last["attempts"].as_u64().is_some_and(|n| n >= 2),
        "the lost answer was retried: {last}"
    );
    let notes = queued_notes(&db, &[job]);
    assert_eq!(
        notes,
        [(job, 1, "committed, answer lost".to_string())],
        "written once, though delivered twice"
    );
}

/// The test Redis, database 7, emptied first (only this test uses it); or a loud skip.
fn redis_url() -> Option<String> {
    let u = common::redis_url("the two-replica queue test")?;
    let url = format!("{}/7", u.trim_end_matches('/'));
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let mut conn = client.get_connection().expect("the test Redis answers");
    redis::cmd("FLUSHDB")
        .query::<()>(&mut conn)
        .expect("flushdb");
    Some(url)
}

#[test]
fn redis_two_replicas_share_one_queue_and_one_survives_the_other() {
    let Some(url) = redis_url() else {
        return;
    };
    let Some(db) = common::postgres() else {
        return;
    };
    let proxy = Proxy::start(pg_port(&db));
    let cs = through(&db, proxy.port);
    let state = format!("backend = \"redis\"\nredis_url = \"{url}\"");
    let (da, dbb) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let (ca, cb) = (
        setup_with(da.path(), "postgres", &cs, &state),
        setup_with(dbb.path(), "postgres", &cs, &state),
    );
    proxy.cut();
    let (a, b) = (common::serve(&ca), common::serve(&cb));
    let jobs: Vec<u32> = (200_271..200_281).collect();
    fresh(&db, &jobs);
    fresh(&db, &[200_281]);
    send_all_to(&[&a.base, &b.base], &jobs);

    // An Idempotency-Key used on replica A and retried on replica B: the same delivery.
    let keyed = |base: &str| {
        reqwest::blocking::Client::new()
            .post(format!("{base}/v1/jobs/200281/notes/queued"))
            .header("Authorization", auth())
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", "across-replicas-1")
            .body(r#"{"text": "once across replicas"}"#)
            .send()
            .expect("request")
    };
    let first = keyed(&a.base);
    assert_eq!(first.status(), 202);
    let again = keyed(&b.base);
    assert_eq!(again.status(), 202);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(
        first.headers().get("location"),
        again.headers().get("location")
    );
    // Either replica reads the delivery.
    let href = first
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_string();
    let status = reqwest::blocking::Client::new()
        .get(format!("{}{href}", b.base))
        .header("Authorization", auth())
        .send()
        .and_then(reqwest::blocking::Response::json::<serde_json::Value>)
        .expect("delivery");
    assert_eq!(status["status"], "pending", "{status}");

    // The database comes back; replica A dies with deliveries in flight; B finishes them.
    proxy.restore();
    wait_for("the first deliveries", Duration::from_mins(1), || {
        queued_notes(&db, &jobs).len() >= WRITES / 5
    });
    kill_9(a);
    wait_for(
        "every delivery, by replica B",
        Duration::from_mins(2),
        || queued_notes(&db, &jobs).len() >= WRITES,
    );
    std::thread::sleep(Duration::from_secs(4));
    check_exactly_once_in_order(&db, &jobs);
    assert_eq!(
        queued_notes(&db, &[200_281]).len(),
        1,
        "the keyed write once"
    );
    drop(b);
}
