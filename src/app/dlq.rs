//! `patina dlq`: the dead-letter queue from the command line. While the gateway runs it owns
//! the embedded store, so the command asks it through the admin socket in the data directory;
//! when it is stopped the command opens the store itself; on Redis it talks to Redis. Every
//! answer is the admin API's JSON, whichever way it was reached.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::http::admin::SOCKET;
use crate::state::{QueueStore, Store, StoreError};

/// Most dead letters listed.
const LIST_MAX: usize = 1000;

/// What to do.
#[derive(Debug, Clone)]
pub enum DlqAction {
    List { route: Option<String> },
    Show { id: String },
    Replay { ids: Vec<String> },
    ReplayRoute { route: String },
    Drop { ids: Vec<String> },
}

/// Carry out `action` on the queue `config` names; the admin API's answer.
pub fn run(config: &Config, action: &DlqAction) -> Result<serde_json::Value, String> {
    let digest = super::App::from_config(config.clone())
        .map(|a| a.compiled.catalog.mappings_digest)
        .map_err(|e| {
            format!("the mappings do not load, so nothing can be replayed under them:\n{e}")
        })?;
    if let crate::config::StateBackend::Redis(redis) = &config.state.backend {
        let url = redis.url.clone();
        return direct(
            move || {
                let r = crate::state::redis::Redis::lazy(&url).map_err(|e| e.to_string())?;
                Ok(QueueStore::redis(crate::state::redis::RedisQueue::new(
                    Arc::new(r),
                )))
            },
            digest,
            action,
        );
    }
    let dir = &config.state.dir;
    match Store::open(dir) {
        Ok(store) => direct(
            move || Ok(QueueStore::embedded(Arc::new(store))),
            digest,
            action,
        ),
        Err(StoreError::InUse { .. }) => through_socket(&dir.join(SOCKET), action),
        Err(e) => Err(e.to_string()),
    }
}

/// Against the queue itself (made inside the runtime: a Redis connection needs one).
fn direct(
    make: impl FnOnce() -> Result<QueueStore, String>,
    digest: u64,
    action: &DlqAction,
) -> Result<serde_json::Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let view = crate::http::delivery_view;
    rt.block_on(async {
        let q = &make()?;
        let e = |e: crate::state::QueueError| e.to_string();
        Ok(match action {
            DlqAction::List { route } => {
                let letters = q.dead_letters(route.as_deref(), LIST_MAX).await.map_err(e)?;
                serde_json::json!({ "data": letters.iter().map(|d| view(d, true)).collect::<Vec<_>>() })
            }
            DlqAction::Show { id } => match q.delivery(id).await.map_err(e)? {
                Some(d) => view(&d, true),
                None => return Err(format!("no delivery has the id {id}")),
            },
            DlqAction::Replay { ids } => {
                serde_json::json!({ "replayed": q.replay(ids, digest).await.map_err(e)? })
            }
            DlqAction::ReplayRoute { route } => {
                serde_json::json!({ "replayed": q.replay_route(route, digest).await.map_err(e)? })
            }
            DlqAction::Drop { ids } => {
                serde_json::json!({ "dropped": q.drop_dead(ids).await.map_err(e)? })
            }
        })
    })
}

/// Through the running gateway's admin socket.
#[cfg(unix)]
fn through_socket(socket: &Path, action: &DlqAction) -> Result<serde_json::Value, String> {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let (method, path) = match action {
        DlqAction::List { route: None } => ("GET", "/_patina/api/dead-letters".to_string()),
        DlqAction::List { route: Some(r) } => {
            ("GET", format!("/_patina/api/dead-letters?route={}", enc(r)))
        }
        DlqAction::Show { id } => ("GET", format!("/_patina/api/deliveries/{}", enc(id))),
        DlqAction::Replay { ids } => (
            "POST",
            format!("/_patina/api/replay?ids={}", enc(&ids.join(","))),
        ),
        DlqAction::ReplayRoute { route } => (
            "POST",
            format!("/_patina/api/dead-letters/replay?route={}", enc(route)),
        ),
        DlqAction::Drop { ids } => (
            "POST",
            format!("/_patina/api/drop?ids={}", enc(&ids.join(","))),
        ),
    };
    let mut stream = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        format!(
            "the store is in use by a running gateway, but its admin socket {} does not answer: {e}",
            socket.display()
        )
    })?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("the gateway's answer was cut short")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("the gateway's answer has no status")?;
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("the gateway's answer is not JSON: {e}"))?;
    if status >= 400 {
        return Err(value["detail"]
            .as_str()
            .map_or_else(|| format!("status {status}"), str::to_string));
    }
    Ok(value)
}

#[cfg(not(unix))]
fn through_socket(_: &Path, _: &DlqAction) -> Result<serde_json::Value, String> {
    Err("the store is in use by a running gateway; stop it, or use the admin API".into())
}
