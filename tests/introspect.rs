//! `patina introspect` as a DBA starts a mapping: every demo table, read from SQLite and
//! PostgreSQL over ODBC, becomes a mapping file that `patina check --db` accepts as printed,
//! and whose routes serve the table's rows.

mod common;

use common::{Gateway, TestDb};

/// The demo's tables (fixtures/demo), with their keys.
const TABLES: &[(&str, &[&str])] = &[
    ("CUSMST", &["CUSNO"]),
    ("JOBMST", &["JOBNO"]),
    ("JOBOPS", &["JOBNO", "OPSEQ"]),
    ("JOBNOTE", &["JOBNO", "NOTSQ"]),
    ("ORDHDR", &["ORDNO"]),
    ("ORDLIN", &["ORDNO", "LINNO"]),
];

fn project(db: &TestDb) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("mappings/v1")).expect("mappings");
    std::fs::write(
        dir.path().join("patina.toml"),
        format!(
            "[sources.demo]\nkind = \"odbc\"\ndialect = \"{}\"\nconnection_string = \"{}\"\n",
            db.dialect,
            db.connection_string
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        ),
    )
    .expect("config");
    dir
}

fn introspect(dir: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["introspect", "--source", "demo"];
    all.extend_from_slice(args);
    let o = common::patina(&all, dir);
    assert!(o.ok(), "introspect {args:?}: {}{}", o.out, o.err);
    o.out
}

common::on_both!(every_demo_table_becomes_a_mapping_check_db_accepts);

fn every_demo_table_becomes_a_mapping_check_db_accepts(db: &TestDb) {
    for (table, key) in TABLES {
        for sample in [false, true] {
            let dir = project(db);
            let mut args = vec!["--table", *table];
            if sample {
                args.push("--sample");
            }
            let text = introspect(dir.path(), &args);
            assert!(
                text.starts_with("#:schema ../../schemas/mapping.schema.json\n"),
                "{text}"
            );
            // Paged over the key, and a by-key route with one path parameter per key column.
            let by: Vec<String> = key
                .iter()
                .map(|k| {
                    format!(
                        "\"{}\"",
                        if db.dialect == "postgres" {
                            k.to_ascii_lowercase()
                        } else {
                            (*k).to_string()
                        }
                    )
                })
                .collect();
            assert!(
                text.contains(&format!(
                    "page = {{ by = [{}], size = 100, max = 1000 }}",
                    by.join(", ")
                )),
                "{table}: {text}"
            );
            assert_eq!(text.matches("one = true").count(), 1, "{table}: {text}");
            std::fs::write(dir.path().join("mappings/v1/t.toml"), &text).expect("write");
            let o = common::patina(&["check", "--db"], dir.path());
            // Warnings only: the config has no [auth] for the routes' scopes.
            assert_eq!(
                o.code,
                Some(1),
                "{table} (sample {sample}):\n{text}\n{}{}",
                o.out,
                o.err
            );
            assert!(!o.err.contains("error:"), "{table}: {}", o.err);
            assert!(
                o.err
                    .lines()
                    .filter(|l| l.contains("warning:"))
                    .all(|l| l.contains("need scopes")),
                "{table}: {}",
                o.err
            );
            assert!(
                o.out.contains("checked against their databases"),
                "{}",
                o.out
            );
        }
    }
}

common::on_both!(an_introspected_table_serves_its_rows);

fn an_introspected_table_serves_its_rows(db: &TestDb) {
    let dir = project(db);
    let text = introspect(dir.path(), &["--table", "JOBMST", "--sample"]);
    for expected in [
        "id = \"listJobs\"",
        "id = \"getJob\"",
        "path = \"/jobs/{job_number}\"",
        "name = \"due_date\", type = \"date\", format = \"cyymmdd\" }  # confirm:",
        "name = \"status_code\", codes = {",
        "name = \"rush_flag\", type = \"boolean\", true_values = [\"Y\"], false_values = [\"N\"]",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let files = [("v1/jobs.toml", text.as_str())];
    let gw = Gateway::start(
        db,
        &common::Options {
            mappings: Some(&files),
            ..common::Options::default()
        },
    );
    let one = gw.get("/v1/jobs/100001");
    assert_eq!(one.status, 200, "{}", one.text);
    let job = one.json();
    assert_eq!(job["job_number"], 100_001);
    assert_eq!(job["due_date"], "2024-02-15");
    assert_eq!(
        job["completed_date"],
        serde_json::Value::Null,
        "0 is no date"
    );
    assert_eq!(job["status_code"], "r");
    assert_eq!(job["rush_flag"], false);
    assert_eq!(job["job_description"], "WIDGET BRACKET, ZINC PLATED");
    let page = gw.get("/v1/jobs?limit=2");
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(
        page.json()["data"].as_array().map(Vec::len),
        Some(2),
        "{}",
        page.text
    );
    assert!(
        page.header("link")
            .is_some_and(|l| l.contains("rel=\"next\""))
    );
    gw.get("/v1/jobs/999999").problem(404, "not-found");
}

#[test]
fn a_whole_schema_and_a_statement_introspect_too() {
    let db = common::sqlite();
    let jobs = || common::query_db(&db, "SELECT COUNT(*) FROM JOBMST")[0][0].clone();
    let before = jobs();
    let dir = project(&db);
    let text = introspect(dir.path(), &["--schema", "main", "--sample"]);
    for (table, _) in TABLES {
        assert!(text.contains(&format!("FROM {table}\n")), "{table}: {text}");
    }
    std::fs::write(dir.path().join("mappings/v1/all.toml"), &text).expect("write");
    let o = common::patina(&["check", "--db"], dir.path());
    assert_eq!(o.code, Some(1), "{}{}", o.out, o.err);
    assert!(!o.err.contains("error:"), "{}", o.err);

    let dir = project(&db);
    let text = introspect(
        dir.path(),
        &[
            "--sql",
            "SELECT JOBNO, STSCD FROM JOBMST WHERE RUSHF = 'Y'",
            "--name",
            "rush_job",
        ],
    );
    assert!(text.contains("id = \"listRushJobs\""), "{text}");
    assert!(text.contains("path = \"/rush-jobs\""), "{text}");
    assert!(text.contains("max_rows = 1000"), "no key, no pages: {text}");
    std::fs::write(dir.path().join("mappings/v1/q.toml"), &text).expect("write");
    let o = common::patina(&["check", "--db"], dir.path());
    assert_eq!(o.code, Some(1), "{}{}", o.out, o.err);

    // Names the DBA adds; mistakes refused with exit 2.
    std::fs::write(dir.path().join("names.toml"), "JOBNO = \"job_id\"\n").expect("names");
    let text = introspect(dir.path(), &["--table", "JOBMST", "--names", "names.toml"]);
    assert!(
        text.contains("columns.JOBNO = { name = \"job_id\""),
        "{text}"
    );
    for bad in [
        vec!["--table", "JOBMST; DROP TABLE JOBMST"],
        vec!["--sql", "DELETE FROM JOBMST"],
        vec!["--table", "NO_SUCH_TABLE"],
    ] {
        let mut args = vec!["introspect", "--source", "demo"];
        args.extend(bad.iter().copied());
        let o = common::patina(&args, dir.path());
        assert_eq!(o.code, Some(2), "{bad:?}: {}{}", o.out, o.err);
        assert!(o.out.is_empty(), "nothing printed: {}", o.out);
    }
    assert_eq!(jobs(), before, "nothing touched");
}
