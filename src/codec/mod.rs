//! Legacy value codecs, both ways: column codecs turn what the database returned (padded CHAR,
//! CYYMMDD numbers, code letters, exact decimals) into JSON; parameter codecs turn request text
//! into typed values to bind (an ISO date into CYYMMDD, a code word into its letter). Pure: no
//! IO, no knowledge of HTTP or of drivers.
//!
//! This file holds a column's decoding rule ([`ColumnCodec`]), the values a source hands over
//! ([`Cell`]) and the dispatch to one file per codec family: [`text`], [`numbers`], [`dates`],
//! [`codes`] (codes and flags), [`binary`], and [`params`] for the other direction. A new
//! codec gets a [`ColumnType`] variant here and its writer in its family's file.

mod binary;
mod codes;
mod dates;
mod numbers;
mod params;
mod text;

pub use codes::UnknownCode;
pub use dates::{DateFormat, TimeFormat, date_header_forms, decode_date, is_valid_date};
pub use numbers::normalize_decimal;
pub use params::{BindKind, BindValue, LIKE_ESCAPE, Like, LikeAt, ParamType, encode_date};
pub use text::{Trim, write_display, write_json_string};

/// The JSON type a column is decoded into.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnType {
    String,
    Integer,
    /// Floating point (JSON number, may round).
    Number,
    /// Exact decimal: every digit the database returned. `scale` pads to that many decimals
    /// (never rounds); `as_string` emits a JSON string for clients that parse numbers as floats.
    Decimal {
        scale: Option<u8>,
        as_string: bool,
    },
    Boolean {
        true_values: Vec<String>,
        false_values: Vec<String>,
    },
    Date(DateFormat),
    Time(TimeFormat),
    /// A timestamp, emitted as `YYYY-MM-DDThh:mm:ss[.fff]`.
    DateTime,
    /// Stored code → word.
    Code {
        codes: Vec<(String, String)>,
        unknown: UnknownCode,
    },
    /// Bytes, emitted as base64.
    Binary,
}

impl ColumnType {
    pub fn default_true_values() -> Vec<String> {
        ["Y", "y", "1", "T", "t", "true", "TRUE"]
            .map(String::from)
            .to_vec()
    }
    pub fn default_false_values() -> Vec<String> {
        ["N", "n", "0", "F", "f", "false", "FALSE"]
            .map(String::from)
            .to_vec()
    }
}

/// The full decoding rule for one result column.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnCodec {
    pub ty: ColumnType,
    pub trim: Trim,
    /// Stored values (after trimming) that mean "no value".
    pub null_if: Vec<String>,
    /// Whether null may be returned. A null in a column documented as never null is an error:
    /// the API document does not lie.
    pub nullable: bool,
}

impl ColumnCodec {
    pub fn new(ty: ColumnType) -> Self {
        Self {
            ty,
            trim: Trim::None,
            null_if: Vec::new(),
            nullable: true,
        }
    }
}

/// A value as the source returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell<'a> {
    Null,
    Text(&'a [u8]),
    Binary(&'a [u8]),
}

/// A stored value the column's codec cannot decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub reason: String,
}

fn fail<T>(reason: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError {
        reason: reason.into(),
    })
}

impl ColumnCodec {
    /// Append the JSON for one value to `out`. On error nothing useful is appended and the
    /// caller discards the buffer.
    pub fn write_json(&self, cell: Cell<'_>, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let start = out.len();
        self.write_value(cell, out)?;
        if !self.nullable && &out[start..] == b"null" {
            return fail("the value is null, but the mapping says `nullable = false`");
        }
        Ok(())
    }

    fn write_value(&self, cell: Cell<'_>, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let bytes = match cell {
            Cell::Null => {
                out.extend_from_slice(b"null");
                return Ok(());
            }
            Cell::Binary(b) => {
                if let ColumnType::Binary = self.ty {
                    binary::write_base64(b, out);
                    return Ok(());
                }
                b
            }
            Cell::Text(b) => b,
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            return fail("the stored text is not valid UTF-8");
        };
        let text = text::trim(text, self.trim);
        if self.null_if.iter().any(|n| n == text) {
            out.extend_from_slice(b"null");
            return Ok(());
        }
        match &self.ty {
            ColumnType::String => {
                write_json_string(text, out);
                Ok(())
            }
            ColumnType::Integer => numbers::write_integer(text, out),
            ColumnType::Number => numbers::write_number(text, out),
            ColumnType::Decimal { scale, as_string } => {
                numbers::write_decimal(text, *scale, *as_string, out)
            }
            ColumnType::Boolean {
                true_values,
                false_values,
            } => codes::write_flag(text, true_values, false_values, out),
            ColumnType::Date(format) => dates::write_date(text, *format, out),
            ColumnType::Time(format) => dates::write_time(text, *format, out),
            ColumnType::DateTime => dates::write_datetime(text, out),
            ColumnType::Code { codes, unknown } => codes::write_code(text, codes, *unknown, out),
            ColumnType::Binary => {
                binary::write_base64(text.as_bytes(), out);
                Ok(())
            }
        }
    }
}

/// Short excerpt of a stored value for an error message (logged, not sent to clients).
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod test_support {
    use super::{Cell, ColumnCodec, DecodeError};

    pub fn json(codec: &ColumnCodec, cell: Cell<'_>) -> Result<String, DecodeError> {
        let mut out = Vec::new();
        codec.write_json(cell, &mut out)?;
        Ok(String::from_utf8(out).expect("utf8"))
    }

    pub fn text(codec: &ColumnCodec, s: &str) -> String {
        json(codec, Cell::Text(s.as_bytes())).expect("decodes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::{json, text};

    #[test]
    fn blank_sentinel_becomes_null() {
        let mut c = ColumnCodec::new(ColumnType::String);
        c.trim = Trim::End;
        c.null_if = vec![String::new()];
        assert_eq!(text(&c, "     "), "null");
        assert_eq!(text(&c, "x "), "\"x\"");
    }

    #[test]
    fn non_nullable_columns_refuse_null() {
        let mut c = ColumnCodec::new(ColumnType::Date(DateFormat::Cyymmdd));
        c.nullable = false;
        assert!(json(&c, Cell::Null).is_err());
        assert!(
            json(&c, Cell::Text(b"0")).is_err(),
            "the 0 sentinel is null too"
        );
        assert_eq!(text(&c, "1240105"), "\"2024-01-05\"");
    }
}
