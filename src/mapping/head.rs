//! What a route says around its statements: the answer and guards of a write (`location`,
//! `idempotency`, `etag_from`/`if_match`, `outcomes`), the keys a read must not use and a write
//! must not use (`cache`, `max_rows`), and a read's `etag_columns`. Each check reports and
//! goes on.

use toml::Spanned;

use super::raw::{Entry, RawRoute};
use super::route::RouteCx;
use super::write::Named;
use crate::catalog::{ColumnPlan, Idempotency, IfMatch, LocationPart, Outcome};
use crate::diag::Diagnostics;

/// What a read route must not say.
pub(super) fn reject_write_fields(
    cx: &RouteCx<'_>,
    raw: &RawRoute,
    body: &[Entry<'_>],
    diags: &mut Diagnostics,
) {
    let mut given: Vec<(&str, std::ops::Range<usize>)> = Vec::new();
    let mut add = |name, span: Option<std::ops::Range<usize>>| {
        if let Some(s) = span {
            given.push((name, s));
        }
    };
    add("step", raw.step.as_ref().map(Spanned::span));
    add("location", raw.location.as_ref().map(Spanned::span));
    add("status", raw.status.as_ref().map(Spanned::span));
    add("idempotency", raw.idempotency.as_ref().map(Spanned::span));
    add("etag_from", raw.etag_from.as_ref().map(Spanned::span));
    add("if_match", raw.if_match.as_ref().map(Spanned::span));
    add("bulk", raw.bulk.as_ref().map(Spanned::span));
    add(
        "outcome_column",
        raw.outcome_column.as_ref().map(Spanned::span),
    );
    add("outcomes", raw.outcomes.as_ref().map(Spanned::span));
    add("delivery", raw.delivery.as_ref().map(Spanned::span));
    add("order_key", raw.order_key.as_ref().map(Spanned::span));
    add("dedup_table", raw.dedup_table.as_ref().map(Spanned::span));
    add("retry", raw.retry.as_ref().map(Spanned::span));
    add("body", body.first().map(|(n, _)| n.span()));
    for (name, span) in given {
        diags.error_hint(
            cx.file,
            span,
            format!("route `{}`: `{name}` applies only to write routes", cx.id),
            "set method = \"POST\", \"PUT\", \"PATCH\" or \"DELETE\", or remove it",
        );
    }
    if raw.sql.is_none() {
        diags.error_hint(
            cx.file,
            cx.span.clone(),
            format!("route `{}` has no `sql`", cx.id),
            "add sql = \"SELECT ...\"",
        );
    }
}

/// `location = "/v1/jobs/{job_number}/notes/{sequence}"`.
pub(super) fn location(
    cx: &RouteCx<'_>,
    l: &Spanned<String>,
    names: &mut [Named],
    columns: &[ColumnPlan],
    diags: &mut Diagnostics,
) -> Option<Vec<LocationPart>> {
    let text = l.get_ref();
    if !text.starts_with('/') {
        diags.error_hint(
            cx.file,
            l.span(),
            format!("route `{}`: `location` must start with `/`", cx.id),
            "write the path of the created thing, e.g. /v1/jobs/{job_number}",
        );
        return None;
    }
    let mut parts = Vec::new();
    let mut rest = text.as_str();
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(LocationPart::Text(rest[..open].to_string()));
        }
        let Some(close) = rest[open..].find('}') else {
            diags.error(
                cx.file,
                l.span(),
                format!("route `{}`: `location` has a `{{` without `}}`", cx.id),
            );
            return None;
        };
        let name = &rest[open + 1..open + close];
        let known_column = columns.iter().any(|c| c.output == name);
        let known_value = names.iter_mut().find(|n| n.name == name).map(|n| {
            n.used = true;
        });
        if !known_column && known_value.is_none() {
            diags.error_hint(
                cx.file,
                l.span(),
                format!(
                    "route `{}`: `location` names `{name}`, which is no value of this write",
                    cx.id
                ),
                "use a response field (columns.NAME), a parameter, a body field or a step output",
            );
        }
        parts.push(LocationPart::Name(name.to_string()));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(LocationPart::Text(rest.to_string()));
    }
    Some(parts)
}

pub(super) fn idempotency(
    cx: &RouteCx<'_>,
    v: Option<&Spanned<String>>,
    diags: &mut Diagnostics,
) -> Idempotency {
    match v.map(|v| (v, v.get_ref().as_str())) {
        // Every write replays its first answer to a retry with the same key: a DELETE whose
        // answer was lost answers 204 again, not 404.
        None | Some((_, "optional")) => Idempotency::Optional,
        Some((_, "required")) => Idempotency::Required,
        Some((v, other)) => {
            diags.error_hint(
                cx.file,
                v.span(),
                format!("route `{}`: unknown `idempotency` value `{other}`", cx.id),
                "use optional or required",
            );
            Idempotency::Optional
        }
    }
}

pub(super) fn if_match(
    cx: &RouteCx<'_>,
    raw: &RawRoute,
    diags: &mut Diagnostics,
) -> Option<IfMatch> {
    let required = match raw.if_match.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "optional")) => false,
        Some((_, "required")) => true,
        Some((v, other)) => {
            diags.error_hint(
                cx.file,
                v.span(),
                format!("route `{}`: unknown `if_match` value `{other}`", cx.id),
                "use optional or required",
            );
            false
        }
    };
    match (&raw.etag_from, &raw.if_match) {
        (Some(from), _) => Some(IfMatch {
            route: from.get_ref().clone(),
            binds: Vec::new(),
            required,
        }),
        (None, Some(v)) => {
            diags.error_hint(
                cx.file,
                v.span(),
                format!("route `{}`: `if_match` needs `etag_from`", cx.id),
                "name the one = true GET route whose ETag clients send back: etag_from = \"getJob\"",
            );
            None
        }
        (None, None) => None,
    }
}

pub(super) fn outcomes(cx: &RouteCx<'_>, raw: &RawRoute, diags: &mut Diagnostics) -> Vec<Outcome> {
    let Some(map) = &raw.outcomes else {
        return Vec::new();
    };
    if raw.outcome_column.is_none() {
        diags.error_hint(
            cx.file,
            map.span(),
            format!("route `{}`: `outcomes` needs `outcome_column`", cx.id),
            "name the result column the values are read from, e.g. outcome_column = \"RC\"",
        );
    }
    map.get_ref()
        .iter()
        .filter_map(|(value, o)| {
            let status = *o.status.get_ref();
            if !(400..=599).contains(&status) {
                diags.error_hint(
                    cx.file,
                    o.status.span(),
                    format!(
                        "route `{}`: an outcome's `status` must be 4xx or 5xx",
                        cx.id
                    ),
                    "values not listed in `outcomes` are successes",
                );
                return None;
            }
            Some(Outcome {
                value: value.clone(),
                status,
                detail: o.detail.clone(),
            })
        })
        .collect()
}
/// `etag_columns`: on a `one = true` read, mapped columns, by their output names.
pub(super) fn etag_fields(
    cx: &RouteCx<'_>,
    raw: &RawRoute,
    columns: &[ColumnPlan],
    is_write: bool,
    diags: &mut Diagnostics,
) -> Vec<String> {
    let Some(list) = &raw.etag_columns else {
        return Vec::new();
    };
    if is_write || !raw.one {
        diags.error_hint(
            cx.file,
            list.span(),
            format!(
                "route `{}`: `etag_columns` applies only to a one = true GET",
                cx.id
            ),
            "remove it",
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for name in list.get_ref() {
        match columns
            .iter()
            .find(|c| c.db_name.eq_ignore_ascii_case(name))
        {
            Some(c) => out.push(c.output.clone()),
            None => diags.error_hint(
                cx.file,
                list.span(),
                format!(
                    "route `{}`: `etag_columns` names `{name}`, which is not mapped",
                    cx.id
                ),
                format!("map it: columns.{name} = {{ name = \"version\" }}"),
            ),
        }
    }
    out
}

/// What a read says that a write must not: a response cache, `max_rows`, paging, sorting,
/// counts, exports.
pub(super) fn check_write_head(cx: &RouteCx<'_>, raw: &RawRoute, diags: &mut Diagnostics) {
    if let Some(c) = &raw.cache {
        diags.error_hint(
            cx.file,
            c.span(),
            format!("route `{}`: a write's response is never cached", cx.id),
            "remove `cache`",
        );
    }
    if let Some(m) = &raw.max_rows {
        diags.error_hint(
            cx.file,
            m.span(),
            format!("route `{}`: `max_rows` applies only to reads", cx.id),
            "remove it; a write answers with the rows its last step returns",
        );
    }
    super::list::reject_list_options(cx, raw, "list reads", "", diags);
}
