//! Messages on the wire, per transport, with no IO: framing outgoing messages into a
//! buffer, and decoding incoming bytes into server messages.
//!
//! Everything is encoded, framed and deframed by `rally-protocol` (its `framing` module's
//! client role); this module draws the masking keys and turns the protocol crate's
//! outcomes into the SDK's.

use bytes::{Buf, BytesMut};
use rally_protocol::framing::{self, ClientFramer, Deframer, FrameFault, TooLarge};
use rally_protocol::message::tag;
use rally_protocol::msgpack::Reader;
use rally_protocol::ws::Opcode;
use rally_protocol::{ClientMessage, DecodeError, ServerMessage};

use crate::config::Transport;
use crate::error::Error;

/// Frames outgoing messages for one transport: the protocol's client-role framer, with
/// the masking keys it needs over WebSocket.
#[derive(Debug)]
pub(crate) struct Framing {
    /// The protocol's client-role framer.
    framer: ClientFramer,
    /// Random masking keys, drawn from the OS in batches (unused over TCP).
    masks: MaskPool,
}

impl Framing {
    pub(crate) fn new(transport: Transport) -> Framing {
        Framing {
            framer: ClientFramer(transport),
            masks: MaskPool::new(),
        }
    }

    /// The transport this framing writes.
    pub(crate) fn transport(&self) -> Transport {
        self.framer.0
    }

    /// Appends `msg`, framed, to `out`, unless its body is longer than `max_body` (the
    /// server's `max_message_bytes`), in which case `out` is left as it was.
    pub(crate) fn push(
        &mut self,
        out: &mut Vec<u8>,
        msg: &ClientMessage<'_>,
        max_body: usize,
    ) -> Result<(), Error> {
        let mask = self.mask();
        self.framer
            .message(msg, max_body, mask, out)
            .map_err(|TooLarge { len, max }| Error::TooLarge { len, max })
    }

    /// Appends a WebSocket control frame (a pong or a close); nothing over raw TCP.
    pub(crate) fn push_control(&mut self, out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
        let mask = self.mask();
        self.framer.control(opcode, payload, mask, out);
    }

    /// The next masking key; over TCP none is drawn (frames there are not masked).
    fn mask(&mut self) -> [u8; 4] {
        match self.framer.0 {
            Transport::Tcp => [0; 4],
            Transport::WebSocket => self.masks.next(),
        }
    }
}

/// Masking keys for client frames. RFC 6455 wants each unpredictable, so they come from
/// the OS's random source, 16 at a time to spare a system call per frame.
#[derive(Debug)]
pub(crate) struct MaskPool {
    keys: [u8; 64],
    used: usize,
}

impl MaskPool {
    fn new() -> MaskPool {
        MaskPool {
            keys: [0; 64],
            used: 64,
        }
    }

    fn next(&mut self) -> [u8; 4] {
        if self.used == self.keys.len() {
            // Without OS randomness the old keys are reused: still valid masks, only
            // predictable, which matters to browsers' proxies rather than to this SDK.
            let _ = getrandom::fill(&mut self.keys);
            self.used = 0;
        }
        let k = &self.keys[self.used..self.used + 4];
        self.used += 4;
        [k[0], k[1], k[2], k[3]]
    }
}

/// One decoded unit of what the server sent.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A protocol message.
    Msg(ServerMessage),
    /// An `error` whose code this SDK does not know, decoded by hand.
    UnknownError {
        code: u16,
        message: String,
        req: u32,
    },
    /// A WebSocket ping. Only the handshake decodes whole units (an open connection
    /// reads spans, and answers pings from there), and a server has no reason to ping
    /// before its `welcome`: it is skipped.
    Ping,
    /// A WebSocket close frame.
    Close,
    /// Nothing to act on: a WebSocket fragment or pong, or a message type from a newer
    /// protocol revision (ignored, like fields past the known ones).
    Nothing,
}

/// Bytes received and not yet decoded, and the transport's decoder.
#[derive(Debug)]
pub(crate) struct Inbound {
    /// Received bytes; decoded units are advanced past.
    pub(crate) buf: BytesMut,
    /// The protocol's client-role deframer for the transport.
    deframer: Deframer,
    /// Bytes of the unit [`Inbound::next_span`] handed out last, still at the start of
    /// `buf` because its body is lent out; dropped at the next call.
    lent: usize,
    /// A WebSocket message that came in fragments, reassembled; empty (unallocated)
    /// unless a server fragments, which Rally's never does.
    assembled: Vec<u8>,
}

/// Where the body of a unit decoded by [`Inbound::next_span`] lies, valid until the next
/// call: a range of `buf`, or the reassembled message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: usize,
    end: usize,
    assembled: bool,
}

impl Span {
    /// The last `len` bytes of a unit of `used` bytes: where a frame's body is.
    fn tail(used: usize, len: usize) -> Span {
        Span {
            start: used - len,
            end: used,
            assembled: false,
        }
    }

    /// The part `range` (relative to this span) of it.
    pub(crate) fn sub(self, range: std::ops::Range<usize>) -> Span {
        Span {
            start: self.start + range.start,
            end: self.start + range.end,
            assembled: self.assembled,
        }
    }
}

/// One decoded unit, as places in the buffer rather than borrowed bytes, so the caller
/// can act on the connection before it borrows the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// A message body.
    Body(Span),
    /// A WebSocket ping and its payload, to answer with a pong.
    Ping(Span),
    /// A WebSocket close frame.
    Close,
    /// A WebSocket fragment or pong: nothing to act on.
    Nothing,
}

impl Inbound {
    pub(crate) fn new(transport: Transport, max: usize) -> Inbound {
        Inbound {
            buf: BytesMut::new(),
            deframer: Deframer::client(transport, max),
            lent: 0,
            assembled: Vec::new(),
        }
    }

    /// Like [`Inbound::next`], without copying or decoding the body: decodes the next
    /// whole unit at the start of the buffer and says where its body is; the bytes stay
    /// in place until the next call. `None` when more bytes are needed.
    pub(crate) fn next_span(&mut self) -> Result<Option<Unit>, Error> {
        if self.lent > 0 {
            self.buf.advance(self.lent);
            self.lent = 0;
        }
        // A binary frame whole in itself has its payload at the frame's tail; the last
        // frame of a fragmented WebSocket message hands out the decoder's reassembly.
        let continuation = matches!(self.deframer, Deframer::Ws(_))
            && self.buf.first().is_some_and(|b| b & 0x0f == 0);
        let (used, unit) = match self.deframer.decode(&mut self.buf) {
            Ok(None) => return Ok(None),
            Ok(Some((used, incoming))) => (
                used,
                match incoming {
                    framing::Incoming::Message(body) if continuation => {
                        self.assembled.clear();
                        self.assembled.extend_from_slice(body);
                        Unit::Body(Span {
                            start: 0,
                            end: body.len(),
                            assembled: true,
                        })
                    }
                    framing::Incoming::Message(body) => Unit::Body(Span::tail(used, body.len())),
                    framing::Incoming::Ping(p) => Unit::Ping(Span::tail(used, p.len())),
                    framing::Incoming::Close(_) => Unit::Close,
                    framing::Incoming::Nothing => Unit::Nothing,
                },
            ),
            Err(fault) => return Err(bad_frame(fault)),
        };
        self.lent = used;
        Ok(Some(unit))
    }

    /// The bytes received and not decoded yet (the unit handed out last is decoded).
    pub(crate) fn into_unread(mut self) -> Vec<u8> {
        self.buf.advance(self.lent);
        self.buf.to_vec()
    }

    /// Drops everything received, decoded or not.
    pub(crate) fn discard(&mut self) {
        self.buf.clear();
        self.lent = 0;
    }

    /// The bytes at `span`, from the last [`Inbound::next_span`].
    pub(crate) fn span(&self, span: Span) -> &[u8] {
        let from = if span.assembled {
            &self.assembled[..]
        } else {
            &self.buf[..]
        };
        &from[span.start..span.end]
    }

    /// Decodes the next whole unit at the start of the buffer, or `None` when more bytes
    /// are needed.
    pub(crate) fn next(&mut self) -> Result<Option<Incoming>, Error> {
        let (used, incoming) = match self.deframer.decode(&mut self.buf) {
            Ok(None) => return Ok(None),
            Ok(Some((used, incoming))) => (
                used,
                match incoming {
                    framing::Incoming::Message(body) => decode(body)?,
                    framing::Incoming::Ping(_) => Incoming::Ping,
                    framing::Incoming::Close(_) => Incoming::Close,
                    framing::Incoming::Nothing => Incoming::Nothing,
                },
            ),
            Err(fault) => return Err(bad_frame(fault)),
        };
        self.buf.advance(used);
        Ok(Some(incoming))
    }
}

/// What a frame the protocol's deframer refused becomes.
fn bad_frame(fault: FrameFault) -> Error {
    Error::Protocol(format!("bad frame: {}", fault.message))
}

/// A well-formed `state` body decoded in place: its tick, its last seq, and where its
/// payload lies in `body`. `None` for anything else, which [`decode`] then decodes (or
/// refuses with the exact reason). States are nearly all a client receives: this path
/// allocates nothing.
pub(crate) fn peek_state(body: &[u8]) -> Option<(u64, u32, std::ops::Range<usize>)> {
    let mut r = Reader::new(body);
    let n = r.read_array_len().ok()?;
    if n < 4 || r.read_u64().ok()? != u64::from(tag::STATE) {
        return None;
    }
    let tick = r.read_u64().ok()?;
    let last_seq = r.read_u32().ok()?;
    let start = r.position();
    r.skip_value().ok()?;
    let payload = start..r.position();
    // Fields a later revision may append are skipped; bytes after the array are not.
    for _ in 4..n {
        r.skip_value().ok()?;
    }
    (r.remaining() == 0).then_some((tick, last_seq, payload))
}

/// Decodes one message body.
pub(crate) fn decode(body: &[u8]) -> Result<Incoming, Error> {
    match ServerMessage::decode(body) {
        Ok(m) => Ok(Incoming::Msg(m)),
        Err(DecodeError::UnknownType(_)) => Ok(Incoming::Nothing),
        Err(DecodeError::UnknownCode(_)) => decode_unknown_error(body)
            .ok_or_else(|| Error::Protocol("undecodable error message".into())),
        Err(e) => Err(Error::Protocol(format!("undecodable message: {e}"))),
    }
}

/// `[71, code, message, req]` for a code the protocol crate refuses to name.
fn decode_unknown_error(body: &[u8]) -> Option<Incoming> {
    let mut r = Reader::new(body);
    if r.read_array_len().ok()? < 4 {
        return None;
    }
    r.read_u64().ok()?;
    Some(Incoming::UnknownError {
        code: r.read_u16().ok()?,
        message: r.read_str().ok()?.to_owned(),
        req: r.read_u32().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use rally_protocol::{frame, msgpack, ws, ErrorCode};

    use super::*;

    fn server_bytes(transport: Transport, msgs: &[ServerMessage]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            let mut body = Vec::new();
            m.encode(&mut body);
            match transport {
                Transport::Tcp => frame::encode(&body, &mut out),
                Transport::WebSocket => ws::write_frame(&mut out, Opcode::Binary, &body),
            }
        }
        out
    }

    #[test]
    fn decodes_split_and_batched_messages_on_both_transports() {
        let msgs = [
            ServerMessage::Pong { nonce: 9 },
            ServerMessage::Ok { req: 3 },
        ];
        for t in [Transport::Tcp, Transport::WebSocket] {
            let bytes = server_bytes(t, &msgs);
            let mut inbound = Inbound::new(t, 1024);
            let mut got = Vec::new();
            // One byte at a time: every prefix is either incomplete or a whole message.
            for b in bytes {
                inbound.buf.extend_from_slice(&[b]);
                while let Some(i) = inbound.next().unwrap() {
                    got.push(i);
                }
            }
            assert!(matches!(
                got.as_slice(),
                [
                    Incoming::Msg(ServerMessage::Pong { nonce: 9 }),
                    Incoming::Msg(ServerMessage::Ok { req: 3 })
                ]
            ));
            assert!(inbound.buf.is_empty());
        }
    }

    #[test]
    fn unknown_types_are_skipped_and_unknown_codes_kept() {
        let mut body = Vec::new();
        msgpack::write_array_len(&mut body, 2);
        msgpack::write_uint(&mut body, 90);
        msgpack::write_uint(&mut body, 1);
        assert!(matches!(decode(&body), Ok(Incoming::Nothing)));
        let mut body = Vec::new();
        msgpack::write_array_len(&mut body, 4);
        msgpack::write_uint(&mut body, 71);
        msgpack::write_uint(&mut body, 999);
        msgpack::write_str(&mut body, "new");
        msgpack::write_uint(&mut body, 5);
        assert!(matches!(
            decode(&body),
            Ok(Incoming::UnknownError { code: 999, req: 5, ref message }) if message == "new"
        ));
        assert!(decode(&[0x91]).is_err());
    }

    #[test]
    fn oversized_server_messages_are_refused() {
        let big = ServerMessage::Error {
            code: ErrorCode::Internal,
            message: "x".repeat(100),
            req: 0,
        };
        for t in [Transport::Tcp, Transport::WebSocket] {
            let mut inbound = Inbound::new(t, 50);
            inbound
                .buf
                .extend_from_slice(&server_bytes(t, std::slice::from_ref(&big)));
            assert!(matches!(inbound.next(), Err(Error::Protocol(_))));
        }
    }

    #[test]
    fn client_frames_decode_on_the_server_side() {
        let ping = ClientMessage::Ping { nonce: 5 };
        let mut body = Vec::new();
        ping.encode(&mut body);
        for t in [Transport::Tcp, Transport::WebSocket] {
            let mut framing = Framing::new(t);
            let mut out = Vec::new();
            framing.push(&mut out, &ping, 4096).unwrap();
            framing.push(&mut out, &ping, 4096).unwrap();
            let first = match t {
                Transport::Tcp => frame::decode(&out, 4096).unwrap().unwrap().1.to_vec(),
                Transport::WebSocket => match ws::Decoder::server(4096).decode(&mut out) {
                    Ok(Some((_, ws::Event::Binary(b)))) => b.to_vec(),
                    other => panic!("{other:?}"),
                },
            };
            assert_eq!(first, body);
            let mut small = Vec::new();
            assert!(matches!(
                framing.push(&mut small, &ping, 2),
                Err(Error::TooLarge { len: 3, max: 2 })
            ));
            assert!(small.is_empty(), "nothing of a refused message is left");
        }
    }

    #[test]
    fn states_decode_in_place_exactly_as_the_full_decoder_does() {
        let payload = [0x92, 0x01, 0xa2, b'h', b'i'];
        let mut plain = Vec::new();
        rally_protocol::message::encode_state(&mut plain, 300, 7, &payload);
        // A later revision's extra field is skipped.
        let mut extended = Vec::new();
        msgpack::write_array_len(&mut extended, 5);
        extended.extend_from_slice(&plain[1..]);
        msgpack::write_uint(&mut extended, 1);
        for body in [&plain, &extended] {
            let (tick, last_seq, at) = peek_state(body).expect("a state");
            assert_eq!((tick, last_seq, &body[at]), (300, 7, &payload[..]));
            assert!(matches!(
                decode(body),
                Ok(Incoming::Msg(ServerMessage::State {
                    tick: 300,
                    last_seq: 7,
                    ..
                }))
            ));
        }
        // Not states, or not well-formed ones: left to the full decoder.
        let mut trailing = plain.clone();
        trailing.push(0);
        let mut pong = Vec::new();
        ServerMessage::Pong { nonce: 1 }.encode(&mut pong);
        for body in [
            &trailing[..],
            &pong,
            &plain[..plain.len() - 1],
            &[0x93, 0x43, 1, 1],
        ] {
            assert_eq!(peek_state(body), None, "{body:?}");
        }
        assert!(decode(&trailing).is_err());
    }

    #[test]
    fn spans_find_the_same_bodies_as_copies_on_both_transports() {
        let msgs = [
            ServerMessage::Pong { nonce: 9 },
            ServerMessage::State {
                tick: 1,
                last_seq: 2,
                payload: bytes::Bytes::from_static(&[0x90]),
            },
        ];
        for t in [Transport::Tcp, Transport::WebSocket] {
            let mut bytes = server_bytes(t, &msgs);
            if t == Transport::WebSocket {
                ws::write_frame(&mut bytes, Opcode::Ping, b"p");
            }
            let mut inbound = Inbound::new(t, 1024);
            let mut got = Vec::new();
            for b in bytes {
                inbound.buf.extend_from_slice(&[b]);
                while let Some(unit) = inbound.next_span().unwrap() {
                    got.push(match unit {
                        Unit::Body(at) => ServerMessage::decode(inbound.span(at)).unwrap(),
                        Unit::Ping(at) => {
                            assert_eq!(inbound.span(at), b"p");
                            continue;
                        }
                        other => panic!("{other:?}"),
                    });
                }
            }
            assert_eq!(got, msgs);
            assert!(inbound.next_span().unwrap().is_none());
            assert!(
                inbound.buf.is_empty(),
                "the last unit is dropped at the next call"
            );
        }
    }

    #[test]
    fn a_fragmented_websocket_message_is_lent_reassembled() {
        let mut body = Vec::new();
        ServerMessage::Ok { req: 4 }.encode(&mut body);
        let mut bytes = vec![0x02, 1, body[0]];
        bytes.push(0x80);
        bytes.push((body.len() - 1) as u8);
        bytes.extend_from_slice(&body[1..]);
        let mut inbound = Inbound::new(Transport::WebSocket, 1024);
        inbound.buf.extend_from_slice(&bytes);
        assert_eq!(inbound.next_span().unwrap(), Some(Unit::Nothing));
        let Some(Unit::Body(at)) = inbound.next_span().unwrap() else {
            panic!("the whole message");
        };
        assert_eq!(inbound.span(at), &body[..]);
        assert!(inbound.next_span().unwrap().is_none());
    }

    #[test]
    fn masks_vary() {
        let mut pool = MaskPool::new();
        let keys: Vec<[u8; 4]> = (0..40).map(|_| pool.next()).collect();
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert!(distinct.len() > 30, "{keys:?}");
    }
}
