//! One `columns.NAME` entry → a [`ColumnPlan`]: its JSON name, its type and the type's
//! options (decimal scale, boolean words, date and time formats, codes), trimming and the
//! values that mean null. Uniqueness of names across a route's columns is the route's check.

use toml::Spanned;

use super::fields::{
    Present, date_format, present, reject_fields, time_format, toml_text, toml_to_json,
};
use super::raw::RawColumn;
use crate::catalog::ColumnPlan;
use crate::codec::{ColumnType, OnInvalid, Trim, UnknownCode};
use crate::diag::{Diagnostics, SourceFile};

/// Check one column rule; `None` when it has an error (all of them reported).
pub(super) fn compile_column(
    file: &SourceFile,
    name: &Spanned<String>,
    rc: RawColumn,
    diags: &mut Diagnostics,
) -> Option<ColumnPlan> {
    let cname = name.get_ref();
    let errors_before = diags.errors().count();
    let ty = column_type(file, name, &rc, diags);
    let trim = trim(file, cname, rc.trim.as_ref(), diags);
    let null_if = null_if(file, cname, rc.null_if.as_ref(), diags);
    let output = rc
        .name
        .as_ref()
        .map_or_else(|| cname.to_ascii_lowercase(), |n| n.get_ref().clone());
    if output.is_empty() {
        diags.error(
            file,
            rc.name.as_ref().map_or(name.span(), Spanned::span),
            format!("column `{cname}`: `name` is empty"),
        );
    }
    let on_invalid = rc.on_invalid.as_ref().and_then(|o| {
        let parsed = OnInvalid::parse(o.get_ref());
        if parsed.is_none() {
            diags.error_hint(
                file,
                o.span(),
                format!("column `{cname}`: unknown `on_invalid` `{}`", o.get_ref()),
                format!("one of: {}", OnInvalid::NAMES.join(", ")),
            );
        }
        parsed
    });
    if diags.errors().count() > errors_before {
        return None;
    }
    Some(ColumnPlan {
        db_name: cname.clone(),
        line: file.locate(name.span().start).0,
        output,
        ty,
        trim,
        null_if,
        nullable: rc.nullable.unwrap_or(true),
        on_invalid,
        sensitive: rc.sensitive,
        description: rc.description,
        example: rc.example.as_ref().map(toml_to_json),
    })
}

/// The type-specific options given, for "does not apply to this type".
fn given_fields(rc: &RawColumn) -> Present {
    let mut fields = Present::new();
    present(&mut fields, "format", rc.format.as_ref());
    present(&mut fields, "codes", rc.codes.as_ref());
    present(&mut fields, "unknown_code", rc.unknown_code.as_ref());
    present(&mut fields, "true_values", rc.true_values.as_ref());
    present(&mut fields, "false_values", rc.false_values.as_ref());
    present(&mut fields, "scale", rc.scale.as_ref());
    present(&mut fields, "as_string", rc.as_string.as_ref());
    fields
}

/// The column's type with its options; `None` when untyped (the SQL type decides) or unknown.
fn column_type(
    file: &SourceFile,
    name: &Spanned<String>,
    rc: &RawColumn,
    diags: &mut Diagnostics,
) -> Option<ColumnType> {
    let fields = given_fields(rc);
    let ty_name = rc
        .ty
        .as_ref()
        .map(|t| t.get_ref().as_str())
        .or(if rc.codes.is_some() {
            Some("code")
        } else {
            None
        });
    let what = format!("{} columns", ty_name.unwrap_or("untyped"));
    let allow = |allowed: &[&str], diags: &mut Diagnostics| {
        reject_fields(file, diags, &fields, allowed, &what);
    };
    match ty_name {
        None => {
            allow(&[], diags);
            None
        }
        Some(plain @ ("string" | "integer" | "number" | "datetime" | "binary")) => {
            allow(&[], diags);
            Some(match plain {
                "string" => ColumnType::String,
                "integer" => ColumnType::Integer,
                "number" => ColumnType::Number,
                "datetime" => ColumnType::DateTime,
                _ => ColumnType::Binary,
            })
        }
        Some("decimal") => {
            allow(&["scale", "as_string"], diags);
            Some(ColumnType::Decimal {
                scale: rc.scale.as_ref().map(|s| *s.get_ref()),
                as_string: rc.as_string.as_ref().is_some_and(|s| *s.get_ref()),
            })
        }
        Some("boolean") => {
            allow(&["true_values", "false_values"], diags);
            Some(boolean_column(file, name, rc, diags))
        }
        Some("date") => {
            allow(&["format"], diags);
            Some(ColumnType::Date(date_format(
                file,
                rc.format.as_ref(),
                diags,
            )))
        }
        Some("time") => {
            allow(&["format"], diags);
            Some(ColumnType::Time(time_format(
                file,
                rc.format.as_ref(),
                diags,
            )))
        }
        Some("code") => {
            allow(&["codes", "unknown_code"], diags);
            Some(code_column(file, name, rc, diags))
        }
        Some(other) => {
            diags.error_hint(
                file,
                rc.ty.as_ref().map_or(name.span(), Spanned::span),
                format!("column `{}`: unknown type `{other}`", name.get_ref()),
                "use string, integer, number, decimal, boolean, date, time, datetime, code or binary",
            );
            None
        }
    }
}

fn boolean_column(
    file: &SourceFile,
    name: &Spanned<String>,
    rc: &RawColumn,
    diags: &mut Diagnostics,
) -> ColumnType {
    // Stored values are compared trimmed (CHAR padding), so `" "` means a blank.
    let trimmed = |v: &Spanned<Vec<String>>| -> Vec<String> {
        v.get_ref().iter().map(|s| s.trim().to_string()).collect()
    };
    let tv = rc
        .true_values
        .as_ref()
        .map_or_else(ColumnType::default_true_values, trimmed);
    let fv = rc
        .false_values
        .as_ref()
        .map_or_else(ColumnType::default_false_values, trimmed);
    if let Some(both) = tv.iter().find(|t| fv.contains(t)) {
        diags.error(
            file,
            name.span(),
            format!(
                "column `{}`: `{both}` is both a true and a false value",
                name.get_ref()
            ),
        );
    }
    ColumnType::Boolean {
        true_values: tv,
        false_values: fv,
    }
}

fn code_column(
    file: &SourceFile,
    name: &Spanned<String>,
    rc: &RawColumn,
    diags: &mut Diagnostics,
) -> ColumnType {
    let cname = name.get_ref();
    let codes: Vec<(String, String)> = rc
        .codes
        .as_ref()
        .map(|c| {
            // Stored codes are compared trimmed, so `" "` is the blank code.
            c.get_ref()
                .iter()
                .map(|(k, v)| (k.trim().to_string(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    if codes.is_empty() {
        diags.error_hint(
            file,
            name.span(),
            format!("column `{cname}` is a code but has no `codes`"),
            "add codes = { R = \"released\", C = \"complete\" } (stored code = word)",
        );
    }
    let unknown = match &rc.unknown_code {
        None => UnknownCode::Raw,
        Some(u) => match u.get_ref().as_str() {
            "raw" => UnknownCode::Raw,
            "null" => UnknownCode::Null,
            "error" => UnknownCode::Error,
            other => {
                diags.error_hint(
                    file,
                    u.span(),
                    format!("column `{cname}`: unknown `unknown_code` `{other}`"),
                    "use raw, null or error",
                );
                UnknownCode::Raw
            }
        },
    };
    ColumnType::Code { codes, unknown }
}

fn trim(
    file: &SourceFile,
    cname: &str,
    t: Option<&Spanned<toml::Value>>,
    diags: &mut Diagnostics,
) -> Trim {
    let Some(t) = t else { return Trim::None };
    match t.get_ref() {
        toml::Value::Boolean(true) => Trim::Both,
        toml::Value::Boolean(false) => Trim::None,
        toml::Value::String(s) if s == "end" => Trim::End,
        toml::Value::String(s) if s == "both" => Trim::Both,
        _ => {
            diags.error_hint(
                file,
                t.span(),
                format!("column `{cname}`: `trim` must be true, false, \"end\" or \"both\""),
                "\"end\" removes CHAR padding only",
            );
            Trim::None
        }
    }
}

fn null_if(
    file: &SourceFile,
    cname: &str,
    n: Option<&Spanned<Vec<toml::Value>>>,
    diags: &mut Diagnostics,
) -> Vec<String> {
    let mut out = Vec::new();
    let Some(n) = n else { return out };
    for v in n.get_ref() {
        match toml_text(v) {
            Some(t) => out.push(t),
            None => diags.error(
                file,
                n.span(),
                format!("column `{cname}`: `null_if` holds plain values only"),
            ),
        }
    }
    out
}
