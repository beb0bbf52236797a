//! SQL Server's own source options (`kind = "mssql"`): where the server is (fields, or an
//! ADO.NET connection string), how the connection is encrypted and which certificates it trusts.
//! Checks them together and builds the [`MssqlTarget`]; speaking TDS is the source module's
//! business.

use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use super::raw::RawMssql;
use super::source::{Expand, Place};
use crate::diag::Diagnostics;
use crate::secret::Secret;

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

/// The SQL Server options of a source: either an ADO.NET string or `host` (and friends).
/// `dialect` is the source's common option, which for this kind can only say `mssql`.
pub(super) fn compile_mssql(
    at: &Place<'_>,
    src: &RawMssql,
    dialect: Option<&Spanned<String>>,
    expand: &mut Expand<'_>,
    diags: &mut Diagnostics,
) -> MssqlTarget {
    let (file, name, span, base) = (at.file, at.name, &at.span, at.base);
    if let Some(d) = dialect
        && d.get_ref() != "mssql"
    {
        diags.error_hint(
            file,
            d.span(),
            format!("source `{name}`: kind `mssql` speaks dialect `mssql` only"),
            "remove `dialect`, or write dialect = \"mssql\"",
        );
    }
    // The ADO.NET string's place in the file, and its value once expanded (`None` when a
    // variable is missing, which is reported then).
    let ado: Option<(Range<usize>, Option<Secret>)> = src.connection_string.as_ref().map(|cs| {
        (
            cs.span(),
            expand(cs, "`connection_string`", diags).map(Secret::new),
        )
    });
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
    let ado = ado.and_then(|(_, cs)| cs);
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
