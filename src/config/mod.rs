//! The gateway config file (`patina.toml`): reading it (every mistake reported in one run,
//! with its place), `${VAR}` expansion from the environment, and the checked, typed [`Config`]
//! the rest of the program runs on, including the typed settings other modules act on (auth,
//! rate limits, documents, sources). Secrets stay wrapped in [`Secret`](crate::secret::Secret) so they never reach logs.
//! Mapping files are compiled elsewhere.
//!
//! `raw` is the file as written; `source`, `mssql`, `auth` and `state` (the shared-state
//! backend) check their sections into typed settings; `env` expands variables and redacts connection strings. This module imports only
//! the leaves below it (`secret`, `diag`, the dialect), never a module that acts on a config.

mod auth;
mod env;
mod mssql;
mod raw;
mod schema;
mod source;
mod state;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

use crate::diag::{Diagnostic, Diagnostics, LoadError, SourceFile};
use crate::secret::Secret;

pub use auth::{AuthSettings, JwtSettings, RateSettings, RateSpec};
pub use env::{expand_env, redact_connection_string};
pub use mssql::{Encrypt, MssqlTarget, Trust};
pub use schema::{OnInvalidName, config_schema, schema_for};
pub use source::{SourceConfig, SourceKind, SourceTarget};
pub use state::{RedisSettings, StateBackend, Unreachable};

use auth::{compile_auth, compile_rate};
use raw::RawConfig;
use source::compile_source;

/// Document settings, from the config's `[docs]` section and what `[auth]` and `[rate_limit]`
/// turn on.
#[derive(Clone, Debug, Default)]
pub struct DocsInfo {
    pub title: Option<String>,
    pub description: Option<String>,
    /// Bearer JWTs are accepted.
    pub bearer: bool,
    /// `X-API-Key` is accepted.
    pub api_keys: bool,
    /// A default rate limit applies to every route.
    pub rate_limited: bool,
}

/// The checked gateway configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub file: PathBuf,
    pub listen: String,
    pub mappings_dir: PathBuf,
    pub max_rows: usize,
    pub sources: IndexMap<String, SourceConfig>,
    pub docs: DocsInfo,
    /// Where the published documents are (`[docs] published`, default `openapi` beside this
    /// file): `patina check` compares each version's document with `<version>.json` there.
    pub published_dir: PathBuf,
    pub cors_origins: Vec<String>,
    /// Certificate chain and key files, when TLS is terminated here.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub auth: AuthSettings,
    pub rate_limit: RateSettings,
    /// Audit log file; `None` logs audit records under the `audit` target.
    pub audit_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// `[server] cursor_key`: the secret page cursors are signed with; `None`: a key kept in
    /// the state folder.
    pub cursor_key: Option<Secret>,
    /// `[server] on_invalid`: what an undecodable stored value becomes where neither the column
    /// nor its source says.
    pub on_invalid: crate::codec::OnInvalid,
    pub state: StateSettings,
    pub queue: QueueSettings,
    /// The migration bridge's log of shadow comparisons (`[bridge] log`).
    pub bridge_log: PathBuf,
    /// What is allowed but unwise (a password written in the file).
    pub warnings: Vec<Diagnostic>,
}

/// The write queue (`[queue]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    /// Most deliveries waiting at once; beyond it queued writes answer 503.
    pub max_pending: usize,
    /// Deliveries running at once.
    pub concurrency: usize,
    /// How long a delivery taken by one gateway is held for it; with Redis, after that
    /// another replica takes it (as from a replica that died). Longer than any attempt.
    pub lease: Duration,
    /// How long a delivered write's status stays readable.
    pub keep_delivered: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            max_pending: 100_000,
            concurrency: 8,
            lease: Duration::from_mins(2),
            keep_delivered: Duration::from_hours(24 * 7),
        }
    }
}

/// Where the gateway keeps what must outlive a request (`[state]`).
#[derive(Clone, Debug)]
pub struct StateSettings {
    /// The embedded store's folder.
    pub dir: PathBuf,
    /// How long the first answer to an `Idempotency-Key` is replayed.
    pub idempotency_ttl: Duration,
    /// Where shared state lives: the embedded store, or Redis for replicas.
    pub backend: StateBackend,
}

pub const DEFAULT_MAX_ROWS: usize = 1000;
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

impl Config {
    /// Read and check a config file, expanding `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| LoadError {
            diagnostics: {
                let mut d = Diagnostics::new();
                d.file_error(
                    &name,
                    format!("cannot read the config file: {e}"),
                    Some("pass another one with --config FILE".into()),
                );
                d.into_vec()
            },
        })?;
        Self::parse(path, &text, &|v| std::env::var(v).ok())
    }

    /// Read a config file for `patina check`: a `${VAR}` that is not set is not an error here
    /// (a DBA checks mappings without the production secrets). It is read as a stand-in, which
    /// [`Config::unset_in`] recognises, and each is returned as a warning with its place and
    /// the source it belongs to, if any.
    pub fn load_for_check(path: &Path) -> Result<(Config, Vec<Unset>), LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| LoadError {
            diagnostics: {
                let mut d = Diagnostics::new();
                d.file_error(
                    &path.display().to_string(),
                    format!("cannot read the config file: {e}"),
                    Some("pass another one with --config FILE".into()),
                );
                d.into_vec()
            },
        })?;
        // The variables used without a `:-default` that the environment does not set.
        let set = |v: &str| std::env::var(v).ok().filter(|x| !x.is_empty());
        let mut missing: Vec<String> = Vec::new();
        let mut rest = text.as_str();
        while let Some(pos) = rest.find("${") {
            let body = &rest[pos + 2..];
            let Some(end) = body.find('}') else { break };
            let inner = &body[..end];
            if !inner.contains(":-") && set(inner).is_none() && !missing.iter().any(|m| m == inner)
            {
                missing.push(inner.to_string());
            }
            rest = &body[end..];
        }
        let config = Self::parse(path, &text, &|v| {
            set(v).or_else(|| {
                missing
                    .iter()
                    .any(|m| m == v)
                    .then(|| format!("{UNSET_MARK}{v}>-stand-in-for-an-unset-variable"))
            })
        })?;
        let file = SourceFile::new(path.display().to_string(), text.as_str());
        let unset = missing
            .into_iter()
            .map(|var| {
                let at = text.find(&format!("${{{var}")).unwrap_or(0);
                let (line, column) = file.locate(at);
                Unset {
                    source: source_table_at(&text, at),
                    diagnostic: Diagnostic {
                        severity: crate::diag::Severity::Warning,
                        file: file.name.clone(),
                        line,
                        column,
                        message: format!("environment variable `{var}` is not set"),
                        hint: Some(
                            "checked with a stand-in; `serve` refuses to start without it, and `check --db` skips the source that needs it".into(),
                        ),
                    },
                    var,
                }
            })
            .collect();
        Ok((config, unset))
    }

    /// Whether a source's settings hold a stand-in for an unset variable
    /// ([`Config::load_for_check`]): such a source cannot be connected to.
    pub fn unset_in(source: &SourceConfig) -> bool {
        let secrets: Vec<&str> = match &source.target {
            SourceTarget::Odbc { connection_string } => vec![connection_string.expose()],
            SourceTarget::Mssql(m) => m
                .ado
                .iter()
                .chain(m.password.iter())
                .map(Secret::expose)
                .chain(m.host.as_deref())
                .chain(m.user.as_deref())
                .chain(m.database.as_deref())
                .collect(),
        };
        secrets.iter().any(|s| s.contains(UNSET_MARK))
    }

    /// Check config text; `env` looks up `${VAR}` references.
    pub fn parse(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, LoadError> {
        let file = SourceFile::new(path.display().to_string(), text);
        let mut diags = Diagnostics::new();
        let Some(raw) = RawConfig::read(&file, &mut diags) else {
            return Err(LoadError {
                diagnostics: in_file_order(diags),
            });
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let server = raw.server;
        let listen = server
            .as_ref()
            .and_then(|s| s.listen.as_ref())
            .map_or_else(
                || Some("127.0.0.1:8080".to_string()),
                |l| env::expand_at(&file, l, "`server.listen`", env, &mut diags),
            )
            .unwrap_or_default();
        let mappings_dir = server
            .as_ref()
            .and_then(|s| s.mappings.as_ref())
            .map_or_else(|| "mappings".to_string(), |m| m.get_ref().clone());
        let max_rows =
            server
                .as_ref()
                .and_then(|s| s.max_rows.as_ref())
                .map_or(DEFAULT_MAX_ROWS, |m| {
                    if *m.get_ref() == 0 {
                        diags.error(&file, m.span(), "`max_rows` must be at least 1");
                    }
                    *m.get_ref()
                });
        let auth = raw
            .auth
            .map(|a| compile_auth(&file, base, a, env, &mut diags))
            .unwrap_or_default();
        let rate_limit = raw
            .rate_limit
            .map(|r| compile_rate(&file, &r, &mut diags))
            .unwrap_or_default();
        let audit_file = raw.audit.and_then(|a| a.file).map(|f| base.join(f));
        let max_body_bytes = server
            .as_ref()
            .and_then(|s| s.max_body_bytes.as_ref())
            .map_or(DEFAULT_MAX_BODY_BYTES, |m| {
                if *m.get_ref() == 0 {
                    diags.error(&file, m.span(), "`max_body_bytes` must be at least 1");
                }
                *m.get_ref()
            });
        let cursor_key = server
            .as_ref()
            .and_then(|s| s.cursor_key.as_ref())
            .and_then(|k| match expand_env(k.get_ref(), env) {
                Ok(v) if v.len() >= 32 => Some(Secret::new(v)),
                Ok(_) => {
                    diags.error_hint(
                        &file,
                        k.span(),
                        "`server.cursor_key` is shorter than 32 bytes",
                        "generate one: openssl rand -hex 32",
                    );
                    None
                }
                Err(missing) => {
                    diags.error_hint(
                        &file,
                        k.span(),
                        format!("environment variable `{}` not set", missing.join("`, `")),
                        "export it before starting; never write the secret into this file",
                    );
                    None
                }
            });
        let on_invalid = server.as_ref().and_then(|s| s.on_invalid.as_ref()).map_or(
            crate::codec::OnInvalid::Error,
            |o| {
                crate::codec::OnInvalid::parse(o.get_ref()).unwrap_or_else(|| {
                    diags.error_hint(
                        &file,
                        o.span(),
                        format!("unknown `server.on_invalid` `{}`", o.get_ref()),
                        format!("one of: {}", crate::codec::OnInvalid::NAMES.join(", ")),
                    );
                    crate::codec::OnInvalid::Error
                })
            },
        );
        let state = StateSettings {
            dir: base.join(
                raw.state
                    .as_ref()
                    .and_then(|s| s.dir.as_deref())
                    .unwrap_or("data"),
            ),
            idempotency_ttl: raw
                .state
                .as_ref()
                .and_then(|s| s.idempotency_ttl.as_ref())
                .map_or(Duration::from_hours(24), |t| {
                    parse_duration(t.get_ref())
                        .filter(|d| !d.is_zero())
                        .unwrap_or_else(|| {
                            diags.error_hint(
                                &file,
                                t.span(),
                                "`idempotency_ttl` is not a duration",
                                format!("write it like \"24h\" ({DURATION_UNITS})"),
                            );
                            Duration::from_hours(24)
                        })
                }),
            backend: state::compile_backend(&file, raw.state.as_ref(), env, &mut diags),
        };
        let queue = raw
            .queue
            .as_ref()
            .map(|q| compile_queue(&file, q, &mut diags))
            .unwrap_or_default();
        // A published folder named but missing would turn the breaking-change guard off.
        if let Some(p) = raw.docs.as_ref().and_then(|d| d.published.as_deref())
            && !base.join(p).is_dir()
        {
            diags.at(
                crate::diag::Severity::Warning,
                &file,
                None,
                format!(
                    "`[docs] published` names `{p}`, which is not a folder: breaking changes to published documents are not checked"
                ),
                Some("write the documents there with `patina openapi --db --out FOLDER`, or fix the path".into()),
            );
        }
        let mut sources = IndexMap::new();
        for (name, src) in raw.sources {
            if let Some(s) = compile_source(&file, &name, src, base, env, &mut diags) {
                sources.insert(name, s);
            }
        }
        if diags.has_errors() {
            return Err(LoadError {
                diagnostics: in_file_order(diags),
            });
        }
        Ok(Config {
            file: path.to_path_buf(),
            listen,
            mappings_dir: base.join(mappings_dir),
            max_rows,
            sources,
            published_dir: base.join(
                raw.docs
                    .as_ref()
                    .and_then(|d| d.published.as_deref())
                    .unwrap_or("openapi"),
            ),
            docs: DocsInfo {
                title: raw.docs.as_ref().and_then(|d| d.title.clone()),
                description: raw.docs.as_ref().and_then(|d| d.description.clone()),
                bearer: auth.jwt.is_some(),
                api_keys: auth.api_keys_file.is_some(),
                rate_limited: rate_limit.default.is_some(),
            },
            tls: server
                .as_ref()
                .and_then(|s| s.tls.as_ref())
                .map(|t| (base.join(&t.cert_file), base.join(&t.key_file))),
            cors_origins: server.map(|s| s.cors_origins).unwrap_or_default(),
            auth,
            rate_limit,
            audit_file,
            max_body_bytes,
            cursor_key,
            on_invalid,
            bridge_log: raw
                .bridge
                .as_ref()
                .and_then(|b| b.log.as_deref())
                .map_or_else(|| state.dir.join("bridge.jsonl"), |l| base.join(l)),
            state,
            queue,
            warnings: in_file_order(diags),
        })
    }
}

/// What an unset variable is read as by [`Config::load_for_check`].
const UNSET_MARK: &str = "<unset:";

/// Whether `value` begins with `check`'s stand-in for a variable the environment does not set.
fn stands_in_at_start(value: &str) -> bool {
    value.starts_with(UNSET_MARK)
}

/// A `${VAR}` that `patina check` found unset.
#[derive(Clone, Debug)]
pub struct Unset {
    pub var: String,
    /// The `[sources.NAME]` table it is in, if any.
    pub source: Option<String>,
    /// The warning, at the variable's first place in the file.
    pub diagnostic: Diagnostic,
}

/// The `[sources.NAME]` table a byte offset of the config text lies in.
fn source_table_at(text: &str, at: usize) -> Option<String> {
    let mut current = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > at {
            break;
        }
        let t = line.trim();
        if t.starts_with('[') {
            current = t
                .trim_start_matches('[')
                .trim_end_matches(']')
                .strip_prefix("sources.")
                .map(|n| {
                    n.split('.')
                        .next()
                        .unwrap_or(n)
                        .trim_matches('"')
                        .to_string()
                });
        }
        offset += line.len();
    }
    current
}

/// The findings in the order of their place in the file (sections are read before they are
/// checked, so they are not found in that order).
fn in_file_order(diags: Diagnostics) -> Vec<Diagnostic> {
    let mut all = diags.into_vec();
    all.sort_by_key(|d| (d.line, d.column));
    all
}

/// The units [`parse_duration`] takes, for hints.
pub const DURATION_UNITS: &str = "units: ms, s, m, h";

/// How to write a duration, for a hint under a refused one.
const DURATION_HINT: &str =
    "write it like \"500ms\", \"5s\", \"1m\" or \"2h\" (units: ms, s, m, h)";

/// `500ms`, `5s`, `2m`, `8h`.
/// `[queue]`, checked.
fn compile_queue(file: &SourceFile, q: &raw::RawQueue, diags: &mut Diagnostics) -> QueueSettings {
    let d = QueueSettings::default();
    let mut count =
        |v: Option<&toml::Spanned<usize>>, key: &str, max: usize, default: usize| match v {
            Some(n) if (1..=max).contains(n.get_ref()) => *n.get_ref(),
            Some(n) => {
                diags.error(
                    file,
                    n.span(),
                    format!("`{key}` must be between 1 and {max}"),
                );
                default
            }
            None => default,
        };
    let max_pending = count(
        q.max_pending.as_ref(),
        "max_pending",
        100_000_000,
        d.max_pending,
    );
    let concurrency = count(q.concurrency.as_ref(), "concurrency", 1024, d.concurrency);
    let keep_delivered = q.keep_delivered.as_ref().map_or(d.keep_delivered, |t| {
        parse_duration(t.get_ref())
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| {
                diags.error_hint(
                    file,
                    t.span(),
                    "`keep_delivered` is not a duration",
                    format!("write it like \"168h\" ({DURATION_UNITS})"),
                );
                d.keep_delivered
            })
    });
    let lease = q.lease.as_ref().map_or(d.lease, |t| {
        parse_duration(t.get_ref())
            .filter(|d| *d >= Duration::from_secs(1))
            .unwrap_or_else(|| {
                diags.error_hint(
                    file,
                    t.span(),
                    "`lease` must be a duration of 1s or more",
                    format!("write it like \"2m\" ({DURATION_UNITS})"),
                );
                d.lease
            })
    });
    QueueSettings {
        max_pending,
        concurrency,
        lease,
        keep_delivered,
    }
}

pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}
