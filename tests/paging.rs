//! Lists dashboards can use, through the real gateway over HTTP on SQLite-ODBC and
//! PostgreSQL-ODBC: keyset pages walked to the end on a view without a key, with many ties and
//! NULLs in the sort key, ascending and descending, under every allowed sort; rows inserted
//! during a walk; forged and borrowed cursors; field selection; counts; NDJSON and CSV exports.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Gateway, Options, TestDb, query_db};

const ROWS: i64 = 3000;

/// The rows a test starts from: id → (group, name, amount). Every fifth group is NULL; groups
/// repeat (7 values), names repeat (40 values, some with commas, quotes and line breaks).
fn expected() -> BTreeMap<i64, (Option<i64>, String, String)> {
    (1..=ROWS)
        .map(|i| {
            let group = (i % 5 != 0).then_some(i % 7);
            (i, (group, name_of(i), amount_of(i)))
        })
        .collect()
}

fn name_of(i: i64) -> String {
    match i % 40 {
        0 => "comma, \"quoted\"".to_string(),
        1 => "two\nlines".to_string(),
        n => format!("name {n:02}"),
    }
}

fn amount_of(i: i64) -> String {
    format!("{}.{:02}", i % 90, i % 100)
}

/// A table and a view over it (no key) named for this test, filled with [`expected`].
fn fill(db: &TestDb, tag: &str) -> String {
    let table = format!("PAGET_{tag}");
    let view = format!("PAGEV_{tag}");
    query_db(db, &format!("DROP VIEW IF EXISTS {view}"));
    query_db(db, &format!("DROP TABLE IF EXISTS {table}"));
    query_db(
        db,
        &format!(
            "CREATE TABLE {table} (ID INTEGER NOT NULL, GRP INTEGER, NAME VARCHAR(20) NOT NULL, AMT NUMERIC(9,2) NOT NULL)"
        ),
    );
    let values: Vec<String> = expected()
        .iter()
        .map(|(id, (g, n, a))| {
            format!(
                "({id}, {}, '{}', {a})",
                g.map_or("NULL".to_string(), |g| g.to_string()),
                n.replace('\'', "''")
            )
        })
        .collect();
    for chunk in values.chunks(500) {
        query_db(
            db,
            &format!(
                "INSERT INTO {table} (ID, GRP, NAME, AMT) VALUES {}",
                chunk.join(", ")
            ),
        );
    }
    query_db(
        db,
        &format!("CREATE VIEW {view} AS SELECT ID, GRP, NAME, AMT FROM {table}"),
    );
    table
}

fn mapping(tag: &str) -> String {
    format!(
        r#"source = "demo"

[[route]]
id = "listThings"
path = "/things"
public = true
sql = "SELECT ID, GRP, NAME, AMT FROM PAGEV_{tag} WHERE (CAST(:min_id AS INTEGER) IS NULL OR ID >= :min_id)"
params.min_id = {{ type = "integer" }}
page = {{ by = ["GRP", "ID"], size = 100, max = 1000 }}
sort = ["group", "id", "name", "amount"]
export = {{ max_rows = 2500 }}
columns.ID = {{ name = "id", type = "integer", nullable = false }}
columns.GRP = {{ name = "group", type = "integer" }}
columns.NAME = {{ name = "name", type = "string" }}
columns.AMT = {{ name = "amount", type = "decimal", scale = 2 }}

[[route]]
id = "listThingsAgain"
path = "/things-again"
public = true
sql = "SELECT ID, GRP, NAME, AMT FROM PAGEV_{tag} WHERE (CAST(:min_id AS INTEGER) IS NULL OR ID >= :min_id)"
params.min_id = {{ type = "integer" }}
page = {{ by = ["GRP", "ID"], size = 100, max = 1000 }}
count = false
columns.ID = {{ name = "id", type = "integer", nullable = false }}
columns.GRP = {{ name = "group", type = "integer" }}
columns.NAME = {{ name = "name", type = "string" }}
columns.AMT = {{ name = "amount", type = "decimal", scale = 2 }}
"#
    )
}

fn gateway(db: &TestDb, tag: &str) -> Gateway {
    fill(db, tag);
    let text = mapping(tag);
    let files = [("v1/things.toml", text.as_str())];
    Gateway::start(
        db,
        &Options {
            mappings: Some(&files),
            ..Options::default()
        },
    )
}

/// Follow `next` from `first` to the last page; every row in the order served, and the pages.
fn walk(gw: &Gateway, first: &str) -> (Vec<serde_json::Value>, usize) {
    let mut rows = Vec::new();
    let mut path = first.to_string();
    let mut pages = 0;
    loop {
        let res = gw.anonymous(&path);
        assert_eq!(res.status, 200, "{path}: {}", res.text);
        let body = res.json();
        pages += 1;
        rows.extend(body["data"].as_array().expect("data").iter().cloned());
        match body["next"].as_str() {
            Some(c) => {
                let link = res.header("link").expect("a Link header beside next");
                assert!(link.ends_with("; rel=\"next\""), "{link}");
                assert!(link.contains(&format!("cursor={c}")), "{link}");
                path = link[1..link.find('>').expect("<uri>")].to_string();
            }
            None => {
                assert!(res.header("link").is_none());
                break;
            }
        }
        assert!(pages < 10_000, "the walk does not end");
    }
    (rows, pages)
}

fn ids(rows: &[serde_json::Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().expect("id")).collect()
}

/// Group order with NULL after every value (ascending).
fn group_key(g: Option<i64>, descending: bool) -> (bool, i64) {
    match (g, descending) {
        (None, false) => (true, 0),
        (Some(v), false) => (false, v),
        (None, true) => (false, 0),
        (Some(v), true) => (true, -v),
    }
}

fn walks_every_row_once_in_key_order(db: &TestDb) {
    let gw = gateway(db, &format!("walk_{}", db.dialect));
    let want = expected();
    // The default order: group ascending (NULLs last), then id.
    let (rows, pages) = walk(&gw, "/v1/things");
    assert_eq!(pages, 30);
    let mut order: Vec<i64> = want.keys().copied().collect();
    order.sort_by_key(|id| (group_key(want[id].0, false), *id));
    assert_eq!(ids(&rows), order, "every row once, in (group, id) order");
    assert_eq!(rows[0]["id"], 7, "the first of group 0");
    // Descending group: the NULLs first, then 6, 5, …; ties by id ascending.
    let (rows, _) = walk(&gw, "/v1/things?sort=-group&limit=77");
    order.sort_by_key(|id| (group_key(want[id].0, true), *id));
    assert_eq!(ids(&rows), order);
    // Sorted by a text field with many ties, and by an exact decimal, descending.
    for (sort, key) in [
        (
            "name",
            Box::new(|id: &i64| (want[id].1.clone(), group_key(want[id].0, false), *id))
                as Box<dyn Fn(&i64) -> (String, (bool, i64), i64)>,
        ),
        (
            "-amount,id",
            Box::new(|id: &i64| {
                let cents: i64 = want[id].2.replace('.', "").parse().expect("cents");
                (format!("{:012}", 999_999_999 - cents), (false, 0), *id)
            }),
        ),
    ] {
        let (rows, _) = walk(&gw, &format!("/v1/things?sort={sort}&limit=250"));
        let mut order: Vec<i64> = want.keys().copied().collect();
        order.sort_by_key(|id| key(id));
        assert_eq!(ids(&rows), order, "sort={sort}");
    }
    // A filter keeps its place across pages.
    let (rows, _) = walk(&gw, "/v1/things?min_id=2900&limit=7");
    assert_eq!(rows.len(), 101);
    assert!(ids(&rows).iter().all(|&i| i >= 2900));
}

fn rows_inserted_during_a_walk_cause_no_repeat_or_skip(db: &TestDb) {
    let tag = format!("ins_{}", db.dialect);
    let gw = gateway(db, &tag);
    let mut seen: Vec<i64> = Vec::new();
    let mut path = "/v1/things?limit=200".to_string();
    let mut pages = 0;
    loop {
        let body = gw.anonymous(&path).json();
        seen.extend(ids(body["data"].as_array().expect("data")));
        pages += 1;
        if pages == 3 {
            // New rows everywhere in the order: before the cursor, after it, and NULL groups.
            let values: Vec<String> = (0..60)
                .map(|k| {
                    let id = 10_000 + k;
                    let group = if k % 3 == 0 {
                        "NULL".to_string()
                    } else {
                        (k % 7).to_string()
                    };
                    format!("({id}, {group}, 'new', 1.00)")
                })
                .collect();
            query_db(
                db,
                &format!(
                    "INSERT INTO PAGET_{tag} (ID, GRP, NAME, AMT) VALUES {}",
                    values.join(", ")
                ),
            );
        }
        match body["next"].as_str() {
            Some(c) => path = format!("/v1/things?limit=200&cursor={c}"),
            None => break,
        }
    }
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no row served twice");
    for id in 1..=ROWS {
        assert!(
            unique.contains(&id),
            "row {id} that existed before the walk was skipped"
        );
    }
}

fn cursors_cannot_be_forged_or_borrowed(db: &TestDb) {
    let gw = gateway(db, &format!("cur_{}", db.dialect));
    let body = gw.anonymous("/v1/things?sort=name&min_id=10").json();
    let cursor = body["next"].as_str().expect("a next page").to_string();
    assert_eq!(
        gw.anonymous(&format!("/v1/things?sort=name&min_id=10&cursor={cursor}"))
            .status,
        200
    );
    let mut tampered = cursor.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    for path in [
        format!("/v1/things?sort=name&min_id=10&cursor={tampered}"),
        format!("/v1/things?sort=-name&min_id=10&cursor={cursor}"),
        format!("/v1/things?sort=name&min_id=11&cursor={cursor}"),
        format!("/v1/things?min_id=10&cursor={cursor}"),
        format!("/v1/things-again?min_id=10&cursor={cursor}"),
        "/v1/things?cursor=not-a-cursor".to_string(),
        "/v1/things?cursor=".to_string(),
    ] {
        let p = gw.anonymous(&path).problem(400, "invalid-parameters");
        assert_eq!(p["errors"][0]["name"], "cursor", "{path}");
    }
    // The other controls are checked too, all problems at once.
    let p = gw
        .anonymous("/v1/things?limit=1001&sort=nope&fields=id,secret&count=maybe&format=xml&x=1")
        .problem(400, "invalid-parameters");
    let names: Vec<&str> = p["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["limit", "sort", "fields", "count", "format", "x"],
        "{p}"
    );
    assert!(
        p["errors"][1]["detail"]
            .as_str()
            .expect("detail")
            .contains("group, id, name, amount")
    );
    // A route without sort does not take `sort`.
    gw.anonymous("/v1/things-again?sort=id")
        .problem(400, "invalid-parameters");
}

fn fields_counts_and_exports(db: &TestDb) {
    let gw = gateway(db, &format!("fx_{}", db.dialect));
    // Only the chosen fields, and the paging still works (its keys are not among them).
    let body = gw.anonymous("/v1/things?fields=name,id&limit=3").json();
    let first = &body["data"][0];
    assert_eq!(first.as_object().expect("object").len(), 2, "{first}");
    assert!(first["id"].is_i64() && first["name"].is_string());
    let next = body["next"].as_str().expect("next");
    let body = gw
        .anonymous(&format!("/v1/things?fields=name,id&limit=3&cursor={next}"))
        .json();
    assert_eq!(body["data"].as_array().expect("data").len(), 3);

    // Counts on request, with the same filters; the header says it was applied.
    let res = gw.get_with("/v1/things?min_id=2001", &[("Prefer", "count=exact")]);
    assert_eq!(res.json()["total"], 1000, "{}", res.text);
    assert_eq!(res.header("preference-applied"), Some("count=exact"));
    assert_eq!(res.header("x-total-count"), Some("1000"));
    assert_eq!(gw.anonymous("/v1/things?count=exact").json()["total"], ROWS);
    let plain = gw.anonymous("/v1/things");
    assert!(plain.json().get("total").is_none());
    assert!(plain.header("preference-applied").is_none());
    // Where counts are off, the preference is not applied.
    let res = gw.get_with("/v1/things-again", &[("Prefer", "count=exact")]);
    assert!(res.json().get("total").is_none());

    // NDJSON: one object per line, in page order, the whole filtered list.
    let res = gw.get_with(
        "/v1/things?min_id=1001",
        &[("Accept", "application/x-ndjson")],
    );
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<serde_json::Value> = res
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let (walked, _) = walk(&gw, "/v1/things?min_id=1001&limit=1000");
    assert_eq!(
        lines, walked,
        "the export holds what the pages hold, in their order"
    );

    // CSV (RFC 4180): a header of public names, quoted fields where needed, exact decimals.
    let res = gw.get_with(
        "/v1/things?min_id=1001&format=csv&sort=id&fields=id,name,amount",
        &[],
    );
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(
        res.header("content-disposition")
            .expect("attachment")
            .contains("listThings.csv")
    );
    let records = parse_csv(&res.text);
    assert_eq!(records[0], ["id", "name", "amount"]);
    assert_eq!(records.len(), 2001);
    assert_eq!(records[1], ["1001", "two\nlines", "11.01"]);
    let quoted = records.iter().find(|r| r[0] == "1040").expect("row 1040");
    assert_eq!(quoted[1], "comma, \"quoted\"");
    assert!(
        res.text
            .starts_with("id,name,amount\r\n1001,\"two\nlines\",11.01\r\n"),
        "{}",
        &res.text[..60]
    );

    // Past the cap, the export ends as an error a client can tell: an NDJSON error line …
    let res = gw.get_with("/v1/things", &[("Accept", "application/x-ndjson")]);
    let last: serde_json::Value =
        serde_json::from_str(res.text.lines().last().expect("lines")).expect("JSON");
    assert_eq!(last["error"]["type"], "/problems/export-capped", "{last}");
    assert_eq!(res.text.lines().count(), 2501);
    // … and a CSV cut off without the end of the chunked body.
    let cut = reqwest::blocking::get(format!("{}/v1/things?format=csv", gw.base))
        .expect("response")
        .text();
    assert!(cut.is_err(), "a capped CSV export must not end cleanly");

    // A route without exports says what it offers.
    gw.get_with("/v1/things-again", &[("Accept", "text/csv")])
        .problem(406, "not-acceptable");
    assert_eq!(
        gw.get_with("/v1/things-again", &[("Accept", "text/html, */*;q=0.8")])
            .status,
        200
    );
}

/// RFC 4180 records.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (_, c) => field.push(c),
        }
    }
    records
}

common::on_both_writable!(
    walks_every_row_once_in_key_order,
    rows_inserted_during_a_walk_cause_no_repeat_or_skip,
    cursors_cannot_be_forged_or_borrowed,
    fields_counts_and_exports,
);

/// PostgreSQL only (SQLite has no sleep): a count past its budget leaves the page intact and
/// says so.
#[test]
fn a_count_past_its_budget_is_null_not_an_error() {
    let Some(db) = common::postgres() else { return };
    fill(&db, "slow");
    let text = r#"source = "demo"
[[route]]
id = "slowThings"
path = "/slow"
public = true
sql = "SELECT ID, GRP FROM PAGEV_slow WHERE pg_sleep(0.0005) IS NOT NULL"
page = { by = ["ID"], size = 10 }
count = "200ms"
columns.ID = { name = "id", type = "integer", nullable = false }
columns.GRP = { name = "group", type = "integer" }
"#;
    let files = [("v1/slow.toml", text)];
    let gw = Gateway::start(
        &db,
        &Options {
            mappings: Some(&files),
            ..Options::default()
        },
    );
    let res = gw.get_with("/v1/slow", &[("Prefer", "count=exact")]);
    assert_eq!(res.status, 200, "{}", res.text);
    let body = res.json();
    assert_eq!(body["data"].as_array().expect("data").len(), 10);
    assert!(body["total"].is_null(), "{body}");
    assert_eq!(res.header("x-count-status"), Some("timeout"));
    assert!(res.header("preference-applied").is_none());
}

/// PostgreSQL only: a client that goes away in the middle of an export stops the statement;
/// the one connection of the pool is free again at once, not after millions of rows.
#[test]
fn a_client_that_disconnects_stops_the_export() {
    use std::io::Read as _;
    let Some(pg) = common::postgres() else { return };
    // psqlODBC fetches in batches only with UseDeclareFetch (else it reads everything first).
    let db = TestDb {
        connection_string: format!("{};UseDeclareFetch=1;Fetch=2000", pg.connection_string),
        ..pg
    };
    let text = r#"source = "demo"
[[route]]
id = "huge"
path = "/huge"
public = true
sql = "SELECT g AS N, repeat('x', 60) AS PAD FROM generate_series(1, 30000000) AS g"
export = { max_rows = 100_000_000 }
columns.N = { name = "n", type = "integer", nullable = false }
columns.PAD = { name = "pad", type = "string" }

[[route]]
id = "one"
path = "/one"
public = true
one = true
sql = "SELECT 1 AS ONE"
"#;
    let files = [("v1/huge.toml", text)];
    let gw = Gateway::start(
        &db,
        &Options {
            source_extra: "pool = { max = 1, acquire_timeout = \"2s\" }",
            mappings: Some(&files),
            ..Options::default()
        },
    );
    let mut res = reqwest::blocking::Client::new()
        .get(format!("{}/v1/huge?format=ndjson", gw.base))
        .send()
        .expect("export starts");
    assert_eq!(res.status(), 200);
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    while got < buf.len() {
        got += res.read(&mut buf[got..]).expect("rows arrive");
    }
    assert!(String::from_utf8_lossy(&buf[..100]).starts_with("{\"n\":1,"));
    drop(res);
    // The pool's one connection serves the next request: the export let go of it.
    let started = std::time::Instant::now();
    loop {
        let r = gw.anonymous("/v1/one");
        if r.status == 200 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the export still holds the connection: {}",
            r.text
        );
    }
    // And the database runs nothing of it any more.
    let running = query_db(
        &db,
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%generate_' || 'series(1, 30000000)%' \
         OR query LIKE 'fetch%'",
    );
    assert_eq!(running[0][0].as_deref(), Some("0"), "{running:?}");
}
