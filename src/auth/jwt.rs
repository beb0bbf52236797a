//! JWT verification: keys from the config (an HS256 secret, a PEM public key with its one
//! algorithm) and from a JWKS document (a file or an HTTPS URL, re-read on a schedule and when a
//! token names an unknown `kid`, so an identity provider can rotate keys). Each key accepts only its own
//! algorithm: never `none`, never an HMAC check with a public key. Validates `exp`, `nbf`
//! (with leeway), `iss` and `aud`.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

use crate::config::JwtSettings;

/// Verified claims.
pub type Claims = serde_json::Map<String, serde_json::Value>;

/// Why a token was refused (logged; the client hears only "invalid").
#[derive(Debug)]
pub enum JwtRejection {
    Malformed,
    UnknownKey,
    Invalid(String),
}

struct JwksState {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    /// `None` until the first successful load.
    loaded: Option<Instant>,
    /// When an unknown `kid` last caused a reload.
    unknown_reload: Option<Instant>,
}

/// A configured verifier.
pub struct JwtVerifier {
    settings: JwtSettings,
    static_keys: Vec<(Algorithm, DecodingKey)>,
    jwks: Option<RwLock<JwksState>>,
    /// One fetch at a time; concurrent requests wait for it.
    fetching: tokio::sync::Mutex<()>,
    http: Option<reqwest::Client>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.settings.issuer)
            .field("audience", &self.settings.audience)
            .field("static_keys", &self.static_keys.len())
            .finish_non_exhaustive()
    }
}

/// Least interval between two JWKS reloads caused by unknown `kid`s.
const UNKNOWN_KID_RELOAD: Duration = Duration::from_secs(10);

impl JwtVerifier {
    pub fn new(settings: JwtSettings) -> Result<Self, String> {
        let mut static_keys = Vec::new();
        if let Some(secret) = &settings.hs256_secret {
            if secret.expose().len() < 32 {
                return Err("auth.jwt.hs256_secret must be at least 32 bytes".into());
            }
            static_keys.push((
                Algorithm::HS256,
                DecodingKey::from_secret(secret.expose().as_bytes()),
            ));
        }
        if let Some((path, alg)) = &settings.public_key {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let key = match alg {
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512 => DecodingKey::from_rsa_pem(&pem),
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                _ => return Err(format!("{alg:?} is not a public-key algorithm")),
            }
            .map_err(|e| format!("{}: not a {alg:?} public key: {e}", path.display()))?;
            static_keys.push((*alg, key));
        }
        let jwks = match (&settings.jwks_file, &settings.jwks_url) {
            (Some(path), _) => Some(RwLock::new(JwksState {
                keys: parse_jwks(&read_file(path)?, &path.display().to_string())?,
                loaded: Some(Instant::now()),
                unknown_reload: None,
            })),
            // Fetched on first use: start-up does not wait for the identity provider.
            (None, Some(_)) => Some(RwLock::new(JwksState {
                keys: HashMap::new(),
                loaded: None,
                unknown_reload: None,
            })),
            (None, None) => None,
        };
        let http = match &settings.jwks_url {
            Some(_) => Some(
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .user_agent("patina")
                    .build()
                    .map_err(|e| format!("HTTP client for jwks_url: {e}"))?,
            ),
            None => None,
        };
        Ok(Self {
            settings,
            static_keys,
            jwks,
            fetching: tokio::sync::Mutex::new(()),
            http,
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.settings.leeway.as_secs();
        v.validate_nbf = true;
        v.validate_exp = true;
        let mut required = vec!["exp"];
        if let Some(iss) = &self.settings.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        match &self.settings.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        v
    }

    /// Verify a compact JWT and return its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, JwtRejection> {
        let header = decode_header(token).map_err(|_| JwtRejection::Malformed)?;
        let key = match (&header.kid, &self.jwks) {
            (Some(kid), Some(jwks)) => self.jwks_key(jwks, kid).await?,
            _ => self
                .static_keys
                .iter()
                .find(|(alg, _)| *alg == header.alg)
                .map(|(alg, k)| (*alg, k.clone()))
                .ok_or(JwtRejection::UnknownKey)?,
        };
        if key.0 != header.alg {
            return Err(JwtRejection::Invalid(format!(
                "token says {:?}, its key is {:?}",
                header.alg, key.0
            )));
        }
        decode::<Claims>(token, &key.1, &self.validation(key.0))
            .map(|d| d.claims)
            .map_err(|e| JwtRejection::Invalid(e.to_string()))
    }

    async fn jwks_key(
        &self,
        jwks: &RwLock<JwksState>,
        kid: &str,
    ) -> Result<(Algorithm, DecodingKey), JwtRejection> {
        let (found, stale, may_reload) = {
            let state = jwks.read().map_err(|_| JwtRejection::UnknownKey)?;
            (
                state.keys.get(kid).cloned(),
                state
                    .loaded
                    .is_none_or(|l| l.elapsed() > self.settings.jwks_refresh),
                state
                    .unknown_reload
                    .is_none_or(|t| t.elapsed() > UNKNOWN_KID_RELOAD),
            )
        };
        match found {
            Some(k) if !stale => Ok(k),
            found => {
                // Reload on schedule, or for an unknown kid (at most every few seconds, so
                // made-up kids cannot hammer the key source).
                if stale || (found.is_none() && may_reload) {
                    if found.is_none()
                        && !stale
                        && let Ok(mut s) = jwks.write()
                    {
                        s.unknown_reload = Some(Instant::now());
                    }
                    self.reload_jwks(jwks).await;
                }
                let state = jwks.read().map_err(|_| JwtRejection::UnknownKey)?;
                state
                    .keys
                    .get(kid)
                    .cloned()
                    .or(found)
                    .ok_or(JwtRejection::UnknownKey)
            }
        }
    }

    async fn reload_jwks(&self, jwks: &RwLock<JwksState>) {
        let _one_at_a_time = self.fetching.lock().await;
        let result = match (
            &self.settings.jwks_file,
            &self.settings.jwks_url,
            &self.http,
        ) {
            (Some(path), _, _) => {
                read_file(path).and_then(|t| parse_jwks(&t, &path.display().to_string()))
            }
            (None, Some(url), Some(client)) => {
                fetch(client, url).await.and_then(|t| parse_jwks(&t, url))
            }
            _ => return,
        };
        let Ok(mut state) = jwks.write() else { return };
        state.loaded = Some(Instant::now());
        match result {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "JWKS reloaded");
                state.keys = keys;
            }
            Err(e) => tracing::error!(error = %e, "JWKS reload failed; keeping the last good keys"),
        }
    }
}

fn jwk_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    if let Some(a) = jwk.common.key_algorithm {
        return match a {
            KeyAlgorithm::RS256 => Some(Algorithm::RS256),
            KeyAlgorithm::RS384 => Some(Algorithm::RS384),
            KeyAlgorithm::RS512 => Some(Algorithm::RS512),
            KeyAlgorithm::PS256 => Some(Algorithm::PS256),
            KeyAlgorithm::PS384 => Some(Algorithm::PS384),
            KeyAlgorithm::PS512 => Some(Algorithm::PS512),
            KeyAlgorithm::ES256 => Some(Algorithm::ES256),
            KeyAlgorithm::ES384 => Some(Algorithm::ES384),
            KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
            // Symmetric keys have no place in a published key set.
            _ => None,
        };
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        _ => None,
    }
}

fn read_file(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let res = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !res.status().is_success() {
        return Err(format!("{url}: HTTP {}", res.status()));
    }
    res.text().await.map_err(|e| format!("{url}: {e}"))
}

fn parse_jwks(text: &str, from: &str) -> Result<HashMap<String, (Algorithm, DecodingKey)>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("{from}: not a JWKS: {e}"))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let (Some(kid), Some(alg)) = (&jwk.common.key_id, jwk_algorithm(jwk)) else {
            tracing::warn!("JWKS key without kid or with an unusable algorithm skipped");
            continue;
        };
        match DecodingKey::from_jwk(jwk) {
            Ok(k) => {
                keys.insert(kid.clone(), (alg, k));
            }
            Err(e) => tracing::warn!(kid = %kid, error = %e, "JWKS key skipped"),
        }
    }
    Ok(keys)
}

/// Sign a development token with an HS256 secret (`patina token`).
pub fn mint_hs256(secret: &str, claims: &Claims) -> Result<String, String> {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}
