//! The checked `[auth]` and `[rate_limit]` settings ([`AuthSettings`], [`JwtSettings`],
//! [`RateSettings`], [`RateSpec`]) and their compilation from the raw sections. The auth module
//! verifies credentials and counts requests with them; this module only says what was asked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use toml::Spanned;

use super::env::{expand_at, expand_env};
use super::raw::{RawAuth, RawRateLimit};
use super::{DURATION_UNITS, parse_duration};
use crate::diag::{Diagnostics, SourceFile};
use crate::secret::Secret;

/// Checked `[auth]` settings.
#[derive(Clone, Debug, Default)]
pub struct AuthSettings {
    pub jwt: Option<JwtSettings>,
    pub api_keys_file: Option<PathBuf>,
    /// Claim holding the scopes: a space-separated string or an array. Default `scope`.
    pub scopes_claim: String,
}

impl AuthSettings {
    /// The claim scopes are read from and written into: `scopes_claim`, else `scope` (also
    /// for settings made without a config file, whose `scopes_claim` is empty).
    pub fn scopes_claim_name(&self) -> &str {
        match self.scopes_claim.as_str() {
            "" => "scope",
            c => c,
        }
    }
}

/// Settings for JWT verification (`[auth.jwt]`).
#[derive(Clone, Debug)]
pub struct JwtSettings {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub hs256_secret: Option<Secret>,
    /// A PEM public key and the one algorithm it verifies.
    pub public_key: Option<(PathBuf, Algorithm)>,
    pub jwks_file: Option<PathBuf>,
    /// JWKS published by the identity provider (HTTPS; plain HTTP only on loopback).
    pub jwks_url: Option<String>,
    pub jwks_refresh: Duration,
    pub leeway: Duration,
}

/// Checked `[rate_limit]` settings.
#[derive(Clone, Debug, Default)]
pub struct RateSettings {
    pub default: Option<RateSpec>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// `N/second`, `N/minute` or `N/hour`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateSpec {
    pub limit: u32,
    pub window: Duration,
}

impl RateSpec {
    pub fn parse(s: &str) -> Option<Self> {
        let (n, unit) = s.trim().split_once('/')?;
        let limit: u32 = n.trim().parse().ok().filter(|n| *n > 0)?;
        let window = match unit.trim() {
            "second" | "s" => Duration::from_secs(1),
            "minute" | "min" | "m" => Duration::from_mins(1),
            "hour" | "h" => Duration::from_hours(1),
            _ => return None,
        };
        Some(Self { limit, window })
    }
}

pub(super) fn compile_auth(
    file: &SourceFile,
    base: &Path,
    raw: RawAuth,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut Diagnostics,
) -> AuthSettings {
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
                        format!("write it like \"30s\" or \"10m\" ({DURATION_UNITS})"),
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
                    "RS256" => Some(Algorithm::RS256),
                    "RS384" => Some(Algorithm::RS384),
                    "RS512" => Some(Algorithm::RS512),
                    "PS256" => Some(Algorithm::PS256),
                    "ES256" => Some(Algorithm::ES256),
                    "ES384" => Some(Algorithm::ES384),
                    "EdDSA" => Some(Algorithm::EdDSA),
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
        let jwks_url = j
            .jwks_url
            .as_ref()
            .and_then(|u| expand_at(file, u, "`auth.jwt.jwks_url`", env, diags));
        if let (Some(u), Some(url)) = (&j.jwks_url, &jwks_url) {
            let loopback = ["http://127.", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| url.starts_with(p));
            // `check` stands in for a variable it may not know: a URL that begins with one has
            // no known scheme.
            if !url.starts_with("https://") && !loopback && !super::stands_in_at_start(url) {
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
        JwtSettings {
            // Empty (`${VAR:-}` with VAR unset) is no requirement, not a required empty claim.
            issuer: j
                .issuer
                .as_ref()
                .and_then(|v| expand_at(file, v, "`auth.jwt.issuer`", env, diags))
                .filter(|v| !v.is_empty()),
            audience: j
                .audience
                .as_ref()
                .and_then(|v| expand_at(file, v, "`auth.jwt.audience`", env, diags))
                .filter(|v| !v.is_empty()),
            hs256_secret,
            public_key,
            jwks_file: j.jwks_file.as_ref().map(|f| base.join(f.get_ref())),
            jwks_url,
            jwks_refresh: duration(
                &j.jwks_refresh,
                "jwks_refresh",
                Duration::from_mins(10),
                diags,
            ),
            leeway: duration(&j.leeway, "leeway", Duration::from_secs(30), diags),
        }
    });
    AuthSettings {
        jwt,
        api_keys_file: raw.api_keys_file.map(|f| base.join(f)),
        scopes_claim: raw.scopes_claim.unwrap_or_else(|| "scope".into()),
    }
}

pub(super) fn compile_rate(
    file: &SourceFile,
    raw: &RawRateLimit,
    diags: &mut Diagnostics,
) -> RateSettings {
    let default = raw.default.as_ref().and_then(|d| {
        RateSpec::parse(d.get_ref()).or_else(|| {
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
    RateSettings {
        default,
        trusted_proxies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rate_specs() {
        assert_eq!(
            RateSpec::parse("600/minute"),
            Some(RateSpec {
                limit: 600,
                window: Duration::from_mins(1)
            })
        );
        assert_eq!(RateSpec::parse("5/second").map(|s| s.limit), Some(5));
        assert_eq!(RateSpec::parse("0/minute"), None);
        assert_eq!(RateSpec::parse("5/day"), None);
        assert_eq!(RateSpec::parse("many"), None);
    }
}
