//! `patina scan`: find the stored values a route's codecs cannot decode before users do. Runs
//! each chosen read route's statement over the whole data (or `--limit` rows), with optional
//! parameters unset (the mapping's `(CAST(:p AS …) IS NULL OR …)` filters then let everything
//! through) or given on the command line, and decodes every value of every row with the
//! route's codecs. Reports per column: rows read, values that did not decode, their kinds
//! (`impossible date`, `month out of range`, `blank`, `non-numeric`, …) and up to five
//! examples named by the row's key (`key = [...]`, else `page.by`); the value itself only when
//! the column is not `sensitive`. Constant memory: counters and five examples per column; rows
//! stream through in the driver's batches. One statement at a time per source (one connection
//! each), with a statement timeout of its own.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::catalog::{Catalog, ParamLocation, RoutePlan};
use crate::codec::{BindValue, Cell, ColumnCodec};
use crate::config::Config;
use crate::encode::RowKey;
use crate::shape::ColumnInfo;
use crate::source::{RowSink, SinkError, Source, SourceError};

/// Examples kept per column.
const EXAMPLES: usize = 5;

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Route ids; empty: every read route.
    pub routes: Vec<String>,
    /// Rows per route at most.
    pub limit: Option<usize>,
    /// Parameter values, by parameter name.
    pub params: Vec<(String, String)>,
    /// Each statement's timeout.
    pub timeout: Duration,
    /// Print progress on stderr (when it is a terminal).
    pub progress: bool,
}

/// One route's findings.
#[derive(Debug, Clone, Serialize)]
pub struct RouteScan {
    pub route: String,
    pub rows: u64,
    /// Every row was read (no `--limit` cut it short, no error stopped it).
    pub complete: bool,
    /// Why the route could not be scanned (or not to the end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub columns: Vec<ColumnScan>,
}

/// One column's findings.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnScan {
    pub column: String,
    pub field: String,
    /// Its `on_invalid`: `error` fails requests, `null` and `raw` serve them.
    pub policy: &'static str,
    pub undecodable: u64,
    pub kinds: BTreeMap<&'static str, u64>,
    pub examples: Vec<Example>,
}

/// A value that did not decode.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    /// The row's key, `JOBNO=100003`; empty when the route names no key.
    pub key: String,
    pub kind: &'static str,
    /// The stored value, unless the column is `sensitive`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl RouteScan {
    /// Values that did not decode in columns whose policy fails requests.
    pub fn failing(&self) -> u64 {
        self.columns
            .iter()
            .filter(|c| c.policy == "error")
            .map(|c| c.undecodable)
            .sum()
    }
}

/// Scan the chosen routes, one after the other, on sources of their own (one connection each).
pub async fn scan(
    config: &Config,
    catalog: &Catalog,
    opts: &ScanOptions,
) -> Result<Vec<RouteScan>, String> {
    for id in &opts.routes {
        if !catalog.routes.iter().any(|r| &r.id == id) {
            return Err(format!("no route `{id}`"));
        }
    }
    let chosen: Vec<&Arc<RoutePlan>> = catalog
        .routes
        .iter()
        .filter(|r| r.write.is_none())
        .filter(|r| opts.routes.is_empty() || opts.routes.contains(&r.id))
        .collect();
    if chosen.is_empty() {
        return Err("no read route to scan".into());
    }
    let sources = super::start_sources(&super::one_connection_each(config))?;
    let mut out = Vec::with_capacity(chosen.len());
    for route in chosen {
        out.push(scan_route(route, &sources, opts).await);
    }
    Ok(out)
}

async fn scan_route(
    route: &Arc<RoutePlan>,
    sources: &HashMap<String, Arc<Source>>,
    opts: &ScanOptions,
) -> RouteScan {
    let mut report = RouteScan {
        route: route.id.clone(),
        rows: 0,
        complete: false,
        error: None,
        columns: Vec::new(),
    };
    let Some(source) = sources.get(&route.source) else {
        report.error = Some(format!("source `{}` is not running", route.source));
        return report;
    };
    let binds = match binds(route, &opts.params) {
        Ok(b) => b,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    let shown = opts.progress && std::io::stderr().is_terminal();
    let total = if shown {
        count(route, source, &binds).await
    } else {
        None
    };
    let state = Arc::new(Mutex::new(Vec::new()));
    let rows = Arc::new(AtomicU64::new(0));
    let sink = Box::new(ScanRows {
        route: Arc::clone(route),
        columns: Vec::new(),
        keys: RowKey::default(),
        scratch: Vec::with_capacity(256),
        found: Arc::clone(&state),
        rows: Arc::clone(&rows),
    });
    let max_rows = opts.limit.unwrap_or(usize::MAX);
    let query = source.query(
        Arc::clone(&route.sql),
        binds,
        max_rows,
        Some(opts.timeout),
        sink,
    );
    let started = Instant::now();
    let result = if shown {
        let progress = async {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                print_progress(&route.id, rows.load(Ordering::Relaxed), total, started);
            }
        };
        tokio::select! {
            r = query => r,
            () = progress => unreachable!("progress never ends"),
        }
    } else {
        query.await
    };
    if shown {
        eprint!("\r\x1b[2K");
    }
    report.rows = rows.load(Ordering::Relaxed);
    report.columns = std::mem::take(
        &mut *state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    match result {
        Ok(_) => report.complete = opts.limit.is_none_or(|l| report.rows < l as u64),
        Err(e) => {
            report.error = Some(match e {
                SourceError::Timeout => format!(
                    "the statement ran past --timeout ({} s); rows read so far are reported",
                    opts.timeout.as_secs()
                ),
                e => e.to_string(),
            });
        }
    }
    report
}

/// The route's parameter values: given with `--param`, else its default, else NULL (an
/// optional filter then lets every row through). Path, claim and required parameters must be
/// given.
fn binds(route: &RoutePlan, given: &[(String, String)]) -> Result<Vec<BindValue>, String> {
    let mut values = Vec::with_capacity(route.params.len());
    let mut missing = Vec::new();
    for p in &route.params {
        let v = match given.iter().find(|(n, _)| *n == p.name) {
            Some((_, text)) => {
                p.ty.parse(text)
                    .map_err(|e| format!("--param {}: {e}", p.name))?
            }
            None if p.required || p.location != ParamLocation::Query => {
                missing.push(p.name.as_str());
                continue;
            }
            None => p.unset(),
        };
        values.push(v);
    }
    if !missing.is_empty() {
        return Err(format!(
            "route `{}` needs a value for {}: give --param NAME=VALUE",
            route.id,
            missing.join(", ")
        ));
    }
    Ok(route
        .bind_order
        .iter()
        .map(|&i| values[i].clone())
        .collect())
}

/// The rows the scan will read, for its ETA, if the database counts them within 10 s.
async fn count(route: &RoutePlan, source: &Source, binds: &[BindValue]) -> Option<u64> {
    let end = Arc::new(Mutex::new(None));
    let sink = Box::new(crate::encode::CountRows(Arc::clone(&end)));
    let sql: Arc<str> = Arc::from(route.list.dialect.count_sql(&route.sql));
    let budget = Duration::from_secs(10);
    match tokio::time::timeout(
        budget,
        source.query(sql, binds.to_vec(), 1, Some(budget), sink),
    )
    .await
    {
        Ok(Ok(_)) => *end
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        _ => None,
    }
}

fn print_progress(route: &str, rows: u64, total: Option<u64>, started: Instant) {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rate = (rows as f64 / secs) as u64;
    let eta = match total {
        Some(t) if rate > 0 && t > rows => format!(", about {} s left", (t - rows) / rate),
        _ => String::new(),
    };
    let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
    eprint!("\r\x1b[2K{route}: {rows}{of} rows, {rate} rows/s{eta}");
}

/// Decodes every value of every row, keeping only counters and a few examples.
struct ScanRows {
    route: Arc<RoutePlan>,
    /// Per result column: its name, output name and codec.
    columns: Vec<(String, String, ColumnCodec)>,
    /// The key columns' places.
    keys: RowKey,
    scratch: Vec<u8>,
    found: Arc<Mutex<Vec<ColumnScan>>>,
    rows: Arc<AtomicU64>,
}

impl RowSink for ScanRows {
    fn begin(&mut self, columns: &[ColumnInfo]) -> Result<(), SinkError> {
        self.columns = columns
            .iter()
            .map(|c| {
                let (field, codec) = self.route.output_of(c);
                (c.name.clone(), field, codec)
            })
            .collect();
        self.keys = RowKey::find(&self.route, columns);
        let mut found = self
            .found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *found = self
            .columns
            .iter()
            .map(|(column, field, codec)| ColumnScan {
                column: column.clone(),
                field: field.clone(),
                policy: codec.on_invalid.name(),
                undecodable: 0,
                kinds: BTreeMap::new(),
                examples: Vec::new(),
            })
            .collect();
        Ok(())
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), SinkError> {
        let mut failures = Vec::new();
        for (i, ((_, _, codec), cell)) in self.columns.iter().zip(cells).enumerate() {
            self.scratch.clear();
            if let Err(e) = codec.write_json(*cell, &mut self.scratch) {
                let stored = codec.raw_text(*cell);
                let kind = e.kind(stored.as_deref());
                failures.push((i, kind, (!codec.sensitive).then_some(stored).flatten()));
            }
        }
        if !failures.is_empty() {
            let key = self.keys.of(cells);
            let mut found = self
                .found
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (i, kind, value) in failures {
                let c = &mut found[i];
                c.undecodable += 1;
                *c.kinds.entry(kind).or_default() += 1;
                if c.examples.len() < EXAMPLES {
                    c.examples.push(Example {
                        key: key.clone(),
                        kind,
                        value,
                    });
                }
            }
        }
        self.rows.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn finish(self: Box<Self>) -> (Vec<u8>, usize) {
        (Vec::new(), 0)
    }
}

impl std::fmt::Debug for ScanRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanRows")
            .field("route", &self.route.id)
            .finish_non_exhaustive()
    }
}

/// The report as text: per route, the rows read and every column with values that did not
/// decode, with their kinds and examples.
pub fn render_text(scans: &[RouteScan]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for s in scans {
        let bad: u64 = s.columns.iter().map(|c| c.undecodable).sum();
        let _ = writeln!(
            out,
            "route {}: {} row(s) read{}, {bad} value(s) that do not decode",
            s.route,
            s.rows,
            if s.complete { "" } else { " (not to the end)" }
        );
        if let Some(e) = &s.error {
            let _ = writeln!(out, "  error: {e}");
        }
        for c in s.columns.iter().filter(|c| c.undecodable > 0) {
            let kinds: Vec<String> = c.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(
                out,
                "  {} → {} (on_invalid = {}): {} — {}",
                c.column,
                c.field,
                c.policy,
                c.undecodable,
                kinds.join(", ")
            );
            for e in &c.examples {
                let key = if e.key.is_empty() { "(no key)" } else { &e.key };
                match &e.value {
                    Some(v) => {
                        let _ = writeln!(out, "    {key}: {}: {v:?}", e.kind);
                    }
                    None => {
                        let _ = writeln!(out, "    {key}: {}", e.kind);
                    }
                }
            }
        }
    }
    out
}
