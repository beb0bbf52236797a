//! The migration bridge with SQLite as the legacy database and PostgreSQL as the new one,
//! both holding the demo data: shadow reads agree where the data agrees, each kind of
//! difference is caught with its JSON pointer, a sensitive field's value never reaches the
//! log, a hanging shadow changes nothing for the client, and a cut-over is one reload.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Gateway;

/// A route on the legacy database with a shadow on the new one; `{shadow_sql}` and the extra
/// shadow settings vary per test. CUSMST is never written by the tests.
fn mapping(shadow_sql: &str, shadow_extra: &str) -> String {
    format!(
        r#"source = "legacy"

[[route]]
id = "listCustomersByState"
path = "/customers"
public = true
sql = "SELECT CUSNO, CUSNM, CUSST, CRLMT FROM CUSMST WHERE CUSST = :state ORDER BY CUSNO"
params.state = {{ type = "string", required = true, max_length = 2 }}
columns.CUSNO = {{ name = "customer_number", type = "integer", nullable = false }}
columns.CUSNM = {{ name = "name", type = "string", trim = "end" }}
columns.CUSST = {{ name = "state", type = "string" }}
columns.CRLMT = {{ name = "credit_limit", type = "decimal", scale = 2, sensitive = true }}

[route.shadow]
source = "newdb"
sql = """{shadow_sql}"""
{shadow_extra}
columns.CUSTOMER_ID = {{ name = "customer_number", type = "integer", nullable = false }}
columns.CUSTOMER_NAME = {{ name = "name", type = "string", trim = "end" }}
columns.STATE = {{ name = "state", type = "string" }}
columns.CREDIT = {{ name = "credit_limit", type = "decimal", scale = 2 }}
"#
    )
}

/// The new schema has other names: the shadow's SQL renames them.
const SAME: &str = "SELECT CUSNO AS CUSTOMER_ID, CUSNM AS CUSTOMER_NAME, CUSST AS STATE, CRLMT AS CREDIT FROM CUSMST WHERE CUSST = :state ORDER BY CUSNO";

struct Bridge {
    gw: Gateway,
    log: PathBuf,
    mappings: PathBuf,
    dir: tempfile::TempDir,
}

fn bridge(text: &str) -> Option<Bridge> {
    let pg = common::postgres()?;
    let (sqlite_dir, legacy) = common::sqlite_fresh();
    let dir = tempfile::tempdir().expect("dir");
    let mappings = dir.path().join("mappings/v1");
    std::fs::create_dir_all(&mappings).expect("mappings");
    std::fs::write(mappings.join("customers.toml"), text).expect("mapping");
    let log = dir.path().join("bridge.jsonl");
    let cfg = dir.path().join("patina.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nmappings = \"mappings\"\n\n[bridge]\nlog = \"bridge.jsonl\"\n\n\
             [sources.legacy]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"{}\"\n\n\
             [sources.newdb]\nkind = \"odbc\"\ndialect = \"postgres\"\nconnection_string = \"{}\"\n\
             pool = {{ max = 4 }}\n",
            legacy.connection_string, pg.connection_string
        ),
    )
    .expect("config");
    let gw = Gateway::from_config(&cfg);
    // The legacy database lives as long as the test.
    std::mem::forget(sqlite_dir);
    Some(Bridge {
        gw,
        log,
        mappings: mappings.join("customers.toml"),
        dir,
    })
}

/// The log's entries, once there are at least `n` (waits up to 15 s).
fn entries(log: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            assert!(
                lines.len() >= n,
                "{} of {n} comparisons logged",
                lines.len()
            );
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn equal_answers_agree_and_the_report_says_so() {
    // Enough slots that no request goes uncompared.
    let Some(b) = bridge(&mapping(SAME, "concurrency = 8")) else {
        return;
    };
    for state in ["OH", "WI", "MI", "IN", "OH"] {
        let r = b.gw.anonymous(&format!("/v1/customers?state={state}"));
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let e = entries(&b.log, 5);
    assert!(e.iter().all(|x| x["result"] == "equal"), "{e:#?}");
    assert_eq!(e[0]["route"], "listCustomersByState");
    assert!(e.iter().any(|x| x["params"]["state"] == "WI"), "{e:#?}");
    let metrics = b.gw.anonymous("/metrics").text;
    assert!(
        metrics.contains(
            "patina_shadow_comparisons_total{route=\"listCustomersByState\",result=\"equal\"} 5"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("patina_shadow_duration_seconds_count{route=\"listCustomersByState\"} 5")
    );
    let report = common::patina(
        &[
            "bridge",
            "report",
            "--config",
            "patina.toml",
            "--format",
            "json",
        ],
        b.dir.path(),
    );
    assert!(report.ok(), "{}{}", report.out, report.err);
    let report: serde_json::Value = serde_json::from_str(&report.out).expect("json");
    assert_eq!(report["routes"][0]["route"], "listCustomersByState");
    assert_eq!(report["routes"][0]["compared"], 5);
    assert_eq!(report["routes"][0]["agreement"], 1.0);
    // The cut-over guard lets it through.
    let guard = common::patina(
        &[
            "check",
            "--min-agreement",
            "0.99",
            "--agreement-window",
            "1h",
        ],
        b.dir.path(),
    );
    assert!(guard.ok(), "{}{}", guard.out, guard.err);
}

/// A list of exactly `max_rows` rows is whole and compared; one cut at `max_rows` (each side
/// may have cut another subset) is logged as not compared.
#[test]
fn a_list_of_exactly_max_rows_is_compared_and_a_cut_one_is_not() {
    // The demo has 10 customers in MI and 22 in OH.
    let text = mapping(SAME, "concurrency = 8").replacen(
        "public = true\n",
        "public = true\nmax_rows = 10\n",
        1,
    );
    let Some(b) = bridge(&text) else {
        return;
    };
    let whole = b.gw.anonymous("/v1/customers?state=MI").json();
    assert_eq!(whole["data"].as_array().expect("data").len(), 10);
    assert!(whole.get("truncated").is_none(), "{whole}");
    let e = entries(&b.log, 1);
    assert_eq!(e[0]["result"], "equal", "{e:#?}");
    let cut = b.gw.anonymous("/v1/customers?state=OH").json();
    assert_eq!(cut["truncated"], true, "{cut}");
    let e = entries(&b.log, 2);
    let oh = &e[1];
    assert_eq!(oh["params"]["state"], "OH", "{e:#?}");
    assert!(
        oh["error"]
            .as_str()
            .unwrap_or_default()
            .contains("cut at max_rows"),
        "{e:#?}"
    );
}

#[test]
fn a_different_value_a_missing_row_and_another_order_are_each_caught() {
    // One value differs (a name), one row is missing (1003), and the sensitive credit limit
    // of 1001 differs: its pointer is logged, never its values.
    let different = "SELECT CUSNO AS CUSTOMER_ID, CASE WHEN CUSNO = 1100 THEN 'RENAMED' ELSE CUSNM END AS CUSTOMER_NAME, CUSST AS STATE, CASE WHEN CUSNO = 1001 THEN 99999.99 ELSE CRLMT END AS CREDIT FROM CUSMST WHERE CUSST = :state AND CUSNO <> 1003 ORDER BY CUSNO";
    let Some(b) = bridge(&mapping(different, "")) else {
        return;
    };
    let served = b.gw.anonymous("/v1/customers?state=OH");
    assert_eq!(served.status, 200);
    let served = served.json();
    let rows = served["data"].as_array().expect("rows");
    let at = |n: i64| {
        rows.iter()
            .position(|r| r["customer_number"] == n)
            .expect("served")
    };
    let e = entries(&b.log, 1);
    assert_eq!(e[0]["result"], "different", "{e:#?}");
    let diffs = e[0]["differences"].as_array().expect("differences");
    let pointer = |p: &str| diffs.iter().find(|d| d["pointer"] == p);
    let secret = pointer(&format!("/data/{}/credit_limit", at(1001)))
        .unwrap_or_else(|| panic!("the credit limit: {diffs:#?}"));
    assert!(
        secret.get("primary").is_none() && secret.get("shadow").is_none(),
        "{secret}"
    );
    let text = std::fs::read_to_string(&b.log).expect("log");
    assert!(
        !text.contains("99999.99") && !text.contains("25000.00"),
        "{text}"
    );
    // 1003 is missing: every row after it is shifted, and the last is missing altogether.
    let missing = at(1003);
    let shifted = pointer(&format!("/data/{missing}/customer_number")).expect("shifted");
    assert_eq!(shifted["primary"], "1003");
    let last = format!("/data/{}", rows.len() - 1);
    assert_eq!(
        pointer(&last).expect("missing row")["primary"],
        "(row)",
        "{diffs:#?}"
    );
    assert!(pointer(&last).expect("row").get("shadow").is_none());

    // Another order where the route orders its rows.
    let reordered = SAME.replace("ORDER BY CUSNO", "ORDER BY CUSNO DESC");
    std::fs::write(&b.mappings, mapping(&reordered, "")).expect("rewrite");
    wait_for_reload(&b.gw, 2);
    let r = b.gw.anonymous("/v1/customers?state=OH");
    assert_eq!(r.status, 200);
    let e = entries(&b.log, 2);
    let last = e.last().expect("entry");
    assert_eq!(last["result"], "different", "{last}");
    let first = &last["differences"][0];
    assert_eq!(first["pointer"], "/data/0/customer_number", "{last}");
    assert_ne!(first["primary"], first["shadow"]);

    // A value that differs only in its text after the codec (a padded name) is equal.
    let padded = SAME.replace("CUSNM AS CUSTOMER_NAME", "CUSNM || '   ' AS CUSTOMER_NAME");
    std::fs::write(&b.mappings, mapping(&padded, "")).expect("rewrite");
    wait_for_reload(&b.gw, 3);
    b.gw.anonymous("/v1/customers?state=WI");
    let e = entries(&b.log, 3);
    assert_eq!(e.last().expect("entry")["result"], "equal", "{e:#?}");
    // One in three agreed: the cut-over guard refuses the route, at its line.
    let guard = common::patina(&["check", "--min-agreement", "0.99"], b.dir.path());
    assert_eq!(guard.code, Some(2), "{}{}", guard.out, guard.err);
    assert!(
        guard.err.contains(
            "mappings/v1/customers.toml:4: error: route `listCustomersByState`: its shadow agreed on 33.3% of 3 comparisons in the last 24h, below 99.0%"
        ),
        "{}",
        guard.err
    );
    let report = common::patina(&["bridge", "report"], b.dir.path());
    assert!(
        report
            .out
            .contains("listCustomersByState: agreement 33.33% (1 equal, 2 different"),
        "{}",
        report.out
    );
    assert!(
        report.out.contains("/data/*/customer_number: differs in 2"),
        "{}",
        report.out
    );
}

#[test]
fn a_hanging_shadow_changes_nothing_for_the_client() {
    let hanging = SAME.replace("FROM CUSMST", "FROM CUSMST, (SELECT pg_sleep(3)) AS SLEEP");
    let Some(b) = bridge(&mapping(&hanging, "timeout = \"300ms\"\nconcurrency = 2")) else {
        return;
    };
    let p50 = |path: &str| {
        let mut ms: Vec<u128> = (0..15)
            .map(|_| {
                let t = Instant::now();
                let r = b.gw.anonymous(path);
                assert_eq!(r.status, 200, "{}", r.text);
                t.elapsed().as_millis()
            })
            .collect();
        ms.sort_unstable();
        ms[ms.len() / 2]
    };
    let with_shadow = p50("/v1/customers?state=OH");
    // The same statement without a shadow, for comparison.
    std::fs::write(
        &b.mappings,
        mapping(
            &hanging,
            "timeout = \"300ms\"\nconcurrency = 2\nsample = 0.000001",
        ),
    )
    .expect("rewrite");
    wait_for_reload(&b.gw, 2);
    let without = p50("/v1/customers?state=OH");
    println!("p50 with a hanging shadow: {with_shadow} ms; (nearly) without: {without} ms");
    assert!(
        with_shadow < without + 400,
        "the client waited for the shadow: {with_shadow} ms against {without} ms"
    );
    // Two shadows at most ran; the rest of the 15 were not compared; those that ran timed out.
    let metrics = b.gw.anonymous("/metrics").text;
    let count = |result: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "patina_shadow_comparisons_total{{route=\"listCustomersByState\",result=\"{result}\"}} "
                ))
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("skipped") > 0, "{metrics}");
    assert!(count("error") >= 1, "{metrics}");
    assert_eq!(count("equal"), 0, "{metrics}");
    let e = entries(&b.log, 1);
    assert!(
        e[0]["error"]
            .as_str()
            .is_some_and(|x| x.contains("the shadow failed")),
        "{e:#?}"
    );
}

#[test]
fn cut_over_is_one_reload_and_the_legacy_database_stays_compared() {
    // `SRC` tells who answered.
    let legacy_first = mapping(
        &SAME.replace(" FROM CUSMST", ", 'newdb' AS SRC FROM CUSMST"),
        "",
    )
    .replace("CRLMT FROM CUSMST", "CRLMT, 'legacy' AS SRC FROM CUSMST")
    .replace(
        "columns.CRLMT = {",
        "columns.SRC = { name = \"src\", type = \"string\" }\ncolumns.CRLMT = {",
    )
    .replace(
        "columns.CREDIT = {",
        "columns.SRC = { name = \"src\", type = \"string\" }\ncolumns.CREDIT = {",
    );
    let Some(b) = bridge(&legacy_first) else {
        return;
    };
    let r = b.gw.anonymous("/v1/customers?state=WI").json();
    assert_eq!(r["data"][0]["src"], "legacy", "{r}");
    let e = entries(&b.log, 1);
    assert_eq!(e[0]["differences"][0]["pointer"], "/data/0/src", "{e:#?}");
    // Swap `source` and `shadow.source` with their statements and columns.
    let swapped = r#"source = "newdb"

[[route]]
id = "listCustomersByState"
path = "/customers"
public = true
sql = "SELECT CUSNO AS CUSTOMER_ID, CUSNM AS CUSTOMER_NAME, CUSST AS STATE, CRLMT AS CREDIT, 'newdb' AS SRC FROM CUSMST WHERE CUSST = :state ORDER BY CUSNO"
params.state = { type = "string", required = true, max_length = 2 }
columns.CUSTOMER_ID = { name = "customer_number", type = "integer", nullable = false }
columns.CUSTOMER_NAME = { name = "name", type = "string", trim = "end" }
columns.STATE = { name = "state", type = "string" }
columns.SRC = { name = "src", type = "string" }
columns.CREDIT = { name = "credit_limit", type = "decimal", scale = 2, sensitive = true }

[route.shadow]
source = "legacy"
sql = "SELECT CUSNO, CUSNM, CUSST, CRLMT, 'legacy' AS SRC FROM CUSMST WHERE CUSST = :state ORDER BY CUSNO"
columns.CUSNO = { name = "customer_number", type = "integer", nullable = false }
columns.CUSNM = { name = "name", type = "string", trim = "end" }
columns.CUSST = { name = "state", type = "string" }
columns.SRC = { name = "src", type = "string" }
columns.CRLMT = { name = "credit_limit", type = "decimal", scale = 2 }
"#;
    std::fs::write(&b.mappings, swapped).expect("cut over");
    wait_for_reload(&b.gw, 2);
    let r = b.gw.anonymous("/v1/customers?state=WI").json();
    assert_eq!(
        r["data"][0]["src"], "newdb",
        "served by the new database: {r}"
    );
    let e = entries(&b.log, 2);
    let last = e.last().expect("entry");
    let d = &last["differences"][0];
    assert_eq!(
        (
            d["pointer"].as_str(),
            d["primary"].as_str(),
            d["shadow"].as_str()
        ),
        (Some("/data/0/src"), Some("\"newdb\""), Some("\"legacy\"")),
        "{last}"
    );
    assert_eq!(
        last["differences"].as_array().map(Vec::len),
        Some(1),
        "only `src`: {last}"
    );
}

#[test]
fn check_refuses_a_shadow_it_cannot_compare() {
    let dir = tempfile::tempdir().expect("dir");
    let db = common::sqlite();
    std::fs::write(
        dir.path().join("patina.toml"),
        format!(
            "[sources.legacy]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"{0}\"\n\
             [sources.newdb]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"{0}\"\n",
            db.connection_string
        ),
    )
    .expect("config");
    let v1 = dir.path().join("mappings/v1");
    std::fs::create_dir_all(&v1).expect("v1");
    let bad = mapping(SAME, "sample = 2\nsorce = \"x\"").replace(
        "SELECT CUSNO AS CUSTOMER_ID",
        "SELECT CUSNO AS CUSTOMER_ID, :nope AS X",
    );
    std::fs::write(v1.join("c.toml"), bad).expect("mapping");
    let o = common::patina(&["check"], dir.path());
    assert_eq!(o.code, Some(2), "{}{}", o.out, o.err);
    assert!(o.err.contains("unknown field `sorce`"), "{}", o.err);
    std::fs::write(
        v1.join("c.toml"),
        mapping(
            &SAME.replace("SELECT CUSNO AS", "SELECT :nope AS X, CUSNO AS"),
            "sample = 2",
        ),
    )
    .expect("mapping");
    let o = common::patina(&["check"], dir.path());
    assert_eq!(o.code, Some(2), "{}{}", o.out, o.err);
    assert!(
        o.err
            .contains("`shadow.sample` must be above 0 and at most 1"),
        "{}",
        o.err
    );
    assert!(
        o.err
            .contains("`:nope` is used in the SQL but not declared"),
        "{}",
        o.err
    );
    // A shadow on a paged route is refused with its reason.
    std::fs::write(
        v1.join("c.toml"),
        mapping(SAME, "").replace(
            "public = true\n",
            "public = true\npage = { by = [\"CUSNO\"] }\n",
        ),
    )
    .expect("mapping");
    let o = common::patina(&["check"], dir.path());
    assert_eq!(o.code, Some(2), "{}{}", o.out, o.err);
    assert!(
        o.err.contains("`shadow` is for read routes without `page`"),
        "{}",
        o.err
    );
    // A mirror is for direct writes.
    let read = mapping(SAME, "");
    let read_with_mirror = format!(
        "{}[route.mirror]\nsource = \"newdb\"\nsql = \"SELECT 1\"\n",
        &read[..read.find("[route.shadow]").expect("shadow")]
    );
    std::fs::write(v1.join("c.toml"), read_with_mirror).expect("mapping");
    let o = common::patina(&["check"], dir.path());
    assert_eq!(o.code, Some(2), "{}{}", o.out, o.err);
    assert!(
        o.err
            .contains("route `listCustomersByState`: `mirror` is for direct write routes"),
        "{}",
        o.err
    );
    // check --db prepares the shadow's statement on its own database too.
    std::fs::write(
        v1.join("c.toml"),
        mapping(&SAME.replace("FROM CUSMST", "FROM NO_SUCH_TABLE"), ""),
    )
    .expect("mapping");
    let o = common::patina(&["check", "--db"], dir.path());
    assert_eq!(o.code, Some(2), "{}{}", o.out, o.err);
    assert!(
        o.err.contains(
            "route `listCustomersByState#shadow`: source `newdb` could not prepare the statement"
        ),
        "{}",
        o.err
    );
}

/// Wait until the gateway has loaded its `n`th catalog (the first is the start).
fn wait_for_reload(gw: &Gateway, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = gw.anonymous("/metrics").text;
        let ok = metrics
            .lines()
            .find_map(|l| l.strip_prefix("patina_reloads_total{outcome=\"ok\"} "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if ok + 1 >= n {
            return;
        }
        assert!(Instant::now() < deadline, "no reload: {metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn mirrored_writes_reach_the_new_database_after_it_comes_back() {
    let Some(pg) = common::postgres() else {
        return;
    };
    let proxy = common::proxy::Proxy::start(pg.port());
    let newdb = pg.at_port(proxy.port);
    let (_sqlite_dir, legacy) = common::sqlite_fresh();
    let seq = 70_000 + u32::from(rand::random::<u16>() % 9_000);
    let dir = tempfile::tempdir().expect("dir");
    let v1 = dir.path().join("mappings/v1");
    std::fs::create_dir_all(&v1).expect("v1");
    let insert = "INSERT INTO JOBNOTE (JOBNO, NOTSQ, NOTTX, NOTBY, NOTDT) VALUES (:job_number, :seq, :text, 'BRIDGE', 0)";
    std::fs::write(
        v1.join("notes.toml"),
        format!(
            r#"source = "legacy"

[[route]]
id = "addNote"
method = "POST"
path = "/jobs/{{job_number}}/notes/{{seq}}"
public = true
params.job_number = "integer"
params.seq = "integer"
body.text = {{ type = "string", max_length = 60 }}
sql = "{insert}"

[route.mirror]
source = "newdb"
sql = "{insert}"
dedup_table = "PATINA.DELIVERED"
retry = {{ base = "100ms", cap = "300ms" }}
"#
        ),
    )
    .expect("mapping");
    let cfg = dir.path().join("patina.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nmappings = \"mappings\"\n[state]\ndir = \"state\"\n\n\
             [sources.legacy]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"{}\"\n\n\
             [sources.newdb]\nkind = \"odbc\"\ndialect = \"postgres\"\nconnection_string = \"{newdb}\"\n\
             pool = {{ max = 2, breaker_cooldown = \"200ms\" }}\n",
            legacy.connection_string
        ),
    )
    .expect("config");
    let gw = Gateway::from_config(&cfg);
    let count = |db: &common::TestDb| {
        common::query_db(
            db,
            &format!("SELECT COUNT(*) FROM JOBNOTE WHERE JOBNO = 100001 AND NOTSQ = {seq}"),
        )[0][0]
            .clone()
    };
    // The new database is away: the write commits on the legacy one all the same.
    proxy.cut();
    let r = gw.send(
        reqwest::Method::POST,
        &format!("/v1/jobs/100001/notes/{seq}"),
        &[("content-type", "application/json")],
        Some(r#"{"text":"mirrored while the new database was down"}"#),
    );
    assert!(
        r.status == 204 || r.status == 201,
        "{} {}",
        r.status,
        r.text
    );
    assert_eq!(count(&legacy).as_deref(), Some("1"));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(count(&pg).as_deref(), Some("0"), "the new database is away");
    let metrics = gw.anonymous("/metrics").text;
    assert!(
        metrics.contains("patina_deliveries_total{route=\"addNote#mirror\",outcome=\"retried\"}"),
        "{metrics}"
    );
    // It comes back: the mirrored write arrives, once.
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&pg).as_deref() != Some("1") {
        assert!(
            Instant::now() < deadline,
            "the mirrored write never arrived"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&pg).as_deref(), Some("1"), "exactly once");
    let metrics = gw.anonymous("/metrics").text;
    assert!(
        metrics
            .contains("patina_deliveries_total{route=\"addNote#mirror\",outcome=\"delivered\"} 1"),
        "{metrics}"
    );
    common::query_db(
        &pg,
        &format!("DELETE FROM JOBNOTE WHERE JOBNO = 100001 AND NOTSQ = {seq} AND NOTBY = 'BRIDGE'"),
    );
}
