//! Reading the mappings folder: one folder per API version (`v1/`, `v2/`), `*.toml` files in
//! each. Hidden entries are skipped; a mapping file outside a version folder is an error.
//! Compiling what was read is the rest of the module's job.

use std::path::Path;

use indexmap::IndexMap;

use super::{Compiled, MappingFile, SourceInfo, compile};
use crate::diag::{Diagnostic, Diagnostics, LoadError, SourceFile};

/// Read every `<dir>/<version>/*.toml` and compile them together.
pub fn load_dir(
    dir: &Path,
    sources: &IndexMap<String, SourceInfo>,
    default_max_rows: usize,
) -> Result<Compiled, LoadError> {
    let mut diags = Diagnostics::new();
    let files = read_dir(dir, &mut diags);
    let result = compile(&files, sources, default_max_rows);
    match result {
        Ok(c) if !diags.has_errors() => Ok(c),
        Ok(c) => {
            extend_from(&mut diags, c.warnings);
            Err(LoadError {
                diagnostics: diags.into_vec(),
            })
        }
        Err(e) => {
            extend_from(&mut diags, e.diagnostics);
            Err(LoadError {
                diagnostics: diags.into_vec(),
            })
        }
    }
}

fn extend_from(diags: &mut Diagnostics, v: Vec<Diagnostic>) {
    for d in v {
        diags.push(d);
    }
}

fn read_dir(dir: &Path, diags: &mut Diagnostics) -> Vec<MappingFile> {
    let shown = dir.display().to_string();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.file_error(
                &shown,
                format!("cannot read the mappings folder: {e}"),
                Some("set [server] mappings = \"folder\" in the config".into()),
            );
            return Vec::new();
        }
    };
    let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        // Hidden entries (editor files, a ConfigMap volume's `..data` links) are not mappings.
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            read_version_dir(&p, &name, diags, &mut out);
        } else if p
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
        {
            diags.file_error(
                &p.display().to_string(),
                "mapping files belong in a version folder",
                Some(format!("move it to {shown}/v1/{name}")),
            );
        }
    }
    out
}

/// Read the `*.toml` files of one version folder, named `version`.
fn read_version_dir(
    dir: &Path,
    version: &str,
    diags: &mut Diagnostics,
    out: &mut Vec<MappingFile>,
) {
    if !is_version_name(version) {
        diags.file_error(
            &dir.display().to_string(),
            format!("`{version}` is not a usable API version folder name"),
            Some("name version folders like v1, v2 (letters, digits, `.`, `_`, `-`)".into()),
        );
        return;
    }
    let Ok(inner) = std::fs::read_dir(dir) else {
        diags.file_error(&dir.display().to_string(), "cannot read this folder", None);
        return;
    };
    let mut files: Vec<_> = inner
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|f| f.extension().is_some_and(|e| e == "toml"))
        .filter(|f| {
            !f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    for f in files {
        let shown = f.display().to_string();
        match std::fs::read_to_string(&f) {
            Ok(text) => out.push(MappingFile {
                version: version.to_string(),
                file: SourceFile::new(shown, text),
            }),
            Err(e) => diags.file_error(&shown, format!("cannot read: {e}"), None),
        }
    }
}

fn is_version_name(s: &str) -> bool {
    !s.is_empty()
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
