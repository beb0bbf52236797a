//! A checked source definition ([`SourceConfig`]): the options every kind shares (dialect, pool,
//! timeouts) and the kind's own, as an enum ([`SourceTarget`]) so a source holds only what its
//! kind uses. Compiles `[sources.NAME]` from its raw form; SQL Server's own options are checked
//! in the sibling `mssql` module. Opening connections is the source module's business.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::env::expand_at;
use super::mssql::{MssqlTarget, compile_mssql};
use super::raw::{RawKindOptions, RawSource};
use super::{DURATION_HINT, parse_duration};
use crate::diag::{Diagnostics, SourceFile};
use crate::dialect::Dialect;
use crate::secret::Secret;

/// What kind of client library talks to a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Odbc,
    Mssql,
}

impl SourceKind {
    /// As written in `kind = "..."`.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Odbc => "odbc",
            SourceKind::Mssql => "mssql",
        }
    }
}

/// Where a source is and how to log in: what only its kind knows.
#[derive(Clone, Debug)]
pub enum SourceTarget {
    /// `kind = "odbc"`: everything is in the driver's connection string.
    Odbc { connection_string: Secret },
    /// `kind = "mssql"`: the native protocol's fields (or an ADO.NET string).
    Mssql(MssqlTarget),
}

impl SourceTarget {
    pub fn kind(&self) -> SourceKind {
        match self {
            SourceTarget::Odbc { .. } => SourceKind::Odbc,
            SourceTarget::Mssql(_) => SourceKind::Mssql,
        }
    }

    /// The ODBC connection string, for `kind = "odbc"` sources.
    pub fn odbc_connection_string(&self) -> Option<&Secret> {
        match self {
            SourceTarget::Odbc { connection_string } => Some(connection_string),
            SourceTarget::Mssql(_) => None,
        }
    }

    /// The SQL Server target, for `kind = "mssql"` sources.
    pub fn mssql(&self) -> Option<&MssqlTarget> {
        match self {
            SourceTarget::Mssql(t) => Some(t),
            SourceTarget::Odbc { .. } => None,
        }
    }
}

/// A checked source definition.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    pub name: String,
    pub dialect: Dialect,
    pub pool_max: usize,
    pub acquire_timeout: Duration,
    pub max_concurrent: usize,
    pub max_waiting: usize,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub statement_timeout: Option<Duration>,
    pub login_timeout: Duration,
    pub max_text_bytes: usize,
    /// `on_invalid` of this source's routes; `None`: the global one.
    pub on_invalid: Option<crate::codec::OnInvalid>,
    /// What only this kind of source takes.
    pub target: SourceTarget,
}

impl SourceConfig {
    pub fn kind(&self) -> SourceKind {
        self.target.kind()
    }
}

/// Which source of which file is being compiled, and the folder its paths are relative to.
pub(super) struct Place<'a> {
    pub file: &'a SourceFile,
    pub name: &'a str,
    pub span: Range<usize>,
    pub base: &'a Path,
}

/// Expands `${VAR}` in a field, reporting missing variables.
pub(super) type Expand<'a> =
    dyn FnMut(&Spanned<String>, &str, &mut Diagnostics) -> Option<String> + 'a;

pub(super) fn compile_source(
    file: &SourceFile,
    name: &str,
    src: RawSource,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut Diagnostics,
) -> Option<SourceConfig> {
    let RawSource {
        span,
        kind,
        common,
        options,
    } = src;
    let errors_before = diags.errors().count();
    let mut expand = |v: &Spanned<String>, what: &str, diags: &mut Diagnostics| {
        expand_at(file, v, &format!("source `{name}`: {what}"), env, diags)
    };
    let target = match options {
        Some(RawKindOptions::Odbc(o)) => match &o.connection_string {
            Some(cs) => expand(cs, "`connection_string`", diags).map(|s| SourceTarget::Odbc {
                connection_string: Secret::new(s),
            }),
            None => {
                diags.error_hint(
                    file,
                    span.clone(),
                    format!("source `{name}` has no `connection_string`"),
                    "add connection_string = \"Driver={...};...\"",
                );
                None
            }
        },
        Some(RawKindOptions::Mssql(m)) => {
            let at = Place {
                file,
                name,
                span: span.clone(),
                base,
            };
            let target = compile_mssql(&at, &m, common.dialect.as_ref(), &mut expand, diags);
            Some(SourceTarget::Mssql(target))
        }
        None => None,
    };
    let dialect = match &common.dialect {
        Some(d) => Dialect::parse(d.get_ref()).or_else(|| {
            diags.error_hint(
                file,
                d.span(),
                format!("source `{name}`: unknown dialect `{}`", d.get_ref()),
                format!("use one of: {}", Dialect::NAMES.join(", ")),
            );
            None
        }),
        None if kind == Some(SourceKind::Mssql) => Some(Dialect::Mssql),
        None => {
            diags.error_hint(
                file,
                span,
                format!("source `{name}` has no `dialect`"),
                format!("add dialect = one of: {}", Dialect::NAMES.join(", ")),
            );
            None
        }
    };
    let mut duration = |v: &Option<Spanned<String>>, field: &str| -> Option<Duration> {
        let v = v.as_ref()?;
        parse_duration(v.get_ref()).or_else(|| {
            diags.error_hint(
                file,
                v.span(),
                format!("source `{name}`: `{field}` is not a duration"),
                DURATION_HINT,
            );
            None
        })
    };
    let pool = common.pool.as_ref();
    let acquire_timeout = duration(
        &pool.and_then(|p| p.acquire_timeout.clone()),
        "pool.acquire_timeout",
    )
    .unwrap_or(Duration::from_secs(2));
    let statement_timeout = duration(&common.statement_timeout, "statement_timeout");
    let login_timeout =
        duration(&common.login_timeout, "login_timeout").unwrap_or(Duration::from_secs(5));
    let breaker_cooldown = duration(
        &pool.and_then(|p| p.breaker_cooldown.clone()),
        "pool.breaker_cooldown",
    )
    .unwrap_or(Duration::from_secs(2));
    let pool_max = match pool.and_then(|p| p.max.as_ref()) {
        Some(m) if *m.get_ref() == 0 || *m.get_ref() > 256 => {
            diags.error(
                file,
                m.span(),
                format!("source `{name}`: `pool.max` must be between 1 and 256"),
            );
            1
        }
        Some(m) => *m.get_ref(),
        None => 4,
    };
    let max_concurrent = match pool.and_then(|p| p.max_concurrent.as_ref()) {
        Some(m) if *m.get_ref() == 0 || *m.get_ref() > pool_max => {
            diags.error_hint(
                file,
                m.span(),
                format!("source `{name}`: `pool.max_concurrent` must be between 1 and `pool.max` ({pool_max})"),
                "it caps the statements running at once, below the pool size",
            );
            pool_max
        }
        Some(m) => *m.get_ref(),
        None => pool_max,
    };
    let max_waiting = pool
        .and_then(|p| p.max_waiting.as_ref())
        .map_or(64, |m| *m.get_ref());
    let breaker_failures = pool
        .and_then(|p| p.breaker_failures.as_ref())
        .map_or(5, |m| (*m.get_ref()).max(1));
    let max_text_bytes = common
        .max_text_bytes
        .as_ref()
        .map_or(65_536, |m| *m.get_ref());
    let on_invalid = common.on_invalid.as_ref().and_then(|o| {
        let parsed = crate::codec::OnInvalid::parse(o.get_ref());
        if parsed.is_none() {
            diags.error_hint(
                file,
                o.span(),
                format!("source `{name}`: unknown `on_invalid` `{}`", o.get_ref()),
                format!("one of: {}", crate::codec::OnInvalid::NAMES.join(", ")),
            );
        }
        parsed
    });
    if diags.errors().count() > errors_before {
        return None;
    }
    Some(SourceConfig {
        on_invalid,
        name: name.to_string(),
        dialect: dialect?,
        pool_max,
        acquire_timeout,
        max_concurrent,
        max_waiting,
        breaker_failures,
        breaker_cooldown,
        statement_timeout,
        login_timeout,
        max_text_bytes: max_text_bytes.max(256),
        target: target?,
    })
}
