//! Unit tests of mapping compilation: every diagnostic with its `file:line:column`.

use super::testing::{compile_text, file, sources};
use super::*;
use crate::catalog::ParamLocation;
use crate::codec::{BindValue, ParamType};

/// The errors of one file.
fn errors(name: &str, text: &str) -> Vec<String> {
    compile_text(name, text, &sources())
        .err()
        .unwrap_or_default()
}

/// The errors of several files compiled together.
fn errors_of(files: &[MappingFile]) -> Vec<String> {
    match compile(files, &sources(), 100) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .diagnostics
            .iter()
            .filter(|d| d.severity == crate::diag::Severity::Error)
            .map(ToString::to_string)
            .collect(),
    }
}

const GOOD: &str = r#"source = "mfg"

[[route]]
id = "getJob"
path = "/jobs/{job_number}"
scopes = ["jobs:read"]
summary = "One production job"
one = true
sql = """
SELECT JOBNO, JOBDS, STSCD, DUEDT FROM JOBMST WHERE JOBNO = :job_number
"""
params.job_number = { type = "integer", minimum = 1 }
columns.JOBNO = { name = "job_number", type = "integer" }
columns.JOBDS = { name = "description", trim = true }
columns.STSCD = { name = "status", codes = { R = "released", C = "complete" } }
columns.DUEDT = { name = "due_date", type = "date", format = "cyymmdd" }

[[route]]
id = "listJobs"
path = "/jobs"
public = true
max_rows = 50
sql = "SELECT * FROM JOBMST WHERE (:status IS NULL OR STSCD = :status) AND DUEDT >= :from"
params.status = { codes = { R = "released", C = "complete" } }
params.from = { type = "date", format = "cyymmdd", default = "1990-01-01" }
"#;

#[test]
fn compiles_a_good_file() {
    let c = compile_text("jobs.toml", GOOD, &sources()).expect("compiles");
    let routes = &c.routes;
    assert_eq!(routes.len(), 2);
    let get = &routes[0];
    assert_eq!(get.path, "/v1/jobs/{job_number}");
    assert!(get.one);
    assert_eq!(get.max_rows, 1);
    assert_eq!(get.params[0].location, ParamLocation::Path);
    assert!(get.params[0].required);
    assert!(get.sql.contains("WHERE JOBNO = ?"));
    assert_eq!(
        get.column("jobds").map(|c| c.output.as_str()),
        Some("description")
    );
    let list = &routes[1];
    assert_eq!(list.max_rows, 50);
    assert_eq!(list.bind_order, [0, 0, 1]);
    assert_eq!(list.params[1].default, Some(BindValue::Int(900_101)));
    assert_eq!(list.params[0].location, ParamLocation::Query);
    assert!(!list.params[0].required);
    assert_eq!(
        list.sql.as_ref(),
        "SELECT * FROM JOBMST WHERE (? IS NULL OR STSCD = ?) AND DUEDT >= ?"
    );
}

#[test]
fn lookup_finds_routes_and_methods() {
    let c = compile_text("jobs.toml", GOOD, &sources()).expect("compiles");
    match c.lookup("GET", "/v1/jobs/42") {
        crate::catalog::Lookup::Found {
            route, path_params, ..
        } => {
            assert_eq!(route.id, "getJob");
            assert_eq!(path_params, [("job_number".to_string(), "42".to_string())]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.lookup("POST", "/v1/jobs"),
        crate::catalog::Lookup::MethodNotAllowed(m) if m == ["GET"]
    ));
    assert!(matches!(
        c.lookup("GET", "/v2/jobs"),
        crate::catalog::Lookup::NotFound
    ));
}

#[test]
fn reports_every_error_with_its_location() {
    let bad = r#"source = "mfg"

[[route]]
id = "a"
path = "/a/{x}"
sql = "SELECT * FROM T WHERE X = :x AND Y = :y"
params.x = { type = "integer", pattern = "^[0-9]+$" }
params.z = "string"
columns.C = { type = "date", format = "julian" }

[[route]]
id = "b"
source = "nope"
path = "/b"
sql = "SELECT 1"
colums.D = "d"
columns.E = { type = "money" }
"#;
    let errs = errors("m/v1/bad.toml", bad);
    let joined = errs.join("\n");
    let expect = [
        "m/v1/bad.toml:7:42: error: `pattern` does not apply to integer parameters",
        "m/v1/bad.toml:6:45: error: route `a`: `:y` is used in the SQL but not declared",
        "m/v1/bad.toml:8:8: error: route `a`: parameter `z` is declared but the SQL never uses `:z`",
        "m/v1/bad.toml:9:39: error: unknown date format `julian`",
        "m/v1/bad.toml:16:1: error: route: unknown field `colums`",
        "m/v1/bad.toml:17:22: error: column `E`: unknown type `money`",
    ];
    for e in expect {
        assert!(joined.contains(e), "missing `{e}` in:\n{joined}");
    }
}

#[test]
fn unknown_fields_in_params_and_columns_name_their_line() {
    let bad = "source = \"mfg\"\n[[route]]\nid = \"a\"\npath = \"/a\"\nsql = \"SELECT :q\"\nparams.q = { type = \"string\", maxlength = 3 }\ncolumns.X = { nmae = \"x\" }\n";
    let joined = errors("f.toml", bad).join("\n");
    assert!(
        joined.contains("f.toml:6:31: error: parameter `q`: unknown field `maxlength`"),
        "{joined}"
    );
    assert!(
        joined.contains("f.toml:7:15: error: column `X`: unknown field `nmae`"),
        "{joined}"
    );
}

#[test]
fn undeclared_path_parameter() {
    let bad = "source = \"mfg\"\n[[route]]\nid = \"a\"\npath = \"/a/{id}\"\nsql = \"SELECT 1\"\n";
    let joined = errors("f.toml", bad).join("\n");
    assert!(
        joined.contains("f.toml:4:8: error: route `a`: path parameter `{id}` is not declared"),
        "{joined}"
    );
}

#[test]
fn duplicate_routes_across_files() {
    let a = "source = \"mfg\"\n[[route]]\nid = \"one\"\npublic = true\npath = \"/j/{a}\"\nsql = \"SELECT :a\"\nparams.a = \"integer\"\n";
    let b = "source = \"mfg\"\n\n[[route]]\nid = \"one\"\npublic = true\npath = \"/j/{b}\"\nsql = \"SELECT :b\"\nparams.b = \"integer\"\n";
    let joined = errors_of(&[file("a.toml", a), file("b.toml", b)]).join("\n");
    assert!(
        joined.contains("b.toml:3:1: error: route id `one` is already used"),
        "{joined}"
    );
    assert!(
        joined.contains("another route already serves GET /v1/j/{b}"),
        "{joined}"
    );
    assert!(joined.contains("the first is at a.toml:2"), "{joined}");
}

#[test]
fn bad_defaults_ranges_and_requiredness() {
    let bad = r#"source = "mfg"
[[route]]
id = "a"
path = "/a/{p}"
sql = "SELECT :p, :q, :r, :s"
params.p = { type = "integer", required = false }
params.q = { type = "integer", minimum = 5, maximum = 1 }
params.r = { type = "date", default = "2024-13-01" }
params.s = { type = "string", required = true, default = "x", pattern = "([" }
"#;
    let joined = errors("f.toml", bad).join("\n");
    for e in [
        "f.toml:6:43: error: path parameter `p` cannot be optional",
        "f.toml:7:42: error: parameter `q`: `minimum` is above `maximum`",
        "f.toml:8:39: error: parameter `r`: the default must be a date in the form YYYY-MM-DD",
        "f.toml:9:58: error: parameter `s` is required, so its `default` is never used",
        "f.toml:9:73: error: parameter `s`: `pattern` is not a valid regular expression",
    ] {
        assert!(joined.contains(e), "missing `{e}` in:\n{joined}");
    }
}

#[test]
fn syntax_errors_and_question_marks() {
    let joined = errors("s.toml", "source = \"mfg\"\n[[route]\n").join("\n");
    assert!(joined.starts_with("s.toml:2:"), "{joined}");
    let q = "source = \"mfg\"\n[[route]]\nid = \"a\"\npath = \"/a\"\nsql = \"SELECT * FROM T WHERE A = ?\"\n";
    let joined = errors("q.toml", q).join("\n");
    assert!(
        joined.contains("q.toml:5:34: error: route `a`: `?` placeholder in mapping SQL"),
        "{joined}"
    );
}

#[test]
fn like_parameters_need_the_escape_clause() {
    let text = r#"
source = "mfg"
[[route]]
id = "a"
path = "/a"
public = true
sql = "SELECT X FROM T WHERE N LIKE :n"
params.n = { like = "prefix" }
[[route]]
id = "b"
path = "/b"
public = true
sql = "SELECT X FROM T WHERE N LIKE :n escape  '!'"
params.n = { like = "contains" }
[[route]]
id = "c"
path = "/c"
public = true
sql = "SELECT X FROM T WHERE N = :n"
params.n = { type = "integer", like = "begins" }
"#;
    let err = compile(&[file("m.toml", text)], &sources(), 100).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("m.toml:8:8: error: route `a`: parameter `n` is matched with `like`, but the SQL has no `ESCAPE '!'`"),
        "{msg}"
    );
    assert!(!msg.contains("route `b`"), "{msg}");
    assert!(
        msg.contains("m.toml:20:39: error: `like` does not apply to integer parameters"),
        "{msg}"
    );
}

#[test]
fn mssql_sources_get_numbered_placeholders() {
    let m = "source = \"ms\"\n[[route]]\nid = \"a\"\npublic = true\npath = \"/a\"\nsql = \"SELECT * FROM T WHERE A = :a OR B = :a\"\nparams.a = \"string\"\n";
    let c = compile_text("m.toml", m, &sources()).expect("compiles");
    assert_eq!(
        c.routes[0].sql.as_ref(),
        "SELECT * FROM T WHERE A = @P1 OR B = @P2"
    );
}

#[test]
fn output_names_must_be_unique_and_methods_known() {
    let bad = "source = \"mfg\"\n[[route]]\nid = \"a\"\nmethod = \"TRACE\"\npath = \"/a\"\nsql = \"SELECT A, B\"\ncolumns.A = \"x\"\ncolumns.B = \"x\"\n";
    let joined = errors("f.toml", bad).join("\n");
    assert!(
        joined.contains("f.toml:4:10: error: route `a`: method `TRACE` cannot be mapped"),
        "{joined}"
    );
    assert!(
        joined.contains("f.toml:8:9: error: route `a`: two columns are named `x`"),
        "{joined}"
    );
}

#[test]
fn hidden_entries_are_not_mappings() {
    let dir = tempfile::tempdir().expect("dir");
    let v1 = dir.path().join("v1");
    std::fs::create_dir_all(&v1).expect("v1");
    std::fs::create_dir_all(dir.path().join("..2026_11_27_data")).expect("data");
    std::fs::write(
        v1.join("a.toml"),
        "source = \"mfg\"\n[[route]]\nid = \"a\"\npublic = true\npath = \"/a\"\nsql = \"SELECT 1\"\n",
    )
    .expect("a");
    std::fs::write(v1.join(".a.toml.swp"), "not toml").expect("swp");
    std::fs::write(v1.join(".hidden.toml"), "not = [toml").expect("hidden");
    let c = load_dir(dir.path(), &sources(), 10).expect("loads");
    assert_eq!(c.catalog.routes.len(), 1);
}

#[test]
fn routes_need_scopes_or_public_and_claims_need_auth() {
    let m = "source = \"mfg\"\n[[route]]\nid = \"a\"\npath = \"/a\"\nsql = \"SELECT 1\"\n\n[[route]]\nid = \"b\"\npath = \"/b\"\npublic = true\nscopes = [\"x\"]\nsql = \"SELECT :c\"\nparams.c = { type = \"integer\", from_claim = \"customer_id\" }\nrate_limit = \"lots\"\n";
    let joined = errors("f.toml", m).join("\n");
    assert!(
        joined.contains("f.toml:2:1: error: route `a` has no `scopes` and is not `public`"),
        "{joined}"
    );
    assert!(
        joined.contains("route `b` is `public` and has `scopes`"),
        "{joined}"
    );
    assert!(
        joined.contains("route `b` is public but parameter `c` needs a verified claim"),
        "{joined}"
    );
    assert!(
        joined.contains("route `b`: `rate_limit` is not a rate"),
        "{joined}"
    );
    let ok = "source = \"mfg\"\n[[route]]\nid = \"mine\"\npath = \"/mine\"\nscopes = [\"portal\"]\nrate_limit = \"5/second\"\nsql = \"SELECT * FROM J WHERE C = :c\"\nparams.c = { type = \"integer\", from_claim = \"customer_id\" }\n";
    let c = compile_text("m.toml", ok, &sources()).expect("compiles");
    let r = &c.routes[0];
    assert_eq!(r.params[0].location, ParamLocation::Claim);
    assert_eq!(r.params[0].claim.as_deref(), Some("customer_id"));
    assert_eq!(r.rate_limit.map(|s| s.limit), Some(5));
}

#[test]
fn like_parameters_escape_brackets_where_the_dialect_needs_it() {
    let text = |source: &str| {
        format!(
            "source = \"{source}\"\n[[route]]\nid = \"a\"\npath = \"/a\"\npublic = true\nsql = \"SELECT X FROM T WHERE N LIKE :n ESCAPE '!'\"\nparams.n = {{ like = \"prefix\" }}\n"
        )
    };
    for (source, brackets) in [("ms", true), ("mfg", false), ("db", false), ("pg", false)] {
        let c = compile_text("m.toml", &text(source), &sources()).expect("compiles");
        match &c.routes[0].params[0].ty {
            ParamType::String {
                like: Some(like), ..
            } => assert_eq!(like.brackets, brackets, "{source}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn deprecation_headers_are_built_at_compile_time() {
    let m = "source = \"db\"\n[[route]]\nid = \"a\"\npath = \"/a\"\npublic = true\ndeprecated = \"2026-01-01\"\nsunset = \"2027-06-30\"\nsql = \"SELECT 1\"\n[[route]]\nid = \"b\"\npath = \"/b\"\npublic = true\ndeprecated = \"2026-01-01\"\nsql = \"SELECT 1\"\n";
    let c = compile_text("m.toml", m, &sources()).expect("compiles");
    let d = c.routes[0].deprecation.as_ref().expect("deprecated");
    assert_eq!(d.since.date, "2026-01-01");
    assert_eq!(d.since.header, "@1767225600");
    let s = d.sunset.as_ref().expect("sunset");
    assert_eq!(s.date, "2027-06-30");
    assert_eq!(s.header, "Wed, 30 Jun 2027 00:00:00 GMT");
    let d = c.routes[1].deprecation.as_ref().expect("deprecated");
    assert!(d.sunset.is_none());
    assert!(
        compile_text("m.toml", GOOD, &sources())
            .expect("compiles")
            .routes
            .iter()
            .all(|r| r.deprecation.is_none())
    );
}

#[test]
fn deprecation_dates_are_checked() {
    let m = "source = \"db\"\n[[route]]\nid = \"a\"\npath = \"/a\"\npublic = true\ndeprecated = \"2026-13-01\"\nsql = \"SELECT 1\"\n[[route]]\nid = \"b\"\npath = \"/b\"\npublic = true\nsunset = \"2027-06-30\"\nsql = \"SELECT 1\"\n[[route]]\nid = \"c\"\npath = \"/c\"\npublic = true\ndeprecated = \"2026-01-01\"\nsunset = \"2025-06-30\"\nsql = \"SELECT 1\"\n";
    let joined = errors("m.toml", m).join("\n");
    for e in [
        "m.toml:6:14: error: route `a`: `deprecated` must be a date",
        "m.toml:12:10: error: route `b` has a `sunset` but is not `deprecated`",
        "m.toml:19:10: error: route `c`: `sunset` is before `deprecated`",
    ] {
        assert!(joined.contains(e), "missing `{e}` in:\n{joined}");
    }
}

#[test]
fn write_routes_compile_into_steps_with_their_values() {
    use crate::catalog::ValueRef as V;
    let text = r#"source = "pg"
[[route]]
id = "getJob"
path = "/jobs/{job}"
one = true
public = true
sql = "SELECT JOBNO FROM JOBMST WHERE JOBNO = :job"
params.job = "integer"

[[route]]
id = "addOrder"
method = "POST"
path = "/jobs/{job}/orders"
scopes = ["w"]
location = "/v1/orders/{order}"
etag_from = "getJob"
params.job = "integer"
params.who = { from_claim = "sub" }
body.qty = { type = "decimal", precision = 9, scale = 2 }
body.lines = { type = "list", items.item = "string" }

[[route.step]]
sql = "INSERT INTO O (J, Q, W) VALUES (:job, :qty, :who) RETURNING ID"
outputs = ["order"]

[[route.step]]
for_each = "lines"
index_as = "n"
sql = "INSERT INTO L VALUES (:order, :n, :item)"
"#;
    let c = compile_text("w.toml", text, &sources()).unwrap_or_else(|e| panic!("{e:?}"));
    let (_, r) = c.route_by_id("addOrder").expect("route");
    let w = r.write.as_ref().expect("a write");
    assert_eq!(r.method, "POST");
    assert_eq!(w.status, 201);
    assert_eq!(w.idempotency, crate::catalog::Idempotency::Optional);
    assert_eq!(w.outputs, ["order"]);
    assert_eq!(
        w.steps[0].sql.as_ref(),
        "INSERT INTO O (J, Q, W) VALUES (?, ?, ?) RETURNING ID"
    );
    assert_eq!(w.steps[0].binds, [V::Param(0), V::Field(0), V::Param(1)]);
    assert_eq!(w.steps[1].binds, [V::Output(0), V::Index, V::Item(1, 0)]);
    assert_eq!(w.steps[1].for_each, Some(1));
    assert!(!w.steps[0].require_rows, "a POST may touch no existing row");
    let m = w.if_match.as_ref().expect("if-match");
    assert_eq!(m.binds, [V::Param(0)]);
    assert!(!m.required);
}

#[test]
fn write_route_mistakes_are_all_reported() {
    let text = r#"source = "pg"
[[route]]
id = "getJob"
path = "/jobs/{job}"
scopes = ["r"]
sql = "SELECT 1 FROM T WHERE J = :job"
params.job = "integer"
body.x = "string"
idempotency = "required"

[[route]]
id = "w"
method = "DELETE"
path = "/jobs/{job}"
scopes = ["w"]
cache = "5s"
etag_from = "getJob"
location = "/v1/x/{nope}"
params.job = "integer"
body.note = "string"

[[route.step]]
sql = "DELETE FROM T WHERE J = :job AND K = :missing"
for_each = "note"
outputs = ["a"]
"#;
    let joined = errors("w.toml", text).join("\n");
    for expected in [
        "route `getJob`: `idempotency` applies only to write routes",
        "route `getJob`: `body` applies only to write routes",
        "route `w`: a DELETE takes no body",
        "route `w`: a write's response is never cached",
        "route `w`: `:missing` is used in the SQL but not declared",
        "route `w`: `for_each` names `note`, which is not a list body field",
        "route `w`: `location` names `nope`, which is no value of this write",
    ] {
        assert!(
            joined.contains(expected),
            "missing «{expected}» in:\n{joined}"
        );
    }
}

const PAGED: &str = r#"source = "mfg"

[[route]]
id = "listJobs"
path = "/jobs"
public = true
sql = "SELECT JOBNO, DUEDT, STSCD FROM JOBMST WHERE (:status IS NULL OR STSCD = :status)"
params.status = { codes = { R = "released" } }
page = { by = ["-DUEDT", "JOBNO"], size = 20, max = 200 }
sort = ["status", "due_date"]
count = "3s"
export = { max_rows = 5000 }
columns.JOBNO = { name = "job_number", type = "integer", nullable = false }
columns.DUEDT = { name = "due_date", type = "date", format = "cyymmdd" }
columns.STSCD = { name = "status", codes = { R = "released" } }
"#;

#[test]
fn compiles_paging_sorting_counts_and_exports() {
    let c = compile_text("jobs.toml", PAGED, &sources()).expect("compiles");
    let list = &c.routes[0].list;
    let page = list.page.as_ref().expect("page");
    assert_eq!((page.size, page.max), (20, 200));
    let by: Vec<(&str, bool, bool)> = page
        .by
        .iter()
        .map(|k| (k.column.as_str(), k.descending, k.nullable))
        .collect();
    assert_eq!(by, [("DUEDT", true, true), ("JOBNO", false, false)]);
    let sort: Vec<&str> = list.sort.iter().map(|s| s.column.as_str()).collect();
    assert_eq!(sort, ["STSCD", "DUEDT"]);
    assert_eq!(list.count, Some(std::time::Duration::from_secs(3)));
    assert_eq!(list.export.map(|e| e.max_rows), Some(5000));
    // Lists without a word about it count within 2 s, and offer neither pages nor exports.
    let plain = compile_text("jobs.toml", GOOD, &sources()).expect("compiles");
    let list = &plain.routes[1].list;
    assert!(list.page.is_none() && list.export.is_none() && list.sort.is_empty());
    assert_eq!(list.count, Some(std::time::Duration::from_secs(2)));
    assert!(
        plain.routes[0].list.count.is_none(),
        "a one-row route has nothing to count"
    );
}

#[test]
fn paging_mistakes_are_reported_where_they_are() {
    let bad = PAGED
        .replace(
            "(:status IS NULL OR STSCD = :status)\"",
            "(:status IS NULL OR STSCD = :status) ORDER BY JOBNO\"\nmax_rows = 10\nparams.limit = { type = \"integer\" }",
        )
        .replace(r#"by = ["-DUEDT", "JOBNO"], size = 20"#, r#"by = ["-DUEDT", "NOPE", "JOBNO", "JOBNO"], size = 300"#)
        .replace(r#"sort = ["status", "due_date"]"#, r#"sort = ["status", "secret"]"#)
        .replace(r#"count = "3s""#, r#"count = "forever""#)
        .replace("max_rows = 5000", "max_rows = 0");
    let e = errors("jobs.toml", &bad);
    let want = [
        "must not end in ORDER BY",
        "`max_rows` does not apply to a paged route",
        "names `NOPE`, which is not one of the route's columns",
        "names `JOBNO` twice",
        "`page.size` must be between 1 and `page.max` (200)",
        "clashes with the gateway's own `limit`",
        "names `secret`, which is not a field of the route",
        "`count` is not a time budget",
        "`export.max_rows` must be at least 1",
    ];
    for w in want {
        assert!(e.iter().any(|m| m.contains(w)), "missing {w:?} in {e:#?}");
    }
    assert!(e.iter().all(|m| m.starts_with("jobs.toml:")), "{e:#?}");
    // Sorting needs pages; lists only; writes refuse all four.
    let e = errors(
        "jobs.toml",
        &PAGED.replace(
            r#"page = { by = ["-DUEDT", "JOBNO"], size = 20, max = 200 }"#,
            "",
        ),
    );
    assert!(
        e.iter().any(|m| m.contains("`sort` needs `page`")),
        "{e:#?}"
    );
    let e = errors(
        "jobs.toml",
        &PAGED.replace("public = true", "public = true\none = true"),
    );
    for f in ["page", "sort", "count", "export"] {
        assert!(
            e.iter()
                .any(|m| m.contains(&format!("`{f}` applies only to list routes"))),
            "{f}: {e:#?}"
        );
    }
}

#[test]
fn a_blank_flag_or_code_is_written_as_a_space() {
    // Stored values are compared trimmed: `" "` in the mapping means a blank CHAR(1).
    let text = r#"source = "db"
[[route]]
id = "flags"
public = true
path = "/flags"
sql = "SELECT RUSHF, STSCD FROM JOBMST"
columns.RUSHF = { name = "rush", type = "boolean", true_values = ["Y"], false_values = ["N", " "] }
columns.STSCD = { name = "status", codes = { R = "released", " " = "none" } }
"#;
    let c = compile_text("flags.toml", text, &sources()).expect("compiles");
    let route = &c.routes[0];
    let mut out = Vec::new();
    let rush = route.column("RUSHF").expect("RUSHF").codec(
        &crate::codec::ColumnType::String,
        crate::codec::OnInvalid::Error,
    );
    rush.write_json(crate::codec::Cell::Text(b" "), &mut out)
        .expect("a blank flag is false");
    out.push(b' ');
    let status = route.column("STSCD").expect("STSCD").codec(
        &crate::codec::ColumnType::String,
        crate::codec::OnInvalid::Error,
    );
    status
        .write_json(crate::codec::Cell::Text(b" "), &mut out)
        .expect("a blank code");
    assert_eq!(String::from_utf8_lossy(&out), "false \"none\"");
}

#[test]
fn batch_compiles_on_a_lookup_and_refuses_what_it_cannot_rewrite() {
    let route = |source: &str, sql: &str, extra: &str| {
        format!(
            r#"source = "{source}"
[[route]]
id = "getJob"
path = "/jobs/{{job_number}}"
public = true
one = true
sql = "{sql}"
{extra}
params.job_number = {{ type = "integer" }}
columns.JOBNO = {{ name = "job_number", type = "integer" }}
"#
        )
    };
    let sql = "SELECT JOBNO FROM JOBMST WHERE JOBNO = :job_number";
    let c = compile_text(
        "j.toml",
        &route("ms", sql, "batch = { max = 8 }"),
        &sources(),
    )
    .expect("compiles");
    let b = c.routes[0].batch.as_ref().expect("batched");
    assert_eq!(b.key_at, 0);
    assert_eq!(
        b.forms.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [2, 4, 8]
    );
    assert_eq!(
        b.forms[0].1.as_ref(),
        "SELECT JOBNO AS PATINA_BATCH_KEY, JOBNO FROM JOBMST WHERE JOBNO IN (@P1, @P2)"
    );
    let e = errors(
        "j.toml",
        &route(
            "db",
            "SELECT JOBNO FROM JOBMST WHERE JOBNO = :job_number OR JOBNO = 0",
            "batch = {}",
        ),
    );
    assert!(
        e.iter()
            .any(|e| e.contains("`batch` cannot rewrite this SQL")
                && e.contains("top-level OR")
                && e.contains("j.toml:7:")),
        "{e:?}"
    );
    let e = errors("j.toml", &route("db", sql, "batch = { max = 1 }"));
    assert!(e.iter().any(|e| e.contains("between 2 and 256")), "{e:?}");
    let e = errors("j.toml", &route("db", sql, "batch = { key = \"nope\" }"));
    assert!(e.iter().any(|e| e.contains("not a parameter")), "{e:?}");
    let list = route("db", sql, "batch = {}").replace("one = true\n", "");
    let e = errors("j.toml", &list);
    assert!(
        e.iter()
            .any(|e| e.contains("applies to `one = true` reads")),
        "{e:?}"
    );
}
