//! A route's SQL: find its `:name` parameters, match them with the declared ones (bind
//! order, undeclared and unused names), rewrite them into the source's placeholders, and check
//! that `like` parameters meet the escape clause their dialect needs. Diagnostics point into
//! the SQL string at the exact character where they can.

use std::ops::Range;

use toml::Spanned;

use super::SourceInfo;
use super::route::{RouteCx, RouteParams};
use crate::codec::ParamType;
use crate::diag::{Diagnostics, SourceFile};
use crate::dialect::Dialect;
use crate::sql::{self, NamedParam};

/// The SQL as the driver receives it and, per placeholder, the parameter it takes.
#[derive(Debug, Default)]
pub(super) struct Statement {
    pub(super) sql: String,
    pub(super) bind_order: Vec<usize>,
}

/// Scan, check and rewrite the route's SQL.
pub(super) fn plan_statement(
    cx: &RouteCx<'_>,
    sql_text: &Spanned<String>,
    params: &RouteParams,
    source: SourceInfo,
    diags: &mut Diagnostics,
) -> Statement {
    let text = sql_text.get_ref();
    let found = match sql::scan_named(text, source.dialect) {
        Err(e) => {
            diags.error_hint(
                cx.file,
                sql_offset_span(cx.file, sql_text, e.offset, 1),
                format!("route `{}`: {}", cx.id, e.message),
                e.hint,
            );
            return Statement::default();
        }
        Ok(found) => found,
    };
    if text.trim().is_empty() {
        diags.error(
            cx.file,
            sql_text.span(),
            format!("route `{}`: `sql` is empty", cx.id),
        );
    }
    let bind_order = bind_order(cx, sql_text, &found, params, diags);
    check_unused(cx, &found, params, diags);
    let sql = sql::rewrite(text, &found, source.placeholders);
    check_like_escape(cx, text, params, source.dialect, diags);
    Statement { sql, bind_order }
}

/// For each `:name` in order, the index of its parameter; undeclared names are reported.
fn bind_order(
    cx: &RouteCx<'_>,
    sql_text: &Spanned<String>,
    found: &[NamedParam],
    params: &RouteParams,
    diags: &mut Diagnostics,
) -> Vec<usize> {
    let mut order = Vec::new();
    for f in found {
        match params.plans.iter().position(|p| p.name == f.name) {
            Some(i) => order.push(i),
            // A declared parameter with its own error was reported already.
            None if params.declared.contains(&f.name) => {}
            None => diags.error_hint(
                cx.file,
                sql_offset_span(cx.file, sql_text, f.span.start, f.span.len()),
                format!(
                    "route `{}`: `:{}` is used in the SQL but not declared",
                    cx.id, f.name
                ),
                format!(
                    "add params.{} = {{ type = \"string\" }} (or integer, date, …)",
                    f.name
                ),
            ),
        }
    }
    order
}

/// Every declared parameter must be used by the SQL.
fn check_unused(
    cx: &RouteCx<'_>,
    found: &[NamedParam],
    params: &RouteParams,
    diags: &mut Diagnostics,
) {
    for (p, span) in params.plans.iter().zip(&params.spans) {
        if !found.iter().any(|f| f.name == p.name) {
            diags.error_hint(
                cx.file,
                span.clone(),
                format!(
                    "route `{}`: parameter `{}` is declared but the SQL never uses `:{}`",
                    cx.id, p.name, p.name
                ),
                "use it in the SQL, or remove the declaration",
            );
        }
    }
}

/// A `like` parameter's value is escaped by the gateway; the SQL must say with what.
fn check_like_escape(
    cx: &RouteCx<'_>,
    sql_text: &str,
    params: &RouteParams,
    dialect: Dialect,
    diags: &mut Diagnostics,
) {
    if dialect.has_like_escape_clause(sql_text) {
        return;
    }
    let clause = dialect.like_escape_clause();
    for (p, span) in params.plans.iter().zip(&params.spans) {
        if matches!(p.ty, ParamType::String { like: Some(_), .. }) {
            diags.error_hint(
                cx.file,
                span.clone(),
                format!(
                    "route `{}`: parameter `{}` is matched with `like`, but the SQL has no \
                     `{clause}`",
                    cx.id, p.name
                ),
                format!(
                    "write `LIKE :{} {clause}`: the gateway escapes `%` and `_` with `!`",
                    p.name
                ),
            );
        }
    }
}

/// The span of text at `offset` within the SQL string's value, in file coordinates. Exact when
/// the string is written without escapes before that point; otherwise the string's start.
pub(super) fn sql_offset_span(
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
