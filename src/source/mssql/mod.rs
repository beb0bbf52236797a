//! The SQL Server source: tiberius over TCP (TLS by rustls), pooled by bb8 on a runtime of its
//! own, so connections never migrate between the HTTP workers' runtimes. Owns the
//! running of statements: the pool and its runtime, streaming the first result set into a
//! sink, cancelling statements with a TDS attention, describing statements, and classifying
//! errors. Connections are [`connect`]'s, the client config [`config`]'s, transactions (and
//! the row counts their steps report) [`transact`]'s, and the translation of values both ways
//! [`values`]'. Does not know about HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use tiberius::{Query, QueryItem};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tracing::{debug, info, warn};

use super::{Admitted, Queried, RowSink, SinkError, SourceError};
use crate::codec::{BindValue, Cell};
use crate::config::SourceConfig;
use crate::dialect::Dialect;
use crate::shape::{ColumnInfo, Described, ParamShape, SqlType};

mod config;
mod connect;
#[cfg(test)]
mod tests;
mod transact;
mod values;

pub use config::client_config;
use connect::{Conn, Failures, Manager};
use values::to_sql;
pub use values::{sql_type, sql_type_named, to_cell};

/// How long the server gets to acknowledge a cancel before the connection is dropped.
const CANCEL_WAIT: Duration = Duration::from_secs(5);
/// Result items read and thrown away after the gateway has what it needs, before it cancels
/// instead: the rest of a result that is (nearly) all sent costs less to read than a cancel,
/// which fails once the server has finished and costs the connection.
const DRAIN_ITEMS: usize = 2_000;

/// A pool of connections to one SQL Server.
pub struct MssqlPool {
    name: String,
    inner: Arc<Inner>,
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for MssqlPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MssqlPool")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

struct Inner {
    name: String,
    pool: bb8::Pool<Manager>,
    failures: watch::Receiver<String>,
    statement_timeout: Option<Duration>,
    acquire_timeout: Duration,
    max_text: usize,
}

impl Drop for MssqlPool {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl MssqlPool {
    /// Build the pool on its own runtime. Connections open on demand, and the pool's first
    /// connection is tried right away so an unreachable server shows in the log at start.
    pub fn start(cfg: &SourceConfig) -> Result<Self, String> {
        let target = cfg
            .target
            .mssql()
            .ok_or("the source has no SQL Server settings")?;
        let config = client_config(target)?;
        info!(
            source = %cfg.name,
            server = %config.get_addr(),
            pool = cfg.pool_max,
            "starting SQL Server source"
        );
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.pool_max.clamp(1, cores))
            .thread_name(format!("mssql-{}", cfg.name))
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the source's runtime: {e}"))?;
        let (tx, failures) = watch::channel(String::new());
        let manager = Manager {
            name: cfg.name.clone(),
            config,
            login_timeout: cfg.login_timeout,
            check_timeout: cfg.login_timeout.min(cfg.acquire_timeout / 2),
        };
        let pool = {
            let _entered = runtime.enter();
            bb8::Pool::builder()
                .max_size(u32::try_from(cfg.pool_max).unwrap_or(u32::MAX))
                .connection_timeout(cfg.acquire_timeout)
                .test_on_check_out(true)
                .retry_connection(true)
                .idle_timeout(Some(Duration::from_mins(10)))
                .error_sink(Box::new(Failures {
                    name: cfg.name.clone(),
                    tx: Arc::new(tx),
                }))
                .build_unchecked(manager)
        };
        let inner = Arc::new(Inner {
            name: cfg.name.clone(),
            pool,
            failures,
            statement_timeout: cfg.statement_timeout,
            acquire_timeout: cfg.acquire_timeout,
            max_text: cfg.max_text_bytes,
        });
        let warm = Arc::clone(&inner);
        runtime.spawn(async move {
            if let Ok(conn) = warm.checkout().await {
                drop(conn);
            }
        });
        Ok(Self {
            name: cfg.name.clone(),
            handle: runtime.handle().clone(),
            inner,
            runtime: Some(runtime),
        })
    }

    /// Run an admitted statement on the pool's runtime. The statement runs to its end (or its
    /// timeout) even if the client goes away; the gate's permit goes with it, so the cap stays
    /// true.
    pub async fn query(
        &self,
        admitted: Admitted,
        mut sink: Box<dyn RowSink>,
    ) -> Result<Queried, SourceError> {
        let inner = Arc::clone(&self.inner);
        let task = self.handle.spawn(async move {
            let Admitted {
                sql,
                binds,
                max_rows,
                timeout,
                started,
                permit: _permit,
            } = admitted;
            let mut conn = inner.checkout().await?;
            let waited = started.elapsed();
            let limit = timeout.or(inner.statement_timeout);
            let statement = Statement {
                sql: &sql,
                binds: &binds,
                max_rows,
                max_text: inner.max_text,
            };
            run(&inner.name, &mut conn, &statement, limit, sink.as_mut()).await?;
            Ok((sink, waited))
        });
        let result = task.await.unwrap_or(Err(SourceError::Closed));
        result.map(|(sink, waited)| Queried { sink, waited })
    }

    /// Ask the server what the statement returns (`sp_describe_first_result_set`), without
    /// running it.
    pub async fn describe(
        &self,
        permit: OwnedSemaphorePermit,
        sql: Arc<str>,
    ) -> Result<Described, SourceError> {
        let inner = Arc::clone(&self.inner);
        let task = self.handle.spawn(async move {
            let _permit = permit;
            let mut conn = inner.checkout().await?;
            describe(&mut conn, &sql).await
        });
        task.await.unwrap_or(Err(SourceError::Closed))
    }
}

impl Inner {
    /// A connection from the pool: fails at once when connecting fails, with
    /// [`SourceError::Busy`] when none frees up within the acquire timeout.
    async fn checkout(&self) -> Result<bb8::PooledConnection<'_, Manager>, SourceError> {
        let mut failures = self.failures.clone();
        failures.mark_unchanged();
        tokio::select! {
            got = self.pool.get() => match got {
                Ok(conn) => Ok(conn),
                Err(bb8::RunError::User(e)) => Err(SourceError::Unavailable(e.to_string())),
                Err(bb8::RunError::TimedOut) => Err(SourceError::Busy(self.acquire_timeout)),
            },
            changed = failures.changed() => match changed {
                Ok(()) => Err(SourceError::Unavailable(failures.borrow().clone())),
                Err(_) => Err(SourceError::Closed),
            },
        }
    }
}

/// How a statement's result stream ended.
enum Ended {
    /// Every token was read: the connection is clean.
    Complete,
    /// Reading stopped with more of the result unread: the server must be told to stop.
    Early,
}

/// What to run, and how much of its result to take.
struct Statement<'a> {
    sql: &'a str,
    binds: &'a [BindValue],
    max_rows: usize,
    /// Largest text or binary value accepted, in bytes.
    max_text: usize,
}

/// Run one statement on `conn`, feeding at most `max_rows` rows of its first result set into
/// `sink`. Whatever happens, the connection goes back to the pool clean or marked broken.
async fn run(
    source: &str,
    conn: &mut Conn,
    statement: &Statement<'_>,
    limit: Option<Duration>,
    sink: &mut dyn RowSink,
) -> Result<(), SourceError> {
    let mut decode_error = None;
    let streamed = stream(conn, statement, sink, &mut decode_error);
    let outcome = match limit {
        Some(t) => tokio::time::timeout(t, streamed).await.ok(),
        None => Some(streamed.await),
    };
    conn.last_used = Instant::now();
    let ended = match outcome {
        None => {
            cancel(source, conn).await;
            return Err(SourceError::Timeout);
        }
        Some(Err(e)) => return Err(classify(source, conn, e)),
        Some(Ok(ended)) => ended,
    };
    if let Ended::Early = ended {
        cancel(source, conn).await;
    }
    match decode_error {
        Some(e) => Err(SourceError::Decode(e)),
        None => Ok(()),
    }
}

/// Stop the statement on the server (a TDS attention) and wait for its acknowledgement; a
/// connection that does not acknowledge is discarded.
async fn cancel(source: &str, conn: &mut Conn) {
    match tokio::time::timeout(CANCEL_WAIT, conn.client.cancel_query()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            debug!(source = %source, error = %e, "cancel failed; the connection is dropped");
            conn.broken = true;
        }
        Err(_) => {
            debug!(source = %source, "cancel not acknowledged; the connection is dropped");
            conn.broken = true;
        }
    }
}

/// Turn a client error into a source error, marking the connection broken when it is.
fn classify(source: &str, conn: &mut Conn, e: tiberius::error::Error) -> SourceError {
    use tiberius::error::Error as E;
    match e {
        // Severity 20 and above ends the session on the server's side.
        E::Server(t) if t.class() < 20 => {
            let text = format!("SQL Server error {}: {}", t.code(), t.message());
            // A lock request timeout (past SET LOCK_TIMEOUT) is a timeout too.
            let class = Dialect::Mssql.classify_error(None, i32::try_from(t.code()).ok(), &text);
            SourceError::of_class(class, text)
        }
        // The server or the network went away.
        e @ (E::Server(_) | E::Io { .. } | E::Tls(_) | E::Routing { .. }) => {
            warn!(source = %source, error = %e, "connection lost; it will be reopened");
            conn.broken = true;
            SourceError::Unavailable(e.to_string())
        }
        // The server answered, but with something this client could not read (text that is
        // not valid UTF-16, an unknown collation): the data's problem, not the server's
        // health. The stream may be out of step, so the connection goes.
        e => {
            conn.broken = true;
            SourceError::Query(format!("the result could not be read: {e}"))
        }
    }
}

/// Run a statement as a query, feeding at most `max_rows` rows of its first result set into
/// `sink`.
async fn stream(
    conn: &mut Conn,
    statement: &Statement<'_>,
    sink: &mut dyn RowSink,
    decode_error: &mut Option<SinkError>,
) -> Result<Ended, tiberius::error::Error> {
    let mut q = Query::new(statement.sql);
    for b in statement.binds {
        q.bind(to_sql(b));
    }
    let items = q.query(&mut conn.client).await?.map_ok(|item| match item {
        QueryItem::Metadata(m) => Item::Metadata(m),
        QueryItem::Row(r) => Item::Row(r),
    });
    Ok(feed(items, statement, sink, decode_error).await?.ended)
}

/// One item of a statement's answer, from a query's stream or a command's.
enum Item {
    Metadata(tiberius::ResultMetadata),
    Row(tiberius::Row),
    /// A DONE token's count of the rows a statement touched (0 when it did not count them).
    Count(u64),
    /// Anything else a command reports (a return status).
    Other,
}

/// How feeding a statement's answer into a sink went.
struct Fed {
    ended: Ended,
    /// The first result set began (the statement returned rows, or could have).
    began: bool,
    /// The DONE tokens' counts, summed.
    affected: u64,
}

/// Feed at most `max_rows` rows of the first result set of `items` into `sink`, decoding
/// each value; a value that cannot be decoded is left in `decode_error`.
async fn feed(
    items: impl futures_util::Stream<Item = Result<Item, tiberius::error::Error>>,
    statement: &Statement<'_>,
    sink: &mut dyn RowSink,
    decode_error: &mut Option<SinkError>,
) -> Result<Fed, tiberius::error::Error> {
    let max_rows = statement.max_rows;
    let mut rows = std::pin::pin!(items);
    let mut began = false;
    let mut affected = 0u64;
    let mut seen = 0usize;
    // Per column, the text of a value TDS does not carry as text or as a number (dates,
    // GUIDs, XML), reused from row to row.
    let mut bufs: Vec<Vec<u8>> = Vec::new();
    // Set once the gateway has what it needs (or cannot use the rest): later items are read
    // and dropped, up to DRAIN_ITEMS.
    let mut done = false;
    let mut drained = 0usize;
    while let Some(item) = rows.try_next().await? {
        if let Item::Count(n) = item {
            affected = affected.saturating_add(n);
            continue;
        }
        if done {
            drained += 1;
            if drained > DRAIN_ITEMS {
                return Ok(Fed {
                    ended: Ended::Early,
                    began,
                    affected,
                });
            }
            continue;
        }
        match item {
            Item::Count(_) | Item::Other => {}
            Item::Metadata(meta) if meta.result_index() == 0 => {
                let columns: Vec<ColumnInfo> = meta
                    .columns()
                    .iter()
                    .map(|c| ColumnInfo {
                        name: c.name().to_string(),
                        sql_type: sql_type(c.column_type()),
                        nullable: None,
                        width: None,
                        fixed: false,
                    })
                    .collect();
                began = true;
                if let Some(bad) = columns
                    .iter()
                    .find(|c| matches!(c.sql_type, SqlType::Unsupported(_)))
                {
                    *decode_error = Some(unsupported(bad));
                    done = true;
                    continue;
                }
                if let Err(e) = sink.begin(&columns) {
                    *decode_error = Some(e);
                    done = true;
                    continue;
                }
                bufs = vec![Vec::new(); columns.len()];
            }
            // A second result set: this route serves the first only.
            Item::Metadata(_) => done = true,
            Item::Row(row) => {
                if row.result_index() > 0 || seen == max_rows {
                    done = true;
                    continue;
                }
                let mut cells: Vec<Cell<'_>> = Vec::with_capacity(bufs.len());
                for ((col, data), buf) in row.cells().zip(bufs.iter_mut()) {
                    buf.clear();
                    match to_cell(col.column_type(), data, buf) {
                        Ok(Cell::Text(b) | Cell::Binary(b)) if b.len() > statement.max_text => {
                            *decode_error = Some(SinkError {
                                column: col.name().to_string(),
                                reason: format!(
                                    "a value of {} bytes is longer than max_text_bytes ({}); \
                                     raise it for this source",
                                    b.len(),
                                    statement.max_text
                                ),
                            });
                            done = true;
                            break;
                        }
                        Ok(cell) => cells.push(cell),
                        Err(reason) => {
                            *decode_error = Some(SinkError {
                                column: col.name().to_string(),
                                reason,
                            });
                            done = true;
                            break;
                        }
                    }
                }
                if done {
                    continue;
                }
                if let Err(e) = sink.row(&cells) {
                    *decode_error = Some(e);
                    done = true;
                    continue;
                }
                seen += 1;
            }
        }
    }
    if !began && let Err(e) = sink.begin(&[]) {
        *decode_error = Some(e);
    }
    Ok(Fed {
        ended: Ended::Complete,
        began,
        affected,
    })
}

fn unsupported(c: &ColumnInfo) -> SinkError {
    let what = match &c.sql_type {
        SqlType::Unsupported(t) => t.as_str(),
        _ => "this type",
    };
    SinkError {
        column: c.name.clone(),
        reason: format!(
            "{what} has no codec in the gateway; CAST the column in the SQL \
             (e.g. CAST(col AS nvarchar(4000)), or col.ToString() for spatial types)"
        ),
    }
}

/// The highest `@Pn` marker in a rewritten statement: how many values it binds.
fn param_count(sql: &str) -> usize {
    let b = sql.as_bytes();
    let mut max = 0;
    let mut i = 0;
    while i + 2 < b.len() {
        if b[i] == b'@' && (b[i + 1] == b'P' || b[i + 1] == b'p') {
            let digits: String = b[i + 2..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .map(|c| char::from(*c))
                .collect();
            if let Ok(n) = digits.parse::<usize>() {
                max = max.max(n);
            }
        }
        i += 1;
    }
    max
}

async fn describe(conn: &mut Conn, sql: &str) -> Result<Described, SourceError> {
    let params = param_count(sql);
    let declared: Vec<String> = (1..=params)
        .map(|i| format!("@P{i} nvarchar(4000)"))
        .collect();
    let declared = declared.join(", ");
    let asked = async {
        let mut q = Query::new(
            "EXEC sp_describe_first_result_set @tsql = @P1, @params = @P2, @browse_information_mode = 0",
        );
        q.bind(sql);
        q.bind(declared.as_str());
        q.query(&mut conn.client).await?.into_first_result().await
    };
    let rows = match tokio::time::timeout(Duration::from_secs(30), asked).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => return Err(classify("describe", conn, e)),
        Err(_) => {
            cancel("describe", conn).await;
            return Err(SourceError::Timeout);
        }
    };
    conn.last_used = Instant::now();
    let mut columns = Vec::new();
    for row in rows {
        if row.try_get::<bool, _>("is_hidden").ok().flatten() == Some(true) {
            continue;
        }
        let name: Option<&str> = row.try_get("name").ok().flatten();
        let ty: Option<&str> = row.try_get("system_type_name").ok().flatten();
        let type_name = ty.unwrap_or("sql_variant");
        let (width, fixed) = text_width(type_name);
        columns.push(ColumnInfo {
            name: name.unwrap_or_default().to_string(),
            sql_type: sql_type_named(type_name),
            nullable: row.try_get::<bool, _>("is_nullable").ok().flatten(),
            width,
            fixed,
        });
    }
    Ok(Described {
        columns,
        params: vec![ParamShape::default(); params],
    })
}

/// The declared length of a `char(10)`, `nchar(2)`, `varchar(30)` or `nvarchar(30)` system type
/// name, and whether it is fixed width.
fn text_width(type_name: &str) -> (Option<usize>, bool) {
    let lower = type_name.to_ascii_lowercase();
    let Some((base, rest)) = lower.split_once('(') else {
        return (None, false);
    };
    let fixed = matches!(base, "char" | "nchar");
    if !fixed && !matches!(base, "varchar" | "nvarchar") {
        return (None, false);
    }
    (rest.trim_end_matches(')').parse().ok(), fixed)
}
