//! Text: removing CHAR padding, writing JSON string literals, and writing a value's
//! `Display` text into a byte buffer. Every other codec family writes through these; what a
//! value means is theirs.

use std::fmt::Write as _;

/// Which padding to remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    None,
    /// Trailing spaces only (what CHAR padding adds).
    End,
    Both,
}

/// The stored text without the padding `trim` names.
pub(super) fn trim(text: &str, trim: Trim) -> &str {
    match trim {
        Trim::None => text,
        Trim::End => text.trim_end_matches([' ', '\0']),
        Trim::Both => text.trim_matches([' ', '\0']),
    }
}

pub(super) struct Adapter<'a>(pub(super) &'a mut Vec<u8>);

impl std::fmt::Write for Adapter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A short text written without allocating: the text form of a typed value (at most 64
/// bytes; writing more fails).
pub(super) struct Scratch {
    buf: [u8; 64],
    len: usize,
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl Scratch {
    pub(super) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for Scratch {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Append a value's `Display` text to a byte buffer.
pub fn write_display(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    let _ = write!(Adapter(out), "{v}");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::{json, text};
    use crate::codec::{Cell, ColumnCodec, ColumnType};

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
    fn invalid_utf8_is_an_error() {
        let c = ColumnCodec::new(ColumnType::String);
        assert!(json(&c, Cell::Text(&[0xff, 0xfe])).is_err());
    }
}
