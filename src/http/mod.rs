//! The HTTP face: actix-web server, request ids, access log, and the dispatcher that looks a
//! request up in the catalog, binds its parameters, runs the route's statement on its source
//! and writes the JSON envelope. Errors leave through [`problem::Problem`] only. (Over 600
//! lines: the state every handler shares and the small handlers around it read best together.)

pub mod admin;
mod body;
pub mod deliver;
mod export;
mod list;
pub mod params;
pub mod problem;
mod queue;
pub use queue::view as delivery_view;
mod route;
mod script;
mod shadow;
mod write;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
use tracing::{Instrument, error, info};

use crate::audit::Audit;
use crate::auth::Authenticator;
use crate::auth::ratelimit::RateLimits;
use crate::catalog::{Catalog, Lookup};
use crate::config::{DocsInfo, RateSettings};
use crate::encode::LayoutCache;
use crate::metrics::Metrics;
use crate::openapi::Documents;
use crate::shape::Learned;
use crate::source::Source;
use arc_swap::ArcSwap;
use problem::Problem;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    live: ArcSwap<Live>,
    reload: std::sync::Mutex<ReloadStatus>,
    pub metrics: Metrics,
    cache: crate::cache::ResponseCache,
    sources: HashMap<String, Arc<Source>>,
    docs_info: DocsInfo,
    auth: Authenticator,
    limits: RateLimits,
    rate_settings: RateSettings,
    audit: Audit,
    cors_origins: Vec<String>,
    max_body_bytes: usize,
    idempotency_ttl: std::time::Duration,
    state_dir: std::path::PathBuf,
    /// The embedded store, opened on first use (idempotent and queued writes need it).
    store: std::sync::Mutex<Option<Arc<crate::state::Store>>>,
    queue: crate::config::QueueSettings,
    /// The write queue, on the embedded store or on Redis; made on first use.
    queue_store: std::sync::Mutex<Option<Arc<crate::state::QueueStore>>>,
    /// Wakes the delivery loop when a write was queued or a dead letter replayed.
    delivery_wake: tokio::sync::Notify,
    /// The shared Redis, with `[state] backend = "redis"`.
    redis: Option<Arc<crate::state::redis::Redis>>,
    /// The secret page cursors are signed with.
    cursor_key: crate::cursor::CursorKey,
    /// The migration bridge's log of shadow comparisons.
    bridge_log: Arc<crate::bridge::Log>,
    /// Shadow statements running per route, bounded by the route's `shadow.concurrency`.
    shadow_slots: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl AppState {
    /// Take writes: bodies up to `max_body_bytes`, idempotency records in `state`'s store.
    #[must_use]
    pub fn with_writes(
        mut self,
        max_body_bytes: usize,
        state: crate::config::StateSettings,
    ) -> Self {
        self.max_body_bytes = max_body_bytes;
        self.idempotency_ttl = state.idempotency_ttl;
        self.state_dir = state.dir;
        self
    }

    /// The write queue's settings.
    pub fn queue_settings(&self) -> crate::config::QueueSettings {
        self.queue
    }

    /// Log shadow comparisons to this file.
    #[must_use]
    pub fn with_bridge_log(mut self, path: std::path::PathBuf) -> Self {
        self.bridge_log = Arc::new(crate::bridge::Log::new(path));
        self
    }

    /// The slots of a route's shadow statements (made with `size` on first use; a reload that
    /// changes the size gets a new set).
    fn shadow_slots(&self, route: &str, size: usize) -> Arc<tokio::sync::Semaphore> {
        let mut slots = self
            .shadow_slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = format!("{route}\u{1f}{size}");
        Arc::clone(
            slots
                .entry(key)
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(size))),
        )
    }

    /// Sign page cursors with `key` (else with a random key of this process).
    #[must_use]
    pub fn with_cursor_key(mut self, key: crate::cursor::CursorKey) -> Self {
        self.cursor_key = key;
        self
    }

    /// Run queued writes with these settings.
    #[must_use]
    pub fn with_queue(mut self, queue: crate::config::QueueSettings) -> Self {
        self.queue = queue;
        self
    }

    /// Keep shared state on `redis`: from now on the rate limits count there (what they do
    /// while it is away is `unreachable`).
    #[must_use]
    pub fn with_redis(
        mut self,
        redis: Arc<crate::state::redis::Redis>,
        unreachable: crate::config::Unreachable,
    ) -> Self {
        self.limits = RateLimits::shared(Arc::clone(&redis), unreachable);
        self.redis = Some(redis);
        self
    }

    /// The shared Redis, when state is kept there.
    pub fn redis(&self) -> Option<&Arc<crate::state::redis::Redis>> {
        self.redis.as_ref()
    }

    /// The embedded store if a request opened it already.
    pub fn open_store(&self) -> Option<Arc<crate::state::Store>> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The write queue: on Redis when state is shared there, else in the embedded store
    /// (opened now if it is not yet, and again later if opening failed).
    pub fn queue_store(&self) -> Result<Arc<crate::state::QueueStore>, crate::state::QueueError> {
        let mut slot = self
            .queue_store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(q) = slot.as_ref() {
            return Ok(Arc::clone(q));
        }
        let q = Arc::new(match &self.redis {
            Some(r) => {
                crate::state::QueueStore::redis(crate::state::redis::RedisQueue::new(Arc::clone(r)))
            }
            None => crate::state::QueueStore::embedded(self.store()?),
        });
        *slot = Some(Arc::clone(&q));
        Ok(q)
    }

    /// The `Idempotency-Key` records of direct writes: on Redis when state is shared there,
    /// else in the embedded store.
    pub fn keys(&self) -> Result<crate::state::Keys, crate::state::QueueError> {
        Ok(match &self.redis {
            Some(r) => {
                crate::state::Keys::Redis(crate::state::redis::RedisIdempotency::new(Arc::clone(r)))
            }
            None => crate::state::Keys::Embedded(self.store()?),
        })
    }

    /// The write queue if something made it already.
    pub fn open_queue_store(&self) -> Option<Arc<crate::state::QueueStore>> {
        self.queue_store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The embedded store, opened now if it is not yet (and again later if opening failed).
    pub fn store(&self) -> Result<Arc<crate::state::Store>, crate::state::StoreError> {
        let mut slot = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = slot.as_ref() {
            return Ok(Arc::clone(s));
        }
        let store = Arc::new(crate::state::Store::open(&self.state_dir)?);
        info!(path = %store.path().display(), "state store opened");
        *slot = Some(Arc::clone(&store));
        Ok(store)
    }

    pub fn new(
        catalog: Arc<Catalog>,
        docs_info: DocsInfo,
        sources: HashMap<String, Arc<Source>>,
        security: Security,
    ) -> Self {
        let routes = catalog.routes.len();
        Self {
            live: ArcSwap::from_pointee(Live::new(catalog, &docs_info)),
            reload: std::sync::Mutex::new(ReloadStatus {
                routes,
                ..ReloadStatus::default()
            }),
            metrics: Metrics::default(),
            cache: crate::cache::ResponseCache::new(),
            sources,
            docs_info,
            auth: security.auth,
            limits: RateLimits::new(),
            rate_settings: security.rate,
            audit: security.audit,
            cors_origins: security.cors_origins,
            max_body_bytes: crate::config::DEFAULT_MAX_BODY_BYTES,
            idempotency_ttl: std::time::Duration::from_hours(24),
            state_dir: std::path::PathBuf::from("data"),
            store: std::sync::Mutex::new(None),
            queue: crate::config::QueueSettings::default(),
            queue_store: std::sync::Mutex::new(None),
            delivery_wake: tokio::sync::Notify::new(),
            redis: None,
            cursor_key: crate::cursor::CursorKey::generate(),
            bridge_log: Arc::new(crate::bridge::Log::new("data/bridge.jsonl".into())),
            shadow_slots: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The catalog requests are served from. A request keeps the one it started with.
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.live.load().catalog)
    }

    /// The current catalog and what the databases said of its routes, taken together.
    pub fn catalog_and_learned(&self) -> (Arc<Catalog>, Arc<Learned>) {
        let live = self.live.load();
        (Arc::clone(&live.catalog), Arc::clone(&live.learned))
    }

    /// The running sources, by name.
    pub fn sources(&self) -> &HashMap<String, Arc<Source>> {
        &self.sources
    }

    /// The API documents of the current catalog, with what the databases said of its routes
    /// so far (rebuilt when something new was learned).
    pub fn docs(&self) -> Arc<Documents> {
        let live = self.live.load();
        let mut docs = live
            .docs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Read under the lock: the documents only ever move forward.
        let version = live.learned.version();
        if docs.0 < version {
            *docs = (
                version,
                Arc::new(Documents::build(
                    &live.catalog,
                    &live.learned,
                    &self.docs_info,
                )),
            );
        }
        Arc::clone(&docs.1)
    }

    /// Serve a new catalog (and its documents) from now on.
    pub fn swap(&self, catalog: Arc<Catalog>) {
        let routes = catalog.routes.len();
        self.live
            .store(Arc::new(Live::new(catalog, &self.docs_info)));
        // Entries are keyed by catalog generation, so none could be served again: free them.
        self.cache.clear();
        if let Ok(mut r) = self.reload.lock() {
            r.generation += 1;
            r.routes = routes;
            r.last_ok = Some(crate::clock::now_rfc3339());
            r.last_error = None;
        }
        self.metrics
            .reloads_ok
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A reload was refused; the current catalog stays.
    pub fn reload_failed(&self, why: String) {
        if let Ok(mut r) = self.reload.lock() {
            r.last_error = Some(why);
            r.last_failed = Some(crate::clock::now_rfc3339());
        }
        self.metrics
            .reloads_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn reload_status(&self) -> ReloadStatus {
        self.reload.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// A catalog and the runtime state kept beside it (never inside its plans), swapped together.
#[derive(Debug)]
struct Live {
    catalog: Arc<Catalog>,
    /// What the databases said of each route, by route index.
    learned: Arc<Learned>,
    /// Each route's resolved result layout, by route index.
    layouts: Vec<Arc<LayoutCache>>,
    /// The documents, and the [`Learned::version`] they were built at.
    docs: std::sync::Mutex<(u64, Arc<Documents>)>,
}

impl Live {
    fn new(catalog: Arc<Catalog>, info: &DocsInfo) -> Self {
        let n = catalog.routes.len();
        let learned = Arc::new(Learned::new(n));
        let docs = Arc::new(Documents::build(&catalog, &learned, info));
        Self {
            layouts: (0..n).map(|_| Arc::default()).collect(),
            docs: std::sync::Mutex::new((learned.version(), docs)),
            learned,
            catalog,
        }
    }
}

/// What `/readyz` says about mapping reloads.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReloadStatus {
    /// How many reloads were applied since start.
    pub generation: u64,
    pub routes: usize,
    pub last_ok: Option<String>,
    pub last_failed: Option<String>,
    /// Why the last reload was refused (cleared by the next good one).
    pub last_error: Option<String>,
}

/// Everything that decides who may call what, and what is recorded.
#[derive(Debug)]
pub struct Security {
    pub auth: Authenticator,
    pub rate: RateSettings,
    pub audit: Audit,
    /// Origins allowed to call from a browser (CORS); empty allows none.
    pub cors_origins: Vec<String>,
}

#[derive(Clone, Debug)]
struct RequestId(String);

/// What the dispatcher tells the access log.
#[derive(Clone, Debug)]
struct Served {
    route: String,
    rows: usize,
}

/// A bound, not yet running server.
#[allow(missing_debug_implementations)]
pub struct Gateway {
    pub addr: SocketAddr,
    pub server: actix_web::dev::Server,
    /// The state the server runs on (catalog swaps go through it).
    pub state: web::Data<AppState>,
}

/// A rustls server configuration from PEM files.
pub fn tls_config(cert: &Path, key: &Path) -> std::io::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &Path, e: &dyn std::fmt::Display| {
        std::io::Error::other(format!("{}: {e}", what.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, &e))?;
    if certs.is_empty() {
        return Err(bad(cert, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| std::io::Error::other(format!("certificate and key: {e}")))
}

/// Bind `listen` and build the server; await `server` to run it. With `tls`, HTTPS only.
pub fn bind(
    state: AppState,
    listen: &str,
    workers: usize,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<Gateway> {
    let listener = std::net::TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let https = tls.is_some();
    let data = web::Data::new(state);
    let handle = data.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap_fn(move |req, srv| {
                let id = request_id(req.headers().get(&X_REQUEST_ID));
                req.extensions_mut().insert(RequestId(id.clone()));
                let span = tracing::info_span!("request", request_id = %id);
                let method = req.method().to_string();
                let path = req.path().to_string();
                let started = Instant::now();
                let allowed_origin = req
                    .headers()
                    .get(header::ORIGIN)
                    .and_then(|o| o.to_str().ok())
                    .filter(|o| {
                        req.app_data::<web::Data<AppState>>()
                            .is_some_and(|s| s.cors_origins.iter().any(|a| a == o))
                    })
                    .map(str::to_string);
                let is_docs = path.starts_with("/docs")
                    || (path.starts_with("/_patina") && !path.starts_with("/_patina/api/"));
                let fut = srv.call(req);
                async move {
                    let mut res: ServiceResponse<_> = fut.await?;
                    if let Ok(v) = HeaderValue::from_str(&id) {
                        res.headers_mut().insert(X_REQUEST_ID, v);
                    }
                    security_headers(res.headers_mut(), is_docs);
                    if https {
                        res.headers_mut().insert(
                            header::STRICT_TRANSPORT_SECURITY,
                            HeaderValue::from_static("max-age=31536000"),
                        );
                    }
                    if let Some(origin) = allowed_origin {
                        cors_headers(res.headers_mut(), &origin);
                    }
                    let served = res.response().extensions().get::<Served>().cloned();
                    info!(
                        method,
                        path,
                        status = res.status().as_u16(),
                        route = served.as_ref().map_or("-", |s| s.route.as_str()),
                        rows = served.as_ref().map_or(0, |s| s.rows),
                        ms = started.elapsed().as_secs_f64() * 1000.0,
                        "served"
                    );
                    Ok(res)
                }
                .instrument(span)
            })
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .route("/openapi/{file}", web::get().to(openapi_document))
            .route("/docs", web::get().to(docs_redirect))
            .route("/docs/{tail:.*}", web::get().to(docs_file))
            .route("/", web::get().to(docs_redirect))
            .configure(admin::routes)
            .default_service(web::to(dispatch))
    })
    .workers(workers.max(1));
    let server = match tls {
        Some(cfg) => server.listen_rustls_0_23(listener, cfg)?,
        None => server.listen(listener)?,
    }
    .run();
    Ok(Gateway {
        addr,
        server,
        state: handle,
    })
}

/// Headers every response carries. Swagger UI needs scripts and styles from this origin; API
/// responses need nothing at all.
fn security_headers(h: &mut header::HeaderMap, is_docs: bool) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if is_docs {
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
             frame-ancestors 'none'"
        } else {
            "default-src 'none'; frame-ancestors 'none'"
        }),
    );
}

/// CORS for an allowed origin: the origin echoed, and the headers scripts may read.
fn cors_headers(h: &mut header::HeaderMap, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(
                "X-Request-Id, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, \
                 Retry-After, Deprecation, Sunset, WWW-Authenticate, ETag, Location, \
                 Idempotent-Replayed",
            ),
        );
    }
}

/// A CORS preflight from an allowed origin (the origin header itself is added on the way out).
fn preflight(req: &HttpRequest, state: &AppState) -> Option<HttpResponse> {
    if req.method() != actix_web::http::Method::OPTIONS
        || !req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return None;
    }
    let origin = req.headers().get(header::ORIGIN)?.to_str().ok()?;
    if !state.cors_origins.iter().any(|o| o == origin) {
        let rid = request_id_of(req);
        return Some(
            Problem::new(
                actix_web::http::StatusCode::FORBIDDEN,
                "origin-not-allowed",
                "Origin Not Allowed",
                "Browsers on this origin may not call the API: the gateway's operator can add \
                 it to [server] cors_origins.",
            )
            .response(req.path(), &rid),
        );
    }
    Some(
        HttpResponse::NoContent()
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "GET, HEAD, POST, PUT, PATCH, DELETE",
            ))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, X-API-Key, X-Request-Id, Content-Type, Idempotency-Key, If-Match, \
                 If-None-Match",
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .finish(),
    )
}

/// Echo a sane client-supplied request id, or make one.
fn request_id(given: Option<&HeaderValue>) -> String {
    given
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(
            // From the thread's seeded generator: no system call per request.
            || {
                uuid::Builder::from_random_bytes(rand::random())
                    .into_uuid()
                    .to_string()
            },
            str::to_string,
        )
}

/// Alive (always 200): `ok`, or `degraded` with what is wrong (a source whose breaker is open,
/// how many writes wait for it), read from what the gateway knows without asking anyone.
async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let queue = match state.open_queue_store() {
        Some(q) => q.queue_stats().await.ok().map(|s| (q.kind(), s)),
        None => None,
    };
    let catalog = state.catalog();
    let mut details = Vec::new();
    for (name, s) in &state.sources {
        if !s.stats().breaker_open {
            continue;
        }
        let queued: u64 = queue.as_ref().map_or(0, |(_, st)| {
            catalog
                .routes
                .iter()
                .filter(|r| &r.source == name)
                .filter_map(|r| st.routes.get(&r.id))
                .map(|r| r.pending)
                .sum()
        });
        details.push(format!("source {name} unreachable, {queued} queued"));
    }
    let mut body = serde_json::json!({
        "status": if details.is_empty() { "ok" } else { "degraded" },
    });
    if !details.is_empty() {
        body["details"] = details.into();
    }
    if let Some((kind, st)) = &queue {
        body["queue"] = serde_json::json!({
            "backend": kind,
            "pending": st.pending,
            "dead_letters": st.dead,
            "capacity": state.queue.max_pending,
        });
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// Ready when every source answers, or when the one that does not takes queued writes (the
/// queue still accepts them: taking the gateway out of the load balancer would refuse them);
/// says how the last mapping reload went.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let mut sources = serde_json::Map::new();
    let mut ready = true;
    let catalog = state.catalog();
    let checks = state.sources.iter().map(|(name, s)| async move {
        let ok = tokio::time::timeout(std::time::Duration::from_secs(3), s.ping())
            .await
            .is_ok_and(|r| r.is_ok());
        (name.clone(), ok)
    });
    for (name, ok) in futures_util::future::join_all(checks).await {
        let queues = catalog
            .routes
            .iter()
            .any(|r| r.source == name && r.write.as_ref().is_some_and(|w| w.queue.is_some()));
        ready &= ok || queues;
        let said = match (ok, queues) {
            (true, _) => "ok",
            (false, true) => "unreachable; queued writes are accepted",
            (false, false) => "unreachable",
        };
        sources.insert(name, said.into());
    }
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "sources": sources,
        "mappings": state.reload_status(),
    });
    let mut res = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    res.insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let pools: Vec<(String, crate::metrics::PoolStats)> = state
        .sources
        .iter()
        .map(|(n, s)| (n.clone(), s.stats()))
        .collect();
    let mut text = state.metrics.render(&pools, state.catalog().routes.len());
    let stats = match state.open_queue_store() {
        Some(q) => q.queue_stats().await.ok(),
        None => None,
    };
    state.metrics.render_queue(
        &mut text,
        stats.as_ref(),
        state.queue.max_pending,
        crate::clock::now_ms(),
    );
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(text)
}

async fn openapi_document(
    req: HttpRequest,
    file: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let docs = state.docs();
    let version = file.strip_suffix(".json").unwrap_or("");
    match docs.rendered.get(version) {
        Some(text) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(text.clone()),
        None => not_found(&req),
    }
}

/// The id of `/{version}/_deliveries/{id}`.
fn delivery_id(path: &str) -> Option<&str> {
    let mut parts = path.strip_prefix('/')?.split('/');
    let (_, kind, id) = (parts.next()?, parts.next()?, parts.next()?);
    (kind == "_deliveries" && !id.is_empty() && parts.next().is_none()).then_some(id)
}

/// The id the request was given on arrival (echoed or generated).
fn request_id_of(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

fn not_found(req: &HttpRequest) -> HttpResponse {
    let rid = request_id_of(req);
    Problem::not_found("No such document.").response(req.path(), &rid)
}

async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

/// Swagger UI, from files compiled into the binary, listing every version's document.
async fn docs_file(
    req: HttpRequest,
    tail: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let docs = state.docs();
    // Newest version first: it is the one Swagger UI opens with.
    let names: Vec<(&str, String)> = docs
        .rendered
        .keys()
        .rev()
        .map(|v| (v.as_str(), format!("/openapi/{v}.json")))
        .collect();
    let urls: Vec<utoipa_swagger_ui::Url<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, (name, url))| utoipa_swagger_ui::Url::with_primary(name, url, i == 0))
        .collect();
    let config = Arc::new(
        utoipa_swagger_ui::Config::new(urls)
            .try_it_out_enabled(true)
            .display_operation_id(true)
            .persist_authorization(true)
            .display_request_duration(true),
    );
    match utoipa_swagger_ui::serve(&tail, config) {
        Ok(Some(file)) => {
            let mut res = HttpResponse::Ok();
            res.insert_header((header::CONTENT_TYPE, file.content_type));
            if file.gzpipped {
                res.insert_header((header::CONTENT_ENCODING, "gzip"));
            }
            res.body(file.bytes.into_owned())
        }
        Ok(None) => not_found(&req),
        Err(e) => {
            error!(error = %e, "Swagger UI file could not be served");
            Problem::new(
                actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                "docs-unavailable",
                "Docs Unavailable",
                "The documentation page could not be built.",
            )
            .response(req.path(), "")
        }
    }
}

async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let rid = request_id_of(&req);
    if let Some(res) = preflight(&req, &state) {
        return res;
    }
    let live = state.live.load_full();
    let path = req.path().to_string();
    if let Some(id) = delivery_id(&path)
        && req.method() == actix_web::http::Method::GET
    {
        return queue::show(&req, &state, id).await;
    }
    let outcome = match live.catalog.lookup(req.method().as_str(), &path) {
        Lookup::NotFound => Err(Problem::not_found("No route matches this path.")),
        Lookup::MethodNotAllowed(allowed) => Err(Problem::method_not_allowed(&allowed)),
        Lookup::Found {
            route,
            index,
            path_params,
        } => {
            let at = route::At {
                generation: live.catalog.generation,
                layout: &live.layouts[index],
            };
            return route::serve(&req, payload, &state, route, at, &path_params).await;
        }
    };
    match outcome {
        Ok(res) => res,
        Err(p) => p.response(&path, &rid),
    }
}
