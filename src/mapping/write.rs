//! The write side of a route (POST, PUT, PATCH, DELETE) → a [`WritePlan`]: its body fields,
//! its statements (one `sql`, or `[[route.step]]` run in order in one transaction, a step per
//! element of a list field, values a step returns bound by later steps) and the status it
//! answers with; `location`, `Idempotency-Key`, `If-Match` and the outcomes a procedure's
//! return code stands for are read in [`head`]. Which read route an `etag_from` names is
//! checked across files, in `mod.rs`.

use std::collections::HashSet;

use toml::Spanned;

use super::body::compile_body;
use super::fields::is_identifier;
use super::raw::{Entry, RawRoute, RawStep};
use super::route::{RouteCx, RouteParams};
use super::statement::sql_offset_span;
use super::{SourceInfo, head};
use crate::catalog::{ColumnPlan, FieldPlan, FieldType, StepPlan, ValueRef, WritePlan};
use crate::diag::Diagnostics;
use crate::sql;

/// The methods that write.
pub(super) const WRITE_METHODS: [&str; 4] = ["POST", "PUT", "PATCH", "DELETE"];

/// A name a statement can bind, and where its value comes from.
#[derive(Clone, Debug)]
pub(super) struct Named {
    pub(super) name: String,
    pub(super) value: ValueRef,
    pub(super) used: bool,
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
        .and_then(|l| head::location(cx, l, &mut names, columns, diags));
    let queue = super::delivery::compile(cx, raw, &names, raw.bulk.is_some(), source, diags);
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
    let idempotency = head::idempotency(cx, raw.idempotency.as_ref(), diags);
    let if_match = head::if_match(cx, raw, diags);
    let outcomes = head::outcomes(cx, raw, diags);
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
        queue,
    })
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
