//! Serving a write route: the body read within its limit and checked (415, 413, 422 with every
//! mistake), `If-Match` (428, 412) and `Idempotency-Key` (replay, 409 while in flight, 422 on
//! another body), then the route's steps run in one transaction by a [`WriteScript`] on the
//! source's own thread, retried on deadlock, and the answer: the written row(s), `201` +
//! `Location`, or `204`. Database refusals become problems through the one boundary.

use std::collections::VecDeque;
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
use crate::catalog::{Idempotency, LocationPart, Outcome, RoutePlan, ValueRef, WritePlan};
use crate::codec::{BindKind, BindValue, Cell};
use crate::encode::{JsonRows, LayoutCache};
use crate::shape::ColumnInfo;
use crate::source::{Next, RowSink, Script, SinkError, SourceError, TxOptions, TxStatement};
use crate::state::{Claim, Fingerprint, StoredResponse};

/// Attempts at a transaction that deadlocks (or fails to serialize) before answering 503.
const ATTEMPTS: u32 = 4;
/// Rows a write statement may return.
const STEP_ROWS: usize = 1000;
/// How long a claimed `Idempotency-Key` is held for a request that is still running.
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
}

/// Run a write route; the answer, or the problem that ends it.
pub(super) async fn serve(state: &AppState, r: Request<'_>) -> Result<HttpResponse, Problem> {
    let Some(plan) = &r.route.write else {
        return Err(Problem::not_found("No route matches this path."));
    };
    let bytes = read_body(r.req, r.payload, plan, state.max_body_bytes).await?;
    let objects = match &plan.body {
        Some(b) => body::parse(b, &bytes).map_err(Problem::invalid_body)?,
        None => vec![Vec::new()],
    };
    let if_match = if_match(r.req, plan)?;
    let key = idempotency_key(r.req, plan)?;
    let Some(key) = key else {
        return execute(state, r.route, plan, r.params, objects, if_match).await;
    };
    let store = state.store().map_err(|e| {
        error!(error = %e, "the state store cannot be opened");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "state-unavailable",
            "State Unavailable",
            "Idempotent writes cannot be recorded right now; nothing was written.",
        )
    })?;
    let record_key = format!("{}\n{}\n{key}", r.identity, r.route.id);
    let fingerprint = Fingerprint::of(&[
        r.req.method().as_str().as_bytes(),
        r.req.path().as_bytes(),
        r.req.query_string().as_bytes(),
        &bytes,
    ]);
    let ttl = state.idempotency_ttl;
    let claimed = {
        let (store, k) = (Arc::clone(&store), record_key.clone());
        web::block(move || store.claim(&k, &fingerprint, IDEMPOTENCY_LEASE, ttl)).await
    };
    match claimed {
        Ok(Ok(Claim::Run)) => {}
        Ok(Ok(Claim::Replay(stored))) => return Ok(replay(&stored)),
        Ok(Ok(Claim::InFlight)) => {
            return Err(Problem {
                retry_after: Some(1),
                ..Problem::new(
                    StatusCode::CONFLICT,
                    "idempotency-key-in-use",
                    "Request In Progress",
                    "A request with this Idempotency-Key is still being processed; retry it \
                     after it has finished to get its answer.",
                )
            });
        }
        Ok(Ok(Claim::Mismatch)) => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency Key Reused",
                "This Idempotency-Key was used for a different request; use a new key.",
            ));
        }
        Ok(Err(e)) => {
            error!(error = %e, "idempotency record could not be claimed");
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "state-unavailable",
                "State Unavailable",
                "Idempotent writes cannot be recorded right now; nothing was written.",
            ));
        }
        Err(e) => {
            error!(error = %e, "idempotency record could not be claimed");
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "state-unavailable",
                "State Unavailable",
                "Idempotent writes cannot be recorded right now; nothing was written.",
            ));
        }
    }
    let answer = execute(state, r.route, plan, r.params, objects, if_match).await;
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
    let (store2, k) = (Arc::clone(&store), record_key);
    let recorded = if keep {
        let s = stored.clone();
        web::block(move || store2.complete(&k, &fingerprint, &s, ttl)).await
    } else {
        web::block(move || store2.release(&k, &fingerprint)).await
    };
    if !matches!(recorded, Ok(Ok(()))) {
        error!(route = %r.route.id, "the answer to an idempotent write could not be recorded");
    }
    Ok(rebuild(&stored, false))
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

/// The entity tags of `If-Match` (`*` as itself); 428 when the route requires one.
fn if_match(req: &HttpRequest, plan: &WritePlan) -> Result<Option<Vec<String>>, Problem> {
    let Some(m) = &plan.if_match else {
        return Ok(None);
    };
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
    let Some(mode) = plan.idempotency else {
        return Ok(None);
    };
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

fn replay(stored: &StoredResponse) -> HttpResponse {
    rebuild(stored, true)
}

fn rebuild(stored: &StoredResponse, replayed: bool) -> HttpResponse {
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

/// Run the transaction (again after a deadlock, a bounded number of times) and answer.
async fn execute(
    state: &AppState,
    route: &Arc<RoutePlan>,
    plan: &WritePlan,
    params: Vec<BindValue>,
    objects: Vec<Object>,
    if_match: Option<Vec<String>>,
) -> Result<HttpResponse, Problem> {
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
    let mut script: Box<dyn Script> =
        Box::new(WriteScript::new(Arc::clone(route), params, objects, guard));
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
                warn!(route = %route.id, attempt, error = %text, "write collided with another; retrying");
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
                    warn!(route = %route.id, source = %route.source, error = %e, "the database refused the write");
                }
                _ => {
                    error!(route = %route.id, source = %route.source, file = %route.file, error = %e, "write failed; rolled back");
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
    Ok(answer(route, plan, &script))
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

/// Why a script stopped its transaction.
#[derive(Debug)]
enum Stop {
    NotFound,
    Stale,
    Outcome(Outcome),
    NoOutput(String),
}

/// The `If-Match` check: the read route's row, its ETag compared with the tags sent.
struct Guard {
    read: Arc<RoutePlan>,
    binds: Vec<ValueRef>,
    tags: Vec<String>,
    rows: Option<Box<JsonRows>>,
}

/// Which statement is running.
#[derive(Clone, Copy, Debug)]
enum Current {
    Guard,
    Step {
        obj: usize,
        step: usize,
        item: usize,
    },
}

/// A write's statements, run one after another in one transaction on the source's thread:
/// the `If-Match` check first, then each step per body object (and per list element), values a
/// step returns bound by later ones, the last step's rows kept as the answer.
struct WriteScript {
    route: Arc<RoutePlan>,
    params: Vec<BindValue>,
    objects: Vec<Object>,
    guard: Option<Guard>,
    pending: VecDeque<Current>,
    current: Option<Current>,
    /// Per object, the values its steps returned.
    outputs: Vec<Vec<Option<BindValue>>>,
    columns: Vec<ColumnInfo>,
    response: Option<Box<JsonRows>>,
    /// Per run of the last step, its rows as JSON objects (comma-joined) and their count.
    rows_out: Vec<(Vec<u8>, usize)>,
    outcome: Option<String>,
    stop: Option<Stop>,
    layout: Arc<LayoutCache>,
}

impl std::fmt::Debug for WriteScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteScript")
            .field("route", &self.route.id)
            .finish_non_exhaustive()
    }
}

impl WriteScript {
    fn new(
        route: Arc<RoutePlan>,
        params: Vec<BindValue>,
        objects: Vec<Object>,
        guard: Option<Guard>,
    ) -> Self {
        let mut s = Self {
            route,
            params,
            objects,
            guard,
            pending: VecDeque::new(),
            current: None,
            outputs: Vec::new(),
            columns: Vec::new(),
            response: None,
            rows_out: Vec::new(),
            outcome: None,
            stop: None,
            layout: Arc::default(),
        };
        s.reset();
        s
    }

    fn plan(&self) -> &WritePlan {
        self.route.write.as_ref().expect("a write route")
    }

    fn value(&self, v: ValueRef, obj: usize, item: usize) -> Result<BindValue, Stop> {
        let null = BindValue::Null(BindKind::Text);
        Ok(match v {
            ValueRef::Param(i) => self.params.get(i).cloned().unwrap_or(null),
            ValueRef::Field(i) => match self.objects.get(obj).and_then(|o| o.get(i)) {
                Some(FieldValue::One(b)) => b.clone(),
                _ => null,
            },
            ValueRef::Item(list, j) => match self.objects.get(obj).and_then(|o| o.get(list)) {
                Some(FieldValue::List(items)) => items
                    .get(item)
                    .and_then(|it| it.get(j))
                    .cloned()
                    .unwrap_or(null),
                _ => null,
            },
            ValueRef::Index => BindValue::Int(i64::try_from(item + 1).unwrap_or(i64::MAX)),
            ValueRef::Output(k) => self
                .outputs
                .get(obj)
                .and_then(|o| o.get(k))
                .cloned()
                .flatten()
                .ok_or_else(|| Stop::NoOutput(self.plan().outputs[k].clone()))?,
        })
    }

    fn is_last(&self, step: usize) -> bool {
        step + 1 == self.plan().steps.len()
    }

    /// The `Location`, from the answer's first row, the request's values and step outputs.
    fn location(&self, route: &RoutePlan, parts: &[LocationPart]) -> String {
        let first_row: Option<serde_json::Map<String, serde_json::Value>> = self
            .rows_out
            .iter()
            .find(|(_, n)| *n > 0)
            .and_then(|(bytes, _)| {
                let end = first_object_end(bytes)?;
                serde_json::from_slice(&bytes[..end]).ok()
            });
        let mut out = String::new();
        for p in parts {
            match p {
                LocationPart::Text(t) => out.push_str(t),
                LocationPart::Name(n) => {
                    let v = first_row
                        .as_ref()
                        .and_then(|r| r.get(n))
                        .map(|v| match v {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .or_else(|| self.named_value(route, n));
                    let v = v.unwrap_or_default();
                    out.extend(percent_encoding::utf8_percent_encode(
                        &v,
                        percent_encoding::NON_ALPHANUMERIC,
                    ));
                }
            }
        }
        out
    }

    fn named_value(&self, route: &RoutePlan, name: &str) -> Option<String> {
        let text = |b: &BindValue| match b {
            BindValue::Int(i) => Some(i.to_string()),
            BindValue::Float(f) => Some(f.to_string()),
            BindValue::Text(t) => Some(t.trim_end().to_string()),
            BindValue::Null(_) => None,
        };
        if let Some(i) = route.params.iter().position(|p| p.name == name) {
            return self.params.get(i).and_then(text);
        }
        let plan = self.plan();
        if let Some(i) = plan
            .body
            .as_ref()
            .and_then(|b| b.fields.iter().position(|f| f.name == name))
            && let Some(FieldValue::One(b)) = self.objects.first().and_then(|o| o.get(i))
        {
            return text(b);
        }
        let k = plan.outputs.iter().position(|o| o == name)?;
        self.outputs.first()?.get(k)?.as_ref().and_then(text)
    }
}

/// Where the first object of comma-joined JSON objects ends.
fn first_object_end(bytes: &[u8]) -> Option<usize> {
    let mut de = serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>();
    de.next()?.ok()?;
    Some(de.byte_offset())
}

/// A returned value, to bind in a later step.
fn bind_of(cell: &Cell<'_>) -> BindValue {
    match *cell {
        Cell::Null | Cell::Binary(_) => BindValue::Null(BindKind::Text),
        Cell::Text(b) => BindValue::Text(String::from_utf8_lossy(b).into_owned()),
        Cell::Int(i) => BindValue::Int(i),
        Cell::Float(f) => BindValue::Float(f),
        Cell::Bool(b) => BindValue::Int(i64::from(b)),
        c @ Cell::Decimal { .. } => {
            let mut s = String::new();
            let _ = c.write_text(&mut s);
            BindValue::Text(s)
        }
    }
}

/// The text of a cell, for comparing with an outcome's value.
fn text_of(cell: &Cell<'_>) -> Option<String> {
    match bind_of(cell) {
        BindValue::Text(t) => Some(t.trim().to_string()),
        BindValue::Int(i) => Some(i.to_string()),
        BindValue::Float(f) => Some(f.to_string()),
        BindValue::Null(_) => None,
    }
}

impl RowSink for WriteScript {
    fn begin(&mut self, columns: &[ColumnInfo]) -> Result<(), SinkError> {
        self.columns = columns.to_vec();
        match self.current {
            Some(Current::Guard) => {
                if let Some(g) = &mut self.guard {
                    let mut rows = Box::new(JsonRows::new(Arc::clone(&g.read), Arc::default()));
                    rows.begin(columns)?;
                    g.rows = Some(rows);
                }
            }
            Some(Current::Step { step, .. }) if self.is_last(step) => {
                let mut rows = Box::new(JsonRows::new(
                    Arc::clone(&self.route),
                    Arc::clone(&self.layout),
                ));
                rows.begin(columns)?;
                self.response = Some(rows);
            }
            _ => {}
        }
        Ok(())
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), SinkError> {
        let Some(current) = self.current else {
            return Ok(());
        };
        match current {
            Current::Guard => {
                if let Some(rows) = self.guard.as_mut().and_then(|g| g.rows.as_mut()) {
                    rows.row(cells)?;
                }
            }
            Current::Step { obj, step, .. } => {
                let plan = self.route.write.as_ref().expect("a write route");
                let st = &plan.steps[step];
                if !st.outputs.is_empty()
                    && let Some(slots) = self.outputs.get_mut(obj)
                    && slots.get(st.outputs[0]).is_some_and(Option::is_none)
                {
                    for (k, cell) in st.outputs.iter().zip(cells) {
                        slots[*k] = Some(bind_of(cell));
                    }
                }
                if step + 1 == plan.steps.len() {
                    if self.outcome.is_none()
                        && let Some(col) = &plan.outcome_column
                        && let Some(i) = self
                            .columns
                            .iter()
                            .position(|c| c.name.eq_ignore_ascii_case(col))
                    {
                        self.outcome = cells.get(i).and_then(text_of);
                    }
                    if let Some(rows) = &mut self.response {
                        rows.row(cells)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> (Vec<u8>, usize) {
        (Vec::new(), 0)
    }
}

impl Script for WriteScript {
    fn next_statement(&mut self) -> Next {
        {
            let Some(current) = self.pending.pop_front() else {
                return Next::Commit;
            };
            self.current = Some(current);
            self.columns.clear();
            let (sql, refs, obj, item, count_rows) = match current {
                Current::Guard => {
                    let Some(g) = self.guard.as_ref() else {
                        return Next::Stop;
                    };
                    (Arc::clone(&g.read.sql), g.binds.clone(), 0, 0, false)
                }
                Current::Step { obj, step, item } => {
                    let st = &self.plan().steps[step];
                    (
                        Arc::clone(&st.sql),
                        st.binds.clone(),
                        obj,
                        item,
                        st.require_rows,
                    )
                }
            };
            let mut binds = Vec::with_capacity(refs.len());
            for r in refs {
                match self.value(r, obj, item) {
                    Ok(v) => binds.push(v),
                    Err(stop) => {
                        self.stop = Some(stop);
                        return Next::Stop;
                    }
                }
            }
            Next::Run(TxStatement {
                sql,
                binds,
                max_rows: STEP_ROWS,
                count_rows,
            })
        }
    }

    fn ran(&mut self, rows: Option<u64>) -> bool {
        if self.stop.is_some() {
            return false;
        }
        match self.current {
            None => true,
            Some(Current::Guard) => {
                let Some(g) = &mut self.guard else {
                    return true;
                };
                let (bytes, n) = g.rows.take().map_or((Vec::new(), 0), RowSink::finish);
                if n == 0 {
                    self.stop = Some(Stop::NotFound);
                    return false;
                }
                let etag = format!("\"{}\"", super::route::etag_of(&bytes));
                if !g.tags.iter().any(|t| t == "*" || *t == etag) {
                    self.stop = Some(Stop::Stale);
                    return false;
                }
                true
            }
            Some(Current::Step { obj, step, .. }) => {
                let plan = self.route.write.as_ref().expect("a write route");
                let st = &plan.steps[step];
                if st.require_rows && rows == Some(0) {
                    self.stop = Some(Stop::NotFound);
                    return false;
                }
                if let Some(k) = st.outputs.first()
                    && self
                        .outputs
                        .get(obj)
                        .and_then(|o| o.get(*k))
                        .is_some_and(Option::is_none)
                {
                    self.stop = Some(Stop::NoOutput(plan.outputs[*k].clone()));
                    return false;
                }
                if step + 1 == plan.steps.len() {
                    if let Some(r) = self.response.take() {
                        self.rows_out.push(r.finish());
                    }
                    if let Some(v) = self.outcome.take()
                        && let Some(o) = plan.outcomes.iter().find(|o| o.value == v)
                    {
                        self.stop = Some(Stop::Outcome(o.clone()));
                        return false;
                    }
                }
                true
            }
        }
    }

    fn reset(&mut self) {
        let plan = self.route.write.as_ref().expect("a write route");
        self.pending.clear();
        if self.guard.is_some() {
            self.pending.push_back(Current::Guard);
        }
        for (obj, o) in self.objects.iter().enumerate() {
            for (step, st) in plan.steps.iter().enumerate() {
                match st.for_each {
                    Some(list) => {
                        let n = match o.get(list) {
                            Some(FieldValue::List(items)) => items.len(),
                            _ => 0,
                        };
                        for item in 0..n {
                            self.pending.push_back(Current::Step { obj, step, item });
                        }
                    }
                    None => self.pending.push_back(Current::Step { obj, step, item: 0 }),
                }
            }
        }
        self.current = None;
        self.outputs = vec![vec![None; plan.outputs.len()]; self.objects.len()];
        self.rows_out.clear();
        self.response = None;
        self.outcome = None;
        self.stop = None;
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}
