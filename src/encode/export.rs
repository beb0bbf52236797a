//! Streaming exports: rows → NDJSON lines or RFC 4180 CSV, handed to the HTTP side in chunks
//! as the driver returns them, so that memory stays flat however many rows there are. The
//! chunk channel is bounded: a slow client slows the fetch down, a gone client stops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Invalid, InvalidTally, Layout, LayoutCache, resolve, write_cell, write_object};
use crate::catalog::RoutePlan;
use crate::codec::Cell;
use crate::shape::ColumnInfo;
use crate::source::{RowSink, SinkError};

/// Bytes gathered before a chunk is handed on.
const CHUNK: usize = 64 * 1024;

/// What the sink's reason says when the client stopped reading.
pub const CLIENT_GONE: &str = "the client closed the connection";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Ndjson,
    Csv,
}

/// What the HTTP side learns from an export once the statement is done.
#[derive(Debug, Default)]
pub struct ExportState {
    /// More rows followed the cap: the export is incomplete.
    pub capped: AtomicBool,
    /// At least one chunk went to the client.
    pub started: AtomicBool,
}

/// Encodes rows for an export and sends them on in chunks.
pub struct ExportRows {
    plan: Arc<RoutePlan>,
    cache: Arc<LayoutCache>,
    layout: Option<Arc<Layout>>,
    fields: Option<Arc<[String]>>,
    mask: Vec<bool>,
    format: ExportFormat,
    cap: usize,
    rows: usize,
    out: Vec<u8>,
    scratch: Vec<u8>,
    send: Sender,
    state: Arc<ExportState>,
    invalid: Invalid,
}

/// Hands a chunk on; `false` when nobody takes chunks any more (the client went away).
pub type Sender = Box<dyn FnMut(Vec<u8>) -> bool + Send>;

impl std::fmt::Debug for ExportRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportRows")
            .field("format", &self.format)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl ExportRows {
    /// `cap` rows at most are written; the source should read one more, so that a cap that
    /// cuts rows off is noticed.
    pub fn new(
        plan: Arc<RoutePlan>,
        cache: Arc<LayoutCache>,
        fields: Option<Arc<[String]>>,
        format: ExportFormat,
        cap: usize,
        send: Sender,
        state: Arc<ExportState>,
    ) -> Self {
        Self {
            invalid: Invalid::new(&plan, Arc::default()),
            plan,
            cache,
            layout: None,
            fields,
            mask: Vec::new(),
            format,
            cap,
            rows: 0,
            out: Vec::with_capacity(CHUNK + 4096),
            scratch: Vec::with_capacity(256),
            send,
            state,
        }
    }

    /// Count undecodable values in `tally`.
    #[must_use]
    pub fn tally(mut self, tally: Arc<InvalidTally>) -> Self {
        self.invalid = Invalid::new(&self.plan, tally);
        self
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.out, Vec::with_capacity(CHUNK + 4096));
        if (self.send)(chunk) {
            self.state.started.store(true, Ordering::Relaxed);
            Ok(())
        } else {
            Err(SinkError {
                column: String::new(),
                reason: CLIENT_GONE.into(),
            })
        }
    }
}

impl RowSink for ExportRows {
    fn begin(&mut self, columns: &[ColumnInfo]) -> Result<(), SinkError> {
        let plan = &self.plan;
        let layout = self.cache.get_or_build(columns, || Layout {
            source: columns.to_vec(),
            columns: columns.iter().map(|c| resolve(plan, c)).collect(),
        });
        self.mask = super::mask(&layout, self.fields.as_deref());
        self.invalid.begin(plan, columns);
        if self.format == ExportFormat::Csv {
            let mut first = true;
            for ((_, name, _), keep) in layout.columns.iter().zip(&self.mask) {
                if !keep {
                    continue;
                }
                if !first {
                    self.out.push(b',');
                }
                first = false;
                write_csv_field(name.as_bytes(), &mut self.out);
            }
            self.out.extend_from_slice(b"\r\n");
        }
        self.layout = Some(layout);
        Ok(())
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), SinkError> {
        if self.rows >= self.cap {
            self.state.capped.store(true, Ordering::Relaxed);
            return Ok(());
        }
        let Some(layout) = &self.layout else {
            return Err(SinkError {
                column: String::new(),
                reason: "rows before columns".into(),
            });
        };
        match self.format {
            ExportFormat::Ndjson => {
                write_object(layout, &self.mask, cells, &mut self.out, &mut self.invalid)?;
                self.out.push(b'\n');
            }
            ExportFormat::Csv => {
                let mut first = true;
                for (((_, name, codec), cell), keep) in
                    layout.columns.iter().zip(cells).zip(&self.mask)
                {
                    if !keep {
                        continue;
                    }
                    if !first {
                        self.out.push(b',');
                    }
                    first = false;
                    self.scratch.clear();
                    write_cell(
                        (name, codec),
                        *cell,
                        cells,
                        &mut self.scratch,
                        &mut self.invalid,
                    )?;
                    json_to_csv(&self.scratch, &mut self.out);
                }
                self.out.extend_from_slice(b"\r\n");
            }
        }
        self.rows += 1;
        if self.out.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// What is left to send (the HTTP side sends it), and the rows written.
    fn finish(self: Box<Self>) -> (Vec<u8>, usize) {
        (self.out, self.rows)
    }
}

/// A JSON scalar as the gateway writes it → the same value as a CSV field: `null` → empty, a
/// string → its text (quoted when it holds a comma, a quote or a line break), anything else
/// (numbers with every digit as written, `true`, `false`) as is.
fn json_to_csv(json: &[u8], out: &mut Vec<u8>) {
    match json {
        b"null" => {}
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => write_csv_field(inner, out),
        [b'"', ..] => match serde_json::from_slice::<String>(json) {
            Ok(s) => write_csv_field(s.as_bytes(), out),
            Err(_) => write_csv_field(json, out),
        },
        other => out.extend_from_slice(other),
    }
}

/// One CSV field (RFC 4180): quoted, with quotes doubled, when it needs to be.
fn write_csv_field(text: &[u8], out: &mut Vec<u8>) {
    if text
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        out.push(b'"');
        for &b in text {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(json: &str) -> String {
        let mut out = Vec::new();
        json_to_csv(json.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_fields_follow_rfc_4180() {
        assert_eq!(csv("null"), "");
        assert_eq!(csv("12.500"), "12.500");
        assert_eq!(csv("true"), "true");
        assert_eq!(csv(r#""plain""#), "plain");
        assert_eq!(csv(r#""a, b""#), "\"a, b\"");
        assert_eq!(csv(r#""say \"hi\"""#), "\"say \"\"hi\"\"\"");
        assert_eq!(csv(r#""two\nlines""#), "\"two\nlines\"");
        assert_eq!(csv(r#""tab\there""#), "tab\there");
        assert_eq!(csv(r#""caf\u00e9""#), "café");
        assert_eq!(csv(r#""""#), "");
    }
}
