//! The `patina` binary as a DBA uses it: `check` offline and against the database, and
//! `serve` refusing to start on a broken mapping.

mod common;

use std::path::Path;

fn project(config: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("patina.toml"), config).expect("config");
    for (rel, body) in files {
        let p = dir.path().join("mappings").join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("mapping");
    }
    dir
}

fn sqlite_config() -> String {
    let db = common::sqlite();
    format!(
        "[sources.demo]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"{}\"\n",
        db.connection_string
    )
}

#[test]
fn check_accepts_the_demo() {
    let o = common::patina(&["check"], Path::new(common::ROOT));
    let (out, err) = (&o.out, &o.err);
    assert!(o.ok(), "{out}{err}");
    assert!(out.contains("ok: 18 route(s) in v1, v2"), "{out}");
    assert!(out.contains("compared with the published v1, v2"), "{out}");
}

#[test]
fn check_reports_every_mistake_with_its_location() {
    let bad_jobs = "source = \"demo\"\n\n[[route]]\nid = \"getJob\"\npublic = true\npath = \"/jobs/{job}\"\nsql = \"SELECT * FROM JOBMST WHERE JOBNO = :job_no\"\nparams.job = { type = \"integr\" }\n";
    let bad_other = "source = \"nowhere\"\n[[route]]\nid = \"getJob\"\npublic = true\npath = \"/x\"\nsql = \"SELECT 1\"\ncolumns.A = { type = \"date\", format = \"ddmmyy\" }\n";
    let dir = project(
        &sqlite_config(),
        &[("v1/jobs.toml", bad_jobs), ("v1/other.toml", bad_other)],
    );
    let o = common::patina(&["check"], dir.path());
    let (out, err) = (&o.out, &o.err);
    assert_eq!(o.code, Some(2), "errors: {out}{err}");
    for expected in [
        "mappings/v1/jobs.toml:8:23: error: parameter `job`: unknown type `integr`",
        "mappings/v1/jobs.toml:7:43: error: route `getJob`: `:job_no` is used in the SQL but not declared",
        "mappings/v1/other.toml:1:10: error: unknown source `nowhere`",
        "mappings/v1/other.toml:7:39: error: unknown date format `ddmmyy`",
        "hint: ",
        "errors found; nothing was loaded",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn missing_environment_variable_stops_start_up() {
    let config = "[sources.demo]\nkind = \"odbc\"\ndialect = \"db2i\"\nconnection_string = \"Driver={IBM i Access ODBC Driver};System=${PATINA_TEST_UNSET_HOST};PWD=${PATINA_TEST_UNSET_PW}\"\n";
    let dir = project(config, &[]);
    let o = common::patina(&["serve"], dir.path());
    let (out, err) = (&o.out, &o.err);
    assert_eq!(o.code, Some(1), "{out}{err}");
    assert!(err.contains("patina.toml:4:21: error"), "{err}");
    assert!(
        err.contains("`PATINA_TEST_UNSET_HOST`, `PATINA_TEST_UNSET_PW`"),
        "{err}"
    );
}

/// Commands that neither connect nor sign run without the production secrets: `openapi`
/// (without `--db`), `dedup-table` and `keys`. `serve` and `token` still need them.
#[test]
fn offline_commands_run_without_the_production_secrets() {
    let config = "[sources.demo]\nkind = \"odbc\"\ndialect = \"db2i\"\nconnection_string = \"System=${PATINA_TEST_UNSET_HOST};PWD=${PATINA_TEST_UNSET_PW}\"\n\
                  [auth]\napi_keys_file = \"keys.toml\"\n[auth.jwt]\nhs256_secret = \"${PATINA_TEST_UNSET_SECRET}\"\n";
    let mapping = "source = \"demo\"\n[[route]]\nid = \"a\"\npublic = true\npath = \"/a/{n}\"\nsql = \"SELECT JOBNO FROM JOBMST WHERE JOBNO = :n\"\nparams.n = \"integer\"\n";
    let dir = project(config, &[("v1/a.toml", mapping)]);
    let o = common::patina(&["openapi", "--out", "docs"], dir.path());
    assert!(o.ok(), "{}{}", o.out, o.err);
    assert!(dir.path().join("docs/v1.json").is_file());
    // It loaded: what it says is about the mappings, not the environment.
    let o = common::patina(&["dedup-table"], dir.path());
    assert!(o.err.contains("no queued route"), "{}{}", o.out, o.err);
    let o = common::patina(
        &["keys", "new", "--name", "ci", "--scopes", "jobs:read"],
        dir.path(),
    );
    assert!(o.ok(), "{}{}", o.out, o.err);
    let o = common::patina(&["keys", "list"], dir.path());
    assert!(o.ok() && o.out.contains("ci"), "{}{}", o.out, o.err);
    for args in [&["serve"][..], &["token"][..]] {
        let o = common::patina(args, dir.path());
        assert!(!o.ok(), "{args:?} ran without its secrets: {}", o.out);
        assert!(
            o.err.contains("PATINA_TEST_UNSET_SECRET"),
            "{args:?}: {}",
            o.err
        );
    }
}

#[test]
fn serve_refuses_a_broken_mapping() {
    let bad = "source = \"demo\"\n[[route]]\nid = \"a\"\npublic = true\npath = \"/a\"\nsql = \"SELECT 1\"\nsummry = \"typo\"\n";
    let dir = project(&sqlite_config(), &[("v1/a.toml", bad)]);
    let o = common::patina(&["serve", "--listen", "127.0.0.1:0"], dir.path());
    let (out, err) = (&o.out, &o.err);
    assert_eq!(o.code, Some(1), "{out}{err}");
    assert!(
        err.contains("mappings/v1/a.toml:7:1: error: route: unknown field `summry`"),
        "{err}"
    );
}

#[test]
fn check_runs_without_the_production_secrets_and_speaks_json_and_github() {
    // The JWT secret and one source's password are not set: a DBA checks the mappings anyway.
    let config = format!(
        "{}\n[sources.erp]\nkind = \"odbc\"\ndialect = \"postgres\"\n\
         connection_string = \"Driver={{PostgreSQL Unicode}};Server=erp;Pwd=${{PATINA_TEST_UNSET_ERP_PW}}\"\n\n\
         [auth.jwt]\nissuer = \"x\"\naudience = \"y\"\nhs256_secret = \"${{PATINA_TEST_UNSET_JWT}}\"\n",
        sqlite_config()
    );
    let good = "source = \"demo\"\n[[route]]\nid = \"a\"\npublic = true\npath = \"/a\"\nsql = \"SELECT JOBNO FROM JOBMST\"\n";
    let dir = project(&config, &[("v1/a.toml", good)]);
    let o = common::patina(&["check"], dir.path());
    let (out, err) = (&o.out, &o.err);
    assert_eq!(o.code, Some(1), "warnings only: {out}{err}");
    assert!(
        err.contains("warning: environment variable `PATINA_TEST_UNSET_ERP_PW` is not set"),
        "{err}"
    );
    assert!(
        err.contains("patina.toml:9:"),
        "the warning points at the variable: {err}"
    );
    assert!(err.contains("`PATINA_TEST_UNSET_JWT` is not set"), "{err}");
    // check --db connects to the source it can, and says which it cannot.
    let o = common::patina(&["check", "--db", "--format", "json"], dir.path());
    assert_eq!(o.code, Some(2), "{}{}", o.out, o.err);
    let report: serde_json::Value = serde_json::from_str(&o.out).expect("JSON");
    assert_eq!(report["errors"], 1, "{report}");
    let diags = report["diagnostics"].as_array().expect("diagnostics");
    assert!(
        diags.iter().any(|d| d["severity"] == "error"
            && d["message"]
                .as_str()
                .is_some_and(|m| m.contains("source `erp` is not checked")
                    && m.contains("PATINA_TEST_UNSET_ERP_PW"))),
        "{report}"
    );
    assert!(
        diags
            .iter()
            .all(|d| d["file"].is_string() && d["line"].is_u64())
    );
    // GitHub annotations, one per finding, on the line.
    let o = common::patina(&["check", "--format", "github"], dir.path());
    assert_eq!(o.code, Some(1), "{}{}", o.out, o.err);
    assert!(
        o.out.lines().any(|l| l.starts_with("::warning file=")
            && l.contains(",line=9,col=")
            && l.contains("PATINA_TEST_UNSET_ERP_PW")),
        "{}",
        o.out
    );
    // serve still refuses to start without them.
    let o = common::patina(&["serve", "--listen", "127.0.0.1:0"], dir.path());
    assert_eq!(o.code, Some(1), "{}{}", o.out, o.err);
}

#[test]
fn check_db_proves_mappings_against_the_database() {
    let good = "source = \"demo\"\n[[route]]\nid = \"a\"\npublic = true\npath = \"/a/{n}\"\nsql = \"SELECT JOBNO, JOBDS FROM JOBMST WHERE JOBNO = :n\"\nparams.n = \"integer\"\ncolumns.JOBDS = \"description\"\n";
    let dir = project(&sqlite_config(), &[("v1/a.toml", good)]);
    let o = common::patina(&["check", "--db"], dir.path());
    let (out, err) = (&o.out, &o.err);
    assert!(o.ok(), "{out}{err}");
    assert!(out.contains("checked against their databases"), "{out}");

    let wrong = "source = \"demo\"\n[[route]]\nid = \"a\"\npublic = true\npath = \"/a\"\nsql = \"SELECT JOBNO FROM JOBMST\"\ncolumns.JOBDESC = \"description\"\n\n[[route]]\nid = \"b\"\npublic = true\npath = \"/b\"\nsql = \"SELECT NOPE FROM JOBMST\"\n";
    let dir = project(&sqlite_config(), &[("v1/a.toml", wrong)]);
    let o = common::patina(&["check", "--db"], dir.path());
    let (out, err) = (&o.out, &o.err);
    assert_eq!(o.code, Some(2), "{out}{err}");
    assert!(
        err.contains("route `a`: mapped column `JOBDESC` is not in the result"),
        "{err}"
    );
    assert!(err.contains("the statement returns: JOBNO"), "{err}");
    assert!(
        err.contains("route `b`: source `demo` could not prepare the statement"),
        "{err}"
    );
}

/// `check --db` ends only after every connection its workers began has logged in: a process
/// that ends while a thread is inside the driver can abort in the driver's libraries' exit
/// handlers (libpq's Kerberos did, now and then). Every connection after the first is held
/// for a second before PostgreSQL sees it; none may be hung up on meanwhile.
#[test]
fn check_db_ends_only_after_its_connections_have_logged_in() {
    let Some(db) = common::postgres() else {
        return;
    };
    let proxy = common::proxy::Proxy::start_holding(db.port(), std::time::Duration::from_secs(1));
    let cs = db.at_port(proxy.port);
    let config = format!(
        "[sources.demo]\nkind = \"odbc\"\ndialect = \"postgres\"\nconnection_string = \"{cs}\"\npool = {{ max = 3 }}\n"
    );
    let mapping = "source = \"demo\"\n[[route]]\nid = \"a\"\npublic = true\npath = \"/a/{n}\"\nsql = \"SELECT JOBNO FROM JOBMST WHERE JOBNO = :n\"\nparams.n = \"integer\"\n";
    let dir = project(&config, &[("v1/a.toml", mapping)]);
    let o = common::patina(&["check", "--db"], dir.path());
    assert!(o.ok(), "{}{}", o.out, o.err);
    // One login per worker (more if the driver retried one on a new connection).
    assert!(proxy.accepted() >= 3, "{}", proxy.accepted());
    assert!(proxy.held.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    assert_eq!(
        proxy
            .closed_while_held
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "check --db ended while connections were still logging in"
    );
}

#[test]
fn check_db_tells_whether_page_keys_are_unique() {
    // STSCD repeats; STSCD then JOBNO does not; a required parameter leaves it unknown.
    let paged = |by: &str, filter: &str| {
        format!(
            "source = \"demo\"\n[[route]]\nid = \"p\"\npublic = true\npath = \"/p\"\n\
             sql = \"SELECT JOBNO, STSCD FROM JOBMST{filter}\"\npage = {{ by = [{by}] }}\n\
             params.plant = {{ type = \"string\", required = {} }}\n\
             columns.JOBNO = \"job_number\"\ncolumns.STSCD = \"status\"\n",
            !filter.contains("IS NULL")
        )
    };
    let optional = " WHERE (CAST(:plant AS CHAR(3)) IS NULL OR PLNCD = :plant)";
    let cases = [
        (
            paged("\"STSCD\"", optional),
            Some("does not end in a unique combination"),
        ),
        (paged("\"STSCD\", \"-JOBNO\"", optional), None),
        (
            paged("\"STSCD\", \"JOBNO\"", " WHERE PLNCD = :plant"),
            Some("cannot tell whether"),
        ),
    ];
    for (mapping, warning) in cases {
        let dir = project(&sqlite_config(), &[("v1/p.toml", &mapping)]);
        let o = common::patina(&["check", "--db"], dir.path());
        let (out, err) = (&o.out, &o.err);
        assert_eq!(o.code, Some(i32::from(warning.is_some())), "{out}{err}");
        match warning {
            Some(w) => assert!(
                err.contains("warning: route `p`: ") && err.contains(w),
                "{mapping}\n{err}"
            ),
            None => assert!(!err.contains("page.by"), "{mapping}\n{err}"),
        }
    }
}

#[test]
fn check_db_warns_about_codecs_that_do_not_fit_their_column() {
    // LSTUPD is a DATE: a CYYMMDD codec on it cannot decode a single value.
    let drift = "source = \"demo\"\n[[route]]\nid = \"d\"\npublic = true\npath = \"/d\"\n\
                 sql = \"SELECT CUSNO, CUSNM, LSTUPD FROM CUSMST\"\n\
                 columns.LSTUPD = { name = \"updated_on\", type = \"date\", format = \"cyymmdd\" }\n\
                 columns.CUSNM = { name = \"name\", type = \"string\" }\n";
    let dir = project(&sqlite_config(), &[("v1/d.toml", drift)]);
    let o = common::patina(&["check", "--db"], dir.path());
    let (out, err) = (&o.out, &o.err);
    assert_eq!(o.code, Some(1), "a warning: {out}{err}");
    assert!(
        err.contains(
            "warning: route `d`: column `LSTUPD` (`updated_on`): a `cyymmdd` date codec on a DATE column"
        ),
        "{err}"
    );
    assert!(!err.contains("CUSNM"), "{err}");
}

#[test]
fn check_db_prepares_every_step_of_a_write_without_running_it() {
    let write = "source = \"demo\"\n[[route]]\nid = \"w\"\nmethod = \"POST\"\npublic = true\npath = \"/w/{n}\"\nparams.n = \"integer\"\nbody.text = \"string\"\ncolumns.NOTTX = \"text\"\n\n[[route.step]]\nsql = \"INSERT INTO JOBNOTE (JOBNO, NOTSQ, NOTTX, NOTBY, NOTDT) VALUES (:n, 1, :text, 'X', 0)\"\n\n[[route.step]]\nsql = \"SELECT NOTTX FROM JOBNOTE WHERE JOBNO = :n\"\n";
    let dir = project(&sqlite_config(), &[("v1/w.toml", write)]);
    let o = common::patina(&["check", "--db"], dir.path());
    let (out, err) = (&o.out, &o.err);
    assert!(o.ok(), "{out}{err}");
    assert_eq!(
        common::query_db(&common::sqlite(), "SELECT COUNT(*) FROM JOBNOTE")[0][0].as_deref(),
        Some("0"),
        "prepared, never run"
    );
    let wrong = write.replace("SELECT NOTTX FROM", "SELECT NOTE_TEXT FROM");
    let dir = project(&sqlite_config(), &[("v1/w.toml", &wrong)]);
    let o = common::patina(&["check", "--db"], dir.path());
    let (out, err) = (&o.out, &o.err);
    assert_eq!(o.code, Some(2), "{out}{err}");
    assert!(
        err.contains("route `w`: step 2: source `demo` could not prepare the statement"),
        "{err}"
    );
}

#[test]
fn check_warns_when_scoped_routes_have_no_credentials_to_check() {
    let scoped = "source = \"demo\"\n[[route]]\nid = \"a\"\nscopes = [\"jobs:read\"]\npath = \"/a\"\nsql = \"SELECT 1\"\n";
    let dir = project(&sqlite_config(), &[("v1/a.toml", scoped)]);
    let o = common::patina(&["check"], dir.path());
    let (out, err) = (&o.out, &o.err);
    assert_eq!(o.code, Some(1), "a warning, not an error: {out}{err}");
    assert!(
        err.contains(
            "1 route(s) need scopes, but [auth] configures no JWT keys and no API keys file"
        ),
        "{err}"
    );
}

#[test]
fn check_db_reports_drift_at_the_mapping_line() {
    // A column renamed in the database (CUSNAME is CUSNM), a nullable column promised as
    // never null, and a CYYMMDD codec on a DATE column: each at its own line.
    let drift = "source = \"demo\"\n[[route]]\nid = \"d\"\npublic = true\npath = \"/d\"\n\
                 sql = \"SELECT * FROM CUSMST\"\n\
                 columns.CUSNAME = \"name\"\n\
                 columns.LSTUPD = { name = \"updated_on\", type = \"date\", format = \"cyymmdd\", nullable = false }\n\
                 columns.CUSNO = { name = \"number\", type = \"integer\", nullable = false }\n";
    let dir = project(&sqlite_config(), &[("v1/d.toml", drift)]);
    let o = common::patina(&["check", "--db", "--format", "json"], dir.path());
    assert_eq!(o.code, Some(2), "{}{}", o.out, o.err);
    let report: serde_json::Value = serde_json::from_str(&o.out).expect("json");
    let found: Vec<(String, u64, String)> = report["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| {
            (
                d["severity"].as_str().unwrap_or_default().to_string(),
                d["line"].as_u64().unwrap_or_default(),
                d["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let has = |severity: &str, line: u64, text: &str| {
        found
            .iter()
            .any(|(s, l, m)| s == severity && *l == line && m.contains(text))
    };
    assert!(
        has("error", 7, "mapped column `CUSNAME` is not in the result"),
        "{found:#?}"
    );
    assert!(
        has(
            "warning",
            8,
            "column `LSTUPD` (`updated_on`) is nullable in the database but `nullable = false` here"
        ),
        "{found:#?}"
    );
    assert!(
        has("warning", 8, "a `cyymmdd` date codec on a DATE column"),
        "{found:#?}"
    );
    assert!(
        !found.iter().any(|(_, _, m)| m.contains("CUSNO")),
        "CUSNO is NOT NULL: {found:#?}"
    );
    let text = common::patina(&["check", "--db"], dir.path());
    assert!(
        text.err
            .contains("mappings/v1/d.toml:7: error: route `d`: mapped column `CUSNAME`"),
        "{}",
        text.err
    );
}

const PUBLISHED_V1: &str = "source = \"demo\"

[[route]]
id = \"getCustomer\"
public = true
one = true
path = \"/customers/{n}\"
sql = \"SELECT CUSNO, CUSNM, CUSSC FROM CUSMST WHERE CUSNO = :n\"
params.n = { type = \"integer\", minimum = 1 }
columns.CUSNO = { name = \"number\", type = \"integer\", nullable = false }
columns.CUSNM = { name = \"name\", type = \"string\", trim = \"end\" }
columns.CUSSC = { name = \"status\", codes = { A = \"active\", I = \"inactive\", H = \"credit_hold\" } }

[[route]]
id = \"searchCustomers\"
public = true
path = \"/customers\"
sql = \"SELECT CUSNO FROM CUSMST WHERE (CAST(:state AS CHAR(2)) IS NULL OR CUSST = :state)\"
params.state = { type = \"string\", max_length = 2 }
columns.CUSNO = { name = \"number\", type = \"integer\", nullable = false }

[[route]]
id = \"countCustomers\"
public = true
one = true
path = \"/customers-count\"
sql = \"SELECT COUNT(*) AS N FROM CUSMST\"
columns.N = { name = \"count\", type = \"integer\" }
";

#[test]
fn check_refuses_breaking_changes_to_a_published_version() {
    let dir = project(&sqlite_config(), &[("v1/c.toml", PUBLISHED_V1)]);
    let mapping = dir.path().join("mappings/v1/c.toml");
    let published = common::patina(&["openapi", "--db", "--out", "openapi"], dir.path());
    assert!(published.ok(), "{}{}", published.out, published.err);
    let o = common::patina(&["check", "--db"], dir.path());
    assert!(o.ok(), "unchanged: {}{}", o.out, o.err);
    assert!(
        o.out.contains("compared with the published v1"),
        "{}",
        o.out
    );

    // Additions pass: a new field, a new optional parameter, a new route, a new version.
    let added = PUBLISHED_V1
        .replace("SELECT CUSNO, CUSNM, CUSSC FROM", "SELECT CUSNO, CUSNM, CUSSC, CUSCT FROM")
        .replace(
            "params.state = { type = \"string\", max_length = 2 }",
            "params.state = { type = \"string\", max_length = 5 }\nparams.city = { type = \"string\" }",
        )
        .replace("WHERE (CAST(:state", "WHERE (CAST(:city AS CHAR(20)) IS NULL OR CUSCT = :city) AND (CAST(:state")
        + "\n[[route]]\nid = \"newRoute\"\npublic = true\npath = \"/new\"\nsql = \"SELECT CUSNO FROM CUSMST\"\n";
    std::fs::write(&mapping, &added).expect("write");
    let v2 = dir.path().join("mappings/v2");
    std::fs::create_dir_all(&v2).expect("v2");
    let v2_text = PUBLISHED_V1
        .replace("id = \"getCustomer\"", "id = \"getCustomerV2\"")
        .replace("id = \"searchCustomers\"", "id = \"searchCustomersV2\"")
        .replace("id = \"countCustomers\"", "id = \"countCustomersV2\"");
    std::fs::write(v2.join("c.toml"), v2_text).expect("v2 mapping");
    let o = common::patina(&["check", "--db"], dir.path());
    assert!(o.ok(), "additions are fine: {}{}", o.out, o.err);
    std::fs::remove_dir_all(&v2).expect("rm v2");

    // Breaks: a field removed, a type changed, a parameter made required, a route gone.
    let broken = PUBLISHED_V1
        .replace("SELECT CUSNO, CUSNM, CUSSC FROM", "SELECT CUSNO, CUSSC FROM")
        .replace("columns.CUSNM = { name = \"name\", type = \"string\", trim = \"end\" }\n", "")
        .replace(
            "columns.CUSNO = { name = \"number\", type = \"integer\", nullable = false }\ncolumns.CUSSC",
            "columns.CUSNO = { name = \"number\", type = \"string\", nullable = false }\ncolumns.CUSSC",
        )
        .replace(
            "params.state = { type = \"string\", max_length = 2 }",
            "params.state = { type = \"string\", max_length = 2, required = true }",
        );
    let broken = &broken[..broken
        .find("[[route]]\nid = \"countCustomers\"")
        .expect("third route")];
    std::fs::write(&mapping, broken).expect("write");
    let o = common::patina(&["check", "--db"], dir.path());
    assert_eq!(o.code, Some(2), "{}{}", o.out, o.err);
    for expected in [
        "mappings/v1/c.toml:4: error: route `getCustomer` (GET /v1/customers/{n}) breaks its published document",
        "field `name` of response 200 was removed",
        "type of field `number` of response 200 changed from integer to string",
        "mappings/v1/c.toml:14: error: route `searchCustomers` (GET /v1/customers) breaks its published document",
        "parameter `state` became required",
        "openapi/v1.json: error: route `countCustomers` (GET /v1/customers-count) breaks its published document",
        "the route is gone",
    ] {
        assert!(
            o.err.contains(expected),
            "missing `{expected}` in:\n{}",
            o.err
        );
    }
    // Without the database, what does not depend on it is still judged.
    let offline = common::patina(&["check"], dir.path());
    assert_eq!(offline.code, Some(2), "{}", offline.err);
    assert!(
        offline.err.contains("parameter `state` became required"),
        "{}",
        offline.err
    );
    assert!(offline.err.contains("the route is gone"), "{}", offline.err);
    assert!(!offline.err.contains("was removed"), "{}", offline.err);

    // Accepted on the routes that still exist; the route that is gone still fails.
    let accepted = broken
        .replace(
            "id = \"getCustomer\"\n",
            "id = \"getCustomer\"\naccept_breaking = \"number is a string now; agreed with the app team\"\n",
        )
        .replace(
            "id = \"searchCustomers\"\n",
            "id = \"searchCustomers\"\naccept_breaking = \"state is required; agreed\"\n",
        );
    std::fs::write(&mapping, &accepted).expect("write");
    let o = common::patina(&["check", "--db"], dir.path());
    assert_eq!(o.code, Some(2), "{}{}", o.out, o.err);
    assert!(!o.err.contains("getCustomer`"), "{}", o.err);
    assert!(o.err.contains("route `countCustomers`"), "{}", o.err);
    let restored = format!(
        "{accepted}{}",
        &PUBLISHED_V1[PUBLISHED_V1
            .find("[[route]]\nid = \"countCustomers\"")
            .expect("third")..]
    );
    std::fs::write(&mapping, restored).expect("write");
    let o = common::patina(&["check", "--db", "--format", "json"], dir.path());
    assert!(o.ok(), "{}{}", o.out, o.err);
    let report: serde_json::Value = serde_json::from_str(&o.out).expect("json");
    let accepted = report["accepted_breaking_changes"]
        .as_array()
        .expect("list");
    assert_eq!(accepted.len(), 4, "{accepted:#?}");
    assert!(
        accepted
            .iter()
            .any(|a| a.as_str().is_some_and(|a| a.contains(
                "field `name` of response 200 was removed (accepted: number is a string now"
            ))),
        "{accepted:#?}"
    );
}

#[test]
fn a_published_folder_that_is_not_there_is_said() {
    let good = "source = \"demo\"\n[[route]]\nid = \"a\"\npublic = true\npath = \"/a\"\nsql = \"SELECT JOBNO FROM JOBMST\"\n";
    let dir = project(
        &format!("[docs]\npublished = \"publishd\"\n\n{}", sqlite_config()),
        &[("v1/a.toml", good)],
    );
    let o = common::patina(&["check"], dir.path());
    assert_eq!(o.code, Some(1), "a warning: {}{}", o.out, o.err);
    assert!(
        o.err
            .contains("`[docs] published` names `publishd`, which is not a folder"),
        "{}",
        o.err
    );
}
