//! Parameters: request text → a value to bind. The declared types with their constraints,
//! the legacy encodings of dates, flags and codes, and LIKE patterns that take the caller's
//! wildcards literally. Errors are sentences for the client.

use super::dates::{DateFormat, TimeFormat, parse_iso_date};
use super::forms::{TextFormat, check_decimal, encode_time, parse_datetime};

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
    /// An exact decimal, bound as its text with every digit; a digit beyond the column's
    /// `precision` or `scale` is refused, never rounded away.
    Decimal {
        precision: Option<u8>,
        scale: Option<u8>,
    },
    String {
        min_length: Option<usize>,
        max_length: Option<usize>,
        pattern: Option<regex::Regex>,
        /// Bound as a LIKE pattern: the text taken literally, wildcards added around it.
        like: Option<Like>,
        /// A format the text must have (email, phone).
        format: Option<TextFormat>,
        /// Pad with spaces to `max_length`, as a legacy CHAR column stores it.
        pad: bool,
    },
    /// `true`/`false` (also `1`/`0`); bound as the given legacy values, or as 1/0.
    Boolean {
        true_value: Option<String>,
        false_value: Option<String>,
    },
    /// ISO 8601 `YYYY-MM-DD`, bound in the column's legacy form.
    Date(DateFormat),
    /// ISO 8601 date and time, bound as `YYYY-MM-DD hh:mm:ss[.f…]`.
    DateTime,
    /// `hh:mm[:ss]`, bound in the column's form.
    Time(TimeFormat),
    /// A word from the map, bound as its stored code.
    Code { codes: Vec<(String, String)> },
}

impl ParamType {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Integer { .. } => "integer",
            Self::Number { .. } => "number",
            Self::Decimal { .. } => "decimal",
            Self::String { .. } => "string",
            Self::Boolean { .. } => "boolean",
            Self::Date(_) => "date",
            Self::DateTime => "datetime",
            Self::Time(_) => "time",
            Self::Code { .. } => "code",
        }
    }

    /// The SQL type NULL is bound as when the parameter is absent.
    pub fn null_kind(&self) -> BindKind {
        match self {
            Self::Integer { .. }
            | Self::Date(DateFormat::Cyymmdd | DateFormat::Yyyymmdd)
            | Self::Time(TimeFormat::Hhmmss)
            | Self::Boolean {
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
            Self::Decimal { precision, scale } => {
                check_decimal(raw, *precision, *scale).map(BindValue::Text)
            }
            Self::DateTime => parse_datetime(raw).map(BindValue::Text),
            Self::Time(format) => encode_time(raw, *format),
            Self::String {
                min_length,
                max_length,
                pattern,
                like,
                format,
                pad,
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
                if let Some(f) = format {
                    f.check(raw)?;
                }
                Ok(BindValue::Text(match (like, max_length) {
                    (Some(l), _) => l.pattern(raw),
                    (None, Some(max)) if *pad => {
                        let mut padded = raw.to_string();
                        padded.extend(std::iter::repeat_n(' ', max - len));
                        padded
                    }
                    (None, _) => raw.to_string(),
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
    use crate::codec::decode_date;

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
            format: None,
            pad: false,
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
            format: None,
            pad: false,
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
            format: None,
            pad: false,
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
