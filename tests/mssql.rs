//! The SQL Server source at the protocol level: the real gateway, over HTTP, talking TDS to a
//! SQL Server test server started in-process (the `mssql-mock-tds` crate). It answers the
//! statements registered here, by their upper-case text, and ignores parameter values; its
//! result types are the integer family, nvarchar and (n)varchar/varbinary(max). Type decoding
//! for every other SQL Server type is covered by the unit tests in
//! `src/source/mssql/tests.rs`; a real server is exercised by `tests/mssql_live.rs` when
//! `MSSQL_URL` is set. Write routes (transactions, bound values, row counts, procedure return
//! codes) are in [`writes`], which reads what the gateway sends through [`recorder`].

mod common;
#[path = "mssql/paging.rs"]
mod paging;
#[path = "mssql/recorder.rs"]
mod recorder;
#[path = "mssql/writes.rs"]
mod writes;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Gateway;
use common::proxy::Proxy;
use mssql_mock_tds::{
    ColumnDefinition, ColumnValue, ConnectionStore, MockTdsServer, QueryRegistry, QueryResponse,
    Row, SqlDataType, TerminalError,
};

/// A TDS test server on its own runtime, on a loopback port.
struct Mock {
    port: u16,
    registry: Arc<tokio::sync::Mutex<QueryRegistry>>,
    store: Arc<tokio::sync::Mutex<ConnectionStore>>,
    rt: tokio::runtime::Runtime,
}

impl Mock {
    fn start() -> Mock {
        Self::start_with(None)
    }

    /// A server that speaks TDS 8 (TLS before any TDS byte) with this certificate and key.
    fn start_strict_tls(cert_pem: &[u8], key_pem: &[u8]) -> Mock {
        Self::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&[u8], &[u8])>) -> Mock {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt
            .block_on(async {
                match tls {
                    Some((cert, key)) => {
                        let id =
                            mssql_mock_tds::create_test_identity(cert, key).expect("TLS identity");
                        MockTdsServer::new_with_strict_tls("127.0.0.1:0", id).await
                    }
                    None => MockTdsServer::new("127.0.0.1:0").await,
                }
            })
            .expect("start the TDS test server");
        let port = server.local_addr().port();
        let registry = server.query_registry();
        let store = server.connection_store();
        rt.spawn(server.run());
        Mock {
            port,
            registry,
            store,
            rt,
        }
    }

    fn register(&self, sql: &str, response: QueryResponse) {
        self.rt
            .block_on(async { self.registry.lock().await.register(sql, response) });
    }

    /// Connections that logged in so far.
    fn logins(&self) -> usize {
        self.rt.block_on(async {
            self.store
                .lock()
                .await
                .all()
                .values()
                .filter(|c| c.authenticated)
                .count()
        })
    }

    fn databases(&self) -> Vec<Option<String>> {
        self.rt.block_on(async {
            self.store
                .lock()
                .await
                .all()
                .values()
                .map(|c| c.received_database.clone())
                .collect()
        })
    }
}

const PARTS: &str = r#"
source = "erp"

[[route]]
id = "getPart"
path = "/parts/{id}"
public = true
one = true
sql = "SELECT ID, NAME, DRAWING, NOTE FROM PARTS WHERE ID = :id"
params.id = { type = "integer", minimum = 1 }
columns.ID = { name = "id", type = "integer" }
columns.NAME = { name = "name", trim = "end" }
columns.DRAWING = { name = "drawing", type = "binary" }
columns.NOTE = { name = "note" }

[[route]]
id = "listParts"
path = "/parts"
public = true
max_rows = 2
sql = "SELECT ID, QTY FROM PARTS WHERE (CAST(:name AS NVARCHAR(40)) IS NULL OR NAME = :name) ORDER BY ID"
params.name = { type = "string" }
columns.ID = { name = "id", type = "integer", nullable = false }
columns.QTY = { name = "quantity", type = "integer" }

[[route]]
id = "slow"
path = "/slow"
public = true
statement_timeout = "1s"
sql = "SELECT SLOW FROM PARTS"

[[route]]
id = "notes"
path = "/notes"
public = true
sql = "SELECT NOTE FROM NOTES"

[[route]]
id = "broken"
path = "/broken"
public = true
sql = "SELECT ID FROM MISSING_TABLE"
"#;

fn register_parts(mock: &Mock) {
    mock.register(
        "SELECT ID, NAME, DRAWING, NOTE FROM PARTS WHERE ID = @P1",
        QueryResponse::new(
            vec![
                ColumnDefinition::new("ID", SqlDataType::Int),
                ColumnDefinition::new("NAME", SqlDataType::NVarChar),
                ColumnDefinition::new("DRAWING", SqlDataType::VarBinaryMax),
                ColumnDefinition::new("NOTE", SqlDataType::VarCharMax),
            ],
            vec![Row::new(vec![
                ColumnValue::Int(7),
                ColumnValue::NVarChar("Zoë bracket   ".into()),
                ColumnValue::VarBinaryMax(vec![vec![0xde, 0xad], vec![0xbe, 0xef]]),
                ColumnValue::VarCharMax(vec![b"caf".to_vec(), vec![0xe9]]),
            ])],
        ),
    );
    mock.register(
        "SELECT ID, QTY FROM PARTS WHERE (CAST(@P1 AS NVARCHAR(40)) IS NULL OR NAME = @P2) ORDER BY ID",
        QueryResponse::new(
            vec![
                ColumnDefinition::new("ID", SqlDataType::BigInt),
                ColumnDefinition::new("QTY", SqlDataType::SmallInt),
            ],
            vec![
                Row::new(vec![ColumnValue::BigInt(1), ColumnValue::SmallInt(40)]),
                Row::new(vec![ColumnValue::BigInt(2), ColumnValue::Null]),
                Row::new(vec![ColumnValue::BigInt(3), ColumnValue::SmallInt(-1)]),
            ],
        ),
    );
    mock.register(
        "SELECT SLOW FROM PARTS",
        QueryResponse::new(
            vec![ColumnDefinition::new("SLOW", SqlDataType::Int)],
            vec![Row::new(vec![ColumnValue::Int(1)])],
        )
        .with_delay(Duration::from_secs(30)),
    );
    mock.register(
        "SELECT NOTE FROM NOTES",
        QueryResponse::new(
            vec![ColumnDefinition::new("NOTE", SqlDataType::VarCharMax)],
            vec![
                Row::new(vec![ColumnValue::VarCharMax(vec![b"short".to_vec()])]),
                Row::new(vec![ColumnValue::VarCharMax(vec![vec![b'x'; 1000]])]),
                Row::new(vec![ColumnValue::VarCharMax(vec![b"after".to_vec()])]),
            ],
        ),
    );
    mock.register(
        "SELECT ID FROM MISSING_TABLE",
        QueryResponse::error_only(TerminalError::new(
            208,
            16,
            "Invalid object name 'MISSING_TABLE'.",
        )),
    );
}

/// A test server answering the parts statements, and a gateway in front of it.
fn parts_gateway(source_extra: &str) -> (Mock, tempfile::TempDir, Gateway) {
    let mock = Mock::start();
    register_parts(&mock);
    let dir = tempfile::tempdir().expect("dir");
    let gw = gateway(dir.path(), mock.port, source_extra);
    // Both pools log in at start: the one that serves requests, and the start-up check's own.
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.logins() < LOGINS_AT_START {
        assert!(
            Instant::now() < deadline,
            "logins at start: {}",
            mock.logins()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (mock, dir, gw)
}

/// Logins a started gateway has made: one connection serving requests (pool max 1), and one
/// for the start-up check, which describes every route on connections of its own.
const LOGINS_AT_START: usize = 2;

/// A gateway whose source `erp` is the SQL Server at `port`, without TLS.
fn gateway(dir: &Path, port: u16, source_extra: &str) -> Gateway {
    gateway_at(
        dir,
        port,
        &format!(
            "host = \"127.0.0.1\"\n# The test server speaks no TLS; a real one gets `required` or `strict`.\nencrypt = \"off\"\n{source_extra}"
        ),
    )
}

/// A gateway whose source `erp` is the SQL Server at `port`, with these source settings.
fn gateway_at(dir: &Path, port: u16, source_extra: &str) -> Gateway {
    let mappings = dir.join("mappings/v1");
    std::fs::create_dir_all(&mappings).expect("mkdir");
    std::fs::write(mappings.join("parts.toml"), PARTS).expect("mapping");
    let cfg = dir.join("patina.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nmappings = \"mappings\"\n\n[sources.erp]\nkind = \"mssql\"\n\
             port = {port}\ndatabase = \"ERP\"\nuser = \"patina\"\n\
             password = \"${{PATINA_TEST_MSSQL_PASSWORD:-not-a-secret}}\"\n{source_extra}\n"
        ),
    )
    .expect("config");
    Gateway::from_config(&cfg)
}

#[test]
fn rows_types_and_nulls_over_tds_on_pooled_connections() {
    let (mock, _dir, gw) = parts_gateway("pool = { max = 1 }");

    let r = gw.anonymous("/v1/parts/7");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        serde_json::json!({
            "id": 7,
            "name": "Zoë bracket",
            "drawing": "3q2+7w==",
            "note": "café",
        })
    );

    // The row cap stops reading after two rows; a NULL arrives as null.
    let r = gw.anonymous("/v1/parts?name=bracket");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["data"],
        serde_json::json!([{ "id": 1, "quantity": 40 }, { "id": 2, "quantity": null }])
    );

    // Twenty more requests, one after the other, reuse the pool's one connection: a statement
    // stopped at the row cap left it clean.
    for _ in 0..20 {
        assert_eq!(gw.anonymous("/v1/parts").status, 200);
        assert_eq!(gw.anonymous("/v1/parts/7").status, 200);
    }
    assert_eq!(
        mock.logins(),
        LOGINS_AT_START,
        "the one connection served every request"
    );
    assert!(
        mock.databases().iter().all(|d| d.as_deref() == Some("ERP")),
        "every login names the database: {:?}",
        mock.databases()
    );
}

#[test]
fn server_error_is_a_problem_without_server_text_and_the_connection_survives() {
    let (mock, _dir, gw) = parts_gateway("pool = { max = 1 }");

    let r = gw.anonymous("/v1/broken");
    let p = r.problem(500, "statement-failed");
    assert!(!r.text.contains("MISSING_TABLE"), "{}", r.text);
    assert!(!r.text.contains("Invalid object"), "{}", r.text);
    common::assert_no_leak(&r.text);
    assert!(p["detail"].is_string());

    assert_eq!(gw.anonymous("/v1/parts/7").status, 200);
    assert_eq!(
        mock.logins(),
        LOGINS_AT_START,
        "the error did not cost the connection"
    );
}

#[test]
fn timeout_cancels_on_the_server_and_keeps_the_connection() {
    let (mock, _dir, gw) = parts_gateway("pool = { max = 1 }");
    assert_eq!(gw.anonymous("/v1/parts/7").status, 200);

    let started = Instant::now();
    let r = gw.anonymous("/v1/slow");
    let took = started.elapsed();
    r.problem(504, "statement-timeout");
    assert!(
        took < Duration::from_secs(10),
        "the 1s timeout answered after {took:?}; the server's reply was due after 30s"
    );

    // The attention was acknowledged, so the one connection is reused, not replaced.
    let r = gw.anonymous("/v1/parts/7");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        mock.logins(),
        LOGINS_AT_START,
        "the cancelled connection went back to the pool"
    );
}

#[test]
fn server_loss_gives_503_then_recovers() {
    let mock = Mock::start();
    register_parts(&mock);
    let proxy = Proxy::start(mock.port);
    let dir = tempfile::tempdir().expect("dir");
    let gw = gateway(
        dir.path(),
        proxy.port,
        "pool = { max = 2, acquire_timeout = \"3s\", breaker_failures = 3, breaker_cooldown = \"500ms\" }\nlogin_timeout = \"2s\"",
    );
    assert_eq!(gw.anonymous("/v1/parts/7").status, 200);

    proxy.cut();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let started = Instant::now();
        let r = gw.anonymous("/v1/parts/7");
        assert_eq!(r.status, 503, "{}", r.text);
        assert!(r.header("retry-after").is_some(), "503 says when to retry");
        common::assert_no_leak(&r.text);
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "a lost server fails fast, not after the acquire timeout: {:?}",
            started.elapsed()
        );
        statuses.push(r.json()["title"].as_str().unwrap_or_default().to_string());
    }
    assert!(
        statuses.iter().any(|t| t == "Source Unavailable"),
        "{statuses:?}"
    );

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = gw.anonymous("/v1/parts/7");
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after the server came back: {}",
            r.status,
            r.text
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(gw.anonymous("/v1/parts").status, 200);
    assert_eq!(gw.get("/readyz").status, 200);
}

#[test]
fn unreachable_server_at_start_does_not_stop_the_gateway() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dir = tempfile::tempdir().expect("dir");
    let gw = gateway(dir.path(), port, "login_timeout = \"1s\"");
    let r = gw.anonymous("/v1/parts/7");
    r.problem(503, "source-unavailable");
    assert_eq!(gw.get("/readyz").status, 503);
    assert_eq!(gw.anonymous("/openapi/v1.json").status, 200);
}

/// The fallback for servers too old for the native client (SQL Server 2000/2005): the ODBC
/// source with FreeTDS (`tdsodbc`), speaking TDS 7.1, over the same mapping. The test server
/// answers FreeTDS's `?`-parameter statements the same way (FreeTDS names them `@P1…`).
#[test]
fn freetds_odbc_fallback_serves_the_same_mapping() {
    let Some(driver) = [
        "/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so",
        "/usr/lib/aarch64-linux-gnu/odbc/libtdsodbc.so",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists()) else {
        assert!(
            std::env::var("PATINA_REQUIRE_PG").is_err(),
            "FreeTDS (tdsodbc) is not installed; deploy/test.sh installs it"
        );
        eprintln!("SKIPPED: FreeTDS fallback test (the tdsodbc package is not installed)");
        return;
    };
    let mock = Mock::start();
    register_parts(&mock);
    let dir = tempfile::tempdir().expect("dir");
    let mappings = dir.path().join("mappings/v1");
    std::fs::create_dir_all(&mappings).expect("mkdir");
    std::fs::write(mappings.join("parts.toml"), PARTS).expect("mapping");
    let cfg = dir.path().join("patina.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nmappings = \"mappings\"\n\n[sources.erp]\nkind = \"odbc\"\ndialect = \"mssql\"\n\
             connection_string = \"Driver={driver};Server=127.0.0.1;Port={};Database=ERP;\
             UID=patina;PWD=not-a-secret;TDS_Version=7.1;Encryption=off;ClientCharset=UTF-8\"\n\
             pool = {{ max = 1 }}\n",
            mock.port
        ),
    )
    .expect("config");
    let gw = Gateway::from_config(&cfg);
    let r = gw.anonymous("/v1/parts/7");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        serde_json::json!({ "id": 7, "name": "Zoë bracket", "drawing": "3q2+7w==", "note": "café" })
    );
    let r = gw.anonymous("/v1/parts");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["data"],
        serde_json::json!([{ "id": 1, "quantity": 40 }, { "id": 2, "quantity": null }])
    );
}

/// The example configs the README points SQL Server users to load and compile.
#[test]
fn sql_server_example_configs_check_offline() {
    let root = Path::new(common::ROOT);
    // The compose config sits beside the mappings in its container, as here.
    let compose = tempfile::tempdir().expect("dir");
    std::fs::copy(
        root.join("deploy/compose/patina.toml"),
        compose.path().join("patina.toml"),
    )
    .expect("copy");
    std::os::unix::fs::symlink(root.join("mappings"), compose.path().join("mappings"))
        .expect("link");
    for example in [
        root.join("deploy/examples/sqlserver.toml"),
        root.join("deploy/examples/sqlserver-2005-freetds.toml"),
        compose.path().join("patina.toml"),
    ] {
        let ran = common::patina_with_env(
            &["check", "--config", example.to_str().expect("utf-8 path")],
            root,
            &[
                ("MSSQL_PASSWORD", "x"),
                ("PATINA_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ],
        );
        assert!(
            ran.code.is_some_and(|c| c < 2),
            "no errors (warnings are fine): {}: {}",
            example.display(),
            ran.err
        );
    }
}

#[test]
fn a_full_pool_answers_503_busy_after_the_acquire_timeout() {
    let (mock, _dir, gw) = parts_gateway("pool = { max = 1, acquire_timeout = \"300ms\" }");
    assert_eq!(gw.anonymous("/v1/parts/7").status, 200);
    let base = gw.base.clone();
    // The one connection is busy with a statement that runs into its 1s timeout.
    let slow = std::thread::spawn(move || {
        reqwest::blocking::get(format!("{base}/v1/slow"))
            .expect("request")
            .status()
            .as_u16()
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let r = gw.anonymous("/v1/parts/7");
    r.problem(503, "source-busy");
    assert!(r.header("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(slow.join().expect("slow request"), 504);
    assert_eq!(gw.anonymous("/v1/parts/7").status, 200);
    assert_eq!(mock.logins(), LOGINS_AT_START);
}

#[test]
fn strict_tls_trusts_the_given_ca_and_nothing_else() {
    let dir = tempfile::tempdir().expect("dir");
    common::ca_and_server_certificate(dir.path());
    let cert = std::fs::read(dir.path().join("cert.pem")).expect("cert");
    let key = std::fs::read(dir.path().join("key.pem")).expect("key");
    let mock = Mock::start_strict_tls(&cert, &key);
    register_parts(&mock);

    // Trusting the CA that signed the server's certificate: a verified TDS 8 session.
    let trusted = tempfile::tempdir().expect("dir");
    std::fs::copy(dir.path().join("ca.pem"), trusted.path().join("ca.pem")).expect("copy");
    let gw = gateway_at(
        trusted.path(),
        mock.port,
        "host = \"localhost\"\nencrypt = \"strict\"\ntrust_ca_file = \"ca.pem\"",
    );
    let r = gw.anonymous("/v1/parts/7");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["name"], "Zoë bracket");

    // Without it, the certificate is refused: 503, and nothing of the TLS error leaks.
    let untrusted = tempfile::tempdir().expect("dir");
    let gw = gateway_at(
        untrusted.path(),
        mock.port,
        "host = \"localhost\"\nencrypt = \"strict\"\nlogin_timeout = \"2s\"",
    );
    let r = gw.anonymous("/v1/parts/7");
    r.problem(503, "source-unavailable");
    common::assert_no_leak(&r.text);
    assert!(!r.text.contains("certificate"), "{}", r.text);
}

#[test]
fn a_value_beyond_max_text_bytes_is_refused_by_column() {
    let (mock, _dir, gw) = parts_gateway("pool = { max = 1 }\nmax_text_bytes = 256");
    let r = gw.anonymous("/v1/notes");
    let p = r.problem(500, "undecodable-value");
    assert!(
        p["detail"].as_str().unwrap_or_default().contains("`NOTE`"),
        "{p}"
    );
    assert!(!r.text.contains("xxxx"), "{}", r.text);
    // The statement was stopped mid-result and the connection kept.
    assert_eq!(gw.anonymous("/v1/parts/7").status, 200);
    assert_eq!(mock.logins(), LOGINS_AT_START);
}

/// A server with a self-signed certificate (what SQL Server makes for itself) is trusted by
/// naming that certificate itself in `trust_ca_file`.
#[test]
fn a_self_signed_server_certificate_can_be_trusted_by_itself() {
    let dir = tempfile::tempdir().expect("dir");
    common::openssl(
        dir.path(),
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout self.key \
         -out self.pem -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
         -addext basicConstraints=critical,CA:FALSE",
    );
    let cert = std::fs::read(dir.path().join("self.pem")).expect("cert");
    let key = std::fs::read(dir.path().join("self.key")).expect("key");
    let mock = Mock::start_strict_tls(&cert, &key);
    register_parts(&mock);
    let gw = gateway_at(
        dir.path(),
        mock.port,
        "host = \"localhost\"\nencrypt = \"strict\"\ntrust_ca_file = \"self.pem\"",
    );
    let r = gw.anonymous("/v1/parts/7");
    assert_eq!(r.status, 200, "{}", r.text);
}

/// `patina introspect` on SQL Server: the table described by `sp_describe_first_result_set`,
/// its key from INFORMATION_SCHEMA (the dialect's statement, with `@P1…`), codes and date forms
/// from GROUP BY samples; the output passes `patina check`.
#[test]
fn introspect_reads_a_table_through_the_tds_statements_it_sends() {
    let mock = Mock::start();
    let text_col = |name: &str, ty: &str| {
        Row::new(vec![
            ColumnValue::Int(0),
            ColumnValue::NVarChar(name.into()),
            ColumnValue::NVarChar(ty.into()),
        ])
    };
    // The test server finds a call's answer by an upper-case text in it: here the statement
    // `sp_describe_first_result_set` is asked about.
    mock.register(
        "SELECT * FROM DBO.JOBMST",
        QueryResponse::new(
            vec![
                ColumnDefinition::new("is_hidden", SqlDataType::Int),
                ColumnDefinition::new("name", SqlDataType::NVarChar),
                ColumnDefinition::new("system_type_name", SqlDataType::NVarChar),
            ],
            vec![
                text_col("JOBNO", "numeric(9,0)"),
                text_col("JOBDS", "char(40)"),
                text_col("STSCD", "char(1)"),
                text_col("DUEDT", "numeric(7,0)"),
                text_col("UNTPR", "decimal(15,4)"),
                text_col("LSTUPD", "date"),
            ],
        ),
    );
    // The key statement exactly as the dialect writes it, `?` numbered for TDS.
    let (keys_sql, _) = patina::dialect::Dialect::Mssql.keys_sql();
    let mut n = 0;
    let keys_sql: String = keys_sql
        .chars()
        .map(|c| {
            if c == '?' {
                n += 1;
                format!("@P{n}")
            } else {
                c.to_string()
            }
        })
        .collect();
    mock.register(
        &keys_sql.to_ascii_uppercase(),
        QueryResponse::new(
            vec![
                ColumnDefinition::new("CONSTRAINT_NAME", SqlDataType::NVarChar),
                ColumnDefinition::new("COLUMN_NAME", SqlDataType::NVarChar),
            ],
            vec![Row::new(vec![
                ColumnValue::NVarChar("PK_JOBMST".into()),
                ColumnValue::NVarChar("JOBNO".into()),
            ])],
        ),
    );
    let sample = |col: &str, values: &[&str]| {
        QueryResponse::new(
            vec![
                ColumnDefinition::new(col, SqlDataType::NVarChar),
                ColumnDefinition::new("N", SqlDataType::Int),
            ],
            values
                .iter()
                .map(|v| {
                    Row::new(vec![
                        ColumnValue::NVarChar((*v).into()),
                        ColumnValue::Int(1),
                    ])
                })
                .collect(),
        )
    };
    mock.register(
        "SELECT STSCD, COUNT(*) FROM DBO.JOBMST GROUP BY STSCD ORDER BY 2 DESC",
        sample("STSCD", &["R", "C", "H"]),
    );
    mock.register(
        "SELECT DUEDT, COUNT(*) FROM DBO.JOBMST GROUP BY DUEDT ORDER BY 2 DESC",
        sample("DUEDT", &["1240215", "0"]),
    );
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(dir.path().join("mappings/v1")).expect("mappings");
    std::fs::write(
        dir.path().join("patina.toml"),
        format!(
            "[sources.erp]\nkind = \"mssql\"\nhost = \"127.0.0.1\"\nport = {}\nencrypt = \"off\"\n\
             database = \"ERP\"\nuser = \"patina\"\npassword = \"${{PATINA_TEST_MSSQL_PASSWORD:-not-a-secret}}\"\n",
            mock.port
        ),
    )
    .expect("config");
    let o = common::patina(
        &[
            "introspect",
            "--source",
            "erp",
            "--table",
            "DBO.JOBMST",
            "--sample",
        ],
        dir.path(),
    );
    assert!(o.ok(), "{}{}", o.out, o.err);
    let text = o.out;
    for expected in [
        "page = { by = [\"JOBNO\"], size = 100, max = 1000 }",
        "FROM DBO.JOBMST\nWHERE JOBNO = :job_number",
        "params.job_number = { type = \"integer\" }",
        "columns.JOBNO = { name = \"job_number\", type = \"integer\" }",
        "columns.JOBDS = { name = \"job_description\", type = \"string\", trim = \"end\" }",
        "columns.STSCD = { name = \"status_code\", codes = { R = \"r\", C = \"c\", H = \"h\" } }",
        "columns.DUEDT = { name = \"due_date\", type = \"date\", format = \"cyymmdd\" }",
        "columns.UNTPR = { name = \"unit_price\", type = \"decimal\", scale = 4 }",
        "columns.LSTUPD = { name = \"last_updated\", type = \"date\" }",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    std::fs::write(dir.path().join("mappings/v1/jobs.toml"), &text).expect("write");
    let o = common::patina(&["check"], dir.path());
    assert!(!o.err.contains("error:"), "{}{}", o.out, o.err);
}

/// Batched lookups over TDS: while one lookup holds the pool's only connection, four more
/// queue and run as one statement, the exact batched text the test server knows (it ignores
/// bound values, so the rows it answers stand for keys 2 and 3); each request gets its key's
/// row, a repeated key the same row, and a key without a row 404.
#[test]
fn queued_lookups_run_as_one_batched_statement_over_tds() {
    let mock = Mock::start();
    let columns = || {
        vec![
            ColumnDefinition::new("ID", SqlDataType::Int),
            ColumnDefinition::new("NAME", SqlDataType::NVarChar),
        ]
    };
    mock.register(
        "SELECT ID, NAME FROM PARTS WHERE ID = @P1",
        QueryResponse::new(
            columns(),
            vec![Row::new(vec![
                ColumnValue::Int(1),
                ColumnValue::NVarChar("one".into()),
            ])],
        )
        .with_delay(Duration::from_millis(800)),
    );
    for n in [2usize, 4, 8] {
        let list: Vec<String> = (1..=n).map(|i| format!("@P{i}")).collect();
        let mut cols = vec![ColumnDefinition::new("PATINA_BATCH_KEY", SqlDataType::Int)];
        cols.extend(columns());
        mock.register(
            &format!(
                "SELECT ID AS PATINA_BATCH_KEY, ID, NAME FROM PARTS WHERE ID IN ({})",
                list.join(", ")
            ),
            QueryResponse::new(
                cols,
                [(2, "two"), (3, "three")]
                    .into_iter()
                    .map(|(k, name)| {
                        Row::new(vec![
                            ColumnValue::Int(k),
                            ColumnValue::Int(k),
                            ColumnValue::NVarChar(name.into()),
                        ])
                    })
                    .collect(),
            ),
        );
    }
    let dir = tempfile::tempdir().expect("dir");
    let mappings = dir.path().join("mappings/v1");
    std::fs::create_dir_all(&mappings).expect("mkdir");
    std::fs::write(
        mappings.join("parts.toml"),
        r#"source = "erp"

[[route]]
id = "getPart"
path = "/parts/{id}"
public = true
one = true
batch = { max = 8 }
sql = "SELECT ID, NAME FROM PARTS WHERE ID = :id"
params.id = { type = "integer", minimum = 1 }
columns.ID = { name = "id", type = "integer" }
columns.NAME = { name = "name" }
"#,
    )
    .expect("mapping");
    let cfg = dir.path().join("patina.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nmappings = \"mappings\"\n\n[sources.erp]\nkind = \"mssql\"\n\
             port = {}\nhost = \"127.0.0.1\"\nencrypt = \"off\"\ndatabase = \"ERP\"\nuser = \"patina\"\n\
             password = \"not-a-secret\"\npool = {{ max = 1 }}\n",
            mock.port
        ),
    )
    .expect("config");
    let gw = Gateway::from_config(&cfg);
    std::thread::scope(|s| {
        let first = s.spawn(|| gw.anonymous("/v1/parts/1"));
        std::thread::sleep(Duration::from_millis(300));
        let rest: Vec<_> = [2, 3, 2, 9]
            .into_iter()
            .map(|k| {
                let gw = &gw;
                s.spawn(move || (k, gw.anonymous(&format!("/v1/parts/{k}"))))
            })
            .collect();
        let first = first.join().expect("first");
        assert_eq!(first.status, 200, "{}", first.text);
        assert_eq!(first.json(), serde_json::json!({ "id": 1, "name": "one" }));
        for h in rest {
            let (k, r) = h.join().expect("lookup");
            match k {
                2 => assert_eq!(r.json(), serde_json::json!({ "id": 2, "name": "two" })),
                3 => assert_eq!(r.json(), serde_json::json!({ "id": 3, "name": "three" })),
                _ => assert_eq!(r.status, 404, "{}", r.text),
            }
            let timing = r.header("server-timing").unwrap_or_default().to_string();
            assert!(
                timing.contains("batch;desc=\"4 lookup(s) in one statement\""),
                "{timing}"
            );
        }
    });
    let metrics = gw.anonymous("/metrics").text;
    assert!(
        metrics.contains("patina_batch_size_sum{route=\"getPart\"} 17"),
        "one lookup alone and four in a batch of four: {metrics}"
    );
}
