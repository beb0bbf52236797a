//! The documents built from small catalogs: parameters, columns, errors, the list envelope.
use super::*;
use crate::mapping::testing::{compile_text, sources};

fn catalog(text: &str) -> Catalog {
    compile_text("jobs.toml", text, &sources()).expect("compiles")
}

#[test]
fn documents_parameters_columns_and_errors() {
    let c = catalog(
        r#"source = "db"
[[route]]
id = "getJob"
path = "/jobs/{n}"
scopes = ["jobs:read"]
one = true
summary = "One job"
deprecated = "2026-01-01"
sunset = "2027-06-30"
sql = "SELECT A, B, C, D FROM T WHERE N = :n AND S = :s"
params.n = { type = "integer", minimum = 1, example = 7 }
params.s = { codes = { R = "released" }, description = "status" }
columns.A = { name = "a", type = "decimal", scale = 2, nullable = false }
columns.B = { name = "b", type = "date", format = "cyymmdd" }
columns.C = { name = "c", codes = { R = "released" }, unknown_code = "error", nullable = false }
columns.D = { name = "d", type = "time", format = "hhmmss" }
"#,
    );
    let info = DocsInfo {
        bearer: true,
        api_keys: true,
        ..DocsInfo::default()
    };
    let doc = serde_json::to_value(document(&c, &Learned::new(0), "v1", &info)).expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let op = &doc["paths"]["/v1/jobs/{n}"]["get"];
    assert_eq!(op["operationId"], "getJob");
    assert_eq!(op["deprecated"], true);
    assert_eq!(op["tags"], json!(["jobs"]));
    assert_eq!(op["parameters"][0]["in"], "path");
    assert_eq!(op["parameters"][0]["schema"]["minimum"], 1.0);
    assert_eq!(op["parameters"][0]["example"], 7);
    assert_eq!(op["parameters"][1]["schema"]["enum"], json!(["released"]));
    assert_eq!(
        op["security"],
        json!([{"bearerAuth": ["jobs:read"]}, {"apiKeyAuth": ["jobs:read"]}])
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["apiKeyAuth"]["name"],
        "X-API-Key"
    );
    assert!(op["responses"]["429"].is_null(), "no rate limit configured");
    for status in ["200", "400", "401", "403", "404", "500", "503", "504"] {
        assert!(op["responses"][status].is_object(), "{status}");
    }
    assert!(op["responses"]["200"]["headers"]["Sunset"].is_object());
    let row = &doc["components"]["schemas"]["GetJob"];
    assert_eq!(row["properties"]["a"]["type"], "number");
    assert_eq!(row["properties"]["b"]["type"], json!(["string", "null"]));
    assert_eq!(row["properties"]["b"]["format"], "date");
    assert_eq!(row["properties"]["c"]["enum"], json!(["released"]));
    assert!(
        row["required"].is_null(),
        "`fields` may leave any field of a read out: {row}"
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

#[test]
fn lists_use_the_envelope() {
    let c = catalog(
        "source = \"db\"\n[[route]]\nid = \"listJobs\"\npath = \"/jobs\"\npublic = true\nmax_rows = 5\nsql = \"SELECT A FROM T\"\ncolumns.A = \"a\"\n",
    );
    let doc = serde_json::to_value(document(&c, &Learned::new(0), "v1", &DocsInfo::default()))
        .expect("json");
    let schema = &doc["paths"]["/v1/jobs"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert_eq!(schema["properties"]["data"]["maxItems"], 5);
    assert_eq!(
        schema["properties"]["data"]["items"]["$ref"],
        "#/components/schemas/ListJobs"
    );
    assert_eq!(schema["required"], json!(["data", "next"]));
    let op = &doc["paths"]["/v1/jobs"]["get"];
    assert!(
        op["responses"]["400"].is_object(),
        "a read takes `fields`, which can be wrong"
    );
    let names: Vec<&str> = op["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["fields", "count", "Prefer"],
        "no pages, no sort, no export"
    );
    assert_eq!(
        schema["properties"]["total"]["type"],
        json!(["integer", "null"])
    );
}

#[test]
fn paged_lists_document_their_controls_and_exports() {
    let c = catalog(
        "source = \"db\"\n[[route]]\nid = \"listJobs\"\npath = \"/jobs\"\npublic = true\n\
         sql = \"SELECT A, B FROM T\"\npage = { by = [\"A\"], size = 20, max = 100 }\n\
         sort = [\"a\", \"b\"]\nexport = { max_rows = 10 }\ncount = false\ncolumns.A = \"a\"\ncolumns.B = \"b\"\n",
    );
    let doc = serde_json::to_value(document(&c, &Learned::new(0), "v1", &DocsInfo::default()))
        .expect("json");
    let op = &doc["paths"]["/v1/jobs"]["get"];
    let param = |name: &str| {
        op["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {op}"))
            .clone()
    };
    assert_eq!(param("limit")["schema"]["maximum"], 100);
    assert_eq!(param("limit")["schema"]["default"], 20);
    assert_eq!(param("cursor")["schema"]["type"], "string");
    assert_eq!(
        param("sort")["schema"]["items"]["enum"],
        json!(["a", "-a", "b", "-b"])
    );
    assert_eq!(param("sort")["explode"], false);
    assert_eq!(
        param("fields")["schema"]["items"]["enum"],
        json!(["a", "b"])
    );
    assert_eq!(
        param("format")["schema"]["enum"],
        json!(["json", "ndjson", "csv"])
    );
    assert!(
        op["parameters"]
            .as_array()
            .expect("p")
            .iter()
            .all(|p| p["name"] != "count")
    );
    let ok = &op["responses"]["200"];
    assert!(ok["headers"]["Link"].is_object());
    assert!(ok["content"]["text/csv"].is_object());
    assert_eq!(
        ok["content"]["application/x-ndjson"]["schema"]["$ref"],
        "#/components/schemas/ListJobs"
    );
    let schema = &ok["content"]["application/json"]["schema"];
    assert_eq!(schema["properties"]["data"]["maxItems"], 100);
    assert!(schema["properties"]["total"].is_null(), "counts are off");
}
