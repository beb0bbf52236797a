//! `patina introspect`: start a mapping file in seconds. The database describes a table's
//! columns (the same describe `check --db` uses: ODBC `SQLDescribeCol`, SQL Server's
//! `sp_describe_first_result_set`), its catalog names the key (primary key, else a unique
//! constraint; the dialect owns that statement), and with `--sample` the distinct values of
//! short CHAR columns and of numbers named like dates are read, so that codes get a stub and
//! dates their form. [`render`] writes the file. Nothing is written to the database.

pub mod names;
mod render;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::codec::{BindValue, Cell};
use crate::config::{Config, SourceConfig, SourceKind};
use crate::dialect::{Client, KeyBind, Placeholders};
use crate::shape::{ColumnInfo, SqlType};
use crate::source::{RowSink, SinkError, Source};
pub use names::Dictionary;
use render::{Column, From, Header, Table};

/// What to map.
#[derive(Clone, Debug)]
pub enum Target {
    /// `LIB.FILE` (or `FILE`).
    Table(String),
    /// Every table of a schema (library).
    Schema(String),
    /// One statement, as written.
    Sql(String),
}

/// A request of `patina introspect`.
#[derive(Clone, Debug)]
pub struct Request {
    pub source: String,
    pub target: Target,
    /// Read distinct values of short CHAR columns and of numbers named like dates.
    pub sample: bool,
    /// The resource name (`--name`) instead of one made from the table's name.
    pub name: Option<String>,
    /// The `#:schema` line's target.
    pub schema: String,
    /// The command line, for the file's first comment.
    pub command: String,
}

/// How long one catalog or sample statement may run.
const STATEMENT_TIMEOUT: Duration = Duration::from_mins(2);
/// Most distinct values a sample reads of one column (more: not a code).
const SAMPLE_VALUES: usize = 21;

/// The mapping file for `req`, made from what the source's database says.
pub async fn introspect(
    config: &Config,
    req: &Request,
    dict: &Dictionary,
) -> Result<String, String> {
    let cfg = config
        .sources
        .get(&req.source)
        .ok_or_else(|| format!("no source `{}` in {}", req.source, config.file.display()))?;
    if Config::unset_in(cfg) {
        return Err(format!(
            "source `{}` needs environment variables that are not set",
            req.source
        ));
    }
    let mut one = cfg.clone();
    one.pool_max = 1;
    one.max_concurrent = 1;
    let source = Source::start(&one).map_err(|e| format!("source `{}`: {e}", req.source))?;
    let placeholders = Placeholders::for_client(match cfg.kind() {
        SourceKind::Odbc => Client::Odbc,
        SourceKind::Mssql => Client::Tds,
    });
    let db = Db {
        source: &source,
        placeholders,
    };
    let mut tables = Vec::new();
    match &req.target {
        Target::Sql(sql) => {
            check_statement(sql)?;
            let columns = db.describe(sql).await?;
            tables.push(Table {
                from: From::Statement(sql.clone()),
                name: req.name.clone().unwrap_or_else(|| "query".into()),
                columns: columns.into_iter().map(column).collect(),
                key: Vec::new(),
            });
        }
        Target::Table(t) => tables.push(db.table(cfg, t, req, dict).await?),
        Target::Schema(schema) => {
            check_identifier(schema)?;
            let names = db.tables(cfg, schema).await?;
            if names.is_empty() {
                return Err(format!(
                    "schema `{schema}` has no tables the source can see"
                ));
            }
            for t in names {
                tables.push(db.table(cfg, &t, req, dict).await?);
            }
        }
    }
    Ok(render::render(
        &tables,
        dict,
        &Header {
            source: req.source.clone(),
            schema: req.schema.clone(),
            command: req.command.clone(),
        },
    ))
}

/// A table name as SQL takes it: `LIB.FILE`, letters, digits, `_`, `$`, `#`, `@`.
fn check_identifier(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '#' | '@'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a table name (LIB.FILE: letters, digits, _, $, #, @)"
        ))
    }
}

/// One `SELECT`, nothing else.
fn check_statement(sql: &str) -> Result<(), String> {
    let s = sql.trim_start().to_ascii_uppercase();
    if s.starts_with("SELECT") || s.starts_with("WITH") {
        Ok(())
    } else {
        Err("--sql takes one SELECT statement".into())
    }
}

fn column(c: ColumnInfo) -> Column {
    Column {
        name: c.name,
        sql_type: c.sql_type,
        nullable: c.nullable,
        width: c.width,
        fixed: c.fixed,
        sample: None,
    }
}

/// The source and how its client marks bound values.
struct Db<'a> {
    source: &'a Source,
    placeholders: Placeholders,
}

impl Db<'_> {
    async fn describe(&self, sql: &str) -> Result<Vec<ColumnInfo>, String> {
        let described =
            tokio::time::timeout(STATEMENT_TIMEOUT, self.source.describe(Arc::from(sql)))
                .await
                .map_err(|_| "the database did not describe the statement in time".to_string())?
                .map_err(|e| format!("the database could not describe `{sql}`: {e}"))?;
        if described.columns.is_empty() {
            return Err(format!("the database describes no columns for `{sql}`"));
        }
        Ok(described.columns)
    }

    /// Run `sql` (with `?` for each bind) and return its rows as text.
    async fn rows(
        &self,
        sql: &str,
        binds: Vec<BindValue>,
        max_rows: usize,
    ) -> Result<Vec<Vec<Option<String>>>, String> {
        let mut n = 0;
        let mut text = String::with_capacity(sql.len());
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                text.push_str(&self.placeholders.nth(n));
            } else {
                text.push(c);
            }
        }
        let rows = Arc::new(Mutex::new(Vec::new()));
        let sink = Box::new(TextRows(Arc::clone(&rows)));
        self.source
            .query(
                Arc::from(text.as_str()),
                binds,
                max_rows,
                Some(STATEMENT_TIMEOUT),
                sink,
            )
            .await
            .map_err(|e| format!("the database refused a catalog statement: {e}"))?;
        let rows = std::mem::take(&mut *rows.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(rows)
    }

    /// The tables of `schema`, as `SCHEMA.TABLE` (SQLite: `TABLE`).
    async fn tables(&self, cfg: &SourceConfig, schema: &str) -> Result<Vec<String>, String> {
        let (sql, binds) = cfg.dialect.tables_sql();
        let binds = vec![BindValue::Text(schema.to_string()); binds];
        let rows = self.rows(sql, binds, 100_000).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let table = r.get(1).cloned().flatten()?;
                let schema = r.first().cloned().flatten().unwrap_or_default();
                Some(if cfg.dialect == crate::dialect::Dialect::Sqlite {
                    table.trim().to_string()
                } else {
                    format!("{}.{}", schema.trim(), table.trim())
                })
            })
            .collect())
    }

    async fn table(
        &self,
        cfg: &SourceConfig,
        name: &str,
        req: &Request,
        dict: &Dictionary,
    ) -> Result<Table, String> {
        check_identifier(name)?;
        let columns = self.describe(&format!("SELECT * FROM {name}")).await?;
        let (schema, base) = match name.rsplit_once('.') {
            Some((s, b)) => (s.to_string(), b.to_string()),
            None => (String::new(), name.to_string()),
        };
        let (sql, binds) = cfg.dialect.keys_sql();
        let binds = binds
            .iter()
            .map(|b| {
                BindValue::Text(match b {
                    KeyBind::Table => base.clone(),
                    KeyBind::Schema => schema.clone(),
                })
            })
            .collect();
        let keys = self.rows(sql, binds, 10_000).await?;
        // The first key listed (the primary key comes first), in its column order.
        let first = keys.first().and_then(|r| r.first().cloned().flatten());
        let key: Vec<String> = keys
            .iter()
            .filter(|r| r.first().cloned().flatten() == first)
            .filter_map(|r| r.get(1).cloned().flatten())
            .filter_map(|k| {
                // As the describe spells it (PostgreSQL folds case).
                columns
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(k.trim()))
                    .map(|c| c.name.clone())
            })
            .collect();
        let mut out: Vec<Column> = columns.into_iter().map(column).collect();
        if req.sample {
            for c in &mut out {
                let short_text =
                    c.sql_type == SqlType::Text && c.fixed && c.width.is_some_and(|w| w <= 2);
                let maybe_date = matches!(
                    c.sql_type,
                    SqlType::Float | SqlType::Decimal { scale: 0, .. }
                ) && dict.names_a_date(&c.name);
                if !(short_text || maybe_date) {
                    continue;
                }
                let sql = format!(
                    "SELECT {col}, COUNT(*) FROM {name} GROUP BY {col} ORDER BY 2 DESC",
                    col = c.name
                );
                let values = self.rows(&sql, Vec::new(), SAMPLE_VALUES).await?;
                let mut seen: Vec<String> = Vec::new();
                for v in values
                    .into_iter()
                    .filter_map(|r| r.first().cloned().flatten())
                {
                    let v = v.trim().to_string();
                    if !seen.contains(&v) {
                        seen.push(v);
                    }
                }
                // More distinct values than a code list holds: not a code.
                if short_text && seen.len() >= SAMPLE_VALUES {
                    continue;
                }
                c.sample = Some(seen);
            }
        }
        Ok(Table {
            from: From::Table(name.to_string()),
            name: req.name.clone().unwrap_or(base),
            columns: out,
            key,
        })
    }
}

/// Rows as text, for catalog statements and samples.
struct TextRows(Arc<Mutex<Vec<Vec<Option<String>>>>>);

impl RowSink for TextRows {
    fn begin(&mut self, _: &[ColumnInfo]) -> Result<(), SinkError> {
        Ok(())
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), SinkError> {
        let row = cells
            .iter()
            .map(|c| match c {
                Cell::Null => None,
                Cell::Text(t) | Cell::Binary(t) => Some(String::from_utf8_lossy(t).into_owned()),
                other => {
                    let mut s = String::new();
                    other.write_text(&mut s).ok().map(|()| s)
                }
            })
            .collect();
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(row);
        Ok(())
    }

    fn finish(self: Box<Self>) -> (Vec<u8>, usize) {
        let n = self.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        (Vec::new(), n)
    }
}
