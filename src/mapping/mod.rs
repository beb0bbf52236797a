//! Mapping files → compiled [`Catalog`]. Owns the raw serde model of a mapping file and every
//! check a DBA's mistake can fail, reporting all of them at once with `file:line:column` and a
//! hint. Pure: reads files, opens no connection; checking against a live database is the
//! sources' job. Dialect differences (placeholders, LIKE escaping) are asked of
//! `crate::dialect`, never decided here.
//!
//! The folder follows the compilation: [`load`] reads the folder of version directories,
//! [`file`] one TOML file, [`route`] one `[[route]]` (with [`path`] and [`statement`] for its
//! path and SQL), [`params`] and [`columns`] one entry each; [`raw`] is the serde form they
//! read and [`fields`] the small value helpers they share. This file holds the public API and
//! the checks that span files (unique ids, one route per method and path).

mod batch;
mod body;
mod bridge;
mod columns;
mod delivery;
mod fields;
mod file;
mod head;
mod list;
mod load;
mod params;
mod path;
mod raw;
mod route;
mod schema;
mod statement;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod write;

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use indexmap::IndexMap;

use crate::catalog::{Catalog, RoutePlan};
use crate::diag::{Diagnostic, Diagnostics, LoadError, SourceFile};
use crate::dialect::{Dialect, Placeholders};

pub use load::load_dir;
pub use path::normalize_path;
pub use schema::mapping_schema;

/// What mapping compilation needs to know about a configured source.
#[derive(Clone, Copy, Debug)]
pub struct SourceInfo {
    pub dialect: Dialect,
    /// How the source's client library marks bound values.
    pub placeholders: Placeholders,
    /// What an undecodable stored value becomes on its routes (the source's, else global).
    pub on_invalid: crate::codec::OnInvalid,
}

/// A mapping file to compile, with the API version its folder names.
#[derive(Debug)]
pub struct MappingFile {
    pub version: String,
    pub file: SourceFile,
}

/// A catalog and the warnings found while building it.
#[derive(Debug)]
pub struct Compiled {
    pub catalog: Catalog,
    pub warnings: Vec<Diagnostic>,
}

/// A compiled route with the file and span it came from, for cross-file diagnostics.
type Located<'f> = (Arc<RoutePlan>, &'f SourceFile, Range<usize>);

/// What identifies a set of mapping files: their names and text, hashed.
fn digest(files: &[MappingFile]) -> u64 {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for f in files {
        for part in [f.file.name.as_bytes(), f.file.text.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
    }
    let out = h.finalize();
    u64::from_be_bytes(out[..8].try_into().unwrap_or([0; 8]))
}

/// Compile mapping files into a catalog, or report every error found.
pub fn compile(
    files: &[MappingFile],
    sources: &IndexMap<String, SourceInfo>,
    default_max_rows: usize,
) -> Result<Compiled, LoadError> {
    let mut diags = Diagnostics::new();
    let mut routes: Vec<Located<'_>> = Vec::new();
    for mf in files {
        file::compile_file(mf, sources, default_max_rows, &mut diags, &mut routes);
    }
    check_across_files(&routes, &mut diags);
    resolve_etag_routes(&mut routes, &mut diags);
    resolve_successors(&mut routes, &mut diags);
    if diags.has_errors() {
        return Err(LoadError {
            diagnostics: diags.into_vec(),
        });
    }
    let plans: Vec<Arc<RoutePlan>> = routes.into_iter().map(|(p, _, _)| p).collect();
    let mut catalog = Catalog::new(plans).map_err(|e| LoadError {
        diagnostics: vec![Diagnostic {
            severity: crate::diag::Severity::Error,
            file: "(catalog)".into(),
            line: 0,
            column: 0,
            message: e,
            hint: None,
        }],
    })?;
    catalog.mappings_digest = digest(files);
    Ok(Compiled {
        catalog,
        warnings: diags.into_vec(),
    })
}

/// A write's `etag_from` names a `one = true` GET on the same source, each of whose
/// parameters the write has under the same name: the `If-Match` check binds them.
fn resolve_etag_routes(routes: &mut [Located<'_>], diags: &mut Diagnostics) {
    let reads: HashMap<String, Arc<RoutePlan>> = routes
        .iter()
        .filter(|(p, _, _)| p.write.is_none())
        .map(|(p, _, _)| (p.id.clone(), Arc::clone(p)))
        .collect();
    for (plan, file, span) in routes.iter_mut() {
        let Some(from) = plan
            .write
            .as_ref()
            .and_then(|w| w.if_match.as_ref())
            .map(|m| m.route.clone())
        else {
            continue;
        };
        let hint_route = "name a `one = true` GET route on the same source";
        let Some(read) = reads
            .get(&from)
            .filter(|r| r.one && r.source == plan.source)
        else {
            diags.error_hint(
                file,
                span.clone(),
                format!(
                    "route `{}`: `etag_from` names `{from}`, which is not a one = true GET route on source `{}`",
                    plan.id, plan.source
                ),
                hint_route,
            );
            continue;
        };
        let mut binds = Vec::new();
        for p in &read.params {
            let value = plan
                .params
                .iter()
                .position(|q| q.name == p.name)
                .map(crate::catalog::ValueRef::Param)
                .or_else(|| {
                    plan.write
                        .as_ref()?
                        .body
                        .as_ref()?
                        .fields
                        .iter()
                        .position(|f| {
                            f.name == p.name && matches!(f.ty, crate::catalog::FieldType::Value(_))
                        })
                        .map(crate::catalog::ValueRef::Field)
                });
            match value {
                Some(v) => binds.push(v),
                None => diags.error_hint(
                    file,
                    span.clone(),
                    format!(
                        "route `{}`: `etag_from` route `{from}` takes `{}`, which this write does not have",
                        plan.id, p.name
                    ),
                    "give the write a parameter or body field of the same name",
                ),
            }
        }
        let read_binds: Vec<crate::catalog::ValueRef> = read
            .bind_order
            .iter()
            .map(|&i| binds.get(i).copied())
            .collect::<Option<_>>()
            .unwrap_or_default();
        let plan = Arc::make_mut(plan);
        if let Some(m) = plan.write.as_mut().and_then(|w| w.if_match.as_mut()) {
            m.binds = read_binds;
        }
    }
}

/// A deprecated route's `successor` names another route whose path parameters this route's
/// path has too (its request fills them into the `Link`).
fn resolve_successors(routes: &mut [Located<'_>], diags: &mut Diagnostics) {
    let paths: HashMap<String, (String, Vec<String>)> = routes
        .iter()
        .map(|(p, _, _)| {
            let params = p
                .params
                .iter()
                .filter(|q| q.location == crate::catalog::ParamLocation::Path)
                .map(|q| q.name.clone())
                .collect();
            (p.id.clone(), (p.path.clone(), params))
        })
        .collect();
    for (plan, file, span) in routes.iter_mut() {
        let Some(id) = plan
            .deprecation
            .as_ref()
            .and_then(|d| d.successor.as_ref())
            .map(|s| s.id.clone())
        else {
            continue;
        };
        let Some((path, needs)) = paths.get(&id).filter(|_| id != plan.id) else {
            diags.error_hint(
                file,
                span.clone(),
                format!(
                    "route `{}`: `successor` names `{id}`, which is no other route",
                    plan.id
                ),
                "name the id of the route that replaces this one (often in the next version)",
            );
            continue;
        };
        let own: Vec<&String> = plan
            .params
            .iter()
            .filter(|q| q.location == crate::catalog::ParamLocation::Path)
            .map(|q| &q.name)
            .collect();
        if let Some(missing) = needs.iter().find(|n| !own.contains(n)) {
            diags.error_hint(
                file,
                span.clone(),
                format!(
                    "route `{}`: successor `{id}`'s path takes `{missing}`, which this route's path does not",
                    plan.id
                ),
                "name a successor whose path parameters this route's path has (same names)",
            );
            continue;
        }
        let plan = Arc::make_mut(plan);
        if let Some(s) = plan.deprecation.as_mut().and_then(|d| d.successor.as_mut()) {
            s.path.clone_from(path);
        }
    }
}

/// Unique ids; no two routes on one method and path; no paths the router cannot tell apart.
fn check_across_files(routes: &[Located<'_>], diags: &mut Diagnostics) {
    let mut ids: HashMap<String, (String, usize)> = HashMap::new();
    let mut seen_paths: HashMap<(String, String), (String, usize)> = HashMap::new();
    let mut routers: HashMap<&str, matchit::Router<()>> = HashMap::new();
    let mut inserted: HashSet<String> = HashSet::new();
    for (plan, file, span) in routes {
        let (line, _) = file.locate(span.start);
        if let Some((f, l)) = ids.get(&plan.id) {
            diags.error_hint(
                file,
                span.clone(),
                format!("route id `{}` is already used", plan.id),
                format!("the first is at {f}:{l}; give each route its own id"),
            );
        } else {
            ids.insert(plan.id.clone(), (file.name.clone(), line));
        }
        let shape = normalize_path(&plan.path);
        if let Some((f, l)) = seen_paths.get(&(plan.method.clone(), shape.clone())) {
            diags.error_hint(
                file,
                span.clone(),
                format!("another route already serves {} {}", plan.method, plan.path),
                format!("the first is at {f}:{l}; change the path or the method"),
            );
            continue;
        }
        seen_paths.insert((plan.method.clone(), shape), (file.name.clone(), line));
        if inserted.insert(plan.path.clone()) {
            let router = routers.entry(plan.version.as_str()).or_default();
            if let Err(e) = router.insert(plan.path.as_str(), ()) {
                diags.error_hint(
                    file,
                    span.clone(),
                    format!("path {} overlaps another route's path: {e}", plan.path),
                    "use the same parameter name in the same position, or a distinct literal \
                     segment",
                );
            }
        }
    }
}
