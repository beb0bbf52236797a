//! The raw form of a mapping file as serde reads it: a `[[route]]` head, and each
//! `params.NAME` / `columns.NAME` entry read on its own so that a mistake in one does not hide
//! mistakes in the others. Checking what was read is the compile steps' job.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::schema::{
    ColumnTypeName, DeliveryName, FormatName, LikeName, MethodName, ParamTypeName, RequirementName,
    TrimValue, UnknownCodeName,
};
use crate::config::OnInvalidName;
use crate::diag::{Diagnostics, SourceFile};

/// One `[[route]]`, without its `params` and `columns` (read one by one, so that a mistake in
/// one does not hide mistakes in the others).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    /// Unique id; becomes the OpenAPI `operationId`.
    #[schemars(with = "String")]
    pub(super) id: Spanned<String>,
    /// HTTP method. Default GET.
    #[schemars(with = "Option<MethodName>")]
    pub(super) method: Option<Spanned<String>>,
    /// Path below the version prefix, e.g. `/jobs/{job_number}`.
    #[schemars(with = "String")]
    pub(super) path: Spanned<String>,
    pub(super) summary: Option<String>,
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) tags: Vec<String>,
    /// Scopes a caller needs.
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    /// Say so explicitly for a route anyone may call.
    #[serde(default)]
    pub(super) public: bool,
    /// Return one object (404 when no row) instead of a list.
    #[serde(default)]
    pub(super) one: bool,
    /// Keep responses this long (e.g. `5s`); identical requests meanwhile share one query.
    #[schemars(with = "Option<String>")]
    pub(super) cache: Option<Spanned<String>>,
    /// Cancel the statement after this long (overrides the source's `statement_timeout`).
    #[schemars(with = "Option<String>")]
    pub(super) statement_timeout: Option<Spanned<String>>,
    /// Per-identity limit for this route, e.g. `10/minute`.
    #[schemars(with = "Option<String>")]
    pub(super) rate_limit: Option<Spanned<String>>,
    /// Deprecated since this date (YYYY-MM-DD): `Deprecation` header, marked in the docs.
    #[schemars(with = "Option<String>")]
    pub(super) deprecated: Option<Spanned<String>>,
    /// The date after which the route goes away: `Sunset` header.
    #[schemars(with = "Option<String>")]
    pub(super) sunset: Option<Spanned<String>>,
    /// A deprecated route's replacement, by its `id` (e.g. `"getJobV2"`): responses carry
    /// `Link: <...>; rel="successor-version"` with this request's values filled in.
    #[schemars(with = "Option<String>")]
    pub(super) successor: Option<Spanned<String>>,
    /// Why a breaking change to this route's published document (`openapi/vN.json`) is
    /// accepted; without it `patina check` refuses a removed field, a narrowed type, a newly
    /// required parameter or a removed status.
    #[schemars(with = "Option<String>")]
    pub(super) accept_breaking: Option<Spanned<String>>,
    /// Row cap for a list route.
    #[schemars(with = "Option<usize>")]
    pub(super) max_rows: Option<Spanned<usize>>,
    /// Keyset paging: `page = { by = ["DUEDT", "-JOBNO"], size = 50, max = 500 }`; `by` names
    /// columns (`-` for descending) ending in a unique combination.
    #[schemars(with = "Option<RawPage>")]
    pub(super) page: Option<Spanned<RawPage>>,
    /// Public field names a caller may sort by (`sort=due_on,-job_number`); needs `page`.
    #[schemars(with = "Option<Vec<String>>")]
    pub(super) sort: Option<Spanned<Vec<String>>>,
    /// The time budget of a count a caller asks for (`Prefer: count=exact`), e.g. `"2s"`
    /// (the default), or `false` to refuse counts.
    #[schemars(with = "Option<RawCount>")]
    pub(super) count: Option<Spanned<RawCount>>,
    /// Streaming NDJSON and CSV exports: `export = { max_rows = 1_000_000 }`.
    #[schemars(with = "Option<RawExport>")]
    pub(super) export: Option<Spanned<RawExport>>,
    /// The columns that identify a row in log lines and `patina scan` reports, e.g.
    /// `["JOBNO"]` (default: `page.by`).
    #[schemars(with = "Option<Vec<String>>")]
    pub(super) key: Option<Spanned<Vec<String>>>,
    /// Overrides the file's `source`.
    #[schemars(with = "Option<String>")]
    pub(super) source: Option<Spanned<String>>,
    /// The statement, with `:name` parameters (or `[[route.step]]` for several).
    #[schemars(with = "Option<String>")]
    pub(super) sql: Option<Spanned<String>>,
    /// A `one = true` read: the `ETag` is a hash of these columns only (a version column,
    /// say) rather than of the whole row.
    #[schemars(with = "Option<Vec<String>>")]
    pub(super) etag_columns: Option<Spanned<Vec<String>>>,
    /// Writes: statements run in order in one transaction, all or nothing.
    #[schemars(with = "Option<Vec<RawStep>>")]
    pub(super) step: Option<Spanned<Vec<RawStep>>>,
    /// Writes: the `Location` of what was created, e.g. `/v1/jobs/{job_number}/notes/{seq}`;
    /// names are response fields, parameters, body fields or step outputs.
    #[schemars(with = "Option<String>")]
    pub(super) location: Option<Spanned<String>>,
    /// Writes: the status of a success that answers with a row (default 201 for POST, else
    /// 200; 204 when nothing is answered).
    #[schemars(with = "Option<u16>")]
    pub(super) status: Option<Spanned<u16>>,
    /// Writes: `optional` (the default) or `required` (400 without the
    /// `Idempotency-Key` header).
    #[schemars(with = "Option<RequirementName>")]
    pub(super) idempotency: Option<Spanned<String>>,
    /// Writes: the `one = true` GET route whose `ETag` an `If-Match` is checked against, in
    /// the write's transaction.
    #[schemars(with = "Option<String>")]
    pub(super) etag_from: Option<Spanned<String>>,
    /// Writes: `optional` (default when `etag_from` is set) or `required` (428 without it).
    #[schemars(with = "Option<RequirementName>")]
    pub(super) if_match: Option<Spanned<String>>,
    /// Writes: the body is an array of objects, written all or none.
    #[schemars(with = "Option<RawBulk>")]
    pub(super) bulk: Option<Spanned<RawBulk>>,
    /// Writes: a column of the last step's row whose values stand for responses (a stored
    /// procedure's return code).
    #[schemars(with = "Option<String>")]
    pub(super) outcome_column: Option<Spanned<String>>,
    /// Writes: value of `outcome_column` → response, e.g. `outcomes.1 = { status = 409,
    /// detail = "The job is already released." }`.
    #[schemars(with = "Option<IndexMap<String, RawOutcome>>")]
    pub(super) outcomes: Option<Spanned<IndexMap<String, RawOutcome>>>,
    /// Writes: `direct` (default: run now, answer with the result) or `queued` (202, delivered
    /// in the background with retries; failures end in the dead-letter queue).
    #[schemars(with = "Option<DeliveryName>")]
    pub(super) delivery: Option<Spanned<String>>,
    /// Queued writes: the parameter or body field whose value keeps deliveries in order.
    #[schemars(with = "Option<String>")]
    pub(super) order_key: Option<Spanned<String>>,
    /// Queued writes: the table on the target database that records delivered ids in each
    /// delivery's transaction (effect exactly once).
    #[schemars(with = "Option<String>")]
    pub(super) dedup_table: Option<Spanned<String>>,
    /// Reads: the same answer from another database, compared off the request path:
    /// `shadow = { source = "newdb", sql = "...", sample = 0.1, columns.NEW_COL = "field" }`.
    #[schemars(with = "Option<RawShadow>")]
    pub(super) shadow: Option<Spanned<RawShadow>>,
    /// Direct writes: the same write on the new database, delivered through the write queue
    /// after the route's own commits: `[route.mirror]` with `source`, `sql` (or
    /// `[[route.mirror.step]]`), `dedup_table`, `retry`, `order_key`.
    #[schemars(with = "Option<RawMirror>")]
    pub(super) mirror: Option<Spanned<RawMirror>>,
    /// Queued writes: `retry = { base = "1s", cap = "5m", max_attempts = 20, max_age = "24h" }`.
    #[schemars(with = "Option<RawRetry>")]
    pub(super) retry: Option<Spanned<RawRetry>>,
    /// `one = true` reads: concurrent lookups of this route waiting for a connection run as one
    /// statement (`column IN (…)`): `batch = { max = 32 }`. Needs SQL of the form
    /// `SELECT … WHERE column = :key AND …`.
    #[schemars(with = "Option<RawBatch>")]
    pub(super) batch: Option<Spanned<RawBatch>>,
}

/// `batch = { ... }` of a `one = true` read.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBatch {
    /// Most lookups in one statement, 2 to 256. Default 32.
    #[schemars(with = "Option<usize>")]
    pub(super) max: Option<Spanned<usize>>,
    /// The parameter looked up (default: the route's only path parameter).
    #[schemars(with = "Option<String>")]
    pub(super) key: Option<Spanned<String>>,
}

/// `page = { ... }` of a list route.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPage {
    #[schemars(with = "Vec<String>")]
    pub(super) by: Spanned<Vec<String>>,
    #[schemars(with = "Option<usize>")]
    pub(super) size: Option<Spanned<usize>>,
    #[schemars(with = "Option<usize>")]
    pub(super) max: Option<Spanned<usize>>,
}

/// `count = "2s"` or `count = false`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(super) enum RawCount {
    Enabled(bool),
    Budget(String),
}

/// `export = { ... }` of a list route.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExport {
    #[schemars(with = "Option<usize>")]
    pub(super) max_rows: Option<Spanned<usize>>,
}

/// `shadow = { ... }` of a read route: the migration bridge's second answer. `source`, `sql`
/// and `columns` are compiled from the route's table as a route of their own (`shadow.rs`);
/// reading them here checks their shape.
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShadow {
    /// The new database (a source of patina.toml).
    #[schemars(with = "String")]
    pub(super) source: Spanned<String>,
    /// Its statement, with the route's `:name` parameters.
    #[schemars(with = "String")]
    pub(super) sql: Spanned<String>,
    /// The share of requests compared, from 0 (none) to 1 (all). Default 1.
    #[schemars(with = "Option<f64>")]
    pub(super) sample: Option<Spanned<f64>>,
    /// How long a shadow statement may run. Default `2s`.
    #[schemars(with = "Option<String>")]
    pub(super) timeout: Option<Spanned<String>>,
    /// Shadow statements of this route running at once; beyond, a request is not compared.
    /// Default 4.
    #[schemars(with = "Option<usize>")]
    pub(super) concurrency: Option<Spanned<usize>>,
    /// The new statement's columns, decoded into the route's public fields, as `columns`.
    #[schemars(with = "Option<IndexMap<String, super::schema::ColumnEntry>>")]
    pub(super) columns: Option<Spanned<toml::Value>>,
}

/// `mirror = { ... }` of a direct write: the migration bridge's mirrored write. Compiled from
/// the route's table as a queued route of its own (`bridge.rs`); reading it here checks its
/// shape.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct RawMirror {
    /// The new database (a source of patina.toml).
    #[schemars(with = "String")]
    pub(super) source: Spanned<String>,
    /// The statement, with the route's `:name` parameters and body fields (or `step`).
    #[schemars(with = "Option<String>")]
    pub(super) sql: Option<Spanned<String>>,
    /// Statements run in order in one transaction.
    #[schemars(with = "Option<Vec<RawStep>>")]
    pub(super) step: Option<Spanned<Vec<RawStep>>>,
    /// The table on the new database that records delivered ids (effect exactly once).
    #[schemars(with = "Option<String>")]
    pub(super) dedup_table: Option<Spanned<String>>,
    /// How the mirrored write is retried while the new database is away.
    #[schemars(with = "Option<RawRetry>")]
    pub(super) retry: Option<Spanned<RawRetry>>,
    /// The parameter or body field whose value keeps mirrored writes in order.
    #[schemars(with = "Option<String>")]
    pub(super) order_key: Option<Spanned<String>>,
}

/// `retry = { ... }` of a queued write.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    #[schemars(with = "Option<String>")]
    pub(super) base: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub(super) cap: Option<Spanned<String>>,
    #[schemars(with = "Option<u32>")]
    pub(super) max_attempts: Option<Spanned<u32>>,
    #[schemars(with = "Option<String>")]
    pub(super) max_age: Option<Spanned<String>>,
}

/// One `[[route.step]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    #[schemars(with = "String")]
    pub(super) sql: Spanned<String>,
    /// Run once per element of this list field of the body.
    #[schemars(with = "Option<String>")]
    pub(super) for_each: Option<Spanned<String>>,
    /// With `for_each`: bind the element's place in the list (from 1) under this name.
    #[schemars(with = "Option<String>")]
    pub(super) index_as: Option<Spanned<String>>,
    /// Name the first result row's columns (in order); later steps bind them as `:name`.
    #[schemars(with = "Option<Vec<String>>")]
    pub(super) outputs: Option<Spanned<Vec<String>>>,
    /// 404 (and nothing written) when the statement touches no row. Default: true for the
    /// first step of a PUT, PATCH or DELETE.
    pub(super) require_rows: Option<bool>,
}

/// `bulk = { max = 500 }`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBulk {
    pub(super) max: usize,
}

/// `outcomes.VALUE = { status = 409, detail = "..." }`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutcome {
    #[schemars(with = "u16")]
    pub(super) status: Spanned<u16>,
    pub(super) detail: String,
}

/// `params.NAME = { ... }`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParam {
    /// integer, number, string, boolean, date or code. Default string (code when `codes`).
    #[serde(rename = "type")]
    #[schemars(with = "Option<ParamTypeName>")]
    pub(super) ty: Option<Spanned<String>>,
    #[schemars(with = "Option<bool>")]
    pub(super) required: Option<Spanned<bool>>,
    #[schemars(with = "Option<serde_json::Value>")]
    pub(super) default: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<serde_json::Value>")]
    pub(super) minimum: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<serde_json::Value>")]
    pub(super) maximum: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<usize>")]
    pub(super) min_length: Option<Spanned<usize>>,
    #[schemars(with = "Option<usize>")]
    pub(super) max_length: Option<Spanned<usize>>,
    #[schemars(with = "Option<String>")]
    pub(super) pattern: Option<Spanned<String>>,
    /// For strings matched with `LIKE :p ESCAPE '!'`: prefix, contains or suffix. The
    /// caller's `%` and `_` are taken literally; the gateway adds the wildcards.
    #[schemars(with = "Option<LikeName>")]
    pub(super) like: Option<Spanned<String>>,
    /// For dates: how the column stores them (iso, cyymmdd, yyyymmdd).
    #[schemars(with = "Option<FormatName>")]
    pub(super) format: Option<Spanned<String>>,
    /// Stored code → word, as for columns; the caller sends the word.
    #[schemars(with = "Option<IndexMap<String, String>>")]
    pub(super) codes: Option<Spanned<IndexMap<String, String>>>,
    #[schemars(with = "Option<String>")]
    pub(super) true_value: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub(super) false_value: Option<Spanned<String>>,
    /// Fill the parameter from this claim of the caller's verified token (or API key); it
    /// cannot be set by the request.
    #[schemars(with = "Option<String>")]
    pub(super) from_claim: Option<Spanned<String>>,
    /// Decimals: digits in all (the column's precision).
    #[schemars(with = "Option<u8>")]
    pub(super) precision: Option<Spanned<u8>>,
    /// Decimals: digits after the point (the column's scale); more are refused.
    #[schemars(with = "Option<u8>")]
    pub(super) scale: Option<Spanned<u8>>,
    /// Strings: pad with spaces to `max_length`, as a CHAR column stores it.
    #[schemars(with = "Option<bool>")]
    pub(super) pad: Option<Spanned<bool>>,
    /// Body fields: `null` is accepted and bound as NULL.
    #[schemars(with = "Option<bool>")]
    pub(super) nullable: Option<Spanned<bool>>,
    /// Body fields: never written to logs or audit records.
    #[schemars(with = "Option<bool>")]
    pub(super) sensitive: Option<Spanned<bool>>,
    /// Body fields of type `list`: the fields of each element.
    #[schemars(with = "Option<IndexMap<String, RawParam>>")]
    pub(super) items: Option<Spanned<IndexMap<String, RawParam>>>,
    #[schemars(with = "Option<usize>")]
    pub(super) min_items: Option<Spanned<usize>>,
    #[schemars(with = "Option<usize>")]
    pub(super) max_items: Option<Spanned<usize>>,
    pub(super) description: Option<String>,
    #[schemars(with = "Option<serde_json::Value>")]
    pub(super) example: Option<toml::Value>,
}

/// `columns.NAME = { ... }`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawColumn {
    /// JSON field name. Default: the column name in lower case.
    #[schemars(with = "Option<String>")]
    pub(super) name: Option<Spanned<String>>,
    /// string, integer, number, decimal, boolean, date, time, datetime, code or binary.
    /// Default: from the column's SQL type.
    #[serde(rename = "type")]
    #[schemars(with = "Option<ColumnTypeName>")]
    pub(super) ty: Option<Spanned<String>>,
    /// true (both ends), "end" (CHAR padding), or false.
    #[schemars(with = "Option<TrimValue>")]
    pub(super) trim: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<FormatName>")]
    pub(super) format: Option<Spanned<String>>,
    #[schemars(with = "Option<IndexMap<String, String>>")]
    pub(super) codes: Option<Spanned<IndexMap<String, String>>>,
    /// What to do with a code not in `codes`: raw (default), null or error.
    #[schemars(with = "Option<UnknownCodeName>")]
    pub(super) unknown_code: Option<Spanned<String>>,
    /// Stored values (after trimming) that mean null, e.g. `[0, ""]`.
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    pub(super) null_if: Option<Spanned<Vec<toml::Value>>>,
    #[schemars(with = "Option<Vec<String>>")]
    pub(super) true_values: Option<Spanned<Vec<String>>>,
    #[schemars(with = "Option<Vec<String>>")]
    pub(super) false_values: Option<Spanned<Vec<String>>>,
    /// Decimals: pad to this many decimal places (never rounds).
    #[schemars(with = "Option<u8>")]
    pub(super) scale: Option<Spanned<u8>>,
    /// Decimals: emit a JSON string instead of a number.
    #[schemars(with = "Option<bool>")]
    pub(super) as_string: Option<Spanned<bool>>,
    /// Whether the value may be null (default true). A null where `false` is promised fails
    /// the request rather than contradict the API document.
    pub(super) nullable: Option<bool>,
    /// A stored value the codec cannot decode: `error` (500, the default), `null` or `raw`
    /// (the stored text). Default: the source's `on_invalid`, else `[server] on_invalid`.
    #[schemars(with = "Option<OnInvalidName>")]
    pub(super) on_invalid: Option<Spanned<String>>,
    /// Keep the stored value out of log lines (logs name the row's key only).
    #[serde(default)]
    pub(super) sensitive: bool,
    pub(super) description: Option<String>,
    #[schemars(with = "Option<serde_json::Value>")]
    pub(super) example: Option<toml::Value>,
}

/// Deserialize a spanned TOML value into `T`, reporting a failure at its span.
pub(super) fn deserialize<T: serde::de::DeserializeOwned>(
    file: &SourceFile,
    value: Spanned<DeValue<'_>>,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<T> {
    let span = value.span();
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(t) => Some(t),
        Err(e) => {
            let msg = e.message().trim().to_string();
            let hint = if msg.starts_with("unknown field") {
                format!("check the spelling; see the {what} fields in mappings/README.md")
            } else if msg.starts_with("missing field") {
                format!("add it to the {what}")
            } else {
                format!("check the {what}'s value types")
            };
            diags.error_hint(
                file,
                e.span().unwrap_or(span),
                format!("{what}: {msg}"),
                hint,
            );
            None
        }
    }
}

/// A `params` or `columns` entry: its name and its still unread value.
pub(super) type Entry<'a> = (Spanned<String>, Spanned<DeValue<'a>>);

/// A `[[route]]` table taken apart: the head (everything but `params` and `columns`) and
/// the entries of those two tables.
pub(super) struct RouteParts<'a> {
    pub(super) head: DeTable<'a>,
    pub(super) params: Vec<Entry<'a>>,
    pub(super) columns: Vec<Entry<'a>>,
    pub(super) body: Vec<Entry<'a>>,
}

/// Split off `params`, `columns` and `body`, so that each entry is read (and reported) on its own.
pub(super) fn split_route<'a>(
    file: &SourceFile,
    table: &DeTable<'a>,
    diags: &mut Diagnostics,
) -> RouteParts<'a> {
    let mut parts = RouteParts {
        head: DeTable::new(),
        params: Vec::new(),
        columns: Vec::new(),
        body: Vec::new(),
    };
    for (k, v) in table {
        let target = match k.get_ref().as_ref() {
            "params" => Some(&mut parts.params),
            "columns" => Some(&mut parts.columns),
            "body" => Some(&mut parts.body),
            _ => None,
        };
        match target {
            Some(target) => match v.get_ref().as_table() {
                Some(t) => target.extend(t.iter().map(|(name, val)| {
                    (
                        Spanned::new(name.span(), name.get_ref().to_string()),
                        val.clone(),
                    )
                })),
                None => diags.error_hint(
                    file,
                    v.span(),
                    format!("`{}` must be a table", k.get_ref()),
                    format!("write {}.NAME = {{ ... }}", k.get_ref()),
                ),
            },
            None => {
                parts.head.insert(k.clone(), v.clone());
            }
        }
    }
    parts
}

/// Read `params.NAME`: a table, or the shorthand `params.job_number = "integer"`.
pub(super) fn read_param(
    file: &SourceFile,
    (name, v): &Entry<'_>,
    diags: &mut Diagnostics,
) -> Option<RawParam> {
    if let Some(s) = v.get_ref().as_str() {
        return Some(RawParam {
            ty: Some(Spanned::new(v.span(), s.to_string())),
            ..RawParam::default()
        });
    }
    deserialize(
        file,
        v.clone(),
        &format!("parameter `{}`", name.get_ref()),
        diags,
    )
}

/// Read `columns.NAME`: a table, or the shorthand `columns.JOBNO = "job_number"`.
pub(super) fn read_column(
    file: &SourceFile,
    (name, v): &Entry<'_>,
    diags: &mut Diagnostics,
) -> Option<RawColumn> {
    if let Some(s) = v.get_ref().as_str() {
        return Some(RawColumn {
            name: Some(Spanned::new(v.span(), s.to_string())),
            ..RawColumn::default()
        });
    }
    deserialize(
        file,
        v.clone(),
        &format!("column `{}`", name.get_ref()),
        diags,
    )
}
