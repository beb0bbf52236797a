//! Queued writes (`delivery = "queued"`): accepting one (checked like a direct write, then kept
//! in the state store, on disk before the `202 Accepted`), the `/{version}/_deliveries/{id}`
//! resource that tells its sender where it stands, and delivering one: its request decoded again
//! under the current mapping, run in one transaction with the dedup check, and the outcome
//! judged (delivered; a passing failure retried after an exponential backoff with full jitter;
//! anything else a dead letter). When to look for due deliveries is `deliver.rs`'s.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::AppState;
use super::body::{self, Object};
use super::problem::Problem;
use super::script::Dedup;
use super::write::{Executed, Request};
use crate::catalog::{QueuePlan, RetryPolicy, ValueRef};
use crate::state::{
    Accept, Accepted, Delivery, DeliveryResult, Fingerprint, IdempotentAccept, Outcome, Status,
    StoredResponse,
};

/// What a queued write keeps of its request: enough to decode it again, under whatever mapping
/// is current when it is delivered.
#[derive(Debug, Serialize, Deserialize)]
struct StoredRequest {
    path: String,
    path_params: Vec<(String, String)>,
    query: String,
    claims: BTreeMap<String, String>,
    /// The body as sent (checked JSON, so text).
    body: String,
}

/// `/v1/_deliveries` for a route under `/v1/...`: deliveries are read under the version their
/// write was sent to.
pub(super) fn deliveries_base(route_path: &str) -> String {
    let version = route_path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    format!("/{version}/_deliveries")
}

/// What a queued write keeps of its request, borrowed from it (or from a mirror's own copy).
pub(super) struct Incoming<'a> {
    pub route: &'a std::sync::Arc<crate::catalog::RoutePlan>,
    pub path: &'a str,
    pub query: &'a str,
    pub path_params: &'a [(String, String)],
    pub claims: &'a BTreeMap<String, String>,
    pub identity: &'a str,
    pub params: &'a [crate::codec::BindValue],
    pub generation: u64,
}

impl<'a> Incoming<'a> {
    pub(super) fn of(r: &'a Request<'a>) -> Self {
        Incoming {
            route: r.route,
            path: r.req.path(),
            query: r.req.query_string(),
            path_params: r.path_params,
            claims: &r.claims,
            identity: r.identity,
            params: &r.params,
            generation: r.generation,
        }
    }
}

/// Accept a queued write: `202` + `Location` once it is on disk; `503` when the queue is full.
pub(super) async fn accept(
    state: &AppState,
    r: &Incoming<'_>,
    queue: &QueuePlan,
    objects: &[Object],
    bytes: Vec<u8>,
    key: Option<(String, Fingerprint)>,
) -> Result<HttpResponse, Problem> {
    let store = state.queue_store().map_err(|e| {
        error!(error = %e, "the write queue cannot be reached");
        super::write::state_unavailable()
    })?;
    let id = uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string();
    let href = format!("{}/{id}", deliveries_base(&r.route.path));
    let answer = StoredResponse {
        status: 202,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("location".into(), href.clone()),
        ],
        body: serde_json::to_vec(&serde_json::json!({
            "id": id,
            "status": "pending",
            "href": href,
        }))
        .unwrap_or_default(),
    };
    let order_key = queue
        .order_key
        .as_ref()
        .map(|(_, v)| format!("{}\n{}", r.route.id, key_text(*v, r.params, objects)));
    let request = StoredRequest {
        path: r.path.to_string(),
        path_params: r.path_params.to_vec(),
        query: r.query.to_string(),
        claims: r.claims.clone(),
        body: String::from_utf8(bytes).unwrap_or_default(),
    };
    let accept = Accept {
        id,
        route: r.route.id.clone(),
        order_key,
        identity: r.identity.to_string(),
        request: serde_json::to_string(&request).unwrap_or_default(),
        generation: r.generation,
        max_pending: state.queue.max_pending,
        idempotency: key.map(|(key, fingerprint)| IdempotentAccept {
            key,
            fingerprint,
            response: answer.clone(),
            ttl: state.idempotency_ttl,
        }),
    };
    match store.accept(accept).await {
        Ok(Accepted::Queued) => {
            state.delivery_wake.notify_one();
            Ok(super::write::rebuild(&answer, false))
        }
        Ok(Accepted::Replay(stored)) => Ok(super::write::rebuild(&stored, true)),
        Ok(Accepted::Mismatch) => Err(super::write::key_reused()),
        Ok(Accepted::InFlight) => Err(super::write::key_in_use()),
        Ok(Accepted::Full) => {
            warn!(route = %r.route.id, max_pending = state.queue.max_pending, "the write queue is full; refusing");
            Err(Problem {
                retry_after: Some(30),
                ..Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "queue-full",
                    "Queue Full",
                    "The gateway holds as many writes waiting for the database as it may; \
                     nothing was accepted. Try again later.",
                )
            })
        }
        Err(e) => {
            error!(error = %e, "a queued write could not be stored");
            Err(super::write::state_unavailable())
        }
    }
}

/// Queue a direct write's mirror (the same request, for the new database) after the write
/// committed, in a task of its own: the client's answer (the write's) does not wait for it,
/// and a client that goes away does not take it along. A mirror that cannot be queued is
/// logged and counted (`patina_writes_total{outcome="mirror-not-queued"}`), never silent.
pub(super) fn mirror(
    r: &Request<'_>,
    (mirror, params, objects, bytes): (
        std::sync::Arc<crate::catalog::RoutePlan>,
        Vec<crate::codec::BindValue>,
        Vec<Object>,
        Vec<u8>,
    ),
) {
    let Some(app) = r.req.app_data::<actix_web::web::Data<AppState>>().cloned() else {
        return;
    };
    let (path, query) = (r.req.path().to_string(), r.req.query_string().to_string());
    let (path_params, claims) = (r.path_params.to_vec(), r.claims.clone());
    let (identity, generation, route_id) =
        (r.identity.to_string(), r.generation, r.route.id.clone());
    tokio::spawn(async move {
        let Some(queue) = mirror.write.as_ref().and_then(|w| w.queue.as_ref()) else {
            return;
        };
        let incoming = Incoming {
            route: &mirror,
            path: &path,
            query: &query,
            path_params: &path_params,
            claims: &claims,
            identity: &identity,
            params: &params,
            generation,
        };
        if let Err(p) = accept(&app, &incoming, queue, &objects, bytes, None).await {
            error!(route = %route_id, problem = %p.slug, "the write committed, but its mirror could not be queued for the new database");
            app.metrics.write(&mirror.id, "mirror-not-queued");
        }
    });
}

/// The text of the order key's value (empty for none).
fn key_text(v: ValueRef, params: &[crate::codec::BindValue], objects: &[Object]) -> String {
    let b = match v {
        ValueRef::Param(i) => params.get(i),
        ValueRef::Field(i) => match objects.first().and_then(|o| o.get(i)) {
            Some(body::FieldValue::One(b)) => Some(b),
            _ => None,
        },
        _ => None,
    };
    b.and_then(super::script::bind_text).unwrap_or_default()
}

/// `GET /{version}/_deliveries/{id}`: the sender (or an administrator) reads where a queued
/// write stands. Anyone else gets the same 404 as for an unknown id. A write to a public route
/// sent without credentials is the sender's address's, as its idempotency keys are: read back
/// without credentials from that address.
pub(super) async fn show(req: &HttpRequest, state: &AppState, id: &str) -> HttpResponse {
    let rid = super::request_id_of(req);
    let answer = async {
        let identity = super::route::authenticate(req, state).await?;
        let sender = super::route::sender_label(req, state, &identity);
        let not_found = || Problem::not_found("No delivery has this id.");
        let store = state.queue_store().map_err(|e| {
            error!(error = %e, "the write queue cannot be reached");
            super::write::state_unavailable()
        })?;
        // Without credentials, a delivery that is not the caller's may be theirs under their
        // credentials: ask for them, for an unknown id too (the answer tells nothing).
        let refused = || {
            if identity.is_authenticated() {
                not_found()
            } else {
                Problem::unauthorized(super::route::challenges(state, None))
            }
        };
        let found = store
            .delivery(id)
            .await
            .map_err(|e| {
                error!(error = %e, "a delivery could not be read");
                super::write::state_unavailable()
            })?
            .ok_or_else(refused)?;
        let admin = identity.scopes().iter().any(|s| s == super::admin::SCOPE);
        if found.identity != sender && !admin {
            return Err(refused());
        }
        Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(view(&found, admin)))
    }
    .await;
    answer.unwrap_or_else(|p| p.response(req.path(), &rid))
}

/// A delivery as its sender sees it; an administrator sees the request too.
pub fn view(d: &Delivery, admin: bool) -> serde_json::Value {
    let time = |ms: u64| crate::clock::rfc3339_ms(ms);
    let last = d
        .attempts
        .iter()
        .rev()
        .find(|a| !matches!(a.outcome.as_str(), "delivered" | "replayed"));
    let mut v = serde_json::json!({
        "id": d.id,
        "route": d.route,
        "status": d.status.as_str(),
        "attempts": d.tries,
        "accepted_at": time(d.accepted_at),
    });
    let o = v.as_object_mut().expect("an object");
    if d.status == Status::Pending {
        o.insert("next_attempt_at".into(), time(d.next_at).into());
    }
    if let Some(at) = d.finished_at {
        o.insert("finished_at".into(), time(at).into());
    }
    if let Some(a) = last {
        o.insert("last_error".into(), a.outcome.clone().into());
        if let Some(detail) = &a.detail {
            o.insert("last_error_detail".into(), detail.clone().into());
        }
    }
    if let Some(r) = &d.result {
        if let Some(l) = &r.location {
            o.insert("location".into(), l.clone().into());
        }
        if let Some(body) = r
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        {
            o.insert("result".into(), body);
        }
    }
    if admin {
        o.insert("identity".into(), d.identity.clone().into());
        o.insert("mappings".into(), format!("{:016x}", d.generation).into());
        if let Ok(req) = serde_json::from_str::<StoredRequest>(&d.request) {
            o.insert("path".into(), req.path.into());
            if !req.query.is_empty() {
                o.insert("query".into(), req.query.into());
            }
            o.insert(
                "body".into(),
                serde_json::from_str::<serde_json::Value>(&req.body)
                    .unwrap_or(serde_json::Value::Null),
            );
        }
        o.insert(
            "history".into(),
            d.attempts
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "at": time(a.at),
                        "outcome": a.outcome,
                        "detail": a.detail,
                    })
                })
                .collect(),
        );
    }
    v
}

/// Deliver one: decode its request under the current mapping, run it, judge the outcome.
pub(super) async fn deliver(state: &AppState, d: &Delivery) -> Outcome {
    let dead = |category: &str, detail: String| Outcome::Dead {
        category: category.to_string(),
        detail,
    };
    let Ok(request) = serde_json::from_str::<StoredRequest>(&d.request) else {
        return dead(
            "unreadable",
            "The stored request cannot be read by this version of the gateway.".into(),
        );
    };
    let catalog = state.catalog();
    let Some((_, route)) = catalog.route_by_id(&d.route) else {
        return dead(
            "route-gone",
            format!(
                "The mappings no longer have the route `{}`; restore it, then replay.",
                d.route
            ),
        );
    };
    let Some(plan) = &route.write else {
        return dead(
            "route-gone",
            format!(
                "The route `{}` is no longer a write; restore it, then replay.",
                d.route
            ),
        );
    };
    let claims = request.claims;
    let params =
        match super::params::param_values(route, &request.path_params, &request.query, &|c| {
            claims.get(c).cloned()
        }) {
            Ok(p) => p,
            Err(e) => {
                let p = super::route::bind_problem(route, e);
                return dead("invalid-request", problem_text(&p));
            }
        };
    let objects = match &plan.body {
        Some(b) => match body::parse(b, request.body.as_bytes()) {
            Ok(o) => o,
            Err(errors) => {
                return dead("invalid-body", problem_text(&Problem::invalid_body(errors)));
            }
        },
        None => vec![Vec::new()],
    };
    let dedup = plan
        .queue
        .as_ref()
        .and_then(|q| q.dedup.as_ref())
        .map(|t| Dedup::new(t, &d.id, &d.route));
    let policy = plan
        .queue
        .as_ref()
        .map_or_else(RetryPolicy::default, |q| q.retry);
    match super::write::execute(state, route, plan, params, objects, None, dedup).await {
        Ok(Executed::Delivered) => {
            info!(delivery = %d.id, route = %d.route, "the database has this delivery already (dedup table)");
            Outcome::Delivered(DeliveryResult {
                status: 200,
                location: None,
                body: None,
            })
        }
        Ok(Executed::Response(res)) => {
            let status = res.status().as_u16();
            let location = res
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = actix_web::body::to_bytes(res.into_body())
                .await
                .ok()
                .filter(|b| !b.is_empty())
                .and_then(|b| String::from_utf8(b.to_vec()).ok());
            Outcome::Delivered(DeliveryResult {
                status,
                location,
                body,
            })
        }
        Err(p) if transient(&p) => {
            let now = crate::clock::now_ms();
            let tries = d.tries + 1;
            let age = Duration::from_millis(now.saturating_sub(d.accepted_at));
            if tries >= policy.max_attempts || age >= policy.max_age {
                dead(
                    p.slug,
                    format!(
                        "Gave up after {tries} attempt(s) over {}s: {}",
                        age.as_secs(),
                        p.detail
                    ),
                )
            } else {
                let wait = backoff(policy, tries);
                Outcome::Retry {
                    next_at: now
                        .saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
                    category: p.slug.to_string(),
                    detail: p.detail,
                }
            }
        }
        Err(p) => dead(p.slug, problem_text(&p)),
    }
}

/// A failure that may pass: the database unreachable, busy, slow, or colliding.
fn transient(p: &Problem) -> bool {
    matches!(
        p.status,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

/// The wait before attempt `tries + 1`: a random time up to `base × 2^(tries-1)`, at most
/// `cap` (exponential backoff with full jitter: retries of many deliveries spread out).
pub(super) fn backoff(policy: RetryPolicy, tries: u32) -> Duration {
    let exp = policy
        .base
        .saturating_mul(1u32 << tries.saturating_sub(1).min(30));
    let ceiling = exp.min(policy.cap);
    let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=ms))
}

/// A problem's detail with its field errors, for an operator.
fn problem_text(p: &Problem) -> String {
    let mut out = p.detail.clone();
    for e in &p.errors {
        let at = e.pointer.as_deref().unwrap_or(&e.name);
        let _ = write!(out, " {at}: {}.", e.detail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_full_jitter() {
        let policy = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            max_attempts: 10,
            max_age: Duration::from_hours(1),
        };
        for tries in 1..40 {
            let ceiling = Duration::from_millis(100 * (1u64 << (tries - 1).min(30)))
                .min(Duration::from_secs(2));
            for _ in 0..50 {
                assert!(backoff(policy, tries) <= ceiling, "{tries}");
            }
        }
        // Jitter: waits for one attempt differ.
        let waits: std::collections::HashSet<_> = (0..50).map(|_| backoff(policy, 6)).collect();
        assert!(waits.len() > 10, "{waits:?}");
    }

    #[test]
    fn deliveries_are_read_under_their_version() {
        assert_eq!(deliveries_base("/v1/jobs/{job}/notes"), "/v1/_deliveries");
        assert_eq!(deliveries_base("/v2/orders"), "/v2/_deliveries");
    }
}
