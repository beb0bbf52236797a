//! The editor schema of a mapping file, generated from the raw types the reader deserializes
//! (their field docs are the descriptions), so completion and validation in the editor match
//! `patina check`. The types here exist for the schema only: a whole file and route (the reader
//! takes `params`, `columns` and `body` apart by hand, with shorthands), and the closed sets
//! of words some fields take. `patina schema` writes the result under `schemas/`.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde_json::Value;

use super::raw::{RawColumn, RawParam, RawRoute};

/// The editor schema of a mapping file.
pub fn mapping_schema() -> Value {
    crate::config::schema_for::<MappingFileSchema>()
}

/// A mapping file: the routes of one API version (its folder, e.g. `mappings/v1/`).
#[derive(JsonSchema)]
#[schemars(title = "Patina mapping file")]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct MappingFileSchema {
    /// The source (a `[sources.NAME]` of patina.toml) of every route that names none.
    source: Option<String>,
    /// The routes, each under its own `[[route]]` header.
    route: Option<Vec<RouteSchema>>,
}

/// One route: an HTTP method and path below the version prefix, and the SQL it runs.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RouteSchema {
    #[serde(flatten)]
    head: RawRoute,
    /// Path and query parameters: `params.NAME = { ... }`, or `params.NAME = "integer"` for
    /// the type alone. Bound where the SQL says `:NAME`.
    params: Option<IndexMap<String, ParamEntry>>,
    /// Write routes: the JSON body's fields, `body.NAME = { ... }` or `body.NAME = "string"`.
    body: Option<IndexMap<String, ParamEntry>>,
    /// The result columns: `columns.COLUMN = { name = "json_name", ... }`, or
    /// `columns.COLUMN = "json_name"` for the name alone.
    columns: Option<IndexMap<String, ColumnEntry>>,
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ParamEntry {
    Type(ParamTypeName),
    Full(Box<RawParam>),
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(super) enum ColumnEntry {
    /// The JSON field name.
    Name(String),
    Full(Box<RawColumn>),
}

/// An HTTP method.
#[derive(JsonSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)]
pub(super) enum MethodName {
    GET,
    POST,
    PUT,
    PATCH,
    DELETE,
}

/// The type of a parameter or body field.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum ParamTypeName {
    String,
    Integer,
    Number,
    Decimal,
    Boolean,
    Date,
    Time,
    Datetime,
    Code,
    List,
}

/// The JSON type a column becomes.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum ColumnTypeName {
    String,
    Integer,
    Number,
    Decimal,
    Boolean,
    Date,
    Time,
    Datetime,
    Code,
    Binary,
}

/// How a date or time is stored: `iso`, `cyymmdd` or `yyyymmdd` (dates), `iso` or `hhmmss`
/// (times).
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum FormatName {
    Iso,
    Cyymmdd,
    Yyyymmdd,
    Hhmmss,
}

/// Where the gateway puts the wildcard of a `LIKE`.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum LikeName {
    Prefix,
    Contains,
    Suffix,
}

/// What a code not in `codes` becomes.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum UnknownCodeName {
    Raw,
    Null,
    Error,
}

/// `optional` or `required`.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum RequirementName {
    Optional,
    Required,
}

/// `direct` or `queued`.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum DeliveryName {
    Direct,
    Queued,
}

/// `true` (both ends), `false`, or `"end"` (the padding of a CHAR column).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(super) enum TrimValue {
    Both(bool),
    End(EndWord),
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(super) enum EndWord {
    End,
}
