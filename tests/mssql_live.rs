//! The SQL Server source against a real SQL Server, whenever `MSSQL_URL` holds an ADO.NET
//! connection string to a database the tests may overwrite (deploy/docker-compose.yml starts
//! SQL Server 2022 with one; the README says how). Loads `fixtures/mssql/`, then checks that
//! the demo mappings answer exactly as they do over SQLite, that every SQL Server type
//! decodes, that a statement timeout cancels on the server, and that write routes commit and
//! roll back, a stored procedure's return code and OUTPUT parameter included. The tests that
//! load the fixtures take turns (a file lock), as they share one database. Without
//! `MSSQL_URL` every test here says loudly that it was skipped.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{ALL_SCOPES, Gateway, ROOT};
use futures_util::TryStreamExt as _;
use tokio_util::compat::TokioAsyncWriteCompatExt as _;

fn mssql_url() -> Option<String> {
    match std::env::var("MSSQL_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let msg = "SKIPPED: SQL Server live test: MSSQL_URL is not set (start one with \
                       deploy/docker-compose.yml, see the README)";
            eprintln!("{msg}");
            println!("{msg}");
            None
        }
    }
}

/// The tests that load the fixtures share one database: each holds this lock (a file beside
/// the system's temporary files) until it is done.
fn take_turn() -> std::fs::File {
    let f = std::fs::File::create(std::env::temp_dir().join("patina-mssql-live.lock"))
        .expect("lock file");
    f.lock().expect("lock");
    f
}

type Client = tiberius::Client<tokio_util::compat::Compat<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Client {
    let config = tiberius::Config::from_ado_string(url).expect("MSSQL_URL is an ADO string");
    let tcp = tokio::net::TcpStream::connect(config.get_addr())
        .await
        .expect("reach SQL Server");
    Box::pin(tiberius::Client::connect(config, tcp.compat_write()))
        .await
        .expect("log in to SQL Server")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The first column of each row of `sql`, which must be text (CAST it), asked of the server
/// directly.
fn texts(url: &str, sql: &str) -> Vec<Option<String>> {
    runtime().block_on(async {
        let mut client = connect(url).await;
        let rows = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{e}: {sql}"))
            .into_first_result()
            .await
            .expect("rows");
        rows.iter()
            .map(|r| r.get::<&str, _>(0).map(str::to_string))
            .collect()
    })
}

/// Run a T-SQL script (batches separated by `GO` lines) with the client library directly.
fn run_script(url: &str, files: &[&str]) {
    runtime().block_on(async {
        let mut client = connect(url).await;
        for file in files {
            let text = std::fs::read_to_string(Path::new(ROOT).join(file)).expect("fixture");
            let mut batch = String::new();
            for line in text.lines().chain(std::iter::once("GO")) {
                if line.trim().eq_ignore_ascii_case("GO") {
                    if !batch.trim().is_empty() {
                        let mut s = client
                            .simple_query(batch.as_str())
                            .await
                            .unwrap_or_else(|e| panic!("{file}: {e}\n{batch}"));
                        while s.try_next().await.expect("batch result").is_some() {}
                    }
                    batch.clear();
                } else {
                    batch.push_str(line);
                    batch.push('\n');
                }
            }
        }
    });
}

/// A config whose source `demo` is the SQL Server of `MSSQL_URL` (read from the environment
/// when the gateway starts: the URL never sits in the file).
fn config(dir: &Path, mappings: &str, source_extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("patina.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nmappings = \"{mappings}\"\n\n[sources.demo]\nkind = \"mssql\"\n\
             connection_string = \"${{MSSQL_URL}}\"\n{source_extra}\n\n{}",
            common::auth_section(&dir.join("keys.toml"))
        ),
    )
    .expect("config");
    cfg
}

fn gateway(dir: &Path, mappings: &str, source_extra: &str) -> Gateway {
    Gateway::from_config(&config(dir, mappings, source_extra))
}

#[test]
fn demo_mappings_answer_as_they_do_over_sqlite() {
    let Some(url) = mssql_url() else { return };
    let _turn = take_turn();
    run_script(
        &url,
        &["fixtures/mssql/schema.sql", "fixtures/mssql/data.sql"],
    );
    let dir = tempfile::tempdir().expect("dir");
    let ms = gateway(dir.path(), &format!("{ROOT}/mappings"), "");
    let lite = Gateway::demo(&common::sqlite());
    let token = common::token("u1", ALL_SCOPES, serde_json::json!({ "customer_id": 1001 }));
    let auth = format!("Bearer {token}");
    for path in [
        "/v1/jobs/100001",
        "/v1/jobs/100002",
        "/v1/jobs/100003",
        "/v1/jobs/100004",
        "/v1/jobs/999",
        "/v1/jobs?status=released&plant=CLE",
        "/v1/jobs?rush=true&due_from=2000-01-01&due_to=2010-12-31",
        "/v1/jobs/100001/operations",
        "/v1/jobs/200007/operations",
        "/v1/jobs/100001/routing",
        "/v1/customers/1001",
        "/v1/customers/1002",
        "/v1/customers/1003",
        "/v1/customers/1002/jobs",
        "/v1/customers/1105/jobs",
        "/v1/customers?name=b%C3%A4ck",
        "/v1/customers?name=o%27neil",
        "/v1/customers?name=%25",
        "/v1/customers?name=%5BA%5D",
        "/v1/customers?name=GREAT&status=credit_hold",
        "/v1/my/jobs",
    ] {
        let a = lite.get_with(path, &[("authorization", &auth)]);
        let b = ms.get_with(path, &[("authorization", &auth)]);
        assert_eq!(a.status, b.status, "{path}: {}", b.text);
        assert_eq!(a.json(), b.json(), "{path}");
    }
}

const TYPES: &str = r#"
source = "demo"

[[route]]
id = "types"
path = "/types"
public = true
one = true
sql = """
SELECT CAST(255 AS tinyint) AS TI, CAST(-32768 AS smallint) AS SI, CAST(7 AS int) AS I,
       CAST(-9223372036854775808 AS bigint) AS BI, CAST(1 AS bit) AS B,
       CAST('12345678901234567890.123456789012345678' AS decimal(38,18)) AS D,
       CAST(123 AS numeric(9,0)) AS N0, CAST(1234.5678 AS money) AS M,
       CAST(-214748.3648 AS smallmoney) AS SM, CAST(1.5 AS float) AS F, CAST(0.5 AS real) AS R,
       CAST('AB' AS char(5)) AS C, CAST('vc' AS varchar(10)) AS VC, N'Zoë ✓' AS NVC,
       CAST(N'日本' AS nchar(4)) AS NC, CAST('long' AS text) AS T, CAST(N'nlong' AS ntext) AS NT,
       CAST('2024-01-02' AS date) AS DT, CAST('12:34:56.1234567' AS time(7)) AS TM,
       CAST('2024-01-02T03:04:05.997' AS datetime) AS DTM,
       CAST('2024-01-02T03:04:00' AS smalldatetime) AS SDT,
       CAST('2024-01-02T03:04:05.1234567' AS datetime2(7)) AS DT2,
       CAST('2024-01-02T03:04:05+05:30' AS datetimeoffset(0)) AS DTO,
       CAST('6F9619FF-8B86-D011-B42D-00C04FC964FF' AS uniqueidentifier) AS G,
       CAST(0xDEADBEEF AS varbinary(8)) AS VB, CAST(0x01 AS binary(2)) AS BN,
       CAST(NULL AS int) AS NI, CAST(NULL AS decimal(9,2)) AS ND, CAST(NULL AS datetime2) AS NDT,
       CAST(NULL AS nvarchar(5)) AS NS, CAST(NULL AS varbinary(5)) AS NB,
       CAST(NULL AS uniqueidentifier) AS NG, CAST(NULL AS bit) AS NBIT
"""
columns.C = { name = "c", trim = "end" }
columns.NC = { name = "nc", trim = "end" }

[[route]]
id = "spatial"
path = "/spatial"
public = true
sql = "SELECT geography::Point(47.65, -122.34, 4326) AS SHAPE"

[[route]]
id = "slow"
path = "/slow"
public = true
statement_timeout = "1s"
# Billions of rows to count: far longer than the 1s timeout.
sql = "SELECT COUNT_BIG(*) AS X FROM sys.all_objects a CROSS JOIN sys.all_objects b CROSS JOIN sys.all_objects c"
"#;

#[test]
fn every_type_decodes_and_timeouts_cancel_on_the_server() {
    let dir = tempfile::tempdir().expect("dir");
    let mappings = dir.path().join("mappings/v1");
    std::fs::create_dir_all(&mappings).expect("mkdir");
    std::fs::write(mappings.join("types.toml"), TYPES).expect("mapping");
    // Offline, the mapping compiles whether or not a server is at hand.
    let cfg = dir.path().join("offline.toml");
    std::fs::write(
        &cfg,
        "[server]\nmappings = \"mappings\"\n[sources.demo]\nkind = \"mssql\"\nhost = \"127.0.0.1\"\n",
    )
    .expect("config");
    let ran = common::patina(
        &["check", "--config", cfg.to_str().expect("utf-8 path")],
        dir.path(),
    );
    assert!(
        ran.code.is_some_and(|c| c < 2),
        "no errors (warnings are fine): {}",
        ran.err
    );
    if mssql_url().is_none() {
        return;
    }
    let gw = gateway(dir.path(), "mappings", "pool = { max = 1 }");

    let r = gw.anonymous("/v1/types");
    assert_eq!(r.status, 200, "{}", r.text);
    let want: serde_json::Value = serde_json::from_str(
        r#"{
            "ti": 255, "si": -32768, "i": 7, "bi": -9223372036854775808, "b": true,
            "d": 12345678901234567890.123456789012345678,
            "n0": 123, "m": 1234.5678, "sm": -214748.3648, "f": 1.5, "r": 0.5,
            "c": "AB", "vc": "vc", "nvc": "Zoë ✓", "nc": "日本", "t": "long", "nt": "nlong",
            "dt": "2024-01-02", "tm": "12:34:56", "dtm": "2024-01-02T03:04:05.997",
            "sdt": "2024-01-02T03:04:00", "dt2": "2024-01-02T03:04:05.1234567",
            "dto": "2024-01-02T03:04:05+05:30",
            "g": "6F9619FF-8B86-D011-B42D-00C04FC964FF", "vb": "3q2+7w==", "bn": "AQA=",
            "ni": null, "nd": null, "ndt": null, "ns": null, "nb": null, "ng": null, "nbit": null
        }"#,
    )
    .expect("expected JSON");
    assert_eq!(r.json(), want);
    // Every digit of the decimal, not a double's approximation.
    assert!(
        r.text
            .contains("\"d\":12345678901234567890.123456789012345678"),
        "{}",
        r.text
    );

    let r = gw.anonymous("/v1/spatial");
    let p = r.problem(500, "undecodable-value");
    assert!(
        p["detail"].as_str().unwrap_or_default().contains("SHAPE"),
        "{p}"
    );

    let started = Instant::now();
    gw.anonymous("/v1/slow").problem(504, "statement-timeout");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The cancelled connection (the pool's only one) serves the next request.
    assert_eq!(gw.anonymous("/v1/types").status, 200);
}

#[test]
fn check_db_describes_every_statement() {
    let Some(url) = mssql_url() else { return };
    let _turn = take_turn();
    run_script(
        &url,
        &["fixtures/mssql/schema.sql", "fixtures/mssql/data.sql"],
    );
    let dir = tempfile::tempdir().expect("dir");
    let cfg = config(dir.path(), &format!("{ROOT}/mappings"), "");
    let ran = common::patina(
        &[
            "check",
            "--db",
            "--config",
            cfg.to_str().expect("utf-8 path"),
        ],
        dir.path(),
    );
    let stderr = &ran.err;
    assert!(ran.code.is_some_and(|c| c < 2), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(
        !stderr.contains(&url),
        "the connection string is never printed"
    );
}

const WRITES: &str = r#"
source = "demo"

[[route]]
id = "releaseJob"
method = "POST"
path = "/jobs/{job_number}/release"
public = true
status = 200
params.job_number = { type = "integer", minimum = 1 }
columns.RC = { name = "return_code", type = "integer" }
columns.STSCD = { name = "status", codes = { P = "planned", R = "released", H = "on_hold", C = "complete", X = "cancelled" } }
outcome_column = "RC"
outcomes.1 = { status = 409, detail = "Only a planned job can be released; this one is not planned." }
outcomes.2 = { status = 404, detail = "There is no job with this number." }

[[route.step]]
sql = """
DECLARE @rc INT, @st CHAR(1);
EXEC @rc = dbo.ReleaseJob @job = :job_number, @user = 'LIVETEST', @status = @st OUTPUT;
SELECT @rc AS RC, @st AS STSCD
"""

# A step that must touch a row: counted by its OUTPUT rows, or by the server's DONE.
[[route]]
id = "holdJob"
method = "PATCH"
path = "/jobs/{job_number}/hold"
public = true
params.job_number = { type = "integer", minimum = 1 }
columns.JOBNO = { name = "job_number", type = "integer" }
columns.STSCD = { name = "status", codes = { P = "planned", R = "released", H = "on_hold", C = "complete", X = "cancelled" } }

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
location = "/v1/orders/{order_number}"
body.customer = { type = "integer", minimum = 1 }
body.ordered_on = { type = "date", format = "cyymmdd" }
body.rush = { type = "boolean", true_value = "Y", false_value = "N", default = false }
body.reference = { type = "string", max_length = 20, pad = true }
body.lines = { type = "list", min_items = 1, max_items = 50, items.item = { type = "string", max_length = 15, pad = true }, items.quantity = { type = "decimal", precision = 11, scale = 3 } }

[[route.step]]
sql = "INSERT INTO ORDHDR (CUSNO, ORDDT, RUSHF, REFTX) OUTPUT INSERTED.ORDNO VALUES (:customer, :ordered_on, :rush, :reference)"
outputs = ["order_number"]

[[route.step]]
for_each = "lines"
index_as = "line"
sql = "INSERT INTO ORDLIN (ORDNO, LINNO, ITMNO, QTYOR) VALUES (:order_number, :line, :item, CAST(:quantity AS DECIMAL(11,3)))"
"#;

#[test]
fn writes_commit_or_roll_back_and_a_procedure_answers_through_its_return_code() {
    let dir = tempfile::tempdir().expect("dir");
    let mappings = dir.path().join("mappings/v1");
    std::fs::create_dir_all(&mappings).expect("mkdir");
    std::fs::write(mappings.join("writes.toml"), WRITES).expect("mapping");
    // Offline, the mapping compiles whether or not a server is at hand.
    let cfg = dir.path().join("offline.toml");
    std::fs::write(
        &cfg,
        "[server]\nmappings = \"mappings\"\n[sources.demo]\nkind = \"mssql\"\nhost = \"127.0.0.1\"\n",
    )
    .expect("config");
    let ran = common::patina(
        &["check", "--config", cfg.to_str().expect("utf-8 path")],
        dir.path(),
    );
    assert!(
        ran.code.is_some_and(|c| c < 2),
        "no errors (warnings are fine): {}",
        ran.err
    );
    let Some(url) = mssql_url() else { return };
    let _turn = take_turn();
    run_script(
        &url,
        &["fixtures/mssql/schema.sql", "fixtures/mssql/data.sql"],
    );
    let gw = gateway(dir.path(), "mappings", "pool = { max = 2 }");
    let post = |path: &str, body: &str| {
        gw.send(
            reqwest::Method::POST,
            path,
            &[("Content-Type", "application/json")],
            Some(body),
        )
    };
    let status_of = |job: i64| {
        texts(
            &url,
            &format!("SELECT STSCD FROM JOBMST WHERE JOBNO = {job}"),
        )
    };

    // A planned job: released, the return code 0 and the OUTPUT parameter in the answer.
    let r = post("/v1/jobs/200031/release", "{}");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        serde_json::json!({ "return_code": 0, "status": "released" })
    );
    assert_eq!(status_of(200_031), [Some("R".to_string())]);
    assert_eq!(
        texts(
            &url,
            "SELECT RTRIM(NOTBY) FROM JOBNOTE WHERE JOBNO = 200031"
        ),
        [Some("LIVETEST".to_string())]
    );
    // Again: return code 1, the DBA's words, nothing more written.
    let r = post("/v1/jobs/200031/release", "{}");
    let p = r.problem(409, "write-refused");
    assert_eq!(
        p["detail"],
        "Only a planned job can be released; this one is not planned."
    );
    assert_eq!(
        texts(
            &url,
            "SELECT CAST(COUNT(*) AS NVARCHAR(10)) FROM JOBNOTE WHERE JOBNO = 200031"
        ),
        [Some("1".to_string())]
    );
    post("/v1/jobs/999999/release", "{}").problem(404, "write-refused");

    // An order and its lines, in the legacy encoding.
    let r = post(
        "/v1/orders",
        r#"{"customer": 1001, "ordered_on": "2025-03-04", "rush": true, "reference": "LIVE-GOOD",
            "lines": [{"item": "BOLT-M8", "quantity": "12.500"}, {"item": "NUT-M8", "quantity": 1234567.125}]}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let order = r
        .header("location")
        .and_then(|l| l.rsplit('/').next())
        .and_then(|n| n.parse::<i64>().ok())
        .expect("the order number in the Location");
    assert_eq!(
        texts(
            &url,
            &format!(
                "SELECT CAST(ORDDT AS NVARCHAR(10)) + '|' + RUSHF + '|' + REFTX + '|' \
                 FROM ORDHDR WHERE ORDNO = {order}"
            )
        ),
        [Some("1250304|Y|LIVE-GOOD           |".to_string())]
    );
    assert_eq!(
        texts(
            &url,
            &format!(
                "SELECT ITMNO + '|' + CAST(QTYOR AS NVARCHAR(20)) FROM ORDLIN \
                 WHERE ORDNO = {order} ORDER BY LINNO"
            )
        ),
        [
            Some("BOLT-M8        |12.500".to_string()),
            Some("NUT-M8         |1234567.125".to_string())
        ]
    );

    // The second line breaks the CHECK constraint: 422, and the header is rolled back too.
    let r = post(
        "/v1/orders",
        r#"{"customer": 1001, "ordered_on": "2025-03-04", "reference": "LIVE-BAD",
            "lines": [{"item": "BOLT-M8", "quantity": 1}, {"item": "NUT-M8", "quantity": 0}]}"#,
    );
    r.problem(422, "constraint-refused");
    common::assert_no_leak(&r.text);
    assert_eq!(
        texts(
            &url,
            "SELECT CAST(COUNT(*) AS NVARCHAR(10)) FROM ORDHDR WHERE REFTX = 'LIVE-BAD'"
        ),
        [Some("0".to_string())]
    );
    // The same reference again: 409, still one order with it.
    post(
        "/v1/orders",
        r#"{"customer": 1001, "ordered_on": "2025-03-04", "reference": "LIVE-GOOD",
            "lines": [{"item": "X", "quantity": 1}]}"#,
    )
    .problem(409, "conflict");
    assert_eq!(
        texts(
            &url,
            "SELECT CAST(COUNT(*) AS NVARCHAR(10)) FROM ORDHDR WHERE REFTX = 'LIVE-GOOD'"
        ),
        [Some("1".to_string())]
    );
    // Row counts: the rows an OUTPUT returns, or the count the server reports.
    let patch = |path: &str, body: &str| {
        gw.send(
            reqwest::Method::PATCH,
            path,
            &[("Content-Type", "application/json")],
            Some(body),
        )
    };
    let r = patch("/v1/jobs/200032/hold", "{}");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        serde_json::json!({ "job_number": 200_032, "status": "on_hold" })
    );
    patch("/v1/jobs/999999/hold", "{}").problem(404, "not-found");
    let r = patch("/v1/jobs/200032/rush", r#"{"rush": true}"#);
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        texts(&url, "SELECT RUSHF FROM JOBMST WHERE JOBNO = 200032"),
        [Some("Y".to_string())]
    );
    patch("/v1/jobs/999999/rush", r#"{"rush": true}"#).problem(404, "not-found");

    // The connections are fine after all that.
    assert_eq!(post("/v1/jobs/200036/release", "{}").status, 200);
}
