//! The HTTP face: actix-web server, request ids, access log, and the dispatcher that looks a
//! request up in the catalog, binds its parameters, runs the route's statement on its source
//! and writes the JSON envelope. Errors leave through [`problem::Problem`] only.

pub mod params;
pub mod problem;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
use tracing::{Instrument, error, info, warn};

use crate::catalog::{Catalog, Lookup, RoutePlan};
use crate::encode::JsonRows;
use crate::openapi::Documents;
use crate::source::{Source, SourceError};
use problem::Problem;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    catalog: Arc<Catalog>,
    docs: Arc<Documents>,
    sources: HashMap<String, Arc<Source>>,
}

impl AppState {
    /// `docs` must be built from `catalog`; they are swapped together.
    pub fn new(
        catalog: Arc<Catalog>,
        docs: Arc<Documents>,
        sources: HashMap<String, Arc<Source>>,
    ) -> Self {
        Self {
            catalog,
            docs,
            sources,
        }
    }

    /// The catalog requests are served from (the seam for reloads).
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog)
    }

    /// The API documents of the current catalog.
    pub fn docs(&self) -> Arc<Documents> {
        Arc::clone(&self.docs)
    }
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
}

/// Bind `listen` and build the server; await `server` to run it.
pub fn bind(state: AppState, listen: &str, workers: usize) -> std::io::Result<Gateway> {
    let listener = std::net::TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap_fn(|req, srv| {
                let id = request_id(req.headers().get(&X_REQUEST_ID));
                req.extensions_mut().insert(RequestId(id.clone()));
                let span = tracing::info_span!("request", request_id = %id);
                let method = req.method().to_string();
                let path = req.path().to_string();
                let started = Instant::now();
                let fut = srv.call(req);
                async move {
                    let mut res: ServiceResponse<_> = fut.await?;
                    if let Ok(v) = HeaderValue::from_str(&id) {
                        res.headers_mut().insert(X_REQUEST_ID, v);
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
            .route("/openapi/{file}", web::get().to(openapi_document))
            .route("/docs", web::get().to(docs_redirect))
            .route("/docs/{tail:.*}", web::get().to(docs_file))
            .route("/", web::get().to(docs_redirect))
            .default_service(web::to(dispatch))
    })
    .workers(workers.max(1))
    .listen(listener)?
    .run();
    Ok(Gateway { addr, server })
}

/// `Deprecation` (RFC 9745) and `Sunset` (RFC 8594) on deprecated routes.
fn deprecation_headers(route: &RoutePlan, res: &mut HttpResponse) {
    let forms = |d: &Option<String>| d.as_deref().and_then(crate::codec::date_header_forms);
    if let Some((epoch, _)) = forms(&route.deprecated)
        && let Ok(v) = HeaderValue::from_str(&format!("@{epoch}"))
    {
        res.headers_mut()
            .insert(HeaderName::from_static("deprecation"), v);
    }
    if let Some((_, http_date)) = forms(&route.sunset)
        && let Ok(v) = HeaderValue::from_str(&http_date)
    {
        res.headers_mut()
            .insert(HeaderName::from_static("sunset"), v);
    }
}

/// Echo a sane client-supplied request id, or make one.
fn request_id(given: Option<&HeaderValue>) -> String {
    given
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "status": "ok" }))
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

fn not_found(req: &HttpRequest) -> HttpResponse {
    let rid = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
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

async fn dispatch(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let rid = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let catalog = state.catalog();
    let path = req.path().to_string();
    let outcome = match catalog.lookup(req.method().as_str(), &path) {
        Lookup::NotFound => Err(Problem::not_found("No route matches this path.")),
        Lookup::MethodNotAllowed(allowed) => Err(Problem::method_not_allowed(&allowed)),
        Lookup::Found { route, path_params } => {
            serve_route(&state, route, &path_params, req.query_string()).await
        }
    };
    match outcome {
        Ok(res) => res,
        Err(p) => p.response(&path, &rid),
    }
}

async fn serve_route(
    state: &AppState,
    route: &Arc<RoutePlan>,
    path_params: &[(String, String)],
    query: &str,
) -> Result<HttpResponse, Problem> {
    let binds = params::bind_values(route, path_params, query).map_err(Problem::bad_parameters)?;
    let Some(source) = state.sources.get(&route.source) else {
        error!(route = %route.id, source = %route.source, "route refers to a source that is not running");
        return Err(Problem::from_source(&SourceError::Closed));
    };
    let sink = Box::new(JsonRows::new(Arc::clone(route)));
    let sink = match source
        .query(Arc::clone(&route.sql), binds, route.max_rows, sink)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            match &e {
                SourceError::Busy(_) | SourceError::Timeout => {
                    warn!(route = %route.id, source = %route.source, error = %e, "statement not run to completion");
                }
                _ => {
                    error!(route = %route.id, source = %route.source, file = %route.file, error = %e, "statement failed");
                }
            }
            return Err(Problem::from_source(&e));
        }
    };
    let (rows_json, rows) = sink.finish();
    let body = if route.one {
        if rows == 0 {
            return Err(Problem::not_found("No row matches these parameters."));
        }
        rows_json
    } else {
        let mut body = Vec::with_capacity(rows_json.len() + 32);
        body.extend_from_slice(b"{\"data\":[");
        body.extend_from_slice(&rows_json);
        body.extend_from_slice(b"],\"next\":null}");
        body
    };
    let mut res = HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(body);
    deprecation_headers(route, &mut res);
    res.extensions_mut().insert(Served {
        route: route.id.clone(),
        rows,
    });
    Ok(res)
}
