//! Binary: bytes written as a base64 JSON string.

use base64::Engine as _;

/// Write bytes as a base64 JSON string.
pub(super) fn write_base64(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .as_bytes(),
    );
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use crate::codec::test_support::json;
    use crate::codec::{Cell, ColumnCodec, ColumnType};

    #[test]
    fn binary_is_base64() {
        let c = ColumnCodec::new(ColumnType::Binary);
        assert_eq!(
            json(&c, Cell::Binary(&[0, 255, 1])).expect("ok"),
            "\"AP8B\""
        );
    }
}
