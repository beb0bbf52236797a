//! Serving a write route: the body read within its limit and checked (415, 413, 422 with every
//! mistake), `If-Match` (428, 412) and `Idempotency-Key` (replay, 409 while in flight, 422 on
//! another body), then the route's steps run in one transaction by a `script::WriteScript` on the
//! source's own thread, retried on deadlock, and the answer: the written row(s), `201` +
//! `Location`, or `204`. Database refusals become problems through the one boundary.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use tracing::{error, warn};

use super::AppState;
use super::body::{self, FieldValue, Object};
use super::problem::Problem;
use super::script::{Dedup, Guard, Stop, WriteScript};
use crate::catalog::{FieldType, Idempotency, RoutePlan, WritePlan};
use crate::codec::BindValue;
use crate::source::{Script, SourceError, TxOptions};
use crate::state::{Claim, Fingerprint, StoredResponse};

/// Attempts at a transaction that deadlocks (or fails to serialize) before answering 503.
const ATTEMPTS: u32 = 4;
/// How long a claimed `Idempotency-Key` is held for a request that is still running. The
/// record and the database commit are two stores, not one transaction: a process that dies
/// after the commit and before completing the record leaves a claim that a retry may run again
/// once this lease has passed.
const IDEMPOTENCY_LEASE: Duration = Duration::from_mins(2);
/// Longest `Idempotency-Key` accepted.
const MAX_KEY: usize = 255;

/// What the write needs from the request, already checked.
pub(super) struct Request<'a> {
    pub req: &'a HttpRequest,
    pub payload: Option<web::Payload>,
    pub route: &'a Arc<RoutePlan>,
    pub identity: &'a str,
    /// The route's parameters, in `RoutePlan::params` order.
    pub params: Vec<BindValue>,
    /// The raw path parameters and the claims the route's parameters read: what a queued
    /// write keeps to decode its request again when it is delivered.
    pub path_params: &'a [(String, String)],
    pub claims: std::collections::BTreeMap<String, String>,
    pub generation: u64,
}

/// How a transaction ended well.
pub(super) enum Executed {
    Response(HttpResponse),
    /// The dedup table had the delivery's id: the database has this write already.
    Delivered,
}

/// Run a write route; the answer, or the problem that ends it.
pub(super) async fn serve(state: &AppState, mut r: Request<'_>) -> Result<HttpResponse, Problem> {
    let Some(plan) = &r.route.write else {
        return Err(Problem::not_found("No route matches this path."));
    };
    let bytes = read_body(r.req, r.payload.take(), plan, state.max_body_bytes).await?;
    let objects = match &plan.body {
        Some(b) => body::parse(b, &bytes).map_err(Problem::invalid_body)?,
        None => vec![Vec::new()],
    };
    let if_match = if_match(r.req, plan)?;
    let key = idempotency_key(r.req, plan)?;
    let fingerprint = Fingerprint::of(&[
        r.req.method().as_str().as_bytes(),
        r.req.path().as_bytes(),
        r.req.query_string().as_bytes(),
        &bytes,
    ]);
    if let Some(queue) = &plan.queue {
        let key = key.map(|k| (format!("{}\n{}\n{k}", r.identity, r.route.id), fingerprint));
        return super::queue::accept(
            state,
            &super::queue::Incoming::of(&r),
            queue,
            &objects,
            bytes,
            key,
        )
        .await;
    }
    // A mirrored write is queued for the new database once this one has committed.
    let mirror = r.route.mirror.as_ref().map(|m| {
        (
            Arc::clone(m),
            r.params.clone(),
            objects.clone(),
            bytes.clone(),
        )
    });
    let Some(key) = key else {
        let answer = direct(state, r.route, plan, r.params.clone(), objects, if_match).await;
        if let (Some(m), Ok(res)) = (mirror, &answer)
            && res.status().is_success()
        {
            super::queue::mirror(&r, m);
        }
        return answer;
    };
    let keys = state.keys().map_err(|e| {
        error!(error = %e, "the idempotency records cannot be reached");
        state_unavailable()
    })?;
    let record_key = format!("{}\n{}\n{key}", r.identity, r.route.id);
    let ttl = state.idempotency_ttl;
    let claimed = keys
        .claim(&record_key, fingerprint, IDEMPOTENCY_LEASE, ttl)
        .await;
    match claimed {
        Ok(Claim::Run) => {}
        Ok(Claim::Replay(stored)) => return Ok(rebuild(&stored, true)),
        Ok(Claim::InFlight) => return Err(key_in_use()),
        Ok(Claim::Mismatch) => return Err(key_reused()),
        Err(e) => {
            error!(error = %e, "idempotency record could not be claimed");
            return Err(state_unavailable());
        }
    }
    let answer = direct(state, r.route, plan, r.params.clone(), objects, if_match).await;
    if let (Some(m), Ok(res)) = (mirror, &answer)
        && res.status().is_success()
    {
        super::queue::mirror(&r, m);
    }
    let rid = super::request_id_of(r.req);
    let response = match answer {
        Ok(res) => res,
        Err(p) => p.response(r.req.path(), &rid),
    };
    let status = response.status().as_u16();
    // A failure a retry may repeat safely (nothing was written) frees the key; any other
    // answer is the key's answer from now on.
    let keep = status < 500;
    let (parts, body) = response.into_parts();
    let body_bytes = actix_web::body::to_bytes(body).await.unwrap_or_default();
    let stored = StoredResponse {
        status,
        headers: parts
            .headers()
            .iter()
            .filter(|(n, _)| {
                [
                    header::CONTENT_TYPE,
                    header::LOCATION,
                    header::ETAG,
                    header::RETRY_AFTER,
                ]
                .contains(n)
            })
            .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: body_bytes.to_vec(),
    };
    let recorded = if keep {
        keys.complete(&record_key, fingerprint, stored.clone(), ttl)
            .await
    } else {
        keys.release(&record_key, fingerprint).await
    };
    if recorded.is_err() {
        error!(route = %r.route.id, "the answer to an idempotent write could not be recorded");
    }
    Ok(rebuild(&stored, false))
}

/// 409: the first request with this `Idempotency-Key` is still running.
pub(super) fn key_in_use() -> Problem {
    Problem {
        retry_after: Some(1),
        ..Problem::new(
            StatusCode::CONFLICT,
            "idempotency-key-in-use",
            "Request In Progress",
            "A request with this Idempotency-Key is still being processed; retry it after it \
             has finished to get its answer.",
        )
    }
}

/// 422: the `Idempotency-Key` was used for another request.
pub(super) fn key_reused() -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
        "Idempotency Key Reused",
        "This Idempotency-Key was used for a different request; use a new key.",
    )
}

/// 503: the store of idempotency records cannot be used; nothing was run.
pub(super) fn state_unavailable() -> Problem {
    Problem {
        retry_after: Some(1),
        ..Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "state-unavailable",
            "State Unavailable",
            "Idempotent writes cannot be recorded right now; nothing was written.",
        )
    }
}

/// The body, within the limit, of the declared content type.
async fn read_body(
    req: &HttpRequest,
    payload: Option<web::Payload>,
    plan: &WritePlan,
    limit: usize,
) -> Result<Vec<u8>, Problem> {
    let mut out = Vec::new();
    if let Some(mut payload) = payload {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad-body",
                    "Bad Body",
                    "The request body could not be read.",
                )
            })?;
            if out.len() + chunk.len() > limit {
                return Err(Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "Body Too Large",
                    format!("The request body is larger than {limit} bytes."),
                ));
            }
            out.extend_from_slice(&chunk);
        }
    }
    if plan.body.is_none() {
        return Ok(out);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported Media Type",
            "Send the body as JSON, with Content-Type: application/json.",
        ));
    }
    Ok(out)
}

/// The entity tags of `If-Match` (`*` as itself); 428 when the route requires one. A route
/// that cannot check the header (no `etag_from`) answers 412 to entity tags rather than write
/// as if they had matched: none can match a record it has no ETag for.
fn if_match(req: &HttpRequest, plan: &WritePlan) -> Result<Option<Vec<String>>, Problem> {
    // A header without a single tag (empty, or only commas) is no precondition at all.
    let given = req
        .headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|tags| !tags.is_empty());
    let Some(m) = &plan.if_match else {
        return match given {
            Some(tags) if tags.iter().any(|t| t != "*") => Err(Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "Precondition Failed",
                "This route cannot check If-Match (its mapping names no etag_from): send the \
                 write without it. Nothing was written.",
            )),
            _ => Ok(None),
        };
    };
    match given {
        Some(tags) => Ok(Some(tags)),
        None if m.required => Err(Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "if-match-required",
            "Precondition Required",
            "This route changes a record only with If-Match: send the ETag of your last read \
             of it.",
        )),
        None => Ok(None),
    }
}

/// The `Idempotency-Key` header, checked; 400 when the route requires one and it is missing.
fn idempotency_key(req: &HttpRequest, plan: &WritePlan) -> Result<Option<String>, Problem> {
    let mode = plan.idempotency;
    let bad = |detail: &str| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "idempotency-key-invalid",
            "Invalid Idempotency Key",
            detail.to_string(),
        )
    };
    match req
        .headers()
        .get("idempotency-key")
        .map(HeaderValue::to_str)
    {
        None if mode == Idempotency::Required => Err(bad(
            "This route needs an Idempotency-Key header: a unique value per operation, the \
             same on every retry of it.",
        )),
        None => Ok(None),
        Some(Ok(v)) => {
            // A structured-field string is sent quoted; a bare token is taken as it is.
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if v.is_empty() || v.len() > MAX_KEY || !v.bytes().all(|b| b.is_ascii_graphic()) {
                Err(bad(
                    "The Idempotency-Key must be 1 to 255 visible ASCII characters.",
                ))
            } else {
                Ok(Some(v.to_string()))
            }
        }
        Some(Err(_)) => Err(bad("The Idempotency-Key must be visible ASCII characters.")),
    }
}

pub(super) fn rebuild(stored: &StoredResponse, replayed: bool) -> HttpResponse {
    let mut b = HttpResponse::build(
        StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    for (n, v) in &stored.headers {
        b.insert_header((n.as_str(), v.as_str()));
    }
    if replayed {
        b.insert_header(("idempotent-replayed", "true"));
    }
    b.insert_header((header::CACHE_CONTROL, "no-store"));
    b.body(stored.body.clone())
}

/// A direct write: run it now and answer with what it wrote.
async fn direct(
    state: &AppState,
    route: &Arc<RoutePlan>,
    plan: &WritePlan,
    params: Vec<BindValue>,
    objects: Vec<Object>,
    if_match: Option<Vec<String>>,
) -> Result<HttpResponse, Problem> {
    match execute(state, route, plan, params, objects, if_match, None).await? {
        Executed::Response(res) => Ok(res),
        // Only a delivery has a dedup check.
        Executed::Delivered => Ok(HttpResponse::NoContent().finish()),
    }
}

/// Run the transaction (again after a deadlock, a bounded number of times) and answer.
pub(super) async fn execute(
    state: &AppState,
    route: &Arc<RoutePlan>,
    plan: &WritePlan,
    params: Vec<BindValue>,
    objects: Vec<Object>,
    if_match: Option<Vec<String>>,
    dedup: Option<Dedup>,
) -> Result<Executed, Problem> {
    let Some(source) = state.sources.get(&route.source) else {
        error!(route = %route.id, source = %route.source, "route refers to a source that is not running");
        return Err(Problem::from_source(&SourceError::Closed));
    };
    let guard = match (&plan.if_match, if_match) {
        (Some(m), Some(tags)) => {
            let catalog = state.catalog();
            let Some((_, read)) = catalog.route_by_id(&m.route) else {
                error!(route = %route.id, etag_from = %m.route, "the ETag route is not in the catalog");
                return Err(Problem::from_source(&SourceError::Closed));
            };
            Some(Guard {
                read: Arc::clone(read),
                binds: m.binds.clone(),
                tags,
                rows: None,
            })
        }
        _ => None,
    };
    let serializable = guard.is_some();
    let secrets = sensitive_values(plan, &objects);
    let mut script: Box<dyn Script> = Box::new(WriteScript::new(
        Arc::clone(route),
        params,
        objects,
        guard,
        dedup,
    ));
    let hide = |text: String| redact(text, &secrets);
    let options = TxOptions {
        serializable,
        timeout: route.statement_timeout,
    };
    let mut attempt = 1;
    let started = std::time::Instant::now();
    let done = loop {
        let done = source.transact(script, options).await;
        match &done.result {
            Err(SourceError::Deadlock(text)) if attempt < ATTEMPTS => {
                warn!(route = %route.id, attempt, error = %hide(text.clone()), "write collided with another; retrying");
                let backoff = 10u64 * (1 << attempt) + rand::random_range(0..10u64);
                tokio::time::sleep(Duration::from_millis(backoff)).await;
                attempt += 1;
                script = done.script;
                script.reset();
            }
            _ => break done,
        }
    };
    state
        .metrics
        .query(&route.source, started.elapsed().as_secs_f64());
    let script = done.script.into_any().downcast::<WriteScript>().ok();
    match done.result {
        Ok(()) => {}
        Err(SourceError::Stopped) => {
            return Err(match script.and_then(|s| s.stop) {
                Some(Stop::Delivered) => return Ok(Executed::Delivered),
                Some(Stop::NotFound) => {
                    Problem::not_found("No row matches these parameters; nothing was written.")
                }
                Some(Stop::Stale) => Problem::new(
                    StatusCode::PRECONDITION_FAILED,
                    "precondition-failed",
                    "Precondition Failed",
                    "The record changed since the ETag you sent: read it again, then retry. \
                     Nothing was written.",
                ),
                Some(Stop::Outcome(o)) => Problem::new(
                    StatusCode::from_u16(o.status).unwrap_or(StatusCode::CONFLICT),
                    "write-refused",
                    "Write Refused",
                    o.detail,
                ),
                Some(Stop::NoOutput(name)) => {
                    error!(route = %route.id, output = %name, "a step returned no row for its outputs");
                    Problem::from_source(&SourceError::Query(String::new()))
                }
                None => Problem::from_source(&SourceError::Stopped),
            });
        }
        Err(e) => {
            match &e {
                SourceError::Conflict(_)
                | SourceError::Constraint(_)
                | SourceError::BadValue(_) => {
                    warn!(route = %route.id, source = %route.source, error = %hide(e.to_string()), "the database refused the write");
                }
                _ => {
                    error!(route = %route.id, source = %route.source, file = %route.file, error = %hide(e.to_string()), "write failed; rolled back");
                }
            }
            return Err(match e {
                // A value the body's checks let through but the column could not hold.
                SourceError::BadValue(_) | SourceError::OutOfRange { .. } => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "value-refused",
                    "Value Refused",
                    "The database refused a value as out of range or malformed for its column. \
                     Nothing was written.",
                ),
                e => Problem::from_source(&e),
            });
        }
    }
    let Some(script) = script else {
        return Err(Problem::from_source(&SourceError::Closed));
    };
    Ok(Executed::Response(answer(route, plan, &script)))
}

/// The text of every value of a field marked `sensitive`, longest first.
pub(super) fn sensitive_values(plan: &WritePlan, objects: &[Object]) -> Vec<String> {
    let Some(body) = &plan.body else {
        return Vec::new();
    };
    let text = super::script::bind_text;
    let mut out = Vec::new();
    for o in objects {
        for (f, v) in body.fields.iter().zip(o) {
            match (&f.ty, v) {
                (_, FieldValue::One(b)) if f.sensitive => out.extend(text(b)),
                (FieldType::List { items, .. }, FieldValue::List(rows)) => {
                    for row in rows {
                        for (item, b) in items.iter().zip(row) {
                            if item.sensitive {
                                out.extend(text(b));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

/// `text` with every sensitive value blanked (driver messages may quote what was written).
pub(super) fn redact(mut text: String, secrets: &[String]) -> String {
    for s in secrets {
        if text.contains(s.as_str()) {
            text = text.replace(s.as_str(), "[redacted]");
        }
    }
    text
}

/// The answer to a write that committed.
fn answer(route: &RoutePlan, plan: &WritePlan, s: &WriteScript) -> HttpResponse {
    let rows: usize = s.rows_out.iter().map(|(_, n)| n).sum();
    let mut joined = Vec::new();
    for (bytes, n) in &s.rows_out {
        if *n == 0 {
            continue;
        }
        if !joined.is_empty() {
            joined.push(b',');
        }
        joined.extend_from_slice(bytes);
    }
    let location = plan.location.as_ref().map(|parts| s.location(route, parts));
    let status = StatusCode::from_u16(plan.status).unwrap_or(StatusCode::OK);
    let mut b = if rows == 0 {
        if location.is_some() && plan.status == 201 {
            HttpResponse::Created()
        } else {
            HttpResponse::NoContent()
        }
    } else {
        HttpResponse::build(status)
    };
    b.insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(l) = location
        && let Ok(v) = HeaderValue::from_str(&l)
    {
        b.insert_header((header::LOCATION, v));
    }
    if rows == 0 {
        return b.finish();
    }
    b.insert_header((header::CONTENT_TYPE, "application/json"));
    if rows == 1 && s.objects.len() == 1 {
        return b.body(joined);
    }
    let mut body = Vec::with_capacity(joined.len() + 16);
    body.extend_from_slice(b"{\"data\":[");
    body.extend_from_slice(&joined);
    body.extend_from_slice(b"]}");
    b.body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::testing::{compile_text, sources};

    #[test]
    fn sensitive_values_never_reach_the_log() {
        let text = r#"source = "pg"
[[route]]
id = "w"
method = "POST"
path = "/cards"
scopes = ["w"]
body.holder = "string"
body.pan = { type = "string", sensitive = true }
body.extra = { type = "list", items.pin = { type = "string", sensitive = true }, items.n = "integer" }
[[route.step]]
sql = "INSERT INTO C VALUES (:holder, :pan)"
[[route.step]]
for_each = "extra"
sql = "INSERT INTO P VALUES (:pin, :n)"
"#;
        let c = compile_text("w.toml", text, &sources()).unwrap_or_else(|e| panic!("{e:?}"));
        let plan = c.routes[0].write.as_ref().expect("write");
        let objects = body::parse(
            plan.body.as_ref().expect("body"),
            br#"{"holder": "Ann", "pan": "4111111111111111", "extra": [{"pin": "1234", "n": 1}]}"#,
        )
        .expect("valid");
        let secrets = sensitive_values(plan, &objects);
        assert_eq!(secrets, ["4111111111111111", "1234"]);
        let logged = redact(
            "duplicate key (pan)=(4111111111111111), pin 1234, holder Ann".into(),
            &secrets,
        );
        assert_eq!(
            logged,
            "duplicate key (pan)=([redacted]), pin [redacted], holder Ann"
        );
    }
}
