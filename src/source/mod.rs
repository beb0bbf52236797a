//! Sources: where SQL runs. Owns the contract between the gateway and a database client
//! (run a planned statement with bound values, stream rows into a [`RowSink`], describe a
//! statement) and the errors a source can report, and admits every statement through one
//! [`gate::Gate`] whatever the kind. The kind-specific pools live in [`odbc`] and [`mssql`];
//! the HTTP layer never sees a driver type.

pub mod gate;
pub mod mssql;
pub mod odbc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

use crate::codec::{BindValue, Cell};
use crate::config::{SourceConfig, SourceKind};
use crate::dialect::Dialect;
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
#[derive(Debug, thiserror::Error)]
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
    /// The source is shutting down.
    #[error("source closed")]
    Closed,
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
