//! Stored procedures as write steps, over HTTP against PostgreSQL's ODBC driver (SQLite has no
//! procedures): `release_job` from the demo schema answers in INOUT parameters, which psqlODBC
//! returns as the one row of the `CALL`. Its return code becomes the answer's status through
//! `outcome_column` and `outcomes`, its other parameters are decoded with `columns`, or bound
//! by a later step through `outputs`; `deploy/examples/postgres-procedure.toml` runs as
//! written. Jobs 200031-200039 are this file's own; every test puts back what it changed. SQL Server's `EXEC` form is in `tests/mssql.rs` (binding, against the
//! TDS test server) and `tests/mssql_live.rs` (a real server).

mod common;

use common::{Gateway, Options, Response, TestDb, query_db, token};
use reqwest::Method;

const MAPPING: &str = r#"source = "demo"

# The procedure's own answer: its INOUT parameters, decoded like a read.
[[route]]
id = "releaseJob"
method = "POST"
path = "/jobs/{job_number}/release"
scopes = ["jobs:write"]
status = 200
params.job_number = { type = "integer", minimum = 1 }
params.user = { from_claim = "sub" }
columns.p_rc = { name = "return_code", type = "integer" }
columns.p_status = { name = "status", codes = { P = "planned", R = "released", H = "on_hold", C = "complete", X = "cancelled" } }
outcome_column = "p_rc"
outcomes.1 = { status = 409, detail = "Only a planned job can be released; this one is not planned." }
outcomes.2 = { status = 404, detail = "There is no job with this number." }

[[route.step]]
sql = "CALL release_job(:job_number, :user, NULL, NULL)"

# The procedure's parameters bound by a later step, which reads the job as it is now.
[[route]]
id = "releaseJobAndRead"
method = "POST"
path = "/jobs/{job_number}/release-and-read"
scopes = ["jobs:write"]
status = 200
params.job_number = { type = "integer", minimum = 1 }
params.user = { from_claim = "sub" }
columns.JOBNO = { name = "job_number", type = "integer" }
columns.STSCD = { name = "status", codes = { P = "planned", R = "released", H = "on_hold", C = "complete", X = "cancelled" } }
columns.RC = { name = "return_code", type = "integer" }
outcome_column = "RC"
outcomes.1 = { status = 409, detail = "Only a planned job can be released; this one is not planned." }
outcomes.2 = { status = 404, detail = "There is no job with this number." }

[[route.step]]
sql = "CALL release_job(:job_number, :user, NULL, NULL)"
outputs = ["rc", "released_status"]

[[route.step]]
sql = """
SELECT CAST(:job_number AS NUMERIC(9,0)) AS JOBNO, CAST(:released_status AS CHAR(1)) AS STSCD,
       CAST(:rc AS INTEGER) AS RC
"""
"#;

/// A planned job of this file's own, and the job table's status for it.
fn status_of(db: &TestDb, job: i64) -> Option<String> {
    query_db(db, &format!("SELECT STSCD FROM JOBMST WHERE JOBNO = {job}"))
        .first()
        .and_then(|r| r[0].clone())
}

/// Put the job back as planned, without the procedure's notes.
fn restore(db: &TestDb, job: i64) {
    query_db(
        db,
        &format!("UPDATE JOBMST SET STSCD = 'P' WHERE JOBNO = {job}"),
    );
    query_db(db, &format!("DELETE FROM JOBNOTE WHERE JOBNO = {job}"));
}

fn gateway(db: &TestDb) -> (Gateway, String) {
    let gw = Gateway::start(
        db,
        &Options {
            mappings: Some(&[("v1/p.toml", MAPPING)]),
            ..Options::default()
        },
    );
    let t = token("clerk7", "jobs:write", serde_json::json!({}));
    (gw, format!("Bearer {t}"))
}

fn post(gw: &Gateway, auth: &str, path: &str) -> Response {
    gw.send(
        Method::POST,
        path,
        &[
            ("Authorization", auth),
            ("Content-Type", "application/json"),
        ],
        Some("{}"),
    )
}

#[test]
fn a_procedure_releases_a_job_and_its_return_codes_become_answers() {
    let Some(db) = common::postgres() else {
        return;
    };
    let job = 200_031;
    restore(&db, job);
    let (gw, auth) = gateway(&db);
    let path = format!("/v1/jobs/{job}/release");

    let res = post(&gw, &auth, &path);
    assert_eq!(res.status, 200, "{}", res.text);
    let body = res.json();
    assert_eq!(body["return_code"], 0, "{}", res.text);
    assert_eq!(body["status"], "released", "{}", res.text);
    assert_eq!(status_of(&db, job).as_deref(), Some("R"));
    // The procedure wrote its note in the same transaction, with the caller's identity.
    let notes = query_db(
        &db,
        &format!("SELECT NOTTX, NOTBY FROM JOBNOTE WHERE JOBNO = {job}"),
    );
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0][1].as_deref().map(str::trim_end), Some("clerk7"));

    // Again: the procedure says 1 (not planned), the DBA's words answer, nothing changes.
    let res = post(&gw, &auth, &path);
    let p = res.problem(409, "write-refused");
    assert_eq!(
        p["detail"],
        "Only a planned job can be released; this one is not planned."
    );
    assert!(!res.text.contains("release_job"), "no SQL in answers");
    assert_eq!(status_of(&db, job).as_deref(), Some("R"));
    assert_eq!(
        query_db(
            &db,
            &format!("SELECT COUNT(*) FROM JOBNOTE WHERE JOBNO = {job}")
        )[0][0]
            .as_deref(),
        Some("1")
    );

    // A job that does not exist: the procedure says 2.
    let p = post(&gw, &auth, "/v1/jobs/999999/release").problem(404, "write-refused");
    assert_eq!(p["detail"], "There is no job with this number.");

    restore(&db, job);
}

#[test]
fn a_procedures_parameters_bind_a_later_step() {
    let Some(db) = common::postgres() else {
        return;
    };
    let job = 200_036;
    restore(&db, job);
    let (gw, auth) = gateway(&db);
    let path = format!("/v1/jobs/{job}/release-and-read");

    let res = post(&gw, &auth, &path);
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.json(),
        serde_json::json!({"job_number": job, "status": "released", "return_code": 0}),
        "{}",
        res.text
    );
    assert_eq!(status_of(&db, job).as_deref(), Some("R"));

    // The return code read from the last step's row: 1 again, and still nothing changes.
    post(&gw, &auth, &path).problem(409, "write-refused");
    assert_eq!(status_of(&db, job).as_deref(), Some("R"));

    // No such job: the status output is NULL, bound as such, and the code is 2.
    post(&gw, &auth, "/v1/jobs/999998/release-and-read").problem(404, "write-refused");

    restore(&db, job);
}

/// The example the README points to, run as it is written.
#[test]
fn the_example_procedure_mapping_runs_as_written() {
    let Some(db) = common::postgres() else {
        return;
    };
    let example = std::fs::read_to_string(
        std::path::Path::new(common::ROOT).join("deploy/examples/postgres-procedure.toml"),
    )
    .expect("the example mapping");
    // Job 200033 is on hold in the demo data: planned for this test, then put back.
    let job = 200_033;
    restore(&db, job);
    let gw = Gateway::start(
        &db,
        &Options {
            mappings: Some(&[("v1/release.toml", &example)]),
            ..Options::default()
        },
    );
    let auth = format!(
        "Bearer {}",
        token("clerk9", "jobs:write", serde_json::json!({}))
    );
    let res = post(&gw, &auth, &format!("/v1/jobs/{job}/release"));
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.json(),
        serde_json::json!({"return_code": 0, "status": "released"})
    );
    post(&gw, &auth, &format!("/v1/jobs/{job}/release")).problem(409, "write-refused");
    post(&gw, &auth, "/v1/jobs/999997/release").problem(404, "write-refused");
    restore(&db, job);
    query_db(
        &db,
        &format!("UPDATE JOBMST SET STSCD = 'H' WHERE JOBNO = {job}"),
    );
}
