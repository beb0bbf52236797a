//! How a write reaches its database: `delivery = "direct"` (the default: run now, answer with
//! the result) or `"queued"` (accepted into the write queue, delivered in the background), and
//! for a queued write its `order_key`, `retry` policy and `dedup_table` → a [`QueuePlan`]. The
//! dedup table's statements come from the source's dialect; everything else about delivering
//! is the server's.

use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::SourceInfo;
use super::raw::{RawRetry, RawRoute};
use super::route::RouteCx;
use super::write::Named;
use crate::catalog::{DedupPlan, QueuePlan, RetryPolicy, ValueRef};
use crate::diag::Diagnostics;

/// The queue plan of a write route; `None` for a direct one (or one with errors, reported).
pub(super) fn compile(
    cx: &RouteCx<'_>,
    raw: &RawRoute,
    names: &[Named],
    bulk: bool,
    source: SourceInfo,
    diags: &mut Diagnostics,
) -> Option<QueuePlan> {
    let queued = match raw.delivery.as_ref().map(|d| (d, d.get_ref().as_str())) {
        None | Some((_, "direct")) => false,
        Some((_, "queued")) => true,
        Some((d, other)) => {
            diags.error_hint(
                cx.file,
                d.span(),
                format!("route `{}`: unknown `delivery` value `{other}`", cx.id),
                "use direct (run now) or queued (202, delivered in the background)",
            );
            return None;
        }
    };
    if !queued {
        let only_queued: [(&str, Option<std::ops::Range<usize>>); 3] = [
            ("order_key", raw.order_key.as_ref().map(Spanned::span)),
            ("dedup_table", raw.dedup_table.as_ref().map(Spanned::span)),
            ("retry", raw.retry.as_ref().map(Spanned::span)),
        ];
        for (key, span) in only_queued {
            if let Some(span) = span {
                diags.error_hint(
                    cx.file,
                    span,
                    format!("route `{}`: `{key}` applies only to queued writes", cx.id),
                    "add delivery = \"queued\", or remove it",
                );
            }
        }
        return None;
    }
    if let Some(e) = &raw.etag_from {
        diags.error_hint(
            cx.file,
            e.span(),
            format!(
                "route `{}`: a queued write cannot check If-Match: the record may change \
                 between acceptance and delivery",
                cx.id
            ),
            "remove etag_from, or use delivery = \"direct\"",
        );
    }
    let order_key = raw.order_key.as_ref().and_then(|k| {
        let name = k.get_ref();
        if bulk {
            diags.error_hint(
                cx.file,
                k.span(),
                format!("route `{}`: `order_key` cannot order a bulk body", cx.id),
                "remove bulk, or order by a path parameter",
            );
            return None;
        }
        match names.iter().find(|n| &n.name == name) {
            Some(n) if matches!(n.value, ValueRef::Param(_) | ValueRef::Field(_)) => {
                Some((name.clone(), n.value))
            }
            _ => {
                diags.error_hint(
                    cx.file,
                    k.span(),
                    format!(
                        "route `{}`: `order_key` names `{name}`, which is no parameter or body \
                         field of this write",
                        cx.id
                    ),
                    "name a path or query parameter, or a (non-list) body field",
                );
                None
            }
        }
    });
    let retry = raw
        .retry
        .as_ref()
        .map_or_else(RetryPolicy::default, |r| retry(cx, r.get_ref(), diags));
    let dedup = raw.dedup_table.as_ref().and_then(|t| {
        let table = t.get_ref();
        if !is_table_name(table) {
            diags.error_hint(
                cx.file,
                t.span(),
                format!(
                    "route `{}`: `dedup_table` `{table}` is no table name",
                    cx.id
                ),
                "write NAME or SCHEMA.NAME (letters, digits, _, $, #, @); print its DDL with \
                 `patina dedup-table`",
            );
            return None;
        }
        let d = source.dialect;
        let p = |n| source.placeholders.nth(n);
        Some(DedupPlan {
            table: table.clone(),
            check_sql: Arc::from(d.dedup_check_sql(table, &p(1))),
            record_sql: Arc::from(d.dedup_record_sql(table, &p(1), &p(2))),
        })
    });
    Some(QueuePlan {
        order_key,
        retry,
        dedup,
    })
}

fn retry(cx: &RouteCx<'_>, r: &RawRetry, diags: &mut Diagnostics) -> RetryPolicy {
    let d = RetryPolicy::default();
    let mut duration = |v: Option<&Spanned<String>>, key: &str, default: Duration| {
        let Some(v) = v else {
            return default;
        };
        match crate::config::parse_duration(v.get_ref()) {
            Some(t) if t >= Duration::from_millis(10) => t,
            _ => {
                diags.error_hint(
                    cx.file,
                    v.span(),
                    format!(
                        "route `{}`: `retry.{key}` must be a duration of 10ms or more",
                        cx.id
                    ),
                    "e.g. \"500ms\", \"30s\", \"5m\", \"24h\"",
                );
                default
            }
        }
    };
    let base = duration(r.base.as_ref(), "base", d.base);
    let cap = duration(r.cap.as_ref(), "cap", d.cap);
    let max_age = duration(r.max_age.as_ref(), "max_age", d.max_age);
    let max_attempts = match &r.max_attempts {
        Some(n) if (1..=1000).contains(n.get_ref()) => *n.get_ref(),
        Some(n) => {
            diags.error(
                cx.file,
                n.span(),
                format!(
                    "route `{}`: `retry.max_attempts` must be between 1 and 1000",
                    cx.id
                ),
            );
            d.max_attempts
        }
        None => d.max_attempts,
    };
    if cap < base
        && let Some(c) = &r.cap
    {
        diags.error(
            cx.file,
            c.span(),
            format!(
                "route `{}`: `retry.cap` is shorter than `retry.base`",
                cx.id
            ),
        );
    }
    RetryPolicy {
        base,
        cap,
        max_attempts,
        max_age,
    }
}

/// `NAME` or `SCHEMA.NAME`, each an unquoted SQL identifier as legacy systems spell them.
fn is_table_name(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 128
            && p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '#' | '@'))
    };
    let mut parts = s.split('.');
    let ok = parts.next().is_some_and(part);
    match (parts.next(), parts.next()) {
        (None, _) => ok,
        (Some(p), None) => ok && part(p),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_table_name;

    #[test]
    fn dedup_table_names() {
        for ok in [
            "DELIVERED",
            "PATINA.DELIVERED",
            "dbo.Patina_Delivered",
            "LIB#1.T$X",
        ] {
            assert!(is_table_name(ok), "{ok}");
        }
        for bad in ["", "a.b.c", "1X", "x;drop", "x y", "\"X\"", ".x", "x."] {
            assert!(!is_table_name(bad), "{bad}");
        }
    }
}
