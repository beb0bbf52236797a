//! The API documents: generated from the catalog, committed under `openapi/` (so a mapping
//! change without regenerated docs fails here), served per version, with Swagger UI from the
//! binary.

mod common;

use std::path::Path;

use common::Gateway;
use patina::app;
use patina::openapi::Documents;

#[test]
fn committed_documents_match_the_mappings() {
    let root = Path::new(common::ROOT);
    let config = common::repo_demo_config();
    let compiled = app::compile_catalog(&config).expect("demo mappings compile");
    // Described on the demo database, as `patina openapi --db` and the running gateway do.
    let learned = patina::shape::Learned::new(compiled.catalog.routes.len());
    let found = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(app::describe_routes(&config, &compiled.catalog, &learned))
        .expect("the demo database is reachable");
    assert!(found.is_empty(), "{found:?}");
    let docs = Documents::build(&compiled.catalog, &learned, &config.docs);
    assert!(!docs.rendered.is_empty());
    let hint = "the mappings changed: run `deploy/demo.sh` once, then \
        `PATINA_DEMO_DB=target/demo/patina-demo.db cargo run -- openapi --db --out openapi` \
        and commit openapi/";
    for (version, text) in &docs.rendered {
        let path = root.join("openapi").join(format!("{version}.json"));
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} is missing: {hint}", path.display()));
        assert!(committed == *text, "{} is stale: {hint}", path.display());
    }
    for entry in std::fs::read_dir(root.join("openapi")).expect("openapi/") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let version = name.trim_end_matches(".json");
        assert!(
            docs.rendered.contains_key(version),
            "openapi/{name} has no mapping version: delete it"
        );
    }
}

#[test]
fn serves_each_version_and_swagger_ui() {
    let gw = Gateway::repo_demo();
    let committed =
        std::fs::read_to_string(Path::new(common::ROOT).join("openapi/v1.json")).expect("golden");
    // Once the start-up check has described the routes, the served document is the committed
    // one (made by `patina openapi --db` on the same database).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while gw.get("/openapi/v1.json").text != committed && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let doc = gw.get("/openapi/v1.json");
    assert_eq!(doc.status, 200);
    assert_eq!(doc.header("content-type"), Some("application/json"));
    assert_eq!(
        doc.text, committed,
        "the served document is the committed one"
    );
    let json = doc.json();
    assert_eq!(json["openapi"], "3.1.0");
    for path in [
        "/v1/jobs/{job_number}",
        "/v1/jobs",
        "/v1/customers/{customer_number}",
    ] {
        assert!(json["paths"][path]["get"].is_object(), "{path}");
    }
    gw.get("/openapi/v9.json").problem(404, "not-found");

    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for from in ["/docs", "/"] {
        let r = client
            .get(format!("{}{from}", gw.base))
            .send()
            .expect("redirect");
        assert_eq!(r.status().as_u16(), 308, "{from}");
        assert_eq!(r.headers()["location"], "/docs/");
    }
    let page = gw.get("/docs/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    assert!(page.text.contains("swagger-ui"), "{}", page.text);
    let init = gw.get("/docs/swagger-initializer.js");
    assert_eq!(init.status, 200);
    assert!(init.text.contains("/openapi/v1.json"), "{}", init.text);
    assert!(
        !init.text.contains("http://") && !init.text.contains("https://"),
        "no CDN: {}",
        init.text
    );
    let bundle = gw.get("/docs/swagger-ui-bundle.js");
    assert_eq!(bundle.status, 200);
    assert!(
        bundle.text.len() > 100_000,
        "the bundle is served from the binary"
    );
    gw.get("/docs/nope.js").problem(404, "not-found");
}

#[test]
fn deprecated_routes_say_so() {
    let gw = Gateway::repo_demo();
    let r = gw.get("/v1/jobs/100001/routing");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("deprecation"),
        Some("@1780272000"),
        "2026-06-01, RFC 9745"
    );
    assert_eq!(
        r.header("sunset"),
        Some("Wed, 30 Jun 2027 00:00:00 GMT"),
        "RFC 8594"
    );
    assert!(
        gw.get("/v1/jobs/100001/operations")
            .header("deprecation")
            .is_none()
    );
    assert_eq!(
        r.header("link"),
        Some("</v1/jobs/100001/operations>; rel=\"successor-version\"")
    );
    let doc = gw.get("/openapi/v1.json").json();
    let routing = &doc["paths"]["/v1/jobs/{job_number}/routing"]["get"];
    assert_eq!(routing["deprecated"], true);
    assert!(routing["responses"]["200"]["headers"]["Link"].is_object());
    assert!(
        routing["description"]
            .as_str()
            .is_some_and(|d| d.contains("Use `listJobOperations`")),
        "{routing}"
    );
}

#[test]
fn v1_and_v2_answer_side_by_side_and_v1_points_to_its_successor() {
    let gw = Gateway::repo_demo();
    let v1 = gw.get("/v1/jobs/100001");
    assert_eq!(v1.status, 200, "{}", v1.text);
    assert_eq!(v1.header("deprecation"), Some("@1796083200"), "2026-12-01");
    assert_eq!(v1.header("sunset"), Some("Fri, 31 Dec 2027 00:00:00 GMT"));
    assert_eq!(
        v1.header("link"),
        Some("</v2/jobs/100001>; rel=\"successor-version\"")
    );
    // Errors of a deprecated route say so too.
    let missing = gw.get("/v1/jobs/999999");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("link"),
        Some("</v2/jobs/999999>; rel=\"successor-version\"")
    );
    let v2 = gw.get("/v2/jobs/100001");
    assert_eq!(v2.status, 200, "{}", v2.text);
    assert!(v2.header("deprecation").is_none());
    assert!(v2.header("link").is_none());
    let (a, b) = (v1.json(), v2.json());
    assert_eq!(a["job_number"], b["job_number"]);
    assert!(
        a["unit_price"].is_number() && b["unit_price"].is_string(),
        "{a} {b}"
    );
    let digits = b["unit_price"].as_str().expect("a string");
    assert!(
        v1.text.contains(&format!("\"unit_price\":{digits}")),
        "the same digits: {} {}",
        v1.text,
        v2.text
    );
    assert!(b["customer_name"].is_string() && a.get("customer_name").is_none());
    assert!(a["quantity_ordered"].is_number() && b["ordered"].is_string());
    // Each version has its document; v1's points to v2.
    let d1 = gw.get("/openapi/v1.json").json();
    let d2 = gw.get("/openapi/v2.json").json();
    let get1 = &d1["paths"]["/v1/jobs/{job_number}"]["get"];
    assert_eq!(get1["deprecated"], true);
    assert!(
        get1["description"]
            .as_str()
            .is_some_and(|d| d.contains("Use `getJobV2` (`/v2/jobs/{job_number}`)")),
        "{get1}"
    );
    let get2 = &d2["paths"]["/v2/jobs/{job_number}"]["get"];
    assert_eq!(get2["operationId"], "getJobV2");
    assert!(get2.get("deprecated").is_none_or(|d| d == false));
    let init = gw.get("/docs/swagger-initializer.js").text;
    assert!(
        init.contains("/openapi/v1.json") && init.contains("/openapi/v2.json"),
        "{init}"
    );
    // Who still calls v1: counted by route and client identity.
    let metrics = gw.get("/metrics").text;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("patina_deprecated_requests_total{route=\"getJob\",client=\"sub:"))
        .unwrap_or_else(|| panic!("no count of getJob's callers:\n{metrics}"));
    assert!(line.ends_with(" 2"), "{line}");
    assert!(!metrics.contains("patina_deprecated_requests_total{route=\"getJobV2\""));
}

/// Columns mapped without a `type` (served as their SQL type decides) and columns the mapping
/// does not name at all (served under their lower-cased names).
const DRIFT: &str = "source = \"demo\"
[[route]]
id = \"drift\"
path = \"/drift\"
public = true
sql = \"SELECT JOBNO, QTYOR, JOBDS, DUEDT, UNTPR FROM JOBMST ORDER BY JOBNO\"
columns.JOBNO = \"job_number\"
columns.QTYOR = { name = \"quantity\" }

[[route]]
id = \"driftOne\"
path = \"/drift/{n}\"
public = true
one = true
sql = \"SELECT * FROM JOBMST WHERE JOBNO = :n\"
params.n = \"integer\"
";

common::on_both!(served_rows_validate_against_the_document);

/// The document says exactly what is served: every route of the demo and of a fixture with
/// untyped and unmapped columns answers with bodies that validate against the response schema
/// the served document gives (closed row schemas, so any drift fails).
fn served_rows_validate_against_the_document(db: &common::TestDb) {
    let root = Path::new(common::ROOT).join("mappings/v1");
    let jobs = std::fs::read_to_string(root.join("jobs.toml")).expect("jobs.toml");
    let customers = std::fs::read_to_string(root.join("customers.toml")).expect("customers.toml");
    // getJob names its successor in v2.
    let jobs_v2 = std::fs::read_to_string(root.join("../v2/jobs.toml")).expect("v2/jobs.toml");
    let files = [
        ("v1/jobs.toml", jobs.as_str()),
        ("v2/jobs.toml", jobs_v2.as_str()),
        ("v1/customers.toml", customers.as_str()),
        ("v1/drift.toml", DRIFT),
    ];
    let gw = Gateway::start(
        db,
        &common::Options {
            mappings: Some(&files),
            ..common::Options::default()
        },
    );
    // The start-up check describes every route; the served document then lists the columns
    // the mapping leaves open.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let doc = loop {
        let doc = gw.get("/openapi/v1.json").json();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        if schemas
            .iter()
            .filter(|(name, _)| *name != "Problem")
            .all(|(_, s)| s["additionalProperties"] == false)
        {
            break doc;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the document never learned every route's columns: {}",
            doc["components"]["schemas"]
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        doc["components"]["schemas"]["Drift"]["properties"]["jobds"].is_object(),
        "columns the mapping does not name are documented: {}",
        doc["components"]["schemas"]["Drift"]
    );
    let values = [
        ("job_number", "100001"),
        ("customer_number", "1001"),
        ("n", "100001"),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 10, "{}", paths.len());
    for (template, item) in paths {
        let mut path = template.clone();
        for (name, value) in values {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        assert!(
            !path.contains('{'),
            "no value for a parameter of {template}"
        );
        let r = gw.get(&path);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let mut schema =
            item["get"]["responses"]["200"]["content"]["application/json"]["schema"].clone();
        schema["components"] = doc["components"].clone();
        let validator = jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("{template}: the documented schema is invalid: {e}"));
        let body = r.json();
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{path} on {}: the served body does not match its documented schema:\n{}\nbody: {}",
            db.dialect,
            errors.join("\n"),
            r.text
        );
    }
}
