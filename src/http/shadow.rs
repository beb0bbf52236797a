//! The migration bridge at run time: after a read route with a `shadow` answered, a sampled
//! share of its requests is asked again of the shadow's database, off the request path, and
//! the two answers are compared ([`crate::bridge::compare`]). The client's response, status
//! and latency never wait for it: the shadow runs in a task of its own, at most
//! `shadow.concurrency` at once per route (beyond, the request is not compared), each bounded
//! by `shadow.timeout`, its statement timeout on the database (its slot is held until then).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use tracing::warn;

use super::AppState;
use super::list::{self, Controls};
use crate::bridge::{self, Entry};
use crate::catalog::RoutePlan;
use crate::codec::BindValue;
use crate::encode::LayoutCache;

/// What the primary answered, for the comparison.
pub(super) struct Served<'a> {
    /// The body as served (empty for a `one` route's 404).
    pub body: Arc<[u8]>,
    /// An unpaged list cut at `max_rows`.
    pub truncated: bool,
    pub time: Duration,
    /// Served from the response cache: not compared (the shadow would read newer data).
    pub cached: bool,
    /// The request's raw path parameters and query, for the log.
    pub path_params: &'a [(String, String)],
    pub query: &'a str,
}

/// Compare this request's answer with the shadow's, if the route has one and the request is
/// sampled. Returns at once.
pub(super) fn compare_later(
    app: Option<web::Data<AppState>>,
    route: &Arc<RoutePlan>,
    controls: &Controls,
    params: &[BindValue],
    served: Served<'_>,
) {
    let (Some(app), Some(shadow)) = (app, route.shadow.clone()) else {
        return;
    };
    if served.cached {
        return;
    }
    // Only the route's whole answer is compared: no limit, cursor, sort, fields or count.
    if controls.limit.is_some()
        || controls.cursor.is_some()
        || !controls.sort.is_empty()
        || controls.fields.is_some()
        || controls.count
    {
        return;
    }
    if shadow.sample < 1.0 && rand::random::<f64>() >= shadow.sample {
        return;
    }
    let Ok(permit) = app
        .shadow_slots(&route.id, shadow.concurrency)
        .try_acquire_owned()
    else {
        app.metrics.shadow(&route.id, "skipped", None);
        return;
    };
    let binds: Vec<BindValue> = shadow
        .plan
        .bind_order
        .iter()
        .filter_map(|&i| params.get(i).cloned())
        .collect();
    let Ok(planned) = list::plan(
        &shadow.plan,
        &Controls::default(),
        params,
        binds,
        &app.cursor_key,
        None,
    ) else {
        return;
    };
    let route = Arc::clone(route);
    // A field sensitive on either side is never quoted (a cut-over swaps the sides).
    let sensitive: HashSet<String> = route
        .columns
        .iter()
        .chain(shadow.plan.columns.iter())
        .filter(|c| c.sensitive)
        .map(|c| c.output.clone())
        .collect();
    let params: BTreeMap<String, String> = served
        .path_params
        .iter()
        .map(|(k, v)| {
            let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
            (k.clone(), v.into_owned())
        })
        .chain(
            form_urlencoded::parse(served.query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned())),
        )
        .collect();
    let (primary, primary_cut, primary_time) = (served.body, served.truncated, served.time);
    tokio::spawn(async move {
        // The slot is held until the statement ended: its own statement timeout (the shadow's
        // `timeout`) ends it on the database.
        let _permit = permit;
        let layout = Arc::new(LayoutCache::default());
        let started = Instant::now();
        let ran = super::route::execute(&app, &shadow.plan, &layout, &planned, None).await;
        let shadow_time = started.elapsed();
        let mut entry = Entry {
            time: crate::clock::rfc3339_ms(crate::clock::now_ms()),
            route: route.id.clone(),
            result: "error".into(),
            params,
            differences: Vec::new(),
            error: None,
            primary_ms: primary_time.as_secs_f64() * 1000.0,
            shadow_ms: Some(shadow_time.as_secs_f64() * 1000.0),
        };
        let cap = route.max_rows;
        let shadow_body = match ran {
            Err(problem) => {
                entry.error = Some(format!(
                    "the shadow failed: {} ({})",
                    problem.title, problem.slug
                ));
                None
            }
            // A list cut off at max_rows may be another subset on each side: not judged (a
            // list of exactly max_rows rows that was not cut is).
            Ok(c) if !route.one && (c.truncated || primary_cut) => {
                entry.error = Some(format!(
                    "an answer was cut at max_rows ({cap}): not compared"
                ));
                None
            }
            Ok(c) if route.one && c.rows == 0 => Some(Arc::from(Vec::new())),
            Ok(c) => Some(c.body),
        };
        let (ordered, one) = (shadow.ordered, route.one);
        let log = Arc::clone(&app.bridge_log);
        // Parsing and comparing two answers is work for a blocking thread, not a request's.
        let judged = tokio::task::spawn_blocking(move || {
            if let Some(body) = shadow_body {
                match bridge::compare(&primary, &body, one, ordered, &sensitive) {
                    Ok(c) if c.differences.is_empty() => entry.result = "equal".into(),
                    Ok(c) => {
                        entry.result = "different".into();
                        entry.differences = c.differences;
                    }
                    Err(e) => entry.error = Some(e),
                }
            }
            let result: &'static str = match entry.result.as_str() {
                "equal" => "equal",
                "different" => "different",
                _ => "error",
            };
            (result, log.append(&entry))
        })
        .await;
        match judged {
            Ok((result, written)) => {
                app.metrics
                    .shadow(&route.id, result, Some(shadow_time.as_secs_f64()));
                if let Err(e) = written {
                    warn!(route = %route.id, error = %e, "the bridge log could not be written");
                }
            }
            Err(e) => warn!(route = %route.id, error = %e, "a shadow comparison did not finish"),
        }
    });
}
