//! The audit log: one JSON line per routed request (time, request id, identity, route,
//! status, rows, latency, and a hash of the parameter values — never the values, the token
//! or the key), to its own file or to the log under the `audit` target.

use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// One audited request.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub time: String,
    pub request_id: &'a str,
    pub identity: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub rows: usize,
    pub ms: f64,
    /// SHA-256 (first 16 bytes, hex) of the request's parameter names and values.
    pub params: String,
    /// For a write: what it wrote to, and how it ended. Body values are never recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write: Option<WriteRecord>,
}

/// What the audit log says of a write.
#[derive(Debug, Serialize)]
pub struct WriteRecord {
    pub method: String,
    /// The path parameters: the keys of the record written.
    pub keys: serde_json::Map<String, serde_json::Value>,
    /// `written`, `replayed`, `refused` or `failed`.
    pub outcome: &'static str,
}

impl WriteRecord {
    /// The outcome word for a write's answer.
    pub fn outcome_of(status: u16, replayed: bool) -> &'static str {
        match status {
            _ if replayed => "replayed",
            200..=299 => "written",
            400..=499 => "refused",
            _ => "failed",
        }
    }
}

/// Where audit records go.
#[derive(Debug)]
pub struct Audit {
    file: Option<Mutex<std::fs::File>>,
}

impl Audit {
    pub fn open(path: Option<&Path>) -> std::io::Result<Self> {
        let file = match path {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
            None => None,
        };
        Ok(Self { file })
    }

    /// Whether records go anywhere (a file, or a log level that shows the `audit` target).
    pub fn enabled(&self) -> bool {
        self.file.is_some() || tracing::enabled!(target: "audit", tracing::Level::INFO)
    }

    pub fn record(&self, rec: &Record<'_>) {
        let Ok(mut line) = serde_json::to_vec(rec) else {
            return;
        };
        match &self.file {
            Some(f) => {
                line.push(b'\n');
                if let Ok(mut f) = f.lock()
                    && let Err(e) = f.write_all(&line)
                {
                    tracing::error!(error = %e, "audit record not written");
                }
            }
            None => tracing::info!(target: "audit", "{}", String::from_utf8_lossy(&line)),
        }
    }
}

/// Hash of the parameters as given: path values, then the query string.
pub fn params_hash(path_params: &[(String, String)], query: &str) -> String {
    let mut h = Sha256::new();
    for (k, v) in path_params {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    h.update(b"?");
    h.update(query.as_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_do_not_contain_values_and_differ() {
        let a = params_hash(&[("job".into(), "100001".into())], "status=released");
        let b = params_hash(&[("job".into(), "100002".into())], "status=released");
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(!a.contains("100001"));
    }

    #[test]
    fn writes_json_lines() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.log");
        let audit = Audit::open(Some(&path)).expect("open");
        for status in [200, 403] {
            audit.record(&Record {
                time: "t".into(),
                request_id: "r",
                identity: "sub:alice",
                route: "getJob",
                status,
                rows: 1,
                ms: 1.5,
                params: "h".into(),
                write: None,
            });
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["status"], 403);
        assert_eq!(lines[0]["identity"], "sub:alice");
    }
}
