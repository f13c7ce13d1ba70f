//! WebSocket framing (RFC 6455, section 5), sans IO.
//!
//! Rally's `/ws` endpoint carries exactly one protocol message per WebSocket binary
//! message. This module parses frames a client sent (masked), reassembles fragmented
//! messages up to a size limit, surfaces control frames, and writes the unmasked frames
//! a server sends. It also writes masked frames, for clients and tests.
//! No extensions are negotiated, so the RSV bits must be zero.
//!
//! Text messages and close reasons are checked for valid UTF-8 as they arrive: a bad byte
//! fails the message in the frame that carries it, not when the message ends, and a frame
//! still arriving is checked as far as it has come (RFC 6455, section 8.1, "fail fast").
//! Close payloads are checked too (a lone byte, a code that may not be sent). Each
//! [`WsError`] names the close status to answer it with, so every driver closes alike;
//! Autobahn|Testsuite checks all of this (`scripts/autobahn.sh`, `docs/autobahn.md`).

use thiserror::Error;

use utf8::Utf8Validator;

mod utf8;

/// Frame opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// A continuation of a fragmented message.
    Continuation,
    /// A UTF-8 text message (Rally refuses these).
    Text,
    /// A binary message: one Rally message body.
    Binary,
    /// Close the connection.
    Close,
    /// A ping; the receiver answers with a pong carrying the same payload.
    Ping,
    /// A pong.
    Pong,
}

impl Opcode {
    fn from_bits(b: u8) -> Option<Opcode> {
        Some(match b {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// Close status codes Rally sends (RFC 6455, section 7.4.1).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// A protocol error in the WebSocket framing.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A data type the endpoint does not accept.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Message data that does not match its type: a text message (or a close reason)
    /// that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message that violates the endpoint's policy (a bad Rally message, a timeout).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A message too big to process.
    pub const TOO_BIG: u16 = 1009;
    /// The server is overloaded (at its connection limit).
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Why the WebSocket stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WsError {
    /// A message (or one frame of it) is above the limit.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Bytes the message would hold.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// Anything else that breaks RFC 6455: reserved bits or opcodes, an unmasked client
    /// frame, a fragmented or long control frame, a stray continuation, a close payload of
    /// one byte or with a code that may not be sent.
    #[error("websocket protocol error: {0}")]
    Protocol(&'static str),
    /// A text message or a close reason that is not valid UTF-8.
    #[error("websocket text is not valid UTF-8")]
    InvalidUtf8,
}

impl WsError {
    /// The close status to answer this error with (RFC 6455, section 7.4.1): 1009 for a
    /// message too big, 1007 for bad UTF-8, 1002 for any other protocol error.
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::TooLarge { .. } => close_code::TOO_BIG,
            WsError::InvalidUtf8 => close_code::INVALID_PAYLOAD,
            WsError::Protocol(_) => close_code::PROTOCOL_ERROR,
        }
    }
}

/// Whether a peer may send `code` in a close frame (RFC 6455, section 7.4, and the IANA
/// registry it set up): 1000-1003, 1007-1014, and 3000-4999 for libraries and
/// applications. 1004 is reserved, 1005, 1006 and 1015 only stand for "no code",
/// "no close frame" and "TLS failed" in APIs and may never be sent; the rest below 5000
/// is unassigned or reserved, and 5000 and above is undefined.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Reads a close frame's payload: nothing, or a 2-byte status code then a UTF-8 reason.
///
/// Returns the code and the reason. A single byte, a code a peer may not send
/// ([`is_valid_close_code`]) and a reason that is not UTF-8 are refused.
pub fn parse_close(payload: &[u8]) -> Result<Option<(u16, &str)>, WsError> {
    match payload {
        [] => Ok(None),
        [_] => Err(WsError::Protocol("close payload of one byte")),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !is_valid_close_code(code) {
                return Err(WsError::Protocol("close code that may not be sent"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidUtf8)?;
            Ok(Some((code, reason)))
        }
    }
}

/// What one call to [`Decoder::decode`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole binary message.
    Binary(&'a [u8]),
    /// A whole text message, valid UTF-8 (checked).
    Text(&'a [u8]),
    /// A ping with its payload; answer with a pong.
    Ping(&'a [u8]),
    /// A pong (ignored by Rally).
    Pong,
    /// The peer closes, with its status code if it gave one. The payload has been checked
    /// with [`parse_close`]; a bad one is an error instead.
    Close(Option<u16>),
    /// A fragment of a message was buffered; nothing to act on yet.
    Fragment,
}

/// Reassembles WebSocket messages from frames.
#[derive(Debug)]
pub struct Decoder {
    /// Fragments of a message split across frames; empty (and unallocated) otherwise,
    /// which is the common case.
    partial: Vec<u8>,
    /// The opcode of the fragmented message in progress, if any.
    partial_opcode: Option<Opcode>,
    /// Largest message accepted.
    max_message: usize,
    /// Servers require masked frames; clients require unmasked ones.
    expect_masked: bool,
    /// UTF-8 state of the text message in progress, carried across its fragments so a
    /// character split between two frames is whole, and a bad byte fails at once.
    utf8: Utf8Validator,
    /// How far the payload of a text frame still arriving has been checked: a frame sent
    /// in pieces fails at the piece that breaks it, before the rest arrives. Reset when
    /// the frame is whole.
    peeked: Option<Peeked>,
}

/// Where the look at a text frame still arriving stopped.
#[derive(Debug, Clone, Copy)]
struct Peeked {
    /// The frame's payload length and mask: a different frame at the start of the
    /// buffer (a caller that did not keep the bytes) starts the look over.
    frame: (u64, Option<[u8; 4]>),
    /// Payload bytes checked.
    checked: usize,
    /// The UTF-8 state after them.
    state: Utf8Validator,
}

impl Decoder {
    /// Whether no fragmented message is in progress (a fresh decoder would decode the
    /// next frames alike).
    pub fn is_idle(&self) -> bool {
        self.partial_opcode.is_none() && self.partial.is_empty()
    }

    /// A decoder for a server (client frames must be masked).
    pub fn server(max_message: usize) -> Self {
        Decoder {
            partial: Vec::new(),
            partial_opcode: None,
            max_message,
            expect_masked: true,
            utf8: Utf8Validator::new(),
            peeked: None,
        }
    }

    /// A decoder for a client (server frames must not be masked).
    pub fn client(max_message: usize) -> Self {
        Decoder {
            partial: Vec::new(),
            partial_opcode: None,
            max_message,
            expect_masked: false,
            utf8: Utf8Validator::new(),
            peeked: None,
        }
    }

    /// Decodes one frame at the start of `buf`, unmasking its payload in place.
    ///
    /// Returns `Ok(None)` when more bytes are needed, or the bytes the frame took and the event.
    /// After `Ok(None)`, call again with the same bytes at the start of `buf` and more after
    /// them (the decoder remembers how much of a text frame it has already checked).
    pub fn decode<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> Result<Option<(usize, Event<'a>)>, WsError> {
        if self.partial_opcode.is_none() && !self.partial.is_empty() {
            // The reassembled message handed out last time has been consumed; free it so
            // an idle connection holds no buffer.
            self.partial = Vec::new();
        }
        if buf.len() < 2 {
            return Ok(None);
        }
        let b0 = buf[0];
        let b1 = buf[1];
        let fin = b0 & 0x80 != 0;
        if b0 & 0x70 != 0 {
            return Err(WsError::Protocol("reserved bits set"));
        }
        let opcode = Opcode::from_bits(b0 & 0x0f).ok_or(WsError::Protocol("reserved opcode"))?;
        let masked = b1 & 0x80 != 0;
        if masked != self.expect_masked {
            return Err(WsError::Protocol(if self.expect_masked {
                "client frame not masked"
            } else {
                "server frame masked"
            }));
        }
        let (len, mut at) = match b1 & 0x7f {
            126 => {
                let Some(b) = buf.get(2..4) else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
            }
            127 => {
                let Some(b) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                (u64::from_be_bytes(a), 10)
            }
            n => (u64::from(n), 2),
        };
        if opcode.is_control() && (len > 125 || !fin) {
            return Err(WsError::Protocol(
                "control frame fragmented or over 125 bytes",
            ));
        }
        let already = if opcode == Opcode::Continuation {
            self.partial.len() as u64
        } else {
            0
        };
        if !opcode.is_control() && len.saturating_add(already) > self.max_message as u64 {
            return Err(WsError::TooLarge {
                len: len.saturating_add(already),
                max: self.max_message,
            });
        }
        let mask = if masked {
            let Some(m) = buf.get(at..at + 4) else {
                return Ok(None);
            };
            let m = [m[0], m[1], m[2], m[3]];
            at += 4;
            Some(m)
        } else {
            None
        };
        // Framing errors that need no payload are reported before waiting for it.
        match opcode {
            Opcode::Binary | Opcode::Text if self.partial_opcode.is_some() => {
                return Err(WsError::Protocol("new message inside a fragmented one"));
            }
            Opcode::Continuation if self.partial_opcode.is_none() => {
                return Err(WsError::Protocol("continuation without a first frame"));
            }
            _ => {}
        }
        let text = opcode == Opcode::Text
            || (opcode == Opcode::Continuation && self.partial_opcode == Some(Opcode::Text));
        // `len` is bounded by max_message (or 125) here, so it fits in usize.
        let total = at + len as usize;
        if buf.len() < total {
            if text {
                self.peek_text(&buf[at.min(buf.len())..], (len, mask))?;
            }
            return Ok(None);
        }
        self.peeked = None;
        let payload = &mut buf[at..total];
        if let Some(mask) = mask {
            apply_mask(payload, mask);
        }
        let payload: &'a [u8] = payload;
        if text {
            if opcode == Opcode::Text {
                self.utf8 = Utf8Validator::new();
            }
            self.utf8.feed(payload)?;
            if fin {
                self.utf8.finish()?;
            }
        }
        let event = match opcode {
            Opcode::Ping => Event::Ping(payload),
            Opcode::Pong => Event::Pong,
            Opcode::Close => Event::Close(parse_close(payload)?.map(|(code, _)| code)),
            Opcode::Binary | Opcode::Text => {
                if fin {
                    if opcode == Opcode::Binary {
                        Event::Binary(payload)
                    } else {
                        Event::Text(payload)
                    }
                } else {
                    self.partial_opcode = Some(opcode);
                    self.reassemble(payload);
                    Event::Fragment
                }
            }
            Opcode::Continuation => {
                // Checked above: a continuation comes only inside a fragmented message.
                let first = self.partial_opcode.unwrap_or(Opcode::Binary);
                self.reassemble(payload);
                if fin {
                    self.partial_opcode = None;
                    // Handed out by reference; the next call frees the buffer.
                    let whole: &'a [u8] = &self.partial;
                    return Ok(Some((
                        total,
                        if first == Opcode::Binary {
                            Event::Binary(whole)
                        } else {
                            Event::Text(whole)
                        },
                    )));
                }
                Event::Fragment
            }
        };
        Ok(Some((total, event)))
    }

    /// Checks the part of a text frame's payload that has arrived (`got`, still masked),
    /// from where the last look stopped, so an invalid byte fails the message now rather
    /// than when the frame is whole. Unmasks into a small stack buffer: the frame's bytes
    /// stay as they are until it is decoded whole.
    fn peek_text(&mut self, got: &[u8], frame: (u64, Option<[u8; 4]>)) -> Result<(), WsError> {
        let (mut from, mut state) = match self.peeked {
            Some(p) if p.frame == frame && p.checked <= got.len() => (p.checked, p.state),
            _ => (0, self.utf8_at_frame_start()),
        };
        let mask = frame.1;
        let mut chunk = [0u8; 256];
        while from < got.len() {
            let n = (got.len() - from).min(chunk.len());
            let piece = &mut chunk[..n];
            piece.copy_from_slice(&got[from..from + n]);
            if let Some(mask) = mask {
                // The mask repeats every 4 bytes from the payload's start.
                let m = from % 4;
                apply_mask(
                    piece,
                    [
                        mask[m],
                        mask[(m + 1) % 4],
                        mask[(m + 2) % 4],
                        mask[(m + 3) % 4],
                    ],
                );
            }
            state.feed(piece)?;
            from += n;
        }
        self.peeked = Some(Peeked {
            frame,
            checked: from,
            state,
        });
        Ok(())
    }

    /// The UTF-8 state a text frame starts from: fresh for a new message, the message's
    /// state for a continuation.
    fn utf8_at_frame_start(&self) -> Utf8Validator {
        if self.partial_opcode.is_some() {
            self.utf8
        } else {
            Utf8Validator::new()
        }
    }

    /// Appends a fragment to the message being reassembled.
    ///
    /// The buffer grows by doubling, as a `Vec` does, but its capacity is capped at
    /// `max_message`: plain `extend_from_slice` could double a 3,000-byte buffer to 6,000
    /// bytes for a 4,096-byte limit, so a peer could make the decoder hold twice the limit.
    /// The caller has checked that the whole message fits the limit.
    fn reassemble(&mut self, fragment: &[u8]) {
        let need = self.partial.len() + fragment.len();
        if need > self.partial.capacity() {
            let target = need
                .max(self.partial.capacity().saturating_mul(2))
                .min(self.max_message.max(need));
            self.partial.reserve_exact(target - self.partial.len());
        }
        self.partial.extend_from_slice(fragment);
    }

    /// Bytes the reassembly buffer holds allocated, for the fuzzing checks.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn reassembly_capacity(&self) -> usize {
        self.partial.capacity()
    }
}

/// XORs `payload` with the 4-byte masking key (RFC 6455, section 5.3).
pub fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// Most bytes the header of an unmasked frame takes.
pub const MAX_HEADER: usize = 10;

/// The header of an unmasked, final frame with `len` payload bytes, and its length.
fn header(opcode: Opcode, len: usize) -> ([u8; MAX_HEADER], usize) {
    let mut h = [0u8; MAX_HEADER];
    h[0] = 0x80 | opcode.bits();
    let n = if len < 126 {
        h[1] = len as u8;
        2
    } else if len <= usize::from(u16::MAX) {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (h, n)
}

/// Appends the header of an unmasked, final frame with `len` payload bytes (server side).
pub fn write_header(out: &mut Vec<u8>, opcode: Opcode, len: usize) {
    let (h, n) = header(opcode, len);
    out.extend_from_slice(&h[..n]);
}

/// Starts an unmasked frame in `out` whose payload length is not known yet: reserves room
/// for the largest header and returns where it is. Append the payload, then call
/// [`finish`] with the returned position.
pub fn begin(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.resize(at + MAX_HEADER, 0);
    at
}

/// Writes the header of the frame started at `at` by [`begin`] and slides the payload
/// back behind it (one small copy, no scratch buffer).
pub fn finish(out: &mut Vec<u8>, at: usize, opcode: Opcode) {
    let len = out.len() - at - MAX_HEADER;
    let (h, n) = header(opcode, len);
    out[at..at + n].copy_from_slice(&h[..n]);
    out.copy_within(at + MAX_HEADER.., at + n);
    out.truncate(at + n + len);
}

/// Appends one unmasked, final frame (server side).
pub fn write_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    write_header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// Appends one masked, final frame (client side).
pub fn write_masked_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode.bits());
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// Appends a close frame with a status code (server side).
pub fn write_close(out: &mut Vec<u8>, code: u16) {
    write_frame(out, Opcode::Close, &code.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn masked_binary_round_trips() {
        for len in [0usize, 1, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut wire = Vec::new();
            write_masked_frame(&mut wire, Opcode::Binary, &payload, MASK);
            let mut d = Decoder::server(1 << 20);
            let n = wire.len();
            let got = d.decode(&mut wire).unwrap().unwrap();
            assert_eq!(got, (n, Event::Binary(&payload[..])));
        }
    }

    #[test]
    fn rfc_example_hello_masked() {
        // RFC 6455 section 5.7: a single-frame masked text message "Hello".
        let mut wire = vec![
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut d = Decoder::server(100);
        assert_eq!(
            d.decode(&mut wire).unwrap(),
            Some((11, Event::Text(b"Hello")))
        );
    }

    #[test]
    fn fragments_are_reassembled_with_pings_between() {
        let mut wire = Vec::new();
        // First fragment (not fin), binary.
        wire.push(0x02);
        wire.push(0x80 | 3);
        wire.extend_from_slice(&MASK);
        let s = wire.len();
        wire.extend_from_slice(b"abc");
        apply_mask(&mut wire[s..], MASK);
        write_masked_frame(&mut wire, Opcode::Ping, b"p", MASK);
        // Final continuation: write a fin frame and patch its opcode to continuation.
        let s = wire.len();
        write_masked_frame(&mut wire, Opcode::Binary, b"de", MASK);
        wire[s] = 0x80;

        let mut d = Decoder::server(100);
        let mut buf = wire.clone();
        let (n1, e1) = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(e1, Event::Fragment);
        let mut rest = buf[n1..].to_vec();
        let (n2, e2) = d.decode(&mut rest).unwrap().unwrap();
        assert_eq!(e2, Event::Ping(b"p"));
        let mut rest = rest[n2..].to_vec();
        let (_, e3) = d.decode(&mut rest).unwrap().unwrap();
        assert_eq!(e3, Event::Binary(b"abcde"));
    }

    #[test]
    fn begin_finish_matches_write_frame() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let payload = vec![7u8; len];
            let mut a = vec![1u8];
            let at = begin(&mut a);
            a.extend_from_slice(&payload);
            finish(&mut a, at, Opcode::Binary);
            let mut b = vec![1u8];
            write_frame(&mut b, Opcode::Binary, &payload);
            assert_eq!(a, b, "len {len}");
        }
    }

    #[test]
    fn oversized_and_unmasked_are_refused() {
        let mut wire = Vec::new();
        write_masked_frame(&mut wire, Opcode::Binary, &[0; 200], MASK);
        assert!(matches!(
            Decoder::server(100).decode(&mut wire),
            Err(WsError::TooLarge { .. })
        ));
        // A 64-bit length claiming an exabyte is refused from the header alone.
        let mut huge = vec![0x82, 0x80 | 127, 0x10, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            Decoder::server(100).decode(&mut huge),
            Err(WsError::TooLarge { .. })
        ));
        let mut plain = Vec::new();
        write_frame(&mut plain, Opcode::Binary, b"x");
        assert!(matches!(
            Decoder::server(100).decode(&mut plain),
            Err(WsError::Protocol(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut d = Decoder::server(128);
            let mut at = 0;
            while at < bytes.len() {
                match d.decode(&mut bytes[at..]) {
                    Ok(Some((n, _))) => { prop_assert!(n > 0); at += n; }
                    _ => break,
                }
            }
        }
    }
}
