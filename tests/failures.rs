//! What clients see when things go wrong: failed statements, undecodable values, an
//! unreachable database, an exhausted pool, a statement timeout, a connection killed under the
//! gateway. Never SQL, driver text or secrets; always problem+json.

mod common;

use std::time::{Duration, Instant};

use common::{TestDb, assert_no_leak};

fn mapping(sql: &str, extra: &str) -> String {
    format!(
        "source = \"demo\"\n[[route]]\nid = \"r\"\npath = \"/r\"\npublic = true\nsql = \"\"\"\n{sql}\n\"\"\"\n{extra}\n"
    )
}

fn failed_statement_leaks_nothing(db: &TestDb) {
    let gw = common::with_mapping(
        db,
        &mapping(
            "SELECT JOBNO FROM NO_SUCH_TABLE WHERE JOBNO = :n",
            "params.n = \"integer\"",
        ),
        "",
    );
    let r = gw.get("/v1/r?n=1");
    let p = r.problem(500, "statement-failed");
    assert_no_leak(&r.text);
    assert!(p["request_id"].is_string());
    // The gateway keeps serving afterwards.
    assert_eq!(gw.get("/v1/r?n=2").status, 500);
    assert_eq!(gw.get("/healthz").status, 200);
}

fn undecodable_value_names_the_field(db: &TestDb) {
    let gw = common::with_mapping(
        db,
        &mapping(
            "SELECT JOBDS FROM JOBMST WHERE JOBNO = 100001",
            "columns.JOBDS = { name = \"description\", type = \"integer\" }",
        ),
        "",
    );
    let r = gw.get("/v1/r");
    let p = r.problem(500, "undecodable-value");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("`description`")),
        "{}",
        r.text
    );
    assert!(
        !r.text.contains("WIDGET"),
        "the stored value is not echoed: {}",
        r.text
    );
    assert_no_leak(&r.text);
}

common::on_both!(
    failed_statement_leaks_nothing,
    undecodable_value_names_the_field
);

mod sqlite {
    use super::*;

    #[test]
    fn unreachable_database_is_503_with_retry_after() {
        let db = TestDb {
            connection_string: "Driver={SQLite3};Database=/nonexistent-dir/patina/x.db;NoCreat=1"
                .into(),
            dialect: "sqlite",
        };
        let gw = common::with_mapping(&db, &mapping("SELECT 1 AS ONE", ""), "");
        let r = gw.get("/v1/r");
        r.problem(503, "source-unavailable");
        assert!(r.header("retry-after").is_some());
        assert_no_leak(&r.text);
    }

    /// unixODBC keeps what it read of odbcinst.ini for 20 seconds per process: a driver it
    /// once did not find there stays "Can't open lib 'SQLite3'" for every connection, even
    /// after the file names it (what happened, now and then, to a process opening its first
    /// connections). The gateway then reads odbcinst.ini itself and names the library by path.
    #[test]
    fn a_driver_the_driver_manager_missed_is_loaded_by_its_path() {
        let db = common::sqlite();
        let dir = tempfile::tempdir().expect("temp dir");
        let odbc = dir.path().join("odbc");
        std::fs::create_dir_all(&odbc).expect("mkdir");
        let ini = odbc.join("odbcinst.ini");
        std::fs::write(&ini, "[Other]\nDriver=/nonexistent/libother.so\n").expect("ini");
        std::fs::write(odbc.join("odbc.ini"), "").expect("odbc.ini");
        std::fs::write(
            dir.path().join("patina.toml"),
            format!(
                "[sources.demo]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"{}\"\n\
                 pool = {{ max = 1, breaker_failures = 1000 }}\n",
                db.connection_string
            ),
        )
        .expect("config");
        let mappings = dir.path().join("mappings/v1");
        std::fs::create_dir_all(&mappings).expect("mkdir");
        std::fs::write(
            mappings.join("r.toml"),
            mapping("SELECT CUSNO FROM CUSMST WHERE CUSNO = 1001", "one = true"),
        )
        .expect("mapping");
        let served = common::serve_with_env(
            &dir.path().join("patina.toml"),
            &[("ODBCSYSINI", odbc.as_os_str())],
        );
        let get = || reqwest::blocking::get(format!("{}/v1/r", served.base)).expect("answers");
        let missing = get();
        assert_eq!(missing.status().as_u16(), 503, "no driver entry yet");
        assert_no_leak(&missing.text().expect("body"));

        // The entry is there now; the driver manager, within its 20 seconds, does not see it.
        let system = std::env::var_os("ODBCSYSINI").map_or_else(
            || std::path::PathBuf::from("/etc"),
            std::path::PathBuf::from,
        );
        let real = std::fs::read_to_string(system.join("odbcinst.ini")).expect("odbcinst.ini");
        std::fs::write(&ini, real).expect("ini");
        let found = get();
        assert_eq!(found.status().as_u16(), 200);
        let body: serde_json::Value = found.json().expect("json");
        assert_eq!(body["cusno"], 1001, "{body}");
    }
}

mod postgres {
    use super::*;

    fn psql(sql: &str) -> String {
        let url = std::env::var("PATINA_TEST_PG_PSQL")
            .expect("PATINA_TEST_PG_PSQL (set by deploy/test.sh)");
        let out = std::process::Command::new("psql")
            .args(["-X", "-A", "-t", "-q", "-d", &url, "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The PostgreSQL test database, with an application name that tells this test's
    /// connections apart from those of tests running beside it.
    fn db(app: &str) -> Option<TestDb> {
        let mut db = common::postgres()?;
        db.connection_string = format!("{}pqopt={{application_name={app}}};", db.connection_string);
        Some(db)
    }

    fn sessions(app: &str) -> usize {
        psql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'"
        ))
        .parse()
        .expect("count")
    }

    const SLEEP: &str = "SELECT 1 AS SLEPT FROM pg_sleep(:seconds)";

    #[test]
    fn unreachable_database_is_503_quickly() {
        let Some(mut db) = common::postgres() else {
            return;
        };
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        db.connection_string = db
            .connection_string
            .split(';')
            .map(|kv| {
                if kv.starts_with("Port=") {
                    format!("Port={port}")
                } else {
                    kv.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(";");
        let gw = common::with_mapping(
            &db,
            &mapping("SELECT 1 AS ONE", ""),
            "login_timeout = \"2s\"",
        );
        let started = Instant::now();
        let r = gw.get("/v1/r");
        r.problem(503, "source-unavailable");
        assert!(r.header("retry-after").is_some());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no hang: {:?}",
            started.elapsed()
        );
        assert_no_leak(&r.text);
    }

    #[test]
    fn exhausted_pool_is_503_busy_then_recovers() {
        let Some(db) = db("patina-busy") else { return };
        let gw = common::with_mapping(
            &db,
            &mapping(SLEEP, "params.seconds = \"number\""),
            "pool = { max = 1, acquire_timeout = \"200ms\" }",
        );
        assert_eq!(gw.get("/v1/r?seconds=0").status, 200);
        let base = gw.base.clone();
        let slow = std::thread::spawn(move || {
            reqwest::blocking::get(format!("{base}/v1/r?seconds=1.5"))
                .expect("request")
                .status()
                .as_u16()
        });
        std::thread::sleep(Duration::from_millis(400));
        let started = Instant::now();
        let r = gw.get("/v1/r?seconds=0");
        r.problem(503, "source-busy");
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(slow.join().expect("slow request"), 200);
        assert_eq!(gw.get("/v1/r?seconds=0").status, 200);
        assert!(
            sessions("patina-busy") <= 1,
            "never more connections than the pool"
        );
    }

    #[test]
    fn statement_timeout_is_504_and_the_query_is_cancelled() {
        let Some(db) = db("patina-timeout") else {
            return;
        };
        let gw = common::with_mapping(
            &db,
            &mapping(SLEEP, "params.seconds = \"number\""),
            "statement_timeout = \"1s\"\npool = { max = 1 }",
        );
        let started = Instant::now();
        let r = gw.get("/v1/r?seconds=30");
        r.problem(504, "statement-timeout");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_no_leak(&r.text);
        let running = psql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'patina-timeout' \
             AND state = 'active'",
        );
        assert_eq!(
            running, "0",
            "the database is no longer running the statement"
        );
        // The connection is usable again.
        let r = gw.get("/v1/r?seconds=0");
        assert_eq!(r.status, 200, "{}", r.text);
    }

    #[test]
    fn a_route_timeout_overrides_the_source() {
        let Some(db) = db("patina-route-timeout") else {
            return;
        };
        let text = mapping(
            SLEEP,
            "params.seconds = \"number\"\nstatement_timeout = \"1s\"",
        );
        let gw = common::with_mapping(
            &db,
            &text,
            "statement_timeout = \"30s\"\npool = { max = 1 }",
        );
        let started = Instant::now();
        gw.get("/v1/r?seconds=10").problem(504, "statement-timeout");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(gw.get("/v1/r?seconds=0").status, 200);
    }

    #[test]
    fn killed_connection_is_replaced() {
        let Some(db) = db("patina-killed") else {
            return;
        };
        let gw = common::with_mapping(
            &db,
            &mapping("SELECT COUNT(*) AS N FROM JOBMST", ""),
            "pool = { max = 2 }",
        );
        assert_eq!(gw.get("/v1/r").status, 200);
        let killed = psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'patina-killed'",
        );
        assert_ne!(killed, "0");
        // A request on a dead connection may fail with 503 (never 500); the pool then reconnects.
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let r = gw.get("/v1/r");
            statuses.push(r.status);
            if r.status != 200 {
                r.problem(503, "source-unavailable");
            }
        }
        assert_eq!(statuses[statuses.len() - 2..], [200, 200], "{statuses:?}");
        assert!(
            sessions("patina-killed") <= 2,
            "dead connections are not kept"
        );
    }
}
