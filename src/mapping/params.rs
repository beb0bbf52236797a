//! One `params.NAME` entry → a [`ParamPlan`]: its type and the type's options (bounds,
//! lengths, pattern, `like`, date format, codes, boolean words), whether it is required, its
//! default. Where the value comes from (path, query, claim) is decided by the route; how the
//! dialect escapes a `like` value is the dialect's.

use toml::Spanned;

use super::fields::{
    Present, date_format, present, reject_fields, time_format, toml_int, toml_num, toml_text,
    toml_to_json,
};
use super::raw::RawParam;
use crate::catalog::{ParamLocation, ParamPlan};
use crate::codec::{BindValue, Like, LikeAt, ParamType, TextFormat};
use crate::diag::{Diagnostics, SourceFile};

/// Check one parameter; `None` when it has an error (all of them reported).
pub(super) fn compile_param(
    file: &SourceFile,
    name: &Spanned<String>,
    location: ParamLocation,
    rp: RawParam,
    diags: &mut Diagnostics,
) -> Option<ParamPlan> {
    let pname = name.get_ref();
    let errors_before = diags.errors().count();
    reject_body_only(file, pname, &rp, diags);
    let ty = param_type(file, name, &rp, diags)?;
    let required = requiredness(file, pname, rp.required.as_ref(), location, diags);
    let default = default_value(file, pname, rp.default.as_ref(), required, &ty, diags);
    check_ranges(file, pname, &rp, diags);
    if diags.errors().count() > errors_before {
        return None;
    }
    Some(ParamPlan {
        name: pname.clone(),
        location,
        ty,
        required,
        default,
        description: rp.description,
        example: rp.example.as_ref().map(toml_to_json),
        claim: rp.from_claim.map(Spanned::into_inner),
    })
}

/// What only a body field can say.
fn reject_body_only(file: &SourceFile, pname: &str, rp: &RawParam, diags: &mut Diagnostics) {
    let mut fields = Present::new();
    present(&mut fields, "nullable", rp.nullable.as_ref());
    present(&mut fields, "sensitive", rp.sensitive.as_ref());
    present(&mut fields, "items", rp.items.as_ref());
    present(&mut fields, "min_items", rp.min_items.as_ref());
    present(&mut fields, "max_items", rp.max_items.as_ref());
    for (field, span) in fields {
        diags.error_hint(
            file,
            span,
            format!("parameter `{pname}`: `{field}` applies only to body fields"),
            "remove it, or declare the value as body.NAME on a write route",
        );
    }
}

/// The type-specific options given, for "does not apply to this type".
fn given_fields(rp: &RawParam) -> Present {
    let mut fields = Present::new();
    present(&mut fields, "minimum", rp.minimum.as_ref());
    present(&mut fields, "maximum", rp.maximum.as_ref());
    present(&mut fields, "min_length", rp.min_length.as_ref());
    present(&mut fields, "max_length", rp.max_length.as_ref());
    present(&mut fields, "pattern", rp.pattern.as_ref());
    present(&mut fields, "like", rp.like.as_ref());
    present(&mut fields, "format", rp.format.as_ref());
    present(&mut fields, "codes", rp.codes.as_ref());
    present(&mut fields, "true_value", rp.true_value.as_ref());
    present(&mut fields, "false_value", rp.false_value.as_ref());
    present(&mut fields, "precision", rp.precision.as_ref());
    present(&mut fields, "scale", rp.scale.as_ref());
    present(&mut fields, "pad", rp.pad.as_ref());
    fields
}

/// The parameter's type with its options; `None` for an unknown type.
pub(super) fn param_type(
    file: &SourceFile,
    name: &Spanned<String>,
    rp: &RawParam,
    diags: &mut Diagnostics,
) -> Option<ParamType> {
    let pname = name.get_ref();
    let fields = given_fields(rp);
    let ty_name = rp
        .ty
        .as_ref()
        .map_or(if rp.codes.is_some() { "code" } else { "string" }, |t| {
            t.get_ref().as_str()
        });
    let what = format!("{ty_name} parameters");
    Some(match ty_name {
        "integer" => {
            reject_fields(file, diags, &fields, &["minimum", "maximum"], &what);
            ParamType::Integer {
                minimum: toml_int(file, rp.minimum.as_ref(), "minimum", diags),
                maximum: toml_int(file, rp.maximum.as_ref(), "maximum", diags),
            }
        }
        "number" => {
            reject_fields(file, diags, &fields, &["minimum", "maximum"], &what);
            ParamType::Number {
                minimum: toml_num(file, rp.minimum.as_ref(), "minimum", diags),
                maximum: toml_num(file, rp.maximum.as_ref(), "maximum", diags),
            }
        }
        "decimal" => {
            reject_fields(file, diags, &fields, &["precision", "scale"], &what);
            decimal_param(file, pname, rp, diags)
        }
        "string" => {
            reject_fields(
                file,
                diags,
                &fields,
                &[
                    "min_length",
                    "max_length",
                    "pattern",
                    "like",
                    "format",
                    "pad",
                ],
                &what,
            );
            string_param(file, pname, rp, diags)
        }
        "datetime" => {
            reject_fields(file, diags, &fields, &[], &what);
            ParamType::DateTime
        }
        "time" => {
            reject_fields(file, diags, &fields, &["format"], &what);
            ParamType::Time(time_format(file, rp.format.as_ref(), diags))
        }
        "boolean" => {
            reject_fields(file, diags, &fields, &["true_value", "false_value"], &what);
            boolean_param(file, name, rp, diags)
        }
        "date" => {
            reject_fields(file, diags, &fields, &["format"], &what);
            ParamType::Date(date_format(file, rp.format.as_ref(), diags))
        }
        "code" => {
            reject_fields(file, diags, &fields, &["codes"], &what);
            code_param(file, name, rp, diags)
        }
        other => {
            diags.error_hint(
                file,
                rp.ty.as_ref().map_or(name.span(), Spanned::span),
                format!("parameter `{pname}`: unknown type `{other}`"),
                "use integer, number, decimal, string, boolean, date, datetime, time or code",
            );
            return None;
        }
    })
}

fn string_param(
    file: &SourceFile,
    pname: &str,
    rp: &RawParam,
    diags: &mut Diagnostics,
) -> ParamType {
    let like = rp.like.as_ref().and_then(|l| {
        let at = match l.get_ref().as_str() {
            "prefix" => LikeAt::Prefix,
            "contains" => LikeAt::Contains,
            "suffix" => LikeAt::Suffix,
            other => {
                diags.error_hint(
                    file,
                    l.span(),
                    format!("parameter `{pname}`: unknown `like` value `{other}`"),
                    "use prefix, contains or suffix",
                );
                return None;
            }
        };
        // Which wildcards to escape is the dialect's: the route sets `brackets`.
        Some(Like {
            at,
            brackets: false,
        })
    });
    let pattern = rp
        .pattern
        .as_ref()
        .and_then(|p| match regex::Regex::new(p.get_ref()) {
            Ok(r) => Some(r),
            Err(e) => {
                diags.error_hint(
                    file,
                    p.span(),
                    format!("parameter `{pname}`: `pattern` is not a valid regular expression"),
                    e.to_string()
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim()
                        .to_string(),
                );
                None
            }
        });
    let format = rp.format.as_ref().and_then(|f| {
        TextFormat::parse(f.get_ref()).or_else(|| {
            diags.error_hint(
                file,
                f.span(),
                format!(
                    "parameter `{pname}`: unknown string format `{}`",
                    f.get_ref()
                ),
                format!("use one of: {}", TextFormat::NAMES.join(", ")),
            );
            None
        })
    });
    let max_length = rp.max_length.as_ref().map(|v| *v.get_ref());
    let pad = rp.pad.as_ref().is_some_and(|p| *p.get_ref());
    if let Some(p) = &rp.pad
        && pad
        && (max_length.is_none() || like.is_some())
    {
        diags.error_hint(
            file,
            p.span(),
            format!("parameter `{pname}`: `pad` needs `max_length` (and no `like`)"),
            "give max_length = the CHAR column's length",
        );
    }
    ParamType::String {
        min_length: rp.min_length.as_ref().map(|v| *v.get_ref()),
        max_length,
        pattern,
        like,
        format,
        pad,
    }
}

fn decimal_param(
    file: &SourceFile,
    pname: &str,
    rp: &RawParam,
    diags: &mut Diagnostics,
) -> ParamType {
    let precision = rp.precision.as_ref().map(|p| *p.get_ref());
    let scale = rp.scale.as_ref().map(|s| *s.get_ref());
    if let Some(p) = &rp.precision
        && !(1..=38).contains(p.get_ref())
    {
        diags.error(
            file,
            p.span(),
            format!("parameter `{pname}`: `precision` must be between 1 and 38"),
        );
    }
    if let (Some(p), Some(s)) = (precision, &rp.scale)
        && *s.get_ref() > p
    {
        diags.error(
            file,
            s.span(),
            format!("parameter `{pname}`: `scale` is above `precision`"),
        );
    }
    ParamType::Decimal { precision, scale }
}

fn boolean_param(
    file: &SourceFile,
    name: &Spanned<String>,
    rp: &RawParam,
    diags: &mut Diagnostics,
) -> ParamType {
    if rp.true_value.is_some() != rp.false_value.is_some() {
        diags.error_hint(
            file,
            name.span(),
            format!(
                "parameter `{}`: give both `true_value` and `false_value`, or neither",
                name.get_ref()
            ),
            "e.g. true_value = \"Y\", false_value = \"N\"",
        );
    }
    ParamType::Boolean {
        true_value: rp.true_value.as_ref().map(|v| v.get_ref().clone()),
        false_value: rp.false_value.as_ref().map(|v| v.get_ref().clone()),
    }
}

fn code_param(
    file: &SourceFile,
    name: &Spanned<String>,
    rp: &RawParam,
    diags: &mut Diagnostics,
) -> ParamType {
    let pname = name.get_ref();
    let codes = match &rp.codes {
        Some(c) if !c.get_ref().is_empty() => {
            let mut words: Vec<(String, String)> = Vec::new();
            for (code, word) in c.get_ref() {
                if words.iter().any(|(w, _)| w == word) {
                    diags.error(
                        file,
                        c.span(),
                        format!("parameter `{pname}`: the word `{word}` stands for two codes"),
                    );
                }
                words.push((word.clone(), code.clone()));
            }
            words
        }
        _ => {
            diags.error_hint(
                file,
                name.span(),
                format!("parameter `{pname}` is a code but has no `codes`"),
                "add codes = { R = \"released\", C = \"complete\" } (stored code = word)",
            );
            Vec::new()
        }
    };
    ParamType::Code { codes }
}

/// Path and claim parameters are always required; query parameters when they say so.
fn requiredness(
    file: &SourceFile,
    pname: &str,
    required: Option<&Spanned<bool>>,
    location: ParamLocation,
    diags: &mut Diagnostics,
) -> bool {
    match (required, location) {
        (Some(r), ParamLocation::Path) if !*r.get_ref() => {
            diags.error_hint(
                file,
                r.span(),
                format!("path parameter `{pname}` cannot be optional"),
                "remove `required = false`, or make it a query parameter",
            );
            true
        }
        (_, ParamLocation::Path | ParamLocation::Claim) => true,
        (Some(r), ParamLocation::Query) => *r.get_ref(),
        (None, ParamLocation::Query) => false,
    }
}

/// The default, parsed as a request value would be.
pub(super) fn default_value(
    file: &SourceFile,
    pname: &str,
    default: Option<&Spanned<toml::Value>>,
    required: bool,
    ty: &ParamType,
    diags: &mut Diagnostics,
) -> Option<BindValue> {
    let d = default?;
    if required {
        diags.error_hint(
            file,
            d.span(),
            format!("parameter `{pname}` is required, so its `default` is never used"),
            "remove `default`, or `required = true`",
        );
    }
    match toml_text(d.get_ref()).map(|t| ty.parse(&t)) {
        Some(Ok(v)) => Some(v),
        Some(Err(why)) => {
            diags.error(
                file,
                d.span(),
                format!("parameter `{pname}`: the default {why}"),
            );
            None
        }
        None => {
            diags.error(
                file,
                d.span(),
                format!("parameter `{pname}`: the default must be a plain value"),
            );
            None
        }
    }
}

/// `minimum` not above `maximum`, `min_length` not above `max_length`.
pub(super) fn check_ranges(file: &SourceFile, pname: &str, rp: &RawParam, diags: &mut Diagnostics) {
    if let (Some(lo), Some(hi)) = (&rp.minimum, &rp.maximum)
        && let (Some(a), Some(b)) = (toml_text(lo.get_ref()), toml_text(hi.get_ref()))
        && let (Ok(a), Ok(b)) = (a.parse::<f64>(), b.parse::<f64>())
        && a > b
    {
        diags.error(
            file,
            lo.span(),
            format!("parameter `{pname}`: `minimum` is above `maximum`"),
        );
    }
    if let (Some(lo), Some(hi)) = (&rp.min_length, &rp.max_length)
        && lo.get_ref() > hi.get_ref()
    {
        diags.error(
            file,
            lo.span(),
            format!("parameter `{pname}`: `min_length` is above `max_length`"),
        );
    }
}
