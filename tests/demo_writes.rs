//! The demo's own write routes (`mappings/v1/notes.toml`, `orders.toml`, the status change in
//! `jobs.toml`) as the README's curl lines use them, on a fresh SQLite demo database of each
//! test's own and on the shared PostgreSQL one (jobs 200021-200029 and order references no
//! other test uses): a note written, read back, replayed and deleted; a status change guarded
//! by If-Match; an order with its lines; and the served document describing what is answered.

mod common;

use common::{Gateway, Options, Response, TestDb, query_db, token};
use reqwest::Method;

/// The demo mappings over `db`, and a token with the write scopes (its subject is longer than
/// the 10 characters NOTBY holds).
fn demo(db: &TestDb) -> (Gateway, String) {
    let gw = Gateway::start(db, &Options::default());
    let t = token(
        "demo-writes-tester",
        "jobs:read jobs:write orders:read orders:write",
        serde_json::json!({}),
    );
    (gw, format!("Bearer {t}"))
}

fn send(
    gw: &Gateway,
    auth: &str,
    method: Method,
    path: &str,
    extra: &[(&str, &str)],
    body: Option<&str>,
) -> Response {
    let mut headers = vec![("Authorization", auth)];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    headers.extend_from_slice(extra);
    gw.send(method, path, &headers, body)
}

common::on_both_writable!(
    a_note_is_added_read_replayed_and_deleted,
    a_status_change_needs_the_current_etag,
    an_order_is_created_with_its_lines,
    the_document_describes_the_written_rows,
);

fn a_note_is_added_read_replayed_and_deleted(db: &TestDb) {
    let (gw, auth) = demo(db);
    let job = 200_021;
    // A database kept from an earlier run starts without notes on this job.
    query_db(db, &format!("DELETE FROM JOBNOTE WHERE JOBNO = {job}"));
    let path = format!("/v1/jobs/{job}/notes");
    let key = format!("demo-note-{}-{}", db.dialect, std::process::id());
    let body = r#"{"text": "Check the plating thickness", "follow_up_on": "2025-03-04"}"#;
    let res = send(
        &gw,
        &auth,
        Method::POST,
        &path,
        &[("Idempotency-Key", &key)],
        Some(body),
    );
    assert_eq!(res.status, 201, "{}", res.text);
    let note = res.json();
    assert_eq!(note["sequence"], 1);
    assert_eq!(note["text"], "Check the plating thickness");
    assert_eq!(note["author"], "demo-write", "the sub, cut to NOTBY's 10");
    assert_eq!(note["follow_up_on"], "2025-03-04");
    let location = res.header("location").expect("location").to_string();
    assert_eq!(location, format!("/v1/jobs/{job}/notes/1"));
    // The Location points at the note.
    let read = send(&gw, &auth, Method::GET, &location, &[], None);
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.json(), note);
    // Stored the legacy way: CHAR(60) padded, CYYMMDD.
    let rows = query_db(
        db,
        &format!("SELECT NOTTX, NOTDT FROM JOBNOTE WHERE JOBNO = {job} AND NOTSQ = 1"),
    );
    assert_eq!(
        rows[0][0].as_deref(),
        Some(format!("{:<60}", "Check the plating thickness").as_str())
    );
    assert_eq!(
        rows[0][1].as_deref().map(|v| v.trim_end_matches(".0")),
        Some("1250304")
    );
    // A retry with the same key is answered again, and writes nothing.
    let again = send(
        &gw,
        &auth,
        Method::POST,
        &path,
        &[("Idempotency-Key", &key)],
        Some(body),
    );
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.text, res.text);
    // Without a follow-up date; then the list holds both.
    let res = send(
        &gw,
        &auth,
        Method::POST,
        &path,
        &[],
        Some(r#"{"text": "Second shift to confirm"}"#),
    );
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(res.json()["follow_up_on"], serde_json::Value::Null);
    let list = send(&gw, &auth, Method::GET, &path, &[], None);
    assert_eq!(list.status, 200, "{}", list.text);
    let data = list.json()["data"].clone();
    assert_eq!(data.as_array().map(Vec::len), Some(2), "{}", list.text);
    // Too long for CHAR(60): refused, never cut.
    let long = format!(r#"{{"text": "{}"}}"#, "x".repeat(61));
    send(&gw, &auth, Method::POST, &path, &[], Some(&long)).problem(422, "invalid-body");
    // No such job: 404, nothing written.
    send(
        &gw,
        &auth,
        Method::POST,
        "/v1/jobs/999999/notes",
        &[],
        Some(r#"{"text": "x"}"#),
    )
    .problem(404, "not-found");
    // Deleted once; then it is gone.
    let res = send(&gw, &auth, Method::DELETE, &location, &[], None);
    assert_eq!(res.status, 204, "{}", res.text);
    send(&gw, &auth, Method::GET, &location, &[], None).problem(404, "not-found");
    send(&gw, &auth, Method::DELETE, &location, &[], None).problem(404, "not-found");
    // Reading needs jobs:read only; writing needs jobs:write.
    let reader = format!(
        "Bearer {}",
        token("reader", "jobs:read", serde_json::json!({}))
    );
    send(
        &gw,
        &reader,
        Method::POST,
        &path,
        &[],
        Some(r#"{"text": "x"}"#),
    )
    .problem(403, "forbidden");
    query_db(db, &format!("DELETE FROM JOBNOTE WHERE JOBNO = {job}"));
}

fn a_status_change_needs_the_current_etag(db: &TestDb) {
    let (gw, auth) = demo(db);
    let job = 200_023;
    let path = format!("/v1/jobs/{job}");
    let read = send(&gw, &auth, Method::GET, &path, &[], None);
    assert_eq!(read.status, 200, "{}", read.text);
    let etag = read.header("etag").expect("etag").to_string();
    let before = read.json();
    let target = if before["status"] == "on_hold" {
        "released"
    } else {
        "on_hold"
    };
    let body = format!(r#"{{"status": "{target}"}}"#);
    send(&gw, &auth, Method::PATCH, &path, &[], Some(&body)).problem(428, "if-match-required");
    // A header without a tag is no precondition either.
    send(
        &gw,
        &auth,
        Method::PATCH,
        &path,
        &[("If-Match", " , ")],
        Some(&body),
    )
    .problem(428, "if-match-required");
    send(
        &gw,
        &auth,
        Method::PATCH,
        &path,
        &[("If-Match", "\"0000\"")],
        Some(&body),
    )
    .problem(412, "precondition-failed");
    // Codes are words: a letter is not one.
    send(
        &gw,
        &auth,
        Method::PATCH,
        &path,
        &[("If-Match", &etag)],
        Some(r#"{"status": "H"}"#),
    )
    .problem(422, "invalid-body");
    let res = send(
        &gw,
        &auth,
        Method::PATCH,
        &path,
        &[("If-Match", &etag)],
        Some(&body),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    let after = res.json();
    assert_eq!(after["status"], target);
    assert_eq!(after["description"], before["description"], "the whole job");
    let letter = if target == "on_hold" { "H" } else { "R" };
    assert_eq!(
        query_db(db, &format!("SELECT STSCD FROM JOBMST WHERE JOBNO = {job}"))[0][0].as_deref(),
        Some(letter)
    );
    // The old ETag is stale now.
    send(
        &gw,
        &auth,
        Method::PATCH,
        &path,
        &[("If-Match", &etag)],
        Some(r#"{"status": "planned"}"#),
    )
    .problem(412, "precondition-failed");
    // Leave the shared database as it was.
    let fresh = send(&gw, &auth, Method::GET, &path, &[], None);
    let fresh_tag = fresh.header("etag").expect("etag").to_string();
    let undo = format!(
        r#"{{"status": "{}"}}"#,
        before["status"].as_str().expect("status")
    );
    let res = send(
        &gw,
        &auth,
        Method::PATCH,
        &path,
        &[("If-Match", &fresh_tag)],
        Some(&undo),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json(), before);
}

fn an_order_is_created_with_its_lines(db: &TestDb) {
    let (gw, auth) = demo(db);
    let reference = format!("DEMO-{}", db.dialect);
    // A database kept from an earlier run starts without this order.
    query_db(
        db,
        &format!(
            "DELETE FROM ORDLIN WHERE ORDNO IN (SELECT ORDNO FROM ORDHDR WHERE RTRIM(REFTX) = '{reference}')"
        ),
    );
    query_db(
        db,
        &format!("DELETE FROM ORDHDR WHERE RTRIM(REFTX) = '{reference}'"),
    );
    let body = format!(
        r#"{{"customer": 1001, "ordered_on": "2025-03-04", "rush": true, "reference": "{reference}",
            "lines": [{{"item": "BOLT-M8", "quantity": "12.500"}}, {{"item": "NUT-M8", "quantity": 1234567.125}}]}}"#
    );
    let key = format!("demo-order-{}-{}", db.dialect, std::process::id());
    let res = send(
        &gw,
        &auth,
        Method::POST,
        "/v1/orders",
        &[("Idempotency-Key", &key)],
        Some(&body),
    );
    assert_eq!(res.status, 201, "{}", res.text);
    let order = res.json();
    assert_eq!(order["customer_number"], 1001);
    assert_eq!(order["ordered_on"], "2025-03-04");
    assert_eq!(order["rush"], true);
    assert_eq!(order["reference"], reference.as_str());
    assert_eq!(order["line_count"], 2);
    let number = order["order_number"].as_i64().expect("order number");
    let location = res.header("location").expect("location").to_string();
    assert_eq!(location, format!("/v1/orders/{number}"));
    let read = send(&gw, &auth, Method::GET, &location, &[], None);
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.json(), order);
    let lines = send(
        &gw,
        &auth,
        Method::GET,
        &format!("{location}/lines"),
        &[],
        None,
    );
    assert_eq!(lines.status, 200, "{}", lines.text);
    let data = lines.json()["data"].clone();
    assert_eq!(data[0]["item"], "BOLT-M8");
    assert_eq!(data[1]["line"], 2);
    // Padded CHAR(15) and every decimal digit in the database.
    let rows = query_db(
        db,
        &format!("SELECT ITMNO, QTYOR FROM ORDLIN WHERE ORDNO = {number} ORDER BY LINNO"),
    );
    assert_eq!(rows[0][0].as_deref(), Some("BOLT-M8        "));
    assert!(
        rows[1][1]
            .as_deref()
            .is_some_and(|q| q.starts_with("1234567.125")),
        "{rows:?}"
    );
    // The same reference again: 409. A customer that does not exist: 404. A line the database
    // refuses (quantity 0): 422, and the header is rolled back with it.
    send(&gw, &auth, Method::POST, "/v1/orders", &[], Some(&body)).problem(409, "conflict");
    let other = format!("{reference}-2");
    let unknown = body.replace("1001", "9999999").replace(&reference, &other);
    send(&gw, &auth, Method::POST, "/v1/orders", &[], Some(&unknown)).problem(404, "not-found");
    let zero = body.replace("1234567.125", "0").replace(&reference, &other);
    send(&gw, &auth, Method::POST, "/v1/orders", &[], Some(&zero))
        .problem(422, "constraint-refused");
    assert!(
        query_db(
            db,
            &format!("SELECT 1 FROM ORDHDR WHERE RTRIM(REFTX) = '{other}'")
        )
        .is_empty()
    );
    // Orders need their own scopes.
    let jobs_only = format!(
        "Bearer {}",
        token("j", "jobs:read jobs:write", serde_json::json!({}))
    );
    send(&gw, &jobs_only, Method::GET, &location, &[], None).problem(403, "forbidden");
}

fn the_document_describes_the_written_rows(db: &TestDb) {
    let (gw, auth) = demo(db);
    // Once the start-up check has described the last step of each write, its answer's schema
    // is closed and names the columns the write returns.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let doc = loop {
        let doc = send(&gw, &auth, Method::GET, "/openapi/v1.json", &[], None).json();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        if schemas
            .iter()
            .filter(|(name, _)| *name != "Problem")
            .all(|(_, s)| s["additionalProperties"] == false)
        {
            break doc;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the document never learned every route's columns: {}",
            doc["components"]["schemas"]
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let created = &doc["paths"]["/v1/orders"]["post"]["responses"]["201"]["content"]["application/json"]
        ["schema"]["$ref"];
    let name = created
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .expect("a named schema");
    let mut props: Vec<&String> = doc["components"]["schemas"][name]["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .collect();
    props.sort();
    assert_eq!(
        props,
        [
            "customer_number",
            "line_count",
            "order_number",
            "ordered_on",
            "reference",
            "rush"
        ],
        "{}",
        doc["components"]["schemas"][name]
    );
    let patch = &doc["paths"]["/v1/jobs/{job_number}"]["patch"];
    assert!(patch["responses"]["412"].is_object());
    assert!(patch["responses"]["428"].is_object());
    // The Idempotency-Key says which characters it takes, and the 400 a bad one gets.
    let post = &doc["paths"]["/v1/jobs/{job_number}/notes"]["post"];
    let key = post["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .expect("Idempotency-Key");
    assert_eq!(key["schema"]["pattern"], "^[!-~]+$");
    assert!(post["responses"]["400"].is_object());
    // A JSON number with a zero fraction is an integer, as JSON Schema says.
    let res = send(
        &gw,
        &auth,
        Method::POST,
        "/v1/orders",
        &[],
        Some(
            r#"{"customer": 9999999.0, "ordered_on": "2025-03-04", "reference": "NO-SUCH-CUSTOMER",
                "lines": [{"item": "X", "quantity": 1}]}"#,
        ),
    );
    res.problem(404, "not-found");
}
