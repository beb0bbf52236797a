//! One `body.NAME` entry of a write route → a [`FieldPlan`]: the value types parameters have
//! (with decimals' precision and scale, string formats, padding) plus what only a body field
//! can say — `nullable`, `sensitive`, and `type = "list"` with `items.NAME` for the lines of an
//! order. Which statements bind a field is the route's check.

use toml::Spanned;

use super::fields::{is_identifier, toml_to_json};
use super::params::{check_ranges, default_value, param_type};
use super::raw::{self, Entry, RawParam};
use crate::catalog::{FieldPlan, FieldType};
use crate::diag::{Diagnostics, SourceFile};
use toml::de::DeValue;

/// Most elements a list field takes when the mapping names no `max_items`.
const DEFAULT_MAX_ITEMS: usize = 1000;

/// Check every `body.NAME`; names must be identifiers and unique.
pub(super) fn compile_body(
    file: &SourceFile,
    entries: &[Entry<'_>],
    required_by_default: bool,
    diags: &mut Diagnostics,
) -> Vec<FieldPlan> {
    let mut out: Vec<FieldPlan> = Vec::new();
    for entry in entries {
        let name = &entry.0;
        let Some(rp) = read_field(file, entry, diags) else {
            continue;
        };
        if let Some(f) = compile_field(file, name, rp, required_by_default, true, diags) {
            out.push(f);
        }
    }
    out
}

/// Read `body.NAME`: a table, or the shorthand `body.note = "string"`.
fn read_field(
    file: &SourceFile,
    (name, v): &Entry<'_>,
    diags: &mut Diagnostics,
) -> Option<RawParam> {
    if let Some(s) = v.get_ref().as_str() {
        return Some(RawParam {
            ty: Some(Spanned::new(v.span(), s.to_string())),
            ..RawParam::default()
        });
    }
    raw::deserialize(
        file,
        expand_item_shorthands(v),
        &format!("body field `{}`", name.get_ref()),
        diags,
    )
}

/// `items.sku = "string"` → `items.sku = { type = "string" }`, spans kept.
fn expand_item_shorthands<'a>(v: &Spanned<DeValue<'a>>) -> Spanned<DeValue<'a>> {
    let mut v = v.clone();
    if let DeValue::Table(t) = v.get_mut()
        && let Some(items) = t.get_mut("items")
        && let DeValue::Table(items) = items.get_mut()
    {
        for (_, item) in items.iter_mut() {
            if let DeValue::String(ty) = item.get_ref() {
                let mut table = toml::de::DeTable::new();
                table.insert(
                    Spanned::new(item.span(), std::borrow::Cow::Borrowed("type")),
                    Spanned::new(item.span(), DeValue::String(ty.clone())),
                );
                *item = Spanned::new(item.span(), DeValue::Table(table));
            }
        }
    }
    v
}

fn compile_field(
    file: &SourceFile,
    name: &Spanned<String>,
    mut rp: RawParam,
    required_by_default: bool,
    lists_allowed: bool,
    diags: &mut Diagnostics,
) -> Option<FieldPlan> {
    let fname = name.get_ref();
    let errors_before = diags.errors().count();
    if !is_identifier(fname) {
        diags.error_hint(
            file,
            name.span(),
            format!("body field name `{fname}` is not an identifier"),
            "use letters, digits and `_`",
        );
    }
    for (field, span) in [
        ("from_claim", rp.from_claim.as_ref().map(Spanned::span)),
        ("like", rp.like.as_ref().map(Spanned::span)),
    ] {
        if let Some(span) = span {
            diags.error_hint(
                file,
                span,
                format!("body field `{fname}`: `{field}` applies only to parameters"),
                "declare it as params.NAME instead",
            );
        }
    }
    let explicit_required = rp.required.as_ref().map(|r| *r.get_ref());
    let nullable = rp.nullable.as_ref().is_some_and(|n| *n.get_ref());
    let sensitive = rp.sensitive.as_ref().is_some_and(|n| *n.get_ref());
    let is_list = rp.ty.as_ref().is_some_and(|t| t.get_ref() == "list");
    let ty = if is_list {
        list_type(file, name, &mut rp, lists_allowed, diags)?
    } else {
        for (field, span) in [
            ("items", rp.items.as_ref().map(Spanned::span)),
            ("min_items", rp.min_items.as_ref().map(Spanned::span)),
            ("max_items", rp.max_items.as_ref().map(Spanned::span)),
        ] {
            if let Some(span) = span {
                diags.error_hint(
                    file,
                    span,
                    format!("body field `{fname}`: `{field}` applies only to lists"),
                    "remove it, or say type = \"list\"",
                );
            }
        }
        FieldType::Value(param_type(file, name, &rp, diags)?)
    };
    let required = explicit_required.unwrap_or(required_by_default && rp.default.is_none());
    let default = match &ty {
        FieldType::Value(t) => default_value(file, fname, rp.default.as_ref(), required, t, diags),
        FieldType::List { .. } => None,
    };
    check_ranges(file, fname, &rp, diags);
    if diags.errors().count() > errors_before {
        return None;
    }
    Some(FieldPlan {
        name: fname.clone(),
        ty,
        required,
        nullable,
        default,
        sensitive,
        description: rp.description,
        example: rp.example.as_ref().map(toml_to_json),
    })
}

/// `type = "list"`: its `items` (one level deep) and bounds.
fn list_type(
    file: &SourceFile,
    name: &Spanned<String>,
    rp: &mut RawParam,
    lists_allowed: bool,
    diags: &mut Diagnostics,
) -> Option<FieldType> {
    let fname = name.get_ref();
    if !lists_allowed {
        diags.error_hint(
            file,
            name.span(),
            format!("list item field `{fname}` is a list itself"),
            "lists go one level deep: make it a field of the body",
        );
        return None;
    }
    let Some(items) = rp.items.take() else {
        diags.error_hint(
            file,
            name.span(),
            format!("body field `{fname}` is a list without `items`"),
            "add items.NAME = { type = \"...\" } for each field of an element",
        );
        return None;
    };
    let span = items.span();
    let mut fields = Vec::new();
    for (item_name, item) in items.into_inner() {
        let item_name = Spanned::new(span.clone(), item_name);
        if let Some(f) = compile_field(file, &item_name, item, true, false, diags) {
            fields.push(f);
        }
    }
    let min_items = rp.min_items.as_ref().map_or(0, |m| *m.get_ref());
    let max_items = rp
        .max_items
        .as_ref()
        .map_or(DEFAULT_MAX_ITEMS, |m| *m.get_ref());
    if min_items > max_items || max_items == 0 {
        diags.error(
            file,
            rp.max_items.as_ref().map_or(name.span(), Spanned::span),
            format!("body field `{fname}`: `max_items` must be at least 1 and `min_items`"),
        );
    }
    if fields.is_empty() {
        diags.error(
            file,
            span,
            format!("body field `{fname}`: `items` declares no field"),
        );
    }
    Some(FieldType::List {
        items: fields,
        min_items,
        max_items,
    })
}
