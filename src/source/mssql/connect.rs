//! SQL Server connections for the pool: opening one (named instances through the SQL Browser,
//! one login redirect followed, the login timeout), checking an idle one with a round trip
//! before it is handed out, and passing connection failures on to waiting requests. Running
//! statements is [`super`]'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tiberius::{Client, SqlBrowser as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};
use tracing::{debug, warn};

/// How long a connection may sit idle before it is checked with a round trip on checkout.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(2);

pub(super) type Tds = Client<Compat<TcpStream>>;

/// One pooled connection, with what the pool must know about its health.
#[derive(Debug)]
pub struct Conn {
    pub(super) client: Tds,
    /// Set when the connection can no longer be trusted (I/O error, a cancel that was not
    /// acknowledged, a result left half read): the pool discards it instead of reusing it.
    pub(super) broken: bool,
    pub(super) last_used: Instant,
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
pub(super) struct Manager {
    pub(super) name: String,
    pub(super) config: tiberius::Config,
    pub(super) login_timeout: Duration,
    /// Longest an idle connection's check may take: well inside the acquire timeout.
    pub(super) check_timeout: Duration,
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
pub(super) struct Failures {
    pub(super) name: String,
    pub(super) tx: Arc<watch::Sender<String>>,
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
