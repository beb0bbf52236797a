//! Serving one mapped route, in order: credentials → scopes → rate limit → parameters →
//! statement → JSON envelope, then the audit record. Each stage can end the request with a
//! problem; the rate-limit headers go on every response of a limited caller.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use tracing::{error, warn};

use super::list::{self, Format};
use super::params::{self, BindError};
use super::problem::FieldError;
use super::problem::Problem;
use super::{AppState, Served};
use crate::audit;
use crate::auth::Identity;
use crate::auth::ratelimit::Decision;
use crate::cache;
use crate::catalog::{ParamLocation, RoutePlan};
use crate::codec::{BindValue, write_json_string};
use crate::cursor;
use crate::encode::{CountRows, InvalidTally, JsonRows, LayoutCache, PageCapture, PageEnd};
use crate::shape::IntRange;
use crate::source::SourceError;

/// Where a route sits: its catalog's generation, and the runtime state kept beside its plan.
#[derive(Clone, Copy, Debug)]
pub(super) struct At<'a> {
    pub generation: u64,
    pub layout: &'a Arc<LayoutCache>,
}

pub(super) async fn serve(
    req: &HttpRequest,
    payload: actix_web::web::Payload,
    state: &AppState,
    route: &Arc<RoutePlan>,
    at: At<'_>,
    path_params: &[(String, String)],
) -> HttpResponse {
    let started = Instant::now();
    let rid = super::request_id_of(req);
    let query = req.query_string();
    let mut identity_label = "anonymous".to_string();
    let mut rate: Option<Decision> = None;
    let mut rows = 0;
    let mut timing = Timing::default();
    let outcome = async {
        let auth_started = Instant::now();
        let identity = authenticate(req, state).await?;
        timing.auth = Some(auth_started.elapsed());
        identity_label = identity.label();
        authorize(state, route, &identity)?;
        let decision = rate_limit(req, state, route, &identity).await?;
        rate = decision;
        if let Some(d) = decision
            && !d.allowed
        {
            state
                .metrics
                .rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(Problem::too_many_requests(d.retry_after.unwrap_or(1)));
        }
        if route.write.is_some() {
            let params = params::param_values(route, path_params, query, &|c| identity.claim(c))
                .map_err(|e| bind_problem(route, e))?;
            return super::write::serve(
                state,
                super::write::Request {
                    req,
                    payload: Some(payload),
                    route,
                    identity: &sender_label(req, state, &identity),
                    params,
                    path_params,
                    claims: route
                        .params
                        .iter()
                        .filter_map(|p| p.claim.as_deref())
                        .filter_map(|c| Some((c.to_string(), identity.claim(c)?)))
                        .collect(),
                    generation: state.catalog().mappings_digest,
                },
            )
            .await;
        }
        let (res, n) = run(state, (at, route), req, path_params, &identity, &mut timing).await?;
        rows = n;
        Ok(res)
    }
    .await;
    let mut res = match outcome {
        Ok(res) => res,
        Err(p) => p.response(req.path(), &rid),
    };
    if let Some(d) = rate {
        rate_headers(&mut res, d);
    }
    if route.deprecation.is_some() {
        deprecation_headers(route, path_params, &mut res);
        state.metrics.deprecated_call(&route.id, &identity_label);
    }
    let total = started.elapsed();
    timing.header(&mut res, total);
    state
        .metrics
        .request(&route.id, res.status().as_u16(), total.as_secs_f64());
    let write = route.write.as_ref().map(|_| {
        let replayed = res.headers().contains_key("idempotent-replayed");
        let outcome = audit::WriteRecord::outcome_of(res.status().as_u16(), replayed);
        state.metrics.write(&route.id, outcome);
        audit::WriteRecord {
            method: route.method.clone(),
            keys: path_params
                .iter()
                .map(|(k, v)| {
                    let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
                    (k.clone(), serde_json::Value::String(v.into_owned()))
                })
                .collect(),
            outcome,
        }
    });
    res.extensions_mut().insert(Served {
        route: route.id.clone(),
        rows,
    });
    if state.audit.enabled() {
        state.audit.record(&audit::Record {
            time: crate::clock::now_rfc3339(),
            request_id: &rid,
            identity: &identity_label,
            route: &route.id,
            status: res.status().as_u16(),
            rows,
            ms: started.elapsed().as_secs_f64() * 1000.0,
            params: audit::params_hash(path_params, query),
            write,
        });
    }
    res
}

pub(super) fn challenges(state: &AppState, error: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if state.auth.jwt_enabled() {
        out.push(match error {
            Some(e) => format!("Bearer realm=\"patina\", error=\"{e}\""),
            None => "Bearer realm=\"patina\"".to_string(),
        });
    }
    if state.auth.keys_enabled() {
        out.push("ApiKey realm=\"patina\", header=\"X-API-Key\"".to_string());
    }
    if out.is_empty() {
        out.push("Bearer realm=\"patina\"".to_string());
    }
    out
}

pub(super) async fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Identity, Problem> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    state
        .auth
        .authenticate(header("authorization"), header("x-api-key"))
        .await
        .map_err(|r| {
            warn!(scheme = r.scheme, reason = %r.reason, "credentials refused");
            Problem::unauthorized(challenges(state, Some("invalid_token")))
        })
}

fn authorize(state: &AppState, route: &RoutePlan, identity: &Identity) -> Result<(), Problem> {
    if route.public {
        return Ok(());
    }
    if !identity.is_authenticated() {
        return Err(Problem::unauthorized(challenges(state, None)));
    }
    let missing: Vec<&str> = route
        .scopes
        .iter()
        .filter(|s| !identity.scopes().contains(s))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let scope = route.scopes.join(" ");
    Err(Problem::forbidden(
        format!("This route needs the scope(s): {scope}."),
        Some(format!(
            "Bearer realm=\"patina\", error=\"insufficient_scope\", scope=\"{scope}\""
        )),
    ))
}

/// Whose a write is: the identity's label, or for a caller without credentials its address
/// (anonymous callers' idempotency keys and deliveries are kept apart by it).
pub(super) fn sender_label(req: &HttpRequest, state: &AppState, identity: &Identity) -> String {
    match identity {
        Identity::Anonymous => format!("ip:{}", client_ip(req, state)),
        _ => identity.label(),
    }
}

/// The client's address: the peer, or, behind a trusted proxy, the last untrusted hop of
/// `X-Forwarded-For`.
fn client_ip(req: &HttpRequest, state: &AppState) -> String {
    let peer = req.peer_addr().map(|a| a.ip());
    let trusted = &state.rate_settings.trusted_proxies;
    if let Some(p) = peer
        && trusted.contains(&p)
        && let Some(xff) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
    {
        for hop in xff.rsplit(',') {
            match hop.trim().parse::<std::net::IpAddr>() {
                Ok(ip) if trusted.contains(&ip) => {}
                Ok(ip) => return ip.to_string(),
                Err(_) => break,
            }
        }
    }
    peer.map_or_else(|| "unknown".to_string(), |p| p.to_string())
}

/// Check the route's own limit and the caller's default; report the tighter one. With the
/// limits on Redis and Redis away, a check fails open (no decision) or closed (503), as
/// configured.
async fn rate_limit(
    req: &HttpRequest,
    state: &AppState,
    route: &RoutePlan,
    identity: &Identity,
) -> Result<Option<Decision>, Problem> {
    let route_spec = route.rate_limit;
    let default = match identity {
        Identity::Key { rate: Some(r), .. } => Some(*r),
        _ => state.rate_settings.default,
    };
    if route_spec.is_none() && default.is_none() {
        return Ok(None);
    }
    let bucket = match identity {
        Identity::Anonymous => format!("ip:{}", client_ip(req, state)),
        other => other.label(),
    };
    let mut tightest: Option<Decision> = None;
    let mut keep = |d: Option<Decision>| {
        if let Some(d) = d
            && tightest.is_none_or(|t| (d.allowed, d.remaining) < (t.allowed, t.remaining))
        {
            tightest = Some(d);
        }
    };
    if let Some(spec) = route_spec {
        let d = state
            .limits
            .decide(spec, &format!("{}|{bucket}", route.id))
            .await
            .map_err(|e| rate_limits_unavailable(&e))?;
        keep(d);
    }
    if let Some(spec) = default {
        let d = state
            .limits
            .decide(spec, &bucket)
            .await
            .map_err(|e| rate_limits_unavailable(&e))?;
        keep(d);
    }
    Ok(tightest)
}

/// 503: the limits live on Redis, Redis cannot be reached, and they fail closed.
/// (Redis's absence is logged where it is found, at most every few seconds.)
fn rate_limits_unavailable(_: &crate::auth::ratelimit::Undecided) -> Problem {
    Problem {
        retry_after: Some(1),
        ..Problem::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "rate-limit-unavailable",
            "Rate Limit Unavailable",
            "The gateway cannot check its rate limits right now; retry shortly.",
        )
    }
}

fn rate_headers(res: &mut HttpResponse, d: Decision) {
    for (name, value) in [
        ("ratelimit-limit", d.limit.to_string()),
        ("ratelimit-remaining", d.remaining.to_string()),
        ("ratelimit-reset", d.reset.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
}

/// Stage durations for `Server-Timing`.
#[derive(Debug, Default)]
struct Timing {
    cache: Option<cache::Outcome>,
    auth: Option<std::time::Duration>,
    acquire: Option<std::time::Duration>,
    db: Option<std::time::Duration>,
    encode: Option<std::time::Duration>,
    /// How many lookups the statement answered (a `batch` route's).
    batch: Option<usize>,
}

impl Timing {
    fn header(&self, res: &mut HttpResponse, total: std::time::Duration) {
        // Milliseconds with three decimals, from whole microseconds (no float formatting on
        // every request).
        let ms = |d: std::time::Duration| {
            let us = d.as_micros();
            format!("{}.{:03}", us / 1000, us % 1000)
        };
        let mut parts = Vec::with_capacity(4);
        if let Some(d) = self.auth {
            parts.push(format!("auth;dur={}", ms(d)));
        }
        if let Some(d) = self.acquire {
            parts.push(format!("acquire;dur={}", ms(d)));
        }
        if let Some(d) = self.db {
            parts.push(format!("query;desc=\"statement and rows\";dur={}", ms(d)));
        }
        if let Some(d) = self.encode {
            parts.push(format!("encode;dur={}", ms(d)));
        }
        if let Some(n) = self.batch {
            parts.push(format!("batch;desc=\"{n} lookup(s) in one statement\""));
        }
        if let Some(o) = self.cache {
            parts.push(format!(
                "cache;desc=\"{}\"",
                match o {
                    cache::Outcome::Hit => "hit",
                    cache::Outcome::Coalesced => "coalesced",
                    cache::Outcome::Miss => "miss",
                }
            ));
        }
        parts.push(format!("total;dur={}", ms(total)));
        if let Ok(v) = HeaderValue::from_str(&parts.join(", ")) {
            res.headers_mut()
                .insert(HeaderName::from_static("server-timing"), v);
        }
    }
}

async fn run(
    state: &AppState,
    (at, route): (At<'_>, &Arc<RoutePlan>),
    req: &HttpRequest,
    path_params: &[(String, String)],
    identity: &Identity,
    timing: &mut Timing,
) -> Result<(HttpResponse, usize), Problem> {
    let run_started = Instant::now();
    let query = req.query_string();
    let (controls, rest, mut errors) = list::split_query(route, query);
    let params = match params::param_values(route, path_params, &rest, &|c| identity.claim(c)) {
        Ok(params) if errors.is_empty() => params,
        Ok(_) => return Err(Problem::bad_parameters(errors)),
        Err(BindError::Invalid(e)) => {
            errors.extend(e);
            return Err(Problem::bad_parameters(errors));
        }
        Err(e) => return Err(bind_problem(route, e)),
    };
    let binds: Vec<BindValue> = route
        .bind_order
        .iter()
        .map(|&i| params[i].clone())
        .collect();
    let format = negotiate(req, route, &controls)?;
    if format != Format::Json {
        let cap = route.list.export.map_or(0, |e| e.max_rows);
        let planned = list::plan(
            route,
            &controls,
            &params,
            binds,
            &state.cursor_key,
            Some(cap),
        )
        .map_err(|_| Problem::bad_cursor())?;
        return super::export::serve(state, route, at.layout, planned, &controls, format, req)
            .await
            .map(|res| (res, 0));
    }
    let planned = list::plan(
        route,
        &controls,
        &params,
        binds.clone(),
        &state.cursor_key,
        None,
    )
    .map_err(|_| Problem::bad_cursor())?;
    let counting = route.list.count.is_some()
        && (controls.count || prefers_count(req.headers().get("prefer")));
    let layout = at.layout;
    let fields = controls.fields.clone();
    // A request that changes the statement or the fields is cached on its own.
    let variant = if planned.page.is_some() || fields.is_some() {
        format!("{}\u{1f}{:?}\u{1f}{}", route.id, fields, planned.sql)
    } else {
        route.id.clone()
    };
    let cache_key = cache::key(at.generation, &variant, &planned.binds);
    let fetch = || execute(state, route, layout, &planned, fields.clone());
    let page = async {
        match route.cache {
            Some(ttl) => state.cache.get_or_fill(cache_key, ttl, fetch).await,
            None => Ok((fetch().await?, cache::Outcome::Miss)),
        }
    };
    let count = async {
        if counting {
            Some(count(state, route, binds).await)
        } else {
            None
        }
    };
    let (page, total) = tokio::join!(page, count);
    let (cached, outcome) = page?;
    timing.db = cached.db_time.filter(|_| outcome == cache::Outcome::Miss);
    timing.acquire = cached
        .acquire_time
        .filter(|_| outcome == cache::Outcome::Miss);
    timing.cache = route.cache.map(|_| outcome);
    timing.batch = cached.batch.filter(|_| outcome == cache::Outcome::Miss);
    if route.cache.is_some() {
        state.metrics.cache(outcome);
    }
    if route.shadow.is_some() {
        super::shadow::compare_later(
            req.app_data::<actix_web::web::Data<AppState>>().cloned(),
            route,
            &controls,
            &params,
            super::shadow::Served {
                body: if route.one && cached.rows == 0 {
                    Arc::from(Vec::new())
                } else {
                    Arc::clone(&cached.body)
                },
                truncated: cached.truncated,
                time: run_started.elapsed(),
                cached: outcome == cache::Outcome::Hit,
                path_params,
                query,
            },
        );
    }
    if route.one && cached.rows == 0 {
        return Err(Problem::not_found("No row matches these parameters."));
    }
    // A count joins the envelope: `"total": n`, or null when its budget ran out.
    let (body, etag) = match &total {
        Some(t) => {
            let mut body = cached.body[..cached.body.len().saturating_sub(1)].to_vec();
            body.extend_from_slice(b",\"total\":");
            match t {
                Ok(n) => body.extend_from_slice(n.to_string().as_bytes()),
                Err(_) => body.extend_from_slice(b"null"),
            }
            body.push(b'}');
            let etag = etag_of(&body);
            (Arc::from(body), etag)
        }
        None => (Arc::clone(&cached.body), cached.etag.clone()),
    };
    let etag = format!("\"{etag}\"");
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if if_none_match.is_some_and(|h| {
        h.split(',')
            .any(|t| t.trim().trim_start_matches("W/") == etag)
    }) {
        let res = HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish();
        return Ok((res, cached.rows));
    }
    let mut builder = HttpResponse::Ok();
    builder
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::ETAG, etag))
        .insert_header((
            header::CACHE_CONTROL,
            match route.cache {
                Some(ttl) => format!("private, max-age={}", ttl.as_secs()),
                None => "private, no-cache".to_string(),
            },
        ));
    if let Some(invalid) = &cached.invalid {
        builder.insert_header(("patina-invalid-fields", invalid.as_ref()));
    }
    if let Some(next) = &cached.next {
        let link = format!(
            "<{}?{}>; rel=\"next\"",
            req.path(),
            list::next_query(query, next)
        );
        builder.insert_header((header::LINK, link));
    }
    match &total {
        Some(Ok(n)) => {
            builder.insert_header(("preference-applied", "count=exact"));
            builder.insert_header(("x-total-count", n.to_string()));
        }
        Some(Err(why)) => {
            builder.insert_header(("x-count-status", *why));
        }
        None => {}
    }
    let res = builder.body(body.to_vec());
    let rows = cached.rows;
    timing.encode = cached
        .encode_time
        .filter(|_| outcome == cache::Outcome::Miss);
    Ok((res, rows))
}

/// Whether a `Prefer` header asks for an exact count (RFC 7240: `Prefer: count=exact`).
fn prefers_count(prefer: Option<&HeaderValue>) -> bool {
    prefer.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|p| {
            p.split(';')
                .next()
                .is_some_and(|t| t.trim() == "count=exact")
        })
    })
}

/// What the response is written as: `format=` when given, else the first media type of
/// `Accept` the route offers (JSON for anything else). A client that names only an export
/// type of a route without exports gets 406.
fn negotiate(
    req: &HttpRequest,
    route: &RoutePlan,
    controls: &list::Controls,
) -> Result<Format, Problem> {
    if let Some(f) = controls.format {
        return Ok(f);
    }
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Format::Json);
    };
    let mut ranges: Vec<(f32, usize, &str)> = accept
        .split(',')
        .enumerate()
        .filter_map(|(i, r)| {
            let mut parts = r.split(';');
            let media = parts.next()?.trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (q > 0.0).then_some((q, i, media))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let exports = route.list.export.is_some() && !route.one;
    let mut wanted_export = false;
    for (_, _, media) in &ranges {
        match media.to_ascii_lowercase().as_str() {
            "application/x-ndjson" | "application/ndjson" if exports => return Ok(Format::Ndjson),
            "text/csv" if exports => return Ok(Format::Csv),
            "application/x-ndjson" | "application/ndjson" | "text/csv" => wanted_export = true,
            _ => return Ok(Format::Json),
        }
    }
    if wanted_export {
        return Err(Problem::not_acceptable(&["application/json"]));
    }
    Ok(Format::Json)
}

/// Count the rows of the route's statement for these values, within the route's budget:
/// the number, or why there is none (`timeout`, `failed`).
async fn count(
    state: &AppState,
    route: &Arc<RoutePlan>,
    binds: Vec<BindValue>,
) -> Result<u64, &'static str> {
    let budget = route.list.count.unwrap_or_default();
    let Some(source) = state.sources.get(&route.source) else {
        return Err("failed");
    };
    let sql: Arc<str> = Arc::from(route.list.dialect.count_sql(&route.sql));
    let end = Arc::new(std::sync::Mutex::new(None));
    let sink = Box::new(CountRows(Arc::clone(&end)));
    // The database cancels the statement too (whole seconds), so it does not run on.
    let timeout = std::time::Duration::from_secs(
        (budget.as_secs() + u64::from(budget.subsec_nanos() > 0)).max(1),
    );
    match tokio::time::timeout(budget, source.query(sql, binds, 1, Some(timeout), sink)).await {
        Err(_) | Ok(Err(SourceError::Timeout)) => Err("timeout"),
        Ok(Err(e)) => {
            warn!(route = %route.id, error = %e, "count failed");
            Err("failed")
        }
        Ok(Ok(_)) => end
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ok_or("failed"),
    }
}

/// The problem for parameters that could not be bound.
pub(super) fn bind_problem(route: &RoutePlan, e: BindError) -> Problem {
    match e {
        BindError::Invalid(errors) => Problem::bad_parameters(errors),
        BindError::Claim(claim) => {
            warn!(route = %route.id, claim = %claim, "caller lacks a claim the route binds");
            Problem::forbidden(
                "Your credentials do not carry the identity this route is filtered by.",
                None,
            )
        }
    }
}

/// Run the planned statement and build the response body (cacheable: no per-request parts
/// beyond what the plan holds).
pub(super) async fn execute(
    state: &AppState,
    route: &Arc<RoutePlan>,
    layout: &Arc<LayoutCache>,
    planned: &list::Planned,
    fields: Option<Arc<[String]>>,
) -> Result<cache::Cached, Problem> {
    let Some(source) = state.sources.get(&route.source) else {
        error!(route = %route.id, source = %route.source, "route refers to a source that is not running");
        return Err(Problem::from_source(&SourceError::Closed));
    };
    let end = Arc::new(std::sync::Mutex::new(PageEnd::default()));
    // A page stops at its limit; an unpaged list at `max_rows`, noting whether it was cut.
    let capture = match &planned.page {
        Some(p) => Some(PageCapture::new(p.limit, p.keys.clone(), Arc::clone(&end))),
        None if !route.one => Some(PageCapture::new(
            route.max_rows,
            Vec::new(),
            Arc::clone(&end),
        )),
        None => None,
    };
    let tally = Arc::new(InvalidTally::default());
    let sink = Box::new(
        JsonRows::new(Arc::clone(route), Arc::clone(layout))
            .fields(fields)
            .page(capture)
            .tally(Arc::clone(&tally)),
    );
    let db_started = Instant::now();
    let (result, batch) = match &route.batch {
        // A lookup of the route's own statement: batched with those waiting beside it.
        Some(batched) if planned.page.is_none() && Arc::ptr_eq(&planned.sql, &route.sql) => {
            let looked = source
                .lookup(
                    batched,
                    crate::source::batch::Lookup {
                        sql: Arc::clone(&planned.sql),
                        binds: planned.binds.clone(),
                        max_rows: planned.max_rows,
                        timeout: route.statement_timeout,
                    },
                    sink,
                )
                .await;
            state.metrics.batch(&route.id, looked.batch);
            (looked.result, Some(looked.batch))
        }
        _ => {
            let result = source
                .query(
                    Arc::clone(&planned.sql),
                    planned.binds.clone(),
                    planned.max_rows,
                    route.statement_timeout,
                    sink,
                )
                .await;
            (result, None)
        }
    };
    let db_time = db_started.elapsed();
    state.metrics.query(&route.source, db_time.as_secs_f64());
    for (field, policy, n) in tally.counts() {
        state.metrics.undecodable(&route.id, &field, policy, n);
    }
    let encode_started = Instant::now();
    let (sink, waited) = match result {
        Ok(q) => (q.sink, q.waited),
        Err(e) => return Err(source_problem(route, &e)),
    };
    let (rows_json, rows) = sink.finish();
    let (next, truncated) = {
        let end = end
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match planned.page.as_ref() {
            Some(p) => (
                end.more
                    .then(|| Arc::from(cursor::seal(&state.cursor_key, &p.binding, &end.last))),
                false,
            ),
            None => (None, end.more),
        }
    };
    let body = if route.one {
        rows_json
    } else {
        let mut body = Vec::with_capacity(rows_json.len() + 32);
        body.extend_from_slice(b"{\"data\":[");
        body.extend_from_slice(&rows_json);
        body.extend_from_slice(b"],\"next\":");
        match &next {
            Some(c) => write_json_string(c, &mut body),
            None => body.extend_from_slice(b"null"),
        }
        // An unpaged list cut at `max_rows` says so: `next` is null, yet rows are missing.
        if truncated {
            body.extend_from_slice(b",\"truncated\":true");
        }
        body.push(b'}');
        body
    };
    Ok(cache::Cached {
        etag: row_etag(route, &body),
        body: Arc::from(body),
        rows,
        next,
        truncated,
        invalid: tally.header().map(Arc::from),
        acquire_time: Some(waited),
        db_time: Some(db_time.saturating_sub(waited)),
        encode_time: Some(encode_started.elapsed()),
        batch,
    })
}

/// Log a statement that did not run to its end and say what the client gets.
pub(super) fn source_problem(route: &RoutePlan, e: &SourceError) -> Problem {
    match e {
        SourceError::Busy(_)
        | SourceError::Timeout
        | SourceError::QueueFull
        | SourceError::CircuitOpen(_) => {
            warn!(route = %route.id, source = %route.source, error = %e, "statement not run to completion");
        }
        SourceError::OutOfRange { .. } | SourceError::BadValue(_) => {
            warn!(route = %route.id, source = %route.source, file = %route.file, error = %e, "the database refused a value");
        }
        _ => {
            error!(route = %route.id, source = %route.source, file = %route.file, error = %e, "statement failed");
        }
    }
    match e {
        SourceError::OutOfRange { placeholder, range } => out_of_range(route, *placeholder, range),
        // Without a value from the caller, the statement (or the stored data) is at
        // fault: a 500, as for any failed statement.
        SourceError::BadValue(text)
            if route
                .params
                .iter()
                .all(|p| p.location == ParamLocation::Claim) =>
        {
            Problem::from_source(&SourceError::Query(text.clone()))
        }
        e => Problem::from_source(e),
    }
}

/// A read's entity tag: of the whole body, or of the `etag_columns` of its row.
pub(super) fn row_etag(route: &RoutePlan, body: &[u8]) -> String {
    if route.etag_fields.is_empty() {
        return etag_of(body);
    }
    let row: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).unwrap_or_default();
    let picked: Vec<&serde_json::Value> = route
        .etag_fields
        .iter()
        .map(|f| row.get(f).unwrap_or(&serde_json::Value::Null))
        .collect();
    etag_of(&serde_json::to_vec(&picked).unwrap_or_default())
}

/// A response body's entity tag (without quotes): a hash of its bytes. A write's `If-Match`
/// check computes it the same way from the same row.
pub(super) fn etag_of(body: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(body, &mut h);
    format!(
        "{:016x}{:04x}",
        std::hash::Hasher::finish(&h),
        body.len() & 0xffff
    )
}

/// A 400 naming the parameter whose value its database type cannot hold. A claim's value is
/// the identity's, not the caller's input: that one is not named.
fn out_of_range(route: &RoutePlan, placeholder: usize, range: &IntRange) -> Problem {
    let param = route
        .bind_order
        .get(placeholder)
        .and_then(|&i| route.params.get(i))
        .filter(|p| p.location != ParamLocation::Claim);
    match param {
        Some(p) => Problem::bad_parameters(vec![FieldError {
            name: p.name.clone(),
            location: p.location.as_str(),
            detail: format!(
                "must be between {} and {}: the database holds it as {}",
                range.min, range.max, range.sql
            ),
            pointer: None,
        }]),
        None => Problem::from_source(&SourceError::OutOfRange {
            placeholder,
            range: *range,
        }),
    }
}

/// `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and the successor's `Link` on every answer
/// of a deprecated route. The dates' values were built when the mapping was compiled.
fn deprecation_headers(
    route: &RoutePlan,
    path_params: &[(String, String)],
    res: &mut HttpResponse,
) {
    let Some(d) = &route.deprecation else {
        return;
    };
    let headers = res.headers_mut();
    headers.insert(
        HeaderName::from_static("deprecation"),
        d.since.header.clone(),
    );
    if let Some(s) = &d.sunset {
        headers.insert(HeaderName::from_static("sunset"), s.header.clone());
    }
    if let Some(link) = d
        .successor
        .as_ref()
        .and_then(|s| HeaderValue::from_str(&s.link(path_params)).ok())
    {
        headers.append(header::LINK, link);
    }
}
