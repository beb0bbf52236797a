//! Rows → JSON bytes for one route: resolves each result column to its output name and codec
//! (the mapping's rule, or a default from the column's SQL type) and writes objects straight
//! into a byte buffer. Runs on the source's thread; knows nothing of HTTP or drivers.

use std::sync::Arc;

use crate::catalog::{Layout, RoutePlan};
use crate::codec::{Cell, ColumnCodec, write_json_string};
use crate::source::{ColumnInfo, RowSink, SinkError};

/// Encodes a result set as a JSON array of objects (or a single object for `one` routes).
#[derive(Debug)]
pub struct JsonRows {
    plan: Arc<RoutePlan>,
    layout: Option<Arc<Layout>>,
    out: Vec<u8>,
    rows: usize,
}

impl JsonRows {
    pub fn new(plan: Arc<RoutePlan>) -> Self {
        Self {
            plan,
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
        self.layout = Some(plan.layout.get_or_build(columns, || Layout {
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

/// The output name and codec of one result column.
fn resolve(plan: &RoutePlan, c: &ColumnInfo) -> (Vec<u8>, String, ColumnCodec) {
    let fallback = c.sql_type.default_codec();
    let (name, codec) = match plan.column(&c.name) {
        Some(p) => (p.output.clone(), p.codec(&fallback)),
        None => (c.name.to_ascii_lowercase(), ColumnCodec::new(fallback)),
    };
    let mut key = Vec::with_capacity(name.len() + 3);
    write_json_string(&name, &mut key);
    key.push(b':');
    (key, name, codec)
}
