//! Mapping files → compiled [`Catalog`]. Owns the raw serde model of a mapping file and every
//! check a DBA's mistake can fail, reporting all of them at once with `file:line:column` and a
//! hint. Pure: reads files, opens no connection; checking against a live database is the
//! sources' job.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::catalog::{Catalog, ColumnPlan, ParamLocation, ParamPlan, RoutePlan};
use crate::codec::{
    ColumnType, DateFormat, Like, LikeAt, ParamType, TimeFormat, Trim, UnknownCode,
};
use crate::diag::{Diagnostic, Diagnostics, LoadError, SourceFile};
use crate::dialect::{Dialect, Placeholders};
use crate::sql;

/// One `[[route]]`, without its `params` and `columns` (read one by one, so that a mistake in
/// one does not hide mistakes in the others).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    /// Unique id; becomes the OpenAPI `operationId`.
    id: Spanned<String>,
    /// HTTP method. Default GET.
    method: Option<Spanned<String>>,
    /// Path below the version prefix, e.g. `/jobs/{job_number}`.
    path: Spanned<String>,
    summary: Option<String>,
    description: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    /// Scopes a caller needs.
    #[serde(default)]
    scopes: Vec<String>,
    /// Say so explicitly for a route anyone may call.
    #[serde(default)]
    public: bool,
    /// Return one object (404 when no row) instead of a list.
    #[serde(default)]
    one: bool,
    /// Keep responses this long (e.g. `5s`); identical requests meanwhile share one query.
    cache: Option<Spanned<String>>,
    /// Cancel the statement after this long (overrides the source's `statement_timeout`).
    statement_timeout: Option<Spanned<String>>,
    /// Per-identity limit for this route, e.g. `10/minute`.
    rate_limit: Option<Spanned<String>>,
    /// Deprecated since this date (YYYY-MM-DD): `Deprecation` header, marked in the docs.
    deprecated: Option<Spanned<String>>,
    /// The date after which the route goes away: `Sunset` header.
    sunset: Option<Spanned<String>>,
    /// Row cap for a list route.
    max_rows: Option<Spanned<usize>>,
    /// Overrides the file's `source`.
    source: Option<Spanned<String>>,
    /// The statement, with `:name` parameters.
    sql: Spanned<String>,
}

/// `params.NAME = { ... }`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    /// integer, number, string, boolean, date or code. Default string (code when `codes`).
    #[serde(rename = "type")]
    ty: Option<Spanned<String>>,
    required: Option<Spanned<bool>>,
    default: Option<Spanned<toml::Value>>,
    minimum: Option<Spanned<toml::Value>>,
    maximum: Option<Spanned<toml::Value>>,
    min_length: Option<Spanned<usize>>,
    max_length: Option<Spanned<usize>>,
    pattern: Option<Spanned<String>>,
    /// For strings matched with `LIKE :p ESCAPE '!'`: prefix, contains or suffix. The
    /// caller's `%` and `_` are taken literally; the gateway adds the wildcards.
    like: Option<Spanned<String>>,
    /// For dates: how the column stores them (iso, cyymmdd, yyyymmdd).
    format: Option<Spanned<String>>,
    /// Stored code → word, as for columns; the caller sends the word.
    codes: Option<Spanned<IndexMap<String, String>>>,
    true_value: Option<Spanned<String>>,
    false_value: Option<Spanned<String>>,
    /// Fill the parameter from this claim of the caller's verified token (or API key); it
    /// cannot be set by the request.
    from_claim: Option<Spanned<String>>,
    description: Option<String>,
    example: Option<toml::Value>,
}

/// `columns.NAME = { ... }`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    /// JSON field name. Default: the column name in lower case.
    name: Option<Spanned<String>>,
    /// string, integer, number, decimal, boolean, date, time, datetime, code or binary.
    /// Default: from the column's SQL type.
    #[serde(rename = "type")]
    ty: Option<Spanned<String>>,
    /// true (both ends), "end" (CHAR padding), or false.
    trim: Option<Spanned<toml::Value>>,
    format: Option<Spanned<String>>,
    codes: Option<Spanned<IndexMap<String, String>>>,
    /// What to do with a code not in `codes`: raw (default), null or error.
    unknown_code: Option<Spanned<String>>,
    /// Stored values (after trimming) that mean null, e.g. `[0, ""]`.
    null_if: Option<Spanned<Vec<toml::Value>>>,
    true_values: Option<Spanned<Vec<String>>>,
    false_values: Option<Spanned<Vec<String>>>,
    /// Decimals: pad to this many decimal places (never rounds).
    scale: Option<Spanned<u8>>,
    /// Decimals: emit a JSON string instead of a number.
    as_string: Option<Spanned<bool>>,
    /// Whether the value may be null (default true). A null where `false` is promised fails
    /// the request rather than contradict the API document.
    nullable: Option<bool>,
    description: Option<String>,
    example: Option<toml::Value>,
}

/// What mapping compilation needs to know about a configured source.
#[derive(Clone, Copy, Debug)]
pub struct SourceInfo {
    pub dialect: Dialect,
    /// How the source's client library marks bound values.
    pub placeholders: Placeholders,
}

/// A mapping file to compile, with the API version its folder names.
#[derive(Debug)]
pub struct MappingFile {
    pub version: String,
    pub file: SourceFile,
}

/// A catalog and the warnings found while building it.
#[derive(Debug)]
pub struct Compiled {
    pub catalog: Catalog,
    pub warnings: Vec<Diagnostic>,
}

/// Read every `<dir>/<version>/*.toml` and compile them together.
pub fn load_dir(
    dir: &Path,
    sources: &IndexMap<String, SourceInfo>,
    default_max_rows: usize,
) -> Result<Compiled, LoadError> {
    let mut diags = Diagnostics::new();
    let files = read_dir(dir, &mut diags);
    let result = compile(&files, sources, default_max_rows);
    match result {
        Ok(c) if !diags.has_errors() => Ok(c),
        Ok(c) => {
            diags.extend_from(c.warnings);
            Err(LoadError {
                diagnostics: diags.into_vec(),
            })
        }
        Err(e) => {
            diags.extend_from(e.diagnostics);
            Err(LoadError {
                diagnostics: diags.into_vec(),
            })
        }
    }
}

impl Diagnostics {
    fn extend_from(&mut self, v: Vec<Diagnostic>) {
        for d in v {
            self.push(d);
        }
    }
}

fn read_dir(dir: &Path, diags: &mut Diagnostics) -> Vec<MappingFile> {
    let shown = dir.display().to_string();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.file_error(
                &shown,
                format!("cannot read the mappings folder: {e}"),
                Some("set [server] mappings = \"folder\" in the config".into()),
            );
            return Vec::new();
        }
    };
    let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        // Hidden entries (editor files, a ConfigMap volume's `..data` links) are not mappings.
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            if !is_version_name(&name) {
                diags.file_error(
                    &p.display().to_string(),
                    format!("`{name}` is not a usable API version folder name"),
                    Some(
                        "name version folders like v1, v2 (letters, digits, `.`, `_`, `-`)".into(),
                    ),
                );
                continue;
            }
            let Ok(inner) = std::fs::read_dir(&p) else {
                diags.file_error(&p.display().to_string(), "cannot read this folder", None);
                continue;
            };
            let mut files: Vec<_> = inner
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|e| e == "toml"))
                .filter(|f| {
                    !f.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            files.sort();
            for f in files {
                let shown = f.display().to_string();
                match std::fs::read_to_string(&f) {
                    Ok(text) => out.push(MappingFile {
                        version: name.clone(),
                        file: SourceFile::new(shown, text),
                    }),
                    Err(e) => diags.file_error(&shown, format!("cannot read: {e}"), None),
                }
            }
        } else if p
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
        {
            diags.file_error(
                &p.display().to_string(),
                "mapping files belong in a version folder",
                Some(format!("move it to {shown}/v1/{name}")),
            );
        }
    }
    out
}

fn is_version_name(s: &str) -> bool {
    !s.is_empty()
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Compile mapping files into a catalog, or report every error found.
pub fn compile(
    files: &[MappingFile],
    sources: &IndexMap<String, SourceInfo>,
    default_max_rows: usize,
) -> Result<Compiled, LoadError> {
    let mut diags = Diagnostics::new();
    let mut routes: Vec<(Arc<RoutePlan>, &SourceFile, Range<usize>)> = Vec::new();
    let mut ids: HashMap<String, (String, usize)> = HashMap::new();
    for mf in files {
        compile_file(mf, sources, default_max_rows, &mut diags, &mut routes);
    }
    // Cross-file checks: unique ids, no two routes on one method and path.
    let mut seen_paths: HashMap<(String, String), (String, usize)> = HashMap::new();
    let mut routers: HashMap<&str, matchit::Router<()>> = HashMap::new();
    let mut inserted: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (plan, file, span) in &routes {
        let (line, _) = file.locate(span.start);
        if let Some((f, l)) = ids.get(&plan.id) {
            diags.error_hint(
                file,
                span.clone(),
                format!("route id `{}` is already used", plan.id),
                format!("the first is at {f}:{l}; give each route its own id"),
            );
        } else {
            ids.insert(plan.id.clone(), (file.name.clone(), line));
        }
        let shape = normalize_path(&plan.path);
        if let Some((f, l)) = seen_paths.get(&(plan.method.clone(), shape.clone())) {
            diags.error_hint(
                file,
                span.clone(),
                format!("another route already serves {} {}", plan.method, plan.path),
                format!("the first is at {f}:{l}; change the path or the method"),
            );
            continue;
        }
        seen_paths.insert((plan.method.clone(), shape), (file.name.clone(), line));
        if inserted.insert(plan.path.clone()) {
            let router = routers.entry(plan.version.as_str()).or_default();
            if let Err(e) = router.insert(plan.path.as_str(), ()) {
                diags.error_hint(
                    file,
                    span.clone(),
                    format!("path {} overlaps another route's path: {e}", plan.path),
                    "use the same parameter name in the same position, or a distinct literal \
                     segment",
                );
            }
        }
    }
    if diags.has_errors() {
        return Err(LoadError {
            diagnostics: diags.into_vec(),
        });
    }
    let plans: Vec<Arc<RoutePlan>> = routes.into_iter().map(|(p, _, _)| p).collect();
    let catalog = Catalog::new(plans).map_err(|e| LoadError {
        diagnostics: vec![Diagnostic {
            severity: crate::diag::Severity::Error,
            file: "(catalog)".into(),
            line: 0,
            column: 0,
            message: e,
            hint: None,
        }],
    })?;
    Ok(Compiled {
        catalog,
        warnings: diags.into_vec(),
    })
}

/// `/v1/jobs/{a}` and `/v1/jobs/{b}` have the same shape.
fn normalize_path(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

fn compile_file<'f>(
    mf: &'f MappingFile,
    sources: &IndexMap<String, SourceInfo>,
    default_max_rows: usize,
    diags: &mut Diagnostics,
    routes: &mut Vec<(Arc<RoutePlan>, &'f SourceFile, Range<usize>)>,
) {
    let file = &mf.file;
    let (table, errors) = DeTable::parse_recoverable(&file.text);
    if !errors.is_empty() {
        for e in errors {
            diags.error_hint(
                file,
                e.span().unwrap_or(0..0),
                e.message().trim().to_string(),
                "this is not valid TOML; fix the syntax first",
            );
        }
        return;
    }
    let table = table.into_inner();
    let mut file_source: Option<Spanned<String>> = None;
    let mut route_values: Vec<Spanned<DeValue<'_>>> = Vec::new();
    for (key, value) in &table {
        match key.get_ref().as_ref() {
            "source" => match value.get_ref().as_str() {
                Some(s) => file_source = Some(Spanned::new(value.span(), s.to_string())),
                None => diags.error_hint(
                    file,
                    value.span(),
                    "`source` must be a string",
                    "write source = \"NAME\", a source from the config",
                ),
            },
            "route" => match value.get_ref().as_array() {
                Some(arr) => route_values.extend(arr.iter().cloned()),
                None => diags.error_hint(
                    file,
                    value.span(),
                    "`route` must be an array of tables",
                    "write each route under its own [[route]] header",
                ),
            },
            other => diags.error_hint(
                file,
                key.span(),
                format!("unknown top-level key `{other}`"),
                "a mapping file holds `source = \"NAME\"` and [[route]] tables",
            ),
        }
    }
    if route_values.is_empty() {
        diags.at(
            crate::diag::Severity::Warning,
            file,
            None,
            "this mapping file defines no routes",
            Some("add a [[route]] table".into()),
        );
    }
    for rv in route_values {
        if let Some(plan) = compile_route(
            mf,
            &rv,
            file_source.as_ref(),
            sources,
            default_max_rows,
            diags,
        ) {
            routes.push((Arc::new(plan), file, rv.span()));
        }
    }
}

/// Deserialize a spanned TOML value into `T`, reporting a failure at its span.
fn deserialize<T: serde::de::DeserializeOwned>(
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
                format!("check the spelling; see the {what} fields in the README")
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

/// A present optional field, for "does not apply to this type" checks.
type Present = Vec<(&'static str, Range<usize>)>;

fn present<T>(out: &mut Present, name: &'static str, v: Option<&Spanned<T>>) {
    if let Some(v) = v {
        out.push((name, v.span()));
    }
}

fn reject_fields(
    file: &SourceFile,
    diags: &mut Diagnostics,
    fields: &Present,
    allowed: &[&str],
    what: &str,
) {
    for (name, span) in fields {
        if !allowed.contains(name) {
            diags.error_hint(
                file,
                span.clone(),
                format!("`{name}` does not apply to {what}"),
                "remove it, or change `type`",
            );
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn compile_route(
    mf: &MappingFile,
    value: &Spanned<DeValue<'_>>,
    file_source: Option<&Spanned<String>>,
    sources: &IndexMap<String, SourceInfo>,
    default_max_rows: usize,
    diags: &mut Diagnostics,
) -> Option<RoutePlan> {
    let file = &mf.file;
    let route_span = value.span();
    let Some(table) = value.get_ref().as_table() else {
        diags.error(file, route_span, "each [[route]] must be a table");
        return None;
    };
    let errors_before = diags.errors().count();
    // Split off params and columns so each entry is read (and reported) on its own.
    let mut head = DeTable::new();
    let mut raw_params: Vec<(Spanned<String>, Spanned<DeValue<'_>>)> = Vec::new();
    let mut raw_columns: Vec<(Spanned<String>, Spanned<DeValue<'_>>)> = Vec::new();
    for (k, v) in table {
        let target = match k.get_ref().as_ref() {
            "params" => Some(&mut raw_params),
            "columns" => Some(&mut raw_columns),
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
                head.insert(k.clone(), v.clone());
            }
        }
    }
    let Some(raw): Option<RawRoute> = deserialize(
        file,
        Spanned::new(route_span.clone(), DeValue::Table(head)),
        "route",
        diags,
    ) else {
        // Still check params and columns, so that their mistakes are reported in this pass.
        for (name, v) in raw_params {
            if v.get_ref().as_str().is_none()
                && let Some(rp) = deserialize::<RawParam>(
                    file,
                    v,
                    &format!("parameter `{}`", name.get_ref()),
                    diags,
                )
            {
                compile_param(file, &name, ParamLocation::Query, rp, diags);
            }
        }
        for (name, v) in raw_columns {
            if v.get_ref().as_str().is_none()
                && let Some(rc) = deserialize::<RawColumn>(
                    file,
                    v,
                    &format!("column `{}`", name.get_ref()),
                    diags,
                )
            {
                compile_column(file, &name, rc, diags);
            }
        }
        return None;
    };
    let id = raw.id.get_ref().clone();
    if !is_identifier(&id) {
        diags.error_hint(
            file,
            raw.id.span(),
            format!("route id `{id}` is not an identifier"),
            "use letters, digits and `_`, starting with a letter, e.g. getJob",
        );
    }
    let method = raw
        .method
        .as_ref()
        .map_or_else(|| "GET".to_string(), |m| m.get_ref().to_ascii_uppercase());
    if method != "GET" {
        diags.error_hint(
            file,
            raw.method
                .as_ref()
                .map_or(route_span.clone(), Spanned::span),
            format!("route `{id}`: method `{method}` is not served by this version of Patina"),
            "only GET (read) routes can be mapped so far",
        );
    }

    // Source and dialect.
    let source_ref = raw.source.as_ref().or(file_source);
    let source = match source_ref {
        None => {
            diags.error_hint(
                file,
                route_span.clone(),
                format!("route `{id}` has no source"),
                "add source = \"NAME\" at the top of the file (or in the route)",
            );
            None
        }
        Some(s) => match sources.get(s.get_ref()) {
            Some(info) => Some((s.get_ref().clone(), *info)),
            None => {
                let known: Vec<&str> = sources.keys().map(String::as_str).collect();
                diags.error_hint(
                    file,
                    s.span(),
                    format!("unknown source `{}`", s.get_ref()),
                    if known.is_empty() {
                        "define it in the config under [sources.NAME]".to_string()
                    } else {
                        format!("the config defines: {}", known.join(", "))
                    },
                );
                None
            }
        },
    };
    let dialect = source.as_ref().map_or(Dialect::Sqlite, |(_, i)| i.dialect);
    let placeholders = source
        .as_ref()
        .map_or(Placeholders::Question, |(_, i)| i.placeholders);

    // Path.
    let path = raw.path.get_ref();
    let path_params = check_path(file, &raw.path, diags);

    // Params.
    let mut params: Vec<ParamPlan> = Vec::new();
    let mut param_spans: Vec<Range<usize>> = Vec::new();
    for (name, v) in raw_params {
        let raw_param: Option<RawParam> = if let Some(s) = v.get_ref().as_str() {
            // Shorthand: params.job_number = "integer"
            Some(RawParam {
                ty: Some(Spanned::new(v.span(), s.to_string())),
                ..RawParam::default()
            })
        } else {
            deserialize(
                file,
                v.clone(),
                &format!("parameter `{}`", name.get_ref()),
                diags,
            )
        };
        let Some(rp) = raw_param else { continue };
        if !is_identifier(name.get_ref()) {
            diags.error_hint(
                file,
                name.span(),
                format!("parameter name `{}` is not an identifier", name.get_ref()),
                "use letters, digits and `_`",
            );
            continue;
        }
        let location = if rp.from_claim.is_some() {
            if path_params.iter().any(|p| p == name.get_ref()) {
                diags.error_hint(
                    file,
                    name.span(),
                    format!(
                        "parameter `{}` is in the path and `from_claim`",
                        name.get_ref()
                    ),
                    "a claim-bound value never comes from the request: take it out of the path",
                );
            }
            if raw.public {
                diags.error_hint(
                    file,
                    rp.from_claim.as_ref().map_or(name.span(), Spanned::span),
                    format!(
                        "route `{id}` is public but parameter `{}` needs a verified claim",
                        name.get_ref()
                    ),
                    "remove `public = true` and give the route scopes",
                );
            }
            ParamLocation::Claim
        } else if path_params.iter().any(|p| p == name.get_ref()) {
            ParamLocation::Path
        } else {
            ParamLocation::Query
        };
        if let Some(mut p) = compile_param(file, &name, location, rp, diags) {
            if let ParamType::String {
                like: Some(like), ..
            } = &mut p.ty
            {
                like.brackets = dialect.like_escapes_brackets();
            }
            params.push(p);
            param_spans.push(name.span());
        }
    }
    let declared = raw_params_names(table);
    for pp in &path_params {
        if !declared.contains(pp) {
            diags.error_hint(
                file,
                raw.path.span(),
                format!("route `{id}`: path parameter `{{{pp}}}` is not declared"),
                format!("add params.{pp} = {{ type = \"string\" }} (or integer, date, …)"),
            );
        }
    }

    // SQL.
    let sql_text = raw.sql.get_ref();
    let mut bind_order = Vec::new();
    let mut rewritten = String::new();
    match sql::scan_named(sql_text, dialect) {
        Err(e) => diags.error_hint(
            file,
            sql_offset_span(file, &raw.sql, e.offset, 1),
            format!("route `{id}`: {}", e.message),
            e.hint,
        ),
        Ok(found) => {
            if sql_text.trim().is_empty() {
                diags.error(
                    file,
                    raw.sql.span(),
                    format!("route `{id}`: `sql` is empty"),
                );
            }
            for f in &found {
                match params.iter().position(|p| p.name == f.name) {
                    Some(i) => bind_order.push(i),
                    None => {
                        if !declared.contains(&f.name) {
                            diags.error_hint(
                                file,
                                sql_offset_span(file, &raw.sql, f.span.start, f.span.len()),
                                format!(
                                    "route `{id}`: `:{}` is used in the SQL but not declared",
                                    f.name
                                ),
                                format!(
                                    "add params.{} = {{ type = \"string\" }} (or integer, date, …)",
                                    f.name
                                ),
                            );
                        }
                    }
                }
            }
            for (i, p) in params.iter().enumerate() {
                if !found.iter().any(|f| f.name == p.name) {
                    diags.error_hint(
                        file,
                        param_spans[i].clone(),
                        format!(
                            "route `{id}`: parameter `{}` is declared but the SQL never uses `:{}`",
                            p.name, p.name
                        ),
                        "use it in the SQL, or remove the declaration",
                    );
                }
            }
            rewritten = sql::rewrite(sql_text, &found, placeholders);
            let clause = dialect.like_escape_clause();
            for (i, p) in params.iter().enumerate() {
                if matches!(p.ty, ParamType::String { like: Some(_), .. })
                    && !dialect.has_like_escape_clause(sql_text)
                {
                    diags.error_hint(
                        file,
                        param_spans[i].clone(),
                        format!(
                            "route `{id}`: parameter `{}` is matched with `like`, but the SQL \
                             has no `{clause}`",
                            p.name
                        ),
                        format!(
                            "write `LIKE :{} {clause}`: the gateway escapes `%` and `_` with `!`",
                            p.name
                        ),
                    );
                }
            }
        }
    }

    // Columns.
    let mut columns: Vec<ColumnPlan> = Vec::new();
    let mut outputs: HashMap<String, Range<usize>> = HashMap::new();
    for (name, v) in raw_columns {
        let raw_col: Option<RawColumn> = if let Some(s) = v.get_ref().as_str() {
            // Shorthand: columns.JOBNO = "job_number"
            Some(RawColumn {
                name: Some(Spanned::new(v.span(), s.to_string())),
                ..RawColumn::default()
            })
        } else {
            deserialize(
                file,
                v.clone(),
                &format!("column `{}`", name.get_ref()),
                diags,
            )
        };
        let Some(rc) = raw_col else { continue };
        if columns
            .iter()
            .any(|c| c.db_name.eq_ignore_ascii_case(name.get_ref()))
        {
            diags.error(
                file,
                name.span(),
                format!(
                    "column `{}` is mapped twice (names are not case-sensitive)",
                    name.get_ref()
                ),
            );
            continue;
        }
        if let Some(c) = compile_column(file, &name, rc, diags) {
            let span = name.span();
            if let Some(first) = outputs.get(&c.output) {
                let (l, _) = file.locate(first.start);
                diags.error_hint(
                    file,
                    span.clone(),
                    format!(
                        "route `{id}`: two columns are named `{}` in the response",
                        c.output
                    ),
                    format!("the other is on line {l}; give each its own `name`"),
                );
            }
            outputs.insert(c.output.clone(), span);
            columns.push(c);
        }
    }

    // Shape.
    if raw.one
        && let Some(m) = &raw.max_rows
    {
        diags.error_hint(
            file,
            m.span(),
            format!("route `{id}`: `max_rows` does not apply to a `one = true` route"),
            "remove `max_rows`, or `one`",
        );
    }
    let max_rows = match &raw.max_rows {
        Some(m) if *m.get_ref() == 0 => {
            diags.error(
                file,
                m.span(),
                format!("route `{id}`: `max_rows` must be at least 1"),
            );
            1
        }
        Some(m) => *m.get_ref(),
        None if raw.one => 1,
        None => default_max_rows,
    };
    if raw.public && !raw.scopes.is_empty() {
        diags.error_hint(
            file,
            route_span.clone(),
            format!("route `{id}` is `public` and has `scopes`"),
            "a public route needs no scopes: remove one of the two",
        );
    }
    if !raw.public && raw.scopes.is_empty() {
        diags.error_hint(
            file,
            route_span.clone(),
            format!("route `{id}` has no `scopes` and is not `public`"),
            "give it scopes = [\"jobs:read\"], or say public = true if anyone may call it",
        );
    }
    let cache = raw
        .cache
        .as_ref()
        .and_then(|c| match crate::config::parse_duration(c.get_ref()) {
            Some(d) if !d.is_zero() && d <= std::time::Duration::from_hours(24) => Some(d),
            _ => {
                diags.error_hint(
                    file,
                    c.span(),
                    format!("route `{id}`: `cache` is not a duration between 1ms and 24h"),
                    "write it like \"5s\" or \"1m\"",
                );
                None
            }
        });
    let statement_timeout = raw.statement_timeout.as_ref().and_then(|t| {
        crate::config::parse_duration(t.get_ref())
            .filter(|d| d.as_secs() >= 1)
            .or_else(|| {
                diags.error_hint(
                    file,
                    t.span(),
                    format!("route `{id}`: `statement_timeout` must be a duration of 1s or more"),
                    "write it like \"2s\"; drivers count in whole seconds",
                );
                None
            })
    });
    let rate_limit = raw.rate_limit.as_ref().and_then(|r| {
        crate::auth::ratelimit::RateSpec::parse(r.get_ref()).or_else(|| {
            diags.error_hint(
                file,
                r.span(),
                format!("route `{id}`: `rate_limit` is not a rate"),
                "write it like \"10/minute\" (per second, minute or hour)",
            );
            None
        })
    });

    let date = |v: &Option<Spanned<String>>, field: &str, diags: &mut Diagnostics| {
        let v = v.as_ref()?;
        let ok = ParamType::Date(DateFormat::Iso).parse(v.get_ref()).is_ok();
        if !ok {
            diags.error_hint(
                file,
                v.span(),
                format!("route `{id}`: `{field}` must be a date"),
                "write it as \"YYYY-MM-DD\"",
            );
        }
        ok.then(|| v.get_ref().clone())
    };
    let deprecated = date(&raw.deprecated, "deprecated", diags);
    let sunset = date(&raw.sunset, "sunset", diags);
    if let Some(s) = &raw.sunset {
        match &deprecated {
            None if raw.deprecated.is_none() => diags.error_hint(
                file,
                s.span(),
                format!("route `{id}` has a `sunset` but is not `deprecated`"),
                "add deprecated = \"YYYY-MM-DD\", the date it was deprecated",
            ),
            Some(d) if sunset.as_ref().is_some_and(|s| s < d) => diags.error(
                file,
                s.span(),
                format!("route `{id}`: `sunset` is before `deprecated`"),
            ),
            _ => {}
        }
    }
    let tags = if raw.tags.is_empty() {
        Path::new(&file.name)
            .file_stem()
            .map(|s| vec![s.to_string_lossy().into_owned()])
            .unwrap_or_default()
    } else {
        raw.tags
    };

    if diags.errors().count() > errors_before {
        return None;
    }
    let (source, _) = source?;
    Some(RoutePlan {
        id,
        version: mf.version.clone(),
        method,
        path: format!("/{}{}", mf.version, path),
        file: file.name.clone(),
        summary: raw.summary,
        description: raw.description,
        tags,
        scopes: raw.scopes,
        public: raw.public,
        rate_limit,
        cache,
        statement_timeout,
        deprecated,
        sunset,
        one: raw.one,
        max_rows,
        source,
        sql: Arc::from(rewritten),
        bind_order,
        params,
        columns,
        layout: crate::catalog::LayoutCache::default(),
    })
}

fn raw_params_names(route: &DeTable<'_>) -> Vec<String> {
    route
        .iter()
        .find(|(k, _)| k.get_ref() == "params")
        .and_then(|(_, v)| v.get_ref().as_table())
        .map(|t| t.iter().map(|(k, _)| k.get_ref().to_string()).collect())
        .unwrap_or_default()
}

/// The span of text at `offset` within the SQL string's value, in file coordinates. Exact when
/// the string is written without escapes before that point; otherwise the string's start.
fn sql_offset_span(
    file: &SourceFile,
    sql: &Spanned<String>,
    offset: usize,
    len: usize,
) -> Range<usize> {
    let span = sql.span();
    let raw = file.text.get(span.clone()).unwrap_or("");
    let (quote_len, skip_newline) = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        (3, true)
    } else {
        (1, false)
    };
    let mut start = span.start + quote_len;
    if skip_newline {
        if file.text.get(start..start + 2) == Some("\r\n") {
            start += 2;
        } else if file.text.get(start..=start) == Some("\n") {
            start += 1;
        }
    }
    let value = sql.get_ref();
    let expected = value.get(offset..offset + len);
    let found = file.text.get(start + offset..start + offset + len);
    if expected.is_some() && expected == found {
        start + offset..start + offset + len
    } else {
        span
    }
}

/// Check a route path and return its `{param}` names.
fn check_path(file: &SourceFile, path: &Spanned<String>, diags: &mut Diagnostics) -> Vec<String> {
    let p = path.get_ref();
    let span = path.span();
    let mut names = Vec::new();
    if !p.starts_with('/') {
        diags.error_hint(
            file,
            span.clone(),
            format!("path `{p}` must start with `/`"),
            format!("write \"/{p}\""),
        );
        return names;
    }
    if p.contains(['?', '#', ' ']) || p.contains("//") {
        diags.error_hint(
            file,
            span,
            format!("path `{p}` contains `?`, `#`, a space or an empty segment"),
            "query parameters are declared under `params`, not in the path",
        );
        return names;
    }
    let mut rest = p.as_str();
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            diags.error_hint(
                file,
                span.clone(),
                format!("path `{p}` has an unclosed `{{`"),
                "close it with `}`",
            );
            return names;
        };
        let name = &rest[open + 1..open + close];
        if !is_identifier(name) {
            diags.error_hint(
                file,
                span.clone(),
                format!("path parameter `{{{name}}}` is not an identifier"),
                "write path parameters like {job_number}",
            );
        } else if names.iter().any(|n| n == name) {
            diags.error(
                file,
                span.clone(),
                format!("path parameter `{{{name}}}` appears twice"),
            );
        } else {
            names.push(name.to_string());
        }
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        diags.error(file, span, format!("path `{p}` has a `}}` without `{{`"));
    }
    names
}

fn toml_int(
    file: &SourceFile,
    v: Option<&Spanned<toml::Value>>,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<i64> {
    let v = v?;
    match v.get_ref() {
        toml::Value::Integer(i) => Some(*i),
        _ => {
            diags.error(
                file,
                v.span(),
                format!("`{field}` must be a whole number here"),
            );
            None
        }
    }
}

fn toml_num(
    file: &SourceFile,
    v: Option<&Spanned<toml::Value>>,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<f64> {
    let v = v?;
    match v.get_ref() {
        #[allow(clippy::cast_precision_loss)]
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => {
            diags.error(file, v.span(), format!("`{field}` must be a number"));
            None
        }
    }
}

fn toml_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn compile_param(
    file: &SourceFile,
    name: &Spanned<String>,
    location: ParamLocation,
    rp: RawParam,
    diags: &mut Diagnostics,
) -> Option<ParamPlan> {
    let pname = name.get_ref();
    let errors_before = diags.errors().count();
    let mut fields = Present::new();
    present(&mut fields, "minimum", rp.minimum.as_ref());
    present(&mut fields, "maximum", rp.maximum.as_ref());
    present(&mut fields, "min_length", rp.min_length.as_ref());
    present(&mut fields, "max_length", rp.max_length.as_ref());
    present(&mut fields, "pattern", rp.pattern.as_ref());
    present(&mut fields, "like", rp.like.as_ref());
    present(&mut fields, "format", rp.format.as_ref());
    present(&mut fields, "codes", rp.codes.as_ref());
    present(&mut fields, "true_value", rp.true_value.as_ref());
    present(&mut fields, "false_value", rp.false_value.as_ref());
    let ty_name = rp
        .ty
        .as_ref()
        .map_or(if rp.codes.is_some() { "code" } else { "string" }, |t| {
            t.get_ref().as_str()
        });
    let what = format!("{ty_name} parameters");
    let ty = match ty_name {
        "integer" => {
            reject_fields(file, diags, &fields, &["minimum", "maximum"], &what);
            ParamType::Integer {
                minimum: toml_int(file, rp.minimum.as_ref(), "minimum", diags),
                maximum: toml_int(file, rp.maximum.as_ref(), "maximum", diags),
            }
        }
        "number" => {
            reject_fields(file, diags, &fields, &["minimum", "maximum"], &what);
            ParamType::Number {
                minimum: toml_num(file, rp.minimum.as_ref(), "minimum", diags),
                maximum: toml_num(file, rp.maximum.as_ref(), "maximum", diags),
            }
        }
        "string" => {
            reject_fields(
                file,
                diags,
                &fields,
                &["min_length", "max_length", "pattern", "like"],
                &what,
            );
            let like = rp.like.as_ref().and_then(|l| {
                let at = match l.get_ref().as_str() {
                    "prefix" => LikeAt::Prefix,
                    "contains" => LikeAt::Contains,
                    "suffix" => LikeAt::Suffix,
                    other => {
                        diags.error_hint(
                            file,
                            l.span(),
                            format!("parameter `{pname}`: unknown `like` value `{other}`"),
                            "use prefix, contains or suffix",
                        );
                        return None;
                    }
                };
                Some(Like {
                    at,
                    brackets: false,
                })
            });
            let pattern =
                rp.pattern
                    .as_ref()
                    .and_then(|p| match regex::Regex::new(p.get_ref()) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            diags.error_hint(
                        file,
                        p.span(),
                        format!("parameter `{pname}`: `pattern` is not a valid regular expression"),
                        e.to_string().lines().last().unwrap_or("").trim().to_string(),
                    );
                            None
                        }
                    });
            ParamType::String {
                min_length: rp.min_length.as_ref().map(|v| *v.get_ref()),
                max_length: rp.max_length.as_ref().map(|v| *v.get_ref()),
                pattern,
                like,
            }
        }
        "boolean" => {
            reject_fields(file, diags, &fields, &["true_value", "false_value"], &what);
            if rp.true_value.is_some() != rp.false_value.is_some() {
                diags.error_hint(
                    file,
                    name.span(),
                    format!(
                        "parameter `{pname}`: give both `true_value` and `false_value`, or neither"
                    ),
                    "e.g. true_value = \"Y\", false_value = \"N\"",
                );
            }
            ParamType::Boolean {
                true_value: rp.true_value.as_ref().map(|v| v.get_ref().clone()),
                false_value: rp.false_value.as_ref().map(|v| v.get_ref().clone()),
            }
        }
        "date" => {
            reject_fields(file, diags, &fields, &["format"], &what);
            ParamType::Date(date_format(file, rp.format.as_ref(), diags))
        }
        "code" => {
            reject_fields(file, diags, &fields, &["codes"], &what);
            let codes = match &rp.codes {
                Some(c) if !c.get_ref().is_empty() => {
                    let mut words: Vec<(String, String)> = Vec::new();
                    for (code, word) in c.get_ref() {
                        if words.iter().any(|(w, _)| w == word) {
                            diags.error(
                                file,
                                c.span(),
                                format!(
                                    "parameter `{pname}`: the word `{word}` stands for two codes"
                                ),
                            );
                        }
                        words.push((word.clone(), code.clone()));
                    }
                    words
                }
                _ => {
                    diags.error_hint(
                        file,
                        name.span(),
                        format!("parameter `{pname}` is a code but has no `codes`"),
                        "add codes = { R = \"released\", C = \"complete\" } (stored code = word)",
                    );
                    Vec::new()
                }
            };
            ParamType::Code { codes }
        }
        other => {
            diags.error_hint(
                file,
                rp.ty.as_ref().map_or(name.span(), Spanned::span),
                format!("parameter `{pname}`: unknown type `{other}`"),
                "use integer, number, string, boolean, date or code",
            );
            return None;
        }
    };
    let required = match (&rp.required, location) {
        (Some(r), ParamLocation::Path) if !*r.get_ref() => {
            diags.error_hint(
                file,
                r.span(),
                format!("path parameter `{pname}` cannot be optional"),
                "remove `required = false`, or make it a query parameter",
            );
            true
        }
        (_, ParamLocation::Path | ParamLocation::Claim) => true,
        (Some(r), ParamLocation::Query) => *r.get_ref(),
        (None, ParamLocation::Query) => false,
    };
    let default = match &rp.default {
        None => None,
        Some(d) => {
            if required {
                diags.error_hint(
                    file,
                    d.span(),
                    format!("parameter `{pname}` is required, so its `default` is never used"),
                    "remove `default`, or `required = true`",
                );
            }
            match toml_text(d.get_ref()).map(|t| ty.parse(&t)) {
                Some(Ok(v)) => Some(v),
                Some(Err(why)) => {
                    diags.error(
                        file,
                        d.span(),
                        format!("parameter `{pname}`: the default {why}"),
                    );
                    None
                }
                None => {
                    diags.error(
                        file,
                        d.span(),
                        format!("parameter `{pname}`: the default must be a plain value"),
                    );
                    None
                }
            }
        }
    };
    if let (Some(lo), Some(hi)) = (&rp.minimum, &rp.maximum)
        && let (Some(a), Some(b)) = (toml_text(lo.get_ref()), toml_text(hi.get_ref()))
        && let (Ok(a), Ok(b)) = (a.parse::<f64>(), b.parse::<f64>())
        && a > b
    {
        diags.error(
            file,
            lo.span(),
            format!("parameter `{pname}`: `minimum` is above `maximum`"),
        );
    }
    if let (Some(lo), Some(hi)) = (&rp.min_length, &rp.max_length)
        && lo.get_ref() > hi.get_ref()
    {
        diags.error(
            file,
            lo.span(),
            format!("parameter `{pname}`: `min_length` is above `max_length`"),
        );
    }
    if diags.errors().count() > errors_before {
        return None;
    }
    Some(ParamPlan {
        name: pname.clone(),
        location,
        ty,
        required,
        default,
        description: rp.description,
        example: rp.example.as_ref().map(toml_to_json),
        claim: rp.from_claim.map(Spanned::into_inner),
    })
}

fn date_format(
    file: &SourceFile,
    f: Option<&Spanned<String>>,
    diags: &mut Diagnostics,
) -> DateFormat {
    match f {
        None => DateFormat::Iso,
        Some(f) => DateFormat::parse(f.get_ref()).unwrap_or_else(|| {
            diags.error_hint(
                file,
                f.span(),
                format!("unknown date format `{}`", f.get_ref()),
                format!("use one of: {}", DateFormat::NAMES.join(", ")),
            );
            DateFormat::Iso
        }),
    }
}

fn compile_column(
    file: &SourceFile,
    name: &Spanned<String>,
    rc: RawColumn,
    diags: &mut Diagnostics,
) -> Option<ColumnPlan> {
    let cname = name.get_ref();
    let errors_before = diags.errors().count();
    let mut fields = Present::new();
    present(&mut fields, "format", rc.format.as_ref());
    present(&mut fields, "codes", rc.codes.as_ref());
    present(&mut fields, "unknown_code", rc.unknown_code.as_ref());
    present(&mut fields, "true_values", rc.true_values.as_ref());
    present(&mut fields, "false_values", rc.false_values.as_ref());
    present(&mut fields, "scale", rc.scale.as_ref());
    present(&mut fields, "as_string", rc.as_string.as_ref());
    let ty_name = rc
        .ty
        .as_ref()
        .map(|t| t.get_ref().as_str())
        .or(if rc.codes.is_some() {
            Some("code")
        } else {
            None
        });
    let what = format!("{} columns", ty_name.unwrap_or("untyped"));
    let ty = match ty_name {
        None => {
            reject_fields(file, diags, &fields, &[], &what);
            None
        }
        Some("string") => {
            reject_fields(file, diags, &fields, &[], &what);
            Some(ColumnType::String)
        }
        Some("integer") => {
            reject_fields(file, diags, &fields, &[], &what);
            Some(ColumnType::Integer)
        }
        Some("number") => {
            reject_fields(file, diags, &fields, &[], &what);
            Some(ColumnType::Number)
        }
        Some("datetime") => {
            reject_fields(file, diags, &fields, &[], &what);
            Some(ColumnType::DateTime)
        }
        Some("binary") => {
            reject_fields(file, diags, &fields, &[], &what);
            Some(ColumnType::Binary)
        }
        Some("decimal") => {
            reject_fields(file, diags, &fields, &["scale", "as_string"], &what);
            Some(ColumnType::Decimal {
                scale: rc.scale.as_ref().map(|s| *s.get_ref()),
                as_string: rc.as_string.as_ref().is_some_and(|s| *s.get_ref()),
            })
        }
        Some("boolean") => {
            reject_fields(
                file,
                diags,
                &fields,
                &["true_values", "false_values"],
                &what,
            );
            let tv = rc
                .true_values
                .as_ref()
                .map_or_else(ColumnType::default_true_values, |v| v.get_ref().clone());
            let fv = rc
                .false_values
                .as_ref()
                .map_or_else(ColumnType::default_false_values, |v| v.get_ref().clone());
            if let Some(both) = tv.iter().find(|t| fv.contains(t)) {
                diags.error(
                    file,
                    name.span(),
                    format!("column `{cname}`: `{both}` is both a true and a false value"),
                );
            }
            Some(ColumnType::Boolean {
                true_values: tv,
                false_values: fv,
            })
        }
        Some("date") => {
            reject_fields(file, diags, &fields, &["format"], &what);
            Some(ColumnType::Date(date_format(
                file,
                rc.format.as_ref(),
                diags,
            )))
        }
        Some("time") => {
            reject_fields(file, diags, &fields, &["format"], &what);
            let f = match &rc.format {
                None => TimeFormat::Iso,
                Some(f) => TimeFormat::parse(f.get_ref()).unwrap_or_else(|| {
                    diags.error_hint(
                        file,
                        f.span(),
                        format!("unknown time format `{}`", f.get_ref()),
                        format!("use one of: {}", TimeFormat::NAMES.join(", ")),
                    );
                    TimeFormat::Iso
                }),
            };
            Some(ColumnType::Time(f))
        }
        Some("code") => {
            reject_fields(file, diags, &fields, &["codes", "unknown_code"], &what);
            let codes: Vec<(String, String)> = rc
                .codes
                .as_ref()
                .map(|c| {
                    c.get_ref()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            if codes.is_empty() {
                diags.error_hint(
                    file,
                    name.span(),
                    format!("column `{cname}` is a code but has no `codes`"),
                    "add codes = { R = \"released\", C = \"complete\" } (stored code = word)",
                );
            }
            let unknown = match &rc.unknown_code {
                None => UnknownCode::Raw,
                Some(u) => match u.get_ref().as_str() {
                    "raw" => UnknownCode::Raw,
                    "null" => UnknownCode::Null,
                    "error" => UnknownCode::Error,
                    other => {
                        diags.error_hint(
                            file,
                            u.span(),
                            format!("column `{cname}`: unknown `unknown_code` `{other}`"),
                            "use raw, null or error",
                        );
                        UnknownCode::Raw
                    }
                },
            };
            Some(ColumnType::Code { codes, unknown })
        }
        Some(other) => {
            diags.error_hint(
                file,
                rc.ty.as_ref().map_or(name.span(), Spanned::span),
                format!("column `{cname}`: unknown type `{other}`"),
                "use string, integer, number, decimal, boolean, date, time, datetime, code or binary",
            );
            None
        }
    };
    let trim = match &rc.trim {
        None => Trim::None,
        Some(t) => match t.get_ref() {
            toml::Value::Boolean(true) => Trim::Both,
            toml::Value::Boolean(false) => Trim::None,
            toml::Value::String(s) if s == "end" => Trim::End,
            toml::Value::String(s) if s == "both" => Trim::Both,
            _ => {
                diags.error_hint(
                    file,
                    t.span(),
                    format!("column `{cname}`: `trim` must be true, false, \"end\" or \"both\""),
                    "\"end\" removes CHAR padding only",
                );
                Trim::None
            }
        },
    };
    let mut null_if = Vec::new();
    if let Some(n) = &rc.null_if {
        for v in n.get_ref() {
            match toml_text(v) {
                Some(t) => null_if.push(t),
                None => diags.error(
                    file,
                    n.span(),
                    format!("column `{cname}`: `null_if` holds plain values only"),
                ),
            }
        }
    }
    let output = rc
        .name
        .as_ref()
        .map_or_else(|| cname.to_ascii_lowercase(), |n| n.get_ref().clone());
    if output.is_empty() {
        diags.error(
            file,
            rc.name.as_ref().map_or(name.span(), Spanned::span),
            format!("column `{cname}`: `name` is empty"),
        );
    }
    if diags.errors().count() > errors_before {
        return None;
    }
    Some(ColumnPlan {
        db_name: cname.clone(),
        output,
        ty,
        trim,
        null_if,
        nullable: rc.nullable.unwrap_or(true),
        description: rc.description,
        example: rc.example.as_ref().map(toml_to_json),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::BindValue;

    fn sources() -> IndexMap<String, SourceInfo> {
        let mut m = IndexMap::new();
        m.insert(
            "mfg".to_string(),
            SourceInfo {
                dialect: Dialect::Db2i,
                placeholders: Placeholders::Question,
            },
        );
        m.insert(
            "ms".to_string(),
            SourceInfo {
                dialect: Dialect::Mssql,
                placeholders: Placeholders::Numbered,
            },
        );
        m
    }

    fn file(name: &str, text: &str) -> MappingFile {
        MappingFile {
            version: "v1".into(),
            file: SourceFile::new(name, text),
        }
    }

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
        let c = compile(&[file("jobs.toml", GOOD)], &sources(), 100).expect("compiles");
        let routes = &c.catalog.routes;
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
        let c = compile(&[file("jobs.toml", GOOD)], &sources(), 100).expect("compiles");
        match c.catalog.lookup("GET", "/v1/jobs/42") {
            crate::catalog::Lookup::Found { route, path_params } => {
                assert_eq!(route.id, "getJob");
                assert_eq!(path_params, [("job_number".to_string(), "42".to_string())]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.catalog.lookup("POST", "/v1/jobs"),
            crate::catalog::Lookup::MethodNotAllowed(m) if m == ["GET"]
        ));
        assert!(matches!(
            c.catalog.lookup("GET", "/v2/jobs"),
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
        let errs = errors_of(&[file("m/v1/bad.toml", bad)]);
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
        let joined = errors_of(&[file("f.toml", bad)]).join("\n");
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
        let bad =
            "source = \"mfg\"\n[[route]]\nid = \"a\"\npath = \"/a/{id}\"\nsql = \"SELECT 1\"\n";
        let joined = errors_of(&[file("f.toml", bad)]).join("\n");
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
        let joined = errors_of(&[file("f.toml", bad)]).join("\n");
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
        let joined = errors_of(&[file("s.toml", "source = \"mfg\"\n[[route]\n")]).join("\n");
        assert!(joined.starts_with("s.toml:2:"), "{joined}");
        let q = "source = \"mfg\"\n[[route]]\nid = \"a\"\npath = \"/a\"\nsql = \"SELECT * FROM T WHERE A = ?\"\n";
        let joined = errors_of(&[file("q.toml", q)]).join("\n");
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
        let c = compile(&[file("m.toml", m)], &sources(), 10).expect("compiles");
        assert_eq!(
            c.catalog.routes[0].sql.as_ref(),
            "SELECT * FROM T WHERE A = @P1 OR B = @P2"
        );
    }

    #[test]
    fn output_names_must_be_unique_and_methods_get_only() {
        let bad = "source = \"mfg\"\n[[route]]\nid = \"a\"\nmethod = \"POST\"\npath = \"/a\"\nsql = \"SELECT A, B\"\ncolumns.A = \"x\"\ncolumns.B = \"x\"\n";
        let joined = errors_of(&[file("f.toml", bad)]).join("\n");
        assert!(
            joined.contains("f.toml:4:10: error: route `a`: method `POST` is not served"),
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
        let joined = errors_of(&[file("f.toml", m)]).join("\n");
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
        let c = compile(&[file("m.toml", ok)], &sources(), 10).expect("compiles");
        let r = &c.catalog.routes[0];
        assert_eq!(r.params[0].location, ParamLocation::Claim);
        assert_eq!(r.params[0].claim.as_deref(), Some("customer_id"));
        assert_eq!(r.rate_limit.map(|s| s.limit), Some(5));
    }
}
