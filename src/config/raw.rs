//! The raw form of `patina.toml`, as written: one serde struct per section, and the reader that
//! parses the document once into a spanned table and then deserializes each section (and each
//! source) on its own, so that every mistake in the file is reported in one run, each with its
//! place. Sources are a tagged form: the `kind` key picks the options a source may take, and an
//! option of the other kind is reported as such. Checking values (durations, ranges, paths) and
//! building the typed config is left to the sibling modules.

use std::ops::Range;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::schema::{BackendName, DialectName, EncryptName, OnInvalidName, UnreachableName};
use super::source::SourceKind;
use crate::diag::{Diagnostics, SourceFile};

/// `[server]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0 picks a free port).
    #[schemars(with = "Option<String>")]
    pub listen: Option<Spanned<String>>,
    /// Folder holding one sub-folder per API version (`v1/`, `v2/`) of mapping files; relative
    /// to the config file. Default `mappings`.
    #[schemars(with = "Option<String>")]
    pub mappings: Option<Spanned<String>>,
    /// Upper bound on rows a list route returns when the route sets none. Default 1000.
    #[schemars(with = "Option<usize>")]
    pub max_rows: Option<Spanned<usize>>,
    /// Browser origins allowed to call the API (CORS), e.g. `https://dash.example.com`.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Terminate TLS here: PEM certificate chain and private key, relative to this file.
    pub tls: Option<RawTls>,
    /// Largest request body accepted, in bytes; beyond, 413. Default 1048576 (1 MiB).
    #[schemars(with = "Option<usize>")]
    pub max_body_bytes: Option<Spanned<usize>>,
    /// What a stored value no codec can decode becomes, unless its source or column says:
    /// `error` (the request fails with 500, the default), `null` or `raw` (the stored text).
    #[schemars(with = "Option<OnInvalidName>")]
    pub on_invalid: Option<Spanned<String>>,
    /// The secret page cursors are signed with (32 bytes or more; use `${VAR}`). Default: a
    /// random key kept in the state folder (`cursor.key`). Replicas need one shared key.
    #[schemars(with = "Option<String>")]
    pub cursor_key: Option<Spanned<String>>,
}

/// `[server.tls]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub cert_file: String,
    pub key_file: String,
}

/// `[sources.NAME.pool]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPool {
    /// Connections for this source (for ODBC, one worker thread each). Default 4.
    #[schemars(with = "Option<usize>")]
    pub max: Option<Spanned<usize>>,
    /// How long a request waits for a free connection before 503. Default `2s`.
    #[schemars(with = "Option<String>")]
    pub acquire_timeout: Option<Spanned<String>>,
    /// Statements running at once, at most (at most `max`; default `max`): protects the
    /// database from the gateway.
    #[schemars(with = "Option<usize>")]
    pub max_concurrent: Option<Spanned<usize>>,
    /// Requests that may wait for a connection; beyond, 503 at once. Default 64.
    #[schemars(with = "Option<usize>")]
    pub max_waiting: Option<Spanned<usize>>,
    /// Consecutive connection failures that open the circuit breaker. Default 5.
    #[schemars(with = "Option<u32>")]
    pub breaker_failures: Option<Spanned<u32>>,
    /// How long the open breaker fails fast before probing again (doubles, with jitter, while
    /// the source stays down; at most 60s). Default `2s`.
    #[schemars(with = "Option<String>")]
    pub breaker_cooldown: Option<Spanned<String>>,
}

/// The options of `[sources.NAME]` that every kind takes.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCommon {
    /// `db2i`, `mssql`, `postgres` or `sqlite`.
    #[schemars(with = "Option<DialectName>")]
    pub dialect: Option<Spanned<String>>,
    pub pool: Option<RawPool>,
    /// Longest a statement may run before the driver cancels it (e.g. `5s`).
    #[schemars(with = "Option<String>")]
    pub statement_timeout: Option<Spanned<String>>,
    /// Longest a login may take. Default `5s`.
    #[schemars(with = "Option<String>")]
    pub login_timeout: Option<Spanned<String>>,
    /// Largest text value fetched, in bytes. Default 65536.
    #[schemars(with = "Option<usize>")]
    pub max_text_bytes: Option<Spanned<usize>>,
    /// What a stored value no codec can decode becomes on this source's routes, unless a
    /// column says: `error`, `null` or `raw`. Default: `[server] on_invalid`.
    #[schemars(with = "Option<OnInvalidName>")]
    pub on_invalid: Option<Spanned<String>>,
}

/// The options of a `kind = "odbc"` source (any ODBC driver).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOdbc {
    /// ODBC connection string; `${VAR}` is read from the environment.
    #[schemars(with = "Option<String>")]
    pub connection_string: Option<Spanned<String>>,
}

/// The options of a `kind = "mssql"` source (SQL Server's native protocol): these fields, or an
/// ADO.NET-style `connection_string`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMssql {
    /// ADO.NET connection string (`Server=tcp:host,1433;Database=...`).
    #[schemars(with = "Option<String>")]
    pub connection_string: Option<Spanned<String>>,
    /// Server host name or address.
    #[schemars(with = "Option<String>")]
    pub host: Option<Spanned<String>>,
    /// TCP port. Default 1433, or what the SQL Browser reports for `instance`.
    #[schemars(with = "Option<u16>")]
    pub port: Option<Spanned<u16>>,
    /// Named instance (`SQLEXPRESS`); its port is asked from the SQL Browser (UDP 1434).
    #[schemars(with = "Option<String>")]
    pub instance: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub database: Option<Spanned<String>>,
    /// SQL login; `${VAR}` is read from the environment.
    #[schemars(with = "Option<String>")]
    pub user: Option<Spanned<String>>,
    /// `${VAR}` is read from the environment; never write the password into the file.
    #[schemars(with = "Option<String>")]
    pub password: Option<Spanned<String>>,
    /// `required` (default), `strict` (TDS 8, TLS before login), `login_only` or `off`.
    #[schemars(with = "Option<EncryptName>")]
    pub encrypt: Option<Spanned<String>>,
    /// PEM file of the CA (or the certificate itself) that signed the server's certificate.
    #[schemars(with = "Option<String>")]
    pub trust_ca_file: Option<Spanned<String>>,
    /// Accept any server certificate: for development only.
    #[schemars(with = "Option<bool>")]
    pub trust_server_certificate: Option<Spanned<bool>>,
    /// Shown in the server's session list. Default `patina`.
    #[schemars(with = "Option<String>")]
    pub application_name: Option<Spanned<String>>,
}

/// Option names of `[sources.NAME]`, by who takes them (besides `kind`).
pub(super) const COMMON_OPTIONS: &[&str] = &[
    "dialect",
    "pool",
    "statement_timeout",
    "login_timeout",
    "max_text_bytes",
    "on_invalid",
];
pub(super) const ODBC_OPTIONS: &[&str] = &["connection_string"];
pub(super) const MSSQL_OPTIONS: &[&str] = &[
    "connection_string",
    "host",
    "port",
    "instance",
    "database",
    "user",
    "password",
    "encrypt",
    "trust_ca_file",
    "trust_server_certificate",
    "application_name",
];

/// The options only one kind of source takes.
#[derive(Debug)]
pub(super) enum RawKindOptions {
    Odbc(RawOdbc),
    Mssql(Box<RawMssql>),
}

/// `[sources.NAME]`: tagged by `kind`.
#[derive(Debug)]
pub(super) struct RawSource {
    /// Where the source's table is, for findings about it as a whole.
    pub span: Range<usize>,
    /// `None` when `kind` is missing or unknown (reported already).
    pub kind: Option<SourceKind>,
    pub common: RawCommon,
    /// `None` when the kind is unknown or its options did not deserialize (reported already).
    pub options: Option<RawKindOptions>,
}

/// `[docs]`: the generated OpenAPI documents.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDocs {
    /// Title of every version's document (the version is appended).
    pub title: Option<String>,
    /// Introduction shown at the top of Swagger UI (Markdown).
    pub description: Option<String>,
    /// The folder of the published documents (`<version>.json`), relative to this file;
    /// `patina check` refuses breaking changes to them. Default `openapi`.
    pub published: Option<String>,
}

/// `[auth.jwt]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJwt {
    /// Required `iss`.
    #[schemars(with = "Option<String>")]
    pub issuer: Option<Spanned<String>>,
    /// Required `aud`.
    #[schemars(with = "Option<String>")]
    pub audience: Option<Spanned<String>>,
    /// Shared secret for HS256 tokens (at least 32 bytes); use `${VAR}`.
    #[schemars(with = "Option<String>")]
    pub hs256_secret: Option<Spanned<String>>,
    /// PEM public key of the identity provider, relative to this file.
    #[schemars(with = "Option<String>")]
    pub public_key_file: Option<Spanned<String>>,
    /// The one algorithm that key verifies: RS256, RS384, RS512, PS256, ES256, ES384, EdDSA.
    #[schemars(with = "Option<String>")]
    pub public_key_algorithm: Option<Spanned<String>>,
    /// JWKS document (a file), re-read on schedule and when a token names an unknown key.
    #[schemars(with = "Option<String>")]
    pub jwks_file: Option<Spanned<String>>,
    /// JWKS URL of the identity provider (HTTPS), fetched likewise.
    #[schemars(with = "Option<String>")]
    pub jwks_url: Option<Spanned<String>>,
    /// How often the JWKS is re-read. Default `10m`.
    #[schemars(with = "Option<String>")]
    pub jwks_refresh: Option<Spanned<String>>,
    /// Clock skew allowed on `exp` and `nbf`. Default `30s`.
    #[schemars(with = "Option<String>")]
    pub leeway: Option<Spanned<String>>,
}

/// `[auth]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub jwt: Option<RawJwt>,
    /// Hashed API keys (see `patina keys`), relative to this file.
    pub api_keys_file: Option<String>,
    /// Claim holding the caller's scopes. Default `scope`.
    pub scopes_claim: Option<String>,
}

/// `[rate_limit]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    /// Per identity across all routes, e.g. `600/minute`.
    #[schemars(with = "Option<String>")]
    pub default: Option<Spanned<String>>,
    /// Proxies whose `X-Forwarded-For` names the client.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub trusted_proxies: Vec<Spanned<String>>,
}

/// `[audit]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    /// JSON-lines file; without it, records go to the log under the `audit` target.
    pub file: Option<String>,
}

/// `[state]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    /// Folder of the embedded store (idempotency keys), relative to this file. Default `data`.
    pub dir: Option<String>,
    /// How long the first answer to an `Idempotency-Key` is kept for replays. Default `24h`.
    #[schemars(with = "Option<String>")]
    pub idempotency_ttl: Option<Spanned<String>>,
    /// `embedded` (default: the store file in `dir`) or `redis` (shared by every replica).
    #[schemars(with = "Option<BackendName>")]
    pub backend: Option<Spanned<String>>,
    /// `redis://` or `rediss://` (TLS) URL, password included; use `${VAR}`.
    #[schemars(with = "Option<String>")]
    pub redis_url: Option<Spanned<String>>,
    /// What rate limits do while Redis cannot be reached: `open` (let requests through) or
    /// `closed` (answer 503). Default `open`.
    #[schemars(with = "Option<UnreachableName>")]
    pub redis_unreachable: Option<Spanned<String>>,
}

/// `[queue]`: the write queue of `delivery = "queued"` routes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueue {
    /// Most deliveries waiting at once; beyond it writes are refused with 503. Default 100000.
    #[schemars(with = "Option<usize>")]
    pub max_pending: Option<Spanned<usize>>,
    /// Deliveries running at once. Default 8.
    #[schemars(with = "Option<usize>")]
    pub concurrency: Option<Spanned<usize>>,
    /// How long a delivery taken by one gateway is held for it (Redis: then another replica
    /// may take it). Default `2m`.
    #[schemars(with = "Option<String>")]
    pub lease: Option<Spanned<String>>,
    /// How long a delivered write's status stays readable. Default `168h` (a week).
    #[schemars(with = "Option<String>")]
    pub keep_delivered: Option<Spanned<String>>,
}

/// `[bridge]`: the migration bridge (routes with a `shadow`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBridge {
    /// The log of shadow comparisons (JSON lines), relative to this file. Default
    /// `bridge.jsonl` in the state folder.
    pub log: Option<String>,
}

/// The whole file. A section that did not deserialize is `None` (its mistakes are reported).
#[derive(Debug, Default)]
pub(super) struct RawConfig {
    pub server: Option<RawServer>,
    pub docs: Option<RawDocs>,
    pub auth: Option<RawAuth>,
    pub rate_limit: Option<RawRateLimit>,
    pub audit: Option<RawAudit>,
    pub state: Option<RawState>,
    pub queue: Option<RawQueue>,
    pub bridge: Option<RawBridge>,
    pub sources: IndexMap<String, RawSource>,
}

const SECTIONS: &str = "server, docs, auth, rate_limit, audit, state, queue, bridge, sources";

impl RawConfig {
    /// Read the document, reporting every mistake found in it. `None` when the text is not
    /// TOML at all (each syntax error is reported); otherwise what could be read.
    pub fn read(file: &SourceFile, diags: &mut Diagnostics) -> Option<RawConfig> {
        let (root, syntax) = DeTable::parse_recoverable(&file.text);
        if !syntax.is_empty() {
            for e in syntax {
                report(file, "", &e, 0..0, diags);
            }
            return None;
        }
        let mut raw = RawConfig::default();
        for (key, value) in root.into_inner() {
            let section_name: &str = key.get_ref();
            match section_name {
                "server" => raw.server = section(file, value, diags),
                "docs" => raw.docs = section(file, value, diags),
                "auth" => raw.auth = section(file, value, diags),
                "rate_limit" => raw.rate_limit = section(file, value, diags),
                "audit" => raw.audit = section(file, value, diags),
                "state" => raw.state = section(file, value, diags),
                "queue" => raw.queue = section(file, value, diags),
                "bridge" => raw.bridge = section(file, value, diags),
                "sources" => raw.sources = sources(file, value, diags),
                other => diags.error_hint(
                    file,
                    key.span(),
                    format!("unknown section `{other}`"),
                    format!("the sections are: {SECTIONS}"),
                ),
            }
        }
        Some(raw)
    }
}

/// Report a TOML error at its own place, or at `fallback` when it has none; `context` (such as
/// "source `erp`: ") goes before the message.
fn report(
    file: &SourceFile,
    context: &str,
    e: &toml::de::Error,
    fallback: Range<usize>,
    diags: &mut Diagnostics,
) {
    diags.error(
        file,
        e.span().unwrap_or(fallback),
        format!("{context}{}", e.message().trim()),
    );
}

/// Deserialize one value of the document; on failure, report why and where.
fn section<T: DeserializeOwned>(
    file: &SourceFile,
    value: Spanned<DeValue<'_>>,
    diags: &mut Diagnostics,
) -> Option<T> {
    in_context(file, "", value, diags)
}

/// [`section`], with `context` before the message of a failure.
fn in_context<T: DeserializeOwned>(
    file: &SourceFile,
    context: &str,
    value: Spanned<DeValue<'_>>,
    diags: &mut Diagnostics,
) -> Option<T> {
    let span = value.span();
    T::deserialize(ValueDeserializer::from(value))
        .map_err(|e| report(file, context, &e, span, diags))
        .ok()
}

/// `[sources]`: each source on its own.
fn sources(
    file: &SourceFile,
    value: Spanned<DeValue<'_>>,
    diags: &mut Diagnostics,
) -> IndexMap<String, RawSource> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        diags.error_hint(
            file,
            span,
            "`sources` is not a table",
            "name each source: [sources.NAME]",
        );
        return IndexMap::new();
    };
    let mut out = IndexMap::new();
    for (name, value) in table {
        let name = name.into_inner().into_owned();
        if let Some(s) = source(file, &name, value, diags) {
            out.insert(name, s);
        }
    }
    out
}

const KIND_HINT: &str = "use kind = \"odbc\" (any ODBC driver) or \"mssql\" (SQL Server)";

/// One `[sources.NAME]`: dispatch on `kind`, sort its options into the common ones and the
/// kind's own, and report the options no source takes or only the other kind takes.
fn source(
    file: &SourceFile,
    name: &str,
    value: Spanned<DeValue<'_>>,
    diags: &mut Diagnostics,
) -> Option<RawSource> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        diags.error_hint(
            file,
            span,
            format!("source `{name}` is not a table"),
            format!("write it as [sources.{name}] with kind = \"odbc\" or \"mssql\""),
        );
        return None;
    };
    let mut kind = None;
    let mut common = DeTable::new();
    let mut own = DeTable::new();
    let mut kind_entry = None;
    let mut rest = Vec::new();
    for (key, value) in table {
        let option: &str = key.get_ref();
        if option == "kind" {
            kind_entry = Some(value);
        } else if COMMON_OPTIONS.contains(&option) {
            common.insert(key, value);
        } else {
            rest.push((key, value));
        }
    }
    match kind_entry {
        None => diags.error_hint(
            file,
            span.clone(),
            format!("source `{name}` has no `kind`"),
            KIND_HINT,
        ),
        Some(v) => match v.get_ref().as_str() {
            Some("odbc") => kind = Some(SourceKind::Odbc),
            Some("mssql") => kind = Some(SourceKind::Mssql),
            Some(other) => diags.error_hint(
                file,
                v.span(),
                format!("source `{name}`: unknown kind `{other}`"),
                KIND_HINT,
            ),
            None => diags.error_hint(
                file,
                v.span(),
                format!("source `{name}`: `kind` is not a string"),
                KIND_HINT,
            ),
        },
    }
    for (key, value) in rest {
        let option: &str = key.get_ref();
        let (own_options, other_options, other) = match kind {
            Some(SourceKind::Odbc) => (ODBC_OPTIONS, MSSQL_OPTIONS, SourceKind::Mssql),
            Some(SourceKind::Mssql) => (MSSQL_OPTIONS, ODBC_OPTIONS, SourceKind::Odbc),
            // An unknown kind: only options no kind takes can be judged.
            None => {
                if !ODBC_OPTIONS.contains(&option) && !MSSQL_OPTIONS.contains(&option) {
                    unknown_option(file, name, &key, None, diags);
                }
                continue;
            }
        };
        if own_options.contains(&option) {
            own.insert(key, value);
        } else if other_options.contains(&option) {
            let this = kind.map_or("", SourceKind::name);
            diags.error_hint(
                file,
                key.span(),
                format!(
                    "source `{name}`: `{option}` is not an option of kind = \"{this}\" sources"
                ),
                format!(
                    "`{option}` is an option of kind = \"{}\" sources; this source is \
                     kind = \"{this}\"",
                    other.name()
                ),
            );
        } else {
            unknown_option(file, name, &key, kind, diags);
        }
    }
    let context = format!("source `{name}`: ");
    let common = Spanned::new(span.clone(), DeValue::Table(common));
    let common: Option<RawCommon> = in_context(file, &context, common, diags);
    let own = Spanned::new(span.clone(), DeValue::Table(own));
    let options = match kind {
        Some(SourceKind::Odbc) => in_context(file, &context, own, diags).map(RawKindOptions::Odbc),
        Some(SourceKind::Mssql) => {
            in_context(file, &context, own, diags).map(|m| RawKindOptions::Mssql(Box::new(m)))
        }
        None => None,
    };
    Some(RawSource {
        span,
        kind,
        common: common?,
        options,
    })
}

fn unknown_option(
    file: &SourceFile,
    name: &str,
    key: &Spanned<std::borrow::Cow<'_, str>>,
    kind: Option<SourceKind>,
    diags: &mut Diagnostics,
) {
    let hint = match kind {
        Some(k) => {
            let own = match k {
                SourceKind::Odbc => ODBC_OPTIONS,
                SourceKind::Mssql => MSSQL_OPTIONS,
            };
            format!(
                "a kind = \"{}\" source takes: kind, {}, {}",
                k.name(),
                own.join(", "),
                COMMON_OPTIONS.join(", ")
            )
        }
        None => format!(
            "a source takes kind, {}, and the options of its kind",
            COMMON_OPTIONS.join(", ")
        ),
    };
    diags.error_hint(
        file,
        key.span(),
        format!("source `{name}`: unknown field `{}`", key.get_ref()),
        hint,
    );
}
