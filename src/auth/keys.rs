//! API keys for machine clients: minting (the key is shown once; only its SHA-256 is stored),
//! the keys file (TOML, one `[[key]]` per key), lookup by id with a constant-time hash
//! comparison, expiry and revocation that take effect without a restart (the file is re-read
//! when it changes). Knows nothing of HTTP.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::{now_rfc3339, today};

/// Every key starts with this, so leaked keys are easy to find in code and logs.
pub const KEY_PREFIX: &str = "pat_";

/// One stored key (never the key itself).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoredKey {
    /// Public id, also embedded in the key: `pat_<id>_<secret>`.
    pub id: String,
    /// Who or what holds it.
    pub name: String,
    /// `sha256:<hex>` of the whole key.
    pub hash: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Last valid day, `YYYY-MM-DD` (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Rate limit for this key, e.g. `60/minute`; overrides the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// Claims made available to `from_claim` parameters, as a token would carry them.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub claims: toml::Table,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    #[serde(default, rename = "key")]
    pub keys: Vec<StoredKey>,
}

impl KeysFile {
    pub fn read(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Write atomically (a temporary file renamed over the old one).
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = format!(
            "# Patina API keys: only SHA-256 hashes are stored. Manage with `patina keys`.\n\n{}",
            toml::to_string(self).map_err(|e| e.to_string())?
        );
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

fn hash(key: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// A new key and its stored form. 160 random bits of secret.
pub fn mint(
    name: &str,
    scopes: Vec<String>,
    expires: Option<String>,
    rate: Option<String>,
) -> (String, StoredKey) {
    let mut rng = rand::rng();
    let mut id = [0u8; 4];
    let mut secret = [0u8; 20];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id = hex::encode(id);
    let key = format!("{KEY_PREFIX}{id}_{}", hex::encode(secret));
    let stored = StoredKey {
        id: id.clone(),
        name: name.to_string(),
        hash: hash(&key),
        scopes,
        expires,
        rate,
        claims: toml::Table::new(),
        created: now_rfc3339(),
        revoked: None,
    };
    (key, stored)
}

/// Why a presented key was refused (logged; the client only hears "invalid").
#[derive(Debug, PartialEq, Eq)]
pub enum KeyRejection {
    Malformed,
    Unknown,
    Revoked,
    Expired,
    StoreUnreadable,
}

/// The keys file, re-read when it changes.
#[derive(Debug)]
pub struct KeyStore {
    path: PathBuf,
    state: Mutex<StoreState>,
}

#[derive(Debug)]
struct StoreState {
    keys: Vec<StoredKey>,
    modified: Option<SystemTime>,
    checked: Option<Instant>,
    error: Option<String>,
}

/// How often the file's modification time is looked at.
const RECHECK: Duration = Duration::from_millis(500);

impl KeyStore {
    pub fn open(path: PathBuf) -> Result<Self, String> {
        let file = KeysFile::read(&path)?;
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        Ok(Self {
            path,
            state: Mutex::new(StoreState {
                keys: file.keys,
                modified,
                checked: Some(Instant::now()),
                error: None,
            }),
        })
    }

    /// Find the key, checking hash (in constant time), revocation and expiry.
    pub fn verify(&self, presented: &str) -> Result<StoredKey, KeyRejection> {
        let rest = presented
            .strip_prefix(KEY_PREFIX)
            .ok_or(KeyRejection::Malformed)?;
        let (id, secret) = rest.split_once('_').ok_or(KeyRejection::Malformed)?;
        if id.len() != 8 || secret.len() != 40 {
            return Err(KeyRejection::Malformed);
        }
        let mut state = self
            .state
            .lock()
            .map_err(|_| KeyRejection::StoreUnreadable)?;
        self.refresh(&mut state, false);
        if !state.keys.iter().any(|k| k.id == id) {
            // A key minted a moment ago: look at the file now (a stat, and a read only if
            // it changed).
            self.refresh(&mut state, true);
        }
        if state.error.is_some() && state.keys.is_empty() {
            return Err(KeyRejection::StoreUnreadable);
        }
        let key = state
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(KeyRejection::Unknown)?;
        let given = hash(presented);
        if !bool::from(given.as_bytes().ct_eq(key.hash.as_bytes())) {
            return Err(KeyRejection::Unknown);
        }
        if key.revoked.is_some() {
            return Err(KeyRejection::Revoked);
        }
        if key.expires.as_deref().is_some_and(|e| e < today().as_str()) {
            return Err(KeyRejection::Expired);
        }
        Ok(key.clone())
    }

    fn refresh(&self, state: &mut StoreState, now: bool) {
        if !now && state.checked.is_some_and(|c| c.elapsed() < RECHECK) {
            return;
        }
        state.checked = Some(Instant::now());
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if modified == state.modified && state.error.is_none() {
            return;
        }
        match KeysFile::read(&self.path) {
            Ok(f) => {
                state.keys = f.keys;
                state.modified = modified;
                state.error = None;
                tracing::info!(file = %self.path.display(), keys = state.keys.len(), "API keys reloaded");
            }
            Err(e) => {
                // Keep the last good keys, minus nothing: a broken file must not lock out
                // everyone, but it is logged loudly.
                tracing::error!(error = %e, "API keys file unreadable; keeping the last good keys");
                state.error = Some(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_verify_revoke_expire() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keys.toml");
        let (key, stored) = mint(
            "bi",
            vec!["jobs:read".into()],
            None,
            Some("60/minute".into()),
        );
        assert!(key.starts_with("pat_") && key.len() == 4 + 8 + 1 + 40);
        assert!(
            KeysFile {
                keys: vec![stored.clone()]
            }
            .write(&path)
            .is_ok()
        );
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains(&key[13..]), "the secret is not stored");
        let store = KeyStore::open(path.clone()).expect("open");
        assert_eq!(store.verify(&key).map(|k| k.name), Ok("bi".to_string()));
        let mut wrong = key.clone();
        wrong.pop();
        wrong.push(if key.ends_with('0') { '1' } else { '0' });
        assert_eq!(store.verify(&wrong), Err(KeyRejection::Unknown));
        assert_eq!(store.verify("pat_x"), Err(KeyRejection::Malformed));
        assert_eq!(store.verify("Bearer abc"), Err(KeyRejection::Malformed));

        let mut revoked = stored.clone();
        revoked.revoked = Some(now_rfc3339());
        std::thread::sleep(Duration::from_millis(20));
        KeysFile {
            keys: vec![revoked],
        }
        .write(&path)
        .expect("write");
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        assert_eq!(store.verify(&key), Err(KeyRejection::Revoked));

        let mut expired = stored;
        expired.expires = Some("2000-01-01".into());
        std::thread::sleep(Duration::from_millis(20));
        KeysFile {
            keys: vec![expired],
        }
        .write(&path)
        .expect("write");
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        assert_eq!(store.verify(&key), Err(KeyRejection::Expired));
    }
}
