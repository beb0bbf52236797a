//! Write routes on a `kind = "mssql"` source, at the protocol level: what the gateway sends
//! the TDS test server for a transaction (read back by the [`Recorder`] between them), and how
//! it reads the answers: `SET XACT_ABORT ON; BEGIN TRANSACTION`, each step through
//! `sp_executesql` with its values bound as `@P1…` (legacy encodings applied, a step's output
//! bound by the next), then `COMMIT TRANSACTION`, or `IF @@TRANCOUNT > 0 ROLLBACK
//! TRANSACTION` after a failing step, a step that touched no row, or a procedure's return
//! code. The test server answers by statement text only, so each case registers the answer it
//! needs; SQL Server's own behaviour (OUTPUT parameters, constraints) is `mssql_live.rs`'s.

use std::time::{Duration, Instant};

use mssql_mock_tds::{
    ColumnDefinition, ColumnValue, QueryResponse, Row, SqlDataType, TerminalError,
};
use reqwest::Method;

use super::recorder::{Bound, Recorder, Sent};
use super::{LOGINS_AT_START, Mock, gateway_at};
use crate::common::{self, Gateway};

const WRITES: &str = r#"
source = "erp"

[[route]]
id = "setJobStatus"
method = "PATCH"
path = "/jobs/{job_number}"
public = true
params.job_number = { type = "integer", minimum = 1 }
body.status = { codes = { P = "planned", R = "released", H = "on_hold" }, required = true }
body.note = { type = "string", max_length = 12, pad = true, required = true }
body.follow_up_on = { type = "date", format = "cyymmdd", nullable = true, required = false }
columns.JOBNO = { name = "job_number", type = "integer" }
columns.STSCD = { name = "status", codes = { P = "planned", R = "released", H = "on_hold" } }

[[route.step]]
sql = "UPDATE JOBMST SET STSCD = :status WHERE JOBNO = :job_number"

[[route.step]]
sql = "INSERT INTO JOBNOTE (JOBNO, NOTSQ, NOTTX, NOTBY, NOTDT) VALUES (:job_number, 1, :note, 'PATINA', COALESCE(:follow_up_on, 0))"

[[route.step]]
sql = "SELECT JOBNO, STSCD FROM JOBMST WHERE JOBNO = :job_number"

[[route]]
id = "holdJob"
method = "PATCH"
path = "/jobs/{job_number}/hold"
public = true
params.job_number = { type = "integer", minimum = 1 }
columns.JOBNO = { name = "job_number", type = "integer" }
columns.STSCD = { name = "status", codes = { P = "planned", R = "released", H = "on_hold" } }

[[route.step]]
sql = "UPDATE JOBMST SET STSCD = 'H' OUTPUT INSERTED.JOBNO, INSERTED.STSCD WHERE JOBNO = :job_number"

[[route]]
id = "setRush"
method = "PATCH"
path = "/jobs/{job_number}/rush"
public = true
params.job_number = { type = "integer", minimum = 1 }
body.rush = { type = "boolean", true_value = "Y", false_value = "N" }

[[route.step]]
sql = "UPDATE JOBMST SET RUSHF = :rush WHERE JOBNO = :job_number"

[[route]]
id = "createOrder"
method = "POST"
path = "/orders"
public = true
body.customer = { type = "integer", minimum = 1 }
body.reference = { type = "string", max_length = 20 }
body.lines = { type = "list", min_items = 1, items.item = { type = "string", max_length = 15 }, items.quantity = { type = "decimal", precision = 11, scale = 3 } }

[[route.step]]
sql = "INSERT INTO ORDHDR (CUSNO, REFTX) OUTPUT INSERTED.ORDNO VALUES (:customer, :reference)"
outputs = ["order_number"]

[[route.step]]
for_each = "lines"
index_as = "line"
sql = "INSERT INTO ORDLIN (ORDNO, LINNO, ITMNO, QTYOR) VALUES (:order_number, :line, :item, :quantity)"

[[route]]
id = "releaseJob"
method = "POST"
path = "/jobs/{job_number}/release"
public = true
status = 200
params.job_number = { type = "integer", minimum = 1 }
columns.RC = { name = "return_code", type = "integer" }
columns.STSCD = { name = "status", codes = { P = "planned", R = "released", H = "on_hold" } }
outcome_column = "RC"
outcomes.1 = { status = 409, detail = "Only a planned job can be released." }

[[route.step]]
sql = "DECLARE @RC INT, @ST CHAR(1); EXEC @RC = DBO.RELEASEJOB @JOB = :job_number, @STATUS = @ST OUTPUT; SELECT @RC AS RC, @ST AS STSCD"
"#;

const UPDATE_STATUS: &str = "UPDATE JOBMST SET STSCD = @P1 WHERE JOBNO = @P2";
const INSERT_NOTE: &str = "INSERT INTO JOBNOTE (JOBNO, NOTSQ, NOTTX, NOTBY, NOTDT) VALUES (@P1, 1, @P2, 'PATINA', COALESCE(@P3, 0))";
const READ_JOB: &str = "SELECT JOBNO, STSCD FROM JOBMST WHERE JOBNO = @P1";
const HOLD: &str =
    "UPDATE JOBMST SET STSCD = 'H' OUTPUT INSERTED.JOBNO, INSERTED.STSCD WHERE JOBNO = @P1";
const UPDATE_RUSH: &str = "UPDATE JOBMST SET RUSHF = @P1 WHERE JOBNO = @P2";
const INSERT_ORDER: &str =
    "INSERT INTO ORDHDR (CUSNO, REFTX) OUTPUT INSERTED.ORDNO VALUES (@P1, @P2)";
const INSERT_LINE: &str =
    "INSERT INTO ORDLIN (ORDNO, LINNO, ITMNO, QTYOR) VALUES (@P1, @P2, @P3, @P4)";
const RELEASE: &str = "DECLARE @RC INT, @ST CHAR(1); EXEC @RC = DBO.RELEASEJOB @JOB = @P1, @STATUS = @ST OUTPUT; SELECT @RC AS RC, @ST AS STSCD";

const BEGIN: &str = "SET XACT_ABORT ON; BEGIN TRANSACTION";
const COMMIT: &str = "COMMIT TRANSACTION";
const ROLLBACK: &str = "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION";

/// The answer to a statement that touched `rows` rows and returned none (the relay turns it
/// into a DONE counting them).
fn touched(rows: usize) -> QueryResponse {
    QueryResponse::new(
        Vec::new(),
        (0..rows).map(|_| Row::new(Vec::new())).collect(),
    )
}

fn release_answer(rc: i32, status: &str) -> QueryResponse {
    QueryResponse::new(
        vec![
            ColumnDefinition::new("RC", SqlDataType::Int),
            ColumnDefinition::new("STSCD", SqlDataType::NVarChar),
        ],
        vec![Row::new(vec![
            ColumnValue::Int(rc),
            ColumnValue::NVarChar(status.into()),
        ])],
    )
}

/// The test server, the recorder in front of it, and a gateway with one pooled connection.
fn setup() -> (Mock, Recorder, tempfile::TempDir, Gateway) {
    let mock = Mock::start();
    mock.register(UPDATE_STATUS, touched(1));
    mock.register(INSERT_NOTE, touched(1));
    mock.register(
        READ_JOB,
        QueryResponse::new(
            vec![
                ColumnDefinition::new("JOBNO", SqlDataType::Int),
                ColumnDefinition::new("STSCD", SqlDataType::NVarChar),
            ],
            vec![Row::new(vec![
                ColumnValue::Int(200_041),
                ColumnValue::NVarChar("R".into()),
            ])],
        ),
    );
    mock.register(
        INSERT_ORDER,
        QueryResponse::new(
            vec![ColumnDefinition::new("ORDNO", SqlDataType::Int)],
            vec![Row::new(vec![ColumnValue::Int(41)])],
        ),
    );
    mock.register(INSERT_LINE, touched(1));
    mock.register(RELEASE, release_answer(0, "R"));
    let recorder = Recorder::start(mock.port);
    let dir = tempfile::tempdir().expect("dir");
    let mappings = dir.path().join("mappings/v1");
    std::fs::create_dir_all(&mappings).expect("mkdir");
    std::fs::write(mappings.join("writes.toml"), WRITES).expect("mapping");
    let gw = gateway_at(
        dir.path(),
        recorder.port,
        "host = \"127.0.0.1\"\nencrypt = \"off\"\npool = { max = 1 }",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.logins() < LOGINS_AT_START {
        assert!(Instant::now() < deadline, "logins: {}", mock.logins());
        std::thread::sleep(Duration::from_millis(20));
    }
    (mock, recorder, dir, gw)
}

fn send(gw: &Gateway, method: Method, path: &str, body: &str) -> common::Response {
    gw.send(
        method,
        path,
        &[("Content-Type", "application/json")],
        Some(body),
    )
}

/// The requests of one write, without the start-up check's descriptions.
fn requests(recorder: &Recorder, mark: usize) -> Vec<Sent> {
    recorder
        .since(mark)
        .into_iter()
        .filter(|s| {
            !matches!(s, Sent::Statement { sql, .. } if sql.starts_with("EXEC sp_describe_first_result_set"))
        })
        .collect()
}

fn batch(text: &str) -> Sent {
    Sent::Batch(text.into())
}

fn statement(sql: &str, binds: Vec<Bound>) -> Sent {
    Sent::Statement {
        sql: sql.into(),
        binds,
    }
}

fn text(t: &str) -> Bound {
    Bound::Text(Some(t.into()))
}

#[test]
fn a_transaction_sends_begin_its_bound_steps_and_commit() {
    let (mock, recorder, _dir, gw) = setup();
    // The start-up check's descriptions are done once its connections have logged in and
    // the first request is answered.
    assert_eq!(gw.anonymous("/openapi/v1.json").status, 200);
    std::thread::sleep(Duration::from_millis(200));

    let mark = recorder.mark();
    let res = send(
        &gw,
        Method::PATCH,
        "/v1/jobs/200041",
        r#"{"status": "released", "note": "Go", "follow_up_on": "2025-03-04"}"#,
    );
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.json(),
        serde_json::json!({"job_number": 200_041, "status": "released"})
    );
    assert_eq!(
        requests(&recorder, mark),
        [
            batch(BEGIN),
            // The code word stored as its letter; the row count (1) came back, so the
            // transaction goes on.
            statement(UPDATE_STATUS, vec![text("R"), Bound::Int(Some(200_041))]),
            // Padded to the CHAR's length; the ISO date as CYYMMDD.
            statement(
                INSERT_NOTE,
                vec![
                    Bound::Int(Some(200_041)),
                    text("Go          "),
                    Bound::Int(Some(1_250_304))
                ]
            ),
            statement(READ_JOB, vec![Bound::Int(Some(200_041))]),
            batch(COMMIT),
        ]
    );

    // No follow-up date: a typed NULL.
    let mark = recorder.mark();
    let res = send(
        &gw,
        Method::PATCH,
        "/v1/jobs/200041",
        r#"{"status": "on_hold", "note": "Wait"}"#,
    );
    assert_eq!(res.status, 200, "{}", res.text);
    let sent = requests(&recorder, mark);
    assert_eq!(
        sent[2],
        statement(
            INSERT_NOTE,
            vec![
                Bound::Int(Some(200_041)),
                text("Wait        "),
                Bound::Int(None)
            ]
        ),
        "{sent:?}"
    );
    assert_eq!(sent.last(), Some(&batch(COMMIT)));
    assert_eq!(mock.logins(), LOGINS_AT_START, "one connection throughout");
}

#[test]
fn a_step_counts_the_rows_it_touched() {
    // Unregistered, this UPDATE is answered with a DONE counting no row.
    let (mock, recorder, _dir, gw) = setup();
    let mark = recorder.mark();
    let res = send(
        &gw,
        Method::PATCH,
        "/v1/jobs/999999/rush",
        r#"{"rush": true}"#,
    );
    res.problem(404, "not-found");
    assert_eq!(
        requests(&recorder, mark),
        [
            batch(BEGIN),
            statement(UPDATE_RUSH, vec![text("Y"), Bound::Int(Some(999_999))]),
            batch(ROLLBACK),
        ]
    );
    // The connection is clean: the next write runs on it. The UPDATE touches a row and
    // returns none: 204, committed.
    mock.register(UPDATE_RUSH, touched(1));
    let mark = recorder.mark();
    let res = send(
        &gw,
        Method::PATCH,
        "/v1/jobs/200041/rush",
        r#"{"rush": false}"#,
    );
    assert_eq!(res.status, 204, "{}", res.text);
    assert_eq!(
        requests(&recorder, mark),
        [
            batch(BEGIN),
            statement(UPDATE_RUSH, vec![text("N"), Bound::Int(Some(200_041))]),
            batch(COMMIT),
        ]
    );
    assert_eq!(mock.logins(), LOGINS_AT_START);
}

#[test]
fn a_failing_step_rolls_back_what_went_before() {
    let (mock, recorder, _dir, gw) = setup();
    let order = r#"{"customer": 1001, "reference": "PO-7",
                    "lines": [{"item": "BOLT-M8", "quantity": "12.500"}, {"item": "NUT", "quantity": 1234567.125}]}"#;
    let mark = recorder.mark();
    let res = send(&gw, Method::POST, "/v1/orders", order);
    assert!(res.status == 201 || res.status == 204, "{}", res.text);
    let line = |n: i64, item: &str, qty: &str| {
        statement(
            INSERT_LINE,
            // The order number the header's OUTPUT returned, bound by the lines; decimals as
            // exact text (no float on the way).
            vec![
                Bound::Int(Some(41)),
                Bound::Int(Some(n)),
                text(item),
                text(qty),
            ],
        )
    };
    assert_eq!(
        requests(&recorder, mark),
        [
            batch(BEGIN),
            statement(INSERT_ORDER, vec![Bound::Int(Some(1001)), text("PO-7")]),
            line(1, "BOLT-M8", "12.5"),
            line(2, "NUT", "1234567.125"),
            batch(COMMIT),
        ]
    );

    // The database refuses a line (a CHECK constraint, error 547): 422, and the header is
    // rolled back with it by the server (XACT_ABORT) and by the gateway's ROLLBACK.
    mock.register(
        INSERT_LINE,
        QueryResponse::error_only(TerminalError::new(
            547,
            16,
            "The INSERT statement conflicted with the CHECK constraint \"CK_ORDLIN_QTYOR\".",
        )),
    );
    let mark = recorder.mark();
    let res = send(&gw, Method::POST, "/v1/orders", order);
    res.problem(422, "constraint-refused");
    assert!(!res.text.contains("CK_ORDLIN"), "{}", res.text);
    assert_eq!(
        requests(&recorder, mark),
        [
            batch(BEGIN),
            statement(INSERT_ORDER, vec![Bound::Int(Some(1001)), text("PO-7")]),
            line(1, "BOLT-M8", "12.5"),
            batch(ROLLBACK),
        ]
    );

    // A duplicate key (error 2627): 409.
    mock.register(
        INSERT_ORDER,
        QueryResponse::error_only(TerminalError::new(
            2627,
            14,
            "Violation of UNIQUE KEY constraint 'UQ_ORDHDR_REFTX'.",
        )),
    );
    let mark = recorder.mark();
    send(&gw, Method::POST, "/v1/orders", order).problem(409, "conflict");
    assert_eq!(
        requests(&recorder, mark),
        [
            batch(BEGIN),
            statement(INSERT_ORDER, vec![Bound::Int(Some(1001)), text("PO-7")]),
            batch(ROLLBACK),
        ]
    );
    assert_eq!(mock.logins(), LOGINS_AT_START, "errors kept the connection");
}

#[test]
fn a_deadlock_is_retried_then_answered_503() {
    let (mock, recorder, _dir, gw) = setup();
    mock.register(
        INSERT_ORDER,
        QueryResponse::error_only(TerminalError::new(
            1205,
            13,
            "Transaction (Process ID 61) was deadlocked on lock resources with another process \
             and has been chosen as the deadlock victim. Rerun the transaction.",
        )),
    );
    let mark = recorder.mark();
    let res = send(
        &gw,
        Method::POST,
        "/v1/orders",
        r#"{"customer": 1001, "reference": "PO-8", "lines": [{"item": "X", "quantity": 1}]}"#,
    );
    res.problem(503, "write-contention");
    assert!(res.header("retry-after").is_some());
    let attempt = [
        batch(BEGIN),
        statement(INSERT_ORDER, vec![Bound::Int(Some(1001)), text("PO-8")]),
        batch(ROLLBACK),
    ];
    let sent = requests(&recorder, mark);
    let four: Vec<Sent> = (0..4).flat_map(|_| attempt.iter().cloned()).collect();
    assert_eq!(sent, four, "four attempts, each rolled back");
}

#[test]
fn a_procedures_return_code_commits_or_rolls_back() {
    let (mock, recorder, _dir, gw) = setup();
    let mark = recorder.mark();
    let res = send(&gw, Method::POST, "/v1/jobs/200041/release", "{}");
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.json(),
        serde_json::json!({"return_code": 0, "status": "released"})
    );
    assert_eq!(
        requests(&recorder, mark),
        [
            batch(BEGIN),
            statement(RELEASE, vec![Bound::Int(Some(200_041))]),
            batch(COMMIT),
        ]
    );

    mock.register(RELEASE, release_answer(1, "R"));
    let mark = recorder.mark();
    let p = send(&gw, Method::POST, "/v1/jobs/200041/release", "{}").problem(409, "write-refused");
    assert_eq!(p["detail"], "Only a planned job can be released.");
    assert_eq!(
        requests(&recorder, mark),
        [
            batch(BEGIN),
            statement(RELEASE, vec![Bound::Int(Some(200_041))]),
            batch(ROLLBACK),
        ]
    );
}

/// A step that must touch a row and returns the rows it touched (`OUTPUT`): the rows are the
/// answer, and their number is the step's row count.
#[test]
fn a_counted_step_with_output_rows_answers_with_them() {
    let (mock, recorder, _dir, gw) = setup();
    mock.register(
        HOLD,
        QueryResponse::new(
            vec![
                ColumnDefinition::new("JOBNO", SqlDataType::Int),
                ColumnDefinition::new("STSCD", SqlDataType::NVarChar),
            ],
            vec![Row::new(vec![
                ColumnValue::Int(200_041),
                ColumnValue::NVarChar("H".into()),
            ])],
        ),
    );
    let mark = recorder.mark();
    let res = send(&gw, Method::PATCH, "/v1/jobs/200041/hold", "{}");
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.json(),
        serde_json::json!({"job_number": 200_041, "status": "on_hold"})
    );
    assert_eq!(
        requests(&recorder, mark),
        [
            batch(BEGIN),
            statement(HOLD, vec![Bound::Int(Some(200_041))]),
            batch(COMMIT),
        ]
    );
    // No row touched, none returned: 404, rolled back.
    mock.register(
        HOLD,
        QueryResponse::new(
            vec![
                ColumnDefinition::new("JOBNO", SqlDataType::Int),
                ColumnDefinition::new("STSCD", SqlDataType::NVarChar),
            ],
            vec![],
        ),
    );
    let mark = recorder.mark();
    send(&gw, Method::PATCH, "/v1/jobs/999999/hold", "{}").problem(404, "not-found");
    assert_eq!(requests(&recorder, mark).last(), Some(&batch(ROLLBACK)));
}
