//! The script of a write's transaction, run on the source's own thread: the `If-Match` check
//! first (the read route's row, its ETag compared with the tags sent), then each step per body
//! object and per list element, values a step returns bound by later steps, the last step's
//! rows kept as the answer, a procedure's return code turned into an outcome. It decides to go
//! on or stop; committing and rolling back are the source's.

use std::collections::VecDeque;
use std::sync::Arc;

use super::body::{FieldValue, Object};
use crate::catalog::{LocationPart, Outcome, RoutePlan, ValueRef, WritePlan};
use crate::codec::{BindKind, BindValue, Cell};
use crate::encode::{JsonRows, LayoutCache};
use crate::shape::ColumnInfo;
use crate::source::{Next, RowSink, Script, SinkError, TxStatement};

/// Rows a write statement may return.
const STEP_ROWS: usize = 1000;

/// Why a script stopped its transaction.
#[derive(Debug)]
pub(super) enum Stop {
    /// The dedup table has this delivery's id: the database has the write already.
    Delivered,
    NotFound,
    Stale,
    Outcome(Outcome),
    NoOutput(String),
}

/// The `If-Match` check: the read route's row, its ETag compared with the tags sent.
pub(super) struct Guard {
    pub(super) read: Arc<RoutePlan>,
    pub(super) binds: Vec<ValueRef>,
    pub(super) tags: Vec<String>,
    pub(super) rows: Option<Box<JsonRows>>,
}

/// A queued write's delivery id and the dedup table that records it in the same
/// transaction.
#[derive(Debug)]
pub(super) struct Dedup {
    pub(super) check_sql: Arc<str>,
    pub(super) record_sql: Arc<str>,
    pub(super) id: String,
    pub(super) route: String,
    /// The check found the id.
    found: bool,
}

impl Dedup {
    pub(super) fn new(plan: &crate::catalog::DedupPlan, id: &str, route: &str) -> Self {
        Self {
            check_sql: Arc::clone(&plan.check_sql),
            record_sql: Arc::clone(&plan.record_sql),
            id: id.to_string(),
            route: route.to_string(),
            found: false,
        }
    }
}

/// Which statement is running.
#[derive(Clone, Copy, Debug)]
enum Current {
    DedupCheck,
    DedupRecord,
    Guard,
    Step {
        obj: usize,
        step: usize,
        item: usize,
    },
}

/// A write's statements, run one after another in one transaction on the source's thread:
/// the `If-Match` check first, then each step per body object (and per list element), values a
/// step returns bound by later ones, the last step's rows kept as the answer.
pub(super) struct WriteScript {
    route: Arc<RoutePlan>,
    params: Vec<BindValue>,
    pub(super) objects: Vec<Object>,
    guard: Option<Guard>,
    dedup: Option<Dedup>,
    pending: VecDeque<Current>,
    current: Option<Current>,
    /// Per object, the values its steps returned.
    outputs: Vec<Vec<Option<BindValue>>>,
    columns: Vec<ColumnInfo>,
    response: Option<Box<JsonRows>>,
    /// Per run of the last step, its rows as JSON objects (comma-joined) and their count.
    pub(super) rows_out: Vec<(Vec<u8>, usize)>,
    outcome: Option<String>,
    pub(super) stop: Option<Stop>,
    layout: Arc<LayoutCache>,
}

impl std::fmt::Debug for WriteScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteScript")
            .field("route", &self.route.id)
            .finish_non_exhaustive()
    }
}

impl WriteScript {
    pub(super) fn new(
        route: Arc<RoutePlan>,
        params: Vec<BindValue>,
        objects: Vec<Object>,
        guard: Option<Guard>,
        dedup: Option<Dedup>,
    ) -> Self {
        let mut s = Self {
            route,
            params,
            objects,
            guard,
            dedup,
            pending: VecDeque::new(),
            current: None,
            outputs: Vec::new(),
            columns: Vec::new(),
            response: None,
            rows_out: Vec::new(),
            outcome: None,
            stop: None,
            layout: Arc::default(),
        };
        s.reset();
        s
    }

    fn plan(&self) -> &WritePlan {
        self.route.write.as_ref().expect("a write route")
    }

    fn value(&self, v: ValueRef, obj: usize, item: usize) -> Result<BindValue, Stop> {
        let null = BindValue::Null(BindKind::Text);
        Ok(match v {
            ValueRef::Param(i) => self.params.get(i).cloned().unwrap_or(null),
            ValueRef::Field(i) => match self.objects.get(obj).and_then(|o| o.get(i)) {
                Some(FieldValue::One(b)) => b.clone(),
                _ => null,
            },
            ValueRef::Item(list, j) => match self.objects.get(obj).and_then(|o| o.get(list)) {
                Some(FieldValue::List(items)) => items
                    .get(item)
                    .and_then(|it| it.get(j))
                    .cloned()
                    .unwrap_or(null),
                _ => null,
            },
            ValueRef::Index => BindValue::Int(i64::try_from(item + 1).unwrap_or(i64::MAX)),
            ValueRef::Output(k) => self
                .outputs
                .get(obj)
                .and_then(|o| o.get(k))
                .cloned()
                .flatten()
                .ok_or_else(|| Stop::NoOutput(self.plan().outputs[k].clone()))?,
        })
    }

    fn is_last(&self, step: usize) -> bool {
        step + 1 == self.plan().steps.len()
    }

    /// The `Location`, from the answer's first row, the request's values and step outputs.
    pub(super) fn location(&self, route: &RoutePlan, parts: &[LocationPart]) -> String {
        let first_row: Option<serde_json::Map<String, serde_json::Value>> = self
            .rows_out
            .iter()
            .find(|(_, n)| *n > 0)
            .and_then(|(bytes, _)| {
                let end = first_object_end(bytes)?;
                serde_json::from_slice(&bytes[..end]).ok()
            });
        let mut out = String::new();
        for p in parts {
            match p {
                LocationPart::Text(t) => out.push_str(t),
                LocationPart::Name(n) => {
                    let v = first_row
                        .as_ref()
                        .and_then(|r| r.get(n))
                        .map(|v| match v {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .or_else(|| self.named_value(route, n));
                    let v = v.unwrap_or_default();
                    out.extend(percent_encoding::utf8_percent_encode(
                        &v,
                        percent_encoding::NON_ALPHANUMERIC,
                    ));
                }
            }
        }
        out
    }

    fn named_value(&self, route: &RoutePlan, name: &str) -> Option<String> {
        let text = bind_text;
        if let Some(i) = route.params.iter().position(|p| p.name == name) {
            return self.params.get(i).and_then(text);
        }
        let plan = self.plan();
        if let Some(i) = plan
            .body
            .as_ref()
            .and_then(|b| b.fields.iter().position(|f| f.name == name))
            && let Some(FieldValue::One(b)) = self.objects.first().and_then(|o| o.get(i))
        {
            return text(b);
        }
        let k = plan.outputs.iter().position(|o| o == name)?;
        self.outputs.first()?.get(k)?.as_ref().and_then(text)
    }
}

/// Where the first object of comma-joined JSON objects ends.
fn first_object_end(bytes: &[u8]) -> Option<usize> {
    let mut de = serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>();
    de.next()?.ok()?;
    Some(de.byte_offset())
}

/// A returned value, to bind in a later step.
fn bind_of(cell: &Cell<'_>) -> BindValue {
    match *cell {
        Cell::Null | Cell::Binary(_) => BindValue::Null(BindKind::Text),
        Cell::Text(b) => BindValue::Text(String::from_utf8_lossy(b).into_owned()),
        Cell::Int(i) => BindValue::Int(i),
        Cell::Float(f) => BindValue::Float(f),
        Cell::Bool(b) => BindValue::Int(i64::from(b)),
        c @ Cell::Decimal { .. } => {
            let mut s = String::new();
            let _ = c.write_text(&mut s);
            BindValue::Text(s)
        }
    }
}

/// The text of a cell, for comparing with an outcome's value.
fn text_of(cell: &Cell<'_>) -> Option<String> {
    bind_text(&bind_of(cell)).map(|t| t.trim_start().to_string())
}

/// A bound value as text (a CHAR's padding cut off); nothing for NULL.
pub(super) fn bind_text(b: &BindValue) -> Option<String> {
    match b {
        BindValue::Int(i) => Some(i.to_string()),
        BindValue::Float(f) => Some(f.to_string()),
        BindValue::Text(t) => Some(t.trim_end().to_string()),
        BindValue::Null(_) => None,
    }
}

impl RowSink for WriteScript {
    fn begin(&mut self, columns: &[ColumnInfo]) -> Result<(), SinkError> {
        self.columns = columns.to_vec();
        match self.current {
            Some(Current::Guard) => {
                if let Some(g) = &mut self.guard {
                    let mut rows = Box::new(JsonRows::new(Arc::clone(&g.read), Arc::default()));
                    rows.begin(columns)?;
                    g.rows = Some(rows);
                }
            }
            Some(Current::Step { step, .. }) if self.is_last(step) => {
                let mut rows = Box::new(JsonRows::new(
                    Arc::clone(&self.route),
                    Arc::clone(&self.layout),
                ));
                rows.begin(columns)?;
                self.response = Some(rows);
            }
            _ => {}
        }
        Ok(())
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), SinkError> {
        let Some(current) = self.current else {
            return Ok(());
        };
        match current {
            Current::DedupCheck => {
                if let Some(d) = &mut self.dedup {
                    d.found = true;
                }
            }
            Current::DedupRecord => {}
            Current::Guard => {
                if let Some(rows) = self.guard.as_mut().and_then(|g| g.rows.as_mut()) {
                    rows.row(cells)?;
                }
            }
            Current::Step { obj, step, .. } => {
                let plan = self.route.write.as_ref().expect("a write route");
                let st = &plan.steps[step];
                if !st.outputs.is_empty()
                    && let Some(slots) = self.outputs.get_mut(obj)
                    && slots.get(st.outputs[0]).is_some_and(Option::is_none)
                {
                    for (k, cell) in st.outputs.iter().zip(cells) {
                        slots[*k] = Some(bind_of(cell));
                    }
                }
                if step + 1 == plan.steps.len() {
                    if self.outcome.is_none()
                        && let Some(col) = &plan.outcome_column
                        && let Some(i) = self
                            .columns
                            .iter()
                            .position(|c| c.name.eq_ignore_ascii_case(col))
                    {
                        self.outcome = cells.get(i).and_then(text_of);
                    }
                    if let Some(rows) = &mut self.response {
                        rows.row(cells)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> (Vec<u8>, usize) {
        (Vec::new(), 0)
    }
}

impl Script for WriteScript {
    fn next_statement(&mut self) -> Next {
        {
            let Some(current) = self.pending.pop_front() else {
                return Next::Commit;
            };
            self.current = Some(current);
            self.columns.clear();
            let (sql, refs, obj, item, count_rows) = match current {
                Current::DedupCheck | Current::DedupRecord => {
                    let Some(d) = self.dedup.as_ref() else {
                        return Next::Stop;
                    };
                    let id = BindValue::Text(d.id.clone());
                    let (sql, binds) = if matches!(current, Current::DedupCheck) {
                        (Arc::clone(&d.check_sql), vec![id])
                    } else {
                        (
                            Arc::clone(&d.record_sql),
                            vec![id, BindValue::Text(d.route.clone())],
                        )
                    };
                    return Next::Run(TxStatement {
                        sql,
                        binds,
                        max_rows: 1,
                        count_rows: false,
                    });
                }
                Current::Guard => {
                    let Some(g) = self.guard.as_ref() else {
                        return Next::Stop;
                    };
                    (Arc::clone(&g.read.sql), g.binds.clone(), 0, 0, false)
                }
                Current::Step { obj, step, item } => {
                    let st = &self.plan().steps[step];
                    (
                        Arc::clone(&st.sql),
                        st.binds.clone(),
                        obj,
                        item,
                        st.require_rows,
                    )
                }
            };
            let mut binds = Vec::with_capacity(refs.len());
            for r in refs {
                match self.value(r, obj, item) {
                    Ok(v) => binds.push(v),
                    Err(stop) => {
                        self.stop = Some(stop);
                        return Next::Stop;
                    }
                }
            }
            let max_rows = match current {
                // As many rows as the read serves, so its ETag is computed from the same bytes.
                Current::Guard => self.guard.as_ref().map_or(1, |g| g.read.max_rows),
                Current::Step { .. } | Current::DedupCheck | Current::DedupRecord => STEP_ROWS,
            };
            Next::Run(TxStatement {
                sql,
                binds,
                max_rows,
                count_rows,
            })
        }
    }

    fn ran(&mut self, rows: Option<u64>) -> bool {
        if self.stop.is_some() {
            return false;
        }
        match self.current {
            None | Some(Current::DedupRecord) => true,
            Some(Current::DedupCheck) => {
                if self.dedup.as_ref().is_some_and(|d| d.found) {
                    self.stop = Some(Stop::Delivered);
                    return false;
                }
                true
            }
            Some(Current::Guard) => {
                let Some(g) = &mut self.guard else {
                    return true;
                };
                let (bytes, n) = g.rows.take().map_or((Vec::new(), 0), RowSink::finish);
                if n == 0 {
                    self.stop = Some(Stop::NotFound);
                    return false;
                }
                let etag = format!("\"{}\"", super::route::row_etag(&g.read, &bytes));
                if !g.tags.iter().any(|t| t == "*" || *t == etag) {
                    self.stop = Some(Stop::Stale);
                    return false;
                }
                true
            }
            Some(Current::Step { obj, step, .. }) => {
                let plan = self.route.write.as_ref().expect("a write route");
                let st = &plan.steps[step];
                if st.require_rows && rows == Some(0) {
                    self.stop = Some(Stop::NotFound);
                    return false;
                }
                if let Some(k) = st.outputs.first()
                    && self
                        .outputs
                        .get(obj)
                        .and_then(|o| o.get(*k))
                        .is_some_and(Option::is_none)
                {
                    self.stop = Some(Stop::NoOutput(plan.outputs[*k].clone()));
                    return false;
                }
                if step + 1 == plan.steps.len() {
                    if let Some(r) = self.response.take() {
                        self.rows_out.push(r.finish());
                    }
                    if let Some(v) = self.outcome.take()
                        && let Some(o) = plan.outcomes.iter().find(|o| o.value == v)
                    {
                        self.stop = Some(Stop::Outcome(o.clone()));
                        return false;
                    }
                }
                true
            }
        }
    }

    fn reset(&mut self) {
        let plan = self.route.write.as_ref().expect("a write route");
        self.pending.clear();
        if let Some(d) = &mut self.dedup {
            d.found = false;
            self.pending.push_back(Current::DedupCheck);
        }
        if self.guard.is_some() {
            self.pending.push_back(Current::Guard);
        }
        for (obj, o) in self.objects.iter().enumerate() {
            for (step, st) in plan.steps.iter().enumerate() {
                match st.for_each {
                    Some(list) => {
                        let n = match o.get(list) {
                            Some(FieldValue::List(items)) => items.len(),
                            _ => 0,
                        };
                        for item in 0..n {
                            self.pending.push_back(Current::Step { obj, step, item });
                        }
                    }
                    None => self.pending.push_back(Current::Step { obj, step, item: 0 }),
                }
            }
        }
        if self.dedup.is_some() {
            self.pending.push_back(Current::DedupRecord);
        }
        self.current = None;
        self.outputs = vec![vec![None; plan.outputs.len()]; self.objects.len()];
        self.rows_out.clear();
        self.response = None;
        self.outcome = None;
        self.stop = None;
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}
