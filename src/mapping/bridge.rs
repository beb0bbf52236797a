//! The migration bridge in a mapping: `shadow = { source, sql, columns, sample, timeout,
//! concurrency }` of a read route (the same answer asked of the new database, compared) and
//! `mirror = { source, sql | step, dedup_table, retry, order_key }` of a write route (the write
//! repeated on the new database through the durable queue). Each is compiled as the route
//! itself would be with its own source and statements (and the route's parameters, body, path
//! and `one`), so every check of a route applies to it and its mistakes are reported at their
//! own place.

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::raw::RawShadow;
use super::route::{RouteCx, compile_route};
use super::{MappingFile, SourceInfo};
use crate::catalog::Shadow;
use crate::diag::Diagnostics;

/// What compiling a shadow or mirror as a route needs.
pub(super) struct Derive<'a, 'v> {
    pub(super) mf: &'a MappingFile,
    pub(super) route: &'a Spanned<DeValue<'v>>,
    pub(super) table: &'a DeTable<'v>,
    pub(super) file_source: Option<&'a Spanned<String>>,
    pub(super) sources: &'a IndexMap<String, SourceInfo>,
    pub(super) default_max_rows: usize,
}

/// Fields of the route that the shadow does not take from it.
const NOT_INHERITED: &[&str] = &[
    "shadow",
    "batch",
    "mirror",
    "sql",
    "source",
    "columns",
    "page",
    "sort",
    "count",
    "export",
    "cache",
    "rate_limit",
    "deprecated",
    "sunset",
    "successor",
    "key",
    "etag_columns",
    "accept_breaking",
    "statement_timeout",
];

pub(super) fn compile_shadow(
    sx: &Derive<'_, '_>,
    cx: &RouteCx<'_>,
    raw: &Spanned<RawShadow>,
    refused: bool,
    primary_sql: Option<&str>,
    diags: &mut Diagnostics,
) -> Option<Arc<Shadow>> {
    let file = cx.file;
    if refused {
        diags.error_hint(
            file,
            raw.span(),
            format!(
                "route `{}`: `shadow` is for read routes without `page`",
                cx.id
            ),
            "compare a one-row read or an unpaged list; writes are mirrored with `mirror`",
        );
        return None;
    }
    let sh = raw.get_ref();
    // Every mistake is reported, the shadow's statement and columns included.
    let mut ok = true;
    let sample = match &sh.sample {
        None => 1.0,
        Some(s) if *s.get_ref() > 0.0 && *s.get_ref() <= 1.0 => *s.get_ref(),
        Some(s) => {
            diags.error_hint(
                file,
                s.span(),
                format!(
                    "route `{}`: `shadow.sample` must be above 0 and at most 1",
                    cx.id
                ),
                "the share of requests compared: 0.1 compares one in ten",
            );
            ok = false;
            1.0
        }
    };
    let timeout = match &sh.timeout {
        None => Duration::from_secs(2),
        Some(t) => match crate::config::parse_duration(t.get_ref()) {
            Some(d) if !d.is_zero() => d,
            _ => {
                diags.error_hint(
                    file,
                    t.span(),
                    format!("route `{}`: `shadow.timeout` is not a duration", cx.id),
                    "write it like \"2s\" or \"500ms\"",
                );
                ok = false;
                Duration::from_secs(2)
            }
        },
    };
    let concurrency = match &sh.concurrency {
        None => 4,
        Some(c) if *c.get_ref() > 0 => *c.get_ref(),
        Some(c) => {
            diags.error(
                file,
                c.span(),
                format!("route `{}`: `shadow.concurrency` must be at least 1", cx.id),
            );
            ok = false;
            1
        }
    };
    // The route as the shadow runs it: the route's table with the shadow's source, statement
    // and columns (their spans kept, so that mistakes are reported inside `shadow`).
    let plan = derive(
        sx,
        "shadow",
        NOT_INHERITED,
        &["source", "sql", "columns"],
        None,
        diags,
    );
    let mut plan = plan.filter(|_| ok)?;
    plan.statement_timeout = Some(timeout);
    plan.id = format!("{}#shadow", plan.id);
    let ordered = primary_sql.is_some_and(crate::dialect::has_top_level_order_by);
    Some(Arc::new(Shadow {
        plan: Arc::new(plan),
        sample,
        concurrency,
        ordered,
    }))
}

/// Fields of a write route that its mirror does not take from it.
const NOT_INHERITED_BY_MIRROR: &[&str] = &[
    "shadow",
    "mirror",
    "sql",
    "step",
    "source",
    "columns",
    "delivery",
    "order_key",
    "dedup_table",
    "retry",
    "idempotency",
    "etag_from",
    "if_match",
    "location",
    "status",
    "outcome_column",
    "outcomes",
    "rate_limit",
    "deprecated",
    "sunset",
    "successor",
    "accept_breaking",
    "statement_timeout",
];

/// A write route's mirror: the route as a queued write on the mirror's source, with the
/// mirror's statements; its id is the route's and `#mirror`.
pub(super) fn compile_mirror(
    sx: &Derive<'_, '_>,
    cx: &RouteCx<'_>,
    span: std::ops::Range<usize>,
    is_write: bool,
    queued: bool,
    diags: &mut Diagnostics,
) -> Option<Arc<crate::catalog::RoutePlan>> {
    if !is_write || queued {
        diags.error_hint(
            cx.file,
            span,
            format!("route `{}`: `mirror` is for direct write routes", cx.id),
            "a read is compared with `shadow`; a queued write can be repeated by a second queued route",
        );
        return None;
    }
    let queued_word = Spanned::new(span, DeValue::String("queued".into()));
    // `derive` gives nothing when the mirror has a mistake (each reported).
    let mut plan = derive(
        sx,
        "mirror",
        NOT_INHERITED_BY_MIRROR,
        &["source", "sql", "step", "dedup_table", "retry", "order_key"],
        Some(("delivery", queued_word)),
        diags,
    )?;
    plan.id = format!("{}#mirror", plan.id);
    Some(Arc::new(plan))
}

/// The route's table with `sub`'s `taken` entries in place of the route's own (and `extra`),
/// compiled as a route.
fn derive<'v>(
    sx: &Derive<'_, 'v>,
    sub: &str,
    not_inherited: &[&str],
    taken: &[&str],
    extra: Option<(&str, Spanned<DeValue<'v>>)>,
    diags: &mut Diagnostics,
) -> Option<crate::catalog::RoutePlan> {
    let sub_table = sx.table.get(sub)?.get_ref().as_table()?;
    let mut derived = DeTable::new();
    for (k, v) in sx.table {
        if !not_inherited.contains(&k.get_ref().as_ref()) {
            derived.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in sub_table {
        if taken.contains(&k.get_ref().as_ref()) {
            derived.insert(k.clone(), v.clone());
        }
    }
    if let Some((key, value)) = extra {
        derived.insert(
            Spanned::new(value.span(), std::borrow::Cow::Owned(key.to_string())),
            value,
        );
    }
    compile_route(
        sx.mf,
        &Spanned::new(sx.route.span(), DeValue::Table(derived)),
        sx.file_source,
        sx.sources,
        sx.default_max_rows,
        diags,
    )
}
