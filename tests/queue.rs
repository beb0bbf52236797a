//! Queued writes over HTTP against real ODBC drivers (a SQLite database of each test's own, and
//! the shared PostgreSQL one, on jobs no other test touches): 202 + Location, the delivery
//! resource, order per key, the dedup table, `Idempotency-Key`, dead letters and replay, and a
//! full queue.

mod common;

use std::time::{Duration, Instant};

use common::{Gateway, Options, Response, TestDb, query_db, token};
use reqwest::Method;

/// A queued note route (order per job, dedup table, quick retries) and a read of the notes.
const MAPPING: &str = r#"source = "demo"

[[route]]
id = "queueNote"
method = "POST"
path = "/jobs/{job_number}/notes/queued"
scopes = ["jobs:write"]
delivery = "queued"
order_key = "job_number"
dedup_table = "PATINA.DELIVERED"
retry = { base = "50ms", cap = "200ms", max_attempts = 50, max_age = "1h" }
params.job_number = { type = "integer", minimum = 1 }
body.text = { type = "string", min_length = 1, max_length = 60 }
body.sequence = { type = "integer", minimum = 1, required = false, nullable = true }
columns.NOTSQ = { name = "sequence", type = "integer" }
columns.NOTTX = { name = "text", trim = "end" }

[[route.step]]
sql = """
INSERT INTO JOBNOTE (JOBNO, NOTSQ, NOTTX, NOTBY, NOTDT)
SELECT J.JOBNO, COALESCE(CAST(:sequence AS INTEGER), (SELECT COALESCE(MAX(N.NOTSQ), 0) + 1 FROM JOBNOTE N WHERE N.JOBNO = J.JOBNO)),
       :text, 'QUEUE', 0
FROM JOBMST J WHERE J.JOBNO = :job_number
"""

[[route.step]]
sql = """
SELECT NOTSQ, NOTTX FROM JOBNOTE
WHERE JOBNO = :job_number AND NOTSQ = (SELECT MAX(NOTSQ) FROM JOBNOTE WHERE JOBNO = :job_number)
"""
"#;

fn gateway(db: &TestDb, config_extra: &str) -> (Gateway, String) {
    // SQLite takes one writer at a time: more deliveries at once only wait for its lock (and
    // retry), as in the demo's own config.
    let config_extra = if db.dialect == "sqlite" && !config_extra.contains("[queue]") {
        format!("[queue]\nconcurrency = 1\n{config_extra}")
    } else {
        config_extra.to_string()
    };
    let gw = Gateway::start(
        db,
        &Options {
            mappings: Some(&[("v1/q.toml", MAPPING)]),
            config_extra: &config_extra,
            ..Options::default()
        },
    );
    let t = token("tester", "jobs:read jobs:write", serde_json::json!({}));
    (gw, format!("Bearer {t}"))
}

fn post(gw: &Gateway, auth: &str, job: u32, body: &str, extra: &[(&str, &str)]) -> Response {
    let mut headers = vec![
        ("Authorization", auth),
        ("Content-Type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    gw.send(
        Method::POST,
        &format!("/v1/jobs/{job}/notes/queued"),
        &headers,
        Some(body),
    )
}

/// Poll the delivery resource until its status is no longer `pending`.
fn settled(gw: &Gateway, auth: &str, href: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let res = gw.send(Method::GET, href, &[("Authorization", auth)], None);
        assert_eq!(res.status, 200, "{}", res.text);
        let v = res.json();
        if v["status"] != "pending" {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still pending after 30 s: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Forget the notes of `jobs` (the shared PostgreSQL database outlives a run).
fn fresh(db: &TestDb, jobs: &[u32]) {
    let list = jobs
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    query_db(db, &format!("DELETE FROM JOBNOTE WHERE JOBNO IN ({list})"));
}

fn notes(db: &TestDb, job: u32) -> Vec<(i64, String)> {
    query_db(
        db,
        &format!("SELECT NOTSQ, NOTTX FROM JOBNOTE WHERE JOBNO = {job} ORDER BY NOTSQ"),
    )
    .into_iter()
    .map(|r| {
        (
            r[0].as_deref()
                .and_then(|v| v.trim_end_matches(".0").parse().ok())
                .expect("sequence"),
            r[1].clone().unwrap_or_default().trim_end().to_string(),
        )
    })
    .collect()
}

common::on_both_writable!(
    a_queued_write_is_accepted_then_delivered,
    deliveries_keep_their_order_per_key,
    a_poison_write_is_a_dead_letter_at_once_and_replays_once_fixed,
);

/// A queued write to a public route, sent without credentials, is read back without them
/// from the sender's address (as its idempotency keys are kept); a signed-in stranger gets 404.
#[test]
fn a_public_queued_write_is_read_back_by_its_anonymous_sender() {
    let (_dir, db) = common::sqlite_fresh();
    let public = MAPPING.replace("scopes = [\"jobs:write\"]", "public = true");
    let gw = Gateway::start(
        &db,
        &Options {
            mappings: Some(&[("v1/q.toml", &public)]),
            config_extra: "[queue]\nconcurrency = 1\n",
            ..Options::default()
        },
    );
    let json = [("Content-Type", "application/json")];
    let res = gw.send(
        Method::POST,
        "/v1/jobs/200209/notes/queued",
        &json,
        Some(r#"{"text": "anonymous"}"#),
    );
    assert_eq!(res.status, 202, "{}", res.text);
    let href = res.header("location").expect("location").to_string();
    let started = Instant::now();
    let done = loop {
        let r = gw.send(Method::GET, &href, &[], None);
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        if v["status"] != "pending" {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "pending: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(done["status"], "delivered", "{done}");
    assert_eq!(done["result"]["text"], "anonymous", "{done}");
    let stranger = format!(
        "Bearer {}",
        token("stranger", "jobs:read", serde_json::json!({}))
    );
    let r = gw.send(Method::GET, &href, &[("Authorization", &stranger)], None);
    assert_eq!(r.status, 404, "{}", r.text);
    // Without credentials, an unknown id answers as someone else's would: nothing is told.
    let unknown = "/v1/_deliveries/00000000-0000-4000-8000-000000000000";
    let r = gw.send(Method::GET, unknown, &[], None);
    assert_eq!(r.status, 401, "{}", r.text);
}

fn a_queued_write_is_accepted_then_delivered(db: &TestDb) {
    let (gw, auth) = gateway(db, "");
    let job = 200_201;
    fresh(db, &[job]);
    let res = post(&gw, &auth, job, r#"{"text": "queued hello"}"#, &[]);
    assert_eq!(res.status, 202, "{}", res.text);
    let href = res.header("location").expect("location").to_string();
    assert!(href.starts_with("/v1/_deliveries/"), "{href}");
    let accepted = res.json();
    assert_eq!(accepted["status"], "pending");
    assert_eq!(accepted["href"], href.as_str());
    let id = accepted["id"].as_str().expect("id").to_string();

    let done = settled(&gw, &auth, &href);
    assert_eq!(done["status"], "delivered", "{done}");
    assert_eq!(done["attempts"], 1, "{done}");
    assert_eq!(done["result"]["text"], "queued hello", "{done}");
    assert_eq!(notes(db, job), [(1, "queued hello".to_string())]);
    // The dedup table has the id, recorded in the write's own transaction.
    let table = if db.dialect == "sqlite" {
        "PATINA_DELIVERED"
    } else {
        "PATINA.DELIVERED"
    };
    let rows = query_db(
        db,
        &format!("SELECT route FROM {table} WHERE delivery_id = '{id}'"),
    );
    assert_eq!(rows, [[Some("queueNote".to_string())]]);

    // Bad input is refused at once, nothing queued.
    let bad = post(&gw, &auth, job, r#"{"text": ""}"#, &[]);
    bad.problem(422, "invalid-body");
    // Another caller cannot read the delivery.
    let other = format!(
        "Bearer {}",
        token("someone-else", "jobs:read", serde_json::json!({}))
    );
    let res = gw.send(Method::GET, &href, &[("Authorization", &other)], None);
    res.problem(404, "not-found");
    let res = gw.send(Method::GET, &href, &[], None);
    assert_eq!(res.status, 401, "{}", res.text);

    // The same Idempotency-Key gives the same delivery, never a second one.
    let key = [("Idempotency-Key", "queued-once-1")];
    let first = post(&gw, &auth, job, r#"{"text": "keyed"}"#, &key);
    assert_eq!(first.status, 202, "{}", first.text);
    let again = post(&gw, &auth, job, r#"{"text": "keyed"}"#, &key);
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("location"), first.header("location"));
    let other_body = post(&gw, &auth, job, r#"{"text": "not the same"}"#, &key);
    other_body.problem(422, "idempotency-key-reused");
    let done = settled(&gw, &auth, first.header("location").expect("location"));
    assert_eq!(done["status"], "delivered", "{done}");
    assert_eq!(
        notes(db, job),
        [(1, "queued hello".to_string()), (2, "keyed".to_string())]
    );
}

fn deliveries_keep_their_order_per_key(db: &TestDb) {
    let (gw, auth) = gateway(db, "");
    let jobs = [200_211, 200_212, 200_213];
    fresh(db, &jobs);
    let mut hrefs = Vec::new();
    for i in 0..20 {
        for job in jobs {
            let res = post(&gw, &auth, job, &format!(r#"{{"text": "n{i}"}}"#), &[]);
            assert_eq!(res.status, 202, "{}", res.text);
            hrefs.push(res.header("location").expect("location").to_string());
        }
    }
    for h in &hrefs {
        assert_eq!(settled(&gw, &auth, h)["status"], "delivered");
    }
    for job in jobs {
        let got = notes(db, job);
        let want: Vec<(i64, String)> = (0..20).map(|i| (i + 1, format!("n{i}"))).collect();
        assert_eq!(
            got, want,
            "job {job}: notes in the order they were accepted"
        );
    }
}

fn a_poison_write_is_a_dead_letter_at_once_and_replays_once_fixed(db: &TestDb) {
    let (gw, auth) = gateway(db, "");
    let admin = format!(
        "Bearer {}",
        token("operator", "patina:admin", serde_json::json!({}))
    );
    let job = 200_221;
    fresh(db, &[job, 200_222, 200_223, 200_224, 200_225]);
    // Sequence 1 is taken: the write breaks the primary key.
    let first = post(&gw, &auth, job, r#"{"text": "first", "sequence": 1}"#, &[]);
    assert_eq!(
        settled(&gw, &auth, first.header("location").expect("l"))["status"],
        "delivered"
    );
    let poison = post(&gw, &auth, job, r#"{"text": "poison", "sequence": 1}"#, &[]);
    assert_eq!(poison.status, 202, "{}", poison.text);
    let href = poison.header("location").expect("location").to_string();
    // Others, for other keys, flow meanwhile.
    let mut others = Vec::new();
    for i in 0..100u32 {
        let res = post(
            &gw,
            &auth,
            200_222 + i % 4,
            &format!(r#"{{"text": "ok {i}"}}"#),
            &[],
        );
        assert_eq!(res.status, 202, "{}", res.text);
        others.push(res.header("location").expect("location").to_string());
    }
    let dead = settled(&gw, &auth, &href);
    assert_eq!(dead["status"], "dead", "{dead}");
    assert_eq!(
        dead["attempts"], 1,
        "no retries burnt on a permanent failure: {dead}"
    );
    assert_eq!(dead["last_error"], "conflict", "{dead}");
    for h in &others {
        assert_eq!(settled(&gw, &auth, h)["status"], "delivered");
    }
    // The operator sees it, with its request.
    let id = href.rsplit('/').next().expect("id");
    let list = gw.send(
        Method::GET,
        "/_patina/api/dead-letters?route=queueNote",
        &[("Authorization", &admin)],
        None,
    );
    assert_eq!(list.status, 200, "{}", list.text);
    let letters = list.json();
    let letter = letters["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|l| l["id"] == id)
        .unwrap_or_else(|| panic!("{letters}"))
        .clone();
    assert_eq!(letter["body"]["text"], "poison");
    assert_eq!(letter["identity"], "sub:tester");
    // Fix the data, replay: delivered, once.
    query_db(
        db,
        &format!("UPDATE JOBNOTE SET NOTSQ = 9 WHERE JOBNO = {job} AND NOTSQ = 1"),
    );
    let replay = gw.send(
        Method::POST,
        &format!("/_patina/api/deliveries/{id}/replay"),
        &[("Authorization", &admin)],
        None,
    );
    assert_eq!(replay.status, 200, "{}", replay.text);
    let done = settled(&gw, &auth, &href);
    assert_eq!(done["status"], "delivered", "{done}");
    assert_eq!(
        notes(db, job),
        [(1, "poison".to_string()), (9, "first".to_string())]
    );
}

#[test]
fn a_full_queue_refuses_and_loses_nothing_accepted() {
    // The database is away (its file does not exist yet): everything waits in the queue.
    let (dir, db) = common::sqlite_fresh();
    let real = db
        .connection_string
        .split(';')
        .find_map(|kv| kv.strip_prefix("Database="))
        .expect("path")
        .to_string();
    let away = dir.path().join("later/demo.db");
    let unreachable = TestDb {
        connection_string: format!("Driver={{SQLite3}};Database={};NoCreat=1", away.display()),
        dialect: "sqlite",
    };
    let (gw, auth) = gateway(&unreachable, "[queue]\nmax_pending = 5\n");
    let mut accepted = Vec::new();
    for i in 0..5 {
        let res = post(&gw, &auth, 200_231, &format!(r#"{{"text": "w{i}"}}"#), &[]);
        assert_eq!(res.status, 202, "{}", res.text);
        accepted.push(res.header("location").expect("location").to_string());
    }
    let full = post(&gw, &auth, 200_231, r#"{"text": "one too many"}"#, &[]);
    let p = full.problem(503, "queue-full");
    assert!(full.header("retry-after").is_some(), "{p}");
    let metrics = gw.get("/metrics").text;
    assert!(
        metrics.contains("patina_queue_pending_total 5"),
        "{metrics}"
    );
    assert!(metrics.contains("patina_queue_capacity 5"), "{metrics}");
    // The database comes back: every accepted write arrives, in order.
    std::fs::create_dir_all(away.parent().expect("dir")).expect("mkdir");
    std::fs::copy(&real, &away).expect("database back");
    for h in &accepted {
        assert_eq!(settled(&gw, &auth, h)["status"], "delivered");
    }
    let texts: Vec<String> = notes(
        &TestDb {
            connection_string: format!("Driver={{SQLite3}};Database={}", away.display()),
            dialect: "sqlite",
        },
        200_231,
    )
    .into_iter()
    .map(|(_, t)| t)
    .collect();
    assert_eq!(texts, ["w0", "w1", "w2", "w3", "w4"]);
}

#[test]
fn check_db_proves_the_dedup_table_and_dedup_table_prints_it() {
    let (dir, db) = common::sqlite_fresh();
    query_db(&db, "DROP TABLE PATINA_DELIVERED");
    let mappings = dir.path().join("mappings/v1");
    std::fs::create_dir_all(&mappings).expect("mkdir");
    std::fs::write(mappings.join("q.toml"), MAPPING).expect("mapping");
    std::fs::write(
        dir.path().join("patina.toml"),
        format!(
            "[server]\nmappings = \"mappings\"\n[sources.demo]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"{}\"\n",
            db.connection_string
        ),
    )
    .expect("config");
    let check = common::patina(&["check", "--db", "--config", "patina.toml"], dir.path());
    assert_eq!(check.code, Some(2), "{}{}", check.out, check.err);
    assert!(
        check
            .err
            .contains("the dedup table `PATINA.DELIVERED` cannot be used on source `demo`"),
        "{}",
        check.err
    );
    let ddl = common::patina(&["dedup-table", "--config", "patina.toml"], dir.path());
    assert_eq!(ddl.code, Some(0), "{}", ddl.err);
    assert!(
        ddl.out
            .contains("CREATE TABLE IF NOT EXISTS PATINA_DELIVERED"),
        "{}",
        ddl.out
    );
    let statement: String = ddl
        .out
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    query_db(&db, &statement);
    let check = common::patina(&["check", "--db", "--config", "patina.toml"], dir.path());
    assert_eq!(
        check.code,
        Some(1),
        "only the warning that no credentials are configured: {}{}",
        check.out,
        check.err
    );
    assert!(!check.err.contains("error"), "{}", check.err);
    let one = common::patina(
        &[
            "dedup-table",
            "--dialect",
            "mssql",
            "--table",
            "dbo.Delivered",
        ],
        dir.path(),
    );
    assert!(
        one.out
            .starts_with("IF OBJECT_ID(N'dbo.Delivered', N'U') IS NULL"),
        "{}",
        one.out
    );
}
