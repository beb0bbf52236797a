//! One `[[route]]` → a [`RoutePlan`]. [`compile_route`] reads the route and runs one small
//! check per concern: id and method, source, path and its parameters, parameters and where
//! each comes from, the SQL (in `statement`), columns, shape (`one`, `max_rows`), access
//! (`public`, `scopes`), durations, rate limit and deprecation. Every check reports and goes
//! on, so that one pass shows every mistake; the plan is built only when none was found.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderValue;
use indexmap::IndexMap;
use toml::Spanned;
use toml::de::DeValue;

use super::columns::compile_column;
use super::fields::is_identifier;
use super::params::compile_param;
use super::raw::{self, Entry, RawColumn, RawParam, RawRoute};
use super::{MappingFile, SourceInfo, head, list, path, statement, write};
use crate::catalog::{
    ColumnPlan, Deprecation, HeaderDate, ListPlan, ParamLocation, ParamPlan, RoutePlan, Successor,
};
use crate::codec::{DateFormat, ParamType};
use crate::config::RateSpec;
use crate::diag::{Diagnostics, SourceFile};
use crate::dialect::{Dialect, Placeholders};

/// What every check of one route needs to name it in a diagnostic.
pub(super) struct RouteCx<'a> {
    pub(super) file: &'a SourceFile,
    pub(super) id: &'a str,
    /// The whole `[[route]]` table, for mistakes that have no field of their own.
    pub(super) span: Range<usize>,
}

/// The route's checked parameters, with what the SQL checks need to know about them.
#[derive(Debug, Default)]
pub(super) struct RouteParams {
    pub(super) plans: Vec<ParamPlan>,
    /// Where each plan's name is, in the same order.
    pub(super) spans: Vec<Range<usize>>,
    /// Every name under `params`, including those whose entry had an error.
    pub(super) declared: Vec<String>,
}

/// Compile one route; `None` when it has an error (all of them reported).
pub(super) fn compile_route(
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
    let parts = raw::split_route(file, table, diags);
    let Some(raw): Option<RawRoute> = raw::deserialize(
        file,
        Spanned::new(route_span.clone(), DeValue::Table(parts.head)),
        "route",
        diags,
    ) else {
        check_entries_alone(file, &parts.params, &parts.columns, diags);
        return None;
    };
    let id = raw.id.get_ref().clone();
    let cx = RouteCx {
        file,
        id: &id,
        span: route_span,
    };
    check_id(&cx, &raw.id, diags);
    let method = method(&cx, raw.method.as_ref(), diags);
    let source = resolve_source(&cx, raw.source.as_ref().or(file_source), sources, diags);
    let info = source.as_ref().map_or(
        SourceInfo {
            dialect: Dialect::Sqlite,
            placeholders: Placeholders::Question,
            on_invalid: crate::codec::OnInvalid::Error,
        },
        |(_, i)| *i,
    );
    let path_params = path::check_path(file, &raw.path, diags);
    let params = compile_params(&cx, &raw, &parts.params, &path_params, info.dialect, diags);
    check_path_params_declared(&cx, &raw.path, &path_params, &params.declared, diags);
    let columns = compile_columns(&cx, &parts.columns, diags);
    let is_write = write::WRITE_METHODS.contains(&method.as_str());
    let (statement, write) = if is_write {
        head::check_write_head(&cx, &raw, diags);
        let plan = write::compile_write(
            &cx,
            &raw,
            &method,
            &parts.body,
            &params,
            &columns,
            info,
            diags,
        );
        let first = plan
            .as_ref()
            .and_then(|w| w.steps.first())
            .map(|s| s.sql.to_string())
            .unwrap_or_default();
        (
            statement::Statement {
                sql: first,
                bind_order: Vec::new(),
            },
            plan,
        )
    } else {
        head::reject_write_fields(&cx, &raw, &parts.body, diags);
        let statement = raw
            .sql
            .as_ref()
            .map_or_else(statement::Statement::default, |sql| {
                statement::plan_statement(&cx, sql, &params, info, diags)
            });
        (statement, None)
    };
    let list = if is_write {
        ListPlan::default()
    } else {
        list::compile_list(&cx, &raw, &columns, &params, raw.sql.as_ref(), info, diags)
    };
    let key = row_key(&cx, &raw, &list, diags);
    let max_rows = max_rows(&cx, &raw, default_max_rows, diags);
    let etag_fields = head::etag_fields(&cx, &raw, &columns, is_write, diags);
    check_access(&cx, &raw, diags);
    let cache = cache(&cx, raw.cache.as_ref(), diags);
    let statement_timeout = statement_timeout(&cx, raw.statement_timeout.as_ref(), diags);
    let rate_limit = rate_limit(&cx, raw.rate_limit.as_ref(), diags);
    let deprecation = deprecation(&cx, &raw, diags);
    let batch = raw
        .batch
        .as_ref()
        .and_then(|b| super::batch::compile_batch(&cx, &raw, b, &params, is_write, info, diags));
    let tags = if raw.tags.is_empty() {
        Path::new(&file.name)
            .file_stem()
            .map(|s| vec![s.to_string_lossy().into_owned()])
            .unwrap_or_default()
    } else {
        raw.tags
    };

    let derive = super::bridge::Derive {
        mf,
        route: value,
        table,
        file_source,
        sources,
        default_max_rows,
    };
    let shadow = raw.shadow.as_ref().and_then(|sh| {
        super::bridge::compile_shadow(
            &derive,
            &cx,
            sh,
            is_write || list.page.is_some(),
            raw.sql.as_ref().map(|s| s.get_ref().as_str()),
            diags,
        )
    });
    let mirror = raw.mirror.as_ref().and_then(|m| {
        super::bridge::compile_mirror(
            &derive,
            &cx,
            m.span(),
            is_write,
            write.as_ref().is_some_and(|w| w.queue.is_some()),
            diags,
        )
    });
    if diags.errors().count() > errors_before {
        return None;
    }
    let (source, _) = source?;
    Some(RoutePlan {
        version: mf.version.clone(),
        method,
        path: format!("/{}{}", mf.version, raw.path.get_ref()),
        file: file.name.clone(),
        line: file.locate(raw.id.span().start).0,
        summary: raw.summary,
        description: raw.description,
        tags,
        scopes: raw.scopes,
        public: raw.public,
        rate_limit,
        cache,
        statement_timeout,
        deprecation,
        accept_breaking: raw.accept_breaking.as_ref().map(|a| a.get_ref().clone()),
        shadow,
        mirror,
        batch,
        one: raw.one,
        max_rows,
        source,
        sql: Arc::from(statement.sql),
        bind_order: statement.bind_order,
        params: params.plans,
        columns,
        etag_fields,
        write,
        list,
        on_invalid: info.on_invalid,
        key,
        id,
    })
}

/// The route head did not read: still check its params and columns, so that their mistakes
/// are reported in this pass too.
fn check_entries_alone(
    file: &SourceFile,
    params: &[Entry<'_>],
    columns: &[Entry<'_>],
    diags: &mut Diagnostics,
) {
    for entry in params {
        if entry.1.get_ref().as_str().is_none()
            && let Some(rp) = raw::read_param(file, entry, diags)
        {
            compile_param(file, &entry.0, ParamLocation::Query, rp, diags);
        }
    }
    for entry in columns {
        if entry.1.get_ref().as_str().is_none()
            && let Some(rc) = raw::read_column(file, entry, diags)
        {
            compile_column(file, &entry.0, rc, diags);
        }
    }
}

fn check_id(cx: &RouteCx<'_>, id: &Spanned<String>, diags: &mut Diagnostics) {
    if !is_identifier(cx.id) {
        diags.error_hint(
            cx.file,
            id.span(),
            format!("route id `{}` is not an identifier", cx.id),
            "use letters, digits and `_`, starting with a letter, e.g. getJob",
        );
    }
}

/// The HTTP method, upper case: GET, or a write method.
fn method(cx: &RouteCx<'_>, method: Option<&Spanned<String>>, diags: &mut Diagnostics) -> String {
    let name = method.map_or_else(|| "GET".to_string(), |m| m.get_ref().to_ascii_uppercase());
    if name != "GET" && !write::WRITE_METHODS.contains(&name.as_str()) {
        diags.error_hint(
            cx.file,
            method.map_or(cx.span.clone(), Spanned::span),
            format!("route `{}`: method `{name}` cannot be mapped", cx.id),
            "use GET, POST, PUT, PATCH or DELETE",
        );
    }
    name
}

/// The route's source (its own, else the file's) and what compilation needs to know of it.
fn resolve_source(
    cx: &RouteCx<'_>,
    source: Option<&Spanned<String>>,
    sources: &IndexMap<String, SourceInfo>,
    diags: &mut Diagnostics,
) -> Option<(String, SourceInfo)> {
    let Some(s) = source else {
        diags.error_hint(
            cx.file,
            cx.span.clone(),
            format!("route `{}` has no source", cx.id),
            "add source = \"NAME\" at the top of the file (or in the route)",
        );
        return None;
    };
    if let Some(info) = sources.get(s.get_ref()) {
        return Some((s.get_ref().clone(), *info));
    }
    let known: Vec<&str> = sources.keys().map(String::as_str).collect();
    diags.error_hint(
        cx.file,
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

/// Compile every `params.NAME`, deciding where each value comes from.
fn compile_params(
    cx: &RouteCx<'_>,
    raw: &RawRoute,
    entries: &[Entry<'_>],
    path_params: &[String],
    dialect: Dialect,
    diags: &mut Diagnostics,
) -> RouteParams {
    let mut out = RouteParams {
        declared: entries.iter().map(|(n, _)| n.get_ref().clone()).collect(),
        ..RouteParams::default()
    };
    for entry in entries {
        let name = &entry.0;
        let Some(rp) = raw::read_param(cx.file, entry, diags) else {
            continue;
        };
        if !is_identifier(name.get_ref()) {
            diags.error_hint(
                cx.file,
                name.span(),
                format!("parameter name `{}` is not an identifier", name.get_ref()),
                "use letters, digits and `_`",
            );
            continue;
        }
        let location = param_location(cx, raw, name, &rp, path_params, diags);
        if let Some(mut p) = compile_param(cx.file, name, location, rp, diags) {
            if let ParamType::String {
                like: Some(like), ..
            } = &mut p.ty
            {
                like.brackets = dialect.like_escapes_brackets();
            }
            out.plans.push(p);
            out.spans.push(name.span());
        }
    }
    out
}

/// Claim, path or query; a claim-bound parameter can be neither in the path nor on a public
/// route.
fn param_location(
    cx: &RouteCx<'_>,
    raw: &RawRoute,
    name: &Spanned<String>,
    rp: &RawParam,
    path_params: &[String],
    diags: &mut Diagnostics,
) -> ParamLocation {
    let in_path = path_params.iter().any(|p| p == name.get_ref());
    let Some(claim) = &rp.from_claim else {
        return if in_path {
            ParamLocation::Path
        } else {
            ParamLocation::Query
        };
    };
    if in_path {
        diags.error_hint(
            cx.file,
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
            cx.file,
            claim.span(),
            format!(
                "route `{}` is public but parameter `{}` needs a verified claim",
                cx.id,
                name.get_ref()
            ),
            "remove `public = true` and give the route scopes",
        );
    }
    ParamLocation::Claim
}

fn check_path_params_declared(
    cx: &RouteCx<'_>,
    path: &Spanned<String>,
    path_params: &[String],
    declared: &[String],
    diags: &mut Diagnostics,
) {
    for pp in path_params {
        if !declared.contains(pp) {
            diags.error_hint(
                cx.file,
                path.span(),
                format!(
                    "route `{}`: path parameter `{{{pp}}}` is not declared",
                    cx.id
                ),
                format!("add params.{pp} = {{ type = \"string\" }} (or integer, date, …)"),
            );
        }
    }
}

/// Compile every `columns.NAME`; database names and response names must each be unique.
fn compile_columns(
    cx: &RouteCx<'_>,
    entries: &[Entry<'_>],
    diags: &mut Diagnostics,
) -> Vec<ColumnPlan> {
    let mut columns: Vec<ColumnPlan> = Vec::new();
    let mut outputs: HashMap<String, Range<usize>> = HashMap::new();
    for entry in entries {
        let name = &entry.0;
        let Some(rc): Option<RawColumn> = raw::read_column(cx.file, entry, diags) else {
            continue;
        };
        if columns
            .iter()
            .any(|c| c.db_name.eq_ignore_ascii_case(name.get_ref()))
        {
            diags.error(
                cx.file,
                name.span(),
                format!(
                    "column `{}` is mapped twice (names are not case-sensitive)",
                    name.get_ref()
                ),
            );
            continue;
        }
        let Some(c) = compile_column(cx.file, name, rc, diags) else {
            continue;
        };
        let span = name.span();
        if let Some(first) = outputs.get(&c.output) {
            let (l, _) = cx.file.locate(first.start);
            diags.error_hint(
                cx.file,
                span.clone(),
                format!(
                    "route `{}`: two columns are named `{}` in the response",
                    cx.id, c.output
                ),
                format!("the other is on line {l}; give each its own `name`"),
            );
        }
        outputs.insert(c.output.clone(), span);
        columns.push(c);
    }
    columns
}

/// The columns that identify a row in logs and scan reports: `key`, else the page keys.
fn row_key(
    cx: &RouteCx<'_>,
    raw: &RawRoute,
    list: &ListPlan,
    diags: &mut Diagnostics,
) -> Vec<String> {
    match &raw.key {
        Some(k) => {
            for name in k.get_ref() {
                if !is_identifier(name) {
                    diags.error(
                        cx.file,
                        k.span(),
                        format!(
                            "route `{}`: `key` names `{name}`, which is not a column name",
                            cx.id
                        ),
                    );
                }
            }
            k.get_ref().clone()
        }
        None => list
            .page
            .iter()
            .flat_map(|p| &p.by)
            .map(|k| k.column.clone())
            .collect(),
    }
}

/// The row cap: the route's own, 1 for `one = true`, else the default.
fn max_rows(
    cx: &RouteCx<'_>,
    raw: &RawRoute,
    default_max_rows: usize,
    diags: &mut Diagnostics,
) -> usize {
    if raw.one
        && let Some(m) = &raw.max_rows
    {
        diags.error_hint(
            cx.file,
            m.span(),
            format!(
                "route `{}`: `max_rows` does not apply to a `one = true` route",
                cx.id
            ),
            "remove `max_rows`, or `one`",
        );
    }
    match &raw.max_rows {
        Some(m) if *m.get_ref() == 0 => {
            diags.error(
                cx.file,
                m.span(),
                format!("route `{}`: `max_rows` must be at least 1", cx.id),
            );
            1
        }
        Some(m) => *m.get_ref(),
        None if raw.one => 1,
        None => default_max_rows,
    }
}

/// A route is either `public` or needs scopes, never both, never neither.
fn check_access(cx: &RouteCx<'_>, raw: &RawRoute, diags: &mut Diagnostics) {
    if raw.public && !raw.scopes.is_empty() {
        diags.error_hint(
            cx.file,
            cx.span.clone(),
            format!("route `{}` is `public` and has `scopes`", cx.id),
            "a public route needs no scopes: remove one of the two",
        );
    }
    if !raw.public && raw.scopes.is_empty() {
        diags.error_hint(
            cx.file,
            cx.span.clone(),
            format!("route `{}` has no `scopes` and is not `public`", cx.id),
            "give it scopes = [\"jobs:read\"], or say public = true if anyone may call it",
        );
    }
}

fn cache(
    cx: &RouteCx<'_>,
    cache: Option<&Spanned<String>>,
    diags: &mut Diagnostics,
) -> Option<Duration> {
    let c = cache?;
    match crate::config::parse_duration(c.get_ref()) {
        Some(d) if !d.is_zero() && d <= Duration::from_hours(24) => Some(d),
        _ => {
            diags.error_hint(
                cx.file,
                c.span(),
                format!(
                    "route `{}`: `cache` is not a duration between 1ms and 24h",
                    cx.id
                ),
                format!(
                    "write it like \"5s\" or \"1m\" ({})",
                    crate::config::DURATION_UNITS
                ),
            );
            None
        }
    }
}

fn statement_timeout(
    cx: &RouteCx<'_>,
    timeout: Option<&Spanned<String>>,
    diags: &mut Diagnostics,
) -> Option<Duration> {
    let t = timeout?;
    crate::config::parse_duration(t.get_ref())
        .filter(|d| d.as_secs() >= 1)
        .or_else(|| {
            diags.error_hint(
                cx.file,
                t.span(),
                format!(
                    "route `{}`: `statement_timeout` must be a duration of 1s or more",
                    cx.id
                ),
                format!(
                    "write it like \"2s\" ({}); drivers count in whole seconds",
                    crate::config::DURATION_UNITS
                ),
            );
            None
        })
}

fn rate_limit(
    cx: &RouteCx<'_>,
    rate: Option<&Spanned<String>>,
    diags: &mut Diagnostics,
) -> Option<RateSpec> {
    let r = rate?;
    RateSpec::parse(r.get_ref()).or_else(|| {
        diags.error_hint(
            cx.file,
            r.span(),
            format!("route `{}`: `rate_limit` is not a rate", cx.id),
            "write it like \"10/minute\" (per second, minute or hour)",
        );
        None
    })
}

/// `deprecated` and `sunset`, checked and turned into their header values once, here.
fn deprecation(cx: &RouteCx<'_>, raw: &RawRoute, diags: &mut Diagnostics) -> Option<Deprecation> {
    // RFC 9745: `@` and seconds since the epoch; RFC 8594: an HTTP-date.
    let deprecated = header_date(cx, raw.deprecated.as_ref(), "deprecated", diags, |e, _| {
        format!("@{e}")
    });
    let sunset = header_date(cx, raw.sunset.as_ref(), "sunset", diags, |_, d| d);
    if let Some(s) = &raw.sunset {
        match &deprecated {
            None if raw.deprecated.is_none() => diags.error_hint(
                cx.file,
                s.span(),
                format!("route `{}` has a `sunset` but is not `deprecated`", cx.id),
                "add deprecated = \"YYYY-MM-DD\", the date it was deprecated",
            ),
            Some(d) if sunset.as_ref().is_some_and(|s| s.date < d.date) => diags.error(
                cx.file,
                s.span(),
                format!("route `{}`: `sunset` is before `deprecated`", cx.id),
            ),
            _ => {}
        }
    }
    let successor = raw.successor.as_ref().and_then(|s| {
        if raw.deprecated.is_none() {
            diags.error_hint(
                cx.file,
                s.span(),
                format!(
                    "route `{}` has a `successor` but is not `deprecated`",
                    cx.id
                ),
                "add deprecated = \"YYYY-MM-DD\", or remove successor",
            );
            return None;
        }
        Some(Successor {
            id: s.get_ref().clone(),
            path: String::new(),
        })
    });
    Some(Deprecation {
        since: deprecated?,
        sunset,
        successor,
    })
}

/// A `YYYY-MM-DD` field and its header value, made by `header` from the date's seconds since
/// the epoch and its HTTP-date.
fn header_date(
    cx: &RouteCx<'_>,
    v: Option<&Spanned<String>>,
    field: &str,
    diags: &mut Diagnostics,
    header: impl FnOnce(i64, String) -> String,
) -> Option<HeaderDate> {
    let v = v?;
    let built = ParamType::Date(DateFormat::Iso)
        .parse(v.get_ref())
        .ok()
        .and_then(|_| crate::codec::date_header_forms(v.get_ref()))
        .and_then(|(epoch, http_date)| HeaderValue::from_str(&header(epoch, http_date)).ok());
    let Some(header) = built else {
        diags.error_hint(
            cx.file,
            v.span(),
            format!("route `{}`: `{field}` must be a date", cx.id),
            "write it as \"YYYY-MM-DD\"",
        );
        return None;
    };
    Some(HeaderDate {
        date: v.get_ref().clone(),
        header,
    })
}
