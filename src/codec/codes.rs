//! Codes and flags: stored code letters turned into words (with a rule for letters the map
//! does not know), and legacy boolean flags (`Y`/`N`, `1`/`0`, …) turned into JSON booleans.

use super::text::write_json_string;
use super::{DecodeError, clip, fail};

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

/// Write a code column's value: the word its map gives the (trimmed) stored code.
pub(super) fn write_code(
    text: &str,
    codes: &[(String, String)],
    unknown: UnknownCode,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
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
    Ok(())
}

/// Write a flag column's value: `true` or `false` by the lists of stored values.
pub(super) fn write_flag(
    text: &str,
    true_values: &[String],
    false_values: &[String],
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let t = text.trim();
    if true_values.iter().any(|v| v == t) {
        out.extend_from_slice(b"true");
    } else if false_values.iter().any(|v| v == t) {
        out.extend_from_slice(b"false");
    } else {
        return fail(format!("`{}` is not a known flag value", clip(t)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::{json, text};
    use crate::codec::{Cell, ColumnCodec, ColumnType, Trim};

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
}
