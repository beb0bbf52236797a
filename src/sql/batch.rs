//! Batched lookups: whether a by-key statement can answer several keys at once, and the
//! statement that does. The shape is checked on the mapping's SQL text, never guessed at run
//! time: the key parameter appears once, as `column = :key` (or `:key = column`) in a
//! top-level AND of the only WHERE clause of a plain SELECT. The batched form selects the key
//! column first (so each row can be handed to the request that asked for it) and replaces
//! that one comparison by `column IN (:key, :key, …)`; everything else stays as written.

use std::ops::Range;
use std::sync::Arc;

use super::{ScanError, rewrite, scan_named};
use crate::dialect::{Dialect, Placeholders};

/// The name the key column is selected under in a batched statement (first column).
pub const KEY_ALIAS: &str = "PATINA_BATCH_KEY";

/// Where a by-key statement is rewritten for a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchShape {
    /// Just after the top-level `SELECT` keyword.
    pub select_end: usize,
    /// The comparison `column = :key` (both sides), in the original text.
    pub conjunct: Range<usize>,
    /// The key column as written (`JOBNO`, `j.JOBNO`, `"Job No"`).
    pub column: String,
}

impl BatchShape {
    /// The statement for `n` keys, still with `:name` parameters.
    pub fn render(&self, sql: &str, key: &str, n: usize, dialect: Dialect) -> String {
        format!(
            "{} {} AS {KEY_ALIAS},{}{}{}",
            &sql[..self.select_end],
            self.column,
            &sql[self.select_end..self.conjunct.start],
            dialect.in_list(&self.column, key, n),
            &sql[self.conjunct.end..]
        )
    }
}

/// The statements of a batchable route, as the driver receives them.
#[derive(Clone, Debug)]
pub struct Batched {
    /// Most keys in one statement.
    pub max: usize,
    /// Index of the key's value among the single statement's bound values: a batched
    /// statement binds the values before it, then one per key, then the values after it.
    pub key_at: usize,
    /// `(keys, statement)`, by ascending number of keys (2, 4, 8, …, `max`). A batch of `n`
    /// runs the first one that takes `n`, the spare places bound to a repeated key.
    pub forms: Vec<(usize, Arc<str>)>,
    /// The source's dialect: how it compares the key (text with trailing spaces).
    pub dialect: Dialect,
}

impl Batched {
    /// The statement for `n` keys (`n` ≥ 2, at most `max`) and how many keys it takes.
    pub fn form(&self, n: usize) -> Option<(usize, &Arc<str>)> {
        self.forms
            .iter()
            .find(|(k, _)| *k >= n)
            .map(|(k, sql)| (*k, sql))
    }

    /// Build every form of `sql` for up to `max` keys: the arities are the powers of two below
    /// `max`, and `max` itself (so a connection prepares a handful of statements).
    pub fn build(
        sql: &str,
        shape: &BatchShape,
        key: &str,
        max: usize,
        dialect: Dialect,
        placeholders: Placeholders,
    ) -> Result<Self, ScanError> {
        let single = scan_named(sql, dialect)?;
        let key_at = single
            .iter()
            .position(|p| p.name == key)
            .ok_or_else(|| ScanError {
                offset: 0,
                message: format!("`:{key}` is not in the SQL"),
                hint: "batch on a parameter the SQL compares with a column".into(),
            })?;
        let mut arities = Vec::new();
        let mut n = 2;
        while n < max {
            arities.push(n);
            n *= 2;
        }
        arities.push(max);
        let mut forms = Vec::with_capacity(arities.len());
        for n in arities {
            let text = shape.render(sql, key, n, dialect);
            let found = scan_named(&text, dialect)?;
            forms.push((n, Arc::from(rewrite(&text, &found, placeholders))));
        }
        Ok(Self {
            max,
            key_at,
            forms,
            dialect,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Word,
    Quoted,
    Param,
    Open,
    Close,
    Dot,
    Eq,
    Other,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    span: Range<usize>,
    depth: usize,
}

/// Split SQL into the tokens the shape check needs; strings and comments are skipped.
fn tokens(sql: &str, dialect: Dialect) -> Result<Vec<Token>, ScanError> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = super::skip_block_comment(b, i)?;
                continue;
            }
            b'\'' => {
                i = super::skip_quoted(b, i, b'\'', "string literal")?;
                Kind::Other
            }
            b'"' => {
                i = super::skip_quoted(b, i, b'"', "quoted identifier")?;
                Kind::Quoted
            }
            b'[' if dialect.bracket_identifiers() => {
                i = super::skip_quoted(b, i, b']', "bracketed identifier")?;
                Kind::Quoted
            }
            b'$' if dialect.has_dollar_quotes() => {
                i = super::skip_dollar_quoted(b, i);
                Kind::Other
            }
            b':' if b.get(i + 1) == Some(&b':') => {
                i += 2;
                Kind::Other
            }
            b':' if b
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == b'_') =>
            {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                Kind::Param
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || matches!(b[i], b'_' | b'$' | b'#' | b'@')
                        || b[i] >= 0x80)
                {
                    i += 1;
                }
                Kind::Word
            }
            b'(' => {
                i += 1;
                depth += 1;
                out.push(Token {
                    kind: Kind::Open,
                    span: start..i,
                    depth: depth - 1,
                });
                continue;
            }
            b')' => {
                i += 1;
                depth = depth.saturating_sub(1);
                Kind::Close
            }
            b'.' => {
                i += 1;
                Kind::Dot
            }
            b'=' => {
                i += 1;
                Kind::Eq
            }
            b'<' | b'>' | b'!' => {
                i += 1;
                if matches!(b.get(i), Some(b'=' | b'>')) {
                    i += 1;
                }
                Kind::Other
            }
            _ => {
                i += 1;
                Kind::Other
            }
        };
        out.push(Token {
            kind,
            span: start..i,
            depth,
        });
    }
    Ok(out)
}

/// Where `sql` can be rewritten to look up many values of `:key` at once, or why not.
pub fn batch_shape(sql: &str, dialect: Dialect, key: &str) -> Result<BatchShape, ScanError> {
    let toks = tokens(sql, dialect)?;
    let word =
        |t: &Token, w: &str| t.kind == Kind::Word && sql[t.span.clone()].eq_ignore_ascii_case(w);
    let refuse = |offset: usize, message: String, hint: &str| ScanError {
        offset,
        message,
        hint: hint.to_string(),
    };
    let Some(first) = toks.first().filter(|t| word(t, "SELECT")) else {
        return Err(refuse(
            toks.first().map_or(0, |t| t.span.start),
            "a batched lookup must be a plain SELECT".into(),
            "write the statement as SELECT … FROM … WHERE column = :key, or remove `batch`",
        ));
    };
    if let Some(t) = toks
        .get(1)
        .filter(|t| word(t, "DISTINCT") || word(t, "TOP"))
    {
        return Err(refuse(
            t.span.start,
            format!(
                "`{}` would apply to the whole batch, not to each key",
                &sql[t.span.clone()]
            ),
            "remove it, or remove `batch`",
        ));
    }
    let uses: Vec<&Token> = toks
        .iter()
        .filter(|t| t.kind == Kind::Param && &sql[t.span.start + 1..t.span.end] == key)
        .collect();
    let [use_] = uses.as_slice() else {
        return Err(refuse(
            uses.get(1).map_or(0, |t| t.span.start),
            format!(
                "`:{key}` must appear exactly once (as `column = :{key}`), not {} times",
                uses.len()
            ),
            "compare the key with its column once, in the WHERE clause",
        ));
    };
    let mut where_at = None;
    let mut where_end = toks.len();
    for (i, t) in toks.iter().enumerate().filter(|(_, t)| t.depth == 0) {
        let w = |s| word(t, s);
        if w("UNION") || w("INTERSECT") || w("EXCEPT") || w("MINUS") {
            return Err(refuse(
                t.span.start,
                format!(
                    "`{}` joins several queries; the batch cannot be split back per key",
                    &sql[t.span.clone()]
                ),
                "batch a single SELECT, or remove `batch`",
            ));
        }
        if w("GROUP") || w("HAVING") || w("LIMIT") || w("FETCH") || w("OFFSET") || w("WINDOW") {
            return Err(refuse(
                t.span.start,
                format!(
                    "`{}` would apply to the whole batch, not to each key",
                    &sql[t.span.clone()]
                ),
                "remove it, or remove `batch`",
            ));
        }
        if w("WHERE") {
            if where_at.is_some() {
                return Err(refuse(
                    t.span.start,
                    "the statement has two WHERE clauses at its top level".into(),
                    "batch a single SELECT",
                ));
            }
            where_at = Some(i);
        } else if where_at.is_some() && where_end == toks.len() && (w("ORDER") || w("FOR")) {
            where_end = i;
        }
    }
    let Some(where_at) = where_at else {
        return Err(refuse(
            first.span.start,
            "the statement has no WHERE clause to compare the key in".into(),
            "write WHERE column = :key",
        ));
    };
    let clause = &toks[where_at + 1..where_end];
    let inside = clause.iter().any(|t| std::ptr::eq(t, *use_));
    if !inside || use_.depth != 0 {
        return Err(refuse(
            use_.span.start,
            format!(
                "`:{key}` must be compared at the top level of the WHERE clause (not in a subquery, a function or parentheses)"
            ),
            "write WHERE column = :key AND …",
        ));
    }
    // The conjuncts: split at top-level AND (not the AND of a BETWEEN); no top-level OR.
    let mut conjuncts: Vec<&[Token]> = Vec::new();
    let mut start = 0;
    let mut between = false;
    for (i, t) in clause.iter().enumerate() {
        if t.depth != 0 {
            continue;
        }
        if word(t, "OR") {
            return Err(refuse(
                t.span.start,
                "the WHERE clause has a top-level OR: the key's comparison is not one of its AND terms".into(),
                "put the OR terms in parentheses, e.g. WHERE column = :key AND (a OR b)",
            ));
        }
        if word(t, "BETWEEN") {
            between = true;
        } else if word(t, "AND") {
            if between {
                between = false;
            } else {
                conjuncts.push(&clause[start..i]);
                start = i + 1;
            }
        }
    }
    conjuncts.push(&clause[start..]);
    let term = conjuncts
        .iter()
        .find(|c| c.iter().any(|t| std::ptr::eq(t, *use_)))
        .copied()
        .unwrap_or_default();
    let column_of = |ts: &[Token]| -> Option<String> {
        let ok = !ts.is_empty()
            && ts.len() % 2 == 1
            && ts.iter().enumerate().all(|(i, t)| {
                if i % 2 == 0 {
                    matches!(t.kind, Kind::Word | Kind::Quoted)
                } else {
                    t.kind == Kind::Dot
                }
            });
        ok.then(|| sql[ts[0].span.start..ts[ts.len() - 1].span.end].to_string())
    };
    let column = match term {
        [p, eq, col @ ..] if std::ptr::eq(p, *use_) && eq.kind == Kind::Eq => column_of(col),
        [col @ .., eq, p] if std::ptr::eq(p, *use_) && eq.kind == Kind::Eq => column_of(col),
        _ => None,
    };
    let Some(column) = column else {
        return Err(refuse(
            term.first().map_or(use_.span.start, |t| t.span.start),
            format!("the key must be compared as `column = :{key}`"),
            "compare the key column itself with `=` (no function, cast or other operator around it)",
        ));
    };
    Ok(BatchShape {
        select_end: first.span.end,
        conjunct: term[0].span.start..term[term.len() - 1].span.end,
        column,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(sql: &str) -> Result<BatchShape, String> {
        batch_shape(sql, Dialect::Postgres, "id").map_err(|e| e.message)
    }

    #[test]
    fn finds_the_key_comparison_and_renders_every_form() {
        let sql =
            "SELECT a, b FROM t WHERE x = :other AND t.ID = :id AND y BETWEEN 1 AND 2 ORDER BY a";
        let s = shape(sql).expect("batchable");
        assert_eq!(s.column, "t.ID");
        assert_eq!(&sql[s.conjunct.clone()], "t.ID = :id");
        assert_eq!(
            s.render(sql, "id", 3, Dialect::Postgres),
            "SELECT t.ID AS PATINA_BATCH_KEY, a, b FROM t WHERE x = :other AND t.ID IN (:id, :id, :id) AND y BETWEEN 1 AND 2 ORDER BY a"
        );
        let b = Batched::build(sql, &s, "id", 6, Dialect::Postgres, Placeholders::Question)
            .expect("forms");
        assert_eq!(b.key_at, 1);
        assert_eq!(
            b.forms.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [2, 4, 6]
        );
        assert_eq!(b.form(3).map(|(n, _)| n), Some(4));
        assert_eq!(b.form(7), None);
        assert_eq!(
            b.forms[0].1.as_ref(),
            "SELECT t.ID AS PATINA_BATCH_KEY, a, b FROM t WHERE x = ? AND t.ID IN (?, ?) AND y BETWEEN 1 AND 2 ORDER BY a"
        );
        let b = Batched::build(sql, &s, "id", 32, Dialect::Mssql, Placeholders::Numbered)
            .expect("forms");
        assert_eq!(b.forms.len(), 5);
        assert!(
            b.forms[0].1.contains("x = @P1 AND t.ID IN (@P2, @P3)"),
            "{}",
            b.forms[0].1
        );
    }

    #[test]
    fn the_key_may_come_first_and_be_quoted() {
        let s = shape("SELECT * FROM t WHERE :id = \"Job No\"").expect("batchable");
        assert_eq!(s.column, "\"Job No\"");
        let s = batch_shape(
            "SELECT * FROM t WHERE [Job].[No] = :id",
            Dialect::Mssql,
            "id",
        )
        .expect("batchable");
        assert_eq!(s.column, "[Job].[No]");
    }

    #[test]
    fn refuses_what_it_cannot_rewrite_and_says_why() {
        let cases = [
            (
                "WITH x AS (SELECT 1) SELECT * FROM x WHERE a = :id",
                "plain SELECT",
            ),
            ("SELECT DISTINCT a FROM t WHERE a = :id", "`DISTINCT`"),
            ("SELECT a FROM t WHERE a = :id OR b = 1", "top-level OR"),
            ("SELECT a FROM t WHERE a = :id AND b = :id", "exactly once"),
            ("SELECT a FROM t", "exactly once"),
            ("SELECT a FROM t WHERE (a = :id)", "top level of the WHERE"),
            (
                "SELECT a FROM t WHERE a IN (SELECT b FROM u WHERE c = :id)",
                "top level",
            ),
            ("SELECT a FROM t WHERE UPPER(a) = :id", "`column = :id`"),
            ("SELECT a FROM t WHERE a > :id", "`column = :id`"),
            ("SELECT a FROM t WHERE a = :id + 1", "`column = :id`"),
            ("SELECT a FROM t WHERE a = :id GROUP BY a", "`GROUP`"),
            ("SELECT a FROM t WHERE a = :id LIMIT 1", "`LIMIT`"),
            (
                "SELECT a FROM t WHERE a = :id FETCH FIRST 1 ROW ONLY",
                "`FETCH`",
            ),
            (
                "SELECT a FROM t WHERE a = :id UNION SELECT a FROM u",
                "`UNION`",
            ),
            ("SELECT TOP 1 a FROM t WHERE a = :id", "`TOP`"),
        ];
        for (sql, why) in cases {
            let e = shape(sql).expect_err(sql);
            assert!(e.contains(why), "{sql}: {e}");
        }
    }

    #[test]
    fn strings_comments_and_casts_do_not_confuse_it() {
        let sql = "SELECT a FROM t -- OR :id\nWHERE b = 'x OR y' AND a = :id::int /* GROUP */";
        let s = shape(sql);
        // `:id::int` is a cast around the key: refused, the cast is not the column.
        assert!(s.is_err());
        let sql = "SELECT a FROM t -- OR :id\nWHERE b = 'x OR :id' AND a = :id /* GROUP */";
        assert_eq!(shape(sql).expect("batchable").column, "a");
    }
}
