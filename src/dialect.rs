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

    /// Wrap a statement so that the database returns one page: `limit` rows after skipping
    /// `offset`. Both are placeholders for bound values, never numbers spliced into the text.
    /// SQL Server's OFFSET/FETCH needs an ORDER BY; a statement without one gets
    /// `ORDER BY (SELECT NULL)`, which keeps whatever order the server produces.
    pub fn paginate(self, sql: &str, limit: &str, offset: &str) -> String {
        let sql = sql.trim_end().trim_end_matches(';').trim_end();
        match self {
            Self::Postgres | Self::Sqlite => format!("{sql}\nLIMIT {limit} OFFSET {offset}"),
            Self::Db2i => format!("{sql}\nOFFSET {offset} ROWS FETCH FIRST {limit} ROWS ONLY"),
            Self::Mssql => {
                let order = if has_top_level_order_by(sql) {
                    ""
                } else {
                    "\nORDER BY (SELECT NULL)"
                };
                format!("{sql}{order}\nOFFSET {offset} ROWS FETCH NEXT {limit} ROWS ONLY")
            }
        }
    }

    /// The keyset form of a page: `sql` wrapped so that it returns the rows that sort after
    /// the last row of the previous page (whose key values are bound), in key order, then paged
    /// by `limit` (a placeholder; the caller asks for one row more than the page to learn
    /// whether another follows). Page 1,000 costs what page 1 costs: no OFFSET walks the rows
    /// before it. The predicate is written out (`a > ? OR (a = ? AND b > ?)`), which every
    /// dialect runs and which allows mixed directions. `keys` name columns of the statement's
    /// result (checked by the mapping) that are never NULL. Returns the SQL and, for each
    /// placeholder of the predicate in order, the index of the key whose value it takes;
    /// `first` numbers the first of them, and `limit` follows.
    pub fn keyset_page(
        self,
        sql: &str,
        keys: &[SortKey<'_>],
        after_previous: bool,
        placeholders: Placeholders,
        first: usize,
    ) -> (String, Vec<usize>, String) {
        let sql = sql.trim_end().trim_end_matches(';').trim_end();
        let mut binds = Vec::new();
        let mut next = first;
        let mut marker = |key: usize, binds: &mut Vec<usize>| {
            binds.push(key);
            next += 1;
            placeholders.nth(next - 1)
        };
        let mut text = format!("SELECT keyset_page.* FROM (\n{sql}\n) keyset_page");
        if after_previous && !keys.is_empty() {
            let mut alternatives = Vec::with_capacity(keys.len());
            for (i, key) in keys.iter().enumerate() {
                let mut terms: Vec<String> = keys[..i]
                    .iter()
                    .enumerate()
                    .map(|(j, k)| format!("keyset_page.{} = {}", k.column, marker(j, &mut binds)))
                    .collect();
                let op = if key.descending { "<" } else { ">" };
                terms.push(format!(
                    "keyset_page.{} {op} {}",
                    key.column,
                    marker(i, &mut binds)
                ));
                alternatives.push(format!("({})", terms.join(" AND ")));
            }
            text.push_str("\nWHERE ");
            text.push_str(&alternatives.join("\n   OR "));
        }
        if !keys.is_empty() {
            let order: Vec<String> = keys
                .iter()
                .map(|k| {
                    let dir = if k.descending { "DESC" } else { "ASC" };
                    format!("keyset_page.{} {dir}", k.column)
                })
                .collect();
            text.push_str("\nORDER BY ");
            text.push_str(&order.join(", "));
        }
        let limit = placeholders.nth(next);
        let paged = self.paginate(&text, &limit, "0");
        (paged, binds, limit)
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

/// One key of a keyset page: a column of the paged statement's result and its direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortKey<'a> {
    pub column: &'a str,
    pub descending: bool,
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
fn has_top_level_order_by(sql: &str) -> bool {
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
    fn pages_per_dialect() {
        let sql = "SELECT A FROM T ORDER BY A;";
        assert_eq!(
            Dialect::Postgres.paginate(sql, "$1", "$2"),
            "SELECT A FROM T ORDER BY A\nLIMIT $1 OFFSET $2"
        );
        assert_eq!(
            Dialect::Sqlite.paginate(sql, "?", "?"),
            "SELECT A FROM T ORDER BY A\nLIMIT ? OFFSET ?"
        );
        assert_eq!(
            Dialect::Db2i.paginate(sql, "?", "?"),
            "SELECT A FROM T ORDER BY A\nOFFSET ? ROWS FETCH FIRST ? ROWS ONLY"
        );
        assert_eq!(
            Dialect::Mssql.paginate(sql, "@P2", "@P1"),
            "SELECT A FROM T ORDER BY A\nOFFSET @P1 ROWS FETCH NEXT @P2 ROWS ONLY"
        );
        // SQL Server needs an ORDER BY; one inside a subquery, a string or a comment is not
        // the statement's own.
        for unordered in [
            "SELECT A FROM T",
            "SELECT A FROM (SELECT TOP 5 A FROM T ORDER BY A) X",
            "SELECT A FROM T WHERE B = 'ORDER BY'",
            "SELECT A FROM T -- ORDER BY A",
            "SELECT [ORDER BY] FROM T",
        ] {
            assert!(
                Dialect::Mssql
                    .paginate(unordered, "@P1", "@P2")
                    .contains("ORDER BY (SELECT NULL)"),
                "{unordered}"
            );
        }
        assert!(
            !Dialect::Mssql
                .paginate("SELECT A FROM (SELECT A FROM T) X ORDER BY A", "@P1", "@P2")
                .contains("(SELECT NULL)")
        );
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

    #[test]
    fn keyset_pages_per_dialect() {
        let keys = [
            SortKey {
                column: "DUEDT",
                descending: false,
            },
            SortKey {
                column: "JOBNO",
                descending: true,
            },
        ];
        let (sql, binds, limit) = Dialect::Postgres.keyset_page(
            "SELECT JOBNO, DUEDT FROM JOBMST WHERE PLNCD = ?;",
            &keys,
            true,
            Placeholders::Question,
            2,
        );
        assert_eq!(
            sql,
            "SELECT keyset_page.* FROM (\nSELECT JOBNO, DUEDT FROM JOBMST WHERE PLNCD = ?\n) keyset_page\n\
             WHERE (keyset_page.DUEDT > ?)\n   OR (keyset_page.DUEDT = ? AND keyset_page.JOBNO < ?)\n\
             ORDER BY keyset_page.DUEDT ASC, keyset_page.JOBNO DESC\nLIMIT ? OFFSET 0"
        );
        assert_eq!(binds, [0, 0, 1], "the key each placeholder takes");
        assert_eq!(limit, "?");
        let (sql, binds, limit) = Dialect::Mssql.keyset_page(
            "SELECT JOBNO, DUEDT FROM JOBMST WHERE PLNCD = @P1",
            &keys,
            true,
            Placeholders::Numbered,
            2,
        );
        assert!(
            sql.contains("WHERE (keyset_page.DUEDT > @P2)\n   OR (keyset_page.DUEDT = @P3 AND keyset_page.JOBNO < @P4)"),
            "{sql}"
        );
        assert!(sql.ends_with("ORDER BY keyset_page.DUEDT ASC, keyset_page.JOBNO DESC\nOFFSET 0 ROWS FETCH NEXT @P5 ROWS ONLY"), "{sql}");
        assert_eq!((binds.as_slice(), limit.as_str()), (&[0, 0, 1][..], "@P5"));
        let (first_page, binds, _) = Dialect::Db2i.keyset_page(
            "SELECT A FROM T",
            &keys[..1],
            false,
            Placeholders::Question,
            1,
        );
        assert!(binds.is_empty());
        assert!(!first_page.contains("WHERE"), "{first_page}");
        assert!(
            first_page
                .ends_with("ORDER BY keyset_page.DUEDT ASC\nOFFSET 0 ROWS FETCH FIRST ? ROWS ONLY"),
            "{first_page}"
        );
    }
}
