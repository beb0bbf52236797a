//! Readable JSON names from legacy column and file names, where a simple rule fits: a legacy
//! name is cut into known abbreviations (`CUSNO` → `CUS` `NO` → `customer_number`), using a
//! small built-in dictionary of AS/400 habits that the DBA can extend. A name that cannot be
//! cut into known pieces stays as it is, lower-cased: no guessing beyond the dictionary.

use std::collections::BTreeMap;

/// Abbreviation → word, as RPG and DDS programmers wrote them.
const BUILT_IN: &[(&str, &str)] = &[
    ("ACC", "account"),
    ("ACCT", "account"),
    ("ADR", "address"),
    ("ADDR", "address"),
    ("AMT", "amount"),
    ("BAL", "balance"),
    ("BY", "by"),
    ("CAT", "category"),
    ("CD", "code"),
    ("CITY", "city"),
    ("CM", "completed"),
    ("CMP", "completed"),
    ("CNT", "count"),
    ("CO", "company"),
    ("CR", "credit"),
    ("CRT", "created"),
    ("CT", "city"),
    ("CTR", "center"),
    ("CUR", "currency"),
    ("CUS", "customer"),
    ("CUST", "customer"),
    ("DAT", "date"),
    ("DATE", "date"),
    ("DEPT", "department"),
    ("DS", "description"),
    ("DSC", "description"),
    ("DESC", "description"),
    ("DPT", "department"),
    ("DT", "date"),
    ("DTL", "detail"),
    ("DUE", "due"),
    ("DY", "day"),
    ("EMP", "employee"),
    ("F", "flag"),
    ("FL", "flag"),
    ("FLG", "flag"),
    ("HDR", "header"),
    ("HR", "hour"),
    ("ID", "id"),
    ("INV", "invoice"),
    ("ITM", "item"),
    ("ITEM", "item"),
    ("JOB", "job"),
    ("LIN", "line"),
    ("LN", "line"),
    ("LMT", "limit"),
    ("LOC", "location"),
    ("LST", "last"),
    ("MAS", "master"),
    ("MO", "month"),
    ("MST", "master"),
    ("MTH", "month"),
    ("NAM", "name"),
    ("NAME", "name"),
    ("NBR", "number"),
    ("NM", "name"),
    ("NO", "number"),
    ("NOT", "note"),
    ("NOTE", "note"),
    ("NUM", "number"),
    ("OP", "operation"),
    ("OPS", "operations"),
    ("OR", "ordered"),
    ("ORD", "order"),
    ("PH", "phone"),
    ("PHN", "phone"),
    ("PLN", "plant"),
    ("PLT", "plant"),
    ("PR", "price"),
    ("PRC", "price"),
    ("PRD", "product"),
    ("QTY", "quantity"),
    ("REF", "reference"),
    ("RUSH", "rush"),
    ("SEQ", "sequence"),
    ("SHP", "ship"),
    ("SQ", "sequence"),
    ("ST", "state"),
    ("STS", "status"),
    ("TM", "time"),
    ("TOT", "total"),
    ("TX", "text"),
    ("TXT", "text"),
    ("TYP", "type"),
    ("UNT", "unit"),
    ("UPD", "updated"),
    ("USR", "user"),
    ("VND", "vendor"),
    ("WHS", "warehouse"),
    ("WRK", "work"),
    ("YR", "year"),
    ("ZIP", "zip"),
];

/// The abbreviations in use: the built-in ones and the DBA's.
#[derive(Clone, Debug)]
pub struct Dictionary {
    words: BTreeMap<String, String>,
}

impl Default for Dictionary {
    fn default() -> Self {
        Self {
            words: BUILT_IN
                .iter()
                .map(|(a, w)| ((*a).to_string(), (*w).to_string()))
                .collect(),
        }
    }
}

impl Dictionary {
    /// Add (or replace) abbreviations: `ABBR = "word"` lines of a TOML table.
    pub fn extend_from_toml(&mut self, text: &str) -> Result<(), String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
        for (abbr, word) in table {
            let word = word
                .as_str()
                .ok_or_else(|| format!("`{abbr}`: write the word as a string"))?;
            if abbr.is_empty() || !word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`{abbr} = \"{word}\"`: a word is letters, digits and _"
                ));
            }
            self.words
                .insert(abbr.to_ascii_uppercase(), word.to_ascii_lowercase());
        }
        Ok(())
    }

    /// The words of a legacy name, or `None` when it cannot be cut into known abbreviations.
    /// Underscores cut first (`CUST_NO`); each part is cut into the fewest pieces.
    pub fn words(&self, name: &str) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for part in name.split('_').filter(|p| !p.is_empty()) {
            out.extend(self.cut(&part.to_ascii_uppercase())?);
        }
        (!out.is_empty()).then_some(out)
    }

    /// The fewest dictionary pieces that make up `part` (ties: the longer first piece).
    fn cut(&self, part: &str) -> Option<Vec<String>> {
        let n = part.len();
        // best[i]: the fewest pieces for part[i..], and the first piece's end.
        let mut best: Vec<Option<(usize, usize)>> = vec![None; n + 1];
        best[n] = Some((0, n));
        for i in (0..n).rev() {
            for j in (i + 1..=n).rev() {
                let (Some(piece), Some((count, _))) = (part.get(i..j), best[j]) else {
                    continue;
                };
                if !self.words.contains_key(piece) {
                    continue;
                }
                if best[i].is_none_or(|(c, _)| count + 1 < c) {
                    best[i] = Some((count + 1, j));
                }
            }
        }
        let mut pieces = Vec::new();
        let mut i = 0;
        while i < n {
            let (_, j) = best[i]?;
            pieces.push(self.words[&part[i..j]].clone());
            i = j;
        }
        Some(pieces)
    }

    /// Whether a column's name says it holds a date (`ORDDT`, `DUE_DATE`).
    pub fn names_a_date(&self, column: &str) -> bool {
        self.words(column)
            .is_some_and(|w| w.iter().any(|x| x == "date"))
            || column.to_ascii_uppercase().contains("DATE")
    }

    /// A column's JSON name: its words joined by `_`, else the name lower-cased.
    pub fn field_name(&self, column: &str) -> String {
        let name = self
            .words(column)
            .map_or_else(|| column.to_ascii_lowercase(), |w| w.join("_"));
        identifier(&name)
    }

    /// A table's resource words: its words without a trailing `master` or `file`
    /// (`JOBMST` → `job`), else the name lower-cased.
    pub fn resource(&self, table: &str) -> Vec<String> {
        match self.words(table) {
            Some(mut w) => {
                if w.len() > 1 && matches!(w.last().map(String::as_str), Some("master" | "file")) {
                    w.pop();
                }
                w
            }
            None => vec![identifier(&table.to_ascii_lowercase())],
        }
    }
}

/// Letters, digits and `_`, not starting with a digit.
fn identifier(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert_str(0, "c_");
    }
    s
}

/// `job` → `jobs`, `category` → `categories`, `operations` stays.
pub fn plural(word: &str) -> String {
    if word.ends_with('s') {
        word.to_string()
    } else if let Some(stem) = word.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{word}s")
    }
}

/// `operations` → `operation` (for one row's route).
pub fn singular(word: &str) -> String {
    if let Some(stem) = word.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = word.strip_suffix('s')
        && !stem.ends_with(['s', 'u'])
    {
        stem.to_string()
    } else {
        word.to_string()
    }
}

/// `["job", "operations"]` → `JobOperations`.
pub fn pascal(words: &[String]) -> String {
    words
        .iter()
        .flat_map(|w| w.split('_'))
        .map(|w| {
            let mut c = w.chars();
            c.next().map_or_else(String::new, |f| {
                f.to_ascii_uppercase().to_string() + c.as_str()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names_become_words() {
        let d = Dictionary::default();
        for (legacy, json) in [
            ("CUSNO", "customer_number"),
            ("JOBNO", "job_number"),
            ("QTYOR", "quantity_ordered"),
            ("UNTPR", "unit_price"),
            ("ORDDT", "order_date"),
            ("STSCD", "status_code"),
            ("CUST_NO", "customer_number"),
            ("cusnm", "customer_name"),
            ("CRLMT", "credit_limit"),
            ("NOTSQ", "note_sequence"),
            // Not made of known pieces: left alone.
            ("XYZZY", "xyzzy"),
            ("1ST", "c_1st"),
        ] {
            assert_eq!(d.field_name(legacy), json, "{legacy}");
        }
    }

    #[test]
    fn tables_become_resources() {
        let d = Dictionary::default();
        assert_eq!(d.resource("JOBMST"), ["job"]);
        assert_eq!(d.resource("JOBOPS"), ["job", "operations"]);
        assert_eq!(d.resource("ORDLIN"), ["order", "line"]);
        assert_eq!(d.resource("T_1"), ["t_1"]);
        assert_eq!(plural("job"), "jobs");
        assert_eq!(plural("category"), "categories");
        assert_eq!(plural("operations"), "operations");
        assert_eq!(singular("operations"), "operation");
        assert_eq!(singular("categories"), "category");
        assert_eq!(singular("status"), "status");
        assert_eq!(
            pascal(&["job".into(), "operations".into()]),
            "JobOperations"
        );
    }

    #[test]
    fn the_dba_extends_the_dictionary() {
        let mut d = Dictionary::default();
        assert_eq!(d.field_name("WRKCT"), "work_city");
        d.extend_from_toml("CT = \"center\"\nXYZ = \"widget\"")
            .expect("valid");
        assert_eq!(d.field_name("WRKCT"), "work_center");
        assert_eq!(d.field_name("XYZNO"), "widget_number");
        assert!(d.extend_from_toml("A = 1").is_err());
        assert!(d.extend_from_toml("A = \"two words\"").is_err());
    }
}
