//! SQL text handling that is the same for every source: finding `:name` parameters in a
//! mapping's SQL (outside strings, quoted identifiers and comments) and rewriting them into the
//! placeholders of a client library ([`Placeholders`]), and splitting scripts into statements.
//! Every dialect difference (quoting, paging, ping, LIKE escaping) lives in `crate::dialect`.
//! This module never executes SQL and never splices values into it.

use std::ops::Range;

pub mod batch;

use crate::dialect::{Dialect, Placeholders};

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
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i)?,
            b'$' if dialect.has_dollar_quotes() => i = skip_dollar_quoted(bytes, i),
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

/// Past a `/* ... */` comment that starts at `start`.
fn skip_block_comment(bytes: &[u8], start: usize) -> Result<usize, ScanError> {
    let mut i = start + 2;
    while i + 1 < bytes.len() {
        if bytes[i] == b'*' && bytes[i + 1] == b'/' {
            return Ok(i + 2);
        }
        i += 1;
    }
    Err(ScanError {
        offset: start,
        message: "comment `/*` is never closed".into(),
        hint: "close it with `*/`".into(),
    })
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
    fn splits_scripts() {
        let s = "-- head\nCREATE TABLE a (x CHAR(1));\nINSERT INTO a VALUES (';');\n-- tail\n";
        assert_eq!(
            split_statements(s),
            ["CREATE TABLE a (x CHAR(1))", "INSERT INTO a VALUES (';')"]
        );
    }
}
