//! What a list route offers beyond its rows: keyset paging (`page`), the sort whitelist
//! (`sort`), counts with a time budget (`count`) and streaming exports (`export`). Checked
//! here, once, so that a request only looks names up.

use std::time::Duration;

use toml::Spanned;

use super::SourceInfo;
use super::raw::{RawCount, RawRoute};
use super::route::{RouteCx, RouteParams};
use crate::catalog::{ColumnPlan, ExportPlan, ListPlan, PageKey, PagePlan, SortField};
use crate::codec::ColumnType;
use crate::diag::Diagnostics;
use crate::dialect::has_top_level_order_by;

/// Page size when `page` names none.
pub(super) const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page a caller may ask for when `page` names no `max`.
pub(super) const DEFAULT_PAGE_MAX: usize = 500;
/// Rows an export streams at most when `export` names no `max_rows`.
pub(super) const DEFAULT_EXPORT_ROWS: usize = 100_000;
/// A count's time budget when `count` names none.
pub(super) const DEFAULT_COUNT_BUDGET: Duration = Duration::from_secs(2);

/// Compile `page`, `sort`, `count` and `export` of a read route. `sql` is the route's SQL as
/// the DBA wrote it.
pub(super) fn compile_list(
    cx: &RouteCx<'_>,
    raw: &RawRoute,
    columns: &[ColumnPlan],
    params: &RouteParams,
    sql: Option<&Spanned<String>>,
    info: SourceInfo,
    diags: &mut Diagnostics,
) -> ListPlan {
    let mut plan = ListPlan {
        dialect: info.dialect,
        placeholders: info.placeholders,
        ..ListPlan::default()
    };
    if raw.one {
        reject_list_options(cx, raw, "list routes", ", or `one = true`", diags);
        reserved_names(cx, params, &["fields"], diags);
        return plan;
    }
    let ordered = sql.is_some_and(|s| has_top_level_order_by(s.get_ref()));
    if let Some(page) = &raw.page {
        if let (Some(s), true) = (sql, ordered) {
            diags.error_hint(
                cx.file,
                s.span(),
                format!(
                    "route `{}`: a paged route's SQL must not end in ORDER BY; the page order comes from `page.by`",
                    cx.id
                ),
                "remove the ORDER BY and list its columns in `page.by` (\"-COL\" for descending)",
            );
        }
        if let Some(m) = &raw.max_rows {
            diags.error_hint(
                cx.file,
                m.span(),
                format!(
                    "route `{}`: `max_rows` does not apply to a paged route",
                    cx.id
                ),
                "a page holds at most `page.max` rows: remove `max_rows`",
            );
        }
        let p = page.get_ref();
        let mut by = Vec::new();
        if p.by.get_ref().is_empty() {
            diags.error_hint(
                cx.file,
                p.by.span(),
                format!("route `{}`: `page.by` names no column", cx.id),
                "list the columns that order the rows, ending in a unique combination, e.g. by = [\"DUEDT\", \"JOBNO\"]",
            );
        }
        for entry in p.by.get_ref() {
            let (descending, name) = match entry.strip_prefix('-') {
                Some(n) => (true, n),
                None => (false, entry.as_str()),
            };
            let Some(col) = columns
                .iter()
                .find(|c| c.db_name.eq_ignore_ascii_case(name))
            else {
                diags.error_hint(
                    cx.file,
                    p.by.span(),
                    format!(
                        "route `{}`: `page.by` names `{name}`, which is not one of the route's columns",
                        cx.id
                    ),
                    format!("name it under columns (columns.{name} = {{ … }}): the page key must be a column of the result"),
                );
                continue;
            };
            if by
                .iter()
                .any(|k: &PageKey| k.column.eq_ignore_ascii_case(name))
            {
                diags.error(
                    cx.file,
                    p.by.span(),
                    format!("route `{}`: `page.by` names `{name}` twice", cx.id),
                );
                continue;
            }
            if matches!(col.ty, Some(ColumnType::Binary)) {
                diags.error(
                    cx.file,
                    p.by.span(),
                    format!(
                        "route `{}`: `page.by` cannot order by the binary column `{name}`",
                        cx.id
                    ),
                );
                continue;
            }
            by.push(PageKey {
                column: col.db_name.clone(),
                output: col.output.clone(),
                descending,
                nullable: col.nullable,
            });
        }
        let size = p.size.as_ref().map_or(DEFAULT_PAGE_SIZE, |s| *s.get_ref());
        let max = p
            .max
            .as_ref()
            .map_or(DEFAULT_PAGE_MAX.max(size), |m| *m.get_ref());
        if size == 0 || size > max {
            diags.error_hint(
                cx.file,
                p.size.as_ref().map_or_else(|| page.span(), Spanned::span),
                format!(
                    "route `{}`: `page.size` must be between 1 and `page.max` ({max})",
                    cx.id
                ),
                "size is the page a caller gets without `limit`; max is the most `limit` may ask",
            );
        }
        plan.page = Some(PagePlan { by, size, max });
        reserved_names(cx, params, &["limit", "cursor"], diags);
    }
    if let Some(sort) = &raw.sort {
        if plan.page.is_none() {
            diags.error_hint(
                cx.file,
                sort.span(),
                format!("route `{}`: `sort` needs `page`", cx.id),
                "declare page = { by = [...] } so that every sort pages the same way",
            );
        }
        for name in sort.get_ref() {
            let Some(col) = columns.iter().find(|c| &c.output == name) else {
                let known: Vec<&str> = columns.iter().map(|c| c.output.as_str()).collect();
                diags.error_hint(
                    cx.file,
                    sort.span(),
                    format!(
                        "route `{}`: `sort` names `{name}`, which is not a field of the route",
                        cx.id
                    ),
                    format!("sort lists public field names: {}", known.join(", ")),
                );
                continue;
            };
            if plan.sort.iter().any(|s| &s.output == name) {
                diags.error(
                    cx.file,
                    sort.span(),
                    format!("route `{}`: `sort` names `{name}` twice", cx.id),
                );
                continue;
            }
            if matches!(col.ty, Some(ColumnType::Binary)) {
                diags.error(
                    cx.file,
                    sort.span(),
                    format!(
                        "route `{}`: `sort` cannot order by the binary field `{name}`",
                        cx.id
                    ),
                );
                continue;
            }
            plan.sort.push(SortField {
                output: col.output.clone(),
                column: col.db_name.clone(),
                nullable: col.nullable,
            });
        }
        reserved_names(cx, params, &["sort"], diags);
    }
    // SQL Server refuses ORDER BY in the derived table a count wraps the statement in.
    let countable = !(ordered && info.dialect == crate::dialect::Dialect::Mssql);
    plan.count = match raw.count.as_ref().map(|c| (c, c.get_ref())) {
        None if countable => Some(DEFAULT_COUNT_BUDGET),
        None | Some((_, RawCount::Enabled(false))) => None,
        Some((c, RawCount::Enabled(true))) => {
            countable_or_error(cx, c, countable, diags);
            Some(DEFAULT_COUNT_BUDGET)
        }
        Some((c, RawCount::Budget(text))) => {
            countable_or_error(cx, c, countable, diags);
            match crate::config::parse_duration(text) {
                Some(d) if d >= Duration::from_millis(100) && d <= Duration::from_mins(10) => {
                    Some(d)
                }
                _ => {
                    diags.error_hint(
                        cx.file,
                        c.span(),
                        format!(
                            "route `{}`: `count` is not a time budget between 100ms and 10m",
                            cx.id
                        ),
                        "write the budget like count = \"2s\", or count = false to refuse counts",
                    );
                    None
                }
            }
        }
    };
    if plan.count.is_some() {
        reserved_names(cx, params, &["count"], diags);
    }
    if let Some(export) = &raw.export {
        let max_rows = export
            .get_ref()
            .max_rows
            .as_ref()
            .map_or(DEFAULT_EXPORT_ROWS, |m| *m.get_ref());
        if max_rows == 0 {
            diags.error(
                cx.file,
                export.span(),
                format!("route `{}`: `export.max_rows` must be at least 1", cx.id),
            );
        }
        plan.export = Some(ExportPlan { max_rows });
        reserved_names(cx, params, &["format"], diags);
    }
    reserved_names(cx, params, &["fields"], diags);
    plan
}

/// Report each of `page`, `sort`, `count` and `export` a route gives where they do not apply:
/// "applies only to {to}", hint "remove `x`{or}".
pub(super) fn reject_list_options(
    cx: &RouteCx<'_>,
    raw: &RawRoute,
    to: &str,
    or: &str,
    diags: &mut Diagnostics,
) {
    for (name, span) in [
        ("page", raw.page.as_ref().map(Spanned::span)),
        ("sort", raw.sort.as_ref().map(Spanned::span)),
        ("count", raw.count.as_ref().map(Spanned::span)),
        ("export", raw.export.as_ref().map(Spanned::span)),
    ] {
        if let Some(span) = span {
            diags.error_hint(
                cx.file,
                span,
                format!("route `{}`: `{name}` applies only to {to}", cx.id),
                format!("remove `{name}`{or}"),
            );
        }
    }
}

fn countable_or_error(
    cx: &RouteCx<'_>,
    c: &Spanned<RawCount>,
    countable: bool,
    diags: &mut Diagnostics,
) {
    if !countable {
        diags.error_hint(
            cx.file,
            c.span(),
            format!(
                "route `{}`: SQL Server cannot count a statement that ends in ORDER BY",
                cx.id
            ),
            "page the route (`page.by` gives the order), or say count = false",
        );
    }
}

/// The route's own query parameters must not take the names the gateway reads itself.
fn reserved_names(cx: &RouteCx<'_>, params: &RouteParams, names: &[&str], diags: &mut Diagnostics) {
    for (plan, span) in params.plans.iter().zip(&params.spans) {
        if plan.location == crate::catalog::ParamLocation::Query
            && names.contains(&plan.name.as_str())
        {
            diags.error_hint(
                cx.file,
                span.clone(),
                format!(
                    "route `{}`: the query parameter `{}` clashes with the gateway's own `{}`",
                    cx.id, plan.name, plan.name
                ),
                format!(
                    "rename the parameter: {} are read by the gateway on this route",
                    names.join(", ")
                ),
            );
        }
    }
}
