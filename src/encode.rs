//! Rows → JSON bytes for one route: resolves each result column to its output name and codec
//! (the mapping's rule, or a default from the column's SQL type) and writes objects straight
//! into a byte buffer. Runs on the source's thread; knows nothing of HTTP or drivers. The
//! resolved layout is runtime state kept beside the plan ([`LayoutCache`]), never inside it.

use std::sync::Arc;

use crate::catalog::RoutePlan;
use crate::codec::{Cell, ColumnCodec, write_json_string};
use crate::shape::ColumnInfo;
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
    out: Vec<u8>,
    rows: usize,
}

impl JsonRows {
    pub fn new(plan: Arc<RoutePlan>, cache: Arc<LayoutCache>) -> Self {
        Self {
            plan,
            cache,
            layout: None,
            out: Vec::with_capacity(512),
            rows: 0,
        }
    }
}

impl RowSink for JsonRows {
    fn begin(&mut self, columns: &[ColumnInfo]) -> Result<(), SinkError> {
        self.out.clear();
        self.rows = 0;
        let plan = &self.plan;
        self.layout = Some(self.cache.get_or_build(columns, || Layout {
            source: columns.to_vec(),
            columns: columns.iter().map(|c| resolve(plan, c)).collect(),
        }));
        Ok(())
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), SinkError> {
        if self.rows > 0 {
            self.out.push(b',');
        }
        self.out.push(b'{');
        let Some(layout) = &self.layout else {
            return Err(SinkError {
                column: String::new(),
                reason: "rows before columns".into(),
            });
        };
        for (i, ((key, name, codec), cell)) in layout.columns.iter().zip(cells).enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.out.extend_from_slice(key);
            codec
                .write_json(*cell, &mut self.out)
                .map_err(|e| SinkError {
                    column: name.clone(),
                    reason: e.reason,
                })?;
        }
        self.out.push(b'}');
        self.rows += 1;
        Ok(())
    }

    /// The encoded rows (comma-separated objects, without brackets) and their count.
    fn finish(self: Box<Self>) -> (Vec<u8>, usize) {
        (self.out, self.rows)
    }
}

/// The output name and codec of one result column, with its `"name":` prefix.
fn resolve(plan: &RoutePlan, c: &ColumnInfo) -> (Vec<u8>, String, ColumnCodec) {
    let (name, codec) = plan.output_of(c);
    let mut key = Vec::with_capacity(name.len() + 3);
    write_json_string(&name, &mut key);
    key.push(b':');
    (key, name, codec)
}
