//! Write routes over HTTP against real ODBC drivers (a SQLite database of each test's own, and
//! the shared PostgreSQL one, on rows no other test touches): legacy encoding checked in the
//! database itself, every body mistake at once, all-or-nothing transactions, bulk bodies,
//! `Idempotency-Key` and `If-Match`.

mod common;

use common::{Gateway, Options, Response, TestDb, query_db, token};
use reqwest::Method;

const MAPPING: &str = r#"source = "demo"

[[route]]
id = "getJob"
path = "/jobs/{job_number}"
one = true
scopes = ["jobs:read"]
sql = "SELECT JOBNO, STSCD, RUSHF FROM JOBMST WHERE JOBNO = :job_number"
etag_columns = ["STSCD"]
params.job_number = { type = "integer" }
columns.JOBNO = { name = "job_number", type = "integer" }
columns.STSCD = { name = "status", codes = { P = "planned", R = "released", H = "on_hold", C = "complete", X = "cancelled" } }
columns.RUSHF = { name = "rush", type = "boolean", true_values = ["Y"], false_values = ["N"] }

[[route]]
id = "addJobNote"
method = "POST"
path = "/jobs/{job_number}/notes"
scopes = ["jobs:write"]
location = "/v1/jobs/{job_number}/notes/{sequence}"
params.job_number = { type = "integer", minimum = 1 }
params.author = { from_claim = "sub" }
body.text = { type = "string", min_length = 1, max_length = 60, pad = true }
body.follow_up_on = { type = "date", format = "cyymmdd", nullable = true, required = false }
columns.NOTSQ = { name = "sequence", type = "integer" }
columns.NOTTX = { name = "text", trim = "end" }
columns.NOTBY = { name = "author", trim = "end" }
columns.NOTDT = { name = "follow_up_on", type = "date", format = "cyymmdd", null_if = [0] }

[[route.step]]
sql = """
INSERT INTO JOBNOTE (JOBNO, NOTSQ, NOTTX, NOTBY, NOTDT)
SELECT J.JOBNO, (SELECT COALESCE(MAX(N.NOTSQ), 0) + 1 FROM JOBNOTE N WHERE N.JOBNO = J.JOBNO),
       :text, :author, COALESCE(CAST(:follow_up_on AS INTEGER), 0)
FROM JOBMST J WHERE J.JOBNO = :job_number
"""
require_rows = true

[[route.step]]
sql = """
SELECT NOTSQ, NOTTX, NOTBY, NOTDT FROM JOBNOTE
WHERE JOBNO = :job_number AND NOTSQ = (SELECT MAX(NOTSQ) FROM JOBNOTE WHERE JOBNO = :job_number)
"""

[[route]]
id = "setJobStatus"
method = "PATCH"
path = "/jobs/{job_number}"
scopes = ["jobs:write"]
etag_from = "getJob"
if_match = "required"
params.job_number = { type = "integer" }
body.status = { codes = { P = "planned", R = "released", H = "on_hold" }, required = true }
columns.JOBNO = { name = "job_number", type = "integer" }
columns.STSCD = { name = "status", codes = { P = "planned", R = "released", H = "on_hold", C = "complete", X = "cancelled" } }
columns.RUSHF = { name = "rush", type = "boolean", true_values = ["Y"], false_values = ["N"] }

[[route.step]]
sql = "UPDATE JOBMST SET STSCD = :status WHERE JOBNO = :job_number"

[[route.step]]
sql = "SELECT JOBNO, STSCD, RUSHF FROM JOBMST WHERE JOBNO = :job_number"

[[route]]
id = "createOrder"
method = "POST"
path = "/orders"
scopes = ["orders:write"]
location = "/v1/orders/{order_number}"
body.customer = { type = "integer", minimum = 1 }
body.ordered_on = { type = "date", format = "cyymmdd" }
body.rush = { type = "boolean", true_value = "Y", false_value = "N", default = false }
body.reference = { type = "string", max_length = 20, pad = true }
body.lines = { type = "list", min_items = 1, max_items = 50, items.item = { type = "string", max_length = 15, pad = true }, items.quantity = { type = "decimal", precision = 11, scale = 3 } }

@ORDER_KEY@

[[route.step]]
for_each = "lines"
index_as = "line"
sql = "INSERT INTO ORDLIN (ORDNO, LINNO, ITMNO, QTYOR) VALUES (CAST(:order_number AS INTEGER), :line, :item, CAST(:quantity AS DECIMAL(11,3)))"

[[route]]
id = "importNotes"
method = "POST"
path = "/jobs/{job_number}/notes/import"
scopes = ["jobs:write"]
bulk = { max = 500 }
params.job_number = { type = "integer", minimum = 1 }
body.sequence = { type = "integer", minimum = 1, maximum = 99999 }
body.text = { type = "string", max_length = 60 }

[[route.step]]
sql = "INSERT INTO JOBNOTE (JOBNO, NOTSQ, NOTTX, NOTBY, NOTDT) VALUES (:job_number, :sequence, :text, 'IMPORT', 0)"
"#;

/// A gateway over `db` with the write mapping, and a token that may write.
fn gateway(db: &TestDb) -> (Gateway, String) {
    gateway_with(db, "")
}

fn gateway_with(db: &TestDb, config_extra: &str) -> (Gateway, String) {
    // SQLite's ODBC driver answers an INSERT … RETURNING with no rows: the key is asked for in
    // a step of its own, in the same transaction, on the same connection.
    let insert = "INSERT INTO ORDHDR (CUSNO, ORDDT, RUSHF, REFTX) VALUES (:customer, :ordered_on, :rush, :reference)";
    let key_step = if db.dialect == "sqlite" {
        format!(
            "[[route.step]]\nsql = \"{insert}\"\n\n[[route.step]]\nsql = \"SELECT last_insert_rowid() AS ORDNO\"\noutputs = [\"order_number\"]\n"
        )
    } else {
        format!(
            "[[route.step]]\nsql = \"{insert} RETURNING ORDNO\"\noutputs = [\"order_number\"]\n"
        )
    };
    let mapping = MAPPING.replace("@ORDER_KEY@", &key_step);
    let gw = Gateway::start(
        db,
        &Options {
            mappings: Some(&[("v1/w.toml", &mapping)]),
            config_extra,
            ..Options::default()
        },
    );
    let t = token(
        "tester",
        "jobs:read jobs:write orders:write",
        serde_json::json!({}),
    );
    (gw, format!("Bearer {t}"))
}

fn call(
    gw: &Gateway,
    auth: &str,
    method: Method,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut headers = vec![
        ("Authorization", auth),
        ("Content-Type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    gw.send(method, path, &headers, Some(body))
}

common::on_both_writable!(
    a_note_is_written_in_the_legacy_form,
    five_mistakes_one_answer_nothing_written,
    an_order_and_its_lines_are_all_or_nothing,
    bulk_bodies_write_every_row_or_none,
    idempotency_keys_write_once,
    if_match_guards_against_lost_updates,
);

/// A DELETE takes an `Idempotency-Key` like any write: a retry whose first answer was lost gets
/// that answer again (204), not the 404 of a second delete. A route that cannot check
/// `If-Match` (no `etag_from`) refuses entity tags with 412 and writes nothing; `*` goes on.
#[test]
fn deletes_replay_their_answer_and_unchecked_if_match_is_refused() {
    let (_dir, db) = common::sqlite_fresh();
    let mapping = r#"source = "demo"

[[route]]
id = "deleteNote"
method = "DELETE"
path = "/jobs/{job_number}/notes/{sequence}"
scopes = ["jobs:write"]
params.job_number = { type = "integer", minimum = 1 }
params.sequence = { type = "integer", minimum = 1 }

[[route.step]]
sql = "DELETE FROM JOBNOTE WHERE JOBNO = :job_number AND NOTSQ = :sequence"
require_rows = true
"#;
    let gw = Gateway::start(
        &db,
        &Options {
            mappings: Some(&[("v1/n.toml", mapping)]),
            ..Options::default()
        },
    );
    let auth = format!(
        "Bearer {}",
        token("tester", "jobs:write", serde_json::json!({}))
    );
    let job = 200_031;
    query_db(
        &db,
        &format!(
            "INSERT INTO JOBNOTE (JOBNO, NOTSQ, NOTTX, NOTBY, NOTDT) VALUES \
             ({job}, 1, 'one', 'T', 0), ({job}, 2, 'two', 'T', 0)"
        ),
    );
    let delete = |seq: u32, extra: &[(&str, &str)]| {
        let mut headers = vec![("Authorization", auth.as_str())];
        headers.extend_from_slice(extra);
        gw.send(
            Method::DELETE,
            &format!("/v1/jobs/{job}/notes/{seq}"),
            &headers,
            None,
        )
    };
    let first = delete(1, &[("Idempotency-Key", "delete-1")]);
    assert_eq!(first.status, 204, "{}", first.text);
    let again = delete(1, &[("Idempotency-Key", "delete-1")]);
    assert_eq!(again.status, 204, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    delete(1, &[]).problem(404, "not-found");

    delete(2, &[("If-Match", "\"abc\"")]).problem(412, "precondition-failed");
    let left = query_db(
        &db,
        &format!("SELECT NOTSQ FROM JOBNOTE WHERE JOBNO = {job}"),
    );
    assert_eq!(left, [[Some("2".to_string())]], "nothing was written");
    assert_eq!(delete(2, &[("If-Match", "*")]).status, 204);
}

fn a_note_is_written_in_the_legacy_form(db: &TestDb) {
    let (gw, auth) = gateway(db);
    let job = 200_011;
    let res = call(
        &gw,
        &auth,
        Method::POST,
        &format!("/v1/jobs/{job}/notes"),
        &[],
        r#"{"text": "Check the plating", "follow_up_on": "2025-03-04"}"#,
    );
    assert_eq!(res.status, 201, "{}", res.text);
    let body = res.json();
    assert_eq!(body["text"], "Check the plating");
    assert_eq!(body["author"], "tester");
    assert_eq!(body["follow_up_on"], "2025-03-04");
    let seq = body["sequence"].as_i64().expect("sequence");
    assert_eq!(
        res.header("location"),
        Some(format!("/v1/jobs/{job}/notes/{seq}").as_str())
    );
    // In the database: CYYMMDD, CHAR padded to its length.
    let rows = query_db(
        db,
        &format!("SELECT NOTTX, NOTDT, NOTBY FROM JOBNOTE WHERE JOBNO = {job} AND NOTSQ = {seq}"),
    );
    let row = &rows[0];
    assert_eq!(
        row[0].as_deref(),
        Some(format!("{:<60}", "Check the plating").as_str())
    );
    assert_eq!(
        row[1].as_deref().map(|v| v.trim_end_matches(".0")),
        Some("1250304")
    );
    assert_eq!(row[2].as_deref().map(str::trim_end), Some("tester"));

    // No follow-up date: NULL becomes the legacy 0, served as null.
    let res = call(
        &gw,
        &auth,
        Method::POST,
        &format!("/v1/jobs/{job}/notes"),
        &[],
        r#"{"text": "x"}"#,
    );
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(res.json()["follow_up_on"], serde_json::Value::Null);

    // A job that does not exist: 404, nothing written.
    let res = call(
        &gw,
        &auth,
        Method::POST,
        "/v1/jobs/999999/notes",
        &[],
        r#"{"text": "x"}"#,
    );
    res.problem(404, "not-found");
    assert!(query_db(db, "SELECT 1 FROM JOBNOTE WHERE JOBNO = 999999").is_empty());

    // Wrong content type, no credentials, a read-only token.
    let res = gw.send(
        Method::POST,
        &format!("/v1/jobs/{job}/notes"),
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        Some(r#"{"text": "x"}"#),
    );
    res.problem(415, "unsupported-media-type");
    let res = gw.send(
        Method::POST,
        &format!("/v1/jobs/{job}/notes"),
        &[],
        Some("{}"),
    );
    res.problem(401, "unauthorized");
    let reader = format!(
        "Bearer {}",
        token("tester", "jobs:read", serde_json::json!({}))
    );
    call(
        &gw,
        &reader,
        Method::POST,
        &format!("/v1/jobs/{job}/notes"),
        &[],
        r#"{"text": "x"}"#,
    )
    .problem(403, "forbidden");
    // Too large.
    let big = format!(r#"{{"text": "{}"}}"#, "x".repeat(2 << 20));
    call(
        &gw,
        &auth,
        Method::POST,
        &format!("/v1/jobs/{job}/notes"),
        &[],
        &big,
    )
    .problem(413, "body-too-large");
}

fn five_mistakes_one_answer_nothing_written(db: &TestDb) {
    let (gw, auth) = gateway(db);
    let reference = format!("FIVE-{}", db.dialect);
    let body = format!(
        r#"{{"customer": "1001", "ordered_on": "03/04/2025", "reference": "{reference}",
            "colour": "red", "lines": [{{"item": "BOLT", "quantity": 1.0001}}, {{"item": "A-VERY-LONG-ITEM-NUMBER", "quantity": 2}}]}}"#
    );
    let res = call(&gw, &auth, Method::POST, "/v1/orders", &[], &body);
    let p = res.problem(422, "invalid-body");
    let pointers: Vec<&str> = p["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["pointer"].as_str().expect("pointer"))
        .collect();
    assert_eq!(
        pointers,
        [
            "/colour",
            "/customer",
            "/ordered_on",
            "/lines/0/quantity",
            "/lines/1/item"
        ],
        "{}",
        res.text
    );
    assert!(!res.text.contains("INSERT"), "no SQL in answers");
    assert!(
        query_db(
            db,
            &format!("SELECT 1 FROM ORDHDR WHERE RTRIM(REFTX) = '{reference}'")
        )
        .is_empty()
    );
}

fn an_order_and_its_lines_are_all_or_nothing(db: &TestDb) {
    let (gw, auth) = gateway(db);
    let good = format!("GOOD-{}", db.dialect);
    // A database kept from an earlier run starts without this order.
    query_db(
        db,
        &format!(
            "DELETE FROM ORDLIN WHERE ORDNO IN (SELECT ORDNO FROM ORDHDR WHERE RTRIM(REFTX) = '{good}')"
        ),
    );
    query_db(
        db,
        &format!("DELETE FROM ORDHDR WHERE RTRIM(REFTX) = '{good}'"),
    );
    let body = format!(
        r#"{{"customer": 1001, "ordered_on": "2025-03-04", "rush": true, "reference": "{good}",
            "lines": [{{"item": "BOLT-M8", "quantity": "12.500"}}, {{"item": "NUT-M8", "quantity": 1234567.125}}]}}"#
    );
    let res = call(&gw, &auth, Method::POST, "/v1/orders", &[], &body);
    assert_eq!(res.status, 201, "{}", res.text);
    let location = res.header("location").expect("location").to_string();
    let order: i64 = location
        .rsplit('/')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("order number in the location");
    let lines = query_db(
        db,
        &format!("SELECT LINNO, ITMNO, QTYOR FROM ORDLIN WHERE ORDNO = {order} ORDER BY LINNO"),
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0][1].as_deref(), Some("BOLT-M8        "));
    assert!(
        lines[1][2]
            .as_deref()
            .is_some_and(|q| q.starts_with("1234567.125")),
        "{lines:?}"
    );
    let head = query_db(
        db,
        &format!("SELECT RUSHF, ORDDT FROM ORDHDR WHERE ORDNO = {order}"),
    );
    assert_eq!(head[0][0].as_deref(), Some("Y"));

    // The second line breaks the database's own rule (quantity > 0): the header and the first
    // line are rolled back with it.
    let bad = format!("BAD-{}", db.dialect);
    let body = format!(
        r#"{{"customer": 1001, "ordered_on": "2025-03-04", "reference": "{bad}",
            "lines": [{{"item": "BOLT-M8", "quantity": 1}}, {{"item": "NUT-M8", "quantity": 0}}]}}"#
    );
    let res = call(&gw, &auth, Method::POST, "/v1/orders", &[], &body);
    res.problem(422, "constraint-refused");
    assert!(
        !res.text.to_ascii_lowercase().contains("check"),
        "{}",
        res.text
    );
    assert!(
        query_db(
            db,
            &format!("SELECT 1 FROM ORDHDR WHERE RTRIM(REFTX) = '{bad}'")
        )
        .is_empty()
    );

    // A unique reference used twice: 409, nothing written the second time.
    let body = format!(
        r#"{{"customer": 1001, "ordered_on": "2025-03-04", "reference": "{good}",
            "lines": [{{"item": "X", "quantity": 1}}]}}"#
    );
    call(&gw, &auth, Method::POST, "/v1/orders", &[], &body).problem(409, "conflict");
    assert_eq!(
        query_db(
            db,
            &format!("SELECT COUNT(*) FROM ORDHDR WHERE RTRIM(REFTX) = '{good}'")
        )[0][0]
            .as_deref(),
        Some("1")
    );
}

fn bulk_bodies_write_every_row_or_none(db: &TestDb) {
    let (gw, auth) = gateway(db);
    let job = 200_013;
    // A database kept from an earlier run starts clean for this job.
    query_db(db, &format!("DELETE FROM JOBNOTE WHERE JOBNO = {job}"));
    let rows: Vec<String> = (1..=500)
        .map(|i| format!(r#"{{"sequence": {}, "text": "line {i}"}}"#, 1000 + i))
        .collect();
    let mut bad = rows.clone();
    bad[417] = r#"{"sequence": 0, "text": "line 418"}"#.to_string();
    let res = call(
        &gw,
        &auth,
        Method::POST,
        &format!("/v1/jobs/{job}/notes/import"),
        &[],
        &format!("[{}]", bad.join(",")),
    );
    let p = res.problem(422, "invalid-body");
    assert_eq!(p["errors"][0]["pointer"], "/417/sequence", "{}", res.text);
    let count = |db: &TestDb| {
        query_db(
            db,
            &format!("SELECT COUNT(*) FROM JOBNOTE WHERE JOBNO = {job}"),
        )[0][0]
            .clone()
    };
    assert_eq!(count(db).as_deref(), Some("0"));
    // A row the database refuses (a duplicate key at row 300): none is written.
    let mut dup = rows.clone();
    dup[299] = r#"{"sequence": 1001, "text": "again"}"#.to_string();
    let res = call(
        &gw,
        &auth,
        Method::POST,
        &format!("/v1/jobs/{job}/notes/import"),
        &[],
        &format!("[{}]", dup.join(",")),
    );
    res.problem(409, "conflict");
    assert_eq!(count(db).as_deref(), Some("0"));
    let res = call(
        &gw,
        &auth,
        Method::POST,
        &format!("/v1/jobs/{job}/notes/import"),
        &[],
        &format!("[{}]", rows.join(",")),
    );
    assert_eq!(res.status, 204, "{}", res.text);
    assert_eq!(count(db).as_deref(), Some("500"));
}

fn idempotency_keys_write_once(db: &TestDb) {
    let (gw, auth) = gateway(db);
    let job = 200_015;
    query_db(db, &format!("DELETE FROM JOBNOTE WHERE JOBNO = {job}"));
    let path = format!("/v1/jobs/{job}/notes");
    let key = format!("retry-{}-{}", db.dialect, std::process::id());
    let first = call(
        &gw,
        &auth,
        Method::POST,
        &path,
        &[("Idempotency-Key", &key)],
        r#"{"text": "once"}"#,
    );
    assert_eq!(first.status, 201, "{}", first.text);
    for _ in 0..99 {
        let again = call(
            &gw,
            &auth,
            Method::POST,
            &path,
            &[("Idempotency-Key", &key)],
            r#"{"text": "once"}"#,
        );
        assert_eq!(again.status, 201, "{}", again.text);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.text, first.text);
        assert_eq!(again.header("location"), first.header("location"));
    }
    let notes = |text: &str| {
        query_db(
            db,
            &format!("SELECT COUNT(*) FROM JOBNOTE WHERE JOBNO = {job} AND NOTTX LIKE '{text}%'"),
        )[0][0]
            .clone()
    };
    assert_eq!(notes("once").as_deref(), Some("1"));
    // The same key with another body.
    call(
        &gw,
        &auth,
        Method::POST,
        &path,
        &[("Idempotency-Key", &key)],
        r#"{"text": "other"}"#,
    )
    .problem(422, "idempotency-key-reused");

    // Twenty at once with one key: one runs, the others wait their turn or are told it runs.
    let key = format!("burst-{}-{}", db.dialect, std::process::id());
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                s.spawn(|| {
                    call(
                        &gw,
                        &auth,
                        Method::POST,
                        &path,
                        &[("Idempotency-Key", &key)],
                        r#"{"text": "burst"}"#,
                    )
                    .status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert!(statuses.contains(&201), "{statuses:?}");
    assert_eq!(notes("burst").as_deref(), Some("1"));
    // A bad key.
    call(
        &gw,
        &auth,
        Method::POST,
        &path,
        &[("Idempotency-Key", "")],
        r#"{"text": "x"}"#,
    )
    .problem(400, "idempotency-key-invalid");
}

fn if_match_guards_against_lost_updates(db: &TestDb) {
    let (gw, auth) = gateway(db);
    let job = 200_017;
    let read = gw.send(
        Method::GET,
        &format!("/v1/jobs/{job}"),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(read.status, 200, "{}", read.text);
    let etag = read.header("etag").expect("etag").to_string();
    let before = read.json()["status"].clone();
    let path = format!("/v1/jobs/{job}");
    call(
        &gw,
        &auth,
        Method::PATCH,
        &path,
        &[],
        r#"{"status": "on_hold"}"#,
    )
    .problem(428, "if-match-required");
    call(
        &gw,
        &auth,
        Method::PATCH,
        &path,
        &[("If-Match", "\"0000\"")],
        r#"{"status": "on_hold"}"#,
    )
    .problem(412, "precondition-failed");
    assert_eq!(
        gw.send(Method::GET, &path, &[("Authorization", &auth)], None)
            .json()["status"],
        before
    );
    let target = if before == "released" {
        "planned"
    } else {
        "released"
    };
    let res = call(
        &gw,
        &auth,
        Method::PATCH,
        &path,
        &[("If-Match", &etag)],
        &format!(r#"{{"status": "{target}"}}"#),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json()["status"], target);
    // The ETag follows the declared column only: the rush flag changing leaves it as it is.
    let etag_now = gw
        .send(Method::GET, &path, &[("Authorization", &auth)], None)
        .header("etag")
        .map(str::to_string);
    let rush = query_db(db, &format!("SELECT RUSHF FROM JOBMST WHERE JOBNO = {job}"))[0][0]
        .clone()
        .expect("rush flag");
    let flipped = if rush == "Y" { "N" } else { "Y" };
    query_db(
        db,
        &format!("UPDATE JOBMST SET RUSHF = '{flipped}' WHERE JOBNO = {job}"),
    );
    let after = gw.send(Method::GET, &path, &[("Authorization", &auth)], None);
    assert_eq!(after.header("etag").map(str::to_string), etag_now);
    assert_ne!(after.json()["rush"], read.json()["rush"]);
    query_db(
        db,
        &format!("UPDATE JOBMST SET RUSHF = '{rush}' WHERE JOBNO = {job}"),
    );
    assert_ne!(etag_now.as_deref(), Some(etag.as_str()));
    // The old ETag is stale now.
    call(
        &gw,
        &auth,
        Method::PATCH,
        &path,
        &[("If-Match", &etag)],
        r#"{"status": "on_hold"}"#,
    )
    .problem(412, "precondition-failed");
    assert_eq!(
        gw.send(Method::GET, &path, &[("Authorization", &auth)], None)
            .json()["status"],
        target
    );
    // A job that does not exist.
    call(
        &gw,
        &auth,
        Method::PATCH,
        "/v1/jobs/999999",
        &[("If-Match", &etag)],
        r#"{"status": "on_hold"}"#,
    )
    .problem(404, "not-found");
    // Leave the shared database as it was.
    query_db(
        db,
        &format!(
            "UPDATE JOBMST SET STSCD = '{}' WHERE JOBNO = {job}",
            match before.as_str() {
                Some("released") => "R",
                Some("on_hold") => "H",
                Some("complete") => "C",
                Some("cancelled") => "X",
                _ => "P",
            }
        ),
    );
}

#[test]
fn writes_are_audited_without_their_bodies_and_counted() {
    let (_dir, db) = common::sqlite_fresh();
    let (gw, auth) = gateway_with(&db, "[audit]\nfile = \"audit.log\"\n");
    let res = call(
        &gw,
        &auth,
        Method::POST,
        "/v1/jobs/200012/notes",
        &[("X-Request-Id", "audit-me-1")],
        r#"{"text": "secret-ish words"}"#,
    );
    assert_eq!(res.status, 201, "{}", res.text);
    call(
        &gw,
        &auth,
        Method::POST,
        "/v1/jobs/200012/notes",
        &[],
        r#"{"text": 5}"#,
    )
    .problem(422, "invalid-body");
    let log = std::fs::read_to_string(gw.dir.join("audit.log")).expect("audit log");
    assert!(
        !log.contains("secret-ish"),
        "no body values in the audit log: {log}"
    );
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let first = lines
        .iter()
        .find(|l| l["request_id"] == "audit-me-1")
        .expect("the write's record");
    assert_eq!(first["route"], "addJobNote");
    assert_eq!(first["identity"], "sub:tester");
    assert_eq!(first["write"]["method"], "POST");
    assert_eq!(first["write"]["keys"]["job_number"], "200012");
    assert_eq!(first["write"]["outcome"], "written");
    assert!(
        lines.iter().any(|l| l["write"]["outcome"] == "refused"),
        "{log}"
    );
    let metrics = gw.anonymous("/metrics").text;
    assert!(
        metrics.contains("patina_writes_total{route=\"addJobNote\",outcome=\"written\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("patina_writes_total{route=\"addJobNote\",outcome=\"refused\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_replay_survives_kill_9_and_a_restart() {
    let (dir, db) = common::sqlite_fresh();
    let mappings = dir.path().join("mappings/v1");
    std::fs::create_dir_all(&mappings).expect("mkdir");
    std::fs::write(
        mappings.join("w.toml"),
        MAPPING.replace("@ORDER_KEY@", "[[route.step]]\nsql = \"INSERT INTO ORDHDR (CUSNO, ORDDT, RUSHF, REFTX) VALUES (:customer, :ordered_on, :rush, :reference)\"\n\n[[route.step]]\nsql = \"SELECT last_insert_rowid() AS ORDNO\"\noutputs = [\"order_number\"]\n"),
    )
    .expect("mapping");
    let config = dir.path().join("patina.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nmappings = \"mappings\"\n[state]\ndir = \"state\"\n[sources.demo]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"{}\"\n{}",
            db.connection_string,
            common::auth_section(&dir.path().join("keys.toml"))
        ),
    )
    .expect("config");
    let auth = format!(
        "Bearer {}",
        token("tester", "jobs:read jobs:write", serde_json::json!({}))
    );
    let post = |base: &str| {
        reqwest::blocking::Client::new()
            .post(format!("{base}/v1/jobs/200014/notes"))
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", "across-restarts")
            .body(r#"{"text": "exactly once"}"#)
            .send()
            .expect("request")
    };
    let first = common::serve(&config);
    let res = post(&first.base);
    assert_eq!(res.status(), 201);
    let location = res.headers().get("location").cloned();
    let body = res.text().expect("body");
    drop(first); // SIGKILL: no shutdown, no flush but the store's own commits.
    let second = common::serve(&config);
    let res = post(&second.base);
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(res.headers().get("location").cloned(), location);
    assert_eq!(res.text().expect("body"), body);
    assert_eq!(
        query_db(&db, "SELECT COUNT(*) FROM JOBNOTE WHERE JOBNO = 200014")[0][0].as_deref(),
        Some("1")
    );
}
