//! One mapping file: parse the TOML (reporting every syntax error), read the top-level
//! `source` and the `[[route]]` array, and hand each route to [`super::route`]. Checks across
//! files are the module root's.

use std::sync::Arc;

use indexmap::IndexMap;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Located, MappingFile, SourceInfo, route};
use crate::diag::Diagnostics;

/// Compile every route of `mf`, pushing each good one onto `routes`.
pub(super) fn compile_file<'f>(
    mf: &'f MappingFile,
    sources: &IndexMap<String, SourceInfo>,
    default_max_rows: usize,
    diags: &mut Diagnostics,
    routes: &mut Vec<Located<'f>>,
) {
    let file = &mf.file;
    let (table, errors) = DeTable::parse_recoverable(&file.text);
    if !errors.is_empty() {
        for e in errors {
            diags.error_hint(
                file,
                e.span().unwrap_or(0..0),
                e.message().trim().to_string(),
                "this is not valid TOML; fix the syntax first",
            );
        }
        return;
    }
    let table = table.into_inner();
    let mut file_source: Option<Spanned<String>> = None;
    let mut route_values: Vec<Spanned<DeValue<'_>>> = Vec::new();
    for (key, value) in &table {
        match key.get_ref().as_ref() {
            "source" => match value.get_ref().as_str() {
                Some(s) => file_source = Some(Spanned::new(value.span(), s.to_string())),
                None => diags.error_hint(
                    file,
                    value.span(),
                    "`source` must be a string",
                    "write source = \"NAME\", a source from the config",
                ),
            },
            "route" => match value.get_ref().as_array() {
                Some(arr) => route_values.extend(arr.iter().cloned()),
                None => diags.error_hint(
                    file,
                    value.span(),
                    "`route` must be an array of tables",
                    "write each route under its own [[route]] header",
                ),
            },
            other => diags.error_hint(
                file,
                key.span(),
                format!("unknown top-level key `{other}`"),
                "a mapping file holds `source = \"NAME\"` and [[route]] tables",
            ),
        }
    }
    if route_values.is_empty() {
        diags.at(
            crate::diag::Severity::Warning,
            file,
            None,
            "this mapping file defines no routes",
            Some("add a [[route]] table".into()),
        );
    }
    for rv in route_values {
        if let Some(plan) = route::compile_route(
            mf,
            &rv,
            file_source.as_ref(),
            sources,
            default_max_rows,
            diags,
        ) {
            routes.push((Arc::new(plan), file, rv.span()));
        }
    }
}
