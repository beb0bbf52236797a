//! The demo mappings served over HTTP against real ODBC drivers: SQLite and PostgreSQL. Each
//! check runs once per backend.

mod common;

use common::{Gateway, TestDb, assert_no_leak};
use serde_json::json;

common::on_both!(
    one_job_decodes_every_codec,
    decimals_keep_every_digit,
    unicode_and_sql_text_are_data,
    injection_attempts_are_bound_values,
    one_row_miss_is_404,
    bad_and_unknown_parameters_are_400,
    list_envelope_filters_and_row_cap,
    an_unpaged_list_cut_at_its_row_cap_says_so,
    legacy_dates_times_and_sentinels,
    customers_money_iso_dates_and_nulls,
    request_ids_and_methods,
    values_beyond_the_column_type_are_client_errors,
);

fn one_job_decodes_every_codec(db: &TestDb) {
    let gw = Gateway::demo(db);
    let r = gw.get("/v1/jobs/100001");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["job_number"], 100_001);
    assert_eq!(
        j["description"], "WIDGET BRACKET, ZINC PLATED",
        "trailing CHAR padding trimmed"
    );
    assert_eq!(j["customer_number"], 1001);
    assert_eq!(j["status"], "released", "code letter R → word");
    assert_eq!(j["rush"], false, "legacy flag N → false");
    assert_eq!(j["plant"], "CLE");
    assert_eq!(j["ordered_on"], "2024-01-05", "CYYMMDD 1240105");
    assert_eq!(j["due_on"], "2024-02-15");
    assert_eq!(j["completed_on"], json!(null), "0 means no date");
    let keys: Vec<&str> = j
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "job_number",
            "description",
            "customer_number",
            "status",
            "rush",
            "plant",
            "ordered_on",
            "due_on",
            "completed_on",
            "quantity_ordered",
            "quantity_completed",
            "unit_price"
        ],
        "fields in SELECT order, renamed"
    );
    let rush = gw.get("/v1/jobs/100002").json();
    assert_eq!(rush["rush"], true);
    assert_eq!(rush["ordered_on"], "1998-12-30", "century digit 0 is 19xx");
}

fn decimals_keep_every_digit(db: &TestDb) {
    let gw = Gateway::demo(db);
    let t = gw.get("/v1/jobs/100001").text;
    // Checked on the raw text: a JSON parser would round these to doubles.
    assert!(t.contains("\"unit_price\":123456789012.345678"), "{t}");
    assert!(t.contains("\"quantity_ordered\":1250.500"), "{t}");
    assert!(t.contains("\"quantity_completed\":300.000"), "{t}");
    let t = gw.get("/v1/jobs/100004").text;
    assert!(t.contains("\"unit_price\":999999999999999.999999"), "{t}");
    let t = gw.get("/v1/jobs/100002").text;
    assert!(t.contains("\"unit_price\":0.000001"), "{t}");
}

fn unicode_and_sql_text_are_data(db: &TestDb) {
    let gw = Gateway::demo(db);
    assert_eq!(
        gw.get("/v1/jobs/100002").json()["description"],
        "HOUSING — ÉTÉ SERIES ✓ 日本"
    );
    assert_eq!(
        gw.get("/v1/jobs/100003").json()["description"],
        "SHAFT'; DROP TABLE JOBMST;--"
    );
    let found = gw.get("/v1/customers?name=b%C3%A4ckerei");
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.json()["data"][0]["name"], "Bäckerei Müller GmbH");
    let quote = gw.get("/v1/customers?name=O%27NEIL");
    assert_eq!(quote.json()["data"][0]["customer_number"], 1003);
}

fn injection_attempts_are_bound_values(db: &TestDb) {
    let gw = Gateway::demo(db);
    // In a typed path parameter: refused before any SQL runs.
    let r = gw.get("/v1/jobs/1%20OR%201=1");
    let p = r.problem(400, "invalid-parameters");
    assert_eq!(p["errors"][0]["name"], "job_number");
    assert_no_leak(&r.text);
    // In a string parameter: bound as a value, so it matches nothing and changes nothing.
    // LIKE wildcards in a `like` parameter stand for themselves: `%` does not list everyone.
    for evil in [
        "%27%3B%20DROP%20TABLE%20JOBMST%3B--",
        "x%27%20OR%20%271%27%3D%271",
        "%25",
        "_",
        "ACME%25",
        "%5BA%5D",
        "!",
        "1%20OR%201%3D1",
    ] {
        let r = gw.get(&format!("/v1/customers?name={evil}"));
        assert_eq!(r.status, 200, "{}", r.text);
        let rows = r.json()["data"].as_array().expect("data").len();
        assert_eq!(rows, 0, "{evil} matched {rows} rows");
    }
    assert_eq!(
        gw.get("/v1/customers?name=ACME").json()["data"][0]["customer_number"],
        1001
    );
    // A code parameter accepts only its words.
    let r = gw.get("/v1/jobs?status=R%27%20OR%20%271%27%3D%271");
    r.problem(400, "invalid-parameters");
    // The tables are still there.
    assert_eq!(gw.get("/v1/jobs/100001").status, 200);
    assert_eq!(gw.get("/v1/customers/1001").status, 200);
}

fn one_row_miss_is_404(db: &TestDb) {
    let gw = Gateway::demo(db);
    let r = gw.get("/v1/jobs/999999");
    let p = r.problem(404, "not-found");
    assert_eq!(p["instance"], "/v1/jobs/999999");
    let r = gw.get("/v1/nothing/here");
    r.problem(404, "not-found");
    let r = gw.get("/v9/jobs/100001");
    r.problem(404, "not-found");
}

fn bad_and_unknown_parameters_are_400(db: &TestDb) {
    let gw = Gateway::demo(db);
    let r = gw.get("/v1/jobs?status=bogus&plant=cle&due_from=2024-02-30&top=5&rush=maybe");
    let p = r.problem(400, "invalid-parameters");
    let mut errors: Vec<(String, String)> = p["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            assert_eq!(e["in"], "query");
            assert!(e["detail"].as_str().is_some_and(|d| !d.is_empty()));
            (
                e["name"].as_str().expect("name").to_string(),
                e["detail"].as_str().expect("d").to_string(),
            )
        })
        .collect();
    errors.sort();
    let names: Vec<&str> = errors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["due_from", "plant", "rush", "status", "top"],
        "{}",
        r.text
    );
    assert!(errors[4].1.contains("not a parameter"), "{errors:?}");
    assert!(
        errors[3].1.contains("released"),
        "lists the allowed words: {errors:?}"
    );
    let r = gw.get("/v1/jobs/0");
    let p = r.problem(400, "invalid-parameters");
    assert_eq!(p["errors"][0]["detail"], "must be at least 1");
    let r = gw.get("/v1/jobs?status=released&status=on_hold");
    let p = r.problem(400, "invalid-parameters");
    assert_eq!(p["errors"][0]["detail"], "is given more than once");
    let r = gw.get("/v1/customers?name=%FF");
    r.problem(400, "invalid-parameters");
    let long = "A".repeat(31);
    let r = gw.get(&format!("/v1/customers?name={long}"));
    r.problem(400, "invalid-parameters");
}

fn list_envelope_filters_and_row_cap(db: &TestDb) {
    let gw = Gateway::demo(db);
    let all = gw.get("/v1/jobs").json();
    assert!(
        all["next"].is_string(),
        "more than a page of jobs: {}",
        all["next"]
    );
    assert_eq!(
        all["data"].as_array().expect("data").len(),
        100,
        "a page holds page.size rows"
    );
    let r = gw.get("/v1/jobs?status=on_hold&plant=CLE");
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.json()["data"].as_array().expect("data").clone();
    assert!(rows.len() >= 2, "{rows:?}");
    for row in &rows {
        assert_eq!(row["status"], "on_hold");
        assert_eq!(row["plant"], "CLE");
    }
    assert_eq!(rows[0]["job_number"], 100_003, "ordered by job number");
    // ISO dates in, CYYMMDD bound: only jobs due in January 1999.
    let r = gw.get("/v1/jobs?due_from=1999-01-01&due_to=1999-01-31");
    let rows = r.json()["data"].as_array().expect("data").clone();
    assert!(!rows.is_empty(), "{}", r.text);
    for row in &rows {
        let d = row["due_on"].as_str().expect("date");
        assert!(("1999-01-01"..="1999-01-31").contains(&d), "{d}");
    }
    let rush = gw.get("/v1/jobs?rush=true").json();
    let rows = rush["data"].as_array().expect("data");
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["rush"] == true));
    let empty = gw.get("/v1/customers?name=zzz").json();
    assert_eq!(empty, json!({"data": [], "next": null}));
}

/// An unpaged list holds at most `max_rows` rows; when it had more, the envelope says
/// `"truncated": true` (its `next` is null either way); a list within its cap does not.
fn an_unpaged_list_cut_at_its_row_cap_says_so(db: &TestDb) {
    let mapping = "source = \"demo\"\n[[route]]\nid = \"few\"\npath = \"/few\"\npublic = true\n\
                   max_rows = 3\nsql = \"SELECT JOBNO FROM JOBMST WHERE JOBNO >= :from ORDER BY JOBNO\"\n\
                   params.from = \"integer\"\ncolumns.JOBNO = { name = \"job_number\", type = \"integer\" }\n";
    let gw = common::with_mapping(db, mapping, "");
    let cut = gw.get("/v1/few?from=1").json();
    assert_eq!(cut["data"].as_array().expect("data").len(), 3, "{cut}");
    assert_eq!(cut["truncated"], true, "{cut}");
    assert_eq!(cut["next"], serde_json::Value::Null, "{cut}");
    // Exactly three rows left: all of them, not cut.
    let last: Vec<i64> = query_col(db, "SELECT JOBNO FROM JOBMST ORDER BY JOBNO DESC");
    let whole = gw.get(&format!("/v1/few?from={}", last[2])).json();
    assert_eq!(whole["data"].as_array().expect("data").len(), 3, "{whole}");
    assert!(whole.get("truncated").is_none(), "{whole}");
}

fn query_col(db: &TestDb, sql: &str) -> Vec<i64> {
    common::query_db(db, sql)
        .into_iter()
        .filter_map(|r| r.first().cloned().flatten()?.parse().ok())
        .collect()
}

fn legacy_dates_times_and_sentinels(db: &TestDb) {
    let gw = Gateway::demo(db);
    let r = gw.get("/v1/jobs/100001/operations");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("\"standard_hours\":4.25"), "{}", r.text);
    assert!(r.text.contains("\"actual_hours\":0.00"), "{}", r.text);
    let ops = r.json()["data"].as_array().expect("data").clone();
    assert_eq!(ops.len(), 3);
    assert_eq!(ops[0]["sequence"], 10);
    assert_eq!(ops[0]["work_center"], "SAW01");
    assert_eq!(ops[0]["status"], "done");
    assert_eq!(ops[0]["started_at"], "06:15:00", "HHMMSS 61500");
    assert_eq!(ops[1]["started_at"], "09:30:00");
    assert_eq!(ops[0]["last_activity_on"], "2024-01-08", "YYYYMMDD");
    assert_eq!(ops[2]["last_activity_on"], json!(null), "0 is no date");
    let leap = gw.get("/v1/jobs/100004").json();
    assert_eq!(leap["ordered_on"], "2000-02-29");
    assert_eq!(leap["status"], "cancelled");
    let none = gw.get("/v1/jobs/999/operations").json();
    assert_eq!(none, json!({"data": [], "next": null}));
}

fn customers_money_iso_dates_and_nulls(db: &TestDb) {
    let gw = Gateway::demo(db);
    let r = gw.get("/v1/customers/1002");
    assert_eq!(r.status, 200, "{}", r.text);
    let c = r.json();
    assert_eq!(
        c["credit_limit"], "5000.50",
        "decimal as a string, padded to scale"
    );
    assert_eq!(c["customer_since"], "2001-06-15");
    assert_eq!(c["last_updated_on"], "2023-11-20", "a real DATE column");
    assert_eq!(c["status"], "credit_hold");
    let c = gw.get("/v1/customers/1001").json();
    assert_eq!(c["credit_limit"], "25000.00");
    assert_eq!(c["customer_since"], "1985-03-12");
    let c = gw.get("/v1/customers/1003").json();
    assert_eq!(c["customer_since"], json!(null));
    assert_eq!(c["last_updated_on"], json!(null), "SQL NULL");
    assert_eq!(c["credit_limit"], "0.00");
    let jobs = gw.get("/v1/customers/1001/jobs").json();
    let nums: Vec<i64> = jobs["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|j| j["job_number"].as_i64().expect("int"))
        .collect();
    assert_eq!(nums, [100_003, 100_001], "newest order first");
}

fn request_ids_and_methods(db: &TestDb) {
    let gw = Gateway::demo(db);
    let r = gw.request(
        reqwest::Method::GET,
        "/v1/jobs/100001",
        &[("X-Request-Id", "abc-123")],
    );
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    let r = gw.get("/v1/jobs/999999");
    let id = r.header("x-request-id").expect("generated").to_string();
    assert_eq!(id.len(), 36);
    assert_eq!(r.json()["request_id"], id);
    let r = gw.request(
        reqwest::Method::GET,
        "/v1/jobs/1",
        &[("X-Request-Id", "bad id with spaces")],
    );
    assert_ne!(r.header("x-request-id"), Some("bad id with spaces"));
    let r = gw.request(reqwest::Method::POST, "/v1/jobs", &[]);
    r.problem(405, "method-not-allowed");
    assert_eq!(r.header("allow"), Some("GET"));
    let h = gw.get("/healthz");
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "ok");
}

mod robustness {
    use super::common::{self, Gateway};
    use std::io::{Read as _, Write as _};

    /// Raw HTTP, so malformed requests reach the server as they are.
    fn raw(gw: &Gateway, request: &[u8]) -> String {
        let addr = gw.base.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(request).expect("send");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn malformed_requests_get_client_errors_and_the_gateway_keeps_serving() {
        let gw = Gateway::demo(&common::sqlite());
        let long = "a".repeat(20_000);
        let requests: Vec<Vec<u8>> = vec![
            b"GET /v1/jobs/%ZZ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            b"GET /v1/jobs/%C3%28 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            b"GET /v1/jobs?status=%ZZ&&&=&status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                .to_vec(),
            format!("GET /v1/jobs?name={long} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .into_bytes(),
            format!("GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: {long}{long}\r\nConnection: close\r\n\r\n")
                .into_bytes(),
            b"GET /v1/jobs/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"
                .to_vec(),
            b"GARBAGE\r\n\r\n".to_vec(),
            b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ];
        for r in &requests {
            let res = raw(&gw, r);
            let status: u16 = res
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(400);
            assert!(
                (400..500).contains(&status),
                "{status} for {:?}",
                String::from_utf8_lossy(&r[..r.len().min(80)])
            );
            assert!(!res.contains("SELECT") && !res.contains("ODBC"));
        }
        assert_eq!(gw.get("/v1/jobs/100001").status, 200, "still serving");
    }

    #[test]
    fn head_requests_answer_without_a_body() {
        let gw = Gateway::demo(&common::sqlite());
        let r = gw.request(reqwest::Method::HEAD, "/v1/jobs/100001", &[]);
        assert_eq!(r.status, 200);
        assert!(r.text.is_empty());
        assert!(r.header("etag").is_some());
    }
}

/// An integer the database's parameter type cannot hold is the caller's mistake: a 400 that
/// names the parameter (the type is learned when the statement is prepared), never a 500. A
/// value the database refuses all the same (SQLSTATE class 22) is a 400 too.
fn values_beyond_the_column_type_are_client_errors(db: &TestDb) {
    let mapping = "source = \"demo\"\n\
        [[route]]\nid = \"big\"\npath = \"/big/{n}\"\npublic = true\none = true\n\
        sql = \"SELECT JOBNO FROM JOBMST WHERE CAST(JOBNO AS INTEGER) = :n\"\n\
        params.n = \"integer\"\n\
        [[route]]\nid = \"cast\"\npath = \"/cast\"\npublic = true\n\
        sql = \"SELECT JOBNO FROM JOBMST WHERE JOBNO = CAST(:s AS INTEGER)\"\n\
        params.s = { type = \"string\", required = true }\n";
    let gw = common::with_mapping(db, mapping, "");
    assert_eq!(gw.get("/v1/big/100001").status, 200);
    for huge in ["9223372036854775806", "2147483648", "-2147483649"] {
        let r = gw.get(&format!("/v1/big/{huge}"));
        assert_ne!(r.status, 500, "{}", r.text);
        assert_no_leak(&r.text);
        if db.dialect == "postgres" {
            let p = r.problem(400, "invalid-parameters");
            assert_eq!(p["errors"][0]["name"], "n", "{}", r.text);
            assert_eq!(p["errors"][0]["in"], "path", "{}", r.text);
            assert!(
                p["errors"][0]["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("2147483647")),
                "{}",
                r.text
            );
        } else {
            // SQLite's INTEGER holds 64 bits: no such job, and no error.
            assert_eq!(r.status, 404, "{}", r.text);
        }
    }
    for bad in ["99999999999", "abc"] {
        let r = gw.get(&format!("/v1/cast?s={bad}"));
        assert_ne!(r.status, 500, "{}", r.text);
        assert_no_leak(&r.text);
        if db.dialect == "postgres" {
            r.problem(400, "value-refused");
        }
    }
    assert_eq!(gw.get("/healthz").status, 200);
}
