//! The operators' side of the write queue: the `patina:admin` scope, the admin API under
//! `/_patina/api/` (queue figures, dead letters, one delivery, replay, drop), the admin page at
//! `/_patina/` (its files compiled into the binary, like Swagger UI's), and the same API on a
//! Unix socket in the data directory for `patina dlq` on the same machine (whoever can open the
//! socket can open the store file itself: the filesystem's permissions are the check there).

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use tracing::{error, info};

use super::AppState;
use super::problem::Problem;
use crate::state::{QueueError, QueueStore};

/// The scope that opens the admin API and every delivery's details.
pub const SCOPE: &str = "patina:admin";

/// The socket `patina dlq` talks to while the gateway runs, in the data directory.
pub const SOCKET: &str = "patina-admin.sock";

/// The admin page's files.
const PAGE: &str = include_str!("admin/index.html");
const SCRIPT: &str = include_str!("admin/admin.js");
const STYLE: &str = include_str!("admin/admin.css");

/// Most dead letters one list answers with.
const LIST_MAX: usize = 1000;

/// The admin routes of the public server (each checks the caller's scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/_patina", web::get().to(page_redirect))
        .route("/_patina/", web::get().to(page))
        .route("/_patina/admin.js", web::get().to(script))
        .route("/_patina/admin.css", web::get().to(style))
        .route("/_patina/api/{tail:.*}", web::route().to(public_api));
}

/// The admin routes of the local socket (no credentials: the socket's permissions decide).
pub fn local_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/_patina/api/{tail:.*}", web::route().to(local_api));
}

async fn page_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/_patina/"))
        .finish()
}

fn asset(content_type: &'static str, text: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(text)
}

async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

async fn public_api(
    req: HttpRequest,
    tail: web::Path<String>,
    query: web::Query<BTreeMap<String, String>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let rid = super::request_id_of(&req);
    let allowed = async {
        let identity = super::route::authenticate(&req, &state).await?;
        if !identity.is_authenticated() {
            return Err(Problem::unauthorized(super::route::challenges(
                &state, None,
            )));
        }
        if !identity.scopes().iter().any(|s| s == SCOPE) {
            return Err(Problem::forbidden(
                format!("The admin API needs the scope `{SCOPE}`."),
                None,
            ));
        }
        Ok(identity.label())
    }
    .await;
    let who = match allowed {
        Ok(who) => who,
        Err(p) => return p.response(req.path(), &rid),
    };
    let res = api(&req, &tail, &query, &state).await;
    if req.method() != actix_web::http::Method::GET {
        info!(target: "audit", admin = %who, method = %req.method(), path = %req.path(), status = res.as_ref().map_or_else(|p| p.status.as_u16(), |r| r.status().as_u16()), "admin action");
    }
    res.unwrap_or_else(|p| p.response(req.path(), &rid))
}

async fn local_api(
    req: HttpRequest,
    tail: web::Path<String>,
    query: web::Query<BTreeMap<String, String>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let res = api(&req, &tail, &query, &state).await;
    if req.method() != actix_web::http::Method::GET {
        info!(target: "audit", admin = "local socket", method = %req.method(), path = %req.path(), "admin action");
    }
    res.unwrap_or_else(|p| p.response(req.path(), "local"))
}

/// The API itself, once the caller is allowed.
async fn api(
    req: &HttpRequest,
    tail: &str,
    query: &BTreeMap<String, String>,
    state: &AppState,
) -> Result<HttpResponse, Problem> {
    use actix_web::http::Method;
    let parts: Vec<&str> = tail.split('/').filter(|p| !p.is_empty()).collect();
    let method = req.method().clone();
    let generation = state.catalog().mappings_digest;
    let route = query.get("route").cloned();
    match (method, parts.as_slice()) {
        (Method::GET, ["queue"]) => {
            let stats = Some(done(store(state)?.queue_stats().await)?);
            let now = crate::clock::now_ms();
            let routes: serde_json::Map<String, serde_json::Value> = stats
                .as_ref()
                .map(|s| {
                    s.routes
                        .iter()
                        .map(|(r, st)| {
                            (
                                r.clone(),
                                serde_json::json!({
                                    "pending": st.pending,
                                    "oldest_pending_seconds": st.oldest_accepted_at.map(|at| now.saturating_sub(at) / 1000),
                                    "dead": st.dead,
                                }),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(json(&serde_json::json!({
                "pending": stats.as_ref().map_or(0, |s| s.pending),
                "dead": stats.as_ref().map_or(0, |s| s.dead),
                "capacity": state.queue.max_pending,
                "routes": routes,
            })))
        }
        (Method::GET, ["dead-letters"]) => {
            let limit = query
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(LIST_MAX)
                .min(LIST_MAX);
            let letters = done(store(state)?.dead_letters(route.as_deref(), limit).await)?;
            let data: Vec<serde_json::Value> = letters
                .iter()
                .map(|d| super::queue::view(d, true))
                .collect();
            Ok(json(&serde_json::json!({ "data": data })))
        }
        (Method::POST, ["dead-letters", "replay"]) => {
            let Some(route) = route else {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "route-required",
                    "Route Required",
                    "Name the route whose dead letters to replay: ?route=ID.",
                ));
            };
            let replayed = done(store(state)?.replay_route(&route, generation).await)?;
            state.delivery_wake.notify_one();
            Ok(json(&serde_json::json!({ "replayed": replayed })))
        }
        (Method::GET, ["deliveries", id]) => match done(store(state)?.delivery(id).await)? {
            Some(d) => Ok(json(&super::queue::view(&d, true))),
            None => Err(Problem::not_found("No delivery has this id.")),
        },
        (Method::POST, ["deliveries", id, "replay"]) => {
            let ids = vec![(*id).to_string()];
            let replayed = done(store(state)?.replay(&ids, generation).await)?;
            if replayed.is_empty() {
                return Err(not_dead());
            }
            state.delivery_wake.notify_one();
            Ok(json(&serde_json::json!({ "replayed": replayed })))
        }
        (Method::POST, ["replay"]) => {
            let ids = ids_of(query)?;
            let replayed = done(store(state)?.replay(&ids, generation).await)?;
            state.delivery_wake.notify_one();
            Ok(json(&serde_json::json!({ "replayed": replayed })))
        }
        (Method::DELETE, ["deliveries", id]) => {
            let ids = vec![(*id).to_string()];
            let dropped = done(store(state)?.drop_dead(&ids).await)?;
            if dropped.is_empty() {
                return Err(not_dead());
            }
            Ok(json(&serde_json::json!({ "dropped": dropped })))
        }
        (Method::POST, ["drop"]) => {
            let ids = ids_of(query)?;
            let dropped = done(store(state)?.drop_dead(&ids).await)?;
            Ok(json(&serde_json::json!({ "dropped": dropped })))
        }
        _ => Err(Problem::not_found("No admin endpoint matches this path.")),
    }
}

/// `?ids=a,b,c`.
fn ids_of(query: &BTreeMap<String, String>) -> Result<Vec<String>, Problem> {
    let ids: Vec<String> = query
        .get("ids")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "ids-required",
            "Ids Required",
            "Name the deliveries: ?ids=ID,ID.",
        ));
    }
    Ok(ids)
}

fn not_dead() -> Problem {
    Problem::not_found(
        "No dead letter has this id (it may have been delivered, replayed or dropped).",
    )
}

fn json(v: &serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(v)
}

fn store(state: &AppState) -> Result<Arc<QueueStore>, Problem> {
    state.queue_store().map_err(|e| {
        error!(error = %e, "the write queue cannot be reached");
        super::write::state_unavailable()
    })
}

/// A queue call's answer; its failure as a 503.
fn done<T>(r: Result<T, QueueError>) -> Result<T, Problem> {
    r.map_err(|e| {
        error!(error = %e, "the write queue failed");
        super::write::state_unavailable()
    })
}
/// Serve the admin API on a Unix socket at `path` (mode 0600), for `patina dlq` on this
/// machine; await the returned server to run it.
#[cfg(unix)]
pub fn bind_local(
    state: web::Data<AppState>,
    path: &std::path::Path,
) -> std::io::Result<actix_web::dev::Server> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket left by a process that died: nobody listens on it any more.
    if std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .configure(local_routes)
    })
    .workers(1)
    .disable_signals()
    .bind_uds(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(server.run())
}
