//! The gateway config file (`patina.toml`): its raw serde form, `${VAR}` expansion from the
//! environment, and the checked, typed [`Config`] the rest of the program runs on. Secrets stay
//! wrapped in [`Secret`] so they never reach logs. Mapping files are compiled elsewhere.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Diagnostics, LoadError, SourceFile};
use crate::dialect::Dialect;

/// A value that must not be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for the one place that needs it (opening a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0 picks a free port).
    listen: Option<Spanned<String>>,
    /// Folder holding one sub-folder per API version (`v1/`, `v2/`) of mapping files; relative
    /// to the config file. Default `mappings`.
    mappings: Option<Spanned<String>>,
    /// Upper bound on rows a list route returns when the route sets none. Default 1000.
    max_rows: Option<Spanned<usize>>,
    /// Browser origins allowed to call the API (CORS), e.g. `https://dash.example.com`.
    #[serde(default)]
    cors_origins: Vec<String>,
    /// Terminate TLS here: PEM certificate chain and private key, relative to this file.
    tls: Option<RawTls>,
}

/// `[server.tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: String,
    key_file: String,
}

/// `[sources.NAME.pool]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    /// Connections for this source (for ODBC, one worker thread each). Default 4.
    max: Option<Spanned<usize>>,
    /// How long a request waits for a free connection before 503. Default `2s`.
    acquire_timeout: Option<Spanned<String>>,
    /// Statements running at once, at most (at most `max`; default `max`): protects the
    /// database from the gateway.
    max_concurrent: Option<Spanned<usize>>,
    /// Requests that may wait for a connection; beyond, 503 at once. Default 64.
    max_waiting: Option<Spanned<usize>>,
    /// Consecutive connection failures that open the circuit breaker. Default 5.
    breaker_failures: Option<Spanned<u32>>,
    /// How long the open breaker fails fast before probing again (doubles, with jitter, while
    /// the source stays down; at most 60s). Default `2s`.
    breaker_cooldown: Option<Spanned<String>>,
}

/// `[sources.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    /// `odbc` (any ODBC driver) or `mssql` (SQL Server's native protocol).
    kind: Spanned<String>,
    /// ODBC connection string; `${VAR}` is read from the environment.
    connection_string: Option<Spanned<String>>,
    /// `db2i`, `mssql`, `postgres` or `sqlite`.
    dialect: Option<Spanned<String>>,
    pool: Option<RawPool>,
    /// Longest a statement may run before the driver cancels it (e.g. `5s`).
    statement_timeout: Option<Spanned<String>>,
    /// Longest a login may take. Default `5s`.
    login_timeout: Option<Spanned<String>>,
    /// Largest text value fetched, in bytes. Default 65536.
    max_text_bytes: Option<Spanned<usize>>,
    // SQL Server (`kind = "mssql"`): these fields, or an ADO.NET-style `connection_string`.
    /// Server host name or address.
    host: Option<Spanned<String>>,
    /// TCP port. Default 1433, or what the SQL Browser reports for `instance`.
    port: Option<Spanned<u16>>,
    /// Named instance (`SQLEXPRESS`); its port is asked from the SQL Browser (UDP 1434).
    instance: Option<Spanned<String>>,
    database: Option<Spanned<String>>,
    /// SQL login; `${VAR}` is read from the environment.
    user: Option<Spanned<String>>,
    /// `${VAR}` is read from the environment; never write the password into the file.
    password: Option<Spanned<String>>,
    /// `required` (default), `strict` (TDS 8, TLS before login), `login_only` or `off`.
    encrypt: Option<Spanned<String>>,
    /// PEM file of the CA (or the certificate itself) that signed the server's certificate.
    trust_ca_file: Option<Spanned<String>>,
    /// Accept any server certificate: for development only.
    trust_server_certificate: Option<Spanned<bool>>,
    /// Shown in the server's session list. Default `patina`.
    application_name: Option<Spanned<String>>,
}

/// `[docs]`: the generated OpenAPI documents.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocs {
    /// Title of every version's document (the version is appended).
    title: Option<String>,
    /// Introduction shown at the top of Swagger UI (Markdown).
    description: Option<String>,
}

/// `[auth.jwt]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    /// Required `iss`.
    issuer: Option<String>,
    /// Required `aud`.
    audience: Option<String>,
    /// Shared secret for HS256 tokens (at least 32 bytes); use `${VAR}`.
    hs256_secret: Option<Spanned<String>>,
    /// PEM public key of the identity provider, relative to this file.
    public_key_file: Option<Spanned<String>>,
    /// The one algorithm that key verifies: RS256, RS384, RS512, PS256, ES256, ES384, EdDSA.
    public_key_algorithm: Option<Spanned<String>>,
    /// JWKS document (a file), re-read on schedule and when a token names an unknown key.
    jwks_file: Option<Spanned<String>>,
    /// JWKS URL of the identity provider (HTTPS), fetched likewise.
    jwks_url: Option<Spanned<String>>,
    /// How often the JWKS is re-read. Default `10m`.
    jwks_refresh: Option<Spanned<String>>,
    /// Clock skew allowed on `exp` and `nbf`. Default `30s`.
    leeway: Option<Spanned<String>>,
}

/// `[auth]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    jwt: Option<RawJwt>,
    /// Hashed API keys (see `patina keys`), relative to this file.
    api_keys_file: Option<String>,
    /// Claim holding the caller's scopes. Default `scope`.
    scopes_claim: Option<String>,
}

/// `[rate_limit]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    /// Per identity across all routes, e.g. `600/minute`.
    default: Option<Spanned<String>>,
    /// Proxies whose `X-Forwarded-For` names the client.
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
}

/// `[audit]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    /// JSON-lines file; without it, records go to the log under the `audit` target.
    file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Option<RawServer>,
    docs: Option<RawDocs>,
    auth: Option<RawAuth>,
    rate_limit: Option<RawRateLimit>,
    audit: Option<RawAudit>,
    #[serde(default)]
    sources: IndexMap<String, Spanned<RawSource>>,
}

/// What kind of client library talks to a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Odbc,
    Mssql,
}

/// How a SQL Server connection is encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encrypt {
    /// TLS for the whole session, negotiated after pre-login (TDS 7.x).
    Required,
    /// TLS before any TDS byte (TDS 8, SQL Server 2022's strict mode).
    Strict,
    /// TLS for the login packet only; queries and rows travel in clear text.
    LoginOnly,
    /// No TLS at all, not even for the password: loopback and test servers only.
    Off,
}

/// Which server certificates a SQL Server connection accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Those the system's root store vouches for.
    System,
    /// Those signed by the CA in this PEM file (or that certificate itself).
    CaFile(PathBuf),
    /// Any certificate: development only.
    Any,
}

/// Where and how to reach a SQL Server. Field values override the ADO.NET string's.
#[derive(Clone, Debug)]
pub struct MssqlTarget {
    /// An ADO.NET-style connection string (`Server=tcp:host,1433;Database=...`).
    pub ado: Option<Secret>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub instance: Option<String>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub encrypt: Option<Encrypt>,
    pub trust: Option<Trust>,
    pub application_name: Option<String>,
}

/// A checked source definition.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    pub connection_string: Secret,
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
    /// Set for `kind = "mssql"`; ODBC sources use `connection_string`.
    pub mssql: Option<MssqlTarget>,
}

/// The checked gateway configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub file: PathBuf,
    pub listen: String,
    pub mappings_dir: PathBuf,
    pub max_rows: usize,
    pub sources: IndexMap<String, SourceConfig>,
    pub docs: crate::openapi::DocsInfo,
    pub cors_origins: Vec<String>,
    /// Certificate chain and key files, when TLS is terminated here.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub auth: crate::auth::AuthSettings,
    pub rate_limit: crate::auth::RateSettings,
    /// Audit log file; `None` logs audit records under the `audit` target.
    pub audit_file: Option<PathBuf>,
    /// What is allowed but unwise (a password written in the file).
    pub warnings: Vec<crate::diag::Diagnostic>,
}

pub const DEFAULT_MAX_ROWS: usize = 1000;

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

    /// Check config text; `env` looks up `${VAR}` references.
    pub fn parse(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, LoadError> {
        let file = SourceFile::new(path.display().to_string(), text);
        let mut diags = Diagnostics::new();
        let raw = match toml::from_str::<RawConfig>(text) {
            Ok(raw) => raw,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                diags.error(&file, span, e.message().trim().to_string());
                return Err(LoadError {
                    diagnostics: diags.into_vec(),
                });
            }
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let server = raw.server;
        let listen = server
            .as_ref()
            .and_then(|s| s.listen.as_ref())
            .map_or_else(|| "127.0.0.1:8080".to_string(), |l| l.get_ref().clone());
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
        let mut sources = IndexMap::new();
        for (name, src) in raw.sources {
            if let Some(s) = compile_source(&file, &name, src, base, env, &mut diags) {
                sources.insert(name, s);
            }
        }
        if diags.has_errors() {
            return Err(LoadError {
                diagnostics: diags.into_vec(),
            });
        }
        Ok(Config {
            file: path.to_path_buf(),
            listen,
            mappings_dir: base.join(mappings_dir),
            max_rows,
            sources,
            docs: crate::openapi::DocsInfo {
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
            warnings: diags.warnings().cloned().collect(),
        })
    }
}

fn compile_source(
    file: &SourceFile,
    name: &str,
    src: Spanned<RawSource>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut Diagnostics,
) -> Option<SourceConfig> {
    let span = src.span();
    let src = src.into_inner();
    let errors_before = diags.errors().count();
    let kind = match src.kind.get_ref().as_str() {
        "odbc" => Some(SourceKind::Odbc),
        "mssql" => Some(SourceKind::Mssql),
        other => {
            diags.error_hint(
                file,
                src.kind.span(),
                format!("source `{name}`: unknown kind `{other}`"),
                "use kind = \"odbc\" (any ODBC driver) or \"mssql\" (SQL Server)",
            );
            None
        }
    };
    let mut expand = |v: &Spanned<String>, what: &str, diags: &mut Diagnostics| match expand_env(
        v.get_ref(),
        env,
    ) {
        Ok(s) => Some(s),
        Err(missing) => {
            diags.error_hint(
                file,
                v.span(),
                format!(
                    "source `{name}`: {what}: environment variable{} {} not set",
                    if missing.len() == 1 { "" } else { "s" },
                    missing
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "export it before starting, or give a default: ${VAR:-value}",
            );
            None
        }
    };
    let connection_string = match &src.connection_string {
        Some(cs) => expand(cs, "`connection_string`", diags).map(Secret::new),
        None if kind == Some(SourceKind::Mssql) => Some(Secret::new(String::new())),
        None => {
            diags.error_hint(
                file,
                span.clone(),
                format!("source `{name}` has no `connection_string`"),
                "add connection_string = \"Driver={...};...\"",
            );
            None
        }
    };
    let mssql = if kind == Some(SourceKind::Mssql) {
        let ado = src
            .connection_string
            .as_ref()
            .map(|cs| (cs.span(), connection_string.as_ref()));
        let at = Place {
            file,
            name,
            span: span.clone(),
            base,
        };
        Some(compile_mssql(&at, &src, ado, &mut expand, diags))
    } else {
        let fields = [
            src.host.as_ref().map(Spanned::span),
            src.port.as_ref().map(Spanned::span),
            src.instance.as_ref().map(Spanned::span),
            src.database.as_ref().map(Spanned::span),
            src.user.as_ref().map(Spanned::span),
            src.password.as_ref().map(Spanned::span),
            src.encrypt.as_ref().map(Spanned::span),
            src.trust_ca_file.as_ref().map(Spanned::span),
            src.trust_server_certificate.as_ref().map(Spanned::span),
            src.application_name.as_ref().map(Spanned::span),
        ];
        if let Some(at) = fields.into_iter().flatten().next() {
            diags.error_hint(
                file,
                at,
                format!("source `{name}`: this field is for kind = \"mssql\" only"),
                "an ODBC source takes everything in its `connection_string`",
            );
        }
        None
    };
    let dialect = match &src.dialect {
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
                "write it like \"500ms\", \"5s\" or \"1m\"",
            );
            None
        })
    };
    let acquire_timeout = duration(
        &src.pool.as_ref().and_then(|p| p.acquire_timeout.clone()),
        "pool.acquire_timeout",
    )
    .unwrap_or(Duration::from_secs(2));
    let statement_timeout = duration(&src.statement_timeout, "statement_timeout");
    let login_timeout =
        duration(&src.login_timeout, "login_timeout").unwrap_or(Duration::from_secs(5));
    let breaker_cooldown = duration(
        &src.pool.as_ref().and_then(|p| p.breaker_cooldown.clone()),
        "pool.breaker_cooldown",
    )
    .unwrap_or(Duration::from_secs(2));
    let pool_max = match src.pool.as_ref().and_then(|p| p.max.as_ref()) {
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
    let pool = src.pool.as_ref();
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
    let max_text_bytes = src.max_text_bytes.as_ref().map_or(65_536, |m| *m.get_ref());
    if diags.errors().count() > errors_before {
        return None;
    }
    Some(SourceConfig {
        name: name.to_string(),
        kind: kind?,
        connection_string: connection_string?,
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
        mssql,
    })
}

/// Which source of which file is being compiled, and the folder its paths are relative to.
struct Place<'a> {
    file: &'a SourceFile,
    name: &'a str,
    span: std::ops::Range<usize>,
    base: &'a Path,
}

/// Expands `${VAR}` in a field, reporting missing variables.
type Expand<'a> = dyn FnMut(&Spanned<String>, &str, &mut Diagnostics) -> Option<String> + 'a;

/// The SQL Server fields of a source: either an ADO.NET string or `host` (and friends).
fn compile_mssql(
    at: &Place<'_>,
    src: &RawSource,
    // The ADO.NET string's place in the file, and its value once expanded (`None` when a
    // variable is missing, which is reported already).
    ado: Option<(std::ops::Range<usize>, Option<&Secret>)>,
    expand: &mut Expand<'_>,
    diags: &mut Diagnostics,
) -> MssqlTarget {
    let (file, name, span, base) = (at.file, at.name, &at.span, at.base);
    if let Some(d) = &src.dialect
        && d.get_ref() != "mssql"
    {
        diags.error_hint(
            file,
            d.span(),
            format!("source `{name}`: kind `mssql` speaks dialect `mssql` only"),
            "remove `dialect`, or write dialect = \"mssql\"",
        );
    }
    if let Some((at, Some(cs))) = &ado
        && cs.expose().trim().is_empty()
    {
        diags.error_hint(
            file,
            at.clone(),
            format!("source `{name}`: `connection_string` is empty"),
            "set the variable it reads, or give host, database, user and password instead",
        );
    }
    if ado.is_some() {
        let trust = [
            src.trust_ca_file.as_ref().map(Spanned::span),
            src.trust_server_certificate.as_ref().map(Spanned::span),
        ];
        if let Some(at) = trust.into_iter().flatten().next() {
            diags.error_hint(
                file,
                at,
                format!(
                    "source `{name}`: with a `connection_string`, certificate trust is set in it"
                ),
                "write TrustServerCertificateCA=/path/ca.pem (or TrustServerCertificate=true, \
                 for development) in the connection string, or give host and these fields",
            );
        }
    }
    if let (Some(u), None) = (&src.user, &src.password) {
        diags.error_hint(
            file,
            u.span(),
            format!("source `{name}`: `user` without `password`"),
            "add password = \"${MSSQL_PASSWORD}\"",
        );
    }
    if let (None, Some(p)) = (&src.user, &src.password) {
        diags.error_hint(
            file,
            p.span(),
            format!("source `{name}`: `password` without `user`"),
            "add user = \"...\"",
        );
    }
    let ado = ado.and_then(|(_, cs)| cs.cloned());
    if ado.is_none() && src.connection_string.is_none() && src.host.is_none() {
        diags.error_hint(
            file,
            span.clone(),
            format!("source `{name}` says neither where the server is nor how to log in"),
            "add host = \"...\", database, user and password, or an ADO.NET \
             connection_string = \"Server=tcp:host,1433;Database=...;User Id=...;Password=${VAR}\"",
        );
    }
    if src.connection_string.is_some()
        && let Some(h) = &src.host
    {
        diags.error_hint(
            file,
            h.span(),
            format!("source `{name}` gives both `connection_string` and `host`"),
            "keep one: the connection string names the server itself",
        );
    }
    let encrypt = src
        .encrypt
        .as_ref()
        .and_then(|e| match e.get_ref().as_str() {
            "required" => Some(Encrypt::Required),
            "strict" => Some(Encrypt::Strict),
            "login_only" => Some(Encrypt::LoginOnly),
            "off" => Some(Encrypt::Off),
            other => {
                diags.error_hint(
                    file,
                    e.span(),
                    format!("source `{name}`: unknown `encrypt` value `{other}`"),
                    "use required (the default), strict (TDS 8), login_only or off",
                );
                None
            }
        });
    let trust = match (&src.trust_ca_file, &src.trust_server_certificate) {
        (Some(f), Some(t)) if *t.get_ref() => {
            diags.error_hint(
                file,
                f.span(),
                format!(
                    "source `{name}`: `trust_ca_file` and `trust_server_certificate = true` \
                     contradict each other"
                ),
                "keep the CA file; trusting every certificate is for development only",
            );
            None
        }
        (Some(f), _) => Some(Trust::CaFile(base.join(f.get_ref()))),
        (None, Some(t)) if *t.get_ref() => Some(Trust::Any),
        (None, Some(_)) => Some(Trust::System),
        (None, None) => None,
    };
    let user = src.user.as_ref().and_then(|u| expand(u, "`user`", diags));
    let password = src
        .password
        .as_ref()
        .and_then(|p| expand(p, "`password`", diags))
        .map(Secret::new);
    if let Some(p) = &src.password
        && !p.get_ref().contains("${")
    {
        diags.warning(
            file,
            p.span(),
            format!("source `{name}`: the password is written in the file"),
            Some("read it from the environment: password = \"${MSSQL_PASSWORD}\"".into()),
        );
    }
    let host = src.host.as_ref().and_then(|h| expand(h, "`host`", diags));
    let database = src
        .database
        .as_ref()
        .and_then(|d| expand(d, "`database`", diags));
    MssqlTarget {
        ado,
        host,
        port: src.port.as_ref().map(|p| *p.get_ref()),
        instance: src.instance.as_ref().map(|i| i.get_ref().clone()),
        database,
        user,
        password,
        encrypt,
        trust,
        application_name: src.application_name.as_ref().map(|a| a.get_ref().clone()),
    }
}

fn compile_auth(
    file: &SourceFile,
    base: &Path,
    raw: RawAuth,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut Diagnostics,
) -> crate::auth::AuthSettings {
    let jwt = raw.jwt.map(|j| {
        let duration = |v: &Option<Spanned<String>>,
                        field: &str,
                        default: Duration,
                        diags: &mut Diagnostics| {
            v.as_ref().map_or(default, |v| {
                parse_duration(v.get_ref()).unwrap_or_else(|| {
                    diags.error_hint(
                        file,
                        v.span(),
                        format!("`auth.jwt.{field}` is not a duration"),
                        "write it like \"30s\" or \"10m\"",
                    );
                    default
                })
            })
        };
        let hs256_secret =
            j.hs256_secret
                .as_ref()
                .and_then(|s| match expand_env(s.get_ref(), env) {
                    Ok(v) if v.len() >= 32 => Some(Secret::new(v)),
                    Ok(_) => {
                        diags.error_hint(
                            file,
                            s.span(),
                            "`auth.jwt.hs256_secret` is shorter than 32 bytes",
                            "generate one: openssl rand -hex 32",
                        );
                        None
                    }
                    Err(missing) => {
                        diags.error_hint(
                            file,
                            s.span(),
                            format!("environment variable `{}` not set", missing.join("`, `")),
                            "export it before starting; never write the secret into this file",
                        );
                        None
                    }
                });
        let public_key = match (&j.public_key_file, &j.public_key_algorithm) {
            (None, None) => None,
            (Some(f), Some(a)) => {
                let alg = match a.get_ref().as_str() {
                    "RS256" => Some(jsonwebtoken::Algorithm::RS256),
                    "RS384" => Some(jsonwebtoken::Algorithm::RS384),
                    "RS512" => Some(jsonwebtoken::Algorithm::RS512),
                    "PS256" => Some(jsonwebtoken::Algorithm::PS256),
                    "ES256" => Some(jsonwebtoken::Algorithm::ES256),
                    "ES384" => Some(jsonwebtoken::Algorithm::ES384),
                    "EdDSA" => Some(jsonwebtoken::Algorithm::EdDSA),
                    other => {
                        diags.error_hint(
                            file,
                            a.span(),
                            format!("`{other}` is not a public-key algorithm"),
                            "use RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA",
                        );
                        None
                    }
                };
                alg.map(|alg| (base.join(f.get_ref()), alg))
            }
            (Some(f), None) => {
                diags.error_hint(
                    file,
                    f.span(),
                    "`public_key_file` needs `public_key_algorithm`",
                    "name the one algorithm the key verifies, e.g. \"RS256\"",
                );
                None
            }
            (None, Some(a)) => {
                diags.error(
                    file,
                    a.span(),
                    "`public_key_algorithm` without `public_key_file`",
                );
                None
            }
        };
        if let Some(u) = &j.jwks_url {
            let url = u.get_ref();
            let loopback = ["http://127.", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| url.starts_with(p));
            if !url.starts_with("https://") && !loopback {
                diags.error_hint(
                    file,
                    u.span(),
                    "`auth.jwt.jwks_url` must be an https:// URL",
                    "plain http is accepted only on loopback, for tests",
                );
            }
            if j.jwks_file.is_some() {
                diags.error(file, u.span(), "give `jwks_file` or `jwks_url`, not both");
            }
        }
        if j.hs256_secret.is_none()
            && j.public_key_file.is_none()
            && j.jwks_file.is_none()
            && j.jwks_url.is_none()
        {
            diags.file_error(
                &file.name,
                "[auth.jwt] has no key",
                Some("set hs256_secret, public_key_file, jwks_file or jwks_url".into()),
            );
        }
        crate::auth::jwt::JwtSettings {
            issuer: j.issuer,
            audience: j.audience,
            hs256_secret,
            public_key,
            jwks_file: j.jwks_file.as_ref().map(|f| base.join(f.get_ref())),
            jwks_url: j.jwks_url.clone().map(Spanned::into_inner),
            jwks_refresh: duration(
                &j.jwks_refresh,
                "jwks_refresh",
                Duration::from_mins(10),
                diags,
            ),
            leeway: duration(&j.leeway, "leeway", Duration::from_secs(30), diags),
        }
    });
    crate::auth::AuthSettings {
        jwt,
        api_keys_file: raw.api_keys_file.map(|f| base.join(f)),
        scopes_claim: raw.scopes_claim.unwrap_or_else(|| "scope".into()),
    }
}

fn compile_rate(
    file: &SourceFile,
    raw: &RawRateLimit,
    diags: &mut Diagnostics,
) -> crate::auth::RateSettings {
    let default = raw.default.as_ref().and_then(|d| {
        crate::auth::ratelimit::RateSpec::parse(d.get_ref()).or_else(|| {
            diags.error_hint(
                file,
                d.span(),
                "`rate_limit.default` is not a rate",
                "write it like \"600/minute\" (per second, minute or hour)",
            );
            None
        })
    });
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .filter_map(|p| {
            p.get_ref()
                .parse()
                .map_err(|_| {
                    diags.error(
                        file,
                        p.span(),
                        format!("`{}` is not an IP address", p.get_ref()),
                    );
                })
                .ok()
        })
        .collect();
    crate::auth::RateSettings {
        default,
        trusted_proxies,
    }
}

/// `500ms`, `5s`, `2m`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

/// Replace `${VAR}` and `${VAR:-default}`; `$${` stands for a literal `${`. On failure, the
/// names of every missing variable.
pub fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(s.len());
    let mut missing = Vec::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(literal) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(body) = after.strip_prefix("${") {
            let Some(end) = body.find('}') else {
                out.push_str(after);
                rest = "";
                break;
            };
            let inner = &body[..end];
            let (var, default) = match inner.split_once(":-") {
                Some((v, d)) => (v, Some(d)),
                None => (inner, None),
            };
            match (env(var).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => missing.push(var.to_string()),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// A connection string with password-like attributes replaced, for logs.
pub fn redact_connection_string(s: &str) -> String {
    s.split(';')
        .map(|part| match part.split_once('=') {
            Some((k, _))
                if matches!(
                    k.trim().to_ascii_lowercase().as_str(),
                    "pwd" | "password" | "passwd" | "authentication" | "accesstoken"
                ) =>
            {
                format!("{k}=***")
            }
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &str) -> Option<String> {
        match v {
            "HOST" => Some("db1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_and_defaults() {
        assert_eq!(expand_env("S=${HOST};", &env).as_deref(), Ok("S=db1;"));
        assert_eq!(expand_env("${NOPE:-x.db}", &env).as_deref(), Ok("x.db"));
        assert_eq!(expand_env("${EMPTY:-d}", &env).as_deref(), Ok("d"));
        assert_eq!(expand_env("a$${b}$c", &env).as_deref(), Ok("a${b}$c"));
        assert_eq!(
            expand_env("${A};${HOST};${B}", &env),
            Err(vec!["A".to_string(), "B".to_string()])
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_mins(2)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("5h"), None);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_connection_string("Driver={X};UID=me;PWD=s3cret;Server=h"),
            "Driver={X};UID=me;PWD=***;Server=h"
        );
        assert_eq!(format!("{:?}", Secret::new("pw")), "Secret(***)");
    }

    #[test]
    fn missing_variable_names_the_line() {
        let text = "[sources.mfg]\nkind = \"odbc\"\ndialect = \"db2i\"\nconnection_string = \"PWD=${AS400_PASSWORD}\"\n";
        let err = Config::parse(Path::new("patina.toml"), text, &env).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("patina.toml:4:21: error"), "{msg}");
        assert!(msg.contains("`AS400_PASSWORD`"), "{msg}");
        assert!(!msg.contains("PWD="), "the value is not echoed: {msg}");
    }

    #[test]
    fn reports_several_source_errors_at_once() {
        let text = "[sources.a]\nkind = \"oracle\"\ndialect = \"x\"\nconnection_string = \"y\"\n\
                    pool = { max = 0, acquire_timeout = \"soon\" }\n";
        let err = Config::parse(Path::new("p.toml"), text, &env).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown kind `oracle`"), "{msg}");
        assert!(msg.contains("unknown dialect `x`"), "{msg}");
        assert!(msg.contains("`pool.max` must be between"), "{msg}");
        assert!(
            msg.contains("`pool.acquire_timeout` is not a duration"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err = Config::parse(
            Path::new("p.toml"),
            "[server]\nlisten = \"x\"\nport = 1\n",
            &env,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("p.toml:3:1"), "{msg}");
        assert!(msg.contains("unknown field `port`"), "{msg}");
    }

    #[test]
    fn defaults() {
        let text = "[sources.d]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"Driver={SQLite3};Database=${DB:-demo.db}\"\n";
        let c = Config::parse(Path::new("conf/p.toml"), text, &env).expect("valid");
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.mappings_dir, Path::new("conf/mappings"));
        let s = &c.sources["d"];
        assert_eq!(
            s.connection_string.expose(),
            "Driver={SQLite3};Database=demo.db"
        );
        assert_eq!(s.pool_max, 4);
        assert_eq!(s.acquire_timeout, Duration::from_secs(2));
    }

    #[test]
    fn sql_server_from_fields() {
        let text = "[sources.erp]\nkind = \"mssql\"\nhost = \"${HOST}\"\nport = 1444\n\
                    database = \"ERP\"\nuser = \"svc\"\npassword = \"${PW:-x}\"\n\
                    encrypt = \"strict\"\ntrust_ca_file = \"certs/ca.pem\"\n";
        let c = Config::parse(Path::new("conf/p.toml"), text, &env).expect("valid");
        let s = &c.sources["erp"];
        assert_eq!(s.kind, SourceKind::Mssql);
        assert_eq!(s.dialect, Dialect::Mssql, "the dialect follows the kind");
        let t = s.mssql.as_ref().expect("target");
        assert_eq!(t.host.as_deref(), Some("db1"));
        assert_eq!(t.port, Some(1444));
        assert_eq!(t.password.as_ref().map(Secret::expose), Some("x"));
        assert_eq!(t.encrypt, Some(Encrypt::Strict));
        assert_eq!(
            t.trust,
            Some(Trust::CaFile(PathBuf::from("conf/certs/ca.pem")))
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn sql_server_mistakes_are_reported_together() {
        let text = "[sources.erp]\nkind = \"mssql\"\ndialect = \"postgres\"\n\
                    connection_string = \"Server=tcp:h,1433\"\nhost = \"h\"\nencrypt = \"yes\"\n\
                    trust_ca_file = \"ca.pem\"\ntrust_server_certificate = true\n\
                    [sources.old]\nkind = \"odbc\"\ndialect = \"mssql\"\nconnection_string = \"DSN=x\"\nhost = \"h\"\n\
                    [sources.none]\nkind = \"mssql\"\n";
        let msg = Config::parse(Path::new("p.toml"), text, &env)
            .unwrap_err()
            .to_string();
        for want in [
            "kind `mssql` speaks dialect `mssql` only",
            "gives both `connection_string` and `host`",
            "unknown `encrypt` value `yes`",
            "contradict each other",
            "p.toml:13:8: error: source `old`: this field is for kind = \"mssql\" only",
            "source `none` says neither where the server is nor how to log in",
            "with a `connection_string`, certificate trust is set in it",
        ] {
            assert!(msg.contains(want), "missing `{want}` in:\n{msg}");
        }
    }

    #[test]
    fn sql_server_logins_come_whole_and_strings_are_not_empty() {
        let text = "[sources.a]\nkind = \"mssql\"\nhost = \"h\"\nuser = \"svc\"\n\
                    [sources.b]\nkind = \"mssql\"\nhost = \"h\"\npassword = \"${PW:-x}\"\n\
                    [sources.c]\nkind = \"mssql\"\nconnection_string = \"${MSSQL_URL:-}\"\n\
                    [sources.d]\nkind = \"mssql\"\nconnection_string = \"${MISSING}\"\n";
        let msg = Config::parse(Path::new("p.toml"), text, &env)
            .unwrap_err()
            .to_string();
        for want in [
            "source `a`: `user` without `password`",
            "source `b`: `password` without `user`",
            "source `c`: `connection_string` is empty",
        ] {
            assert!(msg.contains(want), "missing `{want}` in:\n{msg}");
        }
        assert_eq!(
            msg.matches("`MISSING`").count(),
            1,
            "a missing variable is reported once:\n{msg}"
        );
    }

    #[test]
    fn a_password_in_the_file_is_a_warning() {
        let text = "[sources.erp]\nkind = \"mssql\"\nhost = \"h\"\nuser = \"sa\"\npassword = \"hunter2\"\n";
        let c = Config::parse(Path::new("p.toml"), text, &env).expect("valid");
        let w = c
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(w.contains("p.toml:5:12: warning"), "{w}");
        assert!(w.contains("the password is written in the file"), "{w}");
        assert!(!w.contains("hunter2"), "{w}");
    }
}
