//! The SQL Server source: tiberius over TCP (TLS by rustls), pooled by bb8 on a runtime of its
//! own, so connections never migrate between the HTTP workers' runtimes. Owns the
//! translation between the gateway and TDS: building the client config, binding values as
//! `@P1…`, rendering every SQL Server type as the text the shared codecs decode, cancelling
//! statements with a TDS attention, and classifying errors. Does not know about HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use tiberius::numeric::Numeric;
use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, SmallDateTime, Time};
use tiberius::{AuthMethod, Client, ColumnData, ColumnType, EncryptionLevel, Query, QueryItem};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};
use tracing::{debug, info, warn};

use super::gate::Gate;
use super::{ColumnInfo, Described, Queried, RowSink, SinkError, SourceError, SqlType};
use crate::codec::{BindKind, BindValue, Cell, civil_from_days, write_display};
use crate::config::{Encrypt, MssqlTarget, SourceConfig, Trust};

/// How long a connection may sit idle before it is checked with a round trip on checkout.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(2);
/// How long the server gets to acknowledge a cancel before the connection is dropped.
const CANCEL_WAIT: Duration = Duration::from_secs(5);
/// Result items read and thrown away after the gateway has what it needs, before it cancels
/// instead: the rest of a result that is (nearly) all sent costs less to read than a cancel,
/// which fails once the server has finished and costs the connection.
const DRAIN_ITEMS: usize = 2_000;

type Tds = Client<Compat<TcpStream>>;

/// One pooled connection, with what the pool must know about its health.
#[derive(Debug)]
pub struct Conn {
    client: Tds,
    /// Set when the connection can no longer be trusted (I/O error, a cancel that was not
    /// acknowledged, a result left half read): the pool discards it instead of reusing it.
    broken: bool,
    last_used: Instant,
}

/// A connection failure, with the step that failed: only failures to connect mean the server
/// is unreachable; a failed idle check just replaces one connection.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ConnError {
    connecting: bool,
    error: tiberius::error::Error,
}

#[derive(Debug)]
struct Manager {
    name: String,
    config: tiberius::Config,
    login_timeout: Duration,
    /// Longest an idle connection's check may take: well inside the acquire timeout.
    check_timeout: Duration,
}

impl Manager {
    async fn open(&self) -> Result<Tds, tiberius::error::Error> {
        let mut config = self.config.clone();
        let mut redirected = false;
        // Azure SQL and some clusters redirect the login to another address, once.
        for _ in 0..2 {
            // A named instance's port comes from the SQL Browser; a redirect names the port.
            let tcp = if redirected {
                TcpStream::connect(config.get_addr()).await?
            } else {
                TcpStream::connect_named(&config).await?
            };
            tcp.set_nodelay(true)?;
            match Box::pin(Client::connect(config.clone(), tcp.compat_write())).await {
                Err(tiberius::error::Error::Routing { host, port }) => {
                    debug!(source = %self.name, %host, port, "login redirected");
                    config.host(&host);
                    config.port(port);
                    redirected = true;
                }
                other => return other,
            }
        }
        Err(tiberius::error::Error::Protocol(
            "the server redirected the login more than once".into(),
        ))
    }
}

use tiberius::SqlBrowser as _;

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = ConnError;

    async fn connect(&self) -> Result<Conn, ConnError> {
        let started = Instant::now();
        let opened = match Box::pin(tokio::time::timeout(self.login_timeout, self.open())).await {
            Ok(r) => r,
            Err(_) => Err(tiberius::error::Error::Io {
                kind: std::io::ErrorKind::TimedOut,
                message: format!("no login within {:?}", self.login_timeout),
            }),
        };
        match opened {
            Ok(client) => {
                debug!(source = %self.name, ms = started.elapsed().as_millis(), "connected");
                Ok(Conn {
                    client,
                    broken: false,
                    last_used: Instant::now(),
                })
            }
            Err(error) => Err(ConnError {
                connecting: true,
                error,
            }),
        }
    }

    /// A round trip, but only for connections idle long enough to have been cut.
    async fn is_valid(&self, conn: &mut Conn) -> Result<(), ConnError> {
        if conn.last_used.elapsed() < CHECK_IDLE_AFTER {
            return Ok(());
        }
        // Broken until the check answers: if this future is dropped half way (the acquire
        // timeout, a failing login elsewhere), bb8 puts the connection back, and it must not
        // be handed out again with the check's reply still unread.
        conn.broken = true;
        let checked = async {
            conn.client
                .simple_query("SELECT 1")
                .await?
                .into_results()
                .await?;
            Ok::<_, tiberius::error::Error>(())
        };
        match tokio::time::timeout(self.check_timeout, checked).await {
            Ok(Ok(())) => {
                conn.broken = false;
                conn.last_used = Instant::now();
                Ok(())
            }
            Ok(Err(error)) => Err(ConnError {
                connecting: false,
                error,
            }),
            Err(_) => Err(ConnError {
                connecting: false,
                error: tiberius::error::Error::Io {
                    kind: std::io::ErrorKind::TimedOut,
                    message: "idle check timed out".into(),
                },
            }),
        }
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken
    }
}

/// Hands connection failures to waiting requests, so they fail at once instead of waiting
/// out the acquire timeout while the server is down.
#[derive(Clone, Debug)]
struct Failures {
    name: String,
    tx: Arc<watch::Sender<String>>,
}

impl bb8::ErrorSink<ConnError> for Failures {
    fn sink(&self, e: ConnError) {
        if e.connecting {
            warn!(source = %self.name, error = %e, "cannot connect to SQL Server");
            self.tx.send_replace(e.to_string());
        } else {
            debug!(source = %self.name, error = %e, "idle connection failed its check; replaced");
        }
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<ConnError>> {
        Box::new(self.clone())
    }
}

/// A pool of connections to one SQL Server.
pub struct MssqlPool {
    name: String,
    gate: Gate,
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
            gate: Gate::new(cfg),
            handle: runtime.handle().clone(),
            inner,
            runtime: Some(runtime),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stats(&self) -> crate::metrics::PoolStats {
        self.gate.stats()
    }

    pub async fn query(
        &self,
        sql: Arc<str>,
        binds: Vec<BindValue>,
        max_rows: usize,
        timeout: Option<Duration>,
        mut sink: Box<dyn RowSink>,
    ) -> Result<Queried, SourceError> {
        let started = Instant::now();
        let permit = self.gate.enter().await?;
        let inner = Arc::clone(&self.inner);
        // The statement runs to its end (or its timeout) even if the client goes away; the
        // permit goes with it, so the cap stays true.
        let task = self.handle.spawn(async move {
            let _permit = permit;
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
        self.gate.report(&result);
        result.map(|(sink, waited)| Queried { sink, waited })
    }

    /// Ask the server what the statement returns (`sp_describe_first_result_set`), without
    /// running it.
    pub async fn describe(&self, sql: Arc<str>) -> Result<Described, SourceError> {
        let permit = self.gate.acquire().await?;
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
            match t.code() {
                // Lock request timeout: the statement waited past SET LOCK_TIMEOUT.
                1222 => SourceError::Timeout,
                _ => SourceError::Query(text),
            }
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

/// The value a parameter is sent as: bigint, float or nvarchar, typed NULLs included.
fn to_sql(v: &BindValue) -> ColumnData<'_> {
    match v {
        BindValue::Int(i) => ColumnData::I64(Some(*i)),
        BindValue::Float(f) => ColumnData::F64(Some(*f)),
        BindValue::Text(t) => ColumnData::String(Some(std::borrow::Cow::Borrowed(t.as_str()))),
        BindValue::Null(BindKind::Int) => ColumnData::I64(None),
        BindValue::Null(BindKind::Float) => ColumnData::F64(None),
        BindValue::Null(BindKind::Text) => ColumnData::String(None),
    }
}

async fn stream(
    conn: &mut Conn,
    statement: &Statement<'_>,
    sink: &mut dyn RowSink,
    decode_error: &mut Option<SinkError>,
) -> Result<Ended, tiberius::error::Error> {
    let max_rows = statement.max_rows;
    let mut q = Query::new(statement.sql);
    for b in statement.binds {
        q.bind(to_sql(b));
    }
    let mut rows = q.query(&mut conn.client).await?;
    let mut began = false;
    let mut seen = 0usize;
    let mut bufs: Vec<Vec<u8>> = Vec::new();
    let mut kinds: Vec<Rendered> = Vec::new();
    // Set once the gateway has what it needs (or cannot use the rest): later items are read
    // and dropped, up to DRAIN_ITEMS.
    let mut done = false;
    let mut drained = 0usize;
    while let Some(item) = rows.try_next().await? {
        if done {
            drained += 1;
            if drained > DRAIN_ITEMS {
                return Ok(Ended::Early);
            }
            continue;
        }
        match item {
            QueryItem::Metadata(meta) if meta.result_index() == 0 => {
                let columns: Vec<ColumnInfo> = meta
                    .columns()
                    .iter()
                    .map(|c| ColumnInfo {
                        name: c.name().to_string(),
                        sql_type: sql_type(c.column_type()),
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
                kinds = vec![Rendered::Null; columns.len()];
            }
            // A second result set: this route serves the first only.
            QueryItem::Metadata(_) => done = true,
            QueryItem::Row(row) => {
                if row.result_index() > 0 || seen == max_rows {
                    done = true;
                    continue;
                }
                for (i, (col, data)) in row.cells().enumerate() {
                    let (Some(buf), Some(kind)) = (bufs.get_mut(i), kinds.get_mut(i)) else {
                        break;
                    };
                    buf.clear();
                    match render(col.column_type(), data, buf) {
                        Ok(_) if buf.len() > statement.max_text => {
                            *decode_error = Some(SinkError {
                                column: col.name().to_string(),
                                reason: format!(
                                    "a value of {} bytes is longer than max_text_bytes ({}); \
                                     raise it for this source",
                                    buf.len(),
                                    statement.max_text
                                ),
                            });
                            done = true;
                            break;
                        }
                        Ok(k) => *kind = k,
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
                let cells: Vec<Cell<'_>> = bufs
                    .iter()
                    .zip(&kinds)
                    .map(|(b, k)| match k {
                        Rendered::Null => Cell::Null,
                        Rendered::Text => Cell::Text(b),
                        Rendered::Binary => Cell::Binary(b),
                    })
                    .collect();
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
    Ok(Ended::Complete)
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

/// The decoding type of a result column, from its TDS type.
pub fn sql_type(t: ColumnType) -> SqlType {
    use ColumnType as T;
    match t {
        T::Bit | T::Bitn => SqlType::Boolean,
        T::Int1 | T::Int2 | T::Int4 | T::Int8 | T::Intn => SqlType::Integer,
        // The TDS metadata tiberius exposes carries no precision or scale: keep every digit.
        T::Decimaln | T::Numericn | T::Money | T::Money4 => SqlType::Decimal {
            precision: 38,
            scale: 38,
        },
        T::Float4 | T::Float8 | T::Floatn => SqlType::Float,
        T::Daten => SqlType::Date,
        T::Timen => SqlType::Time,
        T::Datetime | T::Datetime4 | T::Datetimen | T::Datetime2 | T::DatetimeOffsetn => {
            SqlType::Timestamp
        }
        T::BigBinary | T::BigVarBin | T::Image => SqlType::Binary,
        T::Guid
        | T::BigChar
        | T::BigVarChar
        | T::NChar
        | T::NVarchar
        | T::Text
        | T::NText
        | T::Xml
        | T::Null => SqlType::Text,
        T::Udt => SqlType::Unsupported(
            "a CLR user-defined type (geography, geometry, hierarchyid)".into(),
        ),
        T::SSVariant => SqlType::Unsupported("sql_variant".into()),
    }
}

/// The decoding type of a column from the name `sp_describe_first_result_set` reports
/// (`decimal(9,2)`, `nvarchar(40)`, `geography`).
pub fn sql_type_named(name: &str) -> SqlType {
    let lower = name.to_ascii_lowercase();
    let (base, args) = match lower.split_once('(') {
        Some((b, a)) => (b.trim(), a.trim_end_matches(')')),
        None => (lower.trim(), ""),
    };
    let mut nums = args.split(',').map(|n| n.trim().parse::<usize>().ok());
    match base {
        "bit" => SqlType::Boolean,
        "tinyint" | "smallint" | "int" | "bigint" => SqlType::Integer,
        "decimal" | "numeric" => {
            let precision = nums.next().flatten().unwrap_or(18);
            let scale = nums.next().flatten().unwrap_or(0);
            SqlType::Decimal {
                precision,
                scale: i16::try_from(scale).unwrap_or(0),
            }
        }
        "money" => SqlType::Decimal {
            precision: 19,
            scale: 4,
        },
        "smallmoney" => SqlType::Decimal {
            precision: 10,
            scale: 4,
        },
        "float" | "real" => SqlType::Float,
        "date" => SqlType::Date,
        "time" => SqlType::Time,
        "datetime" | "smalldatetime" | "datetime2" | "datetimeoffset" => SqlType::Timestamp,
        "binary" | "varbinary" | "image" | "timestamp" | "rowversion" => SqlType::Binary,
        "char" | "varchar" | "nchar" | "nvarchar" | "text" | "ntext" | "xml"
        | "uniqueidentifier" | "sysname" => SqlType::Text,
        "sql_variant" => SqlType::Unsupported("sql_variant".into()),
        other => SqlType::Unsupported(format!("{other} (a CLR or user-defined type)")),
    }
}

/// What [`render`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendered {
    Null,
    Text,
    Binary,
}

/// Days from 0001-01-01 to 1970-01-01.
const DAYS_0001_TO_1970: i64 = 719_162;
/// Days from 0001-01-01 to 1900-01-01, where `datetime` counts from.
const DAYS_0001_TO_1900: i64 = 693_595;
/// Beyond this, a money value (sent as a scaled 64-bit integer, handed over as a double) may
/// have lost its last digits.
const MONEY_EXACT_BELOW: f64 = 100_000_000_000.0;

/// Write one value as the text the codecs read (or raw bytes for binary), in SQL Server's own
/// notation: `1`/`0` for bit, every digit of a decimal, `YYYY-MM-DD hh:mm:ss.fffffff`, a
/// `±hh:mm` offset, an upper-case GUID.
pub fn render(
    ty: ColumnType,
    data: &ColumnData<'_>,
    out: &mut Vec<u8>,
) -> Result<Rendered, String> {
    use ColumnData as C;
    let mut text = |s: &dyn std::fmt::Display| {
        write_display(out, s);
        Ok(Rendered::Text)
    };
    match data {
        C::U8(Some(v)) => text(v),
        C::I16(Some(v)) => text(v),
        C::I32(Some(v)) => text(v),
        C::I64(Some(v)) => text(v),
        C::Bit(Some(v)) => text(&u8::from(*v)),
        C::F64(Some(v)) if matches!(ty, ColumnType::Money | ColumnType::Money4) => {
            if v.abs() >= MONEY_EXACT_BELOW {
                return Err(format!(
                    "a money value of {v:.0} cannot be read exactly by this client; \
                     CAST the column AS decimal(19,4) in the SQL"
                ));
            }
            text(&format_args!("{v:.4}"))
        }
        C::F32(Some(v)) => finite(f64::from(*v)).and_then(|()| text(&format_args!("{v:?}"))),
        C::F64(Some(v)) => finite(*v).and_then(|()| text(&format_args!("{v:?}"))),
        C::Numeric(Some(n)) => text(&numeric(*n)),
        C::String(Some(s)) => {
            out.extend_from_slice(s.as_bytes());
            Ok(Rendered::Text)
        }
        C::Guid(Some(g)) => text(&g.hyphenated().to_string().to_uppercase()),
        C::Binary(Some(b)) => {
            out.extend_from_slice(b);
            Ok(Rendered::Binary)
        }
        C::Xml(Some(x)) => text(&x.as_ref().to_string()),
        C::DateTime(Some(v)) => text(&datetime(*v)),
        C::SmallDateTime(Some(v)) => text(&smalldatetime(*v)),
        C::Date(Some(v)) => text(&date(*v)),
        C::Time(Some(v)) => text(&time(*v)),
        C::DateTime2(Some(v)) => text(&datetime2(*v)),
        C::DateTimeOffset(Some(v)) => text(&datetimeoffset(*v)),
        C::U8(None)
        | C::I16(None)
        | C::I32(None)
        | C::I64(None)
        | C::F32(None)
        | C::F64(None)
        | C::Bit(None)
        | C::String(None)
        | C::Guid(None)
        | C::Binary(None)
        | C::Numeric(None)
        | C::Xml(None)
        | C::DateTime(None)
        | C::SmallDateTime(None)
        | C::Time(None)
        | C::Date(None)
        | C::DateTime2(None)
        | C::DateTimeOffset(None) => Ok(Rendered::Null),
    }
}

fn finite(v: f64) -> Result<(), String> {
    if v.is_finite() {
        Ok(())
    } else {
        Err("the float is not finite".into())
    }
}

/// Every digit of a decimal, from its unscaled value and scale (`Display` would print
/// `123.0` for a scale of 0).
fn numeric(n: Numeric) -> String {
    let scale = usize::from(n.scale());
    let digits = n.value().unsigned_abs().to_string();
    let body = if scale == 0 {
        digits
    } else {
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        format!("{int}.{frac}")
    };
    if n.value() < 0 {
        format!("-{body}")
    } else {
        body
    }
}

fn ymd(days_since_0001: i64) -> String {
    let (y, m, d) = civil_from_days(days_since_0001 - DAYS_0001_TO_1970);
    format!("{y:04}-{m:02}-{d:02}")
}

fn date(d: Date) -> String {
    ymd(i64::from(d.days()))
}

fn time(t: Time) -> String {
    let scale = u32::from(t.scale());
    let per_sec = 10u64.pow(scale);
    let (secs, frac) = (t.increments() / per_sec, t.increments() % per_sec);
    let hms = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if scale == 0 {
        hms
    } else {
        format!("{hms}.{frac:0width$}", width = scale as usize)
    }
}

fn datetime2(d: DateTime2) -> String {
    format!("{} {}", date(d.date()), time(d.time()))
}

/// The wire carries UTC and the offset: show the local wall-clock time with its offset.
fn datetimeoffset(d: DateTimeOffset) -> String {
    let utc = d.datetime2();
    let scale = u32::from(utc.time().scale());
    let per_minute = 60 * i128::from(10u64.pow(scale));
    let per_day = 1440 * per_minute;
    let local = i128::from(utc.date().days()) * per_day
        + i128::from(utc.time().increments())
        + i128::from(d.offset()) * per_minute;
    let days = local.div_euclid(per_day);
    let ticks = local.rem_euclid(per_day);
    let wall = DateTime2::new(
        Date::new(u32::try_from(days).unwrap_or(0)),
        Time::new(
            u64::try_from(ticks).unwrap_or(0),
            u8::try_from(scale).unwrap_or(7),
        ),
    );
    let o = d.offset();
    let sign = if o < 0 { '-' } else { '+' };
    format!(
        "{} {sign}{:02}:{:02}",
        datetime2(wall),
        o.unsigned_abs() / 60,
        o.unsigned_abs() % 60
    )
}

/// `datetime` counts days from 1900-01-01 and 1/300 s ticks; SQL Server shows milliseconds
/// rounded to .000, .003 or .007.
fn datetime(d: DateTime) -> String {
    let ms = (u64::from(d.seconds_fragments()) * 10 + 1) / 3;
    let (s, ms) = (ms / 1000, ms % 1000);
    format!(
        "{} {:02}:{:02}:{:02}.{ms:03}",
        ymd(DAYS_0001_TO_1900 + i64::from(d.days())),
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `smalldatetime` counts days from 1900-01-01 and minutes.
fn smalldatetime(d: SmallDateTime) -> String {
    let m = d.seconds_fragments();
    format!(
        "{} {:02}:{:02}:00",
        ymd(DAYS_0001_TO_1900 + i64::from(d.days())),
        m / 60,
        m % 60
    )
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
        columns.push(ColumnInfo {
            name: name.unwrap_or_default().to_string(),
            sql_type: sql_type_named(ty.unwrap_or("sql_variant")),
        });
    }
    Ok(Described { columns, params })
}

/// The client configuration for a target: the ADO.NET string first, then the fields.
pub fn client_config(t: &MssqlTarget) -> Result<tiberius::Config, String> {
    let mut c = match &t.ado {
        Some(ado) if !ado.expose().is_empty() => tiberius::Config::from_ado_string(ado.expose())
            .map_err(|e| {
                format!(
                    "the connection string is not valid: {}",
                    redact(&e.to_string())
                )
            })?,
        _ => tiberius::Config::new(),
    };
    // tiberius cuts any round trip after 30 s by default and leaves the connection unusable;
    // statement timeouts are the gateway's, enforced with an attention that keeps it.
    c.command_timeout(None);
    if let Some(h) = &t.host {
        c.host(h);
    }
    if let Some(p) = t.port {
        c.port(p);
    }
    if let Some(i) = &t.instance {
        c.instance_name(i);
    }
    if let Some(d) = &t.database {
        c.database(d);
    }
    match (&t.user, &t.password) {
        (Some(u), Some(p)) => c.authentication(AuthMethod::sql_server(u, p.expose())),
        (Some(u), None) => c.authentication(AuthMethod::sql_server(u, "")),
        _ => {}
    }
    let named_app = t.ado.as_ref().is_some_and(|a| {
        let l = a.expose().to_ascii_lowercase();
        l.contains("application name") || l.contains("applicationname")
    });
    match &t.application_name {
        Some(a) => c.application_name(a),
        None if !named_app => c.application_name("patina"),
        None => {}
    }
    match t.encrypt {
        Some(Encrypt::Required) => c.encryption(EncryptionLevel::Required),
        Some(Encrypt::Strict) => c.encryption(EncryptionLevel::Strict),
        Some(Encrypt::LoginOnly) => c.encryption(EncryptionLevel::Off),
        Some(Encrypt::Off) => c.encryption(EncryptionLevel::NotSupported),
        None => {}
    }
    match &t.trust {
        Some(Trust::Any) => c.trust_cert(),
        Some(Trust::CaFile(p)) => c.trust_cert_ca(p.display().to_string()),
        Some(Trust::System) | None => {}
    }
    Ok(c)
}

/// A message about a connection string, without the password's value.
fn redact(s: &str) -> String {
    crate::config::redact_connection_string(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::days_from_civil;
    use std::borrow::Cow;
    use tiberius::Uuid;

    #[allow(clippy::needless_pass_by_value)]
    fn show(ty: ColumnType, data: ColumnData<'static>) -> (Rendered, String) {
        let mut out = Vec::new();
        let k = render(ty, &data, &mut out).expect("renders");
        (k, String::from_utf8_lossy(&out).into_owned())
    }

    fn txt(ty: ColumnType, data: ColumnData<'static>) -> String {
        let (k, s) = show(ty, data);
        assert_eq!(k, Rendered::Text);
        s
    }

    #[test]
    fn integers_and_bits() {
        assert_eq!(txt(ColumnType::Int1, ColumnData::U8(Some(255))), "255");
        assert_eq!(
            txt(ColumnType::Int2, ColumnData::I16(Some(-32768))),
            "-32768"
        );
        assert_eq!(txt(ColumnType::Int4, ColumnData::I32(Some(7))), "7");
        assert_eq!(
            txt(ColumnType::Int8, ColumnData::I64(Some(i64::MIN))),
            "-9223372036854775808"
        );
        assert_eq!(txt(ColumnType::Bitn, ColumnData::Bit(Some(true))), "1");
        assert_eq!(txt(ColumnType::Bitn, ColumnData::Bit(Some(false))), "0");
    }

    #[test]
    fn decimals_keep_every_digit() {
        let n = |v: i128, s: u8| {
            txt(
                ColumnType::Numericn,
                ColumnData::Numeric(Some(Numeric::new_with_scale(v, s))),
            )
        };
        assert_eq!(n(123, 0), "123");
        assert_eq!(n(-5, 3), "-0.005");
        assert_eq!(n(1_050, 2), "10.50");
        assert_eq!(
            n(99_999_999_999_999_999_999_999_999_999_999_999_999, 10),
            "9999999999999999999999999999.9999999999"
        );
        assert_eq!(
            n(-12_345_678_901_234_567_890_123_456_789_012_345_678, 0),
            "-12345678901234567890123456789012345678"
        );
    }

    #[test]
    fn money_exact_or_refused() {
        assert_eq!(
            txt(ColumnType::Money, ColumnData::F64(Some(1.2345))),
            "1.2345"
        );
        assert_eq!(
            txt(ColumnType::Money4, ColumnData::F64(Some(214_748.364_7))),
            "214748.3647"
        );
        assert_eq!(
            txt(
                ColumnType::Money,
                ColumnData::F64(Some(-99_999_999_999.999_9))
            ),
            "-99999999999.9999"
        );
        let mut out = Vec::new();
        let e = render(
            ColumnType::Money,
            &ColumnData::F64(Some(922_337_203_685_477.6)),
            &mut out,
        )
        .expect_err("too large to be exact");
        assert!(e.contains("decimal(19,4)"), "{e}");
    }

    #[test]
    fn floats() {
        assert_eq!(txt(ColumnType::Float4, ColumnData::F32(Some(0.1))), "0.1");
        assert_eq!(
            txt(ColumnType::Float8, ColumnData::F64(Some(1e300))),
            "1e300"
        );
        assert_eq!(txt(ColumnType::Float8, ColumnData::F64(Some(-2.5))), "-2.5");
        let mut out = Vec::new();
        assert!(
            render(
                ColumnType::Float8,
                &ColumnData::F64(Some(f64::NAN)),
                &mut out
            )
            .is_err()
        );
    }

    #[test]
    fn strings_guids_binary_xml() {
        assert_eq!(
            txt(
                ColumnType::BigChar,
                ColumnData::String(Some("AB   ".into()))
            ),
            "AB   "
        );
        assert_eq!(
            txt(
                ColumnType::NVarchar,
                ColumnData::String(Some("Zoë ✓".into()))
            ),
            "Zoë ✓"
        );
        let g = Uuid::parse_str("6f9619ff-8b86-d011-b42d-00c04fc964ff").expect("uuid");
        assert_eq!(
            txt(ColumnType::Guid, ColumnData::Guid(Some(g))),
            "6F9619FF-8B86-D011-B42D-00C04FC964FF"
        );
        let (k, s) = show(
            ColumnType::BigVarBin,
            ColumnData::Binary(Some(vec![0xde, 0xad].into())),
        );
        assert_eq!((k, s.as_bytes()), (Rendered::Binary, &[0xde, 0xad][..]));
        let x = tiberius::xml::XmlData::new("<a>1</a>");
        assert_eq!(
            txt(ColumnType::Xml, ColumnData::Xml(Some(Cow::Owned(x)))),
            "<a>1</a>"
        );
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(
            txt(ColumnType::Daten, ColumnData::Date(Some(Date::new(0)))),
            "0001-01-01"
        );
        assert_eq!(
            txt(
                ColumnType::Daten,
                ColumnData::Date(Some(Date::new(3_652_058)))
            ),
            "9999-12-31"
        );
        assert_eq!(
            txt(
                ColumnType::Timen,
                ColumnData::Time(Some(Time::new(452_961_234_567, 7)))
            ),
            "12:34:56.1234567"
        );
        assert_eq!(
            txt(
                ColumnType::Timen,
                ColumnData::Time(Some(Time::new(3_600, 0)))
            ),
            "01:00:00"
        );
        let dt2 = DateTime2::new(Date::new(738_885), Time::new(452_961_234_567, 7));
        assert_eq!(
            txt(ColumnType::Datetime2, ColumnData::DateTime2(Some(dt2))),
            "2024-01-01 12:34:56.1234567"
        );
        assert_eq!(
            txt(
                ColumnType::DatetimeOffsetn,
                ColumnData::DateTimeOffset(Some(DateTimeOffset::new(dt2, 330)))
            ),
            "2024-01-01 18:04:56.1234567 +05:30"
        );
        // UTC 01:00 on Jan 1st is 17:00 on Dec 31st at -08:00.
        let early = DateTime2::new(Date::new(738_885), Time::new(3_600, 0));
        assert_eq!(
            txt(
                ColumnType::DatetimeOffsetn,
                ColumnData::DateTimeOffset(Some(DateTimeOffset::new(early, -480)))
            ),
            "2023-12-31 17:00:00 -08:00"
        );
        assert_eq!(
            txt(
                ColumnType::Datetime,
                ColumnData::DateTime(Some(DateTime::new(0, 0)))
            ),
            "1900-01-01 00:00:00.000"
        );
        assert_eq!(
            txt(
                ColumnType::Datetime,
                ColumnData::DateTime(Some(DateTime::new(-53_690, 25_919_999)))
            ),
            "1753-01-01 23:59:59.997"
        );
        assert_eq!(
            txt(
                ColumnType::Datetime4,
                ColumnData::SmallDateTime(Some(SmallDateTime::new(45_000, 61)))
            ),
            "2023-03-17 01:01:00"
        );
    }

    #[test]
    fn null_of_every_type() {
        let nulls = [
            ColumnData::U8(None),
            ColumnData::I16(None),
            ColumnData::I32(None),
            ColumnData::I64(None),
            ColumnData::F32(None),
            ColumnData::F64(None),
            ColumnData::Bit(None),
            ColumnData::String(None),
            ColumnData::Guid(None),
            ColumnData::Binary(None),
            ColumnData::Numeric(None),
            ColumnData::Xml(None),
            ColumnData::DateTime(None),
            ColumnData::SmallDateTime(None),
            ColumnData::Time(None),
            ColumnData::Date(None),
            ColumnData::DateTime2(None),
            ColumnData::DateTimeOffset(None),
        ];
        for n in nulls {
            let (k, s) = show(ColumnType::Null, n);
            assert_eq!((k, s.as_str()), (Rendered::Null, ""));
        }
    }

    /// Rendered text goes through the same codecs as every other source's.
    #[test]
    fn rendered_text_decodes_with_the_default_codecs() {
        use crate::codec::ColumnCodec;
        let cases: Vec<(ColumnType, ColumnData<'static>, &str)> = vec![
            (ColumnType::Bitn, ColumnData::Bit(Some(true)), "true"),
            (
                ColumnType::Numericn,
                ColumnData::Numeric(Some(Numeric::new_with_scale(1_050, 2))),
                "10.50",
            ),
            (ColumnType::Money, ColumnData::F64(Some(12.5)), "12.5000"),
            (
                ColumnType::Daten,
                ColumnData::Date(Some(Date::new(738_885))),
                "\"2024-01-01\"",
            ),
            (
                ColumnType::Datetime,
                ColumnData::DateTime(Some(DateTime::new(45_000, 300))),
                "\"2023-03-17T00:00:01\"",
            ),
            (
                ColumnType::DatetimeOffsetn,
                ColumnData::DateTimeOffset(Some(DateTimeOffset::new(
                    DateTime2::new(Date::new(738_885), Time::new(0, 0)),
                    60,
                ))),
                "\"2024-01-01T01:00:00+01:00\"",
            ),
            (ColumnType::Float8, ColumnData::F64(Some(0.25)), "0.25"),
            (ColumnType::Int8, ColumnData::I64(Some(-3)), "-3"),
        ];
        for (ty, data, want) in cases {
            let mut buf = Vec::new();
            let k = render(ty, &data, &mut buf).expect("renders");
            let cell = match k {
                Rendered::Null => Cell::Null,
                Rendered::Text => Cell::Text(&buf),
                Rendered::Binary => Cell::Binary(&buf),
            };
            let codec = ColumnCodec::new(sql_type(ty).default_codec());
            let mut out = Vec::new();
            codec.write_json(cell, &mut out).expect("decodes");
            assert_eq!(String::from_utf8_lossy(&out), want, "{ty:?}");
        }
    }

    #[test]
    fn types_without_a_codec_are_named() {
        assert!(matches!(sql_type(ColumnType::Udt), SqlType::Unsupported(_)));
        assert!(matches!(
            sql_type(ColumnType::SSVariant),
            SqlType::Unsupported(_)
        ));
        assert_eq!(
            sql_type_named("geography"),
            SqlType::Unsupported("geography (a CLR or user-defined type)".into())
        );
        assert_eq!(
            sql_type_named("decimal(9,2)"),
            SqlType::Decimal {
                precision: 9,
                scale: 2
            }
        );
        assert_eq!(sql_type_named("nvarchar(40)"), SqlType::Text);
        assert_eq!(sql_type_named("datetimeoffset(7)"), SqlType::Timestamp);
        assert_eq!(sql_type_named("BIGINT"), SqlType::Integer);
    }

    #[test]
    fn parameters_are_sent_with_their_types() {
        assert_eq!(to_sql(&BindValue::Int(-7)), ColumnData::I64(Some(-7)));
        assert_eq!(to_sql(&BindValue::Float(2.5)), ColumnData::F64(Some(2.5)));
        assert_eq!(
            to_sql(&BindValue::Text("Zoë".into())),
            ColumnData::String(Some(Cow::Borrowed("Zoë")))
        );
        assert_eq!(
            to_sql(&BindValue::Null(BindKind::Int)),
            ColumnData::I64(None)
        );
        assert_eq!(
            to_sql(&BindValue::Null(BindKind::Float)),
            ColumnData::F64(None)
        );
        assert_eq!(
            to_sql(&BindValue::Null(BindKind::Text)),
            ColumnData::String(None)
        );
        let values = [BindValue::Int(1), BindValue::Null(BindKind::Text)];
        let mut q = Query::new("SELECT @P1, @P2");
        for v in &values {
            q.bind(to_sql(v));
        }
        assert_eq!(q.param_count(), 2);
    }

    #[test]
    fn params_are_counted_from_markers() {
        assert_eq!(param_count("SELECT 1"), 0);
        assert_eq!(
            param_count("SELECT a FROM t WHERE a = @P1 AND (@P2 IS NULL OR b = @P2)"),
            2
        );
        assert_eq!(param_count("SELECT @P10, @P9"), 10);
    }

    #[test]
    fn config_from_fields_and_from_ado() {
        let t = MssqlTarget {
            ado: None,
            host: Some("db.example".into()),
            port: Some(1444),
            instance: None,
            database: Some("ERP".into()),
            user: Some("svc".into()),
            password: Some(crate::secret::Secret::new("pw")),
            encrypt: Some(Encrypt::Strict),
            trust: None,
            application_name: None,
        };
        let c = client_config(&t).expect("config");
        assert_eq!(c.get_addr(), "db.example:1444");
        let t = MssqlTarget {
            ado: Some(crate::secret::Secret::new(
                "Server=tcp:legacy.example,1433;Database=ERP;User Id=svc;Password='p;w';Encrypt=true",
            )),
            host: None,
            port: None,
            instance: None,
            database: None,
            user: None,
            password: None,
            encrypt: None,
            trust: None,
            application_name: None,
        };
        assert_eq!(
            client_config(&t).expect("config").get_addr(),
            "legacy.example:1433"
        );
        let bad = MssqlTarget {
            ado: Some(crate::secret::Secret::new(
                "Server=tcp:h,notaport;Password=hunter2",
            )),
            ..t
        };
        let e = client_config(&bad).expect_err("bad port");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-719_162, -1, 0, 59, 365, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
