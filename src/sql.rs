//! SQL text handling that is the same for every source: finding `:name` parameters in a
//! mapping's SQL (outside strings, quoted identifiers and comments) and rewriting them into the
//! placeholders of a dialect. Dialect differences live in [`Dialect`] and nowhere else. This
//! module never executes SQL and never splices values into it.

use std::fmt;
use std::ops::Range;

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
    fn bracket_identifiers(self) -> bool {
        matches!(self, Self::Mssql | Self::Sqlite)
    }
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

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `:name` found in SQL text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedParam {
    pub name: String,
    /// Byte range of `:name` (colon included) in the original text.
    pub span: Range<usize>,
}

/// Something in the SQL text that stops it from being planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanError {
    pub offset: usize,
    pub message: String,
    pub hint: String,
}

/// Find every `:name` parameter, in order, repeats included. Text inside string literals,
/// quoted identifiers and comments is skipped, as are `PostgreSQL` `::` casts. A bare `?` is an
/// error: mappings name their parameters.
pub fn scan_named(sql: &str, dialect: Dialect) -> Result<Vec<NamedParam>, ScanError> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' => i = skip_quoted(bytes, i, b'\'', "string literal")?,
            b'"' => i = skip_quoted(bytes, i, b'"', "quoted identifier")?,
            b'[' if dialect.bracket_identifiers() => {
                i = skip_quoted(bytes, i, b']', "bracketed identifier")?;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let start = i;
                i += 2;
                loop {
                    if i + 1 >= bytes.len() {
                        return Err(ScanError {
                            offset: start,
                            message: "comment `/*` is never closed".into(),
                            hint: "close it with `*/`".into(),
                        });
                    }
                    if bytes[i] == b'*' && bytes[i + 1] == b'/' {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            b'$' if dialect == Dialect::Postgres => i = skip_dollar_quoted(bytes, i),
            b'?' => {
                return Err(ScanError {
                    offset: i,
                    message: "`?` placeholder in mapping SQL".into(),
                    hint: "name the parameter instead, e.g. `:job_number`, and declare it under \
                           `params`"
                        .into(),
                });
            }
            b':' => {
                if bytes.get(i + 1) == Some(&b':') {
                    i += 2; // a cast, `x::int`
                    continue;
                }
                let start = i;
                let mut j = i + 1;
                if j < bytes.len() && (bytes[j].is_ascii_alphabetic() || bytes[j] == b'_') {
                    while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_')
                    {
                        j += 1;
                    }
                    out.push(NamedParam {
                        name: sql[start + 1..j].to_string(),
                        span: start..j,
                    });
                }
                i = j;
            }
            _ => i += 1,
        }
    }
    Ok(out)
}

fn skip_quoted(bytes: &[u8], start: usize, close: u8, what: &str) -> Result<usize, ScanError> {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == close {
            // A doubled closing quote is an escaped quote.
            if close != b']' && bytes.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            if close == b']' && bytes.get(i + 1) == Some(&b']') {
                i += 2;
                continue;
            }
            return Ok(i + 1);
        }
        i += 1;
    }
    Err(ScanError {
        offset: start,
        message: format!("{what} is never closed"),
        hint: format!("add the closing `{}`", close as char),
    })
}

/// `$tag$ ... $tag$` (`PostgreSQL`). A `$` that does not open such a quote is skipped.
fn skip_dollar_quoted(bytes: &[u8], start: usize) -> usize {
    let mut j = start + 1;
    while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
        j += 1;
    }
    if bytes.get(j) != Some(&b'$') || bytes[start + 1..j].first().is_some_and(u8::is_ascii_digit) {
        return start + 1;
    }
    let tag = &bytes[start..=j];
    let mut k = j + 1;
    while k + tag.len() <= bytes.len() {
        if &bytes[k..k + tag.len()] == tag {
            return k + tag.len();
        }
        k += 1;
    }
    bytes.len()
}

/// Replace each found parameter by a placeholder, numbered in order of appearance.
pub fn rewrite(sql: &str, params: &[NamedParam], placeholders: Placeholders) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for (n, p) in params.iter().enumerate() {
        out.push_str(&sql[last..p.span.start]);
        out.push_str(&placeholders.nth(n + 1));
        last = p.span.end;
    }
    out.push_str(&sql[last..]);
    out
}

/// Split a script into statements at top-level `;` (used to load fixtures through ODBC).
pub fn split_statements(script: &str) -> Vec<String> {
    let bytes = script.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => i = skip_quoted(bytes, i, b'\'', "").unwrap_or(bytes.len()),
            b'"' => i = skip_quoted(bytes, i, b'"', "").unwrap_or(bytes.len()),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b';' => {
                push_statement(&mut out, &script[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push_statement(&mut out, &script[start..]);
    out
}

/// Keep a statement without its whole-line comments (some drivers scan for `;` in them).
fn push_statement(out: &mut Vec<String>, text: &str) {
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    let stmt = kept.join("\n");
    if !stmt.trim().is_empty() {
        out.push(stmt.trim().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str, d: Dialect) -> Vec<String> {
        scan_named(sql, d)
            .expect("scan")
            .into_iter()
            .map(|p| p.name)
            .collect()
    }

    #[test]
    fn finds_parameters_in_order_with_repeats() {
        let sql = "SELECT * FROM T WHERE A = :a AND (:b IS NULL OR B = :b) AND C=:c_2";
        assert_eq!(names(sql, Dialect::Sqlite), ["a", "b", "b", "c_2"]);
    }

    #[test]
    fn skips_strings_identifiers_comments_and_casts() {
        let sql = "SELECT ':no', \"x:no\", [y:no], a::int -- :no\n /* :no */ FROM t WHERE b = :yes";
        assert_eq!(names(sql, Dialect::Sqlite), ["yes"]);
        let sql = "SELECT 'it''s :no' || $$ :no $$ || $t$ :no $t$ FROM t WHERE b = :yes::text";
        assert_eq!(names(sql, Dialect::Postgres), ["yes"]);
    }

    #[test]
    fn time_literals_and_lone_colons_are_not_parameters() {
        assert!(names("SELECT '10:30:00', x : 1", Dialect::Db2i).is_empty());
    }

    #[test]
    fn rejects_question_marks_and_unclosed_quotes() {
        let e = scan_named("SELECT * FROM t WHERE a = ?", Dialect::Sqlite).unwrap_err();
        assert_eq!(e.offset, 26);
        let e = scan_named("SELECT 'abc FROM t", Dialect::Sqlite).unwrap_err();
        assert_eq!(e.offset, 7);
        assert!(e.message.contains("never closed"));
        assert!(scan_named("SELECT /* x", Dialect::Sqlite).is_err());
    }

    #[test]
    fn rewrites_per_dialect() {
        let sql = "SELECT * FROM t WHERE a = :a OR b = :b OR c = :a";
        let p = scan_named(sql, Dialect::Mssql).expect("scan");
        assert_eq!(
            rewrite(sql, &p, Placeholders::Numbered),
            "SELECT * FROM t WHERE a = @P1 OR b = @P2 OR c = @P3"
        );
        assert_eq!(
            rewrite(sql, &p, Placeholders::Question),
            "SELECT * FROM t WHERE a = ? OR b = ? OR c = ?"
        );
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
    fn splits_scripts() {
        let s = "-- head\nCREATE TABLE a (x CHAR(1));\nINSERT INTO a VALUES (';');\n-- tail\n";
        assert_eq!(
            split_statements(s),
            ["CREATE TABLE a (x CHAR(1))", "INSERT INTO a VALUES (';')"]
        );
    }
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
    pub fn classify_error(self, sqlstate: Option<&str>, native: Option<i32>) -> ErrorClass {
        if let Some(class) = self.classify_native(native) {
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
            s if s.starts_with("22") => ErrorClass::BadValue,
            _ => ErrorClass::Other,
        }
    }

    fn classify_native(self, native: Option<i32>) -> Option<ErrorClass> {
        let code = native?;
        match self {
            Dialect::Mssql => match code {
                2627 | 2601 => Some(ErrorClass::UniqueViolation),
                547 => Some(ErrorClass::ForeignKeyViolation),
                515 => Some(ErrorClass::CheckViolation),
                1205 => Some(ErrorClass::Deadlock),
                1222 => Some(ErrorClass::Timeout),
                // Arithmetic overflow, failed conversions, out-of-range dates, truncation.
                220 | 232 | 241 | 242 | 245 | 248 | 517 | 8114 | 8115 | 8152 | 2628 => {
                    Some(ErrorClass::BadValue)
                }
                _ => None,
            },
            Dialect::Db2i => match code {
                -803 => Some(ErrorClass::UniqueViolation),
                -530 | -531 | -532 => Some(ErrorClass::ForeignKeyViolation),
                -545 | -407 => Some(ErrorClass::CheckViolation),
                -911 | -913 => Some(ErrorClass::Deadlock),
                -302 | -180 | -181 | -183 | -404 | -420 => Some(ErrorClass::BadValue),
                _ => None,
            },
            Dialect::Postgres | Dialect::Sqlite => None,
        }
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
mod error_class_tests {
    use super::{Dialect, ErrorClass as C};

    #[test]
    fn sqlstates_and_native_codes() {
        let pg = |s| Dialect::Postgres.classify_error(Some(s), None);
        assert_eq!(pg("22003"), C::BadValue);
        assert_eq!(pg("22P02"), C::BadValue);
        assert_eq!(pg("23505"), C::UniqueViolation);
        assert_eq!(pg("23503"), C::ForeignKeyViolation);
        assert_eq!(pg("40P01"), C::Deadlock);
        assert_eq!(pg("08006"), C::ConnectionLost);
        assert_eq!(pg("57014"), C::Timeout);
        assert_eq!(pg("42P01"), C::Other);
        let ms = |n| Dialect::Mssql.classify_error(Some("23000"), Some(n));
        assert_eq!(ms(2627), C::UniqueViolation);
        assert_eq!(ms(547), C::ForeignKeyViolation);
        assert_eq!(ms(8115), C::BadValue);
        assert_eq!(ms(1205), C::Deadlock);
        assert_eq!(ms(208), C::Other, "invalid object name: the statement's fault");
        assert_eq!(Dialect::Mssql.classify_error(None, Some(245)), C::BadValue);
        let db2 = |n| Dialect::Db2i.classify_error(Some("HY000"), Some(n));
        assert_eq!(db2(-803), C::UniqueViolation);
        assert_eq!(db2(-302), C::BadValue);
        assert_eq!(db2(-911), C::Deadlock);
        assert_eq!(Dialect::Sqlite.classify_error(Some("HY000"), Some(19)), C::Other);
        assert!(Dialect::Db2i.describes_parameters() && !Dialect::Mssql.describes_parameters());
    }
}
