//! Test support: demo databases (SQLite built from the fixtures through ODBC; PostgreSQL from
//! deploy/test.sh), and a real gateway started in-process on a free port.
#![allow(dead_code, clippy::missing_panics_doc, clippy::must_use_candidate)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use patina::app;
use patina::config::Config;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A database the gateway can reach.
#[derive(Clone, Debug)]
pub struct TestDb {
    pub connection_string: String,
    pub dialect: &'static str,
}

/// The demo database in SQLite, built once per test process from `fixtures/demo`.
pub fn sqlite() -> TestDb {
    static DB: OnceLock<(tempfile::TempDir, TestDb)> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("demo.db");
        let cs = format!("Driver={{SQLite3}};Database={}", path.display());
        let env = odbc_api::environment().expect("ODBC environment");
        let conn = env
            .connect_with_connection_string(&cs, odbc_api::ConnectionOptions::default())
            .expect("the SQLite3 ODBC driver is installed (deploy/test.sh installs it)");
        for file in ["schema.sqlite.sql", "data.sql"] {
            let script = std::fs::read_to_string(Path::new(ROOT).join("fixtures/demo").join(file))
                .expect("fixture");
            for stmt in patina::sql::split_statements(&script) {
                conn.execute(&stmt, (), None)
                    .unwrap_or_else(|e| panic!("fixture statement failed: {e}\n{stmt}"));
            }
        }
        (
            dir,
            TestDb {
                connection_string: cs,
                dialect: "sqlite",
            },
        )
    })
    .1
    .clone()
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

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    pub base: String,
    pub dir: PathBuf,
    _tmp: Arc<tempfile::TempDir>,
}

pub struct Options<'a> {
    pub source_extra: &'a str,
    pub mappings: Option<&'a [(&'a str, &'a str)]>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            source_extra: "pool = { max = 4, acquire_timeout = \"2s\" }",
            mappings: None,
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
             dialect = \"{}\"\nconnection_string = \"{}\"\n{}\n",
            mappings.display(),
            db.dialect,
            db.connection_string
                .replace('\\', "\\\\")
                .replace('"', "\\\""),
            opts.source_extra
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
        let db = sqlite();
        let path = Path::new(ROOT).join("patina.toml");
        let text = std::fs::read_to_string(&path).expect("patina.toml");
        let db_path = db
            .connection_string
            .split(';')
            .find_map(|kv| kv.strip_prefix("Database="))
            .expect("database path")
            .to_string();
        let config = Config::parse(&path, &text, &move |v| {
            (v == "PATINA_DEMO_DB").then(|| db_path.clone())
        })
        .unwrap_or_else(|e| panic!("config: {e}"));
        Self::from_loaded(config, path.parent().expect("root"))
    }

    /// Start from a config file.
    pub fn from_config(config_path: &Path) -> Gateway {
        let config = Config::load(config_path).unwrap_or_else(|e| panic!("config: {e}"));
        Self::from_loaded(config, config_path.parent().expect("dir"))
    }

    fn from_loaded(config: Config, dir: &Path) -> Gateway {
        let compiled = app::compile_catalog(&config).unwrap_or_else(|e| panic!("mappings: {e}"));
        let catalog = Arc::new(compiled.catalog);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let sources = app::start_sources(&config);
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let gw = app::build(&config, &catalog, sources, Some("127.0.0.1:0"))
                    .expect("bind a free port");
                tx.send(gw.addr).expect("report address");
                let _ = gw.server.await;
            });
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("gateway started");
        Gateway {
            base: format!("http://{addr}"),
            dir: dir.to_path_buf(),
            _tmp: Arc::new(tempfile::tempdir().expect("temp dir")),
        }
    }

    pub fn get(&self, path: &str) -> Response {
        self.request(reqwest::Method::GET, path, &[])
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("client");
        let mut req = client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
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
