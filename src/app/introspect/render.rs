//! The mapping file `patina introspect` prints, from what the database said of each table:
//! a list route (keyset pages over the key, when there is one) and a by-key route, every
//! column with a codec guessed from its type, name and (with `--sample`) its values. Pure:
//! no database here. Guesses a DBA must confirm carry a `# confirm:` comment on their line.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::names::{Dictionary, pascal, plural, singular};
use crate::shape::SqlType;

/// One result column as the database described it.
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub sql_type: SqlType,
    pub nullable: Option<bool>,
    pub width: Option<usize>,
    pub fixed: bool,
    /// With `--sample`: the distinct stored values (trimmed), most frequent first; `None`
    /// when not read.
    pub sample: Option<Vec<String>>,
}

/// A table (or a statement) to map.
#[derive(Clone, Debug)]
pub struct Table {
    /// What follows `FROM` (e.g. `MFGLIB.JOBMST`), or the whole statement with `--sql`.
    pub from: From,
    /// The name the resource is made from (the table's own name, or `--name`).
    pub name: String,
    pub columns: Vec<Column>,
    /// The key's columns (primary key, else a unique constraint); empty when none.
    pub key: Vec<String>,
}

/// Where the rows come from.
#[derive(Clone, Debug)]
pub enum From {
    Table(String),
    Statement(String),
}

/// What the file says about itself.
#[derive(Clone, Debug)]
pub struct Header {
    pub source: String,
    /// The `#:schema` target, relative to where the file will be.
    pub schema: String,
    /// The command that made it, for the file's first comment.
    pub command: String,
}

/// The mapping file for `tables`.
pub fn render(tables: &[Table], dict: &Dictionary, header: &Header) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "#:schema {}", header.schema);
    // One comment line, whatever the command held.
    let command: String = header
        .command
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let _ = writeln!(out, "# Made by `{command}`.");
    out.push_str(
        "# Names come from legacy abbreviations and codecs from SQL types: review them, and every\n\
         # line marked `# confirm:`. Then `patina check --db`.\n",
    );
    let _ = writeln!(out, "source = {}", quoted(&header.source));
    let mut ids: HashSet<String> = HashSet::new();
    for t in tables {
        let mut resource = dict.resource(&t.name);
        let taken = |r: &[String], ids: &HashSet<String>| {
            ids.contains(&format!("list{}", pascal(&plural_words(r))))
                || ids.contains(&format!("get{}", pascal(&singular_words(r))))
        };
        if taken(&resource, &ids) {
            resource = vec![
                t.name
                    .to_ascii_lowercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            ];
        }
        let columns = planned_columns(t, dict);
        render_list(&mut out, t, &resource, &columns, &mut ids);
        if !t.key.is_empty()
            && let From::Table(from) = &t.from
        {
            render_get(&mut out, from, &resource, &columns, &t.key, &mut ids);
        }
    }
    out
}

fn plural_words(resource: &[String]) -> Vec<String> {
    let mut w = resource.to_vec();
    if let Some(last) = w.last_mut() {
        *last = plural(last);
    }
    w
}

fn singular_words(resource: &[String]) -> Vec<String> {
    let mut w = resource.to_vec();
    if let Some(last) = w.last_mut() {
        *last = singular(last);
    }
    w
}

/// A column with its JSON name, its codec's fields and what to confirm.
struct Planned<'a> {
    column: &'a Column,
    field: String,
    /// The inline table's fields after `name`, e.g. `type = "integer"`.
    codec: Vec<String>,
    /// The parameter's type fields when the column is a key.
    param: Vec<String>,
    confirm: Option<String>,
}

fn planned_columns<'a>(t: &'a Table, dict: &Dictionary) -> Vec<Planned<'a>> {
    let mut used: HashSet<String> = HashSet::new();
    t.columns
        .iter()
        .map(|c| {
            let mut field = dict.field_name(&c.name);
            // Two columns with one name: the later gets a number.
            let mut n = 2;
            while !used.insert(field.clone()) {
                field = format!("{}_{n}", dict.field_name(&c.name));
                n += 1;
            }
            let (mut codec, param, confirm) = guess(c, dict.names_a_date(&c.name));
            // A number read as a date serves its zero (no date) as null.
            let numeric_date = !matches!(c.sql_type, SqlType::Date)
                && codec.iter().any(|f| f == "type = \"date\"");
            if c.nullable == Some(false) && !numeric_date {
                codec.push("nullable = false".into());
            }
            Planned {
                column: c,
                field,
                codec,
                param,
                confirm,
            }
        })
        .collect()
}

/// The codec of a column, the type of a parameter bound against it, and what to confirm.
fn guess(c: &Column, date_like: bool) -> (Vec<String>, Vec<String>, Option<String>) {
    let s = |v: &[&str]| -> Vec<String> { v.iter().map(|x| (*x).to_string()).collect() };
    let numeric_date = |digits: Option<usize>| -> Option<&'static str> {
        // With values: 6 or 7 digits are CYYMMDD (C = 0 before 2000), 8 are YYYYMMDD.
        if let Some(values) = &c.sample {
            return date_format_of(values);
        }
        match digits? {
            6 | 7 => Some("cyymmdd"),
            8 => Some("yyyymmdd"),
            _ => None,
        }
    };
    match &c.sql_type {
        SqlType::Integer => (s(&["type = \"integer\""]), s(&["type = \"integer\""]), None),
        SqlType::Decimal { precision, scale } if *scale == 0 => {
            if date_like && let Some(format) = numeric_date(Some(*precision)) {
                return (
                    vec!["type = \"date\"".into(), format!("format = \"{format}\"")],
                    vec!["type = \"date\"".into(), format!("format = \"{format}\"")],
                    Some(format!(
                        "NUMERIC({precision},0) named like a date, read as {}",
                        format.to_ascii_uppercase()
                    )),
                );
            }
            if *precision <= 18 {
                (s(&["type = \"integer\""]), s(&["type = \"integer\""]), None)
            } else {
                (
                    s(&["type = \"decimal\""]),
                    vec![
                        "type = \"decimal\"".into(),
                        format!("precision = {precision}"),
                        "scale = 0".into(),
                    ],
                    None,
                )
            }
        }
        SqlType::Decimal { precision, scale } => (
            vec!["type = \"decimal\"".into(), format!("scale = {scale}")],
            vec![
                "type = \"decimal\"".into(),
                format!("precision = {precision}"),
                format!("scale = {scale}"),
            ],
            None,
        ),
        SqlType::Float => {
            if date_like {
                if let Some(format) = numeric_date(None) {
                    return (
                        vec!["type = \"date\"".into(), format!("format = \"{format}\"")],
                        vec!["type = \"date\"".into(), format!("format = \"{format}\"")],
                        Some(format!(
                            "a number named like a date whose values read as {}",
                            format.to_ascii_uppercase()
                        )),
                    );
                }
                if c.sample.is_none() {
                    return (
                        s(&["type = \"number\""]),
                        s(&["type = \"number\""]),
                        Some(
                            "named like a date: run with --sample to tell CYYMMDD from YYYYMMDD"
                                .into(),
                        ),
                    );
                }
            }
            (s(&["type = \"number\""]), s(&["type = \"number\""]), None)
        }
        SqlType::Boolean => (s(&["type = \"boolean\""]), s(&["type = \"boolean\""]), None),
        SqlType::Date => (s(&["type = \"date\""]), s(&["type = \"date\""]), None),
        SqlType::Time => (s(&["type = \"time\""]), s(&["type = \"time\""]), None),
        SqlType::Timestamp => (
            s(&["type = \"datetime\""]),
            s(&["type = \"datetime\""]),
            None,
        ),
        SqlType::Binary => (s(&["type = \"binary\""]), s(&["type = \"string\""]), None),
        SqlType::Text => text_guess(c),
        SqlType::Unsupported(t) => (
            s(&["type = \"string\""]),
            s(&["type = \"string\""]),
            Some(format!(
                "the gateway has no codec for {t}: CAST it in the SQL to a type it has"
            )),
        ),
    }
}

fn text_guess(c: &Column) -> (Vec<String>, Vec<String>, Option<String>) {
    let mut param = vec!["type = \"string\"".to_string()];
    if let Some(w) = c.width {
        param.push(format!("max_length = {w}"));
    }
    let plain = if c.fixed {
        vec![
            "type = \"string\"".to_string(),
            "trim = \"end\"".to_string(),
        ]
    } else {
        vec!["type = \"string\"".to_string()]
    };
    let short = c.fixed && c.width.is_some_and(|w| w <= 2);
    if !short {
        return (plain, param, None);
    }
    let Some(values) = &c.sample else {
        return (
            plain,
            param,
            Some("a one-letter code? run with --sample for a `codes` stub".into()),
        );
    };
    let flags: HashSet<&str> = values.iter().map(String::as_str).collect();
    let yn = flags.iter().all(|v| matches!(*v, "Y" | "N" | ""))
        && (flags.contains("Y") || flags.contains("N"));
    if yn {
        let mut falses = vec!["\"N\""];
        if flags.contains("") {
            falses.push("\" \"");
        }
        return (
            vec![
                "type = \"boolean\"".into(),
                "true_values = [\"Y\"]".into(),
                format!("false_values = [{}]", falses.join(", ")),
            ],
            param,
            Some("stored Y/N: read as a flag".into()),
        );
    }
    if values.is_empty() || values.len() > 20 {
        return (plain, param, None);
    }
    let codes: Vec<String> = values
        .iter()
        .map(|v| {
            let word = if v.is_empty() {
                "blank".to_string()
            } else {
                v.to_ascii_lowercase()
                    .replace(|ch: char| !ch.is_ascii_alphanumeric(), "_")
            };
            let key = if v.is_empty() { " " } else { v.as_str() };
            format!("{} = {}", key_of(key), quoted(&word))
        })
        .collect();
    (
        vec![format!("codes = {{ {} }}", codes.join(", "))],
        param,
        Some(format!(
            "the codes found ({}): give each its word",
            values.len()
        )),
    )
}

/// `cyymmdd` when every non-zero value reads as one, `yyyymmdd` likewise, else `None`.
fn date_format_of(values: &[String]) -> Option<&'static str> {
    let numbers: Vec<f64> = values
        .iter()
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .filter(|n| *n != 0.0)
        .collect();
    if numbers.is_empty() || numbers.iter().any(|n| n.fract() != 0.0) {
        return None;
    }
    let day_ok = |n: f64| {
        // Integral and within a few million: the conversion is exact.
        #[allow(clippy::cast_possible_truncation)]
        let n = n as i64;
        let (m, d) = ((n / 100) % 100, n % 100);
        (1..=12).contains(&m) && (1..=31).contains(&d)
    };
    if numbers
        .iter()
        .all(|n| (100_101.0..=1_991_231.0).contains(n) && day_ok(*n))
    {
        Some("cyymmdd")
    } else if numbers
        .iter()
        .all(|n| (19_000_101.0..=29_991_231.0).contains(n) && day_ok(*n))
    {
        Some("yyyymmdd")
    } else {
        None
    }
}

fn render_list(
    out: &mut String,
    t: &Table,
    resource: &[String],
    columns: &[Planned<'_>],
    ids: &mut HashSet<String>,
) {
    let many = plural_words(resource);
    let id = format!("list{}", pascal(&many));
    ids.insert(id.clone());
    let path = format!("/{}", many.join("-").replace('_', "-"));
    let tag = many.join("_");
    out.push_str("\n[[route]]\n");
    let _ = writeln!(out, "id = {}", quoted(&id));
    let _ = writeln!(out, "path = {}", quoted(&path));
    let _ = writeln!(out, "summary = {}", quoted(&format!("{} rows", t.name)));
    let _ = writeln!(out, "tags = [{}]", quoted(&tag));
    let _ = writeln!(out, "scopes = [{}]", quoted(&format!("{tag}:read")));
    if t.key.is_empty() {
        out.push_str(
            "# No primary key or unique constraint: no pages. Give it\n\
             # page = { by = [\"A\", \"B\"] } with columns that tell the rows apart.\n",
        );
        out.push_str("max_rows = 1000\n");
    } else {
        let by: Vec<String> = t.key.iter().map(|k| quoted(k)).collect();
        let _ = writeln!(
            out,
            "page = {{ by = [{}], size = 100, max = 1000 }}",
            by.join(", ")
        );
    }
    match &t.from {
        From::Table(from) => {
            let _ = writeln!(
                out,
                "sql = \"\"\"\nSELECT {}\nFROM {from}\n\"\"\"",
                select_list(columns)
            );
        }
        From::Statement(sql) => {
            // A literal string keeps the SQL as written (backslashes included); a statement
            // holding three quotes in a row is written as a basic string instead.
            if sql.contains("'''") {
                let _ = writeln!(out, "sql = {}", quoted(sql.trim()));
            } else {
                let _ = writeln!(out, "sql = '''\n{}\n'''", sql.trim());
            }
        }
    }
    write_columns(out, columns);
}

fn render_get(
    out: &mut String,
    from: &str,
    resource: &[String],
    columns: &[Planned<'_>],
    key: &[String],
    ids: &mut HashSet<String>,
) {
    let many = plural_words(resource);
    let one = singular_words(resource);
    let id = format!("get{}", pascal(&one));
    ids.insert(id.clone());
    let keys: Vec<&Planned<'_>> = key
        .iter()
        .filter_map(|k| {
            columns
                .iter()
                .find(|c| c.column.name.eq_ignore_ascii_case(k))
        })
        .collect();
    let mut path = format!("/{}", many.join("-").replace('_', "-"));
    for k in &keys {
        let _ = write!(path, "/{{{}}}", k.field);
    }
    let tag = many.join("_");
    out.push_str("\n[[route]]\n");
    let _ = writeln!(out, "id = {}", quoted(&id));
    let _ = writeln!(out, "path = {}", quoted(&path));
    let _ = writeln!(
        out,
        "summary = {}",
        quoted(&format!("One {from} row, by its key"))
    );
    let _ = writeln!(out, "tags = [{}]", quoted(&tag));
    let _ = writeln!(out, "scopes = [{}]", quoted(&format!("{tag}:read")));
    out.push_str("one = true\n");
    let filter: Vec<String> = keys
        .iter()
        .map(|k| format!("{} = :{}", k.column.name, k.field))
        .collect();
    let _ = writeln!(
        out,
        "sql = \"\"\"\nSELECT {}\nFROM {from}\nWHERE {}\n\"\"\"",
        select_list(columns),
        filter.join(" AND ")
    );
    for k in &keys {
        let _ = writeln!(out, "params.{} = {{ {} }}", k.field, k.param.join(", "));
    }
    write_columns(out, columns);
}

fn select_list(columns: &[Planned<'_>]) -> String {
    let names: Vec<&str> = columns.iter().map(|c| c.column.name.as_str()).collect();
    names.join(", ")
}

fn write_columns(out: &mut String, columns: &[Planned<'_>]) {
    for c in columns {
        let mut fields = vec![format!("name = {}", quoted(&c.field))];
        fields.extend(c.codec.iter().cloned());
        let _ = write!(
            out,
            "columns.{} = {{ {} }}",
            key_of(&c.column.name),
            fields.join(", ")
        );
        if let Some(why) = &c.confirm {
            let _ = write!(out, "  # confirm: {why}");
        }
        out.push('\n');
    }
}

/// A TOML key: bare when it can be, else quoted.
fn key_of(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        quoted(k)
    }
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, sql_type: SqlType) -> Column {
        Column {
            name: name.into(),
            sql_type,
            nullable: Some(false),
            width: None,
            fixed: false,
            sample: None,
        }
    }

    fn jobmst(sample: bool) -> Table {
        let mut status = col("STSCD", SqlType::Text);
        status.fixed = true;
        status.width = Some(1);
        let mut rush = status.clone();
        rush.name = "RUSHF".into();
        let mut desc = col("JOBDS", SqlType::Text);
        desc.fixed = true;
        desc.width = Some(40);
        if sample {
            status.sample = Some(vec!["R".into(), "P".into(), String::new()]);
            rush.sample = Some(vec!["N".into(), "Y".into(), String::new()]);
        }
        let mut due = col(
            "DUEDT",
            SqlType::Decimal {
                precision: 7,
                scale: 0,
            },
        );
        due.nullable = None;
        Table {
            from: From::Table("MFGLIB.JOBMST".into()),
            name: "JOBMST".into(),
            columns: vec![
                col(
                    "JOBNO",
                    SqlType::Decimal {
                        precision: 9,
                        scale: 0,
                    },
                ),
                desc,
                status,
                rush,
                due,
                col(
                    "UNTPR",
                    SqlType::Decimal {
                        precision: 15,
                        scale: 4,
                    },
                ),
            ],
            key: vec!["JOBNO".into()],
        }
    }

    fn header() -> Header {
        Header {
            source: "mfg".into(),
            schema: "../../schemas/mapping.schema.json".into(),
            command: "patina introspect --source mfg --table MFGLIB.JOBMST".into(),
        }
    }

    #[test]
    fn a_table_becomes_a_list_and_a_by_key_route() {
        let text = render(&[jobmst(false)], &Dictionary::default(), &header());
        for line in [
            "#:schema ../../schemas/mapping.schema.json",
            "source = \"mfg\"",
            "id = \"listJobs\"",
            "path = \"/jobs\"",
            "page = { by = [\"JOBNO\"], size = 100, max = 1000 }",
            "SELECT JOBNO, JOBDS, STSCD, RUSHF, DUEDT, UNTPR\nFROM MFGLIB.JOBMST\n",
            "id = \"getJob\"",
            "path = \"/jobs/{job_number}\"",
            "WHERE JOBNO = :job_number",
            "params.job_number = { type = \"integer\" }",
            "columns.JOBNO = { name = \"job_number\", type = \"integer\", nullable = false }",
            "columns.JOBDS = { name = \"job_description\", type = \"string\", trim = \"end\", nullable = false }",
            "columns.DUEDT = { name = \"due_date\", type = \"date\", format = \"cyymmdd\" }  # confirm: NUMERIC(7,0) named like a date, read as CYYMMDD",
            "columns.UNTPR = { name = \"unit_price\", type = \"decimal\", scale = 4, nullable = false }",
            "columns.STSCD = { name = \"status_code\", type = \"string\", trim = \"end\", nullable = false }  # confirm: a one-letter code? run with --sample",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        toml::from_str::<toml::Table>(&text).expect("valid TOML");
    }

    #[test]
    fn sampled_one_letter_columns_become_codes_or_flags() {
        let text = render(&[jobmst(true)], &Dictionary::default(), &header());
        assert!(
            text.contains("columns.STSCD = { name = \"status_code\", codes = { R = \"r\", P = \"p\", \" \" = \"blank\" }, nullable = false }  # confirm: the codes found (3): give each its word"),
            "{text}"
        );
        assert!(
            text.contains("columns.RUSHF = { name = \"rush_flag\", type = \"boolean\", true_values = [\"Y\"], false_values = [\"N\", \" \"], nullable = false }"),
            "{text}"
        );
        toml::from_str::<toml::Table>(&text).expect("valid TOML");
    }

    #[test]
    fn sampled_numbers_tell_the_date_form() {
        let v = |xs: &[&str]| xs.iter().map(|x| (*x).to_string()).collect::<Vec<_>>();
        assert_eq!(
            date_format_of(&v(&["1240105", "0", "991231"])),
            Some("cyymmdd")
        );
        assert_eq!(
            date_format_of(&v(&["20240105.0", "19991231"])),
            Some("yyyymmdd")
        );
        assert_eq!(date_format_of(&v(&["1240105", "20240105"])), None);
        assert_eq!(date_format_of(&v(&["1241399"])), None, "month 13");
        assert_eq!(date_format_of(&v(&["0"])), None);
    }

    #[test]
    fn a_table_without_a_key_has_no_pages_and_no_by_key_route() {
        let mut t = jobmst(false);
        t.key.clear();
        let text = render(&[t], &Dictionary::default(), &header());
        assert!(text.contains("max_rows = 1000"), "{text}");
        assert!(!text.contains("\npage ="), "{text}");
        assert!(!text.contains("getJob"), "{text}");
    }

    #[test]
    fn a_statement_is_kept_as_written() {
        let mut t = jobmst(false);
        t.key.clear();
        let sql = "SELECT JOBNO FROM JOBMST\nWHERE JOBDS LIKE 'A\\%' ESCAPE '\\'";
        t.from = From::Statement(sql.into());
        let mut h = header();
        h.command = "patina introspect --sql 'SELECT JOBNO\nFROM JOBMST'".into();
        let text = render(&[t], &Dictionary::default(), &h);
        let parsed: toml::Table = toml::from_str(&text).expect("valid TOML");
        let route = &parsed["route"].as_array().expect("routes")[0];
        assert_eq!(
            route["sql"].as_str().map(str::trim_end),
            Some(sql),
            "{text}"
        );
    }

    #[test]
    fn odd_names_are_quoted_keys() {
        let mut t = jobmst(false);
        t.columns[0].name = "CUS#".into();
        t.key = vec!["CUS#".into()];
        let text = render(&[t], &Dictionary::default(), &header());
        assert!(
            text.contains("columns.\"CUS#\" = { name = \"cus_\""),
            "{text}"
        );
        toml::from_str::<toml::Table>(&text).expect("valid TOML");
    }
}
