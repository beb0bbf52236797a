//! Test support: demo databases (SQLite built from the fixtures through ODBC; PostgreSQL from
//! deploy/test.sh), and a real gateway started in-process on a free port.
#![allow(
    dead_code,
    clippy::missing_panics_doc,
    clippy::must_use_candidate,
    clippy::needless_pass_by_value
)]

pub mod proxy;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use patina::app;
use patina::config::Config;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The HS256 secret of every test gateway.
pub const SECRET: &str = "patina-test-secret-0123456789abcdef-0123456789";
/// Every scope the demo mappings use.
pub const ALL_SCOPES: &str = "jobs:read jobs:write customers:read orders:read orders:write portal";

/// A token for the test gateways: `scopes` space-separated, extra claims as JSON.
pub fn token(sub: &str, scopes: &str, extra: serde_json::Value) -> String {
    token_from("patina-test", sub, scopes, &extra)
}

/// A token from the given issuer.
pub fn token_from(issuer: &str, sub: &str, scopes: &str, extra: &serde_json::Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut claims = serde_json::json!({
        "sub": sub, "iss": issuer, "aud": "patina", "iat": now, "exp": now + 600,
        "scope": scopes,
    });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    patina::auth::jwt::mint_hs256(SECRET, claims.as_object().expect("object")).expect("token")
}

/// The `[auth]` section of the test gateways.
pub fn auth_section(keys_file: &Path) -> String {
    format!(
        "[auth]\napi_keys_file = \"{}\"\n[auth.jwt]\nissuer = \"patina-test\"\naudience = \"patina\"\nhs256_secret = \"{SECRET}\"\nleeway = \"5s\"\n",
        keys_file.display()
    )
}

/// A database the gateway can reach.
#[derive(Clone, Debug)]
pub struct TestDb {
    pub connection_string: String,
    pub dialect: &'static str,
}

#[allow(dead_code)]
impl TestDb {
    /// The port its connection string names (PostgreSQL's).
    pub fn port(&self) -> u16 {
        self.connection_string
            .split(';')
            .find_map(|kv| kv.strip_prefix("Port="))
            .and_then(|p| p.parse().ok())
            .expect("Port= in the connection string")
    }

    /// Its connection string with another port (a proxy's, say).
    pub fn at_port(&self, port: u16) -> String {
        self.connection_string
            .replace(&format!("Port={}", self.port()), &format!("Port={port}"))
    }
}

/// The demo database in SQLite, built once per test process from `fixtures/demo`.
pub fn sqlite() -> TestDb {
    static DB: OnceLock<(tempfile::TempDir, TestDb)> = OnceLock::new();
    DB.get_or_init(sqlite_fresh).1.clone()
}

/// A demo database of its own in SQLite (for tests that write), built from `fixtures/demo`.
pub fn sqlite_fresh() -> (tempfile::TempDir, TestDb) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = build_sqlite_demo(&dir.path().join("demo.db"));
    (dir, db)
}

/// Connect to a test database directly, as the gateway does (past unixODBC's odbcinst.ini race
/// between threads: a test connects while its gateway's pool does).
pub fn connect(cs: &str) -> Result<odbc_api::Connection<'static>, odbc_api::Error> {
    patina::source::odbcinst::connect(cs, odbc_api::ConnectionOptions::default()).map(|(c, _)| c)
}

/// Create the demo database at `path` through the SQLite ODBC driver.
fn build_sqlite_demo(path: &Path) -> TestDb {
    let cs = format!("Driver={{SQLite3}};Database={}", path.display());
    let conn =
        connect(&cs).expect("the SQLite3 ODBC driver is installed (deploy/test.sh installs it)");
    for file in ["schema.sqlite.sql", "data.sql"] {
        let script = std::fs::read_to_string(Path::new(ROOT).join("fixtures/demo").join(file))
            .expect("fixture");
        for stmt in patina::sql::split_statements(&script) {
            conn.execute(&stmt, (), None)
                .unwrap_or_else(|e| panic!("fixture statement failed: {e}\n{stmt}"));
        }
    }
    TestDb {
        connection_string: cs,
        dialect: "sqlite",
    }
}

/// Each named check `fn NAME(db: &TestDb)` on a SQLite demo database of its own and on the
/// shared PostgreSQL one (for tests that write; skipped loudly, as in [`on_both`]).
#[allow(unused_macros)]
macro_rules! on_both_writable {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                let (_dir, db) = $crate::common::sqlite_fresh();
                super::$name(&db);
            }
            #[test]
            fn postgres() {
                if let Some(db) = $crate::common::postgres() {
                    super::$name(&db);
                }
            }
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use on_both_writable;

/// Run a query on `db` directly (not through the gateway): each row's values as text.
pub fn query_db(db: &TestDb, sql: &str) -> Vec<Vec<Option<String>>> {
    use odbc_api::Cursor as _;
    let conn = connect(&db.connection_string).expect("connect");
    let mut out = Vec::new();
    if let Some(mut cursor) = conn.execute(sql, (), None).expect("query") {
        let cols = usize::try_from(
            odbc_api::ResultSetMetadata::num_result_cols(&mut cursor).expect("cols"),
        )
        .unwrap_or(0);
        while let Some(mut row) = cursor.next_row().expect("row") {
            let mut values = Vec::new();
            for c in 1..=cols {
                let mut buf = Vec::new();
                let got = row
                    .get_text(u16::try_from(c).expect("column"), &mut buf)
                    .expect("text");
                values.push(got.then(|| String::from_utf8_lossy(&buf).into_owned()));
            }
            out.push(values);
        }
    }
    out
}

/// The demo database in PostgreSQL, when deploy/test.sh started one. Without it the test fails,
/// unless PATINA_SKIP_PG=1 says to skip, which is then printed.
pub fn postgres() -> Option<TestDb> {
    match std::env::var("PATINA_TEST_PG") {
        Ok(cs) if !cs.is_empty() => Some(TestDb {
            connection_string: cs,
            dialect: "postgres",
        }),
        _ => {
            assert!(
                std::env::var("PATINA_SKIP_PG").is_ok_and(|v| v == "1")
                    && std::env::var("PATINA_REQUIRE_PG").is_err(),
                "PATINA_TEST_PG is not set: run the tests with deploy/test.sh (it starts \
                 PostgreSQL), or set PATINA_SKIP_PG=1 to skip the PostgreSQL tests"
            );
            eprintln!("SKIPPED: PostgreSQL test (PATINA_SKIP_PG=1)");
            println!("SKIPPED: PostgreSQL test (PATINA_SKIP_PG=1)");
            None
        }
    }
}

/// The backend matrix, written one way everywhere: for each named check `fn NAME(db: &TestDb)`,
/// a module `NAME` with a `sqlite` and a `postgres` test (the latter skipped, loudly, only
/// when PostgreSQL is absent and allowed to be).
#[allow(unused_macros)]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&$crate::common::sqlite());
            }
            #[test]
            fn postgres() {
                if let Some(db) = $crate::common::postgres() {
                    super::$name(&db);
                }
            }
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use on_both;

/// A gateway on the SQLite demo database and the repository's demo mappings, started from a
/// config written into `dir`: `server_extra` goes under `[server]`, `rest` after the source
/// (e.g. an `[auth]` section).
pub fn demo_from_config(dir: &Path, server_extra: &str, rest: &str) -> Gateway {
    let db = sqlite();
    let cfg = dir.join("patina.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nmappings = \"{ROOT}/mappings\"\n{server_extra}\n[sources.demo]\nkind = \"odbc\"\n\
             dialect = \"sqlite\"\nconnection_string = \"{}\"\n{rest}",
            db.connection_string
        ),
    )
    .expect("config");
    Gateway::from_config(&cfg)
}

/// A gateway on `db` serving one mapping file (`v1/t.toml`), with more source settings.
pub fn with_mapping(db: &TestDb, text: &str, source_extra: &str) -> Gateway {
    let files = [("v1/t.toml", text)];
    Gateway::start(
        db,
        &Options {
            source_extra,
            mappings: Some(&files),
            ..Options::default()
        },
    )
}

/// The repository's own `patina.toml` over the SQLite demo database.
pub fn repo_demo_config() -> Config {
    let db = sqlite();
    let path = Path::new(ROOT).join("patina.toml");
    let text = std::fs::read_to_string(&path).expect("patina.toml");
    let db_path = db
        .connection_string
        .split(';')
        .find_map(|kv| kv.strip_prefix("Database="))
        .expect("database path")
        .to_string();
    Config::parse(&path, &text, &move |v| match v {
        "PATINA_DEMO_DB" => Some(db_path.clone()),
        "PATINA_JWT_SECRET" => Some(SECRET.to_string()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("config: {e}"))
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    pub base: String,
    /// The `iss` its tokens must carry.
    pub issuer: String,
    pub dir: PathBuf,
    _tmp: Arc<tempfile::TempDir>,
}

pub struct Options<'a> {
    pub source_extra: &'a str,
    pub mappings: Option<&'a [(&'a str, &'a str)]>,
    /// More config, appended (e.g. a `[rate_limit]` section).
    pub config_extra: &'a str,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            source_extra: "pool = { max = 4, acquire_timeout = \"2s\" }",
            mappings: None,
            config_extra: "",
        }
    }
}

impl Gateway {
    /// The demo mappings over `db`.
    pub fn demo(db: &TestDb) -> Gateway {
        Self::start(db, &Options::default())
    }

    /// Start a gateway on `db` with the demo mappings, or with the given mapping files
    /// (relative path, text).
    pub fn start(db: &TestDb, opts: &Options<'_>) -> Gateway {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mappings = match opts.mappings {
            None => Path::new(ROOT).join("mappings"),
            Some(files) => {
                let m = tmp.path().join("mappings");
                for (rel, text) in files {
                    let p = m.join(rel);
                    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                    std::fs::write(&p, text).expect("write mapping");
                }
                m
            }
        };
        let config_text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nmappings = \"{}\"\n\n[sources.demo]\nkind = \"odbc\"\n\
             dialect = \"{}\"\nconnection_string = \"{}\"\n{}\n\n{}\n{}\n",
            mappings.display(),
            db.dialect,
            db.connection_string
                .replace('\\', "\\\\")
                .replace('"', "\\\""),
            opts.source_extra,
            auth_section(&tmp.path().join("keys.toml")),
            opts.config_extra,
        );
        let config_path = tmp.path().join("patina.toml");
        std::fs::write(&config_path, &config_text).expect("write config");
        let gw = Self::from_config(&config_path);
        Gateway {
            _tmp: Arc::new(tmp),
            ..gw
        }
    }

    /// The repository's own `patina.toml` (demo mappings, docs settings) over the SQLite
    /// demo database.
    pub fn repo_demo() -> Gateway {
        Gateway {
            issuer: "patina-demo".into(),
            ..Self::from_loaded(repo_demo_config(), Path::new(ROOT))
        }
    }

    /// Start from a config file.
    pub fn from_config(config_path: &Path) -> Gateway {
        let config = Config::load(config_path).unwrap_or_else(|e| panic!("config: {e}"));
        Self::from_loaded(config, config_path.parent().expect("dir"))
    }

    /// Start exactly as `patina serve` does ([`app::App::start`]), on a free port, in a
    /// thread of its own.
    fn from_loaded(config: Config, dir: &Path) -> Gateway {
        let app = app::App::from_config(config).unwrap_or_else(|e| panic!("mappings: {e}"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let running = app
                    .start(Some("127.0.0.1:0"))
                    .unwrap_or_else(|e| panic!("{e}"));
                tx.send(running.addr).expect("report address");
                let _ = running.run().await;
            });
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("gateway started");
        Gateway {
            issuer: "patina-test".into(),
            base: format!("http://{addr}"),
            dir: dir.to_path_buf(),
            _tmp: Arc::new(tempfile::tempdir().expect("temp dir")),
        }
    }

    /// GET with a token carrying every demo scope and `customer_id` 1001.
    pub fn get(&self, path: &str) -> Response {
        self.request(reqwest::Method::GET, path, &[])
    }

    /// GET without credentials.
    pub fn anonymous(&self, path: &str) -> Response {
        self.raw(reqwest::Method::GET, path, &[])
    }

    /// GET with exactly these headers.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.raw(reqwest::Method::GET, path, headers)
    }

    /// A request with the default token, unless `headers` bring their own credentials.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let own = headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("x-api-key")
        });
        if own {
            return self.raw(method, path, headers);
        }
        let bearer = format!(
            "Bearer {}",
            token_from(
                &self.issuer,
                "tester",
                ALL_SCOPES,
                &serde_json::json!({"customer_id": 1001})
            )
        );
        let mut all = headers.to_vec();
        all.push(("Authorization", &bearer));
        self.raw(method, path, &all)
    }

    /// A request with exactly these headers.
    pub fn raw(&self, method: reqwest::Method, path: &str, headers: &[(&str, &str)]) -> Response {
        self.send(method, path, headers, None)
    }

    /// A request with exactly these headers and, when given, this body.
    pub fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Response {
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("client");
        let mut req = client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let res = req.send().expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().expect("body");
        Response {
            status,
            headers,
            text,
        }
    }
}

/// A response, body kept as text so exact number renderings can be checked.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Assert a problem+json response with this status and type slug; returns the body.
    pub fn problem(&self, status: u16, slug: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        let body = self.json();
        assert_eq!(body["type"], format!("/problems/{slug}"), "{}", self.text);
        assert_eq!(body["status"], status);
        assert!(body["title"].is_string() && body["detail"].is_string());
        body
    }
}

/// What a run of the `patina` command printed and how it ended.
#[derive(Debug)]
pub struct Ran {
    /// The exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    /// Standard output, trimmed.
    pub out: String,
    pub err: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Run the `patina` command in `dir`, as a DBA would: no `PATINA_CONFIG` from the caller's
/// environment, the test JWT secret in `PATINA_JWT_SECRET`.
pub fn patina(args: &[&str], dir: &Path) -> Ran {
    patina_with_env(args, dir, &[])
}

/// [`patina`], with more environment variables.
pub fn patina_with_env(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Ran {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_patina"))
        .args(args)
        .current_dir(dir)
        .env_remove("PATINA_CONFIG")
        .env("PATINA_JWT_SECRET", SECRET)
        .envs(env.iter().copied())
        .output()
        .expect("patina runs");
    Ran {
        code: o.status.code(),
        out: String::from_utf8_lossy(&o.stdout).trim().to_string(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Run `openssl` in `dir` with space-separated arguments (deploy/test.sh installs it).
pub fn openssl(dir: &Path, args: &str) {
    let out = std::process::Command::new("openssl")
        .args(args.split(' '))
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate it signed for localhost and 127.0.0.1
/// (`cert.pem`, key `key.pem`), written into `dir`. webpki refuses a CA as the server's own.
pub fn ca_and_server_certificate(dir: &Path) {
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    for args in [
        "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=patina-test-ca -keyout ca.key -out ca.pem",
        "req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out leaf.csr",
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext.cnf -out cert.pem",
    ] {
        openssl(dir, args);
    }
}

/// Nothing from the database's own vocabulary reaches a client.
pub fn assert_no_leak(text: &str) {
    for needle in [
        "SELECT",
        "select ",
        "ODBC",
        "odbc",
        "Driver",
        "SQLSTATE",
        "State:",
        "JOBMST",
        "jobmst",
        "Pwd",
        "PWD",
        "password",
        "patina-test",
        "ERROR:",
    ] {
        assert!(!text.contains(needle), "response leaks `{needle}`: {text}");
    }
}

/// A `patina serve` process of its own, killed with SIGKILL when dropped.
#[derive(Debug)]
pub struct Served {
    pub child: std::process::Child,
    pub base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `patina serve --config CONFIG` on a free port and wait until it answers.
pub fn serve(config: &Path) -> Served {
    serve_with_env(config, &[])
}

/// [`serve`], with more environment variables.
pub fn serve_with_env(config: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let served = Served {
        child: std::process::Command::new(env!("CARGO_BIN_EXE_patina"))
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            // PATINA_TEST_LOG=1 shows the gateway's log.
            .stderr(if std::env::var_os("PATINA_TEST_LOG").is_some() {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            })
            .spawn()
            .expect("patina serve starts"),
        base: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if reqwest::blocking::get(format!("{}/healthz", served.base))
            .is_ok_and(|r| r.status().is_success())
        {
            return served;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("patina serve did not answer on {}", served.base);
}

/// The private Redis deploy/test.sh starts (`PATINA_TEST_REDIS`), or a loud skip naming `what`
/// did not run; with PATINA_REQUIRE_REDIS set, its absence fails instead.
pub fn redis_url(what: &str) -> Option<String> {
    match std::env::var("PATINA_TEST_REDIS") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("PATINA_REQUIRE_REDIS").is_err(),
                "PATINA_TEST_REDIS is not set but PATINA_REQUIRE_REDIS is"
            );
            let line = format!(
                "SKIPPED: PATINA_TEST_REDIS not set (deploy/test.sh starts a private Redis and \
                 sets it): {what} did not run"
            );
            eprintln!("{line}");
            println!("{line}");
            None
        }
    }
}
