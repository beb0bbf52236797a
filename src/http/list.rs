//! The controls a caller gives a read route besides its parameters — `limit`, `cursor`,
//! `sort`, `fields`, `count`, `format` — read and checked here, and the statement a request
//! runs: the route's SQL as is, or wrapped in its dialect's keyset form for a page in the
//! chosen order after the cursor's row. Pure; no IO.

use std::sync::Arc;

use super::params::decode;
use super::problem::FieldError;
use crate::catalog::RoutePlan;
use crate::codec::BindValue;
use crate::cursor::{self, CursorKey};
use crate::dialect::{KeysetPage, SortKey};

/// What a response is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    Ndjson,
    Csv,
}

impl Format {
    pub(super) fn media_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// The gateway's own query controls of one request, checked against what the route offers.
#[derive(Debug, Default)]
pub(super) struct Controls {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Chosen sort: index into the route's `sort` whitelist, descending.
    pub sort: Vec<(usize, bool)>,
    /// Chosen output fields, in the route's column order.
    pub fields: Option<Arc<[String]>>,
    /// `count=exact`.
    pub count: bool,
    pub format: Option<Format>,
}

/// Split a query string into the controls the route offers and the rest (its parameters,
/// still encoded, for [`super::params`]). A control the route does not offer stays in the
/// rest, where it is refused as an unknown parameter. Mistakes in the controls come back
/// beside the rest, so that the parameters are checked too and every problem is reported.
pub(super) fn split_query(route: &RoutePlan, query: &str) -> (Controls, String, Vec<FieldError>) {
    let list = &route.list;
    let mut controls = Controls::default();
    let mut rest: Vec<&str> = Vec::new();
    let mut errors = Vec::new();
    let mut seen: Vec<&'static str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let name: &'static str = match decode(k, true).as_deref() {
            Some("limit") if list.page.is_some() => "limit",
            Some("cursor") if list.page.is_some() => "cursor",
            Some("sort") if !list.sort.is_empty() => "sort",
            Some("fields") if route.write.is_none() => "fields",
            Some("count") if list.count.is_some() => "count",
            Some("format") if list.export.is_some() => "format",
            _ => {
                rest.push(pair);
                continue;
            }
        };
        let problem = |detail: String| FieldError {
            name: name.to_string(),
            location: "query",
            detail,
            pointer: None,
        };
        if seen.contains(&name) {
            if !errors.iter().any(|e: &FieldError| e.name == name) {
                errors.push(problem("is given more than once".into()));
            }
            continue;
        }
        seen.push(name);
        let Some(v) = decode(v, true) else {
            errors.push(problem("is not valid UTF-8 after percent-decoding".into()));
            continue;
        };
        let result = match name {
            "limit" => limit(route, &v).map(|l| controls.limit = Some(l)),
            "cursor" if v.is_empty() => Err("is empty".to_string()),
            "cursor" => {
                controls.cursor = Some(v);
                Ok(())
            }
            "sort" => sort(route, &v).map(|s| controls.sort = s),
            "fields" => fields(route, &v).map(|f| controls.fields = Some(f)),
            "count" if v == "exact" => {
                controls.count = true;
                Ok(())
            }
            "count" => Err("must be `exact`".to_string()),
            _ => match v.as_str() {
                "json" => Ok(Format::Json),
                "ndjson" => Ok(Format::Ndjson),
                "csv" => Ok(Format::Csv),
                _ => Err("must be one of json, ndjson, csv".to_string()),
            }
            .map(|f| controls.format = Some(f)),
        };
        if let Err(detail) = result {
            errors.push(problem(detail));
        }
    }
    (controls, rest.join("&"), errors)
}

fn limit(route: &RoutePlan, v: &str) -> Result<usize, String> {
    let max = route.list.page.as_ref().map_or(1, |p| p.max);
    match v.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be an integer between 1 and {max}")),
    }
}

fn sort(route: &RoutePlan, v: &str) -> Result<Vec<(usize, bool)>, String> {
    let allowed = || {
        let names: Vec<&str> = route.list.sort.iter().map(|s| s.output.as_str()).collect();
        format!(
            "allowed: {} (a leading `-` sorts descending)",
            names.join(", ")
        )
    };
    let mut out: Vec<(usize, bool)> = Vec::new();
    for part in v.split(',') {
        let (descending, name) = match part.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, part),
        };
        let Some(i) = route.list.sort.iter().position(|s| s.output == name) else {
            return Err(format!("cannot sort by `{name}`; {}", allowed()));
        };
        if out.iter().any(|(j, _)| *j == i) {
            return Err(format!("names `{name}` twice"));
        }
        out.push((i, descending));
    }
    Ok(out)
}

fn fields(route: &RoutePlan, v: &str) -> Result<Arc<[String]>, String> {
    let mut chosen: Vec<&str> = Vec::new();
    for name in v.split(',') {
        if !route.columns.iter().any(|c| c.output == name) {
            let known: Vec<&str> = route.columns.iter().map(|c| c.output.as_str()).collect();
            return Err(format!(
                "has no field `{name}`; this route's fields: {}",
                known.join(", ")
            ));
        }
        if !chosen.contains(&name) {
            chosen.push(name);
        }
    }
    Ok(route
        .columns
        .iter()
        .filter(|c| chosen.contains(&c.output.as_str()))
        .map(|c| c.output.clone())
        .collect())
}

/// One key of the order a page is read in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Key {
    /// The column, as the mapping names it.
    pub column: String,
    pub descending: bool,
    pub nullable: bool,
}

/// The order of a paged request: the chosen sort, then the route's `page.by` keys it does not
/// name already (which end in a unique combination, so that ties never straddle pages).
pub(super) fn keys(route: &RoutePlan, controls: &Controls) -> Vec<Key> {
    let Some(page) = &route.list.page else {
        return Vec::new();
    };
    let mut keys: Vec<Key> = controls
        .sort
        .iter()
        .map(|&(i, descending)| {
            let s = &route.list.sort[i];
            Key {
                column: s.column.clone(),
                descending,
                nullable: s.nullable,
            }
        })
        .collect();
    for k in &page.by {
        if !keys
            .iter()
            .any(|have| have.column.eq_ignore_ascii_case(&k.column))
        {
            keys.push(Key {
                column: k.column.clone(),
                descending: k.descending,
                nullable: k.nullable,
            });
        }
    }
    keys
}

/// The statement one read runs.
#[derive(Debug)]
pub(super) struct Planned {
    pub sql: Arc<str>,
    pub binds: Vec<BindValue>,
    /// Rows to read at most (a page reads one more than it returns).
    pub max_rows: usize,
    pub page: Option<PageRun>,
}

/// What is needed to write the next page's cursor.
#[derive(Debug)]
pub(super) struct PageRun {
    /// Rows the page returns.
    pub limit: usize,
    /// The order's key columns, whose values the cursor carries.
    pub keys: Vec<String>,
    pub binding: [u8; 32],
}

/// Why a read could not be planned: a cursor this query did not write.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadCursor;

/// Plan one read: the route's statement as is, or (paged route) its keyset form.
/// `params` are the route's parameter values in its order, `binds` the same in placeholder
/// order. `rows_cap` bounds an unpaged read (the route's `max_rows`, or an export's cap).
pub(super) fn plan(
    route: &RoutePlan,
    controls: &Controls,
    params: &[BindValue],
    binds: Vec<BindValue>,
    key: &CursorKey,
    export_cap: Option<usize>,
) -> Result<Planned, BadCursor> {
    let Some(page) = &route.list.page else {
        return Ok(Planned {
            sql: Arc::clone(&route.sql),
            binds,
            // One row past the cap tells a complete list (or export) from a cut one.
            max_rows: match export_cap {
                Some(cap) => cap.saturating_add(1),
                None if route.one => route.max_rows,
                None => route.max_rows.saturating_add(1),
            },
            page: None,
        });
    };
    let keys = keys(route, controls);
    let sort: Vec<(&str, bool)> = keys
        .iter()
        .map(|k| (k.column.as_str(), k.descending))
        .collect();
    let binding = cursor::binding(&route.id, &sort, params);
    let after = match &controls.cursor {
        Some(text) => Some(cursor::open(key, &binding, text, keys.len()).map_err(|_| BadCursor)?),
        None => None,
    };
    let nulls: Option<Vec<bool>> = after.as_ref().map(|vals| {
        vals.iter()
            .map(|v| matches!(v, BindValue::Null(_)))
            .collect()
    });
    let sort_keys: Vec<SortKey<'_>> = keys
        .iter()
        .map(|k| SortKey {
            column: &k.column,
            descending: k.descending,
            nullable: k.nullable,
        })
        .collect();
    // With chosen fields, select those and the keys; else everything.
    let select: Vec<&str> = match &controls.fields {
        Some(f) => route
            .columns
            .iter()
            .filter(|c| {
                f.contains(&c.output)
                    || keys
                        .iter()
                        .any(|k| k.column.eq_ignore_ascii_case(&c.db_name))
            })
            .map(|c| c.db_name.as_str())
            .collect(),
        None => Vec::new(),
    };
    let limit = controls.limit.unwrap_or(page.size);
    let exporting = export_cap.is_some();
    let keyset = route.list.dialect.keyset(
        &KeysetPage {
            sql: &route.sql,
            select: &select,
            keys: &sort_keys,
            after: nulls.as_deref(),
            limit: !exporting,
        },
        route.list.placeholders,
        route.bind_order.len() + 1,
    );
    let mut binds = binds;
    if let Some(vals) = &after {
        binds.extend(keyset.binds.iter().map(|&i| vals[i].clone()));
    }
    let max_rows = match export_cap {
        // One row past the cap tells a complete export from a cut one.
        Some(cap) => cap.saturating_add(1),
        None => {
            binds.push(BindValue::Int(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
            limit + 1
        }
    };
    Ok(Planned {
        sql: Arc::from(keyset.sql),
        binds,
        max_rows,
        page: (!exporting).then(|| PageRun {
            limit,
            keys: keys.into_iter().map(|k| k.column).collect(),
            binding,
        }),
    })
}

/// The query string of the next page: the request's own, with its cursor replaced.
pub(super) fn next_query(query: &str, cursor: &str) -> String {
    let mut parts: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some("cursor"))
        .collect();
    let pair = format!("cursor={cursor}");
    parts.push(&pair);
    parts.join("&")
}
