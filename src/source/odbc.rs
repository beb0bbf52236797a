//! The ODBC source: a pool of worker threads, each owning one connection and a cache of
//! prepared statements, fed through a channel. Driver calls block, so they never run on the
//! async runtime; async callers wait on a oneshot reply. A broken connection is dropped and
//! reopened on the next statement. Owns driver types, what the driver says of parameters
//! (`SQLDescribeParam`, checked before a statement runs) and reading SQLSTATEs and native error
//! codes, which the dialect classifies; admission
//! (the cap, the queue, the breaker) happens before, in [`super::Source`]'s gate. Does not know
//! about HTTP. (Over 600 lines: the worker, its statement cache, its transactions and the
//! driver-type mapping are one unit; its tests sit at the end.)

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use odbc_api::buffers::{BufferDesc, ColumnarDynBuffer};
use odbc_api::handles::StatementConnection;
use odbc_api::parameter::{InputParameter, VarCharBox};
use odbc_api::{
    Connection, ConnectionOptions, ConnectionTransitions, Cursor, DataType, Nullable, Prepared,
    ResultSetMetadata, RowSetBuffer,
};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tracing::{debug, info, warn};

use super::{Admitted, RowSink, Script, SinkError, SourceError, Transacted, TxOptions};
use crate::codec::{BindKind, BindValue, Cell};
use crate::config::{SourceConfig, redact_connection_string};
use crate::dialect::ErrorClass;
use crate::secret::Secret;
use crate::shape::{ColumnInfo, Described, IntRange, ParamShape, SqlType};

/// Largest buffer for one batch of rows, across all columns.
const BATCH_BYTES: usize = 4 << 20;
/// Most rows fetched in one round trip.
const MAX_BATCH_ROWS: usize = 1000;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 512;

enum Job {
    Query {
        /// The statement, with the gate's permit: held until the worker is done with it.
        admitted: Admitted,
        sink: Box<dyn RowSink>,
        reply: oneshot::Sender<Result<Box<dyn RowSink>, SourceError>>,
    },
    Describe {
        sql: Arc<str>,
        reply: oneshot::Sender<Result<Described, SourceError>>,
        _permit: OwnedSemaphorePermit,
    },
    Transact {
        script: Box<dyn Script>,
        options: TxOptions,
        started: Instant,
        reply: oneshot::Sender<Transacted>,
        _permit: OwnedSemaphorePermit,
    },
}

/// A pool of connections to one ODBC source.
#[derive(Debug)]
pub struct OdbcPool {
    jobs: crossbeam_channel::Sender<(Job, Call)>,
}

/// Driver calls this process has started and not finished: statements queued or running,
/// connections being opened or closed, and whether the process is ending ([`settle`]).
struct Calls {
    in_flight: usize,
    ending: bool,
}

static CALLS: std::sync::Mutex<Calls> = std::sync::Mutex::new(Calls {
    in_flight: 0,
    ending: false,
});
static CALLS_DONE: std::sync::Condvar = std::sync::Condvar::new();

fn calls() -> std::sync::MutexGuard<'static, Calls> {
    CALLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One driver call counted in flight until dropped.
struct Call;

impl Call {
    /// Whether the process is ending ([`settle`]).
    fn ending() -> bool {
        calls().ending
    }

    /// `None` once the process is ending: no driver call starts then.
    fn begin() -> Option<Call> {
        let mut c = calls();
        if c.ending {
            return None;
        }
        c.in_flight += 1;
        Some(Call)
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let mut c = calls();
        c.in_flight -= 1;
        if c.in_flight == 0 {
            CALLS_DONE.notify_all();
        }
    }
}

/// Before the process ends: wait (at most `max`) until no thread is inside an ODBC driver, and
/// let no new driver call start. Libraries a driver loads may tear down their locks in the
/// process's exit handlers (libpq's Kerberos does), and a thread still connecting, running a
/// statement or disconnecting then aborts the process as it ends. Returns whether every call
/// finished in time.
pub fn settle(max: Duration) -> bool {
    let deadline = Instant::now() + max;
    let mut c = calls();
    c.ending = true;
    while c.in_flight > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        c = CALLS_DONE
            .wait_timeout(c, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
    true
}

impl OdbcPool {
    /// Spawn the workers. Each opens its connection right away (logging a failure) and again
    /// whenever a statement needs one.
    pub fn start(cfg: SourceConfig) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<(Job, Call)>();
        let cfg = Arc::new(cfg);
        info!(
            source = %cfg.name,
            connection = %redact_connection_string(
                cfg.target.odbc_connection_string().map_or("", Secret::expose)
            ),
            pool = cfg.pool_max,
            "starting ODBC source"
        );
        for i in 0..cfg.pool_max {
            let rx = rx.clone();
            let cfg = Arc::clone(&cfg);
            // Counted from here, not from when the thread first runs: a process that ends
            // at once still waits for this connection to be opened.
            let first = Call::begin();
            let spawned = std::thread::Builder::new()
                .name(format!("odbc-{}-{i}", cfg.name))
                .spawn(move || Worker::new(cfg).run(first, &rx));
            if let Err(e) = spawned {
                warn!(error = %e, "could not start an ODBC worker thread");
            }
        }
        Self { jobs: tx }
    }

    /// Queue `job` for a free worker, counted as a driver call until it is done; handed back
    /// when the workers are gone or the process is ending.
    fn send(&self, job: Job) -> Result<(), Job> {
        let Some(call) = Call::begin() else {
            return Err(job);
        };
        self.jobs.send((job, call)).map_err(|e| e.into_inner().0)
    }

    /// Hand an admitted statement to a free worker and wait for its rows.
    pub async fn query(
        &self,
        admitted: Admitted,
        sink: Box<dyn RowSink>,
    ) -> Result<super::Queried, SourceError> {
        let waited = admitted.started.elapsed();
        let (reply, rx) = oneshot::channel();
        self.send(Job::Query {
            admitted,
            sink,
            reply,
        })
        .map_err(|_| SourceError::Closed)?;
        let result = rx.await.map_err(|_| SourceError::Closed)?;
        result.map(|sink| super::Queried { sink, waited })
    }

    /// Hand a transaction to a free worker and wait until it committed or rolled back.
    pub async fn transact(
        &self,
        script: Box<dyn Script>,
        options: TxOptions,
        started: Instant,
        permit: OwnedSemaphorePermit,
    ) -> Transacted {
        let (reply, rx) = oneshot::channel();
        if let Err(job) = self.send(Job::Transact {
            script,
            options,
            started,
            reply,
            _permit: permit,
        }) {
            let Job::Transact { script, .. } = job else {
                unreachable!("the job sent is a transaction")
            };
            return Transacted {
                script,
                result: Err(SourceError::Closed),
                waited: started.elapsed(),
            };
        }
        // The worker always answers unless it died; then nothing of the script is left.
        rx.await.unwrap_or_else(|_| Transacted {
            script: Box::new(super::Lost),
            result: Err(SourceError::Closed),
            waited: started.elapsed(),
        })
    }

    pub async fn describe(
        &self,
        permit: OwnedSemaphorePermit,
        sql: Arc<str>,
    ) -> Result<Described, SourceError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Describe {
            sql,
            reply,
            _permit: permit,
        })
        .map_err(|_| SourceError::Closed)?;
        rx.await.map_err(|_| SourceError::Closed)?
    }
}

type Stmt = Prepared<StatementConnection<Arc<Connection<'static>>>>;

/// A prepared statement with what was learned about its result set.
struct CachedStatement {
    prepared: Stmt,
    /// The query timeout set on the handle, in seconds (0: none).
    timeout_secs: usize,
    columns: Option<(Vec<ColumnInfo>, Vec<BufferDesc>)>,
    buffer: Option<ColumnarDynBuffer>,
    /// What the driver says each parameter takes, learned when the statement was prepared.
    params: Vec<ParamShape>,
}

struct Worker {
    cfg: Arc<SourceConfig>,
    // Statements hold the connection; they are dropped before it.
    statements: HashMap<Arc<str>, CachedStatement>,
    conn: Option<Arc<Connection<'static>>>,
    last_failure: Option<Instant>,
}

impl Worker {
    fn new(cfg: Arc<SourceConfig>) -> Self {
        Self {
            cfg,
            statements: HashMap::new(),
            conn: None,
            last_failure: None,
        }
    }

    fn run(mut self, first: Option<Call>, jobs: &crossbeam_channel::Receiver<(Job, Call)>) {
        if first.is_some()
            && let Err(e) = self.connection()
        {
            warn!(source = %self.cfg.name, error = %e, "source not reachable at start; will retry on demand");
        }
        drop(first);
        while let Ok((job, _call)) = jobs.recv() {
            // The process is ending: a job still queued is dropped unstarted (its caller, if
            // still there, hears `Closed`), so that no driver call starts after `settle`.
            if Call::ending() {
                continue;
            }
            match job {
                Job::Query {
                    admitted,
                    mut sink,
                    reply,
                } => {
                    let a = &admitted;
                    let result = self
                        .query(&a.sql, &a.binds, a.max_rows, a.timeout, sink.as_mut())
                        .map(|()| sink);
                    let _ = reply.send(result);
                }
                Job::Describe {
                    sql,
                    reply,
                    _permit,
                } => {
                    let _ = reply.send(self.describe(&sql));
                }
                Job::Transact {
                    mut script,
                    options,
                    started,
                    reply,
                    _permit,
                } => {
                    let waited = started.elapsed();
                    let result = self.transact(script.as_mut(), options);
                    let _ = reply.send(Transacted {
                        script,
                        result,
                        waited,
                    });
                }
            }
        }
        // The pool is gone. Closing the statements and the connection calls the driver too:
        // counted, or, when the process is ending, left to the process's end.
        match Call::begin() {
            Some(call) => {
                drop(self);
                drop(call);
            }
            None => std::mem::forget(self),
        }
    }

    fn connection(&mut self) -> Result<Arc<Connection<'static>>, SourceError> {
        if let Some(c) = &self.conn {
            return Ok(Arc::clone(c));
        }
        let login = u32::try_from(self.cfg.login_timeout.as_secs().max(1)).unwrap_or(u32::MAX);
        let started = Instant::now();
        let connection_string = self
            .cfg
            .target
            .odbc_connection_string()
            .ok_or_else(|| SourceError::Unavailable("not an ODBC source".into()))?;
        let options = ConnectionOptions {
            login_timeout_sec: Some(login),
            ..ConnectionOptions::default()
        };
        let connected =
            super::odbcinst::connect(connection_string.expose(), options).map(|(c, library)| {
                if let Some(library) = library {
                    warn!(source = %self.cfg.name, library = %library,
                          "the driver manager did not find the driver; named its library instead");
                }
                c
            });
        match connected {
            Ok(c) => {
                if self.last_failure.take().is_some() {
                    info!(source = %self.cfg.name, "source reachable again");
                }
                debug!(source = %self.cfg.name, ms = started.elapsed().as_millis(), "connected");
                // Shared only with this thread's own prepared statements, never across threads.
                #[allow(clippy::arc_with_non_send_sync)]
                let c = Arc::new(c);
                self.conn = Some(Arc::clone(&c));
                Ok(c)
            }
            Err(e) => {
                self.last_failure = Some(Instant::now());
                Err(SourceError::Unavailable(redact_connection_string(
                    &e.to_string(),
                )))
            }
        }
    }

    /// Forget the connection and everything prepared on it.
    fn reset(&mut self) {
        self.statements.clear();
        self.conn = None;
    }

    /// Turn a driver error into a source error, dropping the connection when it broke.
    fn classify(&mut self, e: &odbc_api::Error) -> SourceError {
        let state = sqlstate(e);
        let text = e.to_string();
        let class = self
            .cfg
            .dialect
            .classify_error(state.as_deref(), native_error(e), &text);
        let dead = self
            .conn
            .as_ref()
            .is_none_or(|c| c.is_dead().unwrap_or(true));
        if class == ErrorClass::ConnectionLost || dead {
            warn!(source = %self.cfg.name, sqlstate = state.as_deref().unwrap_or("-"), error = %text, "connection lost; it will be reopened");
            self.reset();
            return SourceError::Unavailable(text);
        }
        SourceError::of_class(class, text)
    }

    fn prepare(&mut self, sql: &Arc<str>) -> Result<&mut CachedStatement, SourceError> {
        if !self.statements.contains_key(sql) {
            let conn = self.connection()?;
            let prepared = conn.into_prepared(sql);
            let mut prepared = match prepared {
                Ok(p) => p,
                Err(e) => return Err(self.classify(&e)),
            };
            let params = if self.cfg.dialect.describes_parameters() {
                describe_params(&mut prepared)
            } else {
                Vec::new()
            };

            if self.statements.len() >= STATEMENT_CACHE {
                self.statements.clear();
            }
            self.statements.insert(
                Arc::clone(sql),
                CachedStatement {
                    prepared,
                    timeout_secs: 0,
                    columns: None,
                    buffer: None,
                    params,
                },
            );
        }
        Ok(self
            .statements
            .get_mut(sql)
            .expect("statement was just inserted"))
    }

    fn query(
        &mut self,
        sql: &Arc<str>,
        binds: &[BindValue],
        max_rows: usize,
        timeout: Option<Duration>,
        sink: &mut dyn RowSink,
    ) -> Result<(), SourceError> {
        let max_text = self.cfg.max_text_bytes;
        let want = self.timeout_secs(timeout);
        let stmt = self.prepare_timed(sql, want)?;
        match run_statement(stmt, binds, max_rows, max_text, sink) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.run_failed(sql, e)),
        }
    }

    /// The timeout the driver cancels a statement after, in whole seconds (0: none): the
    /// route's, else the source's.
    fn timeout_secs(&self, timeout: Option<Duration>) -> usize {
        timeout.or(self.cfg.statement_timeout).map_or(0, |t| {
            usize::try_from(t.as_secs().max(1)).unwrap_or(usize::MAX)
        })
    }

    /// `sql` prepared (or found in the cache) with its query timeout set to `want` seconds.
    fn prepare_timed(
        &mut self,
        sql: &Arc<str>,
        want: usize,
    ) -> Result<&mut CachedStatement, SourceError> {
        let name = self.cfg.name.clone();
        let stmt = self.prepare(sql)?;
        if stmt.timeout_secs != want {
            match stmt.prepared.set_query_timeout_sec(want) {
                Ok(()) => stmt.timeout_secs = want,
                Err(e) => debug!(source = %name, error = %e, "driver ignores statement timeouts"),
            }
        }
        Ok(stmt)
    }

    /// A failed run as a source error. A statement the driver failed may leave its handle in a
    /// bad state: it is prepared afresh next time.
    fn run_failed(&mut self, sql: &Arc<str>, e: RunError) -> SourceError {
        match e {
            RunError::Sink(s) => SourceError::Decode(s),
            RunError::OutOfRange((placeholder, range)) => {
                SourceError::OutOfRange { placeholder, range }
            }
            RunError::Odbc(e) => {
                let classified = self.classify(&e);
                self.statements.remove(sql);
                classified
            }
        }
    }

    /// Run a script's statements in one transaction: autocommit off, each statement in turn,
    /// then commit; on any failure, or when the script says stop, roll back. The connection
    /// is back in autocommit mode afterwards, or dropped.
    fn transact(&mut self, script: &mut dyn Script, options: TxOptions) -> Result<(), SourceError> {
        let conn = self.connection()?;
        if let Err(e) = conn.set_autocommit(false) {
            return Err(self.classify(&e));
        }
        let result = self.transact_steps(&conn, script, options);
        let end = match &result {
            Ok(()) => conn.commit(),
            Err(_) => conn.rollback(),
        };
        let result = match (result, end) {
            (Ok(()), Err(e)) => Err(self.classify(&e)),
            (r, Err(e)) => {
                warn!(source = %self.cfg.name, error = %e, "rollback failed; the connection is dropped");
                self.reset();
                r
            }
            (r, Ok(())) => r,
        };
        if self.conn.is_some()
            && let Err(e) = conn.set_autocommit(true)
        {
            warn!(source = %self.cfg.name, error = %e, "autocommit could not be restored; the connection is dropped");
            self.reset();
        }
        result
    }

    fn transact_steps(
        &mut self,
        conn: &Connection<'static>,
        script: &mut dyn Script,
        options: TxOptions,
    ) -> Result<(), SourceError> {
        if options.serializable
            && let Some(sql) = self.cfg.dialect.serializable_sql()
            && let Err(e) = conn.execute(sql, (), None)
        {
            return Err(self.classify(&e));
        }
        let max_text = self.cfg.max_text_bytes;
        let want = self.timeout_secs(options.timeout);
        loop {
            let st = match script.next_statement() {
                super::Next::Run(st) => st,
                super::Next::Commit => return Ok(()),
                super::Next::Stop => return Err(SourceError::Stopped),
            };
            let stmt = self.prepare_timed(&st.sql, want)?;
            let rows = match run_statement(stmt, &st.binds, st.max_rows, max_text, script) {
                Ok(Some(n)) => Some(n as u64),
                Ok(None) => stmt.prepared.row_count().ok().flatten().map(|n| n as u64),
                Err(e) => return Err(self.run_failed(&st.sql, e)),
            };
            if !script.ran(rows) {
                return Err(SourceError::Stopped);
            }
        }
    }

    fn describe(&mut self, sql: &Arc<str>) -> Result<Described, SourceError> {
        let stmt = self.prepare(sql)?;
        let described = describe_prepared(&mut stmt.prepared, &stmt.params);
        match described {
            Ok(d) => Ok(d),
            Err(e) => {
                let classified = self.classify(&e);
                self.statements.remove(sql);
                Err(classified)
            }
        }
    }
}

enum RunError {
    Odbc(odbc_api::Error),
    /// A value the parameter's SQL type cannot hold: (placeholder index, its range).
    OutOfRange((usize, IntRange)),
    Sink(SinkError),
}

impl From<odbc_api::Error> for RunError {
    fn from(e: odbc_api::Error) -> Self {
        RunError::Odbc(e)
    }
}

/// A fetch that failed; a value longer than its buffer (`max_text_bytes`) is that column's
/// decode error, as on SQL Server.
fn fetch_failed(e: odbc_api::Error, columns: &[ColumnInfo], max_text: usize) -> RunError {
    match e {
        odbc_api::Error::TooLargeValueForBuffer {
            indicator,
            buffer_index,
        } => RunError::Sink(SinkError {
            column: columns
                .get(buffer_index)
                .map_or_else(String::new, |c| c.name.clone()),
            // The buffer is the column's declared length or max_text_bytes, whichever is less.
            reason: format!(
                "a value{} is longer than its buffer (the column's declared length, or \
                 max_text_bytes = {max_text} when less): raise max_text_bytes for this source, \
                 or CAST the column wider",
                indicator.map_or_else(String::new, |n| format!(" of {n} bytes"))
            ),
        }),
        e => RunError::Odbc(e),
    }
}

fn to_parameter(v: &BindValue) -> Box<dyn InputParameter> {
    match v {
        BindValue::Int(i) => Box::new(*i),
        BindValue::Float(f) => Box::new(*f),
        BindValue::Text(t) => Box::new(VarCharBox::from_string(t.clone())),
        BindValue::Null(BindKind::Int) => Box::new(Nullable::<i64>::null()),
        BindValue::Null(BindKind::Float) => Box::new(Nullable::<f64>::null()),
        BindValue::Null(BindKind::Text) => Box::new(VarCharBox::null()),
    }
}

/// Run a prepared statement, feeding its rows into `sink`: the number of rows fed, or `None`
/// when the statement returned no result set.
fn run_statement(
    stmt: &mut CachedStatement,
    binds: &[BindValue],
    max_rows: usize,
    max_text: usize,
    sink: &mut dyn RowSink,
) -> Result<Option<usize>, RunError> {
    if let Some(out) = out_of_range(&stmt.params, binds) {
        return Err(RunError::OutOfRange(out));
    }
    let params: Vec<Box<dyn InputParameter>> = binds.iter().map(to_parameter).collect();
    let Some(mut cursor) = stmt.prepared.execute(params.as_slice())? else {
        sink.begin(&[]).map_err(RunError::Sink)?;
        return Ok(None);
    };
    if stmt.columns.is_none() {
        stmt.columns = Some(describe_result(&mut cursor, max_text)?);
    }
    let (columns, descs) = stmt.columns.as_ref().expect("described above");
    sink.begin(columns).map_err(RunError::Sink)?;
    if columns.is_empty() {
        return Ok(None);
    }
    let row_bytes: usize = descs
        .iter()
        .map(BufferDesc::bytes_per_row)
        .sum::<usize>()
        .max(1);
    // One past the most rows: a list that reads one row past its cap (to tell a cut list from
    // a whole one) still takes one round trip for a cap of MAX_BATCH_ROWS.
    let batch = (BATCH_BYTES / row_bytes)
        .clamp(1, MAX_BATCH_ROWS + 1)
        .min(max_rows.max(1));
    let buffer = match stmt.buffer.take() {
        Some(b) if b.row_array_size() == batch => b,
        _ => ColumnarDynBuffer::try_from_descs(batch, descs.iter().copied())?,
    };
    let mut block = cursor.bind_buffer(buffer)?;
    let mut remaining = max_rows;
    'fetch: while remaining > 0 {
        let Some(rows) = block
            .fetch_with_truncation_check(true)
            .map_err(|e| fetch_failed(e, columns, max_text))?
        else {
            break;
        };
        let slices: Vec<_> = (0..rows.num_cols()).map(|c| rows.column(c)).collect();
        let mut cells: Vec<Cell<'_>> = Vec::with_capacity(slices.len());
        for r in 0..rows.num_rows() {
            if remaining == 0 {
                break 'fetch;
            }
            cells.clear();
            for s in &slices {
                let cell = if let Some(t) = s.as_text() {
                    t.get(r).map_or(Cell::Null, Cell::Text)
                } else if let Some(b) = s.as_binary() {
                    b.get(r).map_or(Cell::Null, Cell::Binary)
                } else {
                    Cell::Null
                };
                cells.push(cell);
            }
            sink.row(&cells).map_err(RunError::Sink)?;
            remaining -= 1;
        }
    }
    let (_cursor, buffer) = block.unbind()?;
    stmt.buffer = Some(buffer);
    Ok(Some(max_rows - remaining))
}

fn describe_result(
    meta: &mut impl ResultSetMetadata,
    max_text: usize,
) -> Result<(Vec<ColumnInfo>, Vec<BufferDesc>), odbc_api::Error> {
    let n = meta.num_result_cols()?;
    let mut columns = Vec::new();
    let mut descs = Vec::new();
    for i in 1..=u16::try_from(n).unwrap_or(0) {
        let name = meta.col_name(i)?;
        let dt = meta.col_data_type(i)?;
        let (sql_type, desc) = classify_type(dt, max_text);
        let nullable = match meta.col_nullability(i)? {
            odbc_api::Nullability::Nullable => Some(true),
            odbc_api::Nullability::NoNulls => Some(false),
            odbc_api::Nullability::Unknown => None,
        };
        let (width, fixed) = match dt {
            DataType::Char { length } | DataType::WChar { length } => {
                (length.map(NonZeroUsize::get), true)
            }
            DataType::Varchar { length } | DataType::WVarchar { length } => {
                (length.map(NonZeroUsize::get), false)
            }
            _ => (None, false),
        };
        columns.push(ColumnInfo {
            name,
            sql_type,
            nullable,
            width,
            fixed,
        });
        descs.push(desc);
    }
    Ok((columns, descs))
}

fn describe_prepared(stmt: &mut Stmt, params: &[ParamShape]) -> Result<Described, odbc_api::Error> {
    let (columns, _) = describe_result(stmt, 65_536)?;
    let n = usize::from(stmt.num_params()?);
    let mut params = params.to_vec();
    params.resize(n, ParamShape::default());
    Ok(Described { columns, params })
}

/// What the driver says each parameter of a prepared statement takes (`SQLDescribeParam`);
/// nothing for a parameter it cannot describe.
fn describe_params(stmt: &mut Stmt) -> Vec<ParamShape> {
    let n = stmt.num_params().unwrap_or(0);
    (1..=n)
        .map(|i| ParamShape {
            range: stmt
                .describe_param(i)
                .ok()
                .and_then(|t| param_range(t.data_type)),
        })
        .collect()
}

/// The integers an SQL parameter type holds, for the types whose bounds are narrower than the
/// gateway's own 64-bit integers.
fn param_range(dt: DataType) -> Option<IntRange> {
    match dt {
        DataType::SmallInt => Some(IntRange::SMALLINT),
        DataType::Integer => Some(IntRange::INTEGER),
        DataType::Numeric {
            precision,
            scale: 0,
        }
        | DataType::Decimal {
            precision,
            scale: 0,
        } => IntRange::digits(precision),
        _ => None,
    }
}

/// The first bound integer its parameter's SQL type cannot hold.
fn out_of_range(params: &[ParamShape], binds: &[BindValue]) -> Option<(usize, IntRange)> {
    params
        .iter()
        .zip(binds)
        .enumerate()
        .find_map(|(i, (p, v))| match (p.range, v) {
            (Some(range), BindValue::Int(v)) if !range.contains(*v) => Some((i, range)),
            _ => None,
        })
}

fn len_or(len: Option<NonZeroUsize>, per_char: usize, max_text: usize) -> usize {
    len.map_or(max_text, |l| l.get().saturating_mul(per_char))
        .clamp(1, max_text)
}

/// The decoding type and fetch buffer for a column. Everything but binary data is fetched as
/// text: it keeps every digit of a decimal and every driver can produce it.
fn classify_type(dt: DataType, max_text: usize) -> (SqlType, BufferDesc) {
    let text = |n: usize| BufferDesc::Text {
        max_str_len: n.clamp(1, max_text),
    };
    match dt {
        DataType::TinyInt | DataType::SmallInt | DataType::Integer | DataType::BigInt => {
            (SqlType::Integer, text(21))
        }
        DataType::Numeric { precision, scale } | DataType::Decimal { precision, scale } => (
            SqlType::Decimal { precision, scale },
            text(if precision == 0 { 64 } else { precision + 3 }),
        ),
        DataType::Float { .. } | DataType::Real | DataType::Double => (SqlType::Float, text(40)),
        DataType::Bit => (SqlType::Boolean, text(8)),
        DataType::Date => (SqlType::Date, text(16)),
        DataType::Time { .. } => (SqlType::Time, text(24)),
        DataType::Timestamp { .. } => (SqlType::Timestamp, text(40)),
        DataType::Char { length }
        | DataType::Varchar { length }
        | DataType::WChar { length }
        | DataType::WVarchar { length }
        | DataType::LongVarchar { length }
        | DataType::WLongVarchar { length } => (SqlType::Text, text(len_or(length, 4, max_text))),
        DataType::Binary { length }
        | DataType::Varbinary { length }
        | DataType::LongVarbinary { length } => (
            SqlType::Binary,
            BufferDesc::Binary {
                max_bytes: len_or(length, 1, max_text),
            },
        ),
        DataType::Unknown => (SqlType::Unsupported("unknown".into()), text(max_text)),
        DataType::Other {
            data_type,
            column_size,
            ..
        } => (
            SqlType::Unsupported(format!("SQL type {}", data_type.0)),
            text(len_or(column_size, 4, max_text)),
        ),
    }
}

/// The database's own error number (SQL Server's error, IBM i's SQLCODE), when there is one.
fn native_error(e: &odbc_api::Error) -> Option<i32> {
    match e {
        odbc_api::Error::Diagnostics { record, .. } => Some(record.native_error),
        _ => None,
    }
}

/// The SQLSTATE of a driver error, when it has one.
fn sqlstate(e: &odbc_api::Error) -> Option<String> {
    match e {
        odbc_api::Error::Diagnostics { record, .. } => Some(record.state.as_str().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_gets_a_buffer_within_bounds() {
        let cases = [
            DataType::Integer,
            DataType::Decimal {
                precision: 17,
                scale: 4,
            },
            DataType::Varchar {
                length: NonZeroUsize::new(1_000_000_000),
            },
            DataType::LongVarchar { length: None },
            DataType::Varbinary {
                length: NonZeroUsize::new(16),
            },
            DataType::Unknown,
        ];
        for dt in cases {
            let (_, desc) = classify_type(dt, 4096);
            assert!(desc.bytes_per_row() <= 4096 + 16, "{dt:?} → {desc:?}");
        }
        assert_eq!(
            classify_type(
                DataType::Decimal {
                    precision: 17,
                    scale: 4
                },
                4096
            )
            .0,
            SqlType::Decimal {
                precision: 17,
                scale: 4
            }
        );
    }
}
