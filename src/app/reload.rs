//! Hot reload of mapping files: a file watcher (debounced) and SIGHUP compile the mappings
//! beside the running catalog and swap it in atomically only when they compile cleanly;
//! otherwise the last good catalog keeps serving and `/readyz`, the log and a metric say why.
//! In-flight requests finish on the catalog they started with. Source and server settings
//! are not reloaded (they need a restart).

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use actix_web::web;
use notify::{RecursiveMode, Watcher as _};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::http::AppState;

/// Quiet time after the last file event before a reload.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Rebuilds the catalog of a running gateway.
#[derive(Clone)]
pub struct Reloader {
    config: Arc<Config>,
    state: web::Data<AppState>,
    /// Asks for the swapped-in catalog's routes to be described on their databases.
    describe: tokio::sync::mpsc::UnboundedSender<()>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("mappings", &self.config.mappings_dir)
            .finish_non_exhaustive()
    }
}

/// Keeps the watcher alive; dropping it stops watching.
pub struct WatchGuard {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for WatchGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchGuard")
    }
}

impl Reloader {
    pub fn new(
        config: Config,
        state: web::Data<AppState>,
        describe: tokio::sync::mpsc::UnboundedSender<()>,
    ) -> Self {
        Self {
            config: Arc::new(config),
            state,
            describe,
        }
    }

    /// Compile the mapping files again; swap them in if they compile. Returns whether the
    /// new catalog is being served.
    pub fn reload(&self) -> bool {
        match super::compile_catalog(&self.config) {
            Ok(compiled) => {
                for w in &compiled.warnings {
                    warn!("{w}");
                }
                let catalog = Arc::new(compiled.catalog);
                let routes = catalog.routes.len();
                self.state.swap(catalog);
                // Nobody listens once the server has stopped: nothing to describe then.
                let _ = self.describe.send(());
                info!(routes, "mappings reloaded");
                true
            }
            Err(e) => {
                error!("mappings not reloaded; still serving the previous ones:\n{e}");
                self.state.reload_failed(e.to_string());
                false
            }
        }
    }

    /// Watch the mappings folder; reload after changes settle.
    pub fn watch(&self) -> notify::Result<WatchGuard> {
        let (tx, rx) = mpsc::channel::<()>();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev
                && !matches!(ev.kind, notify::EventKind::Access(_))
            {
                let _ = tx.send(());
            }
        })?;
        watcher.watch(&self.config.mappings_dir, RecursiveMode::Recursive)?;
        let me = self.clone();
        std::thread::Builder::new()
            .name("mapping-watcher".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    // Let an editor finish writing (and a `git checkout` finish touching files).
                    while rx.recv_timeout(DEBOUNCE).is_ok() {}
                    me.reload();
                }
            })
            .map_err(|e| notify::Error::generic(&e.to_string()))?;
        info!(folder = %self.config.mappings_dir.display(), "watching mapping files");
        Ok(WatchGuard { _watcher: watcher })
    }

    /// Reload on SIGHUP (Unix). Must run inside the server's runtime.
    pub fn on_sighup(&self) {
        #[cfg(unix)]
        {
            let me = self.clone();
            actix_web::rt::spawn(async move {
                let Ok(mut hup) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                else {
                    warn!("SIGHUP handler could not be installed");
                    return;
                };
                while hup.recv().await.is_some() {
                    info!("SIGHUP: reloading mappings");
                    let r = me.clone();
                    let _ = tokio::task::spawn_blocking(move || r.reload()).await;
                }
            });
        }
    }
}
