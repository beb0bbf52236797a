//! The write side of a route (POST, PUT, PATCH, DELETE) → a [`WritePlan`]: its body fields,
//! its statements (one `sql`, or `[[route.step]]` run in order in one transaction, a step per
//! element of a list field, values a step returns bound by later steps), the response
//! (`status`, `location`), `Idempotency-Key`, `If-Match` and the outcomes a procedure's return
//! code stands for. Which read route an `etag_from` names is checked across files, in `mod.rs`.

use std::collections::HashSet;

use toml::Spanned;

use super::SourceInfo;
use super::body::compile_body;
use super::fields::is_identifier;
use super::raw::{Entry, RawRoute, RawStep};
use super::route::{RouteCx, RouteParams};
use super::statement::sql_offset_span;
use crate::catalog::{
    ColumnPlan, FieldPlan, FieldType, Idempotency, IfMatch, LocationPart, Outcome, StepPlan,
    ValueRef, WritePlan,
};
use crate::diag::Diagnostics;
use crate::sql;

/// The methods that write.
pub(super) const WRITE_METHODS: [&str; 4] = ["POST", "PUT", "PATCH", "DELETE"];

/// A name a statement can bind, and where its value comes from.
#[derive(Clone, Debug)]
struct Named {
    name: String,
    value: ValueRef,
    used: bool,
}

/// Compile what a write route declares beyond a read; `None` when it has an error.
#[allow(clippy::too_many_arguments)]
pub(super) fn compile_write(
    cx: &RouteCx<'_>,
    raw: &RawRoute,
    method: &str,
    body_entries: &[Entry<'_>],
    params: &RouteParams,
    columns: &[ColumnPlan],
    source: SourceInfo,
    diags: &mut Diagnostics,
) -> Option<WritePlan> {
    let errors_before = diags.errors().count();
    if method == "DELETE" && !body_entries.is_empty() {
        diags.error_hint(
            cx.file,
            body_entries[0].0.span(),
            format!("route `{}`: a DELETE takes no body", cx.id),
            "take the values from the path or the query: params.NAME",
        );
    }
    let fields = compile_body(cx.file, body_entries, method != "PATCH", diags);
    let body = (!fields.is_empty() || raw.bulk.is_some()).then(|| crate::catalog::BodyPlan {
        fields: fields.clone(),
        bulk: raw.bulk.as_ref().map(|b| b.get_ref().max),
    });
    if let Some(b) = &raw.bulk
        && !(1..=10_000).contains(&b.get_ref().max)
    {
        diags.error(
            cx.file,
            b.span(),
            format!("route `{}`: `bulk.max` must be between 1 and 10000", cx.id),
        );
    }
    let mut names = initial_names(cx, params, &fields, diags);
    let mut outputs: Vec<String> = Vec::new();
    let steps = compile_steps(
        cx,
        raw,
        method,
        &fields,
        &mut names,
        &mut outputs,
        source,
        diags,
    );
    let location = raw
        .location
        .as_ref()
        .and_then(|l| location(cx, l, &mut names, columns, diags));
    check_all_used(cx, &names, &fields, &steps, body_entries, params, diags);
    let status = match &raw.status {
        None if method == "POST" => 201,
        None => 200,
        Some(s) if [200, 201].contains(s.get_ref()) => *s.get_ref(),
        Some(s) => {
            diags.error_hint(
                cx.file,
                s.span(),
                format!("route `{}`: `status` must be 200 or 201", cx.id),
                "204 is answered on its own when the write returns no row",
            );
            200
        }
    };
    let idempotency = idempotency(cx, raw.idempotency.as_ref(), method, diags);
    let if_match = if_match(cx, raw, diags);
    let outcomes = outcomes(cx, raw, diags);
    if diags.errors().count() > errors_before {
        return None;
    }
    Some(WritePlan {
        body,
        steps,
        outputs,
        status,
        location,
        idempotency,
        if_match,
        outcome_column: raw.outcome_column.as_ref().map(|c| c.get_ref().clone()),
        outcomes,
    })
}

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

/// Parameters and (non-list) body fields, by name; one name, one value.
fn initial_names(
    cx: &RouteCx<'_>,
    params: &RouteParams,
    fields: &[FieldPlan],
    diags: &mut Diagnostics,
) -> Vec<Named> {
    let mut names: Vec<Named> = params
        .plans
        .iter()
        .enumerate()
        .map(|(i, p)| Named {
            name: p.name.clone(),
            value: ValueRef::Param(i),
            used: false,
        })
        .collect();
    for (i, f) in fields.iter().enumerate() {
        if let Some(pos) = params.plans.iter().position(|p| p.name == f.name) {
            diags.error_hint(
                cx.file,
                params.spans[pos].clone(),
                format!(
                    "route `{}`: `{}` is both a parameter and a body field",
                    cx.id, f.name
                ),
                "rename one of them: a statement binds each name to one value",
            );
            continue;
        }
        if matches!(f.ty, FieldType::Value(_)) {
            names.push(Named {
                name: f.name.clone(),
                value: ValueRef::Field(i),
                used: false,
            });
        }
    }
    names
}

/// The steps: `[[route.step]]`, or the route's one `sql`.
#[allow(clippy::too_many_arguments)]
fn compile_steps(
    cx: &RouteCx<'_>,
    raw: &RawRoute,
    method: &str,
    fields: &[FieldPlan],
    names: &mut Vec<Named>,
    outputs: &mut Vec<String>,
    source: SourceInfo,
    diags: &mut Diagnostics,
) -> Vec<StepPlan> {
    let raw_steps: Vec<RawStep> = match (&raw.sql, &raw.step) {
        (Some(sql), None) => vec![RawStep {
            sql: sql.clone(),
            for_each: None,
            index_as: None,
            outputs: None,
            require_rows: None,
        }],
        (None, Some(steps)) if !steps.get_ref().is_empty() => steps
            .get_ref()
            .iter()
            .map(|s| RawStep {
                sql: s.sql.clone(),
                for_each: s.for_each.clone(),
                index_as: s.index_as.clone(),
                outputs: s.outputs.clone(),
                require_rows: s.require_rows,
            })
            .collect(),
        (Some(sql), Some(_)) => {
            diags.error_hint(
                cx.file,
                sql.span(),
                format!("route `{}` has both `sql` and `[[route.step]]`", cx.id),
                "put the statement in a step, or use `sql` alone",
            );
            return Vec::new();
        }
        (None, _) => {
            diags.error_hint(
                cx.file,
                cx.span.clone(),
                format!("route `{}` has no statement", cx.id),
                "add sql = \"INSERT ...\", or [[route.step]] entries run in one transaction",
            );
            return Vec::new();
        }
    };
    raw_steps
        .iter()
        .enumerate()
        .filter_map(|(k, step)| {
            compile_step(cx, k, step, method, fields, names, outputs, source, diags)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn compile_step(
    cx: &RouteCx<'_>,
    k: usize,
    step: &RawStep,
    method: &str,
    fields: &[FieldPlan],
    names: &mut Vec<Named>,
    outputs: &mut Vec<String>,
    source: SourceInfo,
    diags: &mut Diagnostics,
) -> Option<StepPlan> {
    let text = step.sql.get_ref();
    let found = match sql::scan_named(text, source.dialect) {
        Ok(f) => f,
        Err(e) => {
            diags.error_hint(
                cx.file,
                sql_offset_span(cx.file, &step.sql, e.offset, 1),
                format!("route `{}`: {}", cx.id, e.message),
                e.hint,
            );
            return None;
        }
    };
    if text.trim().is_empty() {
        diags.error(
            cx.file,
            step.sql.span(),
            format!("route `{}`: step {} has empty `sql`", cx.id, k + 1),
        );
    }
    // The names of the list element the step runs for, in scope for this step only.
    let mut local: Vec<Named> = Vec::new();
    let for_each = step.for_each.as_ref().and_then(|fe| {
        let pos = fields
            .iter()
            .position(|f| f.name == *fe.get_ref() && matches!(f.ty, FieldType::List { .. }));
        let Some(list) = pos else {
            diags.error_hint(
                cx.file,
                fe.span(),
                format!(
                    "route `{}`: `for_each` names `{}`, which is not a list body field",
                    cx.id,
                    fe.get_ref()
                ),
                "declare body.NAME = { type = \"list\", items.FIELD = { ... } }",
            );
            return None;
        };
        if let FieldType::List { items, .. } = &fields[list].ty {
            local.extend(items.iter().enumerate().map(|(j, item)| Named {
                name: item.name.clone(),
                value: ValueRef::Item(list, j),
                used: false,
            }));
        }
        Some(list)
    });
    if let Some(ix) = &step.index_as {
        if step.for_each.is_none() {
            diags.error_hint(
                cx.file,
                ix.span(),
                format!("route `{}`: `index_as` needs `for_each`", cx.id),
                "remove it, or run the step for each element of a list",
            );
        }
        local.push(Named {
            name: ix.get_ref().clone(),
            value: ValueRef::Index,
            used: false,
        });
    }
    for l in &local {
        if names.iter().any(|n| n.name == l.name) {
            diags.error_hint(
                cx.file,
                step.for_each
                    .as_ref()
                    .or(step.index_as.as_ref())
                    .map_or(step.sql.span(), Spanned::span),
                format!(
                    "route `{}`: list element field `{}` has the name of another value",
                    cx.id, l.name
                ),
                "rename one of them: a statement binds each name to one value",
            );
        }
    }
    let mut binds = Vec::with_capacity(found.len());
    for f in &found {
        let hit = local
            .iter_mut()
            .chain(names.iter_mut())
            .find(|n| n.name == f.name);
        match hit {
            Some(n) => {
                n.used = true;
                binds.push(n.value);
            }
            None => diags.error_hint(
                cx.file,
                sql_offset_span(cx.file, &step.sql, f.span.start, f.span.len()),
                format!(
                    "route `{}`: `:{}` is used in the SQL but not declared",
                    cx.id, f.name
                ),
                format!(
                    "declare params.{0} or body.{0}, or name it in an earlier step's `outputs`",
                    f.name
                ),
            ),
        }
    }
    let step_outputs = step_outputs(cx, step, for_each.is_some(), names, outputs, diags);
    let sql = sql::rewrite(text, &found, source.placeholders);
    Some(StepPlan {
        sql: sql.into(),
        binds,
        for_each,
        outputs: step_outputs,
        require_rows: step.require_rows.unwrap_or(k == 0 && method != "POST"),
    })
}

/// A step's `outputs`: new names later steps bind.
fn step_outputs(
    cx: &RouteCx<'_>,
    step: &RawStep,
    per_element: bool,
    names: &mut Vec<Named>,
    outputs: &mut Vec<String>,
    diags: &mut Diagnostics,
) -> Vec<usize> {
    let Some(list) = &step.outputs else {
        return Vec::new();
    };
    if per_element {
        diags.error_hint(
            cx.file,
            list.span(),
            format!("route `{}`: a `for_each` step cannot have `outputs`", cx.id),
            "each element would give its own value: return them from a step of their own",
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for name in list.get_ref() {
        if !is_identifier(name) || names.iter().any(|n| n.name == *name) {
            diags.error_hint(
                cx.file,
                list.span(),
                format!("route `{}`: output `{name}` is not a new identifier", cx.id),
                "name each output once, differently from parameters and body fields",
            );
            continue;
        }
        names.push(Named {
            name: name.clone(),
            value: ValueRef::Output(outputs.len()),
            used: false,
        });
        out.push(outputs.len());
        outputs.push(name.clone());
    }
    out
}

/// `location = "/v1/jobs/{job_number}/notes/{sequence}"`.
fn location(
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

/// Every parameter and body field is bound by some step (or named in `location`), and every
/// list field is walked by a step.
fn check_all_used(
    cx: &RouteCx<'_>,
    names: &[Named],
    fields: &[FieldPlan],
    steps: &[StepPlan],
    body_entries: &[Entry<'_>],
    params: &RouteParams,
    diags: &mut Diagnostics,
) {
    for n in names {
        let span = match n.value {
            ValueRef::Param(i) => params.spans.get(i).cloned(),
            ValueRef::Field(i) => body_entries
                .iter()
                .find(|(name, _)| *name.get_ref() == fields[i].name)
                .map(|(name, _)| name.span()),
            _ => None,
        };
        if let Some(span) = span
            && !n.used
        {
            diags.error_hint(
                cx.file,
                span,
                format!(
                    "route `{}`: `{}` is declared but no statement uses `:{}`",
                    cx.id, n.name, n.name
                ),
                "use it in a step's SQL, or remove the declaration",
            );
        }
    }
    let walked: HashSet<usize> = steps.iter().filter_map(|s| s.for_each).collect();
    for (i, f) in fields.iter().enumerate() {
        if matches!(f.ty, FieldType::List { .. }) && !walked.contains(&i) {
            let span = body_entries
                .iter()
                .find(|(name, _)| *name.get_ref() == f.name)
                .map_or(cx.span.clone(), |(name, _)| name.span());
            diags.error_hint(
                cx.file,
                span,
                format!(
                    "route `{}`: list field `{}` is not written by any step",
                    cx.id, f.name
                ),
                format!("add a [[route.step]] with for_each = \"{}\"", f.name),
            );
        }
    }
}

fn idempotency(
    cx: &RouteCx<'_>,
    v: Option<&Spanned<String>>,
    method: &str,
    diags: &mut Diagnostics,
) -> Option<Idempotency> {
    match v.map(|v| (v, v.get_ref().as_str())) {
        None if matches!(method, "POST" | "PATCH") => Some(Idempotency::Optional),
        None => None,
        Some((_, "optional")) => Some(Idempotency::Optional),
        Some((_, "required")) => Some(Idempotency::Required),
        Some((v, other)) => {
            diags.error_hint(
                cx.file,
                v.span(),
                format!("route `{}`: unknown `idempotency` value `{other}`", cx.id),
                "use optional or required",
            );
            None
        }
    }
}

fn if_match(cx: &RouteCx<'_>, raw: &RawRoute, diags: &mut Diagnostics) -> Option<IfMatch> {
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

fn outcomes(cx: &RouteCx<'_>, raw: &RawRoute, diags: &mut Diagnostics) -> Vec<Outcome> {
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
