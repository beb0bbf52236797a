//! For unit tests across the crate: compile a mapping from text against a fixed set of
//! sources, one of each dialect, so that no test module builds its own.

use indexmap::IndexMap;

use super::{MappingFile, SourceInfo, compile};
use crate::catalog::Catalog;
use crate::diag::{Severity, SourceFile};
use crate::dialect::{Dialect, Placeholders};

/// `db` (SQLite), `pg` (PostgreSQL), `mfg` (IBM i) over ODBC, and `ms` (SQL Server) over its
/// native protocol.
pub(crate) fn sources() -> IndexMap<String, SourceInfo> {
    [
        ("db", Dialect::Sqlite, Placeholders::Question),
        ("pg", Dialect::Postgres, Placeholders::Question),
        ("mfg", Dialect::Db2i, Placeholders::Question),
        ("ms", Dialect::Mssql, Placeholders::Numbered),
    ]
    .into_iter()
    .map(|(name, dialect, placeholders)| {
        (
            name.to_string(),
            SourceInfo {
                dialect,
                placeholders,
                on_invalid: crate::codec::OnInvalid::Error,
            },
        )
    })
    .collect()
}

/// A mapping file of version `v1`.
pub(crate) fn file(name: &str, text: &str) -> MappingFile {
    MappingFile {
        version: "v1".into(),
        file: SourceFile::new(name, text),
    }
}

/// Compile one mapping file (version `v1`, a row cap of 100 by default): the catalog, or the
/// errors as `patina check` prints them.
pub(crate) fn compile_text(
    name: &str,
    text: &str,
    sources: &IndexMap<String, SourceInfo>,
) -> Result<Catalog, Vec<String>> {
    compile(&[file(name, text)], sources, 100)
        .map(|c| c.catalog)
        .map_err(|e| {
            e.diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(ToString::to_string)
                .collect()
        })
}
