//! Who is calling and what they may do: credentials (a Bearer JWT or an `X-API-Key`) become an
//! [`Identity`] with scopes and claims; routes demand scopes; rate limits apply per identity.
//! Failures are reported as "invalid" without saying which part failed; the log has the reason.

pub mod jwt;
pub mod keys;
pub mod ratelimit;

use jwt::{Claims, JwtVerifier};
use keys::KeyStore;

use crate::config::{AuthSettings, RateSpec};

/// The caller, once credentials are verified.
#[derive(Clone, Debug, PartialEq)]
pub enum Identity {
    Anonymous,
    User {
        subject: String,
        scopes: Vec<String>,
        claims: Claims,
    },
    Key {
        id: String,
        scopes: Vec<String>,
        rate: Option<RateSpec>,
        claims: Claims,
    },
}

impl Identity {
    pub fn scopes(&self) -> &[String] {
        match self {
            Identity::Anonymous => &[],
            Identity::User { scopes, .. } | Identity::Key { scopes, .. } => scopes,
        }
    }

    /// For logs and audit: never the token or the key.
    pub fn label(&self) -> String {
        match self {
            Identity::Anonymous => "anonymous".into(),
            Identity::User { subject, .. } => format!("sub:{subject}"),
            Identity::Key { id, .. } => format!("key:{id}"),
        }
    }

    /// A claim as text, for claim-bound parameters.
    pub fn claim(&self, name: &str) -> Option<String> {
        let claims = match self {
            Identity::Anonymous => return None,
            Identity::User { claims, .. } | Identity::Key { claims, .. } => claims,
        };
        match claims.get(name)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        !matches!(self, Identity::Anonymous)
    }
}

/// Why credentials were refused; only the log sees the detail.
#[derive(Debug)]
pub struct Rejected {
    pub scheme: &'static str,
    pub reason: String,
}

/// Verifies credentials.
#[derive(Debug, Default)]
pub struct Authenticator {
    jwt: Option<JwtVerifier>,
    keys: Option<KeyStore>,
    scopes_claim: String,
}

impl Authenticator {
    pub fn new(settings: &AuthSettings) -> Result<Self, String> {
        Ok(Self {
            jwt: settings.jwt.clone().map(JwtVerifier::new).transpose()?,
            keys: settings
                .api_keys_file
                .clone()
                .map(KeyStore::open)
                .transpose()?,
            scopes_claim: settings.scopes_claim_name().to_string(),
        })
    }

    /// Whether any credential can be verified at all.
    pub fn enabled(&self) -> bool {
        self.jwt.is_some() || self.keys.is_some()
    }

    pub fn jwt_enabled(&self) -> bool {
        self.jwt.is_some()
    }

    pub fn keys_enabled(&self) -> bool {
        self.keys.is_some()
    }

    /// The identity behind the request's credentials; no credentials is `Anonymous`.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        api_key: Option<&str>,
    ) -> Result<Identity, Rejected> {
        if let Some(auth) = authorization {
            let (scheme, token) = auth.trim().split_once(' ').unwrap_or((auth, ""));
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(Rejected {
                    scheme: "Bearer",
                    reason: "Authorization is not `Bearer <token>`".into(),
                });
            }
            let Some(jwt) = &self.jwt else {
                return Err(Rejected {
                    scheme: "Bearer",
                    reason: "no JWT verification is configured".into(),
                });
            };
            let claims = jwt.verify(token.trim()).await.map_err(|e| Rejected {
                scheme: "Bearer",
                reason: format!("{e:?}"),
            })?;
            let subject = claims
                .get("sub")
                .and_then(|s| s.as_str())
                .unwrap_or("")
                .to_string();
            let scopes = scopes_of(claims.get(&self.scopes_claim));
            return Ok(Identity::User {
                subject,
                scopes,
                claims,
            });
        }
        if let Some(key) = api_key {
            let Some(store) = &self.keys else {
                return Err(Rejected {
                    scheme: "ApiKey",
                    reason: "no API keys file is configured".into(),
                });
            };
            let stored = store.verify(key.trim()).map_err(|e| Rejected {
                scheme: "ApiKey",
                reason: format!("{e:?}"),
            })?;
            let claims = serde_json::to_value(&stored.claims)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            return Ok(Identity::Key {
                id: stored.id,
                scopes: stored.scopes,
                rate: stored.rate.as_deref().and_then(RateSpec::parse),
                claims,
            });
        }
        Ok(Identity::Anonymous)
    }
}

fn scopes_of(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_from_string_or_array() {
        assert_eq!(scopes_of(Some(&json!("a b  c"))), ["a", "b", "c"]);
        assert_eq!(scopes_of(Some(&json!(["a", 1, "b"]))), ["a", "b"]);
        assert!(scopes_of(Some(&json!(3))).is_empty());
    }

    #[tokio::test]
    async fn no_credentials_is_anonymous_and_bad_schemes_are_refused() {
        let a = Authenticator::default();
        assert_eq!(
            a.authenticate(None, None).await.ok(),
            Some(Identity::Anonymous)
        );
        assert!(a.authenticate(Some("Basic abc"), None).await.is_err());
        assert!(
            a.authenticate(Some("Bearer x.y.z"), None).await.is_err(),
            "no verifier configured"
        );
        assert!(a.authenticate(None, Some("pat_x")).await.is_err());
    }
}
