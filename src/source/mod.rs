//! Sources: where SQL runs. Owns the contract between the gateway and a database client
//! (run a planned statement with bound values, stream rows into a [`RowSink`], describe a
//! statement) and the errors a source can report, and admits every statement through one
//! [`gate::Gate`] whatever the kind. The kind-specific pools live in [`odbc`] and [`mssql`];
//! the HTTP layer never sees a driver type.

pub mod batch;
pub mod gate;
pub mod mssql;
pub mod odbc;
pub mod odbcinst;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

use crate::codec::{BindValue, Cell};
use crate::config::{SourceConfig, SourceKind};
use crate::dialect::{Dialect, ErrorClass};
use crate::shape::{ColumnInfo, Described, IntRange};
use gate::Gate;

/// A value that failed to decode, naming the output column (never the SQL).
#[derive(Clone, Debug)]
pub struct SinkError {
    pub column: String,
    pub reason: String,
}

/// Receives a result set row by row, on the source's own thread.
pub trait RowSink: Send {
    fn begin(&mut self, columns: &[ColumnInfo]) -> Result<(), SinkError>;
    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), SinkError>;
    /// The bytes produced and the number of rows seen.
    fn finish(self: Box<Self>) -> (Vec<u8>, usize);
}

/// Why a statement did not produce a result.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SourceError {
    /// No connection became free within the acquire timeout.
    #[error("no connection became free within {0:?}")]
    Busy(Duration),
    /// The database could not be reached, or the connection broke.
    #[error("source unavailable: {0}")]
    Unavailable(String),
    /// The circuit breaker is open after repeated connection failures: failing fast.
    #[error("circuit open for another {0:?}")]
    CircuitOpen(Duration),
    /// Too many requests already wait for a connection.
    #[error("the wait queue is full")]
    QueueFull,
    /// The statement ran past its timeout and was cancelled.
    #[error("statement timed out")]
    Timeout,
    /// The database rejected the statement (full driver text, for the log only).
    #[error("statement failed: {0}")]
    Query(String),
    /// A stored value could not be decoded by its column's codec.
    #[error("column `{}` holds a value its codec cannot decode: {}", .0.column, .0.reason)]
    Decode(SinkError),
    /// A bound integer the parameter's SQL type cannot hold (the driver described the
    /// parameter when the statement was prepared); nothing ran. `placeholder` counts from 0.
    #[error("parameter {} is outside {} ({}..={})", .placeholder + 1, .range.sql, .range.min, .range.max)]
    OutOfRange { placeholder: usize, range: IntRange },
    /// The database refused a bound value as out of range or malformed for its type (SQLSTATE
    /// class 22 and its equivalents): the caller's input, not the statement, is at fault.
    #[error("the database refused a value: {0}")]
    BadValue(String),
    /// A unique key the write would have duplicated (full driver text, for the log only).
    #[error("unique constraint: {0}")]
    Conflict(String),
    /// A foreign-key, check or not-null constraint refused the write.
    #[error("constraint refused the write: {0}")]
    Constraint(String),
    /// Deadlock or serialization failure: the transaction was rolled back and may be retried.
    #[error("deadlock or serialization failure: {0}")]
    Deadlock(String),
    /// The transaction's script stopped it (it knows why); everything was rolled back.
    #[error("the write was stopped and rolled back")]
    Stopped,
    /// The source is shutting down.
    #[error("source closed")]
    Closed,
}

impl SourceError {
    /// The error a database reported, in the class the dialect gave it.
    pub fn of_class(class: ErrorClass, text: String) -> Self {
        match class {
            ErrorClass::Timeout => Self::Timeout,
            ErrorClass::BadValue => Self::BadValue(text),
            ErrorClass::UniqueViolation => Self::Conflict(text),
            ErrorClass::ForeignKeyViolation | ErrorClass::CheckViolation => Self::Constraint(text),
            ErrorClass::Deadlock => Self::Deadlock(text),
            ErrorClass::ConnectionLost => Self::Unavailable(text),
            ErrorClass::Other => Self::Query(text),
        }
    }
}

/// One statement of a transaction, as a [`Script`] hands it over.
#[derive(Debug)]
pub struct TxStatement {
    pub sql: Arc<str>,
    pub binds: Vec<BindValue>,
    pub max_rows: usize,
    /// The script needs to know how many rows the statement touched.
    pub count_rows: bool,
}

/// A transaction's logic, run on the source's own thread: it hands over statements one at a
/// time, receives each one's rows (as a [`RowSink`]) and row count, and decides whether to go
/// on. Whatever fails, or whatever the script refuses, rolls everything back.
pub trait Script: RowSink {
    /// The next statement, or the end: commit, or stop and roll back.
    fn next_statement(&mut self) -> Next;
    /// The statement ran: the rows it touched, or returned when it returned rows (`None` when
    /// the driver cannot say). `false` stops the transaction and rolls it back.
    fn ran(&mut self, rows: Option<u64>) -> bool;
    /// Start over for another attempt (after a deadlock).
    fn reset(&mut self);
    /// The script itself, for its owner to read what it kept.
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send>;
}

/// What a [`Script`] wants next.
#[derive(Debug)]
pub enum Next {
    Run(TxStatement),
    Commit,
    /// Roll back: the script knows why.
    Stop,
}

impl std::fmt::Debug for dyn Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Script")
    }
}

/// What is left of a script whose worker died: nothing to tell.
#[derive(Debug)]
pub struct Lost;

impl RowSink for Lost {
    fn begin(&mut self, _: &[ColumnInfo]) -> Result<(), SinkError> {
        Ok(())
    }
    fn row(&mut self, _: &[Cell<'_>]) -> Result<(), SinkError> {
        Ok(())
    }
    fn finish(self: Box<Self>) -> (Vec<u8>, usize) {
        (Vec::new(), 0)
    }
}

impl Script for Lost {
    fn next_statement(&mut self) -> Next {
        Next::Stop
    }
    fn ran(&mut self, _: Option<u64>) -> bool {
        false
    }
    fn reset(&mut self) {}
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

/// How a transaction runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct TxOptions {
    /// Run at SERIALIZABLE isolation (a read-then-write check must not race).
    pub serializable: bool,
    pub timeout: Option<Duration>,
}

/// A transaction that ran: the script back (with what it kept), and the result.
#[derive(Debug)]
pub struct Transacted {
    pub script: Box<dyn Script>,
    pub result: Result<(), SourceError>,
    pub waited: Duration,
}

/// A statement's rows, and how long it waited for a connection.
#[derive(Debug)]
pub struct Queried {
    pub sink: Box<dyn RowSink>,
    pub waited: Duration,
}

impl std::fmt::Debug for dyn RowSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowSink")
    }
}

/// A sink that keeps nothing (pings).
#[derive(Debug)]
pub struct Discard;

impl RowSink for Discard {
    fn begin(&mut self, _: &[ColumnInfo]) -> Result<(), SinkError> {
        Ok(())
    }
    fn row(&mut self, _: &[Cell<'_>]) -> Result<(), SinkError> {
        Ok(())
    }
    fn finish(self: Box<Self>) -> (Vec<u8>, usize) {
        (Vec::new(), 0)
    }
}

/// A statement the gate let through, with its turn: what a pool runs.
#[derive(Debug)]
pub struct Admitted {
    pub sql: Arc<str>,
    pub binds: Vec<BindValue>,
    pub max_rows: usize,
    /// The route's statement timeout (else the source's).
    pub timeout: Option<Duration>,
    /// When the caller asked: the wait for a connection is measured from here.
    pub started: Instant,
    /// The turn; held until the statement is done, so the cap stays true.
    pub permit: OwnedSemaphorePermit,
}

/// The kind-specific part of a source: a pool of connections of one client library.
#[derive(Debug)]
pub enum Pool {
    Odbc(odbc::OdbcPool),
    Mssql(mssql::MssqlPool),
}

/// A configured source, ready to run statements: the admission [`Gate`] every kind shares
/// (the cap on statements at once, the wait queue, the circuit breaker) around its pool.
#[derive(Debug)]
pub struct Source {
    name: String,
    dialect: Dialect,
    /// The dialect's no-op statement, made once.
    ping_sql: Arc<str>,
    gate: Gate,
    pool: Pool,
    /// Lookups of `batch` routes being gathered.
    batches: batch::Batcher,
}

impl Source {
    pub fn start(cfg: &SourceConfig) -> Result<Arc<Source>, String> {
        let pool = match cfg.kind() {
            SourceKind::Odbc => Pool::Odbc(odbc::OdbcPool::start(cfg.clone())),
            SourceKind::Mssql => Pool::Mssql(mssql::MssqlPool::start(cfg)?),
        };
        Ok(Arc::new(Source {
            name: cfg.name.clone(),
            dialect: cfg.dialect,
            ping_sql: Arc::from(cfg.dialect.ping_sql()),
            gate: Gate::new(cfg),
            pool,
            batches: batch::Batcher::default(),
        }))
    }

    /// Run `sql` with `binds`, feeding at most `max_rows` rows into `sink`: wait for a turn
    /// (refused at once while the breaker is open or the queue is full), let the pool run it,
    /// and tell the breaker how it went.
    pub async fn query(
        &self,
        sql: Arc<str>,
        binds: Vec<BindValue>,
        max_rows: usize,
        timeout: Option<Duration>,
        sink: Box<dyn RowSink>,
    ) -> Result<Queried, SourceError> {
        let started = Instant::now();
        let permit = self.gate.enter().await?;
        let admitted = Admitted {
            sql,
            binds,
            max_rows,
            timeout,
            started,
            permit,
        };
        let result = match &self.pool {
            Pool::Odbc(p) => p.query(admitted, sink).await,
            Pool::Mssql(p) => p.query(admitted, sink).await,
        };
        self.gate.report(&result);
        result
    }

    /// Run a script's statements in one transaction, through the gate like any statement.
    pub async fn transact(&self, script: Box<dyn Script>, options: TxOptions) -> Transacted {
        let started = Instant::now();
        let permit = match self.gate.enter().await {
            Ok(p) => p,
            Err(e) => {
                return Transacted {
                    script,
                    result: Err(e),
                    waited: started.elapsed(),
                };
            }
        };
        let done = match &self.pool {
            Pool::Odbc(p) => p.transact(script, options, started, permit).await,
            Pool::Mssql(p) => p.transact(script, options, started, permit).await,
        };
        self.gate.report(&done.result);
        done
    }

    /// Prepare `sql` and report its result columns and parameter count, without running it.
    /// Takes a turn, but not through the breaker (`check --db` describes while it is open).
    pub async fn describe(&self, sql: Arc<str>) -> Result<Described, SourceError> {
        let permit = self.gate.acquire().await?;
        match &self.pool {
            Pool::Odbc(p) => p.describe(permit, sql).await,
            Pool::Mssql(p) => p.describe(permit, sql).await,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SQL flavour this source's database speaks.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The kind-specific pool, for what differs by kind (diagnostics, hints).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Run the dialect's no-op statement: is the database reachable?
    pub async fn ping(&self) -> Result<(), SourceError> {
        self.query(
            Arc::clone(&self.ping_sql),
            Vec::new(),
            1,
            None,
            Box::new(Discard),
        )
        .await
        .map(|_| ())
    }

    /// Pool occupancy, for `/metrics`.
    pub fn stats(&self) -> crate::metrics::PoolStats {
        self.gate.stats()
    }
}
