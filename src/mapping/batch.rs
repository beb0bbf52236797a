//! `batch = { max = 32 }` of a `one = true` read: which parameter is the key, whether the
//! route's SQL has the one shape the gateway can rewrite for many keys (the reason when not,
//! pointed at in the SQL), and the batched statements themselves.

use std::sync::Arc;

use toml::Spanned;

use super::SourceInfo;
use super::raw::{RawBatch, RawRoute};
use super::route::{RouteCx, RouteParams};
use super::statement::sql_offset_span;
use crate::catalog::ParamLocation;
use crate::diag::Diagnostics;
use crate::sql::batch::{Batched, batch_shape};

const DEFAULT_MAX: usize = 32;
const MAX_MAX: usize = 256;

/// Compile the route's `batch`; `None` without one or on a mistake (reported).
pub(super) fn compile_batch(
    cx: &RouteCx<'_>,
    raw: &RawRoute,
    batch: &Spanned<RawBatch>,
    params: &RouteParams,
    is_write: bool,
    info: SourceInfo,
    diags: &mut Diagnostics,
) -> Option<Arc<Batched>> {
    let at = batch.span();
    let refuse = |diags: &mut Diagnostics, span, message: String, hint: &str| {
        diags.error_hint(cx.file, span, format!("route `{}`: {message}", cx.id), hint);
    };
    if is_write || !raw.one {
        refuse(
            diags,
            at,
            "`batch` applies to `one = true` reads (lookups by key)".into(),
            "remove `batch`, or make the route a GET with one = true",
        );
        return None;
    }
    let b = batch.get_ref();
    let max = b.max.as_ref().map_or(DEFAULT_MAX, |m| *m.get_ref());
    if !(2..=MAX_MAX).contains(&max) {
        refuse(
            diags,
            b.max.as_ref().map_or(at.clone(), Spanned::span),
            format!("batch `max` must be between 2 and {MAX_MAX}, not {max}"),
            "32 suits most lookups",
        );
        return None;
    }
    let key = match &b.key {
        Some(k) => match params.plans.iter().find(|p| p.name == *k.get_ref()) {
            Some(p) if p.location == ParamLocation::Claim => {
                refuse(
                    diags,
                    k.span(),
                    format!(
                        "batch `key` `{}` is a claim: it is the caller's identity, not the value looked up",
                        k.get_ref()
                    ),
                    "batch on the path parameter that names the row",
                );
                return None;
            }
            Some(p) => p.name.clone(),
            None => {
                refuse(
                    diags,
                    k.span(),
                    format!(
                        "batch `key` `{}` is not a parameter of the route",
                        k.get_ref()
                    ),
                    "name one of the route's `params`",
                );
                return None;
            }
        },
        None => {
            let path: Vec<&str> = params
                .plans
                .iter()
                .filter(|p| p.location == ParamLocation::Path)
                .map(|p| p.name.as_str())
                .collect();
            match path.as_slice() {
                [one] => (*one).to_string(),
                _ => {
                    refuse(
                        diags,
                        at,
                        format!(
                            "`batch` needs `key`: the route has {} path parameters",
                            path.len()
                        ),
                        "say which parameter is looked up: batch = { key = \"job_number\" }",
                    );
                    return None;
                }
            }
        }
    };
    let sql = raw.sql.as_ref()?;
    let shape = batch_shape(sql.get_ref(), info.dialect, &key).and_then(|shape| {
        Batched::build(
            sql.get_ref(),
            &shape,
            &key,
            max,
            info.dialect,
            info.placeholders,
        )
    });
    match shape {
        Ok(b) => Some(Arc::new(b)),
        Err(e) => {
            diags.error_hint(
                cx.file,
                sql_offset_span(cx.file, sql, e.offset, 1),
                format!(
                    "route `{}`: `batch` cannot rewrite this SQL: {}",
                    cx.id, e.message
                ),
                format!("{}; or remove `batch`", e.hint),
            );
            None
        }
    }
}
