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
mod forms;
mod numbers;
mod params;
mod text;

pub use codes::UnknownCode;
pub use dates::{DateFormat, TimeFormat, date_header_forms, decode_date, is_valid_date};
pub use forms::{TextFormat, check_decimal, parse_datetime};
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
    /// What a stored value the codec cannot decode becomes.
    pub on_invalid: OnInvalid,
    /// Never write the stored value into a log line.
    pub sensitive: bool,
}

impl ColumnCodec {
    pub fn new(ty: ColumnType) -> Self {
        Self {
            ty,
            trim: Trim::None,
            null_if: Vec::new(),
            nullable: true,
            on_invalid: OnInvalid::Error,
            sensitive: false,
        }
    }

    /// A stored value's text, trimmed as the column says: what `on_invalid = "raw"` serves.
    pub fn raw_text(&self, cell: Cell<'_>) -> Option<String> {
        match cell {
            Cell::Null => None,
            Cell::Text(b) | Cell::Binary(b) => {
                Some(text::trim(&String::from_utf8_lossy(b), self.trim).to_string())
            }
            typed => {
                let mut s = String::new();
                typed.write_text(&mut s).ok()?;
                Some(s)
            }
        }
    }
}

/// What a column serves for a stored value its codec cannot decode (`on_invalid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnInvalid {
    /// Fail the request (500 `undecodable-value`): the default.
    #[default]
    Error,
    /// Serve null in its place.
    Null,
    /// Serve the stored value as text (trimmed as the column says).
    Raw,
}

impl OnInvalid {
    pub const NAMES: [&'static str; 3] = ["error", "null", "raw"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "error" => Some(Self::Error),
            "null" => Some(Self::Null),
            "raw" => Some(Self::Raw),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Null => "null",
            Self::Raw => "raw",
        }
    }
}

/// A value as the source returned it: text or bytes (what an ODBC fetch gives), or a typed
/// value (what SQL Server's protocol carries), which a codec takes as it is when it can and
/// otherwise reads in its text form ([`Cell::write_text`]), as if a text source had sent it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'a> {
    Null,
    Text(&'a [u8]),
    Binary(&'a [u8]),
    Int(i64),
    /// A finite float.
    Float(f64),
    Bool(bool),
    /// An exact decimal, `digits` × 10^-`scale`, with every digit (`scale` at most 38).
    Decimal {
        digits: i128,
        scale: u8,
    },
}

impl Cell<'_> {
    /// The text form of a typed value: what a source that fetches text hands over (the
    /// integer's digits, the float's shortest round-trip form, `1`/`0`, every digit of a
    /// decimal). Nothing for null, text and bytes.
    pub fn write_text(&self, w: &mut impl std::fmt::Write) -> std::fmt::Result {
        match *self {
            Cell::Int(v) => write!(w, "{v}"),
            Cell::Float(v) => write!(w, "{v:?}"),
            Cell::Bool(b) => w.write_str(if b { "1" } else { "0" }),
            Cell::Decimal { digits, scale } => numbers::write_exact(w, digits, scale, 0),
            Cell::Null | Cell::Text(_) | Cell::Binary(_) => Ok(()),
        }
    }
}

/// A stored value the column's codec cannot decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub reason: String,
}

impl DecodeError {
    /// What kind of bad value it is, in a word a DBA recognises (for `patina scan` and logs):
    /// `blank`, `impossible date`, `month out of range`, `impossible time`, `non-numeric`,
    /// `fractional`, `unknown code`, `null`, `not UTF-8`, `too long`, or `other`. `stored` is
    /// the value's text as stored.
    pub fn kind(&self, stored: Option<&str>) -> &'static str {
        let r = self.reason.as_str();
        if stored.is_some_and(|s| s.trim().is_empty()) {
            return "blank";
        }
        if r.contains("month") && r.contains("out of range") {
            "month out of range"
        } else if r.contains("not a valid calendar date")
            || r.contains("not a YYYY-MM-DD date")
            || r.contains("digits for CYYMMDD")
        {
            "impossible date"
        } else if r.contains("time") {
            "impossible time"
        } else if r.contains("fractional part") {
            "fractional"
        } else if r.contains("not a number")
            || r.contains("not an integer")
            || r.contains("not a decimal")
            || r.contains("is negative")
        {
            "non-numeric"
        } else if r.contains("not in the map") || r.contains("known flag value") {
            "unknown code"
        } else if r.contains("nullable = false") {
            "null"
        } else if r.contains("UTF-8") {
            "not UTF-8"
        } else if r.contains("longer than") || r.contains("38 digits") {
            "too long"
        } else {
            "other"
        }
    }
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
            typed => return self.write_typed(typed, out),
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            return fail("the stored text is not valid UTF-8");
        };
        let text = text::trim(text, self.trim);
        if self.null_if.iter().any(|n| n == text) {
            out.extend_from_slice(b"null");
            return Ok(());
        }
        self.write_text(text, out)
    }

    /// A typed value: written as it is where the codec takes it so (an integer as an integer,
    /// a decimal's digits exactly, a bit as a boolean), else read in its text form like a
    /// text source's value. `null_if` compares with the text form.
    fn write_typed(&self, cell: Cell<'_>, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        if self.null_if.is_empty() && self.write_direct(cell, out) {
            return Ok(());
        }
        let mut form = text::Scratch::default();
        if cell.write_text(&mut form).is_err() {
            return fail("the decimal has more than 38 digits after the point");
        }
        let text = form.as_str();
        if self.null_if.iter().any(|n| n == text) {
            out.extend_from_slice(b"null");
            return Ok(());
        }
        if self.write_direct(cell, out) {
            return Ok(());
        }
        self.write_text(text, out)
    }

    /// Write a typed value the codec takes as it is; false (nothing written) when it must go
    /// through its text form instead, which also gives the same errors as text would.
    fn write_direct(&self, cell: Cell<'_>, out: &mut Vec<u8>) -> bool {
        match (&self.ty, cell) {
            (ColumnType::Integer, Cell::Int(v)) => write_display(out, v),
            (ColumnType::Integer, Cell::Decimal { digits, scale }) => {
                match numbers::whole(digits, scale) {
                    Some(v) => write_display(out, v),
                    None => return false,
                }
            }
            (ColumnType::Number, Cell::Float(v)) if v.is_finite() => write_display(out, v),
            (ColumnType::Decimal { scale, as_string }, Cell::Decimal { digits, scale: s }) => {
                return numbers::write_decimal_exact(digits, s, *scale, *as_string, out);
            }
            (ColumnType::Decimal { scale, as_string }, Cell::Int(v)) => {
                return numbers::write_decimal_exact(i128::from(v), 0, *scale, *as_string, out);
            }
            // A bit is true or false by itself, unless the mapping's lists say what 1 and 0
            // mean (then the text form goes through them, as it does over ODBC).
            (
                ColumnType::Boolean {
                    true_values,
                    false_values,
                },
                Cell::Bool(b),
            ) if !true_values
                .iter()
                .chain(false_values)
                .any(|v| matches!(v.trim(), "0" | "1")) =>
            {
                out.extend_from_slice(if b { b"true" } else { b"false" });
            }
            _ => return false,
        }
        true
    }

    /// Write a value from its (trimmed, non-null) stored text.
    fn write_text(&self, text: &str, out: &mut Vec<u8>) -> Result<(), DecodeError> {
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
    fn an_undecodable_value_says_what_kind_it_is() {
        let kind = |ty: ColumnType, stored: &str| {
            let c = ColumnCodec {
                trim: Trim::Both,
                ..ColumnCodec::new(ty)
            };
            let e = json(&c, Cell::Text(stored.as_bytes())).expect_err(stored);
            e.kind(Some(stored))
        };
        let cyymmdd = || ColumnType::Date(DateFormat::Cyymmdd);
        assert_eq!(kind(cyymmdd(), "1230229"), "impossible date");
        assert_eq!(kind(cyymmdd(), "1241301"), "month out of range");
        assert_eq!(kind(cyymmdd(), "12400105"), "impossible date");
        assert_eq!(
            kind(ColumnType::Time(TimeFormat::Hhmmss), "240000"),
            "impossible time"
        );
        assert_eq!(kind(ColumnType::Integer, "AB12"), "non-numeric");
        assert_eq!(kind(ColumnType::Integer, "1.5"), "fractional");
        assert_eq!(kind(ColumnType::Integer, "   "), "blank");
        let codes = ColumnType::Code {
            codes: vec![("Y".into(), "yes".into())],
            unknown: UnknownCode::Error,
        };
        assert_eq!(kind(codes, "Q"), "unknown code");
    }

    #[test]
    fn raw_text_is_trimmed_as_the_column_says() {
        let c = ColumnCodec {
            trim: Trim::End,
            ..ColumnCodec::new(ColumnType::Integer)
        };
        assert_eq!(c.raw_text(Cell::Text(b"AB12  ")).as_deref(), Some("AB12"));
        assert_eq!(c.raw_text(Cell::Int(7)).as_deref(), Some("7"));
        assert_eq!(c.raw_text(Cell::Null), None);
    }

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

#[cfg(test)]
mod typed_tests {
    use super::test_support::json;
    use super::*;

    fn typed(codec: &ColumnCodec, cell: Cell<'_>) -> String {
        json(codec, cell).expect("decodes")
    }

    fn decimal(scale: Option<u8>, as_string: bool) -> ColumnCodec {
        ColumnCodec::new(ColumnType::Decimal { scale, as_string })
    }

    #[test]
    fn integers_stay_integers() {
        let c = ColumnCodec::new(ColumnType::Integer);
        assert_eq!(typed(&c, Cell::Int(i64::MIN)), "-9223372036854775808");
        assert_eq!(
            typed(
                &c,
                Cell::Decimal {
                    digits: 1_200,
                    scale: 2
                }
            ),
            "12"
        );
        let e = json(
            &c,
            Cell::Decimal {
                digits: 1_250,
                scale: 2,
            },
        )
        .expect_err("fraction");
        assert!(e.reason.contains("`12.50` has a fractional part"), "{e:?}");
        // A string column gets the number's text.
        let s = ColumnCodec::new(ColumnType::String);
        assert_eq!(typed(&s, Cell::Int(-7)), "\"-7\"");
        assert_eq!(typed(&s, Cell::Float(0.25)), "\"0.25\"");
    }

    #[test]
    fn decimals_keep_their_digits_and_scale() {
        let c = decimal(None, false);
        let max = 99_999_999_999_999_999_999_999_999_999_999_999_999;
        assert_eq!(
            typed(
                &c,
                Cell::Decimal {
                    digits: max,
                    scale: 10
                }
            ),
            "9999999999999999999999999999.9999999999"
        );
        assert_eq!(
            typed(
                &c,
                Cell::Decimal {
                    digits: -max,
                    scale: 38
                }
            ),
            "-0.99999999999999999999999999999999999999"
        );
        assert_eq!(
            typed(
                &c,
                Cell::Decimal {
                    digits: -5,
                    scale: 3
                }
            ),
            "-0.005"
        );
        assert_eq!(
            typed(
                &c,
                Cell::Decimal {
                    digits: 0,
                    scale: 2
                }
            ),
            "0.00"
        );
        assert_eq!(typed(&c, Cell::Int(42)), "42");
        // Money: a scale of 4, padded or not, never rounded.
        let money = Cell::Decimal {
            digits: 125_000,
            scale: 4,
        };
        assert_eq!(typed(&c, money), "12.5000");
        assert_eq!(typed(&decimal(Some(2), true), money), "\"12.5000\"");
        assert_eq!(typed(&decimal(Some(6), false), money), "12.500000");
        assert_eq!(typed(&decimal(Some(2), false), Cell::Int(7)), "7.00");
        assert!(
            json(
                &c,
                Cell::Decimal {
                    digits: 1,
                    scale: 39
                }
            )
            .is_err()
        );
        // Every decimal's text form reads back the same through the text path.
        for (digits, scale) in [(max, 0), (-max, 38), (1_050, 2), (-1, 0), (7, 5)] {
            let cell = Cell::Decimal { digits, scale };
            let mut text = String::new();
            cell.write_text(&mut text).expect("text");
            assert_eq!(typed(&c, cell), typed(&c, Cell::Text(text.as_bytes())));
        }
    }

    #[test]
    fn floats_and_bits() {
        let n = ColumnCodec::new(ColumnType::Number);
        assert_eq!(typed(&n, Cell::Float(-2.5)), "-2.5");
        assert_eq!(typed(&n, Cell::Int(3)), "3");
        assert!(json(&n, Cell::Float(f64::NAN)).is_err());
        let flags = ColumnCodec::new(ColumnType::Boolean {
            true_values: ColumnType::default_true_values(),
            false_values: ColumnType::default_false_values(),
        });
        assert_eq!(typed(&flags, Cell::Bool(true)), "true");
        assert_eq!(typed(&flags, Cell::Bool(false)), "false");
        // A bit is a boolean when the legacy lists do not speak of 1 and 0 ...
        let yn = ColumnCodec::new(ColumnType::Boolean {
            true_values: vec!["Y".into()],
            false_values: vec!["N".into()],
        });
        assert_eq!(typed(&yn, Cell::Bool(true)), "true");
        // ... and what the lists say when they do, as over ODBC.
        let inverted = ColumnCodec::new(ColumnType::Boolean {
            true_values: vec!["0".into()],
            false_values: vec!["1".into()],
        });
        assert_eq!(typed(&inverted, Cell::Bool(true)), "false");
        assert_eq!(typed(&inverted, Cell::Bool(false)), "true");
        // A number in a flag column matches its text.
        assert_eq!(typed(&flags, Cell::Int(1)), "true");
        assert!(json(&yn, Cell::Int(1)).is_err());
    }

    #[test]
    fn codes_dates_and_sentinels_read_the_number_s_text() {
        let codes = ColumnCodec::new(ColumnType::Code {
            codes: vec![("1".into(), "open".into()), ("2".into(), "closed".into())],
            unknown: UnknownCode::Error,
        });
        assert_eq!(typed(&codes, Cell::Int(2)), "\"closed\"");
        assert_eq!(
            typed(
                &codes,
                Cell::Decimal {
                    digits: 1,
                    scale: 0
                }
            ),
            "\"open\""
        );
        assert!(json(&codes, Cell::Int(3)).is_err());
        let date = ColumnCodec::new(ColumnType::Date(DateFormat::Cyymmdd));
        assert_eq!(typed(&date, Cell::Int(1_240_105)), "\"2024-01-05\"");
        assert_eq!(typed(&date, Cell::Int(0)), "null");
        let mut zero_is_null = ColumnCodec::new(ColumnType::Integer);
        zero_is_null.null_if = vec!["0".into()];
        assert_eq!(typed(&zero_is_null, Cell::Int(0)), "null");
        assert_eq!(typed(&zero_is_null, Cell::Int(5)), "5");
        let mut not_null = ColumnCodec::new(ColumnType::Integer);
        not_null.nullable = false;
        assert_eq!(typed(&not_null, Cell::Int(0)), "0");
    }
}
