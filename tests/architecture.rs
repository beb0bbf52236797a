//! The module structure stays a pipeline: every top-level module of `src/` sits in a layer,
//! and imports (`crate::…` paths, outside comments) only reach modules in lower layers. So no
//! import circle can come back. ARCHITECTURE.md explains the layers; keep the two in step.

use std::collections::BTreeMap;
use std::path::Path;

/// Bottom to top. A module may import from the layers below its own, never from its own or
/// from above.
const LAYERS: &[&[&str]] = &[
    &["secret", "clock", "diag"],
    &["codec", "dialect", "state"],
    &["sql", "config", "shape", "cursor", "bridge"],
    &["catalog", "cache"],
    &["mapping", "metrics"],
    &["source"],
    &["encode", "auth", "audit", "openapi"],
    &["http"],
    &["app"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The top-level module a file belongs to (`src/x.rs` or `src/x/…`).
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).expect("under src");
    let first = rel
        .components()
        .next()
        .expect("a component")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every top-level module named after `crate::` in `text`, including those inside
/// `use crate::{a, b::c}` groups. Line comments are ignored.
fn imports(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group, at brace depth 0.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            found.push(first_ident(&item));
        } else {
            found.push(first_ident(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

fn first_ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn modules_import_only_from_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "main" || module == "lib" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            wrong
                .entry(module.clone())
                .or_default()
                .push("is in no layer: add it to LAYERS and to ARCHITECTURE.md".into());
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read");
        // Forms this reader cannot follow are not used, so every import stays visible.
        for hidden in ["crate::*", "crate as ", "self as ", "super::super"] {
            if text.contains(hidden) {
                wrong.entry(module.clone()).or_default().push(format!(
                    "{} uses `{hidden}`: name the module instead",
                    file.display()
                ));
            }
        }
        for target in imports(&text) {
            if target == module || target == "self" || target == "super" {
                continue;
            }
            match layer_of(&target) {
                Some(l) if l < own => {}
                Some(_) => wrong.entry(module.clone()).or_default().push(format!(
                    "{} imports `{target}` from its own layer or above",
                    file.display()
                )),
                None => {}
            }
        }
    }
    for v in wrong.values_mut() {
        v.sort();
        v.dedup();
    }
    assert!(
        wrong.is_empty(),
        "imports against the pipeline:\n{}",
        wrong
            .iter()
            .map(|(m, v)| format!("{m}:\n  {}", v.join("\n  ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_import_reader_sees_groups_and_ignores_comments() {
    let text =
        "use crate::a::B;\nuse crate::{c, d::{E, F}, g};\n// crate::h\nlet x = crate::i::j();";
    assert_eq!(imports(text), ["a", "c", "d", "g", "i"]);
}
