//! Batched lookups over real ODBC drivers (SQLite, PostgreSQL): many concurrent lookups of a
//! `batch` route, with repeated and missing keys, each get exactly the answer the same route
//! without `batch` gives; claim-bound values never mix identities; a batch that fails (a
//! statement timeout) fails its requests as each would have failed alone; a key the database
//! refuses fails only its own request. A pool of one connection makes the batches form.

mod common;

use std::collections::HashMap;

use common::{Gateway, Options, TestDb};

/// The same lookup twice, with and without `batch`, plus a CHAR-keyed one and a claim-bound one.
const MAPPING: &str = r#"source = "demo"

[[route]]
id = "getJob"
path = "/jobs/{job_number}"
public = true
one = true
sql = "SELECT JOBNO, JOBDS, STSCD, QTYOR FROM JOBMST WHERE JOBNO = :job_number"
params.job_number = { type = "integer", minimum = 1 }
columns.JOBNO = { name = "job_number", type = "integer" }
columns.JOBDS = { name = "description", trim = "end" }
columns.STSCD = { name = "status", codes = { P = "planned", R = "released", H = "on_hold", C = "complete", X = "cancelled" } }
columns.QTYOR = { name = "quantity", type = "decimal", scale = 3 }

[[route]]
id = "getJobBatched"
path = "/batched/jobs/{job_number}"
public = true
one = true
batch = { max = 16 }
sql = "SELECT JOBNO, JOBDS, STSCD, QTYOR FROM JOBMST WHERE JOBNO = :job_number"
params.job_number = { type = "integer", minimum = 1 }
columns.JOBNO = { name = "job_number", type = "integer" }
columns.JOBDS = { name = "description", trim = "end" }
columns.STSCD = { name = "status", codes = { P = "planned", R = "released", H = "on_hold", C = "complete", X = "cancelled" } }
columns.QTYOR = { name = "quantity", type = "decimal", scale = 3 }

[[route]]
id = "getCustomerByName"
path = "/customers/{name}"
public = true
one = true
sql = "SELECT CUSNO, CUSNM FROM CUSMST WHERE CUSNM = :name"
params.name = { type = "string" }
columns.CUSNO = { name = "customer_number", type = "integer" }
columns.CUSNM = { name = "name" }

[[route]]
id = "getCustomerByNameBatched"
path = "/batched/customers/{name}"
public = true
one = true
batch = {}
sql = "SELECT CUSNO, CUSNM FROM CUSMST WHERE CUSNM = :name"
params.name = { type = "string" }
columns.CUSNO = { name = "customer_number", type = "integer" }
columns.CUSNM = { name = "name" }

[[route]]
id = "getMyJob"
path = "/mine/jobs/{job_number}"
scopes = ["jobs:read"]
one = true
batch = { max = 8 }
sql = "SELECT JOBNO, CUSNO FROM JOBMST WHERE CUSNO = :customer AND JOBNO = :job_number"
params.job_number = { type = "integer", minimum = 1 }
params.customer = { type = "integer", from_claim = "customer_id" }
columns.JOBNO = { name = "job_number", type = "integer" }
columns.CUSNO = { name = "customer_number", type = "integer" }
"#;

fn gateway(db: &TestDb, mapping: &str) -> Gateway {
    let files = [("v1/jobs.toml", mapping)];
    Gateway::start(
        db,
        &Options {
            source_extra: "pool = { max = 1, acquire_timeout = \"20s\" }",
            mappings: Some(&files),
            ..Options::default()
        },
    )
}

/// `paths` fetched from `threads` threads at once: (path, status, body) in the order given.
fn concurrently(
    gw: &Gateway,
    paths: &[String],
    threads: usize,
    headers: &(dyn Fn(usize) -> Vec<(String, String)> + Sync),
) -> Vec<(u16, String, Option<String>)> {
    let chunks: Vec<Vec<(usize, &String)>> = (0..threads)
        .map(|t| paths.iter().enumerate().skip(t).step_by(threads).collect())
        .collect();
    let mut out: Vec<Option<(u16, String, Option<String>)>> = vec![None; paths.len()];
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(i, p)| {
                            let h = headers(*i);
                            let h: Vec<(&str, &str)> =
                                h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                            let r = gw.get_with(p, &h);
                            let timing = r.header("server-timing").map(str::to_string);
                            (*i, (r.status, r.text, timing))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().expect("thread") {
                out[i] = Some(r);
            }
        }
    });
    out.into_iter().map(|r| r.expect("answered")).collect()
}

/// Requests that ran in a statement with others, from `/metrics`.
fn batched_requests(gw: &Gateway, route: &str) -> (u64, u64) {
    let m = gw.anonymous("/metrics").text;
    let get = |name: &str| -> u64 {
        let prefix = format!("{name}{{route=\"{route}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("patina_batch_size_count"), get("patina_batch_size_sum"))
}

fn lookups_get_their_own_row(db: &TestDb) {
    let gw = gateway(db, MAPPING);
    // Existing keys, repeated ones and missing ones, shuffled by a fixed stride.
    let mut keys: Vec<u64> = (0..140).map(|i| 200_001 + (i * 37) % 300).collect();
    keys.extend([
        100_001, 100_002, 100_003, 100_004, 200_001, 200_001, 200_150,
    ]);
    keys.extend((0..53).map(|i| 900_000 + i % 20));
    assert_eq!(keys.len(), 200);
    let expected: HashMap<u64, (u16, String)> = keys
        .iter()
        .map(|k| {
            let r = gw.anonymous(&format!("/v1/jobs/{k}"));
            (*k, (r.status, r.text))
        })
        .collect();
    assert_eq!(expected[&100_002].0, 200);
    assert_eq!(expected[&900_003].0, 404);
    let paths: Vec<String> = keys
        .iter()
        .map(|k| format!("/v1/batched/jobs/{k}"))
        .collect();
    let got = concurrently(&gw, &paths, 40, &|_| Vec::new());
    for (k, (status, body, _)) in keys.iter().zip(&got) {
        let (want_status, want_body) = &expected[k];
        assert_eq!(status, want_status, "key {k}: {body}");
        if *status == 200 {
            assert_eq!(body, want_body, "key {k}");
        } else {
            let p: serde_json::Value = serde_json::from_str(body).expect("problem");
            assert_eq!(p["status"], 404, "key {k}: {body}");
        }
    }
    let (count, sum) = batched_requests(&gw, "getJobBatched");
    assert_eq!(count, 200, "every lookup is counted once");
    assert!(
        sum > count,
        "200 lookups on one connection formed no batch: {sum} / {count}"
    );
    let shown = got
        .iter()
        .filter_map(|(_, _, t)| t.as_deref())
        .any(|t| t.contains("batch;desc=\"") && !t.contains("batch;desc=\"1 "));
    assert!(shown, "Server-Timing names the batch size");
    println!(
        "{}: 200 lookups, {count} counted, {sum} : a lookup ran with {}.{} lookups in its statement on average",
        db.dialect,
        sum / count,
        sum * 10 / count % 10
    );
}

fn char_keys_answer_as_the_database_compares_them(db: &TestDb) {
    let gw = gateway(db, MAPPING);
    let names = [
        "ACME TOOL & DIE",
        "ACME TOOL & DIE               ",
        "acme tool & die",
        "Bäckerei Müller GmbH",
        "NO SUCH CUSTOMER",
        "O'NEIL FABRICATION",
    ];
    let mut paths = Vec::new();
    for i in 0..60 {
        let name = &names[i % names.len()];
        paths.push(format!(
            "/customers/{}",
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
        ));
    }
    let expected: Vec<(u16, String)> = paths
        .iter()
        .map(|p| {
            let r = gw.anonymous(&format!("/v1{p}"));
            (r.status, r.text)
        })
        .collect();
    let batched: Vec<String> = paths.iter().map(|p| format!("/v1/batched{p}")).collect();
    let got = concurrently(&gw, &batched, 30, &|_| Vec::new());
    for ((p, (want_status, want_body)), (status, body, _)) in paths.iter().zip(&expected).zip(&got)
    {
        assert_eq!(status, want_status, "{p}: {body}");
        if *status == 200 {
            assert_eq!(body, want_body, "{p}");
        }
    }
    assert!(
        expected.iter().any(|(s, _)| *s == 200) && expected.iter().any(|(s, _)| *s == 404),
        "{expected:?}"
    );
    let (count, sum) = batched_requests(&gw, "getCustomerByNameBatched");
    assert!(sum > count, "no batch formed: {sum} / {count}");
}

fn claims_never_mix(db: &TestDb) {
    let gw = gateway(db, MAPPING);
    // Customer 1001 owns 100001 and 100003; 1002 owns 100002; 1100 + i % 40 owns 200001 + i.
    let customers = [1001u64, 1002, 1003, 1100, 1101];
    let jobs = [
        100_001u64, 100_002, 100_003, 100_004, 200_001, 200_002, 200_041,
    ];
    let mut cases = Vec::new();
    for i in 0..140 {
        cases.push((customers[i % customers.len()], jobs[(i * 3) % jobs.len()]));
    }
    let owner = |job: u64| match job {
        100_001 | 100_003 => 1001,
        100_002 => 1002,
        100_004 => 1003,
        j => 1100 + (j - 200_001) % 40,
    };
    let tokens: HashMap<u64, String> = customers
        .iter()
        .map(|c| {
            (
                *c,
                common::token(
                    &format!("user{c}"),
                    "jobs:read",
                    serde_json::json!({ "customer_id": c }),
                ),
            )
        })
        .collect();
    let paths: Vec<String> = cases
        .iter()
        .map(|(_, j)| format!("/v1/mine/jobs/{j}"))
        .collect();
    let got = concurrently(&gw, &paths, 35, &|i| {
        vec![(
            "authorization".to_string(),
            format!("Bearer {}", tokens[&cases[i].0]),
        )]
    });
    for ((customer, job), (status, body, _)) in cases.iter().zip(&got) {
        if owner(*job) == *customer {
            assert_eq!(*status, 200, "{customer} {job}: {body}");
            let v: serde_json::Value = serde_json::from_str(body).expect("json");
            assert_eq!(v["customer_number"], *customer, "{body}");
            assert_eq!(v["job_number"], *job, "{body}");
        } else {
            assert_eq!(*status, 404, "{customer} must not see {job}: {body}");
        }
    }
    let (count, sum) = batched_requests(&gw, "getMyJob");
    assert!(sum > count, "no batch formed: {sum} / {count}");
}

/// A stored value longer than `max_text_bytes` fails only the lookup whose row holds it, with
/// its column named, as alone: the batch that met it runs again one lookup at a time.
fn a_value_too_long_fails_only_its_own_lookup(db: &TestDb) {
    let long = match db.dialect {
        "sqlite" => "printf('%600s', 'x')",
        _ => "repeat('x', 600)",
    };
    let mapping = format!(
        r#"source = "demo"

[[route]]
id = "getLong"
path = "/long/{{job_number}}"
public = true
one = true
BATCH
sql = "SELECT JOBNO, CASE WHEN JOBNO = 200007 THEN {long} ELSE 'short' END AS NOTE FROM JOBMST WHERE JOBNO = :job_number"
params.job_number = {{ type = "integer", minimum = 1 }}
columns.JOBNO = {{ name = "job_number", type = "integer" }}
columns.NOTE = {{ name = "note" }}
"#
    );
    let start = |batch: &str| {
        Gateway::start(
            db,
            &Options {
                source_extra: "pool = { max = 1, acquire_timeout = \"20s\" }\nmax_text_bytes = 256",
                mappings: Some(&[("v1/jobs.toml", &mapping.replace("BATCH", batch))]),
                ..Options::default()
            },
        )
    };
    let alone = start("");
    let want = alone.anonymous("/v1/long/200007");
    assert_eq!(want.status, 500, "{}", want.text);
    assert_eq!(
        want.json()["type"],
        "/problems/undecodable-value",
        "{}",
        want.text
    );
    // The column as the database names it (PostgreSQL folds it to lower case).
    assert!(
        want.text.to_ascii_uppercase().contains("`NOTE`"),
        "{}",
        want.text
    );
    assert_eq!(alone.anonymous("/v1/long/200008").status, 200);
    drop(alone);
    let gw = start("batch = {}");
    let paths: Vec<String> = (0..30)
        .map(|i| format!("/v1/long/{}", 200_001 + i))
        .collect();
    let got = concurrently(&gw, &paths, 30, &|_| Vec::new());
    for (p, (status, body, _)) in paths.iter().zip(&got) {
        if p.ends_with("/200007") {
            assert_eq!(*status, want.status, "{body}");
            let p: serde_json::Value = serde_json::from_str(body).expect("problem");
            assert_eq!(p["type"], want.json()["type"], "{body}");
            assert_eq!(p["detail"], want.json()["detail"], "{body}");
        } else {
            assert_eq!(*status, 200, "{p}: {body}");
            assert!(body.contains("\"short\""), "{p}: {body}");
        }
    }
    let (count, sum) = batched_requests(&gw, "getLong");
    assert!(sum > count, "no batch formed: {sum} / {count}");
}

common::on_both!(
    lookups_get_their_own_row,
    char_keys_answer_as_the_database_compares_them,
    claims_never_mix,
    a_value_too_long_fails_only_its_own_lookup
);

/// A batch whose statement times out fails each of its requests as the statement alone would
/// have (PostgreSQL's `pg_sleep` outlives the route's one-second timeout).
#[test]
fn a_failing_batch_fails_its_requests_as_each_would_fail_alone() {
    let Some(db) = common::postgres() else {
        return;
    };
    let slow = r#"source = "demo"

[[route]]
id = "getSlow"
path = "/slow/{job_number}"
public = true
one = true
statement_timeout = "1s"
SQL
params.job_number = { type = "integer", minimum = 1 }
columns.JOBNO = { name = "job_number", type = "integer" }
"#;
    let sql =
        "sql = \"SELECT JOBNO FROM JOBMST, (SELECT pg_sleep(3)) AS s WHERE JOBNO = :job_number\"";
    let alone = gateway(&db, &slow.replace("SQL", sql));
    let want = alone.anonymous("/v1/slow/100001");
    drop(alone);
    assert_eq!(want.status, 504, "{}", want.text);
    let gw = gateway(&db, &slow.replace("SQL", &format!("batch = {{}}\n{sql}")));
    let paths: Vec<String> = (0..8)
        .map(|i| format!("/v1/slow/{}", 200_001 + i))
        .collect();
    let got = concurrently(&gw, &paths, 8, &|_| Vec::new());
    for (status, body, _) in &got {
        assert_eq!(*status, want.status, "{body}");
        let p: serde_json::Value = serde_json::from_str(body).expect("problem");
        let w: serde_json::Value = serde_json::from_str(&want.text).expect("problem");
        assert_eq!(p["type"], w["type"], "{body}");
        common::assert_no_leak(body);
    }
    let (count, sum) = batched_requests(&gw, "getSlow");
    assert_eq!(count, 8);
    assert!(
        sum > count,
        "the slow lookups formed a batch: {sum} / {count}"
    );
}

/// A batched lookup that holds its connection for 0.3 s (PostgreSQL's `pg_sleep`).
const SLOW_BATCHED: &str = r#"source = "demo"

[[route]]
id = "getSlow"
path = "/slow/{job_number}"
public = true
one = true
batch = {}
sql = "SELECT JOBNO FROM JOBMST, (SELECT pg_sleep(0.3)) AS s WHERE JOBNO = :job_number"
params.job_number = { type = "integer", minimum = 1 }
columns.JOBNO = { name = "job_number", type = "integer" }
"#;

/// Nine slow lookups at once through a gateway whose source has `pool`: every one answers 200.
fn nine_slow_lookups_answer(db: &TestDb, pool: &str) {
    let files = [("v1/jobs.toml", SLOW_BATCHED)];
    let gw = Gateway::start(
        db,
        &Options {
            source_extra: pool,
            mappings: Some(&files),
            ..Options::default()
        },
    );
    let paths: Vec<String> = (0..9).map(|_| "/v1/slow/100001".to_string()).collect();
    for (status, body, _) in concurrently(&gw, &paths, 9, &|_| Vec::new()) {
        assert_eq!(status, 200, "{body}");
    }
}

/// Lookups that filled the wait queue are all answered: the lane that runs their batch waits
/// for the connection on their places, not on one more (which the full queue would refuse).
/// One holds the connection; eight wait, as many as the queue takes.
#[test]
fn a_full_queue_of_lookups_is_answered() {
    let Some(db) = common::postgres() else {
        return;
    };
    nine_slow_lookups_answer(
        &db,
        "pool = { max = 1, max_waiting = 8, acquire_timeout = \"20s\" }",
    );
}

/// With no wait queue at all (`max_waiting = 0`), lookups beyond the batch's lanes (at most
/// eight) still run on the connections that are free, as they would without `batch`.
#[test]
fn without_a_queue_lookups_use_the_free_connections() {
    let Some(db) = common::postgres() else {
        return;
    };
    nine_slow_lookups_answer(&db, "pool = { max = 9, max_waiting = 0 }");
}

/// A key the database refuses (text where JOBNO is a number: SQLSTATE 22P02) fails only its
/// own request: the batch it was in runs again one lookup at a time.
#[test]
fn a_refused_key_fails_only_its_own_request() {
    let Some(db) = common::postgres() else {
        return;
    };
    let text_key = r#"source = "demo"

[[route]]
id = "getJobByText"
path = "/jobs/{job_number}"
public = true
one = true
BATCH
sql = "SELECT JOBNO FROM JOBMST WHERE JOBNO = :job_number"
params.job_number = { type = "string", max_length = 12 }
columns.JOBNO = { name = "job_number", type = "integer" }
"#;
    let alone = gateway(&db, &text_key.replace("BATCH", ""));
    let want = alone.anonymous("/v1/jobs/x1");
    assert_eq!(want.status, 400, "{}", want.text);
    drop(alone);
    let gw = gateway(&db, &text_key.replace("BATCH", "batch = {}"));
    let mut paths: Vec<String> = (0..30)
        .map(|i| format!("/v1/jobs/{}", 200_001 + i))
        .collect();
    paths[7] = "/v1/jobs/x1".into();
    paths[19] = "/v1/jobs/x1".into();
    let got = concurrently(&gw, &paths, 30, &|_| Vec::new());
    for (p, (status, body, _)) in paths.iter().zip(&got) {
        if p.ends_with("x1") {
            assert_eq!(*status, 400, "{p}: {body}");
            let p: serde_json::Value = serde_json::from_str(body).expect("problem");
            assert_eq!(p["type"], want.json()["type"], "{body}");
        } else {
            assert_eq!(*status, 200, "{p}: {body}");
        }
    }
}
