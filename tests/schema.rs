//! The editor schemas under `schemas/`: generated from the types the reader uses, so they must
//! be current; every shipped mapping and config must pass them (and name them on its first
//! line for the editor); a mistake the gateway refuses must be refused by the schema too; and
//! the mapping reference (mappings/README.md) must name every field of a mapping file.

use std::path::PathBuf;

use serde_json::Value;

const MAPPINGS: &[&str] = &[
    "mappings/v1/customers.toml",
    "mappings/v1/jobs.toml",
    "mappings/v1/notes.toml",
    "mappings/v1/orders.toml",
    "benches/mappings/v1/bench.toml",
    "deploy/examples/postgres-procedure.toml",
];

const CONFIGS: &[&str] = &[
    "patina.toml",
    "deploy/compose/patina.toml",
    "deploy/examples/sqlserver.toml",
    "deploy/examples/sqlserver-2005-freetds.toml",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every mapping folder of the repository's version folders, besides the list above, so that
/// a new shipped file cannot escape the test.
fn shipped_mappings() -> Vec<String> {
    let mut files: Vec<String> = MAPPINGS.iter().map(ToString::to_string).collect();
    for dir in ["mappings", "benches/mappings"] {
        for version in std::fs::read_dir(root().join(dir)).expect("mapping folder") {
            let version = version.expect("entry").path();
            if !version.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&version).expect("version folder") {
                let f = f.expect("entry").path();
                if f.extension().is_some_and(|e| e == "toml") {
                    let rel = f
                        .strip_prefix(root())
                        .expect("inside the repository")
                        .to_string_lossy()
                        .into_owned();
                    if !files.contains(&rel) {
                        files.push(rel);
                    }
                }
            }
        }
    }
    files
}

fn committed(name: &str) -> Value {
    let text = std::fs::read_to_string(root().join("schemas").join(name))
        .unwrap_or_else(|e| panic!("schemas/{name}: {e}; write it with `patina schema`"));
    serde_json::from_str(&text).expect("committed schema is JSON")
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft7::new(schema).expect("a valid draft-7 schema")
}

fn toml_as_json(text: &str) -> Value {
    toml::from_str::<Value>(text).expect("valid TOML")
}

/// The messages of every place where `doc` breaks the schema.
fn violations(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn committed_schemas_are_current() {
    for (name, now) in [
        ("mapping.schema.json", patina::mapping::mapping_schema()),
        ("config.schema.json", patina::config::config_schema()),
    ] {
        assert!(
            committed(name) == now,
            "schemas/{name} is stale: run `cargo run -- schema` and commit the result"
        );
    }
}

#[test]
fn every_shipped_mapping_and_config_passes_its_schema_and_names_it() {
    let mapping = validator(&committed("mapping.schema.json"));
    let config = validator(&committed("config.schema.json"));
    let mut checked = 0;
    for (files, v, schema) in [
        (shipped_mappings(), &mapping, "mapping.schema.json"),
        (
            CONFIGS.iter().map(ToString::to_string).collect(),
            &config,
            "config.schema.json",
        ),
    ] {
        for rel in files {
            let path = root().join(&rel);
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
            let errors = violations(v, &toml_as_json(&text));
            assert!(errors.is_empty(), "{rel} breaks {schema}: {errors:#?}");
            let first = text.lines().next().unwrap_or_default();
            let target = first
                .strip_prefix("#:schema ")
                .unwrap_or_else(|| panic!("{rel} must start with `#:schema …/{schema}`"));
            let resolved = path.parent().expect("a folder").join(target);
            assert!(
                target.ends_with(schema) && resolved.exists(),
                "{rel}: `#:schema {target}` does not lead to schemas/{schema}"
            );
            checked += 1;
        }
    }
    assert!(checked >= MAPPINGS.len() + CONFIGS.len());
}

#[test]
fn a_mistake_the_gateway_refuses_the_schema_refuses_too() {
    let mapping = validator(&committed("mapping.schema.json"));
    let config = validator(&committed("config.schema.json"));
    let cases: &[(&str, &str)] = &[
        (
            "unknown route field",
            "[[route]]\nid = \"x\"\npath = \"/x\"\nsqll = \"SELECT 1\"\n",
        ),
        (
            "unknown column field",
            "[[route]]\nid = \"x\"\npath = \"/x\"\nsql = \"SELECT A FROM T\"\ncolumns.A = { nmae = \"a\" }\n",
        ),
        (
            "unknown parameter type",
            "[[route]]\nid = \"x\"\npath = \"/x/{n}\"\nsql = \"SELECT A FROM T WHERE A = :n\"\nparams.n = \"int\"\n",
        ),
        (
            "date format that does not exist",
            "[[route]]\nid = \"x\"\npath = \"/x\"\nsql = \"SELECT A FROM T\"\ncolumns.A = { type = \"date\", format = \"ddmmyy\" }\n",
        ),
        (
            "route without a path",
            "[[route]]\nid = \"x\"\nsql = \"SELECT 1\"\n",
        ),
        ("unknown top-level key", "sorce = \"demo\"\n"),
    ];
    for (what, text) in cases {
        assert!(
            !violations(&mapping, &toml_as_json(text)).is_empty(),
            "the mapping schema lets through a {what}"
        );
        // `patina check` refuses the same file.
        let dir = tempfile::tempdir().expect("tempdir");
        let v1 = dir.path().join("mappings/v1");
        std::fs::create_dir_all(&v1).expect("v1");
        std::fs::write(v1.join("t.toml"), format!("source = \"demo\"\n{text}")).expect("write");
        std::fs::write(
            dir.path().join("patina.toml"),
            "[server]\nmappings = \"mappings\"\n\n[sources.demo]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"Driver=SQLite3;Database=/nonexistent\"\n",
        )
        .expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_patina"))
            .args(["check", "--config"])
            .arg(dir.path().join("patina.toml"))
            .output()
            .expect("patina check runs");
        assert_eq!(
            out.status.code(),
            Some(2),
            "patina check accepts a {what}, the schema does not: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bad_config = "[server]\nlisten = \"127.0.0.1:0\"\nmax_rowz = 5\n\n[sources.demo]\nkind = \"odbc\"\nconnection_string = \"DSN=x\"\n";
    assert!(!violations(&config, &toml_as_json(bad_config)).is_empty());
    let bad_kind = "[sources.demo]\nkind = \"odbc\"\nhost = \"db\"\n";
    assert!(
        !violations(&config, &toml_as_json(bad_kind)).is_empty(),
        "an mssql option on an odbc source passes the schema"
    );
}

#[test]
fn the_mapping_reference_names_every_field() {
    let reference = std::fs::read_to_string(root().join("mappings/README.md")).expect("reference");
    let mut names = Vec::new();
    collect_properties(&committed("mapping.schema.json"), &mut names);
    names.sort();
    names.dedup();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !reference.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "mappings/README.md does not describe these mapping fields: {missing:?}"
    );
    assert!(names.len() > 60, "only {} fields found", names.len());
}

fn collect_properties(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            map.values().for_each(|x| collect_properties(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| collect_properties(x, out)),
        _ => {}
    }
}
