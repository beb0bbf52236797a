//! Sources: where SQL runs. Owns the contract between the gateway and a database client
//! (run a planned statement with bound values, stream rows into a [`RowSink`], describe a
//! statement) and the errors a source can report. The pooled ODBC implementation lives in
//! [`odbc`]; the HTTP layer never sees a driver type.

pub mod gate;
pub mod mssql;
pub mod odbc;

use std::sync::Arc;

use crate::codec::{BindValue, Cell, ColumnType, DateFormat, TimeFormat};
use crate::config::{SourceConfig, SourceKind};

/// What the database says a result column is, reduced to what decoding needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlType {
    Integer,
    Decimal {
        precision: usize,
        scale: i16,
    },
    Float,
    Boolean,
    Date,
    Time,
    Timestamp,
    Text,
    Binary,
    /// A type the gateway has no codec for; fetched as text.
    Unsupported(String),
}

impl SqlType {
    /// The codec an unmapped column (or a mapped one without `type`) gets.
    pub fn default_codec(&self) -> ColumnType {
        match self {
            Self::Integer => ColumnType::Integer,
            Self::Decimal { scale, precision } if *scale == 0 && *precision <= 18 => {
                ColumnType::Integer
            }
            Self::Decimal { .. } => ColumnType::Decimal {
                scale: None,
                as_string: false,
            },
            Self::Float => ColumnType::Number,
            Self::Boolean => ColumnType::Boolean {
                true_values: ColumnType::default_true_values(),
                false_values: ColumnType::default_false_values(),
            },
            Self::Date => ColumnType::Date(DateFormat::Iso),
            Self::Time => ColumnType::Time(TimeFormat::Iso),
            Self::Timestamp => ColumnType::DateTime,
            Self::Binary => ColumnType::Binary,
            Self::Text | Self::Unsupported(_) => ColumnType::String,
        }
    }
}

/// One result column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub sql_type: SqlType,
}

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
    Busy(std::time::Duration),
    /// The database could not be reached, or the connection broke.
    #[error("source unavailable: {0}")]
    Unavailable(String),
    /// The circuit breaker is open after repeated connection failures: failing fast.
    #[error("circuit open for another {0:?}")]
    CircuitOpen(std::time::Duration),
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
    /// The source is shutting down.
    #[error("source closed")]
    Closed,
}

/// A statement's rows, and how long it waited for a connection.
#[derive(Debug)]
pub struct Queried {
    pub sink: Box<dyn RowSink>,
    pub waited: std::time::Duration,
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

/// What a described statement returns and takes.
#[derive(Clone, Debug)]
pub struct Described {
    pub columns: Vec<ColumnInfo>,
    pub params: usize,
}

/// A configured source, ready to run statements.
#[derive(Debug)]
pub enum Source {
    Odbc(odbc::OdbcPool),
    Mssql(mssql::MssqlPool),
}

impl Source {
    pub fn start(cfg: &SourceConfig) -> Result<Arc<Source>, String> {
        Ok(Arc::new(match cfg.kind {
            SourceKind::Odbc => Source::Odbc(odbc::OdbcPool::start(cfg.clone())),
            SourceKind::Mssql => Source::Mssql(mssql::MssqlPool::start(cfg)?),
        }))
    }

    /// Run `sql` with `binds`, feeding at most `max_rows` rows into `sink`.
    pub async fn query(
        &self,
        sql: Arc<str>,
        binds: Vec<BindValue>,
        max_rows: usize,
        timeout: Option<std::time::Duration>,
        sink: Box<dyn RowSink>,
    ) -> Result<Queried, SourceError> {
        match self {
            Source::Odbc(p) => p.query(sql, binds, max_rows, timeout, sink).await,
            Source::Mssql(p) => p.query(sql, binds, max_rows, timeout, sink).await,
        }
    }

    /// Prepare `sql` and report its result columns and parameter count, without running it.
    pub async fn describe(&self, sql: Arc<str>) -> Result<Described, SourceError> {
        match self {
            Source::Odbc(p) => p.describe(sql).await,
            Source::Mssql(p) => p.describe(sql).await,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Source::Odbc(p) => p.name(),
            Source::Mssql(p) => p.name(),
        }
    }

    /// Run the dialect's no-op statement: is the database reachable?
    pub async fn ping(&self) -> Result<(), SourceError> {
        let sql = match self {
            Source::Odbc(p) => p.ping_sql(),
            Source::Mssql(_) => Arc::from(crate::dialect::Dialect::Mssql.ping_sql()),
        };
        self.query(sql, Vec::new(), 1, None, Box::new(Discard))
            .await
            .map(|_| ())
    }

    /// Pool occupancy, for `/metrics`.
    pub fn stats(&self) -> crate::metrics::PoolStats {
        match self {
            Source::Odbc(p) => p.stats(),
            Source::Mssql(p) => p.stats(),
        }
    }
}
