//! The compiled catalog: every route checked and planned (SQL rewritten for its dialect, bind
//! order fixed, parameter and column codecs typed) and the router that finds a route for a
//! request. Built by `mapping::compile`; read by the HTTP layer. Holds no connections.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderValue;

use crate::codec::{BindValue, ColumnCodec, ColumnType, OnInvalid, ParamType, Trim};
use crate::dialect::{Dialect, Placeholders};
use crate::shape::ColumnInfo;

/// Where a parameter comes from in the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamLocation {
    Path,
    Query,
    /// Filled from a claim of the verified token (or API key); never from the request.
    Claim,
}

impl ParamLocation {
    /// The `in` of a problem's field error and of the OpenAPI parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Query => "query",
            Self::Claim => "claim",
        }
    }
}

/// A checked route parameter.
#[derive(Clone, Debug)]
pub struct ParamPlan {
    pub name: String,
    pub location: ParamLocation,
    pub ty: ParamType,
    pub required: bool,
    pub default: Option<BindValue>,
    pub description: Option<String>,
    pub example: Option<serde_json::Value>,
    /// For `Claim` parameters: the claim's name.
    pub claim: Option<String>,
}

impl ParamPlan {
    /// What the parameter is bound as when a request does not give it: its default, else NULL.
    pub fn unset(&self) -> BindValue {
        self.default
            .clone()
            .unwrap_or_else(|| BindValue::Null(self.ty.null_kind()))
    }
}

/// A checked column rule. `ty: None` means "decide from the column's SQL type".
#[derive(Clone, Debug)]
pub struct ColumnPlan {
    /// The column name as the mapping wrote it; matched case-insensitively.
    pub db_name: String,
    /// Where the mapping names it (1-based line of `columns.NAME`), for findings about it.
    pub line: usize,
    pub output: String,
    pub ty: Option<ColumnType>,
    pub trim: Trim,
    pub null_if: Vec<String>,
    pub nullable: bool,
    /// The column's own `on_invalid`; `None`: the route's (its source's, or the global).
    pub on_invalid: Option<OnInvalid>,
    /// Its stored values never appear in log lines.
    pub sensitive: bool,
    pub description: Option<String>,
    pub example: Option<serde_json::Value>,
}

impl ColumnPlan {
    /// The codec to use for a result column whose SQL type suggests `fallback`; `on_invalid`
    /// when the column names none.
    pub fn codec(&self, fallback: &ColumnType, on_invalid: OnInvalid) -> ColumnCodec {
        ColumnCodec {
            ty: self.ty.clone().unwrap_or_else(|| fallback.clone()),
            trim: self.trim,
            null_if: self.null_if.clone(),
            nullable: self.nullable,
            on_invalid: self.on_invalid.unwrap_or(on_invalid),
            sensitive: self.sensitive,
        }
    }
}

/// A date a route announces in a response header: as the mapping wrote it (`YYYY-MM-DD`), for
/// the docs, and the header value, built once when the mapping is compiled.
#[derive(Clone, Debug)]
pub struct HeaderDate {
    pub date: String,
    pub header: HeaderValue,
}

/// A deprecated route: since when (`Deprecation`, RFC 9745) and, if set, the date after which
/// it goes away (`Sunset`, RFC 8594).
#[derive(Clone, Debug)]
pub struct Deprecation {
    /// The header value is `@` and the date's seconds since the epoch.
    pub since: HeaderDate,
    /// The header value is the date as an HTTP-date.
    pub sunset: Option<HeaderDate>,
    /// The route that replaces this one: `Link: <...>; rel="successor-version"`.
    pub successor: Option<Successor>,
}

/// A deprecated route's replacement: its id and its full path (with `{param}`s, which the
/// deprecated route's request fills in).
#[derive(Clone, Debug)]
pub struct Successor {
    pub id: String,
    /// Empty until every route is compiled; then the successor's full path.
    pub path: String,
}

impl Successor {
    /// The successor's URL for a request with these (raw, percent-encoded) path values.
    pub fn link(&self, path_params: &[(String, String)]) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(self.path.len());
        let mut rest = self.path.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let name = &rest[open + 1..open + close];
            if let Some((_, v)) = path_params.iter().find(|(k, _)| k == name) {
                // Still percent-encoded as sent; what could end the link is encoded too.
                for c in v.chars() {
                    match c {
                        '<' | '>' | '"' | ',' | ';' | ' ' | '\\' => {
                            let mut b = [0; 4];
                            for byte in c.encode_utf8(&mut b).bytes() {
                                let _ = write!(out, "%{byte:02X}");
                            }
                        }
                        c if c.is_control() => {}
                        c => out.push(c),
                    }
                }
            }
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        format!("<{out}>; rel=\"successor-version\"")
    }
}

/// A read route's shadow: the same answer asked of another database for a share of requests,
/// off the request path, and compared with what was served (the migration bridge).
#[derive(Clone, Debug)]
pub struct Shadow {
    /// The route as the shadow runs it: its source, statement and columns, the route's
    /// parameters; its statement timeout is the shadow's `timeout`, which ends it.
    pub plan: Arc<RoutePlan>,
    /// The share of requests compared, in (0, 1].
    pub sample: f64,
    /// Shadow statements of this route at once; beyond, a request is not compared.
    pub concurrency: usize,
    /// The route orders its rows: positions must agree.
    pub ordered: bool,
}

/// Everything needed to serve one route.
#[derive(Clone, Debug)]
pub struct RoutePlan {
    pub id: String,
    /// API version, from the mapping folder (`v1`).
    pub version: String,
    pub method: String,
    /// The full path with the version prefix, e.g. `/v1/jobs/{job_number}`.
    pub path: String,
    /// The mapping file, for log lines.
    pub file: String,
    /// The 1-based line where the route's table starts in `file`, for findings about it.
    pub line: usize,
    pub summary: Option<String>,
    pub description: Option<String>,
    /// From the mapping, or the mapping file's name.
    pub tags: Vec<String>,
    /// Scopes a caller needs, all of them; empty only when `public`.
    pub scopes: Vec<String>,
    /// Anyone may call it (said explicitly in the mapping).
    pub public: bool,
    /// A limit for this route, per identity, on top of the default.
    pub rate_limit: Option<crate::config::RateSpec>,
    /// How long a response may be reused for identical requests.
    pub cache: Option<Duration>,
    /// The route's own statement timeout.
    pub statement_timeout: Option<Duration>,
    /// Set when the route is deprecated: its dates and their response headers.
    pub deprecation: Option<Deprecation>,
    /// Reads: the migration bridge's second answer, compared off the request path.
    pub shadow: Option<Arc<Shadow>>,
    /// Direct writes: the same write as a queued route on the new database (id `<id>#mirror`),
    /// queued after the route's own commits.
    pub mirror: Option<Arc<RoutePlan>>,
    /// Why breaking changes to this route's published document are accepted (`patina check`
    /// compares it with `openapi/<version>.json`).
    pub accept_breaking: Option<String>,
    /// A `one = true` read whose concurrent lookups may run as one statement (`batch`).
    pub batch: Option<Arc<crate::sql::batch::Batched>>,
    /// One object (404 when no row) rather than a list.
    pub one: bool,
    /// Row cap for list routes.
    pub max_rows: usize,
    pub source: String,
    /// The SQL as the driver receives it, placeholders rewritten.
    pub sql: Arc<str>,
    /// For each placeholder in order, the index into `params` of the value it takes.
    pub bind_order: Vec<usize>,
    pub params: Vec<ParamPlan>,
    pub columns: Vec<ColumnPlan>,
    /// For a `one = true` read: the output names whose values make the `ETag` (empty: the
    /// whole row).
    pub etag_fields: Vec<String>,
    /// What a POST, PUT, PATCH or DELETE route writes; `None` for a read.
    pub write: Option<WritePlan>,
    /// A list route's paging, sorting, counts and exports (all off for other routes).
    pub list: ListPlan,
    /// What a value no codec can decode becomes, for columns that say nothing themselves.
    pub on_invalid: OnInvalid,
    /// The columns that identify a row in log lines and scan reports (`key`, else `page.by`).
    pub key: Vec<String>,
}

/// What a list route offers beyond its rows.
#[derive(Clone, Debug)]
pub struct ListPlan {
    /// The route's source's SQL flavour and placeholders, for the keyset form of a page.
    pub dialect: Dialect,
    pub placeholders: Placeholders,
    /// Keyset paging; `None`: one response holds every row (up to `max_rows`).
    pub page: Option<PagePlan>,
    /// The fields a caller may sort by (`sort=`); needs `page`.
    pub sort: Vec<SortField>,
    /// The time budget of a count (`Prefer: count=exact`); `None`: counts are not offered.
    pub count: Option<Duration>,
    /// Streaming NDJSON and CSV exports; `None`: JSON only.
    pub export: Option<ExportPlan>,
}

impl Default for ListPlan {
    fn default() -> Self {
        Self {
            dialect: Dialect::Sqlite,
            placeholders: Placeholders::Question,
            page: None,
            sort: Vec::new(),
            count: None,
            export: None,
        }
    }
}

/// `page = { by = [...], size, max }`.
#[derive(Clone, Debug)]
pub struct PagePlan {
    /// The default order, ending in a unique combination: ties never straddle two pages.
    pub by: Vec<PageKey>,
    /// Rows per page without `limit`.
    pub size: usize,
    /// The largest `limit`.
    pub max: usize,
}

/// A column the rows are ordered by.
#[derive(Clone, Debug)]
pub struct PageKey {
    /// As the mapping names it (a column of the result).
    pub column: String,
    /// Its public name.
    pub output: String,
    pub descending: bool,
    /// It may hold NULL (sorted after every value).
    pub nullable: bool,
}

/// A field a caller may sort by.
#[derive(Clone, Debug)]
pub struct SortField {
    pub output: String,
    pub column: String,
    pub nullable: bool,
}

/// `export = { max_rows }`.
#[derive(Clone, Copy, Debug)]
pub struct ExportPlan {
    /// Rows one export streams at most; an export cut short ends as an error.
    pub max_rows: usize,
}

impl RoutePlan {
    /// The output name and codec a result column is served with: the mapping's rule (its
    /// codec, or the default of the column's SQL type when the rule names none), or, for a
    /// column the mapping does not name, its lower-cased name and the default codec. The
    /// encoder and the API documents both ask here, so the documents say what is served.
    pub fn output_of(&self, c: &ColumnInfo) -> (String, ColumnCodec) {
        let fallback = c.sql_type.default_codec();
        match self.column(&c.name) {
            Some(p) => (p.output.clone(), p.codec(&fallback, self.on_invalid)),
            None => (
                c.name.to_ascii_lowercase(),
                ColumnCodec {
                    on_invalid: self.on_invalid,
                    ..ColumnCodec::new(fallback)
                },
            ),
        }
    }

    /// The column rule for a result column name (case-insensitive).
    pub fn column(&self, db_name: &str) -> Option<&ColumnPlan> {
        self.columns
            .iter()
            .find(|c| c.db_name.eq_ignore_ascii_case(db_name))
    }
}

/// A field of a write route's JSON body.
#[derive(Clone, Debug)]
pub struct FieldPlan {
    pub name: String,
    pub ty: FieldType,
    /// A request without it is refused (else it is bound as its default, or NULL).
    pub required: bool,
    /// `null` is accepted (and bound as NULL).
    pub nullable: bool,
    pub default: Option<BindValue>,
    /// Kept out of logs and audit records.
    pub sensitive: bool,
    pub description: Option<String>,
    pub example: Option<serde_json::Value>,
}

/// A body field's value: one value, or a list of objects (lines of an order).
#[derive(Clone, Debug)]
pub enum FieldType {
    Value(ParamType),
    List {
        items: Vec<FieldPlan>,
        min_items: usize,
        max_items: usize,
    },
}

/// The JSON body a write route takes.
#[derive(Clone, Debug)]
pub struct BodyPlan {
    pub fields: Vec<FieldPlan>,
    /// The body is an array of such objects, at most this many, written all or none.
    pub bulk: Option<usize>,
}

/// Where a write statement's placeholder takes its value from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRef {
    /// A route parameter (path, query or claim), by index into `RoutePlan::params`.
    Param(usize),
    /// A body field, by index into `BodyPlan::fields`.
    Field(usize),
    /// A field of the list element the step runs for: (list field, item field).
    Item(usize, usize),
    /// The element's place in its list, counted from 1.
    Index,
    /// A value an earlier step returned, by index into `WritePlan::outputs`.
    Output(usize),
}

/// One statement of a write.
#[derive(Clone, Debug)]
pub struct StepPlan {
    /// The SQL as the driver receives it, placeholders rewritten.
    pub sql: Arc<str>,
    /// For each placeholder in order, where its value comes from.
    pub binds: Vec<ValueRef>,
    /// Run once per element of this list field (by index into `BodyPlan::fields`).
    pub for_each: Option<usize>,
    /// The first result row's columns, in order, become these outputs (indexes into
    /// `WritePlan::outputs`), which later steps bind by name.
    pub outputs: Vec<usize>,
    /// No row touched means the thing to change does not exist: 404, and nothing is written.
    pub require_rows: bool,
}

/// Whether a route takes an `Idempotency-Key` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    Optional,
    /// Refused (400) without one.
    Required,
}

/// Optimistic concurrency: the `If-Match` a write checks against the ETag of a by-key read.
#[derive(Clone, Debug)]
pub struct IfMatch {
    /// The read route (a `one = true` GET on the same source) whose ETag is compared.
    pub route: String,
    /// For each placeholder of that route's statement, where the write finds its value.
    pub binds: Vec<ValueRef>,
    /// Refused (428) without `If-Match`.
    pub required: bool,
}

/// A response a stored procedure's return code (or any value of the result row) stands for.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub value: String,
    pub status: u16,
    pub detail: String,
}

/// A part of a `Location` template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocationPart {
    Text(String),
    /// A value of the response row (by its output name), or of the request.
    Name(String),
}

/// Everything a write route does beyond a read's plan.
#[derive(Clone, Debug)]
pub struct WritePlan {
    pub body: Option<BodyPlan>,
    pub steps: Vec<StepPlan>,
    /// The names values returned by steps are bound under.
    pub outputs: Vec<String>,
    /// The status of a successful write that answers with a row (201 for a create, else 200);
    /// 204 when it answers with none.
    pub status: u16,
    pub location: Option<Vec<LocationPart>>,
    /// Whether an `Idempotency-Key` may or must come (every write takes one).
    pub idempotency: Idempotency,
    pub if_match: Option<IfMatch>,
    /// A column of the last step's row whose values map to responses (return codes).
    pub outcome_column: Option<String>,
    pub outcomes: Vec<Outcome>,
    /// `delivery = "queued"`: accepted into the write queue (202) and delivered in the
    /// background; `None` for a direct write.
    pub queue: Option<QueuePlan>,
}

/// How a queued write is delivered.
#[derive(Debug, Clone)]
pub struct QueuePlan {
    /// The parameter or body field whose value orders deliveries: two writes with the same
    /// value are delivered in the order they were accepted.
    pub order_key: Option<(String, ValueRef)>,
    pub retry: RetryPolicy,
    pub dedup: Option<DedupPlan>,
}

/// When a delivery that failed for a passing reason is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait; each later one doubles, up to `cap`, and a random part of it is
    /// taken (full jitter).
    pub base: Duration,
    pub cap: Duration,
    /// After this many attempts the delivery is a dead letter.
    pub max_attempts: u32,
    /// A delivery still failing this long after it was accepted is a dead letter.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_mins(5),
            max_attempts: 20,
            max_age: Duration::from_hours(24),
        }
    }
}

/// The table on the target database that records delivered ids, written in the write's own
/// transaction: a delivery whose id is there already is not run again.
#[derive(Debug, Clone)]
pub struct DedupPlan {
    pub table: String,
    /// Returns a row when the id (one bound value) was delivered.
    pub check_sql: Arc<str>,
    /// Records the id and the route (two bound values).
    pub record_sql: Arc<str>,
}

/// The result of looking a request up.
#[derive(Debug)]
pub enum Lookup<'a> {
    Found {
        route: &'a Arc<RoutePlan>,
        /// The route's place in [`Catalog::routes`], which runtime state is indexed by.
        index: usize,
        /// Raw (still percent-encoded) path parameter values.
        path_params: Vec<(String, String)>,
    },
    /// The path exists, but not for this method.
    MethodNotAllowed(Vec<String>),
    NotFound,
}

/// All routes of all versions, ready to serve.
#[derive(Debug)]
pub struct Catalog {
    pub routes: Vec<Arc<RoutePlan>>,
    /// Unique to this catalog within the process: what was learned or cached under one
    /// catalog (responses, for one) is never served under another.
    pub generation: u64,
    /// The first 8 bytes of a SHA-256 of the mapping files (names and text): the same
    /// mappings give the same number in every process and after every restart. A queued
    /// write records the one it was accepted under.
    pub mappings_digest: u64,
    router: matchit::Router<Vec<usize>>,
    by_id: std::collections::HashMap<String, usize>,
}

/// The source of [`Catalog::generation`].
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Catalog {
    /// Build the router. Paths were checked for conflicts during compilation, so this only
    /// fails on a bug; the error says which path.
    pub fn new(routes: Vec<Arc<RoutePlan>>) -> Result<Self, String> {
        let mut by_path: indexmap::IndexMap<&str, Vec<usize>> = indexmap::IndexMap::new();
        for (i, r) in routes.iter().enumerate() {
            by_path.entry(r.path.as_str()).or_default().push(i);
        }
        let mut router = matchit::Router::new();
        for (path, idx) in by_path {
            router
                .insert(path, idx)
                .map_err(|e| format!("route path {path}: {e}"))?;
        }
        let by_id = routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        Ok(Self {
            by_id,
            routes,
            generation: GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            mappings_digest: 0,
            router,
        })
    }

    pub fn lookup(&self, method: &str, path: &str) -> Lookup<'_> {
        let Ok(m) = self.router.at(path) else {
            return Lookup::NotFound;
        };
        let found = m
            .value
            .iter()
            .map(|&i| (i, &self.routes[i]))
            .find(|(_, r)| r.method == method || (method == "HEAD" && r.method == "GET"));
        match found {
            Some((index, route)) => Lookup::Found {
                route,
                index,
                path_params: m
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            None => Lookup::MethodNotAllowed(
                m.value
                    .iter()
                    .map(|&i| self.routes[i].method.clone())
                    .collect(),
            ),
        }
    }

    /// A route by its id, with its index.
    /// A route by id; `<id>#mirror` is the mirror of route `<id>`.
    pub fn route_by_id(&self, id: &str) -> Option<(usize, &Arc<RoutePlan>)> {
        if let Some(base) = id.strip_suffix("#mirror") {
            let &i = self.by_id.get(base)?;
            return Some((i, self.routes[i].mirror.as_ref()?));
        }
        let &i = self.by_id.get(id)?;
        Some((i, &self.routes[i]))
    }

    /// The API versions served, sorted.
    pub fn versions(&self) -> Vec<String> {
        let mut v: Vec<String> = self.routes.iter().map(|r| r.version.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}
