//! Transactions on SQL Server: `SET XACT_ABORT ON; BEGIN TRANSACTION`, a [`Script`]'s
//! statements one after the other on one connection, then `COMMIT TRANSACTION`, or `IF
//! @@TRANCOUNT > 0 ROLLBACK TRANSACTION` when anything failed or the script stopped. Running a
//! single statement and decoding its rows is the parent module's ([`stream`]); this module adds
//! the row count a step may need.

use std::sync::Arc;
use std::time::Instant;

use futures_util::TryStreamExt;
use tiberius::{Command, CommandItem};
use tokio::sync::OwnedSemaphorePermit;

use super::{Conn, Ended, Fed, Item, MssqlPool, Statement, cancel, classify, feed, stream};
use crate::codec::{BindKind, BindValue, Cell};
use crate::shape::ColumnInfo;
use crate::source::{Next, RowSink, Script, SinkError, SourceError, Transacted, TxOptions};

impl MssqlPool {
    /// Run a script's statements in one transaction (`SET XACT_ABORT ON`, so any error rolls
    /// the whole of it back on the server too). Each statement streams its first result set
    /// into the script; one whose row count the script needs also reports the rows it touched
    /// (see [`stream_counted`]).
    pub async fn transact(
        &self,
        mut script: Box<dyn Script>,
        options: TxOptions,
        started: Instant,
        permit: OwnedSemaphorePermit,
    ) -> Transacted {
        let inner = Arc::clone(&self.inner);
        let task = self.handle.spawn(async move {
            let _permit = permit;
            let mut conn = match inner.checkout().await {
                Ok(c) => c,
                Err(e) => return (script, Err(e), started.elapsed()),
            };
            let waited = started.elapsed();
            let limit = options.timeout.or(inner.statement_timeout);
            let steps = transact_steps(&mut conn, script.as_mut(), options, inner.max_text);
            let outcome = match limit {
                Some(t) => tokio::time::timeout(t, steps).await.ok(),
                None => Some(steps.await),
            };
            conn.last_used = Instant::now();
            let result = match outcome {
                None => {
                    // The session goes with the connection; the server rolls back.
                    cancel(&inner.name, &mut conn).await;
                    conn.broken = true;
                    Err(SourceError::Timeout)
                }
                Some(Ok(Ok(()))) => {
                    let committed = async {
                        conn.client
                            .simple_query("COMMIT TRANSACTION")
                            .await?
                            .into_results()
                            .await
                    }
                    .await;
                    committed
                        .map(|_| ())
                        .map_err(|e| classify(&inner.name, &mut conn, e))
                }
                Some(Ok(Err(stopped))) => Err(stopped),
                Some(Err(e)) => Err(classify(&inner.name, &mut conn, e)),
            };
            if result.is_err() && !conn.broken {
                let rolled = async {
                    conn.client
                        .simple_query("IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION")
                        .await?
                        .into_results()
                        .await
                }
                .await;
                if rolled.is_err() {
                    conn.broken = true;
                }
            }
            if options.serializable && !conn.broken {
                let reset = async {
                    conn.client
                        .simple_query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .await?
                        .into_results()
                        .await
                }
                .await;
                if reset.is_err() {
                    conn.broken = true;
                }
            }
            (script, result, waited)
        });
        match task.await {
            Ok((script, result, waited)) => Transacted {
                script,
                result,
                waited,
            },
            Err(_) => Transacted {
                script: Box::new(crate::source::Lost),
                result: Err(SourceError::Closed),
                waited: started.elapsed(),
            },
        }
    }
}

/// The statements of a transaction, after `BEGIN`; the outer error is the client's, the
/// inner one the script's stop or a value the gateway refused.
async fn transact_steps(
    conn: &mut Conn,
    script: &mut dyn Script,
    options: TxOptions,
    max_text: usize,
) -> Result<Result<(), SourceError>, tiberius::error::Error> {
    let begin = if options.serializable {
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SET XACT_ABORT ON; BEGIN TRANSACTION"
    } else {
        "SET XACT_ABORT ON; BEGIN TRANSACTION"
    };
    conn.client
        .simple_query(begin)
        .await?
        .into_results()
        .await?;
    loop {
        let st = match script.next_statement() {
            Next::Run(st) => st,
            Next::Commit => return Ok(Ok(())),
            Next::Stop => return Ok(Err(SourceError::Stopped)),
        };
        let statement = Statement {
            sql: &st.sql,
            binds: &st.binds,
            max_rows: st.max_rows,
            max_text,
        };
        let mut decode_error = None;
        let mut counter = Counting {
            inner: &mut *script,
            rows: 0,
        };
        let (ended, affected) = if st.count_rows {
            let fed = stream_counted(conn, &statement, &mut counter, &mut decode_error).await?;
            // Rows returned (`OUTPUT`, a SELECT) are the rows touched, as over ODBC; a
            // statement without a result set reports its count in its DONE token.
            (fed.ended, (!fed.began).then_some(fed.affected))
        } else {
            (
                stream(conn, &statement, &mut counter, &mut decode_error).await?,
                None,
            )
        };
        let rows = affected.unwrap_or(counter.rows);
        if let Ended::Early = ended {
            return Ok(Err(SourceError::Query(
                "a write step returned more rows than it may".into(),
            )));
        }
        if let Some(e) = decode_error {
            return Ok(Err(SourceError::Decode(e)));
        }
        let rows = Some(rows);
        if !script.ran(rows) {
            return Ok(Err(SourceError::Stopped));
        }
    }
}

/// A sink that counts the rows it passes on.
struct Counting<'a> {
    inner: &'a mut dyn Script,
    rows: u64,
}

impl RowSink for Counting<'_> {
    fn begin(&mut self, columns: &[ColumnInfo]) -> Result<(), SinkError> {
        self.inner.begin(columns)
    }
    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), SinkError> {
        self.rows += 1;
        self.inner.row(cells)
    }
    fn finish(self: Box<Self>) -> (Vec<u8>, usize) {
        (Vec::new(), 0)
    }
}

/// Run a statement through `sp_executesql` as a command, whose stream carries the rows it
/// touched (its DONE tokens' counts) besides its rows; a query's stream has the rows only.
/// The values are bound as `@P1…` exactly as a query binds them.
async fn stream_counted(
    conn: &mut Conn,
    statement: &Statement<'_>,
    sink: &mut dyn RowSink,
    decode_error: &mut Option<SinkError>,
) -> Result<Fed, tiberius::error::Error> {
    let names: Vec<String> = (1..=statement.binds.len())
        .map(|i| format!("@P{i}"))
        .collect();
    let declared = declare(statement.binds);
    let mut cmd = Command::new("sp_executesql");
    cmd.bind_param("@stmt", statement.sql);
    cmd.bind_param("@params", declared.as_str());
    for (name, b) in names.iter().zip(statement.binds) {
        let name = name.as_str();
        match b {
            BindValue::Int(i) => cmd.bind_param(name, *i),
            BindValue::Float(f) => cmd.bind_param(name, *f),
            BindValue::Text(t) => cmd.bind_param(name, t.as_str()),
            BindValue::Null(BindKind::Int) => cmd.bind_param(name, None::<i64>),
            BindValue::Null(BindKind::Float) => cmd.bind_param(name, None::<f64>),
            BindValue::Null(BindKind::Text) => cmd.bind_param(name, None::<&str>),
        }
    }
    let items = cmd.exec(&mut conn.client).await?.map_ok(|item| match item {
        CommandItem::Metadata(m) => Item::Metadata(m),
        CommandItem::Row(r) => Item::Row(r),
        CommandItem::RowsAffected(n) => Item::Count(n),
        CommandItem::ReturnStatus(_) | CommandItem::ReturnValue(_) => Item::Other,
    });
    feed(items, statement, sink, decode_error).await
}

/// `sp_executesql`'s `@params`: each value's SQL type, as the client library declares it for
/// a query (a text over 4,000 bytes is `nvarchar(max)`).
fn declare(binds: &[BindValue]) -> String {
    let types: Vec<String> = binds
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let ty = match b {
                BindValue::Int(_) | BindValue::Null(BindKind::Int) => "bigint",
                BindValue::Float(_) | BindValue::Null(BindKind::Float) => "float",
                BindValue::Text(t) if t.len() > 4000 => "nvarchar(max)",
                BindValue::Text(_) | BindValue::Null(BindKind::Text) => "nvarchar(4000)",
            };
            format!("@P{} {ty}", i + 1)
        })
        .collect();
    types.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The declarations a query of the client library would send for the same values.
    #[test]
    fn declarations_match_the_client_librarys() {
        let long = "x".repeat(4001);
        assert_eq!(
            declare(&[
                BindValue::Int(1),
                BindValue::Text("x".into()),
                BindValue::Null(BindKind::Text),
                BindValue::Float(1.5),
                BindValue::Null(BindKind::Int),
                BindValue::Null(BindKind::Float),
                BindValue::Text(long),
            ]),
            "@P1 bigint,@P2 nvarchar(4000),@P3 nvarchar(4000),@P4 float,@P5 bigint,@P6 float,\
             @P7 nvarchar(max)"
        );
        assert_eq!(declare(&[]), "");
    }
}
