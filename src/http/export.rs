//! Streaming exports (`Accept: application/x-ndjson` or `text/csv`, or `format=`): the rows
//! go out as the driver returns them, in chunks, in constant memory. Until the first chunk
//! is ready a failure is an ordinary problem response; after it, the status line is gone, so
//! a failure ends the stream in a way a client can tell: NDJSON gets a last line
//! `{"error": {problem}}`, CSV is cut off (the connection closes without the final chunk).
//! An export that reaches its route's `export.max_rows` ends the same way: incomplete data
//! never looks complete. A client that goes away stops the statement in the database.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use tracing::{info, warn};

use super::AppState;
use super::list::{Controls, Format, Planned};
use super::problem::Problem;
use crate::catalog::RoutePlan;
use crate::encode::LayoutCache;
use crate::encode::export::{CLIENT_GONE, ExportFormat, ExportRows, ExportState};
use crate::source::SourceError;

/// Chunks in flight between the source's thread and the socket: a slow client slows the
/// fetch down instead of filling memory.
const CHUNKS_IN_FLIGHT: usize = 4;

enum Msg {
    Data(Vec<u8>),
    Failed(Problem),
    Done,
}

pub(super) async fn serve(
    state: &AppState,
    route: &Arc<RoutePlan>,
    layout: &Arc<LayoutCache>,
    planned: Planned,
    controls: &Controls,
    format: Format,
    req: &HttpRequest,
) -> Result<HttpResponse, Problem> {
    let Some(source) = state.sources.get(&route.source).map(Arc::clone) else {
        return Err(Problem::from_source(&SourceError::Closed));
    };
    let cap = route.list.export.map_or(0, |e| e.max_rows);
    let export_format = match format {
        Format::Csv => ExportFormat::Csv,
        _ => ExportFormat::Ndjson,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(CHUNKS_IN_FLIGHT);
    let data_tx = tx.clone();
    let send = Box::new(move |chunk: Vec<u8>| {
        // The sink runs on a source's own thread: a plain thread (ODBC) or a worker of the
        // source's runtime (SQL Server), where blocking must be announced.
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::block_in_place(|| data_tx.blocking_send(Msg::Data(chunk))).is_ok()
        } else {
            data_tx.blocking_send(Msg::Data(chunk)).is_ok()
        }
    });
    let export = Arc::new(ExportState::default());
    let tally = Arc::new(crate::encode::InvalidTally::default());
    let app = req.app_data::<actix_web::web::Data<AppState>>().cloned();
    let sink = Box::new(
        ExportRows::new(
            Arc::clone(route),
            Arc::clone(layout),
            controls.fields.clone(),
            export_format,
            cap,
            send,
            Arc::clone(&export),
        )
        .tally(Arc::clone(&tally)),
    );
    let task_route = Arc::clone(route);
    let started = std::time::Instant::now();
    actix_web::rt::spawn(async move {
        let route = task_route;
        let result = source
            .query(
                planned.sql,
                planned.binds,
                planned.max_rows,
                route.statement_timeout,
                sink,
            )
            .await;
        if let Some(app) = &app {
            for (field, policy, n) in tally.counts() {
                app.metrics.undecodable(&route.id, &field, policy, n);
            }
        }
        let last = match result {
            Ok(q) => {
                let (tail, rows) = q.sink.finish();
                if !tail.is_empty() && tx.send(Msg::Data(tail)).await.is_err() {
                    return;
                }
                if export.capped.load(Ordering::Relaxed) {
                    warn!(route = %route.id, rows, "export stopped at the route's export.max_rows");
                    Msg::Failed(capped(cap))
                } else {
                    info!(route = %route.id, rows, ms = started.elapsed().as_millis(), "export done");
                    Msg::Done
                }
            }
            Err(SourceError::Decode(e)) if e.reason == CLIENT_GONE => {
                info!(route = %route.id, "export stopped: the client went away");
                return;
            }
            Err(e) => Msg::Failed(super::route::source_problem(&route, &e)),
        };
        let _ = tx.send(last).await;
    });
    // Nothing is sent before the first chunk: a failure until then is a normal problem.
    let first = match rx.recv().await {
        Some(Msg::Data(chunk)) => Some(chunk),
        Some(Msg::Failed(p)) => return Err(p),
        Some(Msg::Done) | None => None,
    };
    let instance = req.path().to_string();
    let rid = super::request_id_of(req);
    let body = futures_util::stream::unfold((rx, first, false), move |(mut rx, first, ended)| {
        let instance = instance.clone();
        let rid = rid.clone();
        async move {
            if let Some(chunk) = first {
                return Some((Ok(Bytes::from(chunk)), (rx, None, false)));
            }
            if ended {
                return None;
            }
            match rx.recv().await? {
                Msg::Data(chunk) => Some((Ok(Bytes::from(chunk)), (rx, None, false))),
                Msg::Done => None,
                Msg::Failed(p) => match export_format {
                    ExportFormat::Ndjson => {
                        let mut line = b"{\"error\":".to_vec();
                        line.extend_from_slice(&p.to_json(&instance, &rid));
                        line.extend_from_slice(b"}\n");
                        Some((Ok(Bytes::from(line)), (rx, None, true)))
                    }
                    ExportFormat::Csv => Some((
                        Err(actix_web::error::ErrorInternalServerError(p.detail)),
                        (rx, None, true),
                    )),
                },
            }
        }
    });
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CONTENT_TYPE, format.media_type()))
        .insert_header((header::CACHE_CONTROL, "private, no-store"));
    if format == Format::Csv {
        res.insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}.csv\"", route.id),
        ));
    }
    Ok(res.streaming(body))
}

/// The end of an export that reached its cap.
fn capped(cap: usize) -> Problem {
    Problem::new(
        actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
        "export-capped",
        "Export Capped",
        format!(
            "The export stopped after {cap} rows, the most this route exports at once; narrow it with the route's parameters."
        ),
    )
}
