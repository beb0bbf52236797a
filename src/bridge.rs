//! The migration bridge's judgement: does the new database answer like the legacy one? Two
//! JSON answers of one route (the primary's, as served, and the shadow's, decoded by its own
//! columns into the same public fields) are compared field by field on their JSON text, so
//! decimals compare exactly and strings after the route's codecs; differences are named by
//! JSON pointer. Each comparison is one line of the bridge log; [`report`] sums the log up per
//! route. Pure apart from appending to the log file.

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One field that differs, by JSON pointer; the values as JSON text (`None` where the row or
/// field is missing, and for `sensitive` fields, whose values never leave the process).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub pointer: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub primary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shadow: Option<String>,
}

/// What one comparison found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    pub primary_rows: usize,
    pub shadow_rows: usize,
    pub differences: Vec<Difference>,
}

/// A row: its fields' JSON texts, in order.
type Row = IndexMap<String, Box<RawValue>>;

#[derive(Deserialize)]
struct Envelope {
    data: Vec<Row>,
}

/// The rows of an answer: one object (`one`), or the `data` of a list envelope. A `one`
/// route's 404 is no row.
fn rows(body: &[u8], one: bool) -> Result<Vec<Row>, String> {
    if one {
        if body.is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_slice::<Row>(body)
            .map(|r| vec![r])
            .map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Envelope>(body)
            .map(|e| e.data)
            .map_err(|e| e.to_string())
    }
}

/// Compare two answers. `ordered`: the route orders its rows, so positions must agree;
/// otherwise rows are compared as sets. `sensitive` fields are compared, never quoted.
pub fn compare(
    primary: &[u8],
    shadow: &[u8],
    one: bool,
    ordered: bool,
    sensitive: &HashSet<String>,
) -> Result<Comparison, String> {
    let mut p = rows(primary, one).map_err(|e| format!("primary answer: {e}"))?;
    let mut s = rows(shadow, one).map_err(|e| format!("shadow answer: {e}"))?;
    if !ordered {
        // By field name, so that two statements listing their columns in other orders sort
        // their rows alike.
        let text = |r: &Row| {
            let mut fields: Vec<String> = r
                .iter()
                .map(|(k, v)| format!("{k}\u{1f}{}", v.get()))
                .collect();
            fields.sort();
            fields.join("\u{1e}")
        };
        p.sort_by_cached_key(text);
        s.sort_by_cached_key(text);
    }
    let mut out = Comparison {
        primary_rows: p.len(),
        shadow_rows: s.len(),
        differences: Vec::new(),
    };
    let at = |i: usize, field: Option<&str>| {
        let field = field.map(escape_pointer);
        match (one, field) {
            (true, Some(f)) => format!("/{f}"),
            (true, None) => String::new(),
            (false, Some(f)) => format!("/data/{i}/{f}"),
            (false, None) => format!("/data/{i}"),
        }
    };
    for i in 0..p.len().max(s.len()) {
        match (p.get(i), s.get(i)) {
            (Some(pr), Some(sr)) => {
                let fields: Vec<&String> = pr
                    .keys()
                    .chain(sr.keys().filter(|k| !pr.contains_key(*k)))
                    .collect();
                for f in fields {
                    let (a, b) = (pr.get(f).map(|v| v.get()), sr.get(f).map(|v| v.get()));
                    if a != b {
                        let quote = |v: Option<&str>| {
                            v.filter(|_| !sensitive.contains(f.as_str()))
                                .map(str::to_string)
                        };
                        out.differences.push(Difference {
                            pointer: at(i, Some(f)),
                            primary: quote(a),
                            shadow: quote(b),
                        });
                    }
                }
            }
            (Some(_), None) => out.differences.push(Difference {
                pointer: at(i, None),
                primary: Some("(row)".into()),
                shadow: None,
            }),
            (None, Some(_)) => out.differences.push(Difference {
                pointer: at(i, None),
                primary: None,
                shadow: Some("(row)".into()),
            }),
            (None, None) => {}
        }
    }
    Ok(out)
}

/// `~` and `/` in a pointer token (RFC 6901).
fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// One line of the bridge log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub time: String,
    pub route: String,
    /// `equal`, `different` or `error` (the shadow failed or timed out).
    pub result: String,
    /// The request's parameters (path and query), as sent.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub primary_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_ms: Option<f64>,
}

/// The bridge log: JSON lines, appended.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    file: std::sync::Mutex<Option<std::fs::File>>,
}

impl Log {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: std::sync::Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one entry (the file and its folder are made on first use).
    pub fn append(&self, entry: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut slot = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            {
                // It holds request parameters: for the gateway's account only.
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            *slot = Some(options.open(&self.path)?);
        }
        match slot.as_mut() {
            Some(f) => f.write_all(&line),
            None => Ok(()),
        }
    }
}

/// One route's agreement over a log.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RouteSummary {
    pub route: String,
    pub compared: u64,
    pub equal: u64,
    pub different: u64,
    pub errors: u64,
    /// `equal / compared`: a shadow that failed or timed out did not agree. `None` before any
    /// comparison.
    pub agreement: Option<f64>,
    /// The fields that differ most often (`/data/*/unit_price`), with their counts.
    pub top_differences: Vec<(String, u64)>,
}

/// Sum up a bridge log per route; entries older than `since` (RFC 3339 text compares in time
/// order) are left out. Unreadable lines are counted and skipped.
pub fn report(text: &str, since: Option<&str>) -> (Vec<RouteSummary>, usize) {
    let mut routes: BTreeMap<String, (RouteSummary, BTreeMap<String, u64>)> = BTreeMap::new();
    let mut unreadable = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(e) = serde_json::from_str::<Entry>(line) else {
            unreadable += 1;
            continue;
        };
        if since.is_some_and(|s| e.time.as_str() < s) {
            continue;
        }
        let (sum, fields) = routes.entry(e.route.clone()).or_default();
        sum.route.clone_from(&e.route);
        sum.compared += 1;
        match e.result.as_str() {
            "equal" => sum.equal += 1,
            "different" => {
                sum.different += 1;
                let mut seen = HashSet::new();
                for d in &e.differences {
                    let general = generalize(&d.pointer);
                    if seen.insert(general.clone()) {
                        *fields.entry(general).or_default() += 1;
                    }
                }
            }
            _ => sum.errors += 1,
        }
    }
    let out = routes
        .into_values()
        .map(|(mut sum, fields)| {
            let judged = sum.compared;
            #[allow(clippy::cast_precision_loss)]
            {
                sum.agreement = (judged > 0).then(|| sum.equal as f64 / judged as f64);
            }
            let mut top: Vec<(String, u64)> = fields.into_iter().collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            top.truncate(5);
            sum.top_differences = top;
            sum
        })
        .collect();
    (out, unreadable)
}

/// `/data/17/unit_price` → `/data/*/unit_price`.
fn generalize(pointer: &str) -> String {
    pointer
        .split('/')
        .map(|t| {
            if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
                "*"
            } else {
                t
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> HashSet<String> {
        HashSet::new()
    }

    #[test]
    fn equal_answers_have_no_differences() {
        let a = br#"{"data":[{"n":1,"p":123456789012.345678},{"n":2,"p":1.5}],"next":null}"#;
        let c = compare(a, a, false, true, &none()).expect("compares");
        assert_eq!((c.primary_rows, c.shadow_rows), (2, 2));
        assert!(c.differences.is_empty());
    }

    #[test]
    fn decimals_compare_by_every_digit() {
        let a = br#"{"n":1,"p":123456789012.345678}"#;
        let b = br#"{"n":1,"p":123456789012.345679}"#;
        let c = compare(a, b, true, true, &none()).expect("compares");
        assert_eq!(
            c.differences,
            [Difference {
                pointer: "/p".into(),
                primary: Some("123456789012.345678".into()),
                shadow: Some("123456789012.345679".into()),
            }]
        );
    }

    #[test]
    fn missing_rows_order_and_sensitive_fields() {
        let a = br#"{"data":[{"n":1,"s":"x"},{"n":2,"s":"y"},{"n":3,"s":"z"}],"next":null}"#;
        let missing = br#"{"data":[{"n":1,"s":"x"},{"n":2,"s":"y"}],"next":null}"#;
        let c = compare(a, missing, false, true, &none()).expect("compares");
        assert_eq!(c.differences.len(), 1);
        assert_eq!(c.differences[0].pointer, "/data/2");
        assert_eq!(c.differences[0].shadow, None);

        let reordered =
            br#"{"data":[{"n":2,"s":"y"},{"n":1,"s":"x"},{"n":3,"s":"z"}],"next":null}"#;
        let c = compare(a, reordered, false, true, &none()).expect("compares");
        let pointers: Vec<&str> = c.differences.iter().map(|d| d.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/data/0/n", "/data/0/s", "/data/1/n", "/data/1/s"]
        );
        // A route without an order: the same rows in another order are equal, whatever the
        // order of their fields.
        let c = compare(a, reordered, false, false, &none()).expect("compares");
        assert!(c.differences.is_empty());
        let fields_swapped =
            br#"{"data":[{"s":"z","n":3},{"s":"x","n":1},{"s":"y","n":2}],"next":null}"#;
        let c = compare(a, fields_swapped, false, false, &none()).expect("compares");
        assert!(c.differences.is_empty(), "{c:?}");

        let secret: HashSet<String> = ["s".to_string()].into();
        let changed =
            br#"{"data":[{"n":1,"s":"x"},{"n":2,"s":"SECRET"},{"n":3,"s":"z"}],"next":null}"#;
        let c = compare(a, changed, false, true, &secret).expect("compares");
        assert_eq!(
            c.differences,
            [Difference {
                pointer: "/data/1/s".into(),
                primary: None,
                shadow: None,
            }]
        );
    }

    #[test]
    fn the_report_sums_up_per_route() {
        let entry = |route: &str, result: &str, pointers: &[&str]| {
            serde_json::to_string(&Entry {
                time: "2026-12-03T10:00:00Z".into(),
                route: route.into(),
                result: result.into(),
                params: BTreeMap::new(),
                differences: pointers
                    .iter()
                    .map(|p| Difference {
                        pointer: (*p).into(),
                        primary: None,
                        shadow: None,
                    })
                    .collect(),
                error: None,
                primary_ms: 1.0,
                shadow_ms: Some(2.0),
            })
            .expect("json")
        };
        let log = [
            entry("getJob", "equal", &[]),
            entry("getJob", "equal", &[]),
            entry("getJob", "equal", &[]),
            entry("getJob", "different", &["/unit_price"]),
            entry(
                "listJobs",
                "different",
                &["/data/3/due_on", "/data/7/due_on"],
            ),
            entry(
                "listJobs",
                "different",
                &["/data/1/due_on", "/data/1/plant"],
            ),
            entry("listJobs", "error", &[]),
            "not json".to_string(),
        ]
        .join("\n");
        let (routes, unreadable) = report(&log, None);
        assert_eq!(unreadable, 1);
        assert_eq!(routes[0].route, "getJob");
        assert_eq!(routes[0].agreement, Some(0.75));
        assert_eq!(routes[0].top_differences, [("/unit_price".to_string(), 1)]);
        assert_eq!(routes[1].errors, 1);
        assert_eq!(routes[1].agreement, Some(0.0), "errors do not agree");
        assert_eq!(
            routes[1].top_differences,
            [
                ("/data/*/due_on".to_string(), 2),
                ("/data/*/plant".to_string(), 1)
            ]
        );
        let (later, _) = report(&log, Some("2027-01-01T00:00:00Z"));
        assert!(later.is_empty());
    }
}
