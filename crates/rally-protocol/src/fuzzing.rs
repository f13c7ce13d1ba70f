//! The checks behind the cargo-fuzz targets in `fuzz/`, shared with the test that replays
//! their corpora (`tests/fuzz_corpus.rs`): a corpus file runs through exactly the same
//! code under `cargo test` on stable as under the fuzzer. Not part of the crate's API.
//!
//! Each target takes arbitrary bytes, decodes them the way the server and the client SDK
//! do (bytes arrive in chunks of any size; an incomplete frame waits in a buffer for the
//! next chunk), and panics when an invariant breaks:
//!
//! - nothing panics, and a stream delivered in chunks decodes exactly as the same stream
//!   delivered whole: the same units, then the same error or the same bytes left waiting;
//! - the bytes waiting for the rest of a frame stay under the largest frame header plus
//!   the limit, because a length over the limit is refused from the header alone, before
//!   any of the body arrives; and the WebSocket reassembly buffer never holds more than
//!   the limit;
//! - a message that decodes re-encodes to bytes that decode to the same message, and that
//!   encoding is a fixed point; no prefix of a message that decodes decodes.
//!
//! Stream inputs (`frame_decoder`, `ws_decoder`): byte 0 picks the limit (bits 0-2, from
//! [`LIMITS`]), the side for WebSocket (bit 3: 0 is a server reading masked client frames,
//! 1 a client reading unmasked server frames) and the largest chunk (bits 5-7, from
//! [`CHUNK_CAPS`]); byte 1 seeds the chunk sizes; the rest is the stream.

use crate::frame::{self, FrameError};
use crate::msgpack::{self, Reader};
use crate::ws::{self, Opcode, WsError};
use crate::{ClientMessage, ServerMessage};

/// Limits (`max_message_bytes`) a stream input picks from: the default, the ends of the
/// configurable range, the WebSocket length-encoding boundaries, and degenerate limits the
/// decoders must survive too.
pub const LIMITS: [usize; 8] = [1, 7, 64, 125, 126, 4096, 65_536, 1 << 20];

/// Largest chunk a stream input picks from; `usize::MAX` delivers the stream in one piece.
/// 8192 is the server's read size.
pub const CHUNK_CAPS: [usize; 8] = [1, 2, 3, 7, 64, 1000, 8192, usize::MAX];

/// Most bytes a WebSocket frame header takes: two, an 8-byte length, a 4-byte mask.
pub const WS_MAX_HEADER: usize = 14;

/// Longest payload of a WebSocket control frame (RFC 6455, section 5.5).
const WS_MAX_CONTROL: usize = 125;

/// Bodies up to this long have every prefix checked; longer ones a sample (each check is
/// linear in the body, so all prefixes of a long body would slow the fuzzer down).
const ALL_PREFIXES_UP_TO: usize = 256;

/// One thing a decoder produced, owned, so that two deliveries can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// A message body: a TCP frame's, or a WebSocket binary message's.
    Body(Vec<u8>),
    /// A WebSocket text message (the server refuses these).
    Text(Vec<u8>),
    /// A WebSocket ping and its payload.
    Ping(Vec<u8>),
    /// A WebSocket pong.
    Pong,
    /// A WebSocket fragment was buffered.
    Fragment,
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every byte was delivered; this many wait for the rest of a frame.
    Waiting(usize),
    /// The TCP framing was refused.
    Frame(FrameError),
    /// The WebSocket framing was refused.
    Ws(WsError),
    /// A WebSocket close frame, with its status; the server reads no further.
    Closed(Option<u16>),
}

/// What decoding one stream produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Everything decoded, in order.
    pub units: Vec<Unit>,
    /// How it ended.
    pub end: End,
    /// Bytes of the stream the decoded units took.
    pub consumed: usize,
    /// Bytes of the stream delivered when it ended (all of it, unless a fault or a close
    /// stopped the reading).
    pub delivered: usize,
    /// Size of the last chunk delivered.
    pub last_chunk: usize,
}

/// One framing's decoder, as the stream driver sees it.
trait Step {
    /// Decodes one frame at the start of `buf`: `Ok(None)` means "read more".
    fn step(&mut self, buf: &mut [u8]) -> Result<Option<(usize, Unit)>, End>;
    /// The bytes an incomplete frame may leave waiting stay below this.
    fn waiting_bound(&self) -> usize;
}

/// Raw TCP: length-prefixed frames.
struct Tcp {
    max: usize,
}

impl Step for Tcp {
    fn step(&mut self, buf: &mut [u8]) -> Result<Option<(usize, Unit)>, End> {
        match frame::decode(buf, self.max) {
            Ok(Some((n, body))) => {
                assert!(!body.is_empty(), "an empty frame was accepted");
                assert!(
                    body.len() <= self.max,
                    "a frame over the limit was accepted"
                );
                assert_eq!(n, frame::HEADER_LEN + body.len());
                Ok(Some((n, Unit::Body(body.to_vec()))))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(End::Frame(e)),
        }
    }

    fn waiting_bound(&self) -> usize {
        frame::HEADER_LEN + self.max
    }
}

/// WebSocket frames, either side.
struct Ws {
    decoder: ws::Decoder,
    max: usize,
}

impl Step for Ws {
    fn step(&mut self, buf: &mut [u8]) -> Result<Option<(usize, Unit)>, End> {
        let max = self.max;
        let out = match self.decoder.decode(buf) {
            Ok(Some((n, event))) => Ok(Some((
                n,
                match event {
                    ws::Event::Binary(b) => {
                        assert!(b.len() <= max, "a message over the limit was accepted");
                        Unit::Body(b.to_vec())
                    }
                    ws::Event::Text(t) => {
                        assert!(t.len() <= max, "a message over the limit was accepted");
                        assert!(
                            std::str::from_utf8(t).is_ok(),
                            "text that is not UTF-8 was accepted"
                        );
                        Unit::Text(t.to_vec())
                    }
                    ws::Event::Ping(p) => {
                        assert!(p.len() <= WS_MAX_CONTROL, "a long ping was accepted");
                        Unit::Ping(p.to_vec())
                    }
                    ws::Event::Pong => Unit::Pong,
                    ws::Event::Fragment => Unit::Fragment,
                    ws::Event::Close(code) => {
                        assert!(
                            code.is_none_or(ws::is_valid_close_code),
                            "a close code that may not be sent was accepted"
                        );
                        return Err(End::Closed(code));
                    }
                },
            ))),
            Ok(None) => Ok(None),
            Err(e) => Err(End::Ws(e)),
        };
        let held = self.decoder.reassembly_capacity();
        assert!(
            held <= max,
            "the reassembly buffer holds {held} bytes, over the limit of {max}"
        );
        out
    }

    fn waiting_bound(&self) -> usize {
        WS_MAX_HEADER + self.max.max(WS_MAX_CONTROL)
    }
}

/// Feeds `stream` to `step` in chunks whose sizes `chunks` picks, as the server's read loop
/// does (`Reader::on_readable` in rally-server): frames are decoded straight from a chunk
/// when nothing waits, and the bytes of an incomplete frame wait for the next chunk.
fn deliver(step: &mut dyn Step, stream: &[u8], chunks: &mut dyn FnMut() -> usize) -> Delivery {
    // The WebSocket decoder unmasks in place: work on a copy.
    let mut stream = stream.to_vec();
    let mut units = Vec::new();
    let mut waiting: Vec<u8> = Vec::new();
    let mut consumed = 0;
    let mut delivered = 0;
    let mut last_chunk = 0;
    while delivered < stream.len() {
        last_chunk = chunks().clamp(1, stream.len() - delivered);
        let chunk = &mut stream[delivered..delivered + last_chunk];
        delivered += last_chunk;
        let result = if waiting.is_empty() {
            let result = decode_all(step, chunk, &mut units);
            if let Ok(used) = result {
                waiting.extend_from_slice(&chunk[used..]);
            }
            result
        } else {
            waiting.extend_from_slice(chunk);
            let result = decode_all(step, &mut waiting, &mut units);
            if let Ok(used) = result {
                waiting.drain(..used);
            }
            result
        };
        match result {
            Ok(used) => consumed += used,
            Err((used, end)) => {
                return Delivery {
                    units,
                    end,
                    consumed: consumed + used,
                    delivered,
                    last_chunk,
                }
            }
        }
        assert!(
            waiting.len() < step.waiting_bound(),
            "{} bytes wait for the rest of a frame; the bound is {}",
            waiting.len(),
            step.waiting_bound()
        );
    }
    Delivery {
        units,
        end: End::Waiting(waiting.len()),
        consumed,
        delivered,
        last_chunk,
    }
}

/// Decodes every whole frame at the start of `buf`; returns the bytes they took, or those
/// and how the stream ended.
fn decode_all(
    step: &mut dyn Step,
    buf: &mut [u8],
    units: &mut Vec<Unit>,
) -> Result<usize, (usize, End)> {
    let mut at = 0;
    while at < buf.len() {
        match step.step(&mut buf[at..]) {
            Ok(Some((n, unit))) => {
                assert!(n > 0 && n <= buf.len() - at, "a frame took {n} bytes");
                at += n;
                units.push(unit);
            }
            Ok(None) => break,
            Err(end) => return Err((at, end)),
        }
    }
    Ok(at)
}

/// Decodes a raw TCP stream of frames with limit `max`, in chunks `chunks` picks.
pub fn deliver_tcp(stream: &[u8], max: usize, chunks: &mut dyn FnMut() -> usize) -> Delivery {
    deliver(&mut Tcp { max }, stream, chunks)
}

/// Decodes a WebSocket stream with limit `max`, in chunks `chunks` picks: as the server
/// (client frames must be masked) when `server`, else as a client.
pub fn deliver_ws(
    stream: &[u8],
    server: bool,
    max: usize,
    chunks: &mut dyn FnMut() -> usize,
) -> Delivery {
    let decoder = if server {
        ws::Decoder::server(max)
    } else {
        ws::Decoder::client(max)
    };
    deliver(&mut Ws { decoder, max }, stream, chunks)
}

/// Delivers the whole stream in one piece.
fn whole() -> impl FnMut() -> usize {
    || usize::MAX
}

/// The parameters a stream input carries in its first two bytes.
#[derive(Debug, Clone, Copy)]
struct Params {
    max: usize,
    server: bool,
    chunk_cap: usize,
    seed: u8,
}

impl Params {
    fn parse(data: &[u8]) -> Option<(Params, &[u8])> {
        let [a, seed, stream @ ..] = data else {
            return None;
        };
        let params = Params {
            max: LIMITS[usize::from(a & 7)],
            server: a & 8 == 0,
            chunk_cap: CHUNK_CAPS[usize::from(a >> 5)],
            seed: *seed,
        };
        Some((params, stream))
    }

    /// Chunk sizes from 1 to the cap, from a small deterministic generator (splitmix64).
    fn chunks(self) -> impl FnMut() -> usize {
        let mut state = u64::from(self.seed);
        let cap = self.chunk_cap;
        move || {
            if cap == usize::MAX {
                return cap;
            }
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            1 + (z % cap as u64) as usize
        }
    }
}

/// The `frame_decoder` target: a raw TCP stream, see the module docs for the layout.
pub fn frame_decoder(data: &[u8]) {
    if let Some((params, stream)) = Params::parse(data) {
        check_tcp_stream(stream, params.max, &mut params.chunks());
    }
}

/// The `ws_decoder` target: a WebSocket stream, see the module docs for the layout.
pub fn ws_decoder(data: &[u8]) {
    if let Some((params, stream)) = Params::parse(data) {
        check_ws_stream(stream, params.server, params.max, &mut params.chunks());
    }
}

/// The `message_decoder` target: one message body, decoded as a client message and as a
/// server message.
pub fn message_decoder(data: &[u8]) {
    check_client_body(data);
    check_server_body(data);
    let mut r = Reader::new(data);
    if r.skip_value().is_ok() {
        let end = r.position();
        let mut again = Reader::new(data);
        assert_eq!(again.read_value_bytes(), Ok(&data[..end]));
    }
    assert!(r.position() <= data.len());
}

/// Checks a raw TCP stream: chunked and whole deliveries agree, an oversized or empty frame
/// is refused as soon as its header is in, the frames decoded are exactly the bytes they
/// took, and every body passes [`check_client_body`] and [`check_server_body`].
pub fn check_tcp_stream(stream: &[u8], max: usize, chunks: &mut dyn FnMut() -> usize) -> Delivery {
    let one = deliver_tcp(stream, max, &mut whole());
    let split = deliver_tcp(stream, max, chunks);
    assert_eq!(
        split.units, one.units,
        "chunked and whole deliveries differ"
    );
    assert_eq!(split.end, one.end, "chunked and whole deliveries end apart");
    assert_eq!(split.consumed, one.consumed);

    // Frames have one encoding: re-encoding the bodies gives back the bytes they took.
    let mut reframed = Vec::new();
    for unit in &one.units {
        let Unit::Body(body) = unit else {
            unreachable!("raw TCP yields only bodies")
        };
        frame::encode(body, &mut reframed);
        check_client_body(body);
        check_server_body(body);
    }
    assert_eq!(reframed.len(), one.consumed);
    assert!(
        stream.starts_with(&reframed),
        "frames re-encode differently"
    );
    match &one.end {
        End::Waiting(n) => assert_eq!(one.consumed + n, stream.len()),
        End::Frame(_) => {
            // Refused at the chunk that completed the header, not later.
            let header_end = one.consumed + frame::HEADER_LEN;
            assert!(split.delivered >= header_end);
            assert!(
                split.delivered - split.last_chunk < header_end,
                "a bad header was refused only after {} more bytes",
                split.delivered - header_end
            );
        }
        End::Ws(_) | End::Closed(_) => unreachable!("raw TCP has no WebSocket ends"),
    }
    one
}

/// Checks a WebSocket stream: chunked and whole deliveries agree, an oversized frame is
/// refused as soon as its length is in, every message re-framed decodes to itself, and
/// every body passes [`check_client_body`] and [`check_server_body`].
pub fn check_ws_stream(
    stream: &[u8],
    server: bool,
    max: usize,
    chunks: &mut dyn FnMut() -> usize,
) -> Delivery {
    let one = deliver_ws(stream, server, max, &mut whole());
    let split = deliver_ws(stream, server, max, chunks);
    assert_eq!(
        split.units, one.units,
        "chunked and whole deliveries differ"
    );
    assert_eq!(split.end, one.end, "chunked and whole deliveries end apart");
    assert_eq!(split.consumed, one.consumed);

    for unit in &one.units {
        if let Unit::Body(body) = unit {
            check_client_body(body);
            check_server_body(body);
            check_ws_reframe(body, server, max);
        }
    }
    match &one.end {
        End::Waiting(n) => assert_eq!(one.consumed + n, stream.len()),
        End::Ws(WsError::TooLarge { .. }) => {
            // Refused at the chunk that completed the length, before the mask and payload.
            let len_byte = stream[one.consumed + 1] & 0x7f;
            let header_end = one.consumed
                + match len_byte {
                    126 => 4,
                    127 => 10,
                    _ => 2,
                };
            assert!(split.delivered >= header_end);
            assert!(
                split.delivered - split.last_chunk < header_end,
                "an oversized frame was refused only after {} more bytes",
                split.delivered - header_end
            );
        }
        End::Ws(WsError::Protocol(_) | WsError::InvalidUtf8) | End::Closed(_) => {}
        End::Frame(_) => unreachable!("WebSocket has no TCP framing errors"),
    }
    one
}

/// A message framed the way its sender frames it decodes, whole, to itself.
fn check_ws_reframe(body: &[u8], server: bool, max: usize) {
    let mut wire = Vec::new();
    let mut decoder = if server {
        ws::write_masked_frame(&mut wire, Opcode::Binary, body, [0xa5, 0x01, 0xff, 0x3c]);
        ws::Decoder::server(max)
    } else {
        let at = ws::begin(&mut wire);
        wire.extend_from_slice(body);
        ws::finish(&mut wire, at, Opcode::Binary);
        ws::Decoder::client(max)
    };
    let n = wire.len();
    assert_eq!(
        decoder.decode(&mut wire),
        Ok(Some((n, ws::Event::Binary(body)))),
        "a message re-framed does not decode to itself"
    );
}

/// Checks a body as the server decodes it: if it decodes, it is one MessagePack value, an
/// input's payload is one value, its canonical encoding is no longer and decodes to the
/// same message, that encoding is a fixed point, and no prefix of the body decodes.
pub fn check_client_body(body: &[u8]) {
    let Ok(msg) = ClientMessage::decode(body) else {
        return;
    };
    assert!(
        msgpack::is_single_value(body),
        "a body that decodes is not one MessagePack value"
    );
    if let ClientMessage::Input { payload, .. } = &msg {
        assert!(msgpack::is_single_value(payload));
    }
    let mut encoded = Vec::new();
    msg.encode(&mut encoded);
    assert!(
        encoded.len() <= body.len(),
        "the canonical encoding of {msg:?} is longer than a body that decoded to it"
    );
    let again = ClientMessage::decode(&encoded)
        .unwrap_or_else(|e| panic!("{msg:?} re-encoded does not decode: {e}"));
    assert_eq!(again, msg);
    let mut twice = Vec::new();
    again.encode(&mut twice);
    assert_eq!(
        twice, encoded,
        "the encoding of {msg:?} is not a fixed point"
    );
    check_prefixes(body, |b| ClientMessage::decode(b).is_err());
}

/// Checks a body as a client decodes it: if it decodes, it is one MessagePack value, a
/// state's payload is one value, it re-encodes to bytes that decode to the same message,
/// that encoding is a fixed point, and no prefix of the body decodes.
pub fn check_server_body(body: &[u8]) {
    let Ok(msg) = ServerMessage::decode(body) else {
        return;
    };
    assert!(
        msgpack::is_single_value(body),
        "a body that decodes is not one MessagePack value"
    );
    if let ServerMessage::State { payload, .. } = &msg {
        assert!(msgpack::is_single_value(payload));
    }
    let mut encoded = Vec::new();
    msg.encode(&mut encoded);
    let again = ServerMessage::decode(&encoded)
        .unwrap_or_else(|e| panic!("{msg:?} re-encoded does not decode: {e}"));
    assert_eq!(again, msg);
    let mut twice = Vec::new();
    again.encode(&mut twice);
    assert_eq!(
        twice, encoded,
        "the encoding of {msg:?} is not a fixed point"
    );
    check_prefixes(body, |b| ServerMessage::decode(b).is_err());
}

/// A body that decodes is read to its last byte, so every strict prefix must be refused.
fn check_prefixes(body: &[u8], refused: impl Fn(&[u8]) -> bool) {
    let len = body.len();
    let mut check = |cut: usize| {
        assert!(
            refused(&body[..cut]),
            "the first {cut} of {len} bytes decode too"
        );
    };
    if len <= ALL_PREFIXES_UP_TO {
        (0..len).for_each(&mut check);
    } else {
        [0, 1, len / 2, len - 1].into_iter().for_each(check);
    }
}
