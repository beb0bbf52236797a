//! Rows → JSON bytes for one route: resolves each result column to its output name and codec
//! (the mapping's rule, or a default from the column's SQL type) and writes objects straight
//! into a byte buffer. Runs on the source's thread; knows nothing of HTTP or drivers.

use std::sync::Arc;

use crate::catalog::RoutePlan;
use crate::codec::{Cell, ColumnCodec, write_json_string};
use crate::source::{ColumnInfo, RowSink, SinkError};

/// Encodes a result set as a JSON array of objects (or a single object for `one` routes).
#[derive(Debug)]
pub struct JsonRows {
    plan: Arc<RoutePlan>,
    /// Per result column: `"name":` already escaped, and its codec.
    columns: Vec<(Vec<u8>, String, ColumnCodec)>,
    out: Vec<u8>,
    rows: usize,
}

impl JsonRows {
    pub fn new(plan: Arc<RoutePlan>) -> Self {
        Self {
            plan,
            columns: Vec::new(),
            out: Vec::with_capacity(512),
            rows: 0,
        }
    }
}

impl RowSink for JsonRows {
    fn begin(&mut self, columns: &[ColumnInfo]) -> Result<(), SinkError> {
        self.columns.clear();
        self.out.clear();
        self.rows = 0;
        for c in columns {
            let fallback = c.sql_type.default_codec();
            let (name, codec) = match self.plan.column(&c.name) {
                Some(plan) => (plan.output.clone(), plan.codec(&fallback)),
                None => (c.name.to_ascii_lowercase(), ColumnCodec::new(fallback)),
            };
            let mut key = Vec::with_capacity(name.len() + 3);
            write_json_string(&name, &mut key);
            key.push(b':');
            self.columns.push((key, name, codec));
        }
        Ok(())
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), SinkError> {
        if self.rows > 0 {
            self.out.push(b',');
        }
        self.out.push(b'{');
        for (i, ((key, name, codec), cell)) in self.columns.iter().zip(cells).enumerate() {
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
