//! `patina check` against the published documents: each version's document as the mappings
//! make it now is compared with `<published>/<version>.json`, and every breaking change to
//! a published route is an error at the route's mapping line, unless the route says why it
//! is accepted (`accept_breaking`). A version without a published file is not compared (it
//! is new); a published version with no route left is an error.

use std::path::Path;

use crate::catalog::Catalog;
use crate::config::{Config, DocsInfo};
use crate::diag::{Diagnostic, Severity};
use crate::openapi::Documents;
use crate::openapi::breaking::{self, Level};
use crate::shape::Learned;

/// What the comparison found.
#[derive(Debug, Default)]
pub struct Published {
    pub diagnostics: Vec<Diagnostic>,
    /// Breaking changes the mappings accept, as `route: change (why)`.
    pub accepted: Vec<String>,
    /// The versions compared, e.g. `v1`.
    pub compared: Vec<String>,
}

/// Compare every version's document with its published file. `described`: the routes were
/// described on their databases into `learned`, so response bodies are compared too.
pub fn check_published(
    config: &Config,
    catalog: &Catalog,
    learned: &Learned,
    described: bool,
) -> Published {
    compare_with(
        &config.published_dir,
        catalog,
        learned,
        &config.docs,
        described,
    )
}

fn compare_with(
    dir: &Path,
    catalog: &Catalog,
    learned: &Learned,
    info: &DocsInfo,
    described: bool,
) -> Published {
    let mut found = Published::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    let current = Documents::build(catalog, learned, info);
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for file in files {
        let Some(version) = file
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let shown = file.display().to_string();
        let error = |message: String, hint: &str| Diagnostic {
            severity: Severity::Error,
            file: shown.clone(),
            line: 0,
            column: 0,
            message,
            hint: Some(hint.to_string()),
        };
        let published = match std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                found.diagnostics.push(error(
                    format!("cannot read the published document: {e}"),
                    "write it with `patina openapi --db`",
                ));
                continue;
            }
        };
        let Some(text) = current.rendered.get(&version) else {
            found.diagnostics.push(error(
                format!("version `{version}` was published and has no route left"),
                "restore its mappings folder, or remove the published document once no caller uses it",
            ));
            continue;
        };
        let Ok(now) = serde_json::from_str::<serde_json::Value>(text) else {
            continue;
        };
        found.compared.push(version.clone());
        for change in breaking::changes(&published, &now, described) {
            let route = catalog
                .routes
                .iter()
                .filter(|r| r.version == version)
                .find(|r| r.id == change.operation_id)
                .or_else(|| {
                    catalog.routes.iter().find(|r| {
                        r.version == version && r.method == change.method && r.path == change.path
                    })
                });
            if let Some(why) = route.and_then(|r| r.accept_breaking.as_deref()) {
                found.accepted.push(format!(
                    "{} {} `{}`: {} (accepted: {why})",
                    change.method, change.path, change.operation_id, change.message
                ));
                continue;
            }
            let severity = match change.level {
                Level::Breaking => Severity::Error,
                Level::Risky => Severity::Warning,
            };
            let message = format!(
                "route `{}` ({} {}) breaks its published document {shown}: {}",
                change.operation_id, change.method, change.path, change.message
            );
            found.diagnostics.push(match route {
                Some(r) => Diagnostic {
                    severity,
                    file: r.file.clone(),
                    line: r.line,
                    column: 0,
                    message,
                    hint: Some(
                        "undo the change, make it in a new version (mappings/v2/), or accept it on the route with accept_breaking = \"why\"".into(),
                    ),
                },
                None => Diagnostic {
                    severity,
                    file: shown.clone(),
                    line: 0,
                    column: 0,
                    message,
                    hint: Some(
                        "restore the route (deprecated, with a successor, until its callers move); once its removal is agreed, publish the document again with `patina openapi --db`".into(),
                    ),
                },
            });
        }
    }
    found
}
