//! A TCP relay between the gateway and the TDS test server that writes down what the gateway
//! sends: each SQL batch's text, and each `sp_executesql` call's statement and bound values,
//! decoded from the TDS packets (MS-TDS 2.2.6.6 and 2.2.6.7). The test server keeps no such
//! record; it matches statements by their text and ignores the values.
//!
//! It also makes a registered answer without columns look like what SQL Server sends for an
//! INSERT, UPDATE or DELETE: the test server writes a (column-less) metadata token and a row
//! token per row, then a DONE without the DONE_COUNT bit; the relay drops those tokens and sets
//! the bit, so the DONE reports the number of rows registered as the rows the statement
//! touched. Answers with columns pass unchanged.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A value bound to an `@Pn` parameter, as it went over the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum Bound {
    /// `intn` (tiberius binds every integer as bigint).
    Int(Option<i64>),
    /// `floatn`.
    Float(Option<f64>),
    /// `nvarchar`.
    Text(Option<String>),
    /// A typeless NULL.
    Null,
}

/// What the gateway sent, request by request.
#[derive(Clone, Debug, PartialEq)]
pub enum Sent {
    /// A SQL batch (no parameters): transaction control, pings.
    Batch(String),
    /// A statement through `sp_executesql`, with the values bound to `@P1`, `@P2`, …
    Statement { sql: String, binds: Vec<Bound> },
    /// Another request this decoder does not read (a named procedure, a type it lacks).
    Other(u8),
}

/// The relay: listens on `port`, forwards to the server at `target`.
pub struct Recorder {
    pub port: u16,
    sent: Arc<Mutex<Vec<Sent>>>,
}

impl Recorder {
    pub fn start(target: u16) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&sent);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let log = Arc::clone(&log);
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                std::thread::spawn(move || relay(client, server, |m| record(&log, m), |p| p));
                std::thread::spawn(move || relay(s2, c2, |_| {}, count_rows));
            }
        });
        Recorder { port, sent }
    }

    /// How many requests were written down so far: a mark for [`Recorder::since`].
    pub fn mark(&self) -> usize {
        self.sent.lock().expect("lock").len()
    }

    /// The requests since `mark`, without the pool's liveness checks (`SELECT 1`).
    pub fn since(&self, mark: usize) -> Vec<Sent> {
        self.sent.lock().expect("lock")[mark..]
            .iter()
            .filter(|s| !matches!(s, Sent::Batch(t) if t == "SELECT 1"))
            .cloned()
            .collect()
    }
}

/// Forward TDS packets from `from` to `to`, whole: `patch` may rewrite a packet before it goes
/// on, `message` sees each complete message (packets up to the end-of-message bit) with its
/// type.
fn relay(
    mut from: TcpStream,
    mut to: TcpStream,
    mut message: impl FnMut((u8, &[u8])),
    patch: impl Fn(Vec<u8>) -> Vec<u8>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        // Before a TLS handshake, or in TDS 8, bytes are not TDS packets: the tests that use
        // this relay speak TDS without TLS.
        while buf.len() >= 8 {
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            if len < 8 || buf.len() < len {
                break;
            }
            let packet = patch(buf.drain(..len).collect());
            body.extend_from_slice(&packet[8..]);
            if packet[1] & 0x01 != 0 {
                message((packet[0], &body));
                body.clear();
            }
            if to.write_all(&packet).is_err() {
                return;
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

/// A column-less answer (metadata with no column, empty rows, a final DONE) becomes a DONE
/// that counts the rows, as SQL Server answers a statement that touched that many.
fn count_rows(packet: Vec<u8>) -> Vec<u8> {
    const DONE_LEN: usize = 13;
    let body = &packet[8..];
    if packet[0] != 0x04 || packet[1] & 0x01 == 0 || !body.starts_with(&[0x81, 0, 0]) {
        return packet;
    }
    let rows = body[3..].iter().take_while(|b| **b == 0xD1).count();
    let done = &body[3 + rows..];
    if done.len() != DONE_LEN || done[0] != 0xFD || done[1] != 0 || done[2] != 0 {
        return packet;
    }
    let mut out = packet[..8].to_vec();
    out.extend_from_slice(done);
    out[9] = 0x10;
    let len = u16::try_from(out.len()).expect("a short packet");
    out[2..4].copy_from_slice(&len.to_be_bytes());
    out
}

fn record(log: &Mutex<Vec<Sent>>, (kind, body): (u8, &[u8])) {
    let sent = match kind {
        0x01 => batch(body).map(Sent::Batch),
        0x03 => rpc(body),
        // Pre-login, login, attention: not requests to write down.
        _ => return,
    };
    log.lock()
        .expect("lock")
        .push(sent.unwrap_or(Sent::Other(kind)));
}

fn batch(body: &[u8]) -> Option<String> {
    let mut r = Reader { b: body, i: 0 };
    let headers = r.u32()?;
    r.i = usize::try_from(headers).ok()?;
    let rest = body.len().checked_sub(r.i)?;
    r.utf16(rest / 2)
}

/// `sp_executesql` (procedure id 10, or named): `@stmt`, `@params`, then the values.
fn rpc(body: &[u8]) -> Option<Sent> {
    let mut r = Reader { b: body, i: 0 };
    let headers = r.u32()?;
    r.i = usize::try_from(headers).ok()?;
    // By its id (what a query sends), or by its name (what a command sends).
    match r.u16()? {
        0xFFFF => {
            if r.u16()? != 10 {
                return None;
            }
        }
        n => {
            if !r
                .utf16(usize::from(n))?
                .eq_ignore_ascii_case("sp_executesql")
            {
                return None;
            }
        }
    }
    let _options = r.u16()?;
    let mut values = Vec::new();
    while r.i < body.len() {
        let name_len = usize::from(r.u8()?);
        let _name = r.utf16(name_len)?;
        let _status = r.u8()?;
        values.push(r.value()?);
    }
    let mut values = values.into_iter();
    let Some(Bound::Text(Some(sql))) = values.next() else {
        return None;
    };
    let _declared = values.next();
    Some(Sent::Statement {
        sql,
        binds: values.collect(),
    })
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.i..self.i + n)?;
        self.i += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn utf16(&mut self, units: usize) -> Option<String> {
        let bytes = self.take(units * 2)?;
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).ok()
    }

    /// A parameter's TYPE_INFO and value, for the types tiberius binds.
    fn value(&mut self) -> Option<Bound> {
        match self.u8()? {
            // intn
            0x26 => {
                let _max = self.u8()?;
                Some(Bound::Int(match self.u8()? {
                    0 => None,
                    1 => Some(i64::from(self.u8()?)),
                    2 => Some(i64::from(i16::from_le_bytes(
                        self.take(2)?.try_into().ok()?,
                    ))),
                    4 => Some(i64::from(i32::from_le_bytes(
                        self.take(4)?.try_into().ok()?,
                    ))),
                    8 => Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?)),
                    _ => return None,
                }))
            }
            // int (the `@params` placeholder before it is set)
            0x38 => Some(Bound::Int(Some(i64::from(i32::from_le_bytes(
                self.take(4)?.try_into().ok()?,
            ))))),
            // floatn
            0x6D => {
                let _max = self.u8()?;
                Some(Bound::Float(match self.u8()? {
                    0 => None,
                    8 => Some(f64::from_le_bytes(self.take(8)?.try_into().ok()?)),
                    _ => return None,
                }))
            }
            // nvarchar: sized, or PLP for (max)
            0xE7 => {
                let max = self.u16()?;
                let _collation = self.take(5)?;
                if max == 0xFFFF {
                    if self.u64()? == u64::MAX {
                        return Some(Bound::Text(None));
                    }
                    let mut bytes = Vec::new();
                    loop {
                        let n = usize::try_from(self.u32()?).ok()?;
                        if n == 0 {
                            break;
                        }
                        bytes.extend_from_slice(self.take(n)?);
                    }
                    let mut r = Reader { b: &bytes, i: 0 };
                    Some(Bound::Text(Some(r.utf16(bytes.len() / 2)?)))
                } else {
                    match self.u16()? {
                        0xFFFF => Some(Bound::Text(None)),
                        n => Some(Bound::Text(Some(self.utf16(usize::from(n) / 2)?))),
                    }
                }
            }
            // null
            0x1F => Some(Bound::Null),
            _ => None,
        }
    }
}
