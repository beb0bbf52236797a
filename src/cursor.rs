//! Page cursors: the sort-key values of a page's last row, sealed with an HMAC so that a
//! client can neither forge one nor carry it to another query. A cursor is bound to what
//! produced it (the route, every parameter value, the effective sort) by a digest the caller
//! computes with [`binding`]; opening it under any other binding fails. The text is
//! URL-safe base64 without padding: opaque to clients, short enough for a `Link` header.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::codec::{BindKind, BindValue};

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
/// Bytes of the HMAC kept in a cursor: 128 bits, past any guessing.
const MAC_LEN: usize = 16;
/// Longest cursor text accepted (before decoding), so that a huge query string costs nothing.
const MAX_TEXT: usize = 4096;

/// The secret cursors are sealed with.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(…)")
    }
}

impl CursorKey {
    /// A key from configured text (any length; hashed to 32 bytes).
    pub fn from_secret(text: &str) -> Self {
        Self(Sha256::digest(text.as_bytes()).into())
    }

    /// A key from 32 stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self(rand::random())
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn mac(&self, binding: &[u8; 32], payload: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"patina-cursor\0");
        mac.update(binding);
        mac.update(payload);
        mac
    }
}

/// Why a cursor was refused. Deliberately vague to the client: a tampered cursor and one from
/// another query look the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorError {
    /// Not a cursor this gateway wrote, or written for another route, query or sort.
    Invalid,
}

/// The digest a cursor is bound to: the route, its parameter values (path, query and claims,
/// in the route's order), and the effective sort (column and direction of every key).
pub fn binding(route: &str, sort: &[(&str, bool)], params: &[BindValue]) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    part(route.as_bytes());
    for (column, descending) in sort {
        part(column.as_bytes());
        part(&[u8::from(*descending)]);
    }
    part(b"params");
    for p in params {
        let mut buf = Vec::new();
        encode_value(p, &mut buf);
        part(&buf);
    }
    h.finalize().into()
}

/// The cursor text for these key values.
pub fn seal(key: &CursorKey, binding: &[u8; 32], values: &[BindValue]) -> String {
    let mut payload = vec![VERSION, u8::try_from(values.len()).unwrap_or(u8::MAX)];
    for v in values {
        encode_value(v, &mut payload);
    }
    let tag = key.mac(binding, &payload).finalize().into_bytes();
    payload.extend_from_slice(&tag[..MAC_LEN]);
    URL_SAFE_NO_PAD.encode(payload)
}

/// The key values of a cursor sealed under this key and binding, `keys` of them.
pub fn open(
    key: &CursorKey,
    binding: &[u8; 32],
    text: &str,
    keys: usize,
) -> Result<Vec<BindValue>, CursorError> {
    if text.len() > MAX_TEXT {
        return Err(CursorError::Invalid);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| CursorError::Invalid)?;
    if raw.len() < 2 + MAC_LEN {
        return Err(CursorError::Invalid);
    }
    let (payload, tag) = raw.split_at(raw.len() - MAC_LEN);
    key.mac(binding, payload)
        .verify_truncated_left(tag)
        .map_err(|_| CursorError::Invalid)?;
    if payload[0] != VERSION || usize::from(payload[1]) != keys {
        return Err(CursorError::Invalid);
    }
    let mut rest = &payload[2..];
    let mut values = Vec::with_capacity(keys);
    for _ in 0..keys {
        values.push(decode_value(&mut rest).ok_or(CursorError::Invalid)?);
    }
    if rest.is_empty() {
        Ok(values)
    } else {
        Err(CursorError::Invalid)
    }
}

fn encode_value(v: &BindValue, out: &mut Vec<u8>) {
    match v {
        BindValue::Null(_) => out.push(0),
        BindValue::Int(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_be_bytes());
        }
        BindValue::Float(f) => {
            out.push(2);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        BindValue::Text(s) => {
            out.push(3);
            out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

fn decode_value(rest: &mut &[u8]) -> Option<BindValue> {
    let (&tag, tail) = rest.split_first()?;
    *rest = tail;
    let mut take = |n: usize| -> Option<&[u8]> {
        if rest.len() < n {
            return None;
        }
        let (a, b) = rest.split_at(n);
        *rest = b;
        Some(a)
    };
    Some(match tag {
        0 => BindValue::Null(BindKind::Text),
        1 => BindValue::Int(i64::from_be_bytes(take(8)?.try_into().ok()?)),
        2 => {
            let f = f64::from_bits(u64::from_be_bytes(take(8)?.try_into().ok()?));
            if !f.is_finite() {
                return None;
            }
            BindValue::Float(f)
        }
        3 => {
            let len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
            BindValue::Text(String::from_utf8(take(len)?.to_vec()).ok()?)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<BindValue> {
        vec![
            BindValue::Int(1_250_101),
            BindValue::Null(BindKind::Int),
            BindValue::Text("ZINC, \"PLATED\"".into()),
            BindValue::Float(2.5),
        ]
    }

    #[test]
    fn a_sealed_cursor_opens_under_its_binding() {
        let key = CursorKey::from_secret("k");
        let b = binding("listJobs", &[("DUEDT", false)], &[BindValue::Int(3)]);
        let text = seal(&key, &b, &values());
        assert!(
            text.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        let opened = open(&key, &b, &text, 4).unwrap();
        assert_eq!(opened[0], BindValue::Int(1_250_101));
        assert!(matches!(opened[1], BindValue::Null(_)));
        assert_eq!(opened[2], BindValue::Text("ZINC, \"PLATED\"".into()));
        assert_eq!(opened[3], BindValue::Float(2.5));
    }

    #[test]
    fn another_route_query_sort_or_key_refuses_it() {
        let key = CursorKey::from_secret("k");
        let b = binding("listJobs", &[("DUEDT", false)], &[BindValue::Int(3)]);
        let text = seal(&key, &b, &values());
        let others = [
            binding("listMyJobs", &[("DUEDT", false)], &[BindValue::Int(3)]),
            binding("listJobs", &[("DUEDT", true)], &[BindValue::Int(3)]),
            binding("listJobs", &[("JOBNO", false)], &[BindValue::Int(3)]),
            binding("listJobs", &[("DUEDT", false)], &[BindValue::Int(4)]),
            binding(
                "listJobs",
                &[("DUEDT", false)],
                &[BindValue::Text("3".into())],
            ),
            binding("listJobs", &[("DUEDT", false)], &[]),
        ];
        for other in others {
            assert_eq!(open(&key, &other, &text, 4), Err(CursorError::Invalid));
        }
        assert_eq!(
            open(&CursorKey::from_secret("other"), &b, &text, 4),
            Err(CursorError::Invalid)
        );
        assert_eq!(open(&key, &b, &text, 3), Err(CursorError::Invalid));
    }

    #[test]
    fn any_changed_byte_or_garbage_is_refused() {
        let key = CursorKey::from_secret("k");
        let b = binding("r", &[], &[]);
        let text = seal(&key, &b, &values());
        let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            let t = URL_SAFE_NO_PAD.encode(&bad);
            assert_eq!(open(&key, &b, &t, 4), Err(CursorError::Invalid), "byte {i}");
        }
        for garbage in ["", "x", "!!!!", &"A".repeat(5000), &text[..text.len() - 2]] {
            assert_eq!(open(&key, &b, garbage, 4), Err(CursorError::Invalid));
        }
    }
}
