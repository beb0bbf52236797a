//! Every difference between the SQL flavours the gateway speaks, in one place: placeholder
//! style per client library, identifier quoting, paging syntax, the no-op ping statement, how
//! `LIKE` patterns are escaped, and how a driver's error text is read. A leaf: it imports
//! nothing from the crate. Finding `:name` parameters and rewriting them is `sql`'s job;
//! escaping a value for `LIKE` is the codec's, following what [`Dialect`] says.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// The SQL flavour of a source: placeholder syntax, identifier quoting, paging syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// IBM i (DB2 for i) over ODBC.
    Db2i,
    /// Microsoft SQL Server.
    Mssql,
    Postgres,
    Sqlite,
}

/// What a bind of [`Dialect::keys_sql`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyBind {
    Table,
    Schema,
}

impl Dialect {
    pub const NAMES: [&'static str; 4] = ["db2i", "mssql", "postgres", "sqlite"];
    pub const ALL: [Self; 4] = [Self::Db2i, Self::Mssql, Self::Postgres, Self::Sqlite];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "db2i" => Some(Self::Db2i),
            "mssql" => Some(Self::Mssql),
            "postgres" => Some(Self::Postgres),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Db2i => "db2i",
            Self::Mssql => "mssql",
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }

    /// The keyset form of a page: `sql` wrapped so that the database returns its rows in key
    /// order, after the last row of the previous page when there is one, at most `limit` rows
    /// (a placeholder, bound last; the caller asks for one row more than the page to learn
    /// whether another follows). Page 1,000 costs what page 1 costs: no OFFSET walks the rows
    /// before it, and the first key's bound (`a >= ?`) is written on its own so that an index
    /// on it can start there. The rest of the predicate is written out
    /// (`a > ? OR (a = ? AND b > ?)`), which every dialect runs and which allows mixed
    /// directions. NULL sorts after every value (last ascending, first descending) in every
    /// dialect; `after[i]` says whether the previous row's value of key `i` was NULL, which
    /// decides the predicate's text (NULL is never bound). `select` names the result columns
    /// to return (all when empty). The statement's own placeholders come first: `first` is the
    /// number of the predicate's first.
    pub fn keyset(self, page: &KeysetPage<'_>, placeholders: Placeholders, first: usize) -> Keyset {
        let sql = page.sql.trim_end().trim_end_matches(';').trim_end();
        let mut binds = Vec::new();
        let mut next = first;
        let mut bind = |key: usize| {
            binds.push(key);
            next += 1;
            placeholders.nth(next - 1)
        };
        let col = |k: &SortKey<'_>| format!("KEYSET_PAGE.{}", k.column);
        let select = if page.select.is_empty() {
            "KEYSET_PAGE.*".to_string()
        } else {
            page.select
                .iter()
                .map(|c| format!("KEYSET_PAGE.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut text = format!("SELECT {select} FROM (\n{sql}\n) KEYSET_PAGE");
        if let Some(after) = page
            .after
            .filter(|a| a.len() == page.keys.len() && !a.is_empty())
        {
            let keys = page.keys;
            // The first key's bound: all that an index needs to start at the right place.
            let k0 = &keys[0];
            let lead = match (k0.descending, after[0]) {
                (false, false) if k0.nullable => {
                    Some(format!("({c} >= {} OR {c} IS NULL)", bind(0), c = col(k0)))
                }
                (false, false) => Some(format!("{} >= {}", col(k0), bind(0))),
                (false, true) => Some(format!("{} IS NULL", col(k0))),
                (true, false) => Some(format!("{} <= {}", col(k0), bind(0))),
                (true, true) => None,
            };
            let mut alternatives = Vec::with_capacity(keys.len());
            for (i, key) in keys.iter().enumerate() {
                // Rows strictly after the previous value of key i; None when none can be.
                let after_i = match (key.descending, after[i]) {
                    (false, false) if key.nullable => {
                        Some(format!("({c} > {{}} OR {c} IS NULL)", c = col(key)))
                    }
                    (false, false) => Some(format!("{} > {{}}", col(key))),
                    (false, true) => None,
                    (true, false) => Some(format!("{} < {{}}", col(key))),
                    (true, true) => Some(format!("{} IS NOT NULL", col(key))),
                };
                let Some(after_i) = after_i else { continue };
                let mut terms: Vec<String> = keys[..i]
                    .iter()
                    .enumerate()
                    .map(|(j, k)| {
                        if after[j] {
                            format!("{} IS NULL", col(k))
                        } else {
                            format!("{} = {}", col(k), bind(j))
                        }
                    })
                    .collect();
                terms.push(if after[i] {
                    after_i
                } else {
                    after_i.replace("{}", &bind(i))
                });
                alternatives.push(terms.join(" AND "));
            }
            let rest = if alternatives.is_empty() {
                "1 = 0".to_string()
            } else {
                format!("(({}))", alternatives.join(")\n   OR ("))
            };
            text.push_str("\nWHERE ");
            if let Some(lead) = lead {
                text.push_str(&lead);
                text.push_str("\n  AND ");
            }
            text.push_str(&rest);
        }
        if !page.keys.is_empty() {
            let order: Vec<String> = page
                .keys
                .iter()
                .map(|k| self.order_term(&col(k), k))
                .collect();
            text.push_str("\nORDER BY ");
            text.push_str(&order.join(", "));
        }
        if page.limit {
            let limit = placeholders.nth(next);
            let (before, after) = match self {
                Self::Postgres | Self::Sqlite => ("LIMIT ", ""),
                Self::Db2i => ("FETCH FIRST ", " ROWS ONLY"),
                Self::Mssql => ("OFFSET 0 ROWS FETCH NEXT ", " ROWS ONLY"),
            };
            text.push('\n');
            text.push_str(before);
            text.push_str(&limit);
            text.push_str(after);
        }
        Keyset { sql: text, binds }
    }

    /// One key of an ORDER BY, with NULL after every value ascending (before, descending),
    /// whatever the database does by itself.
    fn order_term(self, column: &str, key: &SortKey<'_>) -> String {
        let dir = if key.descending { "DESC" } else { "ASC" };
        if !key.nullable {
            return format!("{column} {dir}");
        }
        match self {
            // NULL is the largest value already.
            Self::Postgres | Self::Db2i => format!("{column} {dir}"),
            Self::Sqlite => {
                let nulls = if key.descending { "FIRST" } else { "LAST" };
                format!("{column} {dir} NULLS {nulls}")
            }
            Self::Mssql => {
                format!("CASE WHEN {column} IS NULL THEN 1 ELSE 0 END {dir}, {column} {dir}")
            }
        }
    }

    /// The statement that counts the key values `sql` returns more than once (`check --db`'s
    /// probe of a paged route's keys), with the same placeholders.
    pub fn duplicate_keys_sql(self, sql: &str, keys: &[&str]) -> String {
        let sql = sql.trim_end().trim_end_matches(';').trim_end();
        let keys: Vec<String> = keys.iter().map(|k| format!("PAGE_KEYS.{k}")).collect();
        let keys = keys.join(", ");
        format!(
            "SELECT COUNT(*) FROM (SELECT {keys} FROM (\n{sql}\n) PAGE_KEYS GROUP BY {keys} HAVING COUNT(*) > 1) DUPLICATED"
        )
    }

    /// The statement that counts the rows `sql` returns, with the same placeholders.
    pub fn count_sql(self, sql: &str) -> String {
        let sql = sql.trim_end().trim_end_matches(';').trim_end();
        format!("SELECT COUNT(*) FROM (\n{sql}\n) COUNT_ALL")
    }

    /// `patina introspect --schema`: the statement listing the tables of schema `?` (bound
    /// once, as text), as rows of (schema, table). SQLite has one schema and binds nothing.
    pub fn tables_sql(self) -> (&'static str, usize) {
        match self {
            Self::Sqlite => (
                "SELECT 'main', name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
                0,
            ),
            Self::Db2i => (
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM QSYS2.SYSTABLES \
                 WHERE TABLE_SCHEMA = UPPER(CAST(? AS VARCHAR(128))) AND TABLE_TYPE IN ('T', 'P') \
                 ORDER BY TABLE_NAME",
                1,
            ),
            Self::Postgres | Self::Mssql => (
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM INFORMATION_SCHEMA.TABLES \
                 WHERE TABLE_TYPE = 'BASE TABLE' AND LOWER(TABLE_SCHEMA) = LOWER(CAST(? AS VARCHAR(128))) \
                 ORDER BY TABLE_NAME",
                1,
            ),
        }
    }

    /// `patina introspect`: the statement listing the key columns of a table — its primary
    /// key, then its unique constraints — as rows of (key name, column), in key order. The
    /// binds (as text): table, then schema (`""` for the default), as many as the count says.
    pub fn keys_sql(self) -> (&'static str, &'static [KeyBind]) {
        match self {
            // The primary key (a rowid alias included), then each unique index.
            Self::Sqlite => (
                "SELECT 'PRIMARY', name FROM (SELECT name, pk FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk) \
                 UNION ALL \
                 SELECT K.name, C.name FROM (SELECT name, seq FROM pragma_index_list(?) WHERE \"unique\" = 1 AND origin <> 'pk' ORDER BY seq) K \
                 JOIN pragma_index_info(K.name) C",
                &[KeyBind::Table, KeyBind::Table],
            ),
            Self::Db2i => (
                "SELECT C.CONSTRAINT_NAME, K.COLUMN_NAME FROM QSYS2.SYSCST C \
                 JOIN QSYS2.SYSKEYCST K ON K.CONSTRAINT_SCHEMA = C.CONSTRAINT_SCHEMA \
                 AND K.CONSTRAINT_NAME = C.CONSTRAINT_NAME \
                 WHERE C.CONSTRAINT_TYPE IN ('PRIMARY KEY', 'UNIQUE') \
                 AND C.TABLE_NAME = UPPER(CAST(? AS VARCHAR(128))) \
                 AND C.TABLE_SCHEMA = UPPER(CAST(? AS VARCHAR(128))) \
                 ORDER BY CASE C.CONSTRAINT_TYPE WHEN 'PRIMARY KEY' THEN 0 ELSE 1 END, \
                 C.CONSTRAINT_NAME, K.ORDINAL_POSITION",
                &[KeyBind::Table, KeyBind::Schema],
            ),
            Self::Postgres | Self::Mssql => (
                "SELECT TC.CONSTRAINT_NAME, KCU.COLUMN_NAME FROM INFORMATION_SCHEMA.TABLE_CONSTRAINTS TC \
                 JOIN INFORMATION_SCHEMA.KEY_COLUMN_USAGE KCU ON KCU.CONSTRAINT_NAME = TC.CONSTRAINT_NAME \
                 AND KCU.CONSTRAINT_SCHEMA = TC.CONSTRAINT_SCHEMA AND KCU.TABLE_NAME = TC.TABLE_NAME \
                 WHERE TC.CONSTRAINT_TYPE IN ('PRIMARY KEY', 'UNIQUE') \
                 AND LOWER(TC.TABLE_NAME) = LOWER(CAST(? AS VARCHAR(128))) \
                 AND (CAST(? AS VARCHAR(128)) = '' OR LOWER(TC.TABLE_SCHEMA) = LOWER(CAST(? AS VARCHAR(128)))) \
                 ORDER BY CASE TC.CONSTRAINT_TYPE WHEN 'PRIMARY KEY' THEN 0 ELSE 1 END, \
                 TC.CONSTRAINT_NAME, KCU.ORDINAL_POSITION",
                &[KeyBind::Table, KeyBind::Schema, KeyBind::Schema],
            ),
        }
    }

    /// Whether `=` on text ignores trailing spaces (a shorter value padded with blanks): SQL
    /// Server and DB2 for every string type, PostgreSQL for CHAR, SQLite never. A batched
    /// lookup matches its rows to keys the same way.
    pub fn pads_trailing_spaces(self, fixed: bool) -> bool {
        match self {
            Self::Mssql | Self::Db2i => true,
            Self::Postgres => fixed,
            Self::Sqlite => false,
        }
    }

    /// The comparison that looks up `n` values of `:key` at once in a batched lookup (every
    /// dialect here takes an IN list; the placeholders are rewritten afterwards).
    pub fn in_list(self, column: &str, key: &str, n: usize) -> String {
        let list = vec![format!(":{key}"); n].join(", ");
        format!("{column} IN ({list})")
    }

    /// A statement that touches no table, to see whether the database answers.
    pub fn ping_sql(self) -> &'static str {
        match self {
            Self::Db2i => "VALUES 1",
            _ => "SELECT 1",
        }
    }

    /// Quote an identifier so that it is taken literally.
    pub fn quote_ident(self, ident: &str) -> String {
        match self {
            Self::Mssql => format!("[{}]", ident.replace(']', "]]")),
            _ => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    /// Whether `[ ... ]` delimits an identifier in this dialect.
    pub fn bracket_identifiers(self) -> bool {
        matches!(self, Self::Mssql | Self::Sqlite)
    }

    /// Whether `[` is a wildcard in `LIKE` patterns (SQL Server's character sets), so that a
    /// caller's `[` must be escaped as well as `%` and `_`.
    pub fn like_escapes_brackets(self) -> bool {
        self == Self::Mssql
    }

    /// The characters a caller's `LIKE` text must have escaped to be taken literally.
    pub fn like_wildcards(self) -> &'static [char] {
        if self.like_escapes_brackets() {
            &['%', '_', '[']
        } else {
            &['%', '_']
        }
    }

    /// The clause the SQL must give after `LIKE :p` for the gateway's escaping to work, as a
    /// DBA writes it.
    pub fn like_escape_clause(self) -> &'static str {
        "ESCAPE '!'"
    }

    /// Whether `sql` carries [`Dialect::like_escape_clause`] (any case, any spacing).
    pub fn has_like_escape_clause(self, sql: &str) -> bool {
        static CLAUSE: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"(?i)\bESCAPE\s*'!'").expect("a valid regex"));
        CLAUSE.is_match(sql)
    }

    /// Whether a driver's error text says the database could not infer a parameter's type
    /// (typically `:p IS NULL` with nothing else to go by): PostgreSQL's "could not determine
    /// data type of parameter", IBM i's SQL0418.
    pub fn cannot_infer_parameter_type(self, error: &str) -> bool {
        match self {
            Self::Postgres => error.contains("could not determine data type of parameter"),
            Self::Db2i => error.contains("SQL0418"),
            Self::Mssql | Self::Sqlite => false,
        }
    }
}

/// One key of a keyset page: a column of the paged statement's result, its direction, and
/// whether it may hold NULL (which then sorts after every value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortKey<'a> {
    pub column: &'a str,
    pub descending: bool,
    pub nullable: bool,
}

/// What [`Dialect::keyset`] wraps: the statement, the columns to return (all when empty), the
/// order, the previous page's last row (whether each key's value was NULL), and whether the
/// rows are limited (a page) or not (an export).
#[derive(Clone, Copy, Debug)]
pub struct KeysetPage<'a> {
    pub sql: &'a str,
    pub select: &'a [&'a str],
    pub keys: &'a [SortKey<'a>],
    pub after: Option<&'a [bool]>,
    pub limit: bool,
}

/// A keyset statement, and for each placeholder of its predicate in order the key whose
/// previous value it takes. The limit's placeholder, when there is one, comes after them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyset {
    pub sql: String,
    pub binds: Vec<usize>,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The client library a source talks through; it decides how bound values are marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    /// An ODBC driver manager (SQL Server's ODBC driver included).
    Odbc,
    /// SQL Server's native protocol (TDS).
    Tds,
}

/// How bound values are marked in the SQL a client library receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placeholders {
    /// `?`, in order: every ODBC driver (SQL Server's included).
    Question,
    /// `@P1`, `@P2`, …: SQL Server's native protocol.
    Numbered,
}

impl Placeholders {
    /// The placeholders a client library takes.
    pub fn for_client(client: Client) -> Self {
        match client {
            Client::Odbc => Self::Question,
            Client::Tds => Self::Numbered,
        }
    }

    /// The placeholder for the `n`-th bound value (1-based).
    pub fn nth(self, n: usize) -> String {
        match self {
            Self::Question => "?".to_string(),
            Self::Numbered => format!("@P{n}"),
        }
    }
}

/// Whether `sql` ends with an ORDER BY of its own (not one inside parentheses, a string or a
/// comment).
pub fn has_top_level_order_by(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    let b = upper.as_bytes();
    let mut depth = 0i32;
    let mut found = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'[' => {
                let close = if b[i] == b'[' { b']' } else { b[i] };
                i += 1;
                while i < b.len() && b[i] != close {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                // An ORDER BY before a closing parenthesis belonged to a subquery.
                if depth == 0 {
                    found = false;
                }
            }
            b'O' if depth == 0
                && upper[i..].starts_with("ORDER")
                && (i == 0 || !b[i - 1].is_ascii_alphanumeric() && b[i - 1] != b'_') =>
            {
                let rest = upper[i + 5..].trim_start();
                if rest.starts_with("BY") {
                    found = true;
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// What kind of failure a database error is, whatever the database said it in: the HTTP
/// layer maps each class to a status, the sources decide what happens to the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The connection is gone (SQLSTATE class 08, a server-side session kill).
    ConnectionLost,
    /// The statement, or a lock it waited for, ran past its time.
    Timeout,
    /// A unique or primary key already holds the value.
    UniqueViolation,
    /// A referenced row is missing, or a referencing row still exists.
    ForeignKeyViolation,
    /// A CHECK constraint or NOT NULL refused the row.
    CheckViolation,
    /// Chosen as a deadlock victim, or a serialization failure: worth retrying.
    Deadlock,
    /// A bound value is out of range or malformed for its type (SQLSTATE class 22): the
    /// caller's input, not the statement, is at fault.
    BadValue,
    /// Anything else: the statement's (or the mapping's) fault.
    Other,
}

impl Dialect {
    /// Classify a database error from its SQLSTATE (every ODBC driver gives one) and, where
    /// the SQLSTATE is too coarse (`23000`, `HY000`, or none at all over TDS), the database's
    /// own error number: SQL Server's error numbers, IBM i's SQLCODEs (`-803` is `SQL0803`).
    pub fn classify_error(
        self,
        sqlstate: Option<&str>,
        native: Option<i32>,
        message: &str,
    ) -> ErrorClass {
        if let Some(class) = self.classify_native(native, message) {
            return class;
        }
        let Some(state) = sqlstate else {
            return ErrorClass::Other;
        };
        match state {
            s if s.starts_with("08") => ErrorClass::ConnectionLost,
            "HYT00" | "HYT01" | "57014" => ErrorClass::Timeout,
            "40001" | "40P01" => ErrorClass::Deadlock,
            "23505" => ErrorClass::UniqueViolation,
            "23503" => ErrorClass::ForeignKeyViolation,
            "23502" | "23513" | "23514" => ErrorClass::CheckViolation,
            // The data exceptions a bound value causes: too long, out of range, not a number,
            // not a date. Division by zero and the like are the statement's own.
            "22001" | "22003" | "22007" | "22008" | "22018" | "22023" | "22P02" => {
                ErrorClass::BadValue
            }
            _ => ErrorClass::Other,
        }
    }

    fn classify_native(self, native: Option<i32>, message: &str) -> Option<ErrorClass> {
        let code = native?;
        match self {
            // SQLite's driver reports every constraint as SQLITE_CONSTRAINT (19) with SQLSTATE
            // HY000; which constraint is only in SQLite's own, stable, message.
            Dialect::Sqlite => match code {
                19 if message.contains("UNIQUE constraint failed")
                    || message.contains("PRIMARY KEY constraint failed") =>
                {
                    Some(ErrorClass::UniqueViolation)
                }
                19 if message.contains("FOREIGN KEY constraint failed") => {
                    Some(ErrorClass::ForeignKeyViolation)
                }
                19 => Some(ErrorClass::CheckViolation),
                // SQLITE_BUSY, SQLITE_LOCKED: another connection holds the lock; try again.
                5 | 6 => Some(ErrorClass::Deadlock),
                _ => None,
            },
            Dialect::Mssql => match code {
                2627 | 2601 => Some(ErrorClass::UniqueViolation),
                547 => Some(ErrorClass::ForeignKeyViolation),
                515 => Some(ErrorClass::CheckViolation),
                1205 => Some(ErrorClass::Deadlock),
                1222 => Some(ErrorClass::Timeout),
                // Arithmetic overflow, failed conversions, out-of-range dates, truncation.
                220 | 232 | 241 | 242 | 245 | 248 | 8114 | 8115 | 8152 | 2628 => {
                    Some(ErrorClass::BadValue)
                }
                _ => None,
            },
            Dialect::Db2i => match code {
                -803 => Some(ErrorClass::UniqueViolation),
                -532..=-530 => Some(ErrorClass::ForeignKeyViolation),
                -545 | -407 => Some(ErrorClass::CheckViolation),
                -911 | -913 => Some(ErrorClass::Deadlock),
                -302 | -180 | -181 | -183 | -404 | -420 => Some(ErrorClass::BadValue),
                _ => None,
            },
            Dialect::Postgres => None,
        }
    }

    /// The statement that makes the transaction it starts SERIALIZABLE, where the database
    /// needs one (SQLite's transactions are serializable already).
    pub fn serializable_sql(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres | Dialect::Mssql | Dialect::Db2i => {
                Some("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
            }
            Dialect::Sqlite => None,
        }
    }

    /// The statement that creates the dedup table of queued writes: the delivery ids the
    /// database has, written in each delivery's own transaction. `table` is a checked
    /// identifier (`NAME` or `SCHEMA.NAME`), written as it is.
    pub fn dedup_table_ddl(self, table: &str) -> String {
        let columns = |id: &str, route: &str, at: &str| {
            format!(
                "(\n    delivery_id {id} NOT NULL PRIMARY KEY,\n    route {route} NOT NULL,\n    \
                 delivered_at {at}\n)"
            )
        };
        match self {
            Dialect::Postgres => {
                let schema = table
                    .split_once('.')
                    .map(|(s, _)| format!("CREATE SCHEMA IF NOT EXISTS {s};\n"))
                    .unwrap_or_default();
                format!(
                    "{schema}CREATE TABLE IF NOT EXISTS {table} {};",
                    columns(
                        "VARCHAR(36)",
                        "VARCHAR(200)",
                        "TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"
                    )
                )
            }
            Dialect::Sqlite => format!(
                "CREATE TABLE IF NOT EXISTS {} {};",
                // SQLite has no schemas: SCHEMA.NAME is an attached database; keep one name.
                table.replace('.', "_"),
                columns("TEXT", "TEXT", "TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP")
            ),
            Dialect::Mssql => format!(
                "IF OBJECT_ID(N'{table}', N'U') IS NULL\nCREATE TABLE {table} {};",
                columns(
                    "VARCHAR(36)",
                    "NVARCHAR(200)",
                    "DATETIME2 NOT NULL DEFAULT SYSUTCDATETIME()"
                )
            ),
            // A table in a library made by CREATE SCHEMA is journaled, as commitment control
            // needs.
            Dialect::Db2i => format!(
                "CREATE TABLE {table} {};",
                columns(
                    "VARCHAR(36)",
                    "VARCHAR(200)",
                    "TIMESTAMP NOT NULL DEFAULT CURRENT TIMESTAMP"
                )
            ),
        }
    }

    /// The name the dedup table has on this database (SQLite has no schemas).
    pub fn dedup_table_name(self, table: &str) -> String {
        match self {
            Dialect::Sqlite => table.replace('.', "_"),
            _ => table.to_string(),
        }
    }

    /// A row when the delivery id `id` (a placeholder) is in the dedup table.
    pub fn dedup_check_sql(self, table: &str, id: &str) -> String {
        format!(
            "SELECT 1 FROM {} WHERE delivery_id = {id}",
            self.dedup_table_name(table)
        )
    }

    /// Record the delivery id and its route (placeholders) in the dedup table.
    pub fn dedup_record_sql(self, table: &str, id: &str, route: &str) -> String {
        format!(
            "INSERT INTO {} (delivery_id, route) VALUES ({id}, {route})",
            self.dedup_table_name(table)
        )
    }

    /// Whether `$tag$ … $tag$` quotes a string (PostgreSQL).
    pub fn has_dollar_quotes(self) -> bool {
        matches!(self, Dialect::Postgres)
    }

    /// Whether the ODBC driver of this dialect describes parameter types cheaply and well
    /// (`SQLDescribeParam`), so out-of-range integers can be refused before the statement
    /// runs. SQL Server drivers answer it with an extra round trip through
    /// `sp_describe_undeclared_parameters`, which old servers and FreeTDS handle poorly.
    pub fn describes_parameters(self) -> bool {
        !matches!(self, Dialect::Mssql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_statements_per_dialect() {
        let pg = Dialect::Postgres.dedup_table_ddl("PATINA.DELIVERED");
        assert!(
            pg.starts_with(
                "CREATE SCHEMA IF NOT EXISTS PATINA;\nCREATE TABLE IF NOT EXISTS PATINA.DELIVERED ("
            ),
            "{pg}"
        );
        assert!(
            pg.contains("delivery_id VARCHAR(36) NOT NULL PRIMARY KEY"),
            "{pg}"
        );
        let lite = Dialect::Sqlite.dedup_table_ddl("PATINA.DELIVERED");
        assert!(
            lite.starts_with("CREATE TABLE IF NOT EXISTS PATINA_DELIVERED ("),
            "{lite}"
        );
        let ms = Dialect::Mssql.dedup_table_ddl("dbo.Delivered");
        assert!(
            ms.starts_with(
                "IF OBJECT_ID(N'dbo.Delivered', N'U') IS NULL\nCREATE TABLE dbo.Delivered ("
            ),
            "{ms}"
        );
        assert!(
            Dialect::Db2i
                .dedup_table_ddl("PATINA.DELIVERED")
                .contains("DEFAULT CURRENT TIMESTAMP")
        );
        assert_eq!(
            Dialect::Mssql.dedup_check_sql("dbo.D", "@P1"),
            "SELECT 1 FROM dbo.D WHERE delivery_id = @P1"
        );
        assert_eq!(
            Dialect::Sqlite.dedup_record_sql("P.D", "?", "?"),
            "INSERT INTO P_D (delivery_id, route) VALUES (?, ?)"
        );
    }

    #[test]
    fn names_round_trip() {
        for (n, d) in Dialect::NAMES.into_iter().zip(Dialect::ALL) {
            assert_eq!(Dialect::parse(n), Some(d));
            assert_eq!(d.name(), n);
            assert_eq!(d.to_string(), n);
        }
        assert_eq!(Dialect::parse("oracle"), None);
    }

    #[test]
    fn finds_a_statement_s_own_order_by() {
        // One inside a subquery, a string or a comment is not the statement's own.
        for unordered in [
            "SELECT A FROM T",
            "SELECT A FROM (SELECT TOP 5 A FROM T ORDER BY A) X",
            "SELECT A FROM T WHERE B = 'ORDER BY'",
            "SELECT A FROM T -- ORDER BY A",
            "SELECT [ORDER BY] FROM T",
        ] {
            assert!(!has_top_level_order_by(unordered), "{unordered}");
        }
        assert!(has_top_level_order_by(
            "SELECT A FROM (SELECT A FROM T) X ORDER BY A"
        ));
        assert!(has_top_level_order_by("select a from t order  by a;"));
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(Dialect::Mssql.quote_ident("a]b"), "[a]]b]");
        assert_eq!(Dialect::Postgres.quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn pings_without_a_table() {
        assert_eq!(Dialect::Db2i.ping_sql(), "VALUES 1");
        for d in [Dialect::Mssql, Dialect::Postgres, Dialect::Sqlite] {
            assert_eq!(d.ping_sql(), "SELECT 1");
        }
    }

    #[test]
    fn placeholders_follow_the_client_library() {
        assert_eq!(
            Placeholders::for_client(Client::Odbc),
            Placeholders::Question
        );
        assert_eq!(
            Placeholders::for_client(Client::Tds),
            Placeholders::Numbered
        );
        assert_eq!(Placeholders::Question.nth(3), "?");
        assert_eq!(Placeholders::Numbered.nth(3), "@P3");
    }

    #[test]
    fn like_escaping_per_dialect() {
        assert!(Dialect::Mssql.like_escapes_brackets());
        assert_eq!(Dialect::Mssql.like_wildcards(), ['%', '_', '[']);
        for d in [Dialect::Db2i, Dialect::Postgres, Dialect::Sqlite] {
            assert!(!d.like_escapes_brackets(), "{d}");
            assert_eq!(d.like_wildcards(), ['%', '_']);
        }
        assert_eq!(Dialect::Sqlite.like_escape_clause(), "ESCAPE '!'");
    }

    #[test]
    fn finds_the_like_escape_clause() {
        let d = Dialect::Sqlite;
        assert!(d.has_like_escape_clause("WHERE N LIKE :n ESCAPE '!'"));
        assert!(d.has_like_escape_clause("WHERE N LIKE :n escape  '!'"));
        assert!(d.has_like_escape_clause("WHERE N LIKE :n\nEscape\n'!'"));
        assert!(!d.has_like_escape_clause("WHERE N LIKE :n"));
        assert!(!d.has_like_escape_clause("WHERE N LIKE :n ESCAPE '\\'"));
        assert!(!d.has_like_escape_clause("WHERE NOESCAPE '!' = N"));
        assert!(d.has_like_escape_clause("WHERE A LIKE :a ESCAPE '\\' AND B LIKE :b ESCAPE '!'"));
    }

    #[test]
    fn recognises_parameter_type_inference_failures() {
        let pg = "ERROR: could not determine data type of parameter $1";
        let ibm = "[IBM][System i Access ODBC Driver][DB2 for i5/OS]SQL0418 - Use of parameter \
                   marker or NULL not valid.";
        assert!(Dialect::Postgres.cannot_infer_parameter_type(pg));
        assert!(Dialect::Db2i.cannot_infer_parameter_type(ibm));
        assert!(!Dialect::Postgres.cannot_infer_parameter_type("syntax error at or near"));
        assert!(
            !Dialect::Db2i.cannot_infer_parameter_type("SQL0204 - T in X type *FILE not found")
        );
        assert!(!Dialect::Sqlite.cannot_infer_parameter_type(pg));
    }

    #[test]
    fn sqlstates_and_native_codes() {
        use super::ErrorClass as C;
        let pg = |s| Dialect::Postgres.classify_error(Some(s), None, "");
        assert_eq!(pg("22003"), C::BadValue);
        assert_eq!(pg("22P02"), C::BadValue);
        assert_eq!(pg("23505"), C::UniqueViolation);
        assert_eq!(pg("23503"), C::ForeignKeyViolation);
        assert_eq!(pg("40P01"), C::Deadlock);
        assert_eq!(pg("08006"), C::ConnectionLost);
        assert_eq!(pg("57014"), C::Timeout);
        assert_eq!(pg("42P01"), C::Other);
        assert_eq!(pg("22012"), C::Other, "division by zero is the statement's");
        let ms = |n| Dialect::Mssql.classify_error(Some("23000"), Some(n), "");
        assert_eq!(ms(2627), C::UniqueViolation);
        assert_eq!(ms(547), C::ForeignKeyViolation);
        assert_eq!(ms(8115), C::BadValue);
        assert_eq!(ms(1205), C::Deadlock);
        assert_eq!(
            ms(208),
            C::Other,
            "invalid object name: the statement's fault"
        );
        assert_eq!(
            Dialect::Mssql.classify_error(None, Some(245), ""),
            C::BadValue
        );
        let db2 = |n| Dialect::Db2i.classify_error(Some("HY000"), Some(n), "");
        assert_eq!(db2(-803), C::UniqueViolation);
        assert_eq!(db2(-302), C::BadValue);
        assert_eq!(db2(-911), C::Deadlock);
        let lite = |n, m| Dialect::Sqlite.classify_error(Some("HY000"), Some(n), m);
        assert_eq!(
            lite(19, "UNIQUE constraint failed: T.A"),
            C::UniqueViolation
        );
        assert_eq!(
            lite(19, "FOREIGN KEY constraint failed"),
            C::ForeignKeyViolation
        );
        assert_eq!(lite(19, "CHECK constraint failed: qty"), C::CheckViolation);
        assert_eq!(lite(5, "database is locked"), C::Deadlock);
        assert_eq!(lite(1, "no such table: T"), C::Other);
        assert!(Dialect::Db2i.describes_parameters() && !Dialect::Mssql.describes_parameters());
    }

    const KEYS: [SortKey<'static>; 2] = [
        SortKey {
            column: "DUEDT",
            descending: false,
            nullable: false,
        },
        SortKey {
            column: "JOBNO",
            descending: true,
            nullable: false,
        },
    ];

    fn page<'a>(
        keys: &'a [SortKey<'a>],
        after: Option<&'a [bool]>,
        select: &'a [&'a str],
    ) -> KeysetPage<'a> {
        KeysetPage {
            sql: "SELECT JOBNO, DUEDT FROM JOBMST WHERE PLNCD = ?;",
            select,
            keys,
            after,
            limit: true,
        }
    }

    #[test]
    fn keyset_first_and_next_pages() {
        let first = Dialect::Postgres.keyset(&page(&KEYS, None, &[]), Placeholders::Question, 2);
        assert_eq!(
            first.sql,
            "SELECT KEYSET_PAGE.* FROM (\nSELECT JOBNO, DUEDT FROM JOBMST WHERE PLNCD = ?\n) KEYSET_PAGE\n\
             ORDER BY KEYSET_PAGE.DUEDT ASC, KEYSET_PAGE.JOBNO DESC\nLIMIT ?"
        );
        assert!(first.binds.is_empty());
        let next = Dialect::Postgres.keyset(
            &page(&KEYS, Some(&[false, false]), &["JOBNO", "DUEDT"]),
            Placeholders::Question,
            2,
        );
        assert_eq!(
            next.sql,
            "SELECT KEYSET_PAGE.JOBNO, KEYSET_PAGE.DUEDT FROM (\nSELECT JOBNO, DUEDT FROM JOBMST WHERE PLNCD = ?\n) KEYSET_PAGE\n\
             WHERE KEYSET_PAGE.DUEDT >= ?\n  AND ((KEYSET_PAGE.DUEDT > ?)\n   OR (KEYSET_PAGE.DUEDT = ? AND KEYSET_PAGE.JOBNO < ?))\n\
             ORDER BY KEYSET_PAGE.DUEDT ASC, KEYSET_PAGE.JOBNO DESC\nLIMIT ?"
        );
        assert_eq!(next.binds, [0, 0, 0, 1], "the key each placeholder takes");
    }

    #[test]
    fn keyset_limits_per_dialect() {
        let after = Some(&[false, false][..]);
        let mssql = Dialect::Mssql.keyset(&page(&KEYS, after, &[]), Placeholders::Numbered, 2);
        assert!(
            mssql.sql.contains(
                "WHERE KEYSET_PAGE.DUEDT >= @P2\n  AND ((KEYSET_PAGE.DUEDT > @P3)\n   OR (KEYSET_PAGE.DUEDT = @P4 AND KEYSET_PAGE.JOBNO < @P5))"
            ),
            "{}",
            mssql.sql
        );
        assert!(
            mssql.sql.ends_with(
                "ORDER BY KEYSET_PAGE.DUEDT ASC, KEYSET_PAGE.JOBNO DESC\nOFFSET 0 ROWS FETCH NEXT @P6 ROWS ONLY"
            ),
            "{}",
            mssql.sql
        );
        let db2 = Dialect::Db2i.keyset(&page(&KEYS[..1], None, &[]), Placeholders::Question, 1);
        assert!(
            db2.sql
                .ends_with("ORDER BY KEYSET_PAGE.DUEDT ASC\nFETCH FIRST ? ROWS ONLY"),
            "{}",
            db2.sql
        );
        let sqlite =
            Dialect::Sqlite.keyset(&page(&KEYS[..1], None, &[]), Placeholders::Question, 1);
        assert!(
            sqlite
                .sql
                .ends_with("ORDER BY KEYSET_PAGE.DUEDT ASC\nLIMIT ?"),
            "{}",
            sqlite.sql
        );
        // An export: every row, in key order, no limit.
        let export = Dialect::Mssql.keyset(
            &KeysetPage {
                limit: false,
                ..page(&KEYS, None, &[])
            },
            Placeholders::Numbered,
            2,
        );
        assert!(
            export
                .sql
                .ends_with("ORDER BY KEYSET_PAGE.DUEDT ASC, KEYSET_PAGE.JOBNO DESC"),
            "{}",
            export.sql
        );
    }

    const NULLABLE: [SortKey<'static>; 2] = [
        SortKey {
            column: "GRP",
            descending: false,
            nullable: true,
        },
        SortKey {
            column: "ID",
            descending: false,
            nullable: false,
        },
    ];

    #[test]
    fn keyset_with_nulls_sorts_them_last_ascending_in_every_dialect() {
        let order = |d: Dialect, keys: &[SortKey<'_>]| {
            let k = d
                .keyset(&page(keys, None, &[]), Placeholders::Question, 1)
                .sql;
            k[k.find("ORDER BY").unwrap()..k.rfind('\n').unwrap()].to_string()
        };
        assert_eq!(
            order(Dialect::Postgres, &NULLABLE),
            "ORDER BY KEYSET_PAGE.GRP ASC, KEYSET_PAGE.ID ASC"
        );
        assert_eq!(
            order(Dialect::Db2i, &NULLABLE),
            order(Dialect::Postgres, &NULLABLE)
        );
        assert_eq!(
            order(Dialect::Sqlite, &NULLABLE),
            "ORDER BY KEYSET_PAGE.GRP ASC NULLS LAST, KEYSET_PAGE.ID ASC"
        );
        assert_eq!(
            order(Dialect::Mssql, &NULLABLE),
            "ORDER BY CASE WHEN KEYSET_PAGE.GRP IS NULL THEN 1 ELSE 0 END ASC, KEYSET_PAGE.GRP ASC, KEYSET_PAGE.ID ASC"
        );
        let desc = [
            SortKey {
                descending: true,
                ..NULLABLE[0]
            },
            NULLABLE[1],
        ];
        assert_eq!(
            order(Dialect::Sqlite, &desc),
            "ORDER BY KEYSET_PAGE.GRP DESC NULLS FIRST, KEYSET_PAGE.ID ASC"
        );
    }

    #[test]
    fn keyset_predicates_after_null_and_non_null_values() {
        let predicate = |keys: &[SortKey<'_>], after: &[bool]| {
            let k =
                Dialect::Postgres.keyset(&page(keys, Some(after), &[]), Placeholders::Question, 2);
            let sql = k.sql;
            let w = sql.find("KEYSET_PAGE\nWHERE ").unwrap() + 18;
            (sql[w..sql.find("\nORDER BY").unwrap()].to_string(), k.binds)
        };
        // After a value: greater values, then the NULLs.
        assert_eq!(
            predicate(&NULLABLE, &[false, false]),
            (
                "(KEYSET_PAGE.GRP >= ? OR KEYSET_PAGE.GRP IS NULL)\n  AND (((KEYSET_PAGE.GRP > ? OR KEYSET_PAGE.GRP IS NULL))\n   OR (KEYSET_PAGE.GRP = ? AND KEYSET_PAGE.ID > ?))".to_string(),
                vec![0, 0, 0, 1]
            )
        );
        // After a NULL (ascending): only the rest of the NULLs; NULL is never bound.
        assert_eq!(
            predicate(&NULLABLE, &[true, false]),
            (
                "KEYSET_PAGE.GRP IS NULL\n  AND ((KEYSET_PAGE.GRP IS NULL AND KEYSET_PAGE.ID > ?))"
                    .to_string(),
                vec![1]
            )
        );
        // Descending: NULLs come first, then the values.
        let desc = [
            SortKey {
                descending: true,
                ..NULLABLE[0]
            },
            NULLABLE[1],
        ];
        assert_eq!(
            predicate(&desc, &[true, false]),
            (
                "((KEYSET_PAGE.GRP IS NOT NULL)\n   OR (KEYSET_PAGE.GRP IS NULL AND KEYSET_PAGE.ID > ?))".to_string(),
                vec![1]
            )
        );
        assert_eq!(
            predicate(&desc, &[false, false]).0,
            "KEYSET_PAGE.GRP <= ?\n  AND ((KEYSET_PAGE.GRP < ?)\n   OR (KEYSET_PAGE.GRP = ? AND KEYSET_PAGE.ID > ?))"
        );
        // One ascending key, after NULL: nothing can follow.
        assert_eq!(
            predicate(&NULLABLE[..1], &[true]).0,
            "KEYSET_PAGE.GRP IS NULL\n  AND 1 = 0"
        );
    }

    #[test]
    fn counts_wrap_the_statement() {
        assert_eq!(
            Dialect::Sqlite.count_sql("SELECT A FROM T WHERE B = ?;"),
            "SELECT COUNT(*) FROM (\nSELECT A FROM T WHERE B = ?\n) COUNT_ALL"
        );
        assert_eq!(
            Dialect::Postgres.duplicate_keys_sql("SELECT A, B FROM T;", &["A", "B"]),
            "SELECT COUNT(*) FROM (SELECT PAGE_KEYS.A, PAGE_KEYS.B FROM (\nSELECT A, B FROM T\n) PAGE_KEYS \
             GROUP BY PAGE_KEYS.A, PAGE_KEYS.B HAVING COUNT(*) > 1) DUPLICATED"
        );
    }
}
