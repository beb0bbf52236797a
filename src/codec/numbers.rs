//! Numbers: integers (also from a decimal rendering with only zero decimals), floating point,
//! and exact decimals that keep every digit the database returned (normalized, padded, never
//! rounded). Dates stored as numbers borrow [`parse_integer`].

use super::text::{Adapter, write_display, write_json_string};
use super::{DecodeError, clip, fail};

/// Write an integer column's value.
pub(super) fn write_integer(text: &str, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let v = parse_integer(text)?;
    write_display(out, v);
    Ok(())
}

/// Write a floating-point column's value.
pub(super) fn write_number(text: &str, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let v: f64 = text
        .trim()
        .parse()
        .or_else(|_| fail(format!("`{}` is not a number", clip(text))))?;
    if !v.is_finite() {
        return fail("the number is not finite");
    }
    write_display(out, v);
    Ok(())
}

/// Write an exact decimal column's value, as a JSON number or string.
pub(super) fn write_decimal(
    text: &str,
    scale: Option<u8>,
    as_string: bool,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let d = normalize_decimal(text, scale)?;
    if as_string {
        write_json_string(&d, out);
    } else {
        out.extend_from_slice(d.as_bytes());
    }
    Ok(())
}

/// Write an exact decimal `digits` × 10^-`scale` as a JSON number or string, padded to the
/// codec's `pad` decimals (never rounded). False when the scale is beyond 38.
pub(super) fn write_decimal_exact(
    digits: i128,
    scale: u8,
    pad: Option<u8>,
    as_string: bool,
    out: &mut Vec<u8>,
) -> bool {
    let start = out.len();
    if as_string {
        out.push(b'"');
    }
    if write_exact(&mut Adapter(out), digits, scale, pad.unwrap_or(0)).is_err() {
        out.truncate(start);
        return false;
    }
    if as_string {
        out.push(b'"');
    }
    true
}

/// The canonical text of `digits` × 10^-`scale`: every digit, a `0` before the point, no sign
/// on zero, padded with zeros to `pad` decimals. Fails for a scale beyond 38.
pub(super) fn write_exact(
    w: &mut impl std::fmt::Write,
    digits: i128,
    scale: u8,
    pad: u8,
) -> std::fmt::Result {
    if scale > 38 {
        return Err(std::fmt::Error);
    }
    // At most 39 digits.
    let mut buf = [b'0'; 40];
    let mut at = buf.len();
    let mut n = digits.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let ds = std::str::from_utf8(&buf[at..]).map_err(|_| std::fmt::Error)?;
    let scale = usize::from(scale);
    if digits < 0 {
        w.write_char('-')?;
    }
    if ds.len() > scale {
        let (int, frac) = ds.split_at(ds.len() - scale);
        w.write_str(int)?;
        if !frac.is_empty() {
            w.write_char('.')?;
            w.write_str(frac)?;
        }
    } else {
        w.write_str("0.")?;
        for _ in ds.len()..scale {
            w.write_char('0')?;
        }
        w.write_str(ds)?;
    }
    let pad = usize::from(pad);
    if pad > scale {
        if scale == 0 {
            w.write_char('.')?;
        }
        for _ in scale..pad {
            w.write_char('0')?;
        }
    }
    Ok(())
}

/// `digits` × 10^-`scale` as an integer, when it is a whole number that fits.
pub(super) fn whole(digits: i128, scale: u8) -> Option<i64> {
    let unit = 10i128.checked_pow(u32::from(scale))?;
    if digits % unit != 0 {
        return None;
    }
    i64::try_from(digits / unit).ok()
}

/// An integer, also accepting a decimal rendering with only zero decimals (`12.00`), which is
/// how some drivers return NUMERIC(p,0) and DECIMAL columns.
pub(super) fn parse_integer(text: &str) -> Result<i64, DecodeError> {
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

#[cfg(test)]
mod tests {
    use crate::codec::test_support::{json, text};
    use crate::codec::{Cell, ColumnCodec, ColumnType};

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
}
