//! Rows → JSON bytes for one route: resolves each result column to its output name and codec
//! (the mapping's rule, or a default from the column's SQL type) and writes objects straight
//! into a byte buffer. Runs on the source's thread; knows nothing of HTTP or drivers. The
//! resolved layout is runtime state kept beside the plan ([`LayoutCache`]), never inside it.

use std::sync::Arc;

pub mod export;

use crate::catalog::RoutePlan;
use tracing::warn;

use crate::codec::{
    BindKind, BindValue, Cell, ColumnCodec, DecodeError, OnInvalid, write_json_string,
};
use crate::shape::{ColumnInfo, SqlType};
use crate::source::{RowSink, SinkError};

/// Resolved output columns for one result shape.
#[derive(Debug)]
pub struct Layout {
    /// The result columns this was resolved for.
    pub source: Vec<ColumnInfo>,
    /// Per column: `"name":` already escaped, the output name, and the codec.
    pub columns: Vec<(Vec<u8>, String, ColumnCodec)>,
}

/// A route's last [`Layout`], reused while the database keeps returning the same columns.
#[derive(Debug, Default)]
pub struct LayoutCache(std::sync::Mutex<Option<Arc<Layout>>>);

impl LayoutCache {
    /// The cached layout for these columns, or a new one built by `build` (and kept).
    pub fn get_or_build(
        &self,
        columns: &[ColumnInfo],
        build: impl FnOnce() -> Layout,
    ) -> Arc<Layout> {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(l) = slot.as_ref()
            && l.source == columns
        {
            return Arc::clone(l);
        }
        let l = Arc::new(build());
        *slot = Some(Arc::clone(&l));
        l
    }
}

/// Encodes a result set as a JSON array of objects (or a single object for `one` routes).
#[derive(Debug)]
pub struct JsonRows {
    plan: Arc<RoutePlan>,
    cache: Arc<LayoutCache>,
    layout: Option<Arc<Layout>>,
    /// Only these output fields are decoded and written (all when `None`).
    fields: Option<Arc<[String]>>,
    mask: Vec<bool>,
    page: Option<PageCapture>,
    invalid: Invalid,
    out: Vec<u8>,
    rows: usize,
}

/// A page's rows: how many to write, and where to leave the last one's key values and whether
/// another row followed.
#[derive(Debug)]
pub struct PageCapture {
    pub limit: usize,
    /// The key columns, as the mapping names them.
    pub keys: Vec<String>,
    pub end: Arc<std::sync::Mutex<PageEnd>>,
    /// Where each key is in the result, found when the columns are known.
    found: Vec<(usize, SqlType)>,
}

impl PageCapture {
    pub fn new(limit: usize, keys: Vec<String>, end: Arc<std::sync::Mutex<PageEnd>>) -> Self {
        Self {
            limit,
            keys,
            end,
            found: Vec::new(),
        }
    }
}

/// The end of a page: the last row's key values, and whether more rows follow.
#[derive(Debug, Default)]
pub struct PageEnd {
    pub last: Vec<BindValue>,
    pub more: bool,
}

impl JsonRows {
    pub fn new(plan: Arc<RoutePlan>, cache: Arc<LayoutCache>) -> Self {
        Self {
            invalid: Invalid::new(&plan, Arc::default()),
            plan,
            cache,
            layout: None,
            fields: None,
            mask: Vec::new(),
            page: None,
            out: Vec::with_capacity(512),
            rows: 0,
        }
    }

    /// Count undecodable values in `tally`.
    #[must_use]
    pub fn tally(mut self, tally: Arc<InvalidTally>) -> Self {
        self.invalid = Invalid::new(&self.plan, tally);
        self
    }

    /// Write only these output fields.
    #[must_use]
    pub fn fields(mut self, fields: Option<Arc<[String]>>) -> Self {
        self.fields = fields;
        self
    }

    /// Write a page: at most `limit` rows, noting the last one's keys.
    #[must_use]
    pub fn page(mut self, page: Option<PageCapture>) -> Self {
        self.page = page;
        self
    }
}

impl RowSink for JsonRows {
    fn begin(&mut self, columns: &[ColumnInfo]) -> Result<(), SinkError> {
        self.out.clear();
        self.rows = 0;
        let plan = &self.plan;
        let layout = self.cache.get_or_build(columns, || Layout {
            source: columns.to_vec(),
            columns: columns.iter().map(|c| resolve(plan, c)).collect(),
        });
        self.mask = mask(&layout, self.fields.as_deref());
        self.invalid.begin(plan, columns);
        // A statement without a result set has no keys to find.
        if let Some(page) = self.page.as_mut().filter(|_| !columns.is_empty()) {
            page.found.clear();
            for key in &page.keys {
                let Some(i) = columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(key))
                else {
                    return Err(SinkError {
                        column: key.clone(),
                        reason: "the page key is not a column of the result".into(),
                    });
                };
                page.found.push((i, columns[i].sql_type.clone()));
            }
        }
        self.layout = Some(layout);
        Ok(())
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), SinkError> {
        if let Some(page) = &self.page {
            if self.rows == page.limit {
                page.end
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .more = true;
                return Ok(());
            }
            if self.rows + 1 == page.limit {
                let last = page
                    .found
                    .iter()
                    .map(|(i, ty)| key_value(cells[*i], ty))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|reason| SinkError {
                        column: page.keys.first().cloned().unwrap_or_default(),
                        reason,
                    })?;
                page.end
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .last = last;
            }
        }
        if self.rows > 0 {
            self.out.push(b',');
        }
        let Some(layout) = &self.layout else {
            return Err(SinkError {
                column: String::new(),
                reason: "rows before columns".into(),
            });
        };
        write_object(layout, &self.mask, cells, &mut self.out, &mut self.invalid)?;
        self.rows += 1;
        Ok(())
    }

    /// The encoded rows (comma-separated objects, without brackets) and their count.
    fn finish(self: Box<Self>) -> (Vec<u8>, usize) {
        (self.out, self.rows)
    }
}

/// The first column of the first row as a count (`SELECT COUNT(*) …`).
#[derive(Debug)]
pub struct CountRows(pub Arc<std::sync::Mutex<Option<u64>>>);

impl RowSink for CountRows {
    fn begin(&mut self, _: &[ColumnInfo]) -> Result<(), SinkError> {
        Ok(())
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), SinkError> {
        let n = match cells.first() {
            Some(Cell::Int(i)) => u64::try_from(*i).ok(),
            Some(Cell::Text(t)) => std::str::from_utf8(t)
                .ok()
                .and_then(|t| t.trim().parse().ok()),
            Some(Cell::Decimal { digits, scale: 0 }) => u64::try_from(*digits).ok(),
            _ => None,
        };
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = n;
        Ok(())
    }

    fn finish(self: Box<Self>) -> (Vec<u8>, usize) {
        (Vec::new(), 1)
    }
}

/// How many stored values each field failed to decode, by field and policy (`error`, `null`,
/// `raw`): shared between a sink and whoever reports the result (the header, the metrics).
#[derive(Debug, Default)]
pub struct InvalidTally(std::sync::Mutex<Vec<(String, &'static str, usize)>>);

impl InvalidTally {
    fn add(&self, field: &str, policy: &'static str) {
        let mut v = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match v.iter_mut().find(|(f, p, _)| f == field && *p == policy) {
            Some(e) => e.2 += 1,
            None => v.push((field.to_string(), policy, 1)),
        }
    }

    /// Every (field, policy, count) so far.
    pub fn counts(&self) -> Vec<(String, &'static str, usize)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// `Patina-Invalid-Fields`: the fields served in place of values that did not decode, with
    /// their counts (`due_on=2, status=1`); `None` when every value decoded.
    pub fn header(&self) -> Option<String> {
        let v = self.counts();
        let served: Vec<String> = v
            .iter()
            .filter(|(_, p, _)| *p != "error")
            .map(|(f, _, n)| format!("{f}={n}"))
            .collect();
        (!served.is_empty()).then(|| served.join(", "))
    }
}

/// Lines logged per result about undecodable values; the rest are counted only.
const INVALID_LOG_LINES: usize = 10;

/// The columns that identify a row (a route's `key`), found in one result.
#[derive(Debug, Default, Clone)]
pub struct RowKey(Vec<(String, usize)>);

impl RowKey {
    /// The route's key columns, where they are in `columns` (those missing are left out).
    pub fn find(plan: &RoutePlan, columns: &[ColumnInfo]) -> Self {
        Self(
            plan.key
                .iter()
                .filter_map(|k| {
                    columns
                        .iter()
                        .position(|c| c.name.eq_ignore_ascii_case(k))
                        .map(|i| (k.clone(), i))
                })
                .collect(),
        )
    }

    /// A row's key as `JOBNO=100003, OPSEQ=20` (empty when the route names none).
    pub fn of(&self, cells: &[Cell<'_>]) -> String {
        self.0
            .iter()
            .map(|(name, i)| {
                let v = match cells.get(*i) {
                    Some(Cell::Text(b)) => String::from_utf8_lossy(b).trim().to_string(),
                    Some(Cell::Null) | None => "null".to_string(),
                    Some(c) => {
                        let mut s = String::new();
                        let _ = c.write_text(&mut s);
                        s
                    }
                };
                format!("{name}={v}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where one result's undecodable values are counted and logged.
#[derive(Debug, Default)]
pub struct Invalid {
    route: String,
    tally: Arc<InvalidTally>,
    keys: RowKey,
    logged: usize,
}

impl Invalid {
    pub fn new(route: &RoutePlan, tally: Arc<InvalidTally>) -> Self {
        Self {
            route: route.id.clone(),
            tally,
            keys: RowKey::default(),
            logged: 0,
        }
    }

    /// Find the key columns in a result.
    fn begin(&mut self, plan: &RoutePlan, columns: &[ColumnInfo]) {
        self.keys = RowKey::find(plan, columns);
        self.logged = 0;
    }

    fn record(
        &mut self,
        name: &str,
        codec: &ColumnCodec,
        cell: Cell<'_>,
        cells: &[Cell<'_>],
        e: &DecodeError,
    ) {
        let policy = codec.on_invalid.name();
        self.tally.add(name, policy);
        if self.logged < INVALID_LOG_LINES {
            self.logged += 1;
            let stored = codec.raw_text(cell);
            let kind = e.kind(stored.as_deref());
            let key = self.keys.of(cells);
            if codec.sensitive {
                warn!(route = %self.route, field = %name, policy, kind, key = %key, "a stored value does not decode");
            } else {
                warn!(route = %self.route, field = %name, policy, kind, key = %key, reason = %e.reason, "a stored value does not decode");
            }
        }
    }
}

/// One value: decoded, or, when it does not decode, what its column's `on_invalid` says
/// (counted and logged in `invalid`).
pub(crate) fn write_cell(
    (name, codec): (&str, &ColumnCodec),
    cell: Cell<'_>,
    cells: &[Cell<'_>],
    out: &mut Vec<u8>,
    invalid: &mut Invalid,
) -> Result<(), SinkError> {
    let start = out.len();
    let Err(e) = codec.write_json(cell, out) else {
        return Ok(());
    };
    invalid.record(name, codec, cell, cells, &e);
    out.truncate(start);
    match codec.on_invalid {
        OnInvalid::Error => {
            return Err(SinkError {
                column: name.to_string(),
                reason: e.reason,
            });
        }
        OnInvalid::Null => out.extend_from_slice(b"null"),
        OnInvalid::Raw => match codec.raw_text(cell) {
            Some(t) => write_json_string(&t, out),
            None => out.extend_from_slice(b"null"),
        },
    }
    Ok(())
}

/// Which result columns are written: those whose output name is among `fields` (all without).
pub(crate) fn mask(layout: &Layout, fields: Option<&[String]>) -> Vec<bool> {
    layout
        .columns
        .iter()
        .map(|(_, name, _)| fields.is_none_or(|f| f.iter().any(|n| n == name)))
        .collect()
}

/// One row as a JSON object of the masked-in columns.
pub(crate) fn write_object(
    layout: &Layout,
    mask: &[bool],
    cells: &[Cell<'_>],
    out: &mut Vec<u8>,
    invalid: &mut Invalid,
) -> Result<(), SinkError> {
    out.push(b'{');
    let mut first = true;
    for (((key, name, codec), cell), keep) in layout.columns.iter().zip(cells).zip(mask) {
        if !keep {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(key);
        write_cell((name, codec), *cell, cells, out, invalid)?;
    }
    out.push(b'}');
    Ok(())
}

/// A page key's value as the database gave it, to bind again for the next page: integers as
/// integers, floats as floats, everything else as its text (a CHAR keeps its padding, a
/// decimal every digit), NULL as NULL.
fn key_value(cell: Cell<'_>, ty: &SqlType) -> Result<BindValue, String> {
    Ok(match cell {
        Cell::Null => BindValue::Null(BindKind::Text),
        Cell::Int(i) => BindValue::Int(i),
        Cell::Float(f) => BindValue::Float(f),
        Cell::Bool(b) => BindValue::Int(i64::from(b)),
        Cell::Binary(_) => return Err("a binary value cannot be a page key".into()),
        Cell::Decimal { .. } => {
            let mut s = String::new();
            cell.write_text(&mut s).map_err(|e| e.to_string())?;
            BindValue::Text(s)
        }
        Cell::Text(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            let integral = match ty {
                SqlType::Integer => true,
                SqlType::Decimal { scale, precision } => *scale == 0 && *precision <= 18,
                _ => false,
            };
            if integral && let Ok(i) = text.trim().parse::<i64>() {
                BindValue::Int(i)
            } else if *ty == SqlType::Float
                && let Ok(f) = text.trim().parse::<f64>()
            {
                BindValue::Float(f)
            } else {
                BindValue::Text(text.into_owned())
            }
        }
    })
}

/// The output name and codec of one result column, with its `"name":` prefix.
fn resolve(plan: &RoutePlan, c: &ColumnInfo) -> (Vec<u8>, String, ColumnCodec) {
    let (name, codec) = plan.output_of(c);
    let mut key = Vec::with_capacity(name.len() + 3);
    write_json_string(&name, &mut key);
    key.push(b':');
    (key, name, codec)
}
