//! Dates, times and timestamps: the legacy storage forms (ISO text, CYYMMDD and YYYYMMDD
//! numbers, HHMMSS), calendar validation, timestamps with their UTC offsets, and the date
//! forms of HTTP headers. Day arithmetic is [`crate::clock`]'s.

use std::fmt::Write as _;

use super::numbers::parse_integer;
use super::text::{Adapter, write_json_string};
use super::{DecodeError, clip, fail};
use crate::clock::days_from_civil;

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

    pub fn name(self) -> &'static str {
        match self {
            Self::Iso => "iso",
            Self::Cyymmdd => "cyymmdd",
            Self::Yyyymmdd => "yyyymmdd",
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

/// Write a date column's value (`null` for the numeric forms' 0).
pub(super) fn write_date(
    text: &str,
    format: DateFormat,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    match decode_date(text, format)? {
        Some((y, m, d)) => {
            let _ = write!(Adapter(out), "\"{y:04}-{m:02}-{d:02}\"");
        }
        None => out.extend_from_slice(b"null"),
    }
    Ok(())
}

/// Write a time column's value.
pub(super) fn write_time(
    text: &str,
    format: TimeFormat,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let (h, m, s) = decode_time(text, format)?;
    let _ = write!(Adapter(out), "\"{h:02}:{m:02}:{s:02}\"");
    Ok(())
}

/// Write a timestamp column's value.
pub(super) fn write_datetime(text: &str, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let v = decode_datetime(text)?;
    write_json_string(&v, out);
    Ok(())
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
    if !(1..=12).contains(&m) {
        return fail(format!("`{}` has month {m}, out of range", clip(t)));
    }
    if !is_valid_date(y, m, d) {
        return fail(format!("`{}` is not a valid calendar date", clip(t)));
    }
    Ok(Some((y, m, d)))
}

pub(super) fn decode_time(text: &str, format: TimeFormat) -> Result<(i64, i64, i64), DecodeError> {
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

pub(super) fn decode_datetime(text: &str) -> Result<String, DecodeError> {
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

pub(super) fn parse_iso_date(raw: &str) -> Option<(i64, i64, i64)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::{json, text};
    use crate::codec::{Cell, ColumnCodec, ColumnType};

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
}
