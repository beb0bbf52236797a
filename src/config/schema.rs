//! The editor schema of `patina.toml` (JSON Schema, draft 7, which editors' TOML plugins read),
//! generated from the raw section types so that it cannot drift from what the reader accepts:
//! their field docs are the descriptions. The few types here exist for the schema only: the
//! closed sets of words some options take, and the shape of a `[sources.NAME]` table (which the
//! reader takes apart by hand). `patina schema` writes the result under `schemas/`.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde_json::Value;

use super::raw::{
    RawAudit, RawAuth, RawBridge, RawCommon, RawDocs, RawMssql, RawOdbc, RawQueue, RawRateLimit,
    RawServer, RawState,
};

/// The schema of `T` as an editor wants it: draft 7, and no `null` (TOML has none; an option
/// is simply left out).
pub fn schema_for<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    drop_null(&mut schema);
    schema
}

/// Remove `null` from every `type` list and every `anyOf` of a schema.
fn drop_null(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any)) = map.get_mut("anyOf") {
                any.retain(|s| s.get("type").is_none_or(|t| t != "null"));
                if any.len() == 1 {
                    let only = any.remove(0);
                    map.remove("anyOf");
                    if let Value::Object(inner) = only {
                        for (k, val) in inner {
                            map.entry(k).or_insert(val);
                        }
                    }
                }
            }
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                values.retain(|x| !x.is_null());
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

/// The editor schema of `patina.toml`.
pub fn config_schema() -> Value {
    schema_for::<ConfigFile>()
}

/// `patina.toml`: the gateway's configuration. Mapping files (the routes) are apart, in the
/// folder `[server] mappings` names.
#[derive(JsonSchema)]
#[schemars(title = "patina.toml")]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ConfigFile {
    server: Option<RawServer>,
    docs: Option<RawDocs>,
    auth: Option<RawAuth>,
    rate_limit: Option<RawRateLimit>,
    audit: Option<RawAudit>,
    state: Option<RawState>,
    queue: Option<RawQueue>,
    bridge: Option<RawBridge>,
    /// The databases, by the name mapping files give as `source`.
    sources: Option<IndexMap<String, SourceTable>>,
}

/// `[sources.NAME]`: a database the routes read and write, its options chosen by `kind`.
#[derive(JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
// Never built: it describes the file for the schema only.
#[allow(dead_code, clippy::large_enum_variant)]
enum SourceTable {
    /// Any ODBC driver: IBM i Access, PostgreSQL, SQLite, Db2, ...
    Odbc(OdbcSource),
    /// SQL Server, spoken to directly over TDS.
    Mssql(MssqlSource),
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct OdbcSource {
    #[serde(flatten)]
    common: RawCommon,
    #[serde(flatten)]
    own: RawOdbc,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct MssqlSource {
    #[serde(flatten)]
    common: RawCommon,
    #[serde(flatten)]
    own: RawMssql,
}

/// The SQL dialect of a source.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum DialectName {
    Db2i,
    Mssql,
    Postgres,
    Sqlite,
}

/// What a stored value no codec can decode becomes.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum OnInvalidName {
    Error,
    Null,
    Raw,
}

/// `embedded` or `redis`.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum BackendName {
    Embedded,
    Redis,
}

/// `open` or `closed`.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum UnreachableName {
    Open,
    Closed,
}

/// TLS towards SQL Server.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub(super) enum EncryptName {
    Required,
    Strict,
    LoginOnly,
    Off,
}
