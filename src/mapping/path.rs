//! Route paths: the checks on `/jobs/{job_number}` (leading `/`, no query or empty segment,
//! `{param}` names that are identifiers and appear once) and the shape two paths share when
//! only their parameter names differ. Whether each `{param}` is declared is the route's check.

use toml::Spanned;

use super::fields::is_identifier;
use crate::diag::{Diagnostics, SourceFile};

/// `/v1/jobs/{a}` and `/v1/jobs/{b}` have the same shape (the same URLs to a caller).
pub fn normalize_path(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// Check a route path and return its `{param}` names.
pub(super) fn check_path(
    file: &SourceFile,
    path: &Spanned<String>,
    diags: &mut Diagnostics,
) -> Vec<String> {
    let p = path.get_ref();
    let span = path.span();
    let mut names = Vec::new();
    if !p.starts_with('/') {
        diags.error_hint(
            file,
            span.clone(),
            format!("path `{p}` must start with `/`"),
            format!("write \"/{p}\""),
        );
        return names;
    }
    if p.contains(['?', '#', ' ']) || p.contains("//") {
        diags.error_hint(
            file,
            span,
            format!("path `{p}` contains `?`, `#`, a space or an empty segment"),
            "query parameters are declared under `params`, not in the path",
        );
        return names;
    }
    let mut rest = p.as_str();
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            diags.error_hint(
                file,
                span.clone(),
                format!("path `{p}` has an unclosed `{{`"),
                "close it with `}`",
            );
            return names;
        };
        let name = &rest[open + 1..open + close];
        if !is_identifier(name) {
            diags.error_hint(
                file,
                span.clone(),
                format!("path parameter `{{{name}}}` is not an identifier"),
                "write path parameters like {job_number}",
            );
        } else if names.iter().any(|n| n == name) {
            diags.error(
                file,
                span.clone(),
                format!("path parameter `{{{name}}}` appears twice"),
            );
        } else {
            names.push(name.to_string());
        }
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        diags.error(file, span, format!("path `{p}` has a `}}` without `{{`"));
    }
    names
}
