//! The migration bridge at run time: after a read route with a `shadow` answered, a sampled
//! share of its requests is asked again of the shadow's database, off the request path, and
//! the two answers are compared ([`crate::bridge::compare`]). The client's response, status
//! and latency never wait for it: the shadow runs in a task of its own, at most
//! `shadow.concurrency` at once per route (beyond, the request is not compared), each bounded
//! by `shadow.timeout` (also its statement timeout on the database).

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
pub(super) struct Served {
    /// The body as served (empty for a `one` route's 404).
    pub body: Arc<[u8]>,
    pub time: Duration,
    /// The request's path and query parameters, for the log.
    pub params: BTreeMap<String, String>,
}

/// Compare this request's answer with the shadow's, if the route has one and the request is
/// sampled. Returns at once.
pub(super) fn compare_later(
    app: Option<web::Data<AppState>>,
    route: &Arc<RoutePlan>,
    controls: &Controls,
    params: &[BindValue],
    served: Served,
) {
    let (Some(app), Some(shadow)) = (app, route.shadow.clone()) else {
        return;
    };
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
    let sensitive: HashSet<String> = route
        .columns
        .iter()
        .filter(|c| c.sensitive)
        .map(|c| c.output.clone())
        .collect();
    tokio::spawn(async move {
        let _permit = permit;
        let layout = Arc::new(LayoutCache::default());
        let started = Instant::now();
        let ran = tokio::time::timeout(
            shadow.timeout,
            super::route::execute(&app, &shadow.plan, &layout, &planned, None),
        )
        .await;
        let shadow_time = started.elapsed();
        let mut entry = Entry {
            time: crate::clock::now_rfc3339(),
            route: route.id.clone(),
            result: "error".into(),
            params: served.params,
            differences: Vec::new(),
            error: None,
            primary_ms: served.time.as_secs_f64() * 1000.0,
            shadow_ms: Some(shadow_time.as_secs_f64() * 1000.0),
        };
        let shadow_body = match ran {
            Err(_) => {
                entry.error = Some(format!("no answer within {:?}", shadow.timeout));
                None
            }
            Ok(Err(problem)) => {
                entry.error = Some(format!(
                    "the shadow failed: {} ({})",
                    problem.title, problem.slug
                ));
                None
            }
            Ok(Ok(c)) if route.one && c.rows == 0 => Some(Arc::from(Vec::new())),
            Ok(Ok(c)) => Some(c.body),
        };
        if let Some(body) = shadow_body {
            match bridge::compare(&served.body, &body, route.one, shadow.ordered, &sensitive) {
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
        app.metrics
            .shadow(&route.id, result, Some(shadow_time.as_secs_f64()));
        let log = Arc::clone(&app.bridge_log);
        let written = tokio::task::spawn_blocking(move || log.append(&entry)).await;
        if let Ok(Err(e)) = written {
            warn!(route = %route.id, error = %e, "the bridge log could not be written");
        }
    });
}
