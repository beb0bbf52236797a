//! What forms need beyond plain parameters: exact decimals checked against a column's
//! precision and scale (never rounded), text formats (email, phone), ISO date-times, and
//! reading a JSON body value (its raw text, so a decimal keeps every digit) into a value to
//! bind with the same codecs a query parameter goes through. Errors are sentences for the
//! client; which field they belong to is the caller's.

use super::dates::{TimeFormat, parse_iso_date};
use super::params::{BindValue, ParamType};

/// A format a string must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextFormat {
    Email,
    /// Digits with the usual separators, optionally starting with `+`.
    Phone,
}

impl TextFormat {
    pub const NAMES: [&'static str; 2] = ["email", "phone"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Self::Email),
            "phone" => Some(Self::Phone),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }

    /// Check `text`; the error is a sentence for the client.
    pub fn check(self, text: &str) -> Result<(), String> {
        let ok = match self {
            Self::Email => is_email(text),
            Self::Phone => is_phone(text),
        };
        if ok {
            Ok(())
        } else {
            Err(match self {
                Self::Email => "must be an email address".into(),
                Self::Phone => {
                    "must be a phone number (digits, spaces, ( ) - . and a leading +)".into()
                }
            })
        }
    }
}

/// A plain address: one `@`, a local part, a domain with a dot, no spaces or controls.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && s.chars().all(|c| !c.is_whitespace() && !c.is_control())
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

fn is_phone(s: &str) -> bool {
    let rest = s.strip_prefix('+').unwrap_or(s);
    let digits = rest.chars().filter(char::is_ascii_digit).count();
    (6..=20).contains(&digits)
        && rest.len() <= 30
        && rest
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '(' | ')' | '-' | '.'))
}

/// Check decimal text against a precision and scale and return it in plain form (no `+`, no
/// needless leading zeros). Never rounds: a digit the column cannot hold is an error.
pub fn check_decimal(
    text: &str,
    precision: Option<u8>,
    scale: Option<u8>,
) -> Result<String, String> {
    const SHAPE: &str = "must be a decimal number like 12.50 (digits, an optional sign and point)";
    let (negative, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (body.contains('.') && frac.is_empty())
    {
        return Err(SHAPE.into());
    }
    let int = int.trim_start_matches('0');
    let frac_digits = frac.trim_end_matches('0');
    if let Some(s) = scale
        && frac_digits.len() > usize::from(s)
    {
        return Err(if s == 0 {
            "must be a whole number".into()
        } else {
            format!("must have at most {s} decimal places")
        });
    }
    if let Some(p) = precision {
        let int_room = usize::from(p.saturating_sub(scale.unwrap_or(0)));
        if int.len() > int_room {
            return Err(format!(
                "must have at most {int_room} digits before the decimal point"
            ));
        }
    }
    let mut out = String::with_capacity(text.len() + 1);
    if negative && !(int.is_empty() && frac_digits.is_empty()) {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac_digits.is_empty() {
        out.push('.');
        out.push_str(frac_digits);
    }
    Ok(out)
}

/// An ISO 8601 local date and time (`YYYY-MM-DDThh:mm[:ss[.f…]]`, a space for the `T`, an
/// optional `Z`) as SQL timestamp text: `YYYY-MM-DD hh:mm:ss[.f…]`.
pub fn parse_datetime(text: &str) -> Result<String, String> {
    const SHAPE: &str = "must be a date and time like 2025-03-04T14:30:00";
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = text
        .split_once(['T', ' '])
        .ok_or_else(|| SHAPE.to_string())?;
    parse_iso_date(date).ok_or_else(|| SHAPE.to_string())?;
    let (h, m, s, frac) = parse_time(time).ok_or_else(|| SHAPE.to_string())?;
    Ok(format!("{date} {h:02}:{m:02}:{s:02}{frac}"))
}

/// `hh:mm[:ss[.f…]]` → hours, minutes, seconds and the fraction as written (with its point).
fn parse_time(text: &str) -> Option<(u32, u32, u32, &str)> {
    let (clock, frac) = match text.find('.') {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    if frac.len() == 1 || frac.len() > 10 || !frac.bytes().skip(1).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let parts: Vec<&str> = clock.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
        || (parts.len() == 2 && !frac.is_empty())
    {
        return None;
    }
    let n = |i: usize| {
        parts
            .get(i)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let (h, m, s) = (n(0), n(1), n(2));
    (h < 24 && m < 60 && s < 60).then_some((h, m, s, frac))
}

/// `hh:mm[:ss]` in a legacy form.
pub fn encode_time(text: &str, format: TimeFormat) -> Result<BindValue, String> {
    let (h, m, s, frac) = parse_time(text)
        .filter(|t| t.3.is_empty())
        .ok_or_else(|| "must be a time of day like 14:30 or 14:30:00".to_string())?;
    debug_assert!(frac.is_empty());
    Ok(match format {
        TimeFormat::Iso => BindValue::Text(format!("{h:02}:{m:02}:{s:02}")),
        TimeFormat::Hhmmss => BindValue::Int(i64::from(h * 10_000 + m * 100 + s)),
    })
}

impl ParamType {
    /// Read a JSON body value, given as its raw JSON text (not `null`: whether a field may be
    /// null is the field's rule), and check it as a parameter of this type. Numbers must be
    /// JSON numbers (a decimal may also be a string, as decimals are served `as_string`);
    /// booleans JSON booleans; everything else a JSON string.
    pub fn parse_json(&self, raw: &str) -> Result<BindValue, String> {
        let raw = raw.trim();
        let is_number = raw.starts_with(|c: char| c == '-' || c.is_ascii_digit());
        let string = || serde_json::from_str::<String>(raw).ok();
        match self {
            Self::Integer { .. } => {
                if !is_number {
                    return Err("must be a whole number".into());
                }
                if raw.contains(['.', 'e', 'E']) {
                    // JSON Schema counts 41101.0 as an integer, so the document does too.
                    return match json_whole_number(raw) {
                        Some(whole) => self.parse(&whole),
                        None => Err("must be a whole number".into()),
                    };
                }
                self.parse(raw)
            }
            Self::Number { .. } => {
                if !is_number {
                    return Err("must be a number".into());
                }
                self.parse(raw)
            }
            Self::Decimal { .. } => {
                if is_number && raw.contains(['e', 'E']) {
                    return Err("must be written without an exponent, e.g. 1250.00".into());
                }
                match (is_number, string()) {
                    (true, _) => self.parse(raw),
                    (false, Some(s)) => self.parse(&s),
                    (false, None) => Err("must be a decimal number".into()),
                }
            }
            Self::Boolean { .. } => match raw {
                "true" | "false" => self.parse(raw),
                _ => Err("must be true or false".into()),
            },
            Self::String { .. }
            | Self::Date(_)
            | Self::DateTime
            | Self::Time(_)
            | Self::Code { .. } => match string() {
                Some(s) => self.parse(&s),
                None => Err("must be a string".into()),
            },
        }
    }
}

/// A JSON number written with a fraction or an exponent (`41101.0`, `4.1101e4`) as the whole
/// number it stands for, exactly; `None` when it has a fraction (or is absurdly large).
fn json_whole_number(raw: &str) -> Option<String> {
    let (mantissa, exp) = match raw.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.strip_prefix('+').unwrap_or(e).parse::<i64>().ok()?),
        None => (raw, 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let shift = exp.checked_sub(i64::try_from(frac.len()).ok()?)?;
    let whole = if shift >= 0 {
        if shift > 40 && digits.bytes().any(|b| b != b'0') {
            return None;
        }
        let zeros = usize::try_from(shift.min(40)).ok()?;
        format!("{digits}{}", "0".repeat(zeros))
    } else {
        let cut = usize::try_from(shift.unsigned_abs()).ok()?;
        let keep = digits.len().saturating_sub(cut);
        if digits[keep..].bytes().any(|b| b != b'0') {
            return None;
        }
        digits[..keep].to_string()
    };
    let whole = whole.trim_start_matches('0');
    Some(match (whole.is_empty(), negative) {
        (true, _) => "0".to_string(),
        (false, true) => format!("-{whole}"),
        (false, false) => whole.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_integers_may_be_written_with_a_fraction_of_zero() {
        for (raw, want) in [
            ("41101.0", Some("41101")),
            ("4.1101e4", Some("41101")),
            ("-12.000", Some("-12")),
            ("1E+2", Some("100")),
            ("1200e-2", Some("12")),
            ("-0.0", Some("0")),
            ("0.5e1", Some("5")),
            ("1.5", None),
            ("1e-1", None),
            ("1e400", None),
        ] {
            assert_eq!(json_whole_number(raw).as_deref(), want, "{raw}");
        }
        let t = ParamType::Integer {
            minimum: None,
            maximum: None,
        };
        assert!(matches!(t.parse_json("41101.0"), Ok(BindValue::Int(41101))));
        assert!(t.parse_json("41101.5").is_err());
        assert!(t.parse_json("\"1\"").is_err());
    }

    #[test]
    fn decimals_are_checked_never_rounded() {
        let ok = |t, p, s| check_decimal(t, p, s);
        assert_eq!(ok("12.50", Some(7), Some(2)), Ok("12.5".into()));
        assert_eq!(ok("-0007.000", Some(7), Some(3)), Ok("-7".into()));
        assert_eq!(ok("-0.00", None, None), Ok("0".into()));
        assert_eq!(ok("99999.99", Some(7), Some(2)), Ok("99999.99".into()));
        assert_eq!(
            ok("12.345", Some(7), Some(2)),
            Err("must have at most 2 decimal places".into())
        );
        assert_eq!(
            ok("100000", Some(7), Some(2)),
            Err("must have at most 5 digits before the decimal point".into())
        );
        assert_eq!(
            ok("1.5", Some(3), Some(0)),
            Err("must be a whole number".into())
        );
        for bad in ["", "-", ".5", "5.", "1e3", "+1", "1,5", "0x10", " 1"] {
            assert!(ok(bad, None, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_formats() {
        for good in ["a@b.co", "first.last+tag@example.com", "o'neil@x.org"] {
            assert_eq!(TextFormat::Email.check(good), Ok(()), "{good}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@@b.co", "a b@c.de", "a@b..co", "a@.b.co",
        ] {
            assert!(TextFormat::Email.check(bad).is_err(), "{bad}");
        }
        for good in ["+1 (216) 555-0100", "0216.555.0100", "2165550100"] {
            assert_eq!(TextFormat::Phone.check(good), Ok(()), "{good}");
        }
        for bad in ["12", "call me", "555-0100 ext 4", "12345678901234567890123"] {
            assert!(TextFormat::Phone.check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn datetimes_and_times() {
        assert_eq!(
            parse_datetime("2025-03-04T14:30:00"),
            Ok("2025-03-04 14:30:00".into())
        );
        assert_eq!(
            parse_datetime("2025-03-04 14:30:00.125Z"),
            Ok("2025-03-04 14:30:00.125".into())
        );
        assert_eq!(
            parse_datetime("2025-03-04T14:30"),
            Ok("2025-03-04 14:30:00".into())
        );
        for bad in [
            "03/04/2025 14:30",
            "2025-02-30T10:00:00",
            "2025-03-04",
            "2025-03-04T24:00:00",
            "2025-03-04T10:00:00+02:00",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
        assert_eq!(
            encode_time("09:30", TimeFormat::Hhmmss),
            Ok(BindValue::Int(93_000))
        );
        assert_eq!(
            encode_time("23:59:59", TimeFormat::Iso),
            Ok(BindValue::Text("23:59:59".into()))
        );
        assert!(encode_time("9:30", TimeFormat::Hhmmss).is_err());
    }

    #[test]
    fn json_values_keep_their_types() {
        let int = ParamType::Integer {
            minimum: Some(1),
            maximum: None,
        };
        assert_eq!(int.parse_json("5"), Ok(BindValue::Int(5)));
        assert!(int.parse_json("\"5\"").is_err());
        // JSON Schema's integer: 5.0 is one, 5.5 is not.
        assert_eq!(int.parse_json("5.0"), Ok(BindValue::Int(5)));
        assert!(int.parse_json("5.5").is_err());
        assert!(int.parse_json("0").is_err());
        let dec = ParamType::Decimal {
            precision: Some(11),
            scale: Some(3),
        };
        assert_eq!(
            dec.parse_json("1234567.125"),
            Ok(BindValue::Text("1234567.125".into()))
        );
        assert_eq!(dec.parse_json("\"2.5\""), Ok(BindValue::Text("2.5".into())));
        assert!(dec.parse_json("1.0001").is_err());
        assert!(dec.parse_json("1e3").is_err());
        assert!(dec.parse_json("true").is_err());
        let date = ParamType::Date(crate::codec::DateFormat::Cyymmdd);
        assert_eq!(
            date.parse_json("\"2025-03-04\""),
            Ok(BindValue::Int(1_250_304))
        );
        assert!(date.parse_json("\"03/04/2025\"").is_err());
        assert!(date.parse_json("20250304").is_err());
        let flag = ParamType::Boolean {
            true_value: Some("Y".into()),
            false_value: Some("N".into()),
        };
        assert_eq!(flag.parse_json("true"), Ok(BindValue::Text("Y".into())));
        assert!(flag.parse_json("\"true\"").is_err());
        assert!(flag.parse_json("1").is_err());
    }
}
