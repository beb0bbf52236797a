//! Legacy value codecs, both ways: column codecs turn what the database returned (padded CHAR,
//! CYYMMDD numbers, code letters, exact decimals) into JSON; parameter codecs turn request text
//! into typed values to bind (an ISO date into CYYMMDD, a code word into its letter). Pure: no
//! IO, no knowledge of HTTP or of drivers.

use std::fmt::Write as _;

use base64::Engine as _;

/// How a legacy date is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateFormat {
    /// A date the driver returns as `YYYY-MM-DD` (or a timestamp, whose date part is taken).
    Iso,
    /// IBM i style number: century digit (0 = 19xx, 1 = 20xx, …), then YYMMDD. 0 is no date.
    Cyymmdd,
    /// Number YYYYMMDD. 0 is no date.
    Yyyymmdd,
}

impl DateFormat {
    pub const NAMES: [&'static str; 3] = ["iso", "cyymmdd", "yyyymmdd"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "iso" => Some(Self::Iso),
            "cyymmdd" => Some(Self::Cyymmdd),
            "yyyymmdd" => Some(Self::Yyyymmdd),
            _ => None,
        }
    }
}

/// How a legacy time of day is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFormat {
    /// `hh:mm:ss` as the driver returns it.
    Iso,
    /// Number HHMMSS (e.g. 93000 is 09:30:00).
    Hhmmss,
}

impl TimeFormat {
    pub const NAMES: [&'static str; 2] = ["iso", "hhmmss"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "iso" => Some(Self::Iso),
            "hhmmss" => Some(Self::Hhmmss),
            _ => None,
        }
    }
}

/// What a code column does with a letter its map does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownCode {
    /// Pass the (trimmed) stored value through.
    Raw,
    /// Return null.
    Null,
    /// Fail the request (500), naming the column.
    Error,
}

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

/// Which padding to remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    None,
    /// Trailing spaces only (what CHAR padding adds).
    End,
    Both,
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
                    out.push(b'"');
                    out.extend_from_slice(
                        base64::engine::general_purpose::STANDARD
                            .encode(b)
                            .as_bytes(),
                    );
                    out.push(b'"');
                    return Ok(());
                }
                b
            }
            Cell::Text(b) => b,
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            return fail("the stored text is not valid UTF-8");
        };
        let text = match self.trim {
            Trim::None => text,
            Trim::End => text.trim_end_matches([' ', '\0']),
            Trim::Both => text.trim_matches([' ', '\0']),
        };
        if self.null_if.iter().any(|n| n == text) {
            out.extend_from_slice(b"null");
            return Ok(());
        }
        match &self.ty {
            ColumnType::String => write_json_string(text, out),
            ColumnType::Integer => {
                let v = parse_integer(text)?;
                write_display(out, v);
            }
            ColumnType::Number => {
                let v: f64 = text
                    .trim()
                    .parse()
                    .or_else(|_| fail(format!("`{}` is not a number", clip(text))))?;
                if !v.is_finite() {
                    return fail("the number is not finite");
                }
                write_display(out, v);
            }
            ColumnType::Decimal { scale, as_string } => {
                let d = normalize_decimal(text, *scale)?;
                if *as_string {
                    write_json_string(&d, out);
                } else {
                    out.extend_from_slice(d.as_bytes());
                }
            }
            ColumnType::Boolean {
                true_values,
                false_values,
            } => {
                let t = text.trim();
                if true_values.iter().any(|v| v == t) {
                    out.extend_from_slice(b"true");
                } else if false_values.iter().any(|v| v == t) {
                    out.extend_from_slice(b"false");
                } else {
                    return fail(format!("`{}` is not a known flag value", clip(t)));
                }
            }
            ColumnType::Date(format) => match decode_date(text, *format)? {
                Some((y, m, d)) => {
                    let _ = write!(Adapter(out), "\"{y:04}-{m:02}-{d:02}\"");
                }
                None => out.extend_from_slice(b"null"),
            },
            ColumnType::Time(format) => {
                let (h, m, s) = decode_time(text, *format)?;
                let _ = write!(Adapter(out), "\"{h:02}:{m:02}:{s:02}\"");
            }
            ColumnType::DateTime => {
                let v = decode_datetime(text)?;
                write_json_string(&v, out);
            }
            ColumnType::Code { codes, unknown } => {
                let t = text.trim();
                match codes.iter().find(|(k, _)| k == t) {
                    Some((_, word)) => write_json_string(word, out),
                    None => match unknown {
                        UnknownCode::Raw => write_json_string(t, out),
                        UnknownCode::Null => out.extend_from_slice(b"null"),
                        UnknownCode::Error => {
                            return fail(format!("code `{}` is not in the map", clip(t)));
                        }
                    },
                }
            }
            ColumnType::Binary => {
                out.push(b'"');
                out.extend_from_slice(
                    base64::engine::general_purpose::STANDARD
                        .encode(text.as_bytes())
                        .as_bytes(),
                );
                out.push(b'"');
            }
        }
        Ok(())
    }
}

struct Adapter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Adapter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Append a value's `Display` text to a byte buffer.
pub fn write_display(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    let _ = write!(Adapter(out), "{v}");
}

/// Short excerpt of a stored value for an error message (logged, not sent to clients).
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Append `s` as a JSON string literal.
pub fn write_json_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(Adapter(out), "\\u{b:04x}");
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// An integer, also accepting a decimal rendering with only zero decimals (`12.00`), which is
/// how some drivers return NUMERIC(p,0) and DECIMAL columns.
fn parse_integer(text: &str) -> Result<i64, DecodeError> {
    let t = text.trim();
    let int_part = match t.split_once('.') {
        Some((i, frac)) if frac.bytes().all(|b| b == b'0') => i,
        Some(_) => return fail(format!("`{}` has a fractional part", clip(t))),
        None => t,
    };
    int_part
        .parse::<i64>()
        .or_else(|_| fail(format!("`{}` is not an integer", clip(t))))
}

/// Validate decimal text and bring it into canonical JSON number form without changing its
/// value: no leading `+`, no superfluous leading zeros, a leading `0` before `.`, padded to
/// `scale` decimals when asked. Never rounds.
pub fn normalize_decimal(text: &str, scale: Option<u8>) -> Result<String, DecodeError> {
    let t = text.trim();
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    // Some drivers render small values in exponent form (`1E-4`): expand it exactly.
    let expanded;
    let body = if let Some(pos) = body.find(['e', 'E']) {
        expanded = expand_exponent(&body[..pos], &body[pos + 1..]).ok_or_else(|| DecodeError {
            reason: format!("`{}` is not a decimal", clip(t)),
        })?;
        expanded.as_str()
    } else {
        body
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let valid = !(int.is_empty() && frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return fail(format!("`{}` is not a decimal", clip(t)));
    }
    let int = int.trim_start_matches('0');
    let mut out = String::with_capacity(t.len() + 4);
    let zero = int.is_empty() && frac.bytes().all(|b| b == b'0');
    if neg && !zero {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    let want = scale.map_or(0, usize::from);
    if !frac.is_empty() || want > 0 {
        out.push('.');
        out.push_str(frac);
        for _ in frac.len()..want {
            out.push('0');
        }
    }
    Ok(out)
}

fn expand_exponent(mantissa: &str, exp: &str) -> Option<String> {
    let exp: i32 = exp.parse().ok()?;
    if exp.abs() > 400 {
        return None;
    }
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{int}{frac}");
    let point = i32::try_from(int.len()).ok()? + exp;
    let Ok(at) = usize::try_from(point) else {
        let zeros = usize::try_from(point.unsigned_abs()).ok()?;
        return Some(format!("0.{}{digits}", "0".repeat(zeros)));
    };
    if at == 0 {
        Some(format!("0.{digits}"))
    } else if at >= digits.len() {
        Some(format!("{digits}{}", "0".repeat(at - digits.len())))
    } else {
        let (a, b) = digits.split_at(at);
        Some(format!("{a}.{b}"))
    }
}

pub fn is_valid_date(y: i64, m: i64, d: i64) -> bool {
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    d <= days
}

/// Decode a stored date; `None` is "no date" (0 in the numeric formats).
pub fn decode_date(text: &str, format: DateFormat) -> Result<Option<(i64, i64, i64)>, DecodeError> {
    let t = text.trim();
    let (y, m, d) = match format {
        DateFormat::Iso => {
            let date = t.get(..10).unwrap_or(t);
            let parts: Vec<&str> = date.split('-').collect();
            let [y, m, d] = parts.as_slice() else {
                return fail(format!("`{}` is not a YYYY-MM-DD date", clip(t)));
            };
            let num = |s: &str| s.parse::<i64>().ok();
            match (num(y), num(m), num(d)) {
                (Some(y), Some(m), Some(d)) => (y, m, d),
                _ => return fail(format!("`{}` is not a YYYY-MM-DD date", clip(t))),
            }
        }
        DateFormat::Cyymmdd | DateFormat::Yyyymmdd => {
            let v = parse_integer(t)?;
            if v == 0 {
                return Ok(None);
            }
            if v < 0 {
                return fail(format!("`{}` is negative", clip(t)));
            }
            let (y, m, d) = (v / 10_000, (v / 100) % 100, v % 100);
            let y = if format == DateFormat::Cyymmdd {
                if y > 999 {
                    return fail(format!("`{}` has more than 7 digits for CYYMMDD", clip(t)));
                }
                1900 + y
            } else {
                y
            };
            (y, m, d)
        }
    };
    if !is_valid_date(y, m, d) {
        return fail(format!("`{}` is not a valid calendar date", clip(t)));
    }
    Ok(Some((y, m, d)))
}

fn decode_time(text: &str, format: TimeFormat) -> Result<(i64, i64, i64), DecodeError> {
    let t = text.trim();
    let (h, m, s) = match format {
        TimeFormat::Hhmmss => {
            let v = parse_integer(t)?;
            (v / 10_000, (v / 100) % 100, v % 100)
        }
        TimeFormat::Iso => {
            let hms = t.get(..8).unwrap_or(t);
            let parts: Vec<Option<i64>> = hms.split(':').map(|p| p.parse().ok()).collect();
            match parts.as_slice() {
                [Some(h), Some(m), Some(s)] => (*h, *m, *s),
                _ => return fail(format!("`{}` is not an hh:mm:ss time", clip(t))),
            }
        }
    };
    if !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..60).contains(&s) {
        return fail(format!("`{}` is not a valid time of day", clip(t)));
    }
    Ok((h, m, s))
}

fn decode_datetime(text: &str) -> Result<String, DecodeError> {
    let t = text.trim();
    let Some((y, m, d)) = decode_date(t, DateFormat::Iso)? else {
        return fail("no date");
    };
    let rest = t.get(10..).unwrap_or("").trim_start_matches([' ', 'T']);
    if rest.is_empty() {
        return Ok(format!("{y:04}-{m:02}-{d:02}T00:00:00"));
    }
    let (h, mi, s) = decode_time(rest, TimeFormat::Iso)?;
    let after = rest.get(8..).unwrap_or("");
    // An offset, when the type carries one: `Z`, `+05:30`, `-0800`, `+00`.
    let (frac, zone) = match after.find(['+', '-', 'Z']) {
        Some(i) => (after[..i].trim_end(), offset(&after[i..], t)?),
        None => (after, String::new()),
    };
    let frac = frac.trim_end_matches('0');
    let frac = if frac == "." { "" } else { frac };
    let digits_after_dot = frac.starts_with('.') && frac[1..].bytes().all(|b| b.is_ascii_digit());
    if !(frac.is_empty() || digits_after_dot) {
        return fail(format!("`{}` is not a timestamp", clip(t)));
    }
    Ok(format!(
        "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{zone}"
    ))
}

/// A UTC offset in RFC 3339 form (`Z` or `±hh:mm`).
fn offset(text: &str, whole: &str) -> Result<String, DecodeError> {
    if text == "Z" {
        return Ok("Z".into());
    }
    let (sign, digits) = text.split_at(1);
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    let (h, m) = match digits.len() {
        2 => (digits.as_str(), "00"),
        4 => digits.split_at(2),
        _ => return fail(format!("`{}` has an unreadable UTC offset", clip(whole))),
    };
    match (h.parse::<u8>(), m.parse::<u8>()) {
        (Ok(hh), Ok(mm)) if hh <= 14 && mm < 60 => Ok(format!("{sign}{hh:02}:{mm:02}")),
        _ => fail(format!("`{}` has an unreadable UTC offset", clip(whole))),
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters: request text → value to bind

/// A value ready to be bound as a statement parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum BindValue {
    Null(BindKind),
    Int(i64),
    Float(f64),
    Text(String),
}

/// The SQL type a parameter is bound as (also for NULL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindKind {
    Int,
    Float,
    Text,
}

/// The character a mapping's SQL names in `LIKE :p ESCAPE '!'`.
pub const LIKE_ESCAPE: char = '!';

/// Where a `like` parameter's text must stand in the matched value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LikeAt {
    Prefix,
    Contains,
    Suffix,
}

/// A string parameter matched with LIKE: `%` and `_` in the caller's text are escaped (with
/// [`LIKE_ESCAPE`]), so they match themselves, and the wildcards the mapping asks for are
/// added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Like {
    pub at: LikeAt,
    /// SQL Server reads `[...]` as a character class: escape `[` too.
    pub brackets: bool,
}

impl Like {
    pub fn pattern(self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 4);
        if matches!(self.at, LikeAt::Contains | LikeAt::Suffix) {
            out.push('%');
        }
        for c in text.chars() {
            if c == '%' || c == '_' || c == LIKE_ESCAPE || (self.brackets && c == '[') {
                out.push(LIKE_ESCAPE);
            }
            out.push(c);
        }
        if matches!(self.at, LikeAt::Contains | LikeAt::Prefix) {
            out.push('%');
        }
        out
    }

    /// The caller's text back from a pattern (documenting defaults).
    pub fn text(self, pattern: &str) -> String {
        let inner = match self.at {
            LikeAt::Prefix => pattern.strip_suffix('%'),
            LikeAt::Suffix => pattern.strip_prefix('%'),
            LikeAt::Contains => pattern.strip_prefix('%').and_then(|p| p.strip_suffix('%')),
        }
        .unwrap_or(pattern);
        let mut out = String::with_capacity(inner.len());
        let mut escaped = false;
        for c in inner.chars() {
            if c == LIKE_ESCAPE && !escaped {
                escaped = true;
                continue;
            }
            escaped = false;
            out.push(c);
        }
        out
    }
}

/// The declared type of a route parameter, with its constraints.
#[derive(Clone, Debug)]
pub enum ParamType {
    Integer {
        minimum: Option<i64>,
        maximum: Option<i64>,
    },
    Number {
        minimum: Option<f64>,
        maximum: Option<f64>,
    },
    String {
        min_length: Option<usize>,
        max_length: Option<usize>,
        pattern: Option<regex::Regex>,
        /// Bound as a LIKE pattern: the text taken literally, wildcards added around it.
        like: Option<Like>,
    },
    /// `true`/`false` (also `1`/`0`); bound as the given legacy values, or as 1/0.
    Boolean {
        true_value: Option<String>,
        false_value: Option<String>,
    },
    /// ISO 8601 `YYYY-MM-DD`, bound in the column's legacy form.
    Date(DateFormat),
    /// A word from the map, bound as its stored code.
    Code { codes: Vec<(String, String)> },
}

impl ParamType {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Integer { .. } => "integer",
            Self::Number { .. } => "number",
            Self::String { .. } => "string",
            Self::Boolean { .. } => "boolean",
            Self::Date(_) => "date",
            Self::Code { .. } => "code",
        }
    }

    /// The SQL type NULL is bound as when the parameter is absent.
    pub fn null_kind(&self) -> BindKind {
        match self {
            Self::Integer { .. } | Self::Date(DateFormat::Cyymmdd | DateFormat::Yyyymmdd) => {
                BindKind::Int
            }
            Self::Boolean {
                true_value: None, ..
            } => BindKind::Int,
            Self::Number { .. } => BindKind::Float,
            _ => BindKind::Text,
        }
    }

    /// Parse and check request text. The error is a sentence for the client.
    pub fn parse(&self, raw: &str) -> Result<BindValue, String> {
        match self {
            Self::Integer { minimum, maximum } => {
                let v: i64 = raw
                    .parse()
                    .map_err(|_| "must be a whole number".to_string())?;
                within(v, *minimum, *maximum)?;
                Ok(BindValue::Int(v))
            }
            Self::Number { minimum, maximum } => {
                let v: f64 = raw
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite() && !raw.contains(['i', 'I', 'n', 'N']))
                    .ok_or_else(|| "must be a number".to_string())?;
                within(v, *minimum, *maximum)?;
                Ok(BindValue::Float(v))
            }
            Self::String {
                min_length,
                max_length,
                pattern,
                like,
            } => {
                let len = raw.chars().count();
                if let Some(min) = min_length
                    && len < *min
                {
                    return Err(format!("must be at least {min} characters long"));
                }
                if let Some(max) = max_length
                    && len > *max
                {
                    return Err(format!("must be at most {max} characters long"));
                }
                if raw.contains('\0') {
                    return Err("must not contain NUL characters".into());
                }
                if let Some(p) = pattern
                    && !p.is_match(raw)
                {
                    return Err(format!("must match the pattern {}", p.as_str()));
                }
                Ok(BindValue::Text(match like {
                    Some(l) => l.pattern(raw),
                    None => raw.to_string(),
                }))
            }
            Self::Boolean {
                true_value,
                false_value,
            } => {
                let b = match raw {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err("must be true or false".into()),
                };
                Ok(match (b, true_value, false_value) {
                    (true, Some(t), _) => BindValue::Text(t.clone()),
                    (false, _, Some(f)) => BindValue::Text(f.clone()),
                    (b, _, _) => BindValue::Int(i64::from(b)),
                })
            }
            Self::Date(format) => {
                let (y, m, d) = parse_iso_date(raw)
                    .ok_or_else(|| "must be a date in the form YYYY-MM-DD".to_string())?;
                encode_date(y, m, d, *format)
            }
            Self::Code { codes } => codes
                .iter()
                .find(|(word, _)| word == raw)
                .map(|(_, code)| BindValue::Text(code.clone()))
                .ok_or_else(|| {
                    let words: Vec<&str> = codes.iter().map(|(w, _)| w.as_str()).collect();
                    format!("must be one of: {}", words.join(", "))
                }),
        }
    }
}

/// Days since 1970-01-01 of a calendar date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DD` as seconds since the epoch (midnight UTC) and as an HTTP-date.
pub fn date_header_forms(iso: &str) -> Option<(i64, String)> {
    let (y, m, d) = parse_iso_date(iso)?;
    let days = days_from_civil(y, m, d);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
        [usize::try_from(days.rem_euclid(7)).ok()?];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][usize::try_from(m - 1).ok()?];
    Some((
        days * 86_400,
        format!("{weekday}, {d:02} {month} {y:04} 00:00:00 GMT"),
    ))
}

/// Check a value against optional inclusive bounds; the error is a sentence for the client.
fn within<T: PartialOrd + std::fmt::Display + Copy>(
    v: T,
    minimum: Option<T>,
    maximum: Option<T>,
) -> Result<(), String> {
    if let Some(min) = minimum
        && v < min
    {
        return Err(format!("must be at least {min}"));
    }
    if let Some(max) = maximum
        && v > max
    {
        return Err(format!("must be at most {max}"));
    }
    Ok(())
}

fn parse_iso_date(raw: &str) -> Option<(i64, i64, i64)> {
    let b = raw.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = raw[0..4].parse().ok()?;
    let m = raw[5..7].parse().ok()?;
    let d = raw[8..10].parse().ok()?;
    let digits = raw
        .bytes()
        .enumerate()
        .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    (digits && is_valid_date(y, m, d)).then_some((y, m, d))
}

/// Encode a calendar date in a legacy storage format.
pub fn encode_date(y: i64, m: i64, d: i64, format: DateFormat) -> Result<BindValue, String> {
    match format {
        DateFormat::Iso => Ok(BindValue::Text(format!("{y:04}-{m:02}-{d:02}"))),
        DateFormat::Yyyymmdd => Ok(BindValue::Int(y * 10_000 + m * 100 + d)),
        DateFormat::Cyymmdd => {
            if !(1900..=2899).contains(&y) {
                return Err("must be between 1900-01-01 and 2899-12-31 for this field".into());
            }
            Ok(BindValue::Int((y - 1900) * 10_000 + m * 100 + d))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(codec: &ColumnCodec, cell: Cell<'_>) -> Result<String, DecodeError> {
        let mut out = Vec::new();
        codec.write_json(cell, &mut out)?;
        Ok(String::from_utf8(out).expect("utf8"))
    }

    fn text(codec: &ColumnCodec, s: &str) -> String {
        json(codec, Cell::Text(s.as_bytes())).expect("decodes")
    }

    #[test]
    fn trims_padded_char_and_escapes() {
        let mut c = ColumnCodec::new(ColumnType::String);
        assert_eq!(text(&c, "AB  "), "\"AB  \"");
        c.trim = Trim::End;
        assert_eq!(text(&c, " AB  "), "\" AB\"");
        c.trim = Trim::Both;
        assert_eq!(text(&c, " A\"B\\\n\u{1}é  "), "\"A\\\"B\\\\\\n\\u0001é\"");
        assert_eq!(json(&c, Cell::Null).expect("null"), "null");
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
    fn integers() {
        let c = ColumnCodec::new(ColumnType::Integer);
        assert_eq!(text(&c, "42"), "42");
        assert_eq!(text(&c, " -7 "), "-7");
        assert_eq!(text(&c, "12.000"), "12");
        assert!(json(&c, Cell::Text(b"12.5")).is_err());
        assert!(json(&c, Cell::Text(b"abc")).is_err());
    }

    #[test]
    fn decimals_keep_every_digit() {
        let c = ColumnCodec::new(ColumnType::Decimal {
            scale: None,
            as_string: false,
        });
        assert_eq!(
            text(&c, "123456789012345678.1234"),
            "123456789012345678.1234"
        );
        assert_eq!(text(&c, "00012.50"), "12.50");
        assert_eq!(text(&c, "-.5"), "-0.5");
        assert_eq!(text(&c, "+3"), "3");
        assert_eq!(text(&c, "-0.00"), "0.00");
        assert_eq!(text(&c, "1E-4"), "0.0001");
        assert_eq!(text(&c, "1.5E3"), "1500");
        assert!(json(&c, Cell::Text(b"1.2.3")).is_err());
        assert!(json(&c, Cell::Text(b"12abc")).is_err());
        assert!(json(&c, Cell::Text(b"NaN")).is_err());
        let s = ColumnCodec::new(ColumnType::Decimal {
            scale: Some(2),
            as_string: true,
        });
        assert_eq!(text(&s, "6250"), "\"6250.00\"");
        assert_eq!(text(&s, "6250.5"), "\"6250.50\"");
        // padding never rounds away digits
        assert_eq!(text(&s, "1.23456"), "\"1.23456\"");
    }

    #[test]
    fn numbers() {
        let c = ColumnCodec::new(ColumnType::Number);
        assert_eq!(text(&c, "1.5"), "1.5");
        assert_eq!(text(&c, "2"), "2");
        assert!(json(&c, Cell::Text(b"inf")).is_err());
    }

    #[test]
    fn legacy_flags() {
        let c = ColumnCodec::new(ColumnType::Boolean {
            true_values: ColumnType::default_true_values(),
            false_values: ColumnType::default_false_values(),
        });
        assert_eq!(text(&c, "Y"), "true");
        assert_eq!(text(&c, "0"), "false");
        assert!(json(&c, Cell::Text(b"?")).is_err());
    }

    #[test]
    fn cyymmdd_dates_both_centuries_and_zero() {
        let c = ColumnCodec::new(ColumnType::Date(DateFormat::Cyymmdd));
        assert_eq!(text(&c, "1240105"), "\"2024-01-05\"");
        assert_eq!(text(&c, "981231"), "\"1998-12-31\"");
        assert_eq!(text(&c, "0"), "null");
        assert_eq!(text(&c, "1000229"), "\"2000-02-29\"");
        assert!(
            json(&c, Cell::Text(b"1010229")).is_err(),
            "2001 is no leap year"
        );
        assert!(json(&c, Cell::Text(b"1241301")).is_err());
        assert!(json(&c, Cell::Text(b"12401050")).is_err());
    }

    #[test]
    fn yyyymmdd_and_iso_dates() {
        let c = ColumnCodec::new(ColumnType::Date(DateFormat::Yyyymmdd));
        assert_eq!(text(&c, "20240105"), "\"2024-01-05\"");
        assert_eq!(text(&c, "0"), "null");
        let c = ColumnCodec::new(ColumnType::Date(DateFormat::Iso));
        assert_eq!(text(&c, "2024-01-05"), "\"2024-01-05\"");
        assert_eq!(text(&c, "2024-01-05 10:00:00"), "\"2024-01-05\"");
        assert!(json(&c, Cell::Text(b"2024-02-30")).is_err());
    }

    #[test]
    fn times_and_timestamps() {
        let c = ColumnCodec::new(ColumnType::Time(TimeFormat::Hhmmss));
        assert_eq!(text(&c, "93000"), "\"09:30:00\"");
        assert_eq!(text(&c, "0"), "\"00:00:00\"");
        assert!(json(&c, Cell::Text(b"246000")).is_err());
        let c = ColumnCodec::new(ColumnType::Time(TimeFormat::Iso));
        assert_eq!(text(&c, "23:59:59"), "\"23:59:59\"");
        let c = ColumnCodec::new(ColumnType::DateTime);
        assert_eq!(text(&c, "2024-01-05 10:11:12"), "\"2024-01-05T10:11:12\"");
        assert_eq!(
            text(&c, "2024-01-05 10:11:12.250000"),
            "\"2024-01-05T10:11:12.25\""
        );
        assert_eq!(text(&c, "2024-01-05"), "\"2024-01-05T00:00:00\"");
        // Offsets, as SQL Server and PostgreSQL print them.
        assert_eq!(
            text(&c, "2024-01-01 18:04:56.1234567 +05:30"),
            "\"2024-01-01T18:04:56.1234567+05:30\""
        );
        assert_eq!(
            text(&c, "2023-12-31 17:00:00-08"),
            "\"2023-12-31T17:00:00-08:00\""
        );
        assert_eq!(
            text(&c, "2023-12-31T17:00:00.500Z"),
            "\"2023-12-31T17:00:00.5Z\""
        );
        assert!(json(&c, Cell::Text(b"2023-12-31 17:00:00 +5")).is_err());
        assert!(json(&c, Cell::Text(b"2023-12-31 17:00:00 +25:00")).is_err());
    }

    #[test]
    fn code_letters() {
        let codes = vec![("R".to_string(), "released".to_string())];
        let mut c = ColumnCodec::new(ColumnType::Code {
            codes: codes.clone(),
            unknown: UnknownCode::Raw,
        });
        c.trim = Trim::End;
        assert_eq!(text(&c, "R "), "\"released\"");
        assert_eq!(text(&c, "X"), "\"X\"");
        c.ty = ColumnType::Code {
            codes: codes.clone(),
            unknown: UnknownCode::Null,
        };
        assert_eq!(text(&c, "X"), "null");
        c.ty = ColumnType::Code {
            codes,
            unknown: UnknownCode::Error,
        };
        assert!(json(&c, Cell::Text(b"X")).is_err());
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

    #[test]
    fn binary_is_base64() {
        let c = ColumnCodec::new(ColumnType::Binary);
        assert_eq!(
            json(&c, Cell::Binary(&[0, 255, 1])).expect("ok"),
            "\"AP8B\""
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let c = ColumnCodec::new(ColumnType::String);
        assert!(json(&c, Cell::Text(&[0xff, 0xfe])).is_err());
    }

    #[test]
    fn integer_params() {
        let t = ParamType::Integer {
            minimum: Some(1),
            maximum: Some(10),
        };
        assert_eq!(t.parse("5"), Ok(BindValue::Int(5)));
        assert!(t.parse("0").unwrap_err().contains("at least 1"));
        assert!(t.parse("11").unwrap_err().contains("at most 10"));
        assert!(t.parse("1 OR 1=1").is_err());
        assert!(t.parse("1.5").is_err());
        assert!(t.parse("99999999999999999999").is_err());
    }

    #[test]
    fn number_params() {
        let t = ParamType::Number {
            minimum: None,
            maximum: Some(2.5),
        };
        assert_eq!(t.parse("2.5"), Ok(BindValue::Float(2.5)));
        assert!(t.parse("2.6").is_err());
        assert!(t.parse("NaN").is_err());
        assert!(t.parse("inf").is_err());
    }

    #[test]
    fn string_params() {
        let t = ParamType::String {
            min_length: Some(2),
            max_length: Some(4),
            pattern: Some(regex::Regex::new("^[A-Z]+$").expect("regex")),
            like: None,
        };
        assert_eq!(t.parse("ABC"), Ok(BindValue::Text("ABC".into())));
        assert!(t.parse("A").is_err());
        assert!(t.parse("ABCDE").is_err());
        assert!(t.parse("abc").unwrap_err().contains("pattern"));
        let free = ParamType::String {
            min_length: None,
            max_length: None,
            pattern: None,
            like: None,
        };
        assert_eq!(
            free.parse("'; DROP TABLE x;--"),
            Ok(BindValue::Text("'; DROP TABLE x;--".into()))
        );
        assert!(free.parse("a\0b").is_err());
    }

    #[test]
    fn like_params_take_wildcards_literally() {
        let like = |at, brackets| ParamType::String {
            min_length: None,
            max_length: Some(5),
            pattern: None,
            like: Some(Like { at, brackets }),
        };
        let text = |t: &ParamType, raw: &str| match t.parse(raw) {
            Ok(BindValue::Text(s)) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(text(&like(LikeAt::Prefix, false), "BÄ"), "BÄ%");
        assert_eq!(text(&like(LikeAt::Prefix, false), ""), "%");
        assert_eq!(text(&like(LikeAt::Contains, false), "5%_!"), "%5!%!_!!%");
        assert_eq!(text(&like(LikeAt::Suffix, false), "[a]"), "%[a]");
        assert_eq!(text(&like(LikeAt::Suffix, true), "[a]"), "%![a]");
        // The length limit is on the caller's text, not on the pattern.
        assert!(like(LikeAt::Prefix, false).parse("%%%%%").is_ok());
        for at in [LikeAt::Prefix, LikeAt::Contains, LikeAt::Suffix] {
            let l = Like { at, brackets: true };
            for t in ["", "ab", "5%_!", "[x]", "!!%"] {
                assert_eq!(l.text(&l.pattern(t)), t, "{at:?} {t}");
            }
        }
    }

    #[test]
    fn boolean_params() {
        let t = ParamType::Boolean {
            true_value: Some("Y".into()),
            false_value: Some("N".into()),
        };
        assert_eq!(t.parse("true"), Ok(BindValue::Text("Y".into())));
        assert_eq!(t.parse("0"), Ok(BindValue::Text("N".into())));
        assert!(t.parse("yes").is_err());
        let plain = ParamType::Boolean {
            true_value: None,
            false_value: None,
        };
        assert_eq!(plain.parse("true"), Ok(BindValue::Int(1)));
        assert_eq!(plain.null_kind(), BindKind::Int);
    }

    #[test]
    fn date_params_encode_legacy_forms() {
        let t = ParamType::Date(DateFormat::Cyymmdd);
        assert_eq!(t.parse("2024-01-05"), Ok(BindValue::Int(1_240_105)));
        assert_eq!(t.parse("1998-12-31"), Ok(BindValue::Int(981_231)));
        assert!(t.parse("1899-12-31").is_err());
        assert!(t.parse("2024-02-30").is_err());
        assert!(t.parse("2024-1-5").is_err());
        assert!(t.parse("20240105").is_err());
        let t = ParamType::Date(DateFormat::Yyyymmdd);
        assert_eq!(t.parse("2024-01-05"), Ok(BindValue::Int(20_240_105)));
        let t = ParamType::Date(DateFormat::Iso);
        assert_eq!(
            t.parse("2024-01-05"),
            Ok(BindValue::Text("2024-01-05".into()))
        );
    }

    #[test]
    fn round_trip_cyymmdd() {
        for (y, m, d) in [(1900, 1, 1), (1999, 12, 31), (2000, 2, 29), (2899, 12, 31)] {
            let BindValue::Int(v) = encode_date(y, m, d, DateFormat::Cyymmdd).expect("enc") else {
                panic!("int expected")
            };
            assert_eq!(
                decode_date(&v.to_string(), DateFormat::Cyymmdd),
                Ok(Some((y, m, d)))
            );
        }
    }

    #[test]
    fn header_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            date_header_forms("2027-06-30"),
            Some((1_814_313_600, "Wed, 30 Jun 2027 00:00:00 GMT".to_string()))
        );
        assert_eq!(
            date_header_forms("2000-02-29").map(|d| d.1).as_deref(),
            Some("Tue, 29 Feb 2000 00:00:00 GMT")
        );
    }

    #[test]
    fn code_params() {
        let t = ParamType::Code {
            codes: vec![
                ("released".into(), "R".into()),
                ("on_hold".into(), "H".into()),
            ],
        };
        assert_eq!(t.parse("on_hold"), Ok(BindValue::Text("H".into())));
        assert_eq!(
            t.parse("R").unwrap_err(),
            "must be one of: released, on_hold"
        );
    }
}
