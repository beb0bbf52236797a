//! Small helpers the param and column compilers share: which optional fields were given
//! (for "does not apply to this type"), identifiers, and reading TOML values as numbers, text
//! or JSON. They report at the value's span and decide nothing about routes.

use std::ops::Range;

use toml::Spanned;

use crate::codec::{DateFormat, TimeFormat};
use crate::diag::{Diagnostics, SourceFile};

/// A present optional field, for "does not apply to this type" checks.
pub(super) type Present = Vec<(&'static str, Range<usize>)>;

pub(super) fn present<T>(out: &mut Present, name: &'static str, v: Option<&Spanned<T>>) {
    if let Some(v) = v {
        out.push((name, v.span()));
    }
}

pub(super) fn reject_fields(
    file: &SourceFile,
    diags: &mut Diagnostics,
    fields: &Present,
    allowed: &[&str],
    what: &str,
) {
    for (name, span) in fields {
        if !allowed.contains(name) {
            diags.error_hint(
                file,
                span.clone(),
                format!("`{name}` does not apply to {what}"),
                "remove it, or change `type`",
            );
        }
    }
}

pub(super) fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

pub(super) fn toml_int(
    file: &SourceFile,
    v: Option<&Spanned<toml::Value>>,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<i64> {
    let v = v?;
    match v.get_ref() {
        toml::Value::Integer(i) => Some(*i),
        _ => {
            diags.error(
                file,
                v.span(),
                format!("`{field}` must be a whole number here"),
            );
            None
        }
    }
}

pub(super) fn toml_num(
    file: &SourceFile,
    v: Option<&Spanned<toml::Value>>,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<f64> {
    let v = v?;
    match v.get_ref() {
        #[allow(clippy::cast_precision_loss)]
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => {
            diags.error(file, v.span(), format!("`{field}` must be a number"));
            None
        }
    }
}

pub(super) fn toml_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

pub(super) fn date_format(
    file: &SourceFile,
    f: Option<&Spanned<String>>,
    diags: &mut Diagnostics,
) -> DateFormat {
    match f {
        None => DateFormat::Iso,
        Some(f) => DateFormat::parse(f.get_ref()).unwrap_or_else(|| {
            diags.error_hint(
                file,
                f.span(),
                format!("unknown date format `{}`", f.get_ref()),
                format!("use one of: {}", DateFormat::NAMES.join(", ")),
            );
            DateFormat::Iso
        }),
    }
}

pub(super) fn time_format(
    file: &SourceFile,
    f: Option<&Spanned<String>>,
    diags: &mut Diagnostics,
) -> TimeFormat {
    match f {
        None => TimeFormat::Iso,
        Some(f) => TimeFormat::parse(f.get_ref()).unwrap_or_else(|| {
            diags.error_hint(
                file,
                f.span(),
                format!("unknown time format `{}`", f.get_ref()),
                format!("use one of: {}", TimeFormat::NAMES.join(", ")),
            );
            TimeFormat::Iso
        }),
    }
}
