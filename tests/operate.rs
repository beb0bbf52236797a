//! Operating the gateway: hot reload of mapping files (a broken file never breaks serving),
//! `/readyz`, `/metrics`, `Server-Timing`.

mod common;

use std::time::{Duration, Instant};

use common::{Gateway, TestDb};

const GOOD: &str = "source = \"demo\"\n[[route]]\nid = \"one\"\npath = \"/one/{n}\"\npublic = true\none = true\nsql = \"SELECT JOBNO FROM JOBMST WHERE JOBNO = :n\"\nparams.n = \"integer\"\ncolumns.JOBNO = { name = \"job_number\", type = \"integer\" }\n";

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_broken_mapping_is_refused_and_a_fixed_one_served() {
    let gw = common::with_mapping(&common::sqlite(), GOOD, "");
    let file = gw.dir.join("mappings/v1/t.toml");
    assert_eq!(gw.get("/v1/one/100001").status, 200);
    // Clients keep calling while the DBA edits.
    let base = gw.base.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = std::sync::Arc::clone(&stop);
    let load = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::new();
        let mut statuses = Vec::new();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let s = client
                .get(format!("{base}/v1/one/100001"))
                .send()
                .map_or(0, |r| r.status().as_u16());
            statuses.push(s);
        }
        statuses
    });
    // A typo and an unknown column type: refused, old catalog kept.
    std::fs::write(
        &file,
        GOOD.replace("one = true", "one = tru")
            .replace("\"integer\" }", "\"integr\" }"),
    )
    .expect("write broken");
    wait_for("the refusal in /readyz", || {
        gw.get("/readyz").json()["mappings"]["last_error"].is_string()
    });
    let ready = gw.get("/readyz").json();
    let why = ready["mappings"]["last_error"].as_str().expect("error");
    assert!(why.contains("mappings/v1/t.toml:6:"), "{why}");
    assert_eq!(
        gw.get("/v1/one/100001").status,
        200,
        "still the previous catalog"
    );
    // Fixed, with a new route.
    let fixed = format!(
        "{GOOD}\n[[route]]\nid = \"two\"\npath = \"/two\"\npublic = true\nsql = \"SELECT COUNT(*) AS N FROM JOBMST\"\n"
    );
    std::fs::write(&file, fixed).expect("write fixed");
    wait_for("the new route", || gw.get("/v1/two").status == 200);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = load.join().expect("load thread");
    assert!(statuses.len() > 10, "{}", statuses.len());
    assert!(
        statuses.iter().all(|s| *s == 200),
        "a request failed during reloads: {statuses:?}"
    );
    let ready = gw.get("/readyz").json();
    assert!(ready["mappings"]["last_error"].is_null(), "{ready}");
    assert!(ready["mappings"]["generation"].as_u64() >= Some(1));
    assert_eq!(ready["mappings"]["routes"], 2);
    let doc = gw.get("/openapi/v1.json").json();
    assert!(
        doc["paths"]["/v1/two"].is_object(),
        "the documents follow the swap"
    );
    let metrics = gw.get("/metrics").text;
    assert!(
        metrics.contains("patina_reloads_total{outcome=\"failed\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("patina_reloads_total{outcome=\"ok\"} 0"),
        "{metrics}"
    );
}

#[test]
fn readyz_reports_each_source() {
    let gw = Gateway::demo(&common::sqlite());
    let r = gw.get("/readyz");
    assert_eq!(r.status, 200, "{}", r.text);
    let j = r.json();
    assert_eq!(j["status"], "ready");
    assert_eq!(j["sources"]["demo"], "ok");
    let down = TestDb {
        connection_string: "Driver={SQLite3};Database=/nonexistent-dir/x.db;NoCreat=1".into(),
        dialect: "sqlite",
    };
    let gw = common::with_mapping(&down, GOOD, "");
    let r = gw.get("/readyz");
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json()["sources"]["demo"], "unreachable");
    assert_eq!(gw.get("/healthz").status, 200, "alive all the same");
}

#[test]
fn metrics_and_server_timing() {
    let gw = Gateway::demo(&common::sqlite());
    for _ in 0..3 {
        let r = gw.get("/v1/jobs/100001");
        assert_eq!(r.status, 200);
        let timing = r
            .header("server-timing")
            .expect("Server-Timing")
            .to_string();
        for stage in [
            "auth;dur=",
            "acquire;dur=",
            "query;",
            "encode;dur=",
            "total;dur=",
        ] {
            assert!(timing.contains(stage), "{timing}");
        }
    }
    assert_eq!(gw.get("/v1/jobs/999999").status, 404);
    let m = gw.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    for line in [
        "patina_requests_total{route=\"getJob\",status=\"200\"} 3",
        "patina_requests_total{route=\"getJob\",status=\"404\"} 1",
        "patina_request_duration_seconds_count{route=\"getJob\"} 4",
        "patina_query_duration_seconds_count{source=\"demo\"} 4",
        "patina_pool_connections{source=\"demo\",state=\"in_use\"} 0",
        "patina_rate_limited_total 0",
        "patina_routes 18",
    ] {
        assert!(m.text.contains(line), "missing `{line}` in:\n{}", m.text);
    }
}

#[test]
fn a_reload_never_serves_a_response_cached_under_the_old_mapping() {
    let cached = |sql: &str| {
        format!(
            "source = \"demo\"\n[[route]]\nid = \"c\"\npath = \"/c\"\npublic = true\none = true\ncache = \"30m\"\nsql = \"{sql}\"\n"
        )
    };
    let gw = common::with_mapping(&common::sqlite(), &cached("SELECT 'old' AS V"), "");
    assert_eq!(gw.get("/v1/c").json()["v"], "old");
    assert_eq!(gw.get("/v1/c").json()["v"], "old", "from the cache");
    std::fs::write(
        gw.dir.join("mappings/v1/t.toml"),
        cached("SELECT 'new' AS V"),
    )
    .expect("write");
    wait_for("the reload", || {
        gw.get("/readyz").json()["mappings"]["generation"].as_u64() >= Some(1)
    });
    assert_eq!(gw.get("/v1/c").json()["v"], "new");
}

#[test]
fn the_document_learns_the_columns_of_a_reloaded_mapping() {
    let route = |sql: &str| {
        format!(
            "source = \"demo\"\n[[route]]\nid = \"t\"\npath = \"/t\"\npublic = true\nsql = \"{sql}\"\n"
        )
    };
    let gw = common::with_mapping(&common::sqlite(), &route("SELECT 1 AS A"), "");
    let has = |name: &str| {
        gw.get("/openapi/v1.json").json()["components"]["schemas"]["T"]["properties"][name]
            .is_object()
    };
    wait_for("the start-up check's columns", || has("a"));
    std::fs::write(
        gw.dir.join("mappings/v1/t.toml"),
        route("SELECT 1 AS A, 'x' AS B"),
    )
    .expect("write");
    wait_for("the reloaded route's columns", || has("b"));
    assert!(has("a"));
}
