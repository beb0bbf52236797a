//! Bad legacy data through the real gateway and `patina scan`, on SQLite-ODBC and
//! PostgreSQL-ODBC: one row of each kind of value no codec decodes (a February 29 that does
//! not exist, month 13, 24:00:00, a blank one-letter flag, letters in a number) beside good
//! rows. Under `on_invalid = "error"` the list fails as before; under `null` and `raw` it is
//! served with exactly the bad fields replaced, the header names them, the metric counts them;
//! the scan reports each bad row with its key and kind, and its exit code follows the policy.

mod common;

use common::{Gateway, Options, TestDb, query_db};

fn fill(db: &TestDb, tag: &str) {
    let t = format!("BADV_{tag}");
    query_db(db, &format!("DROP TABLE IF EXISTS {t}"));
    query_db(
        db,
        &format!(
            "CREATE TABLE {t} (ID INTEGER NOT NULL, DT NUMERIC(7,0) NOT NULL, TM NUMERIC(6,0) NOT NULL, \
             FLAG CHAR(1) NOT NULL, QTY CHAR(6) NOT NULL, PIN CHAR(6) NOT NULL)"
        ),
    );
    query_db(
        db,
        &format!(
            "INSERT INTO {t} (ID, DT, TM, FLAG, QTY, PIN) VALUES \
             (1, 1240105, 103000, 'Y', '12', '1234'), \
             (2, 1230229, 103000, 'N', '12', '1234'), \
             (3, 1241301, 103000, 'Y', '12', '1234'), \
             (4, 1240105, 240000, 'Y', '12', '1234'), \
             (5, 1240105, 103000, ' ', '12', '1234'), \
             (6, 1240105, 103000, 'Y', 'AB12', '1234'), \
             (7, 1240105, 103000, 'N', '7', 'XX99')"
        ),
    );
}

fn route(id: &str, path: &str, tag: &str, policy: &str) -> String {
    let p = if policy.is_empty() {
        String::new()
    } else {
        format!(", on_invalid = \"{policy}\"")
    };
    format!(
        r#"
[[route]]
id = "{id}"
path = "{path}"
public = true
key = ["ID"]
sql = "SELECT ID, DT, TM, FLAG, QTY, PIN FROM BADV_{tag}"
page = {{ by = ["ID"], size = 100 }}
columns.ID = {{ name = "id", type = "integer", nullable = false }}
columns.DT = {{ name = "due_on", type = "date", format = "cyymmdd"{p} }}
columns.TM = {{ name = "started_at", type = "time", format = "hhmmss"{p} }}
columns.FLAG = {{ name = "flag", codes = {{ Y = "yes", N = "no" }}, unknown_code = "error", trim = "end"{p} }}
columns.QTY = {{ name = "quantity", type = "integer", trim = true{p} }}
columns.PIN = {{ name = "pin", type = "integer", trim = true, sensitive = true{p} }}
"#
    )
}

fn mapping(tag: &str) -> String {
    format!(
        "source = \"demo\"\n{}{}{}",
        route("strictThings", "/strict", tag, ""),
        route("nullThings", "/nulls", tag, "null"),
        route("rawThings", "/raw", tag, "raw"),
    )
}

fn served_with_their_policy(db: &TestDb) {
    let tag = format!("srv_{}", db.dialect);
    fill(db, &tag);
    let text = mapping(&tag);
    let files = [("v1/bad.toml", text.as_str())];
    let gw = Gateway::start(
        db,
        &Options {
            mappings: Some(&files),
            ..Options::default()
        },
    );
    // error (the default): one bad row takes the list down, as before.
    gw.anonymous("/v1/strict").problem(500, "undecodable-value");
    // null: every row, exactly the bad fields null, and the header says which and how many.
    let res = gw.anonymous("/v1/nulls");
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.header("patina-invalid-fields"),
        Some("due_on=2, started_at=1, flag=1, quantity=1, pin=1")
    );
    let rows = res.json()["data"].as_array().expect("data").clone();
    assert_eq!(rows.len(), 7);
    let nulls: Vec<(i64, Vec<&str>)> = rows
        .iter()
        .map(|r| {
            let o = r.as_object().expect("object");
            let fields = o
                .iter()
                .filter(|(_, v)| v.is_null())
                .map(|(k, _)| k.as_str())
                .collect();
            (r["id"].as_i64().expect("id"), fields)
        })
        .collect();
    assert_eq!(
        nulls,
        [
            (1, vec![]),
            (2, vec!["due_on"]),
            (3, vec!["due_on"]),
            (4, vec!["started_at"]),
            (5, vec!["flag"]),
            (6, vec!["quantity"]),
            (7, vec!["pin"]),
        ]
    );
    assert_eq!(rows[0]["due_on"], "2024-01-05");
    assert_eq!(rows[0]["flag"], "yes");
    // raw: the stored text instead, trimmed as the column says.
    let res = gw.anonymous("/v1/raw");
    assert_eq!(res.status, 200, "{}", res.text);
    let rows = res.json()["data"].as_array().expect("data").clone();
    assert_eq!(rows[1]["due_on"], "1230229");
    assert_eq!(rows[2]["due_on"], "1241301");
    assert_eq!(rows[3]["started_at"], "240000");
    assert_eq!(rows[4]["flag"], "");
    assert_eq!(rows[5]["quantity"], "AB12");
    assert_eq!(
        rows[0]["started_at"], "10:30:00",
        "good values decode as ever"
    );
    // Counted per route, field and policy; the values themselves never reach the metrics.
    let metrics = gw.anonymous("/metrics").text;
    for line in [
        "patina_undecodable_values_total{route=\"nullThings\",field=\"due_on\",policy=\"null\"} 2",
        "patina_undecodable_values_total{route=\"rawThings\",field=\"quantity\",policy=\"raw\"} 1",
        "patina_undecodable_values_total{route=\"strictThings\",field=\"due_on\",policy=\"error\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }
    assert!(!metrics.contains("AB12") && !metrics.contains("XX99"));
    // The document says what may come: null where the policy serves null, the text for raw.
    let doc = gw.anonymous("/openapi/v1.json").json();
    let schemas = &doc["components"]["schemas"];
    let due = &schemas["NullThings"]["properties"]["due_on"];
    assert!(
        due["type"]
            .as_array()
            .is_some_and(|t| t.contains(&"null".into())),
        "{due}"
    );
    let raw = &schemas["RawThings"]["properties"]["quantity"];
    assert_eq!(raw["oneOf"][1]["type"], "string", "{raw}");
}

fn a_source_default_applies_where_columns_say_nothing(db: &TestDb) {
    let tag = format!("src_{}", db.dialect);
    fill(db, &tag);
    let text = format!(
        "source = \"demo\"\n{}",
        route("strictThings", "/strict", &tag, "")
    );
    let files = [("v1/bad.toml", text.as_str())];
    let gw = Gateway::start(
        db,
        &Options {
            mappings: Some(&files),
            source_extra: "pool = { max = 2 }\non_invalid = \"null\"",
            ..Options::default()
        },
    );
    let res = gw.anonymous("/v1/strict");
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.header("patina-invalid-fields").is_some());
}

fn scan_reports_every_bad_row_and_exits_by_policy(db: &TestDb) {
    let tag = format!("scan_{}", db.dialect);
    fill(db, &tag);
    let dir = tempfile::tempdir().expect("dir");
    let mappings = dir.path().join("mappings/v1");
    std::fs::create_dir_all(&mappings).expect("mkdir");
    std::fs::write(mappings.join("bad.toml"), mapping(&tag)).expect("mapping");
    std::fs::write(
        dir.path().join("patina.toml"),
        format!(
            "[sources.demo]\nkind = \"odbc\"\ndialect = \"{}\"\nconnection_string = \"{}\"\n",
            db.dialect,
            db.connection_string.replace('"', "\\\"")
        ),
    )
    .expect("config");
    let o = common::patina(
        &["scan", "--route", "strictThings", "--format", "json"],
        dir.path(),
    );
    assert_eq!(
        o.code,
        Some(1),
        "undecodable under `error`: {}{}",
        o.out,
        o.err
    );
    let report: serde_json::Value = serde_json::from_str(&o.out).expect("JSON report");
    let r = &report["routes"][0];
    assert_eq!(r["rows"], 7);
    assert_eq!(r["complete"], true);
    let col = |name: &str| {
        r["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .find(|c| {
                c["column"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .unwrap_or_else(|| panic!("no column {name}: {r}"))
            .clone()
    };
    let dt = col("DT");
    assert_eq!(dt["undecodable"], 2);
    assert_eq!(
        dt["kinds"],
        serde_json::json!({"impossible date": 1, "month out of range": 1})
    );
    assert_eq!(dt["examples"][0]["key"], "ID=2");
    assert_eq!(dt["examples"][0]["value"], "1230229");
    assert_eq!(dt["examples"][1]["key"], "ID=3");
    assert_eq!(
        col("TM")["kinds"],
        serde_json::json!({"impossible time": 1})
    );
    assert_eq!(col("FLAG")["kinds"], serde_json::json!({"blank": 1}));
    assert_eq!(col("QTY")["kinds"], serde_json::json!({"non-numeric": 1}));
    assert_eq!(col("QTY")["examples"][0]["key"], "ID=6");
    let pin = col("PIN");
    assert_eq!(pin["undecodable"], 1);
    assert!(
        pin["examples"][0].get("value").is_none(),
        "sensitive: {pin}"
    );
    assert_eq!(col("ID")["undecodable"], 0);

    // The same data under `null`: reported, but nothing fails a request.
    let o = common::patina(&["scan", "--route", "nullThings"], dir.path());
    assert_eq!(o.code, Some(0), "{}{}", o.out, o.err);
    assert!(
        o.out
            .contains("route nullThings: 7 row(s) read, 6 value(s) that do not decode"),
        "{}",
        o.out
    );
    assert!(
        o.out
            .contains("(on_invalid = null): 2 — impossible date 1, month out of range 1"),
        "{}",
        o.out
    );
    assert!(
        o.out.contains("ID=3: month out of range: \"1241301\""),
        "{}",
        o.out
    );
    // --limit reads no more than asked; an unknown route is a usage error.
    let o = common::patina(
        &["scan", "--route", "strictThings", "--limit", "1"],
        dir.path(),
    );
    assert_eq!(o.code, Some(0), "the first row is good: {}{}", o.out, o.err);
    assert!(
        o.out.contains("1 row(s) read (not to the end)"),
        "{}",
        o.out
    );
    let o = common::patina(&["scan", "--route", "nope"], dir.path());
    assert_eq!(o.code, Some(2), "{}{}", o.out, o.err);
}

common::on_both_writable!(
    served_with_their_policy,
    a_source_default_applies_where_columns_say_nothing,
    scan_reports_every_bad_row_and_exits_by_policy,
);
