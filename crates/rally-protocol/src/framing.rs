//! One framer and one deframer per role, over either [`Transport`], so the server, the
//! client SDK, the bots and the load tools frame messages with the same code.
//!
//! - Server role: [`Deframer::server`] reads client frames (length-prefixed, or WebSocket
//!   frames that must be masked and are unmasked in place); [`ServerFramer`] writes plain
//!   frames.
//! - Client role: [`Deframer::client`] reads server frames (unmasked WebSocket frames);
//!   [`ClientFramer`] writes masked ones. The masking keys come from the caller: choosing
//!   them (from the OS's random source, or a fixed key in a load tool) is IO this crate
//!   leaves out.
//!
//! Messages are encoded in place in the caller's output buffer and a decoded body borrows
//! the input buffer: nothing here allocates on the hot path (a [`FrameFault`]'s message
//! is built only when a connection is being refused).

use crate::transport::Transport;
use crate::ws::{self, Opcode};
use crate::{frame, ClientMessage, ErrorCode, ServerMessage};

/// One decoded frame that matters to the protocol.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// One whole message body.
    Message(&'a [u8]),
    /// A WebSocket ping: answer with a pong carrying this payload.
    Ping(&'a [u8]),
    /// Nothing to act on (a pong, a fragment of a message still being reassembled).
    Nothing,
    /// The peer closes (a WebSocket close frame), with its status code if it gave one.
    Close(Option<u16>),
}

/// Why a stream of frames was refused: the `{code, message}` the refusing side sends
/// (or reports) before it closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct FrameFault {
    /// `MESSAGE_TOO_LARGE` for an oversized message, `BAD_MESSAGE` for the rest.
    pub code: ErrorCode,
    /// What was wrong, for a human.
    pub message: String,
    /// The WebSocket close status, when the codec's error names one (1002 for a protocol
    /// error, 1007 for bad UTF-8, 1009 for too big); `None` for TCP and for refusals of
    /// Rally's own (text where binary is wanted), whose close follows `code`.
    pub ws_close: Option<u16>,
}

impl FrameFault {
    fn too_large(len: u64, max: usize) -> FrameFault {
        FrameFault {
            code: ErrorCode::MessageTooLarge,
            message: format!("message of {len} bytes exceeds max_message_bytes {max}"),
            ws_close: None,
        }
    }

    fn bad(message: impl Into<String>) -> FrameFault {
        FrameFault {
            code: ErrorCode::BadMessage,
            message: message.into(),
            ws_close: None,
        }
    }

    /// The fault for a WebSocket codec error, with the close status the codec names.
    fn ws(e: ws::WsError) -> FrameFault {
        let close = e.close_code();
        let mut fault = match e {
            ws::WsError::TooLarge { len, max } => FrameFault::too_large(len, max),
            e => FrameFault::bad(e.to_string()),
        };
        fault.ws_close = Some(close);
        fault
    }
}

/// Per-connection decoding state for one role and transport.
#[derive(Debug)]
pub enum Deframer {
    /// Length-prefixed frames of at most `max` body bytes.
    Tcp {
        /// Largest body accepted.
        max: usize,
    },
    /// WebSocket frames, reassembled into messages.
    Ws(ws::Decoder),
}

impl Deframer {
    /// Whether it holds nothing of a message in progress (a WebSocket message's earlier
    /// fragments): another deframer of the same kind would decode the next bytes alike.
    pub fn is_idle(&self) -> bool {
        match self {
            Deframer::Tcp { .. } => true,
            Deframer::Ws(d) => d.is_idle(),
        }
    }

    /// The server's deframer: reads what a client sends (masked WebSocket frames).
    pub fn server(transport: Transport, max_message_bytes: usize) -> Deframer {
        match transport {
            Transport::Tcp => Deframer::Tcp {
                max: max_message_bytes,
            },
            Transport::WebSocket => Deframer::Ws(ws::Decoder::server(max_message_bytes)),
        }
    }

    /// A client's deframer: reads what a server sends (unmasked WebSocket frames).
    pub fn client(transport: Transport, max_message_bytes: usize) -> Deframer {
        match transport {
            Transport::Tcp => Deframer::Tcp {
                max: max_message_bytes,
            },
            Transport::WebSocket => Deframer::Ws(ws::Decoder::client(max_message_bytes)),
        }
    }

    /// Decodes one frame from the start of `buf`: `Ok(None)` means "read more"; otherwise
    /// the bytes it used and what it was. WebSocket payloads are unmasked in place, which
    /// is why `buf` is mutable. Text messages are refused: Rally speaks binary MessagePack.
    pub fn decode<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> Result<Option<(usize, Incoming<'a>)>, FrameFault> {
        match self {
            Deframer::Tcp { max } => match frame::decode(buf, *max) {
                Ok(Some((n, body))) => Ok(Some((n, Incoming::Message(body)))),
                Ok(None) => Ok(None),
                Err(frame::FrameError::TooLarge { len, max }) => {
                    Err(FrameFault::too_large(len, max))
                }
                Err(e @ frame::FrameError::Empty) => Err(FrameFault::bad(e.to_string())),
            },
            Deframer::Ws(d) => match d.decode(buf) {
                Ok(Some((n, event))) => {
                    let incoming = match event {
                        ws::Event::Binary(body) => Incoming::Message(body),
                        ws::Event::Text(_) => {
                            return Err(FrameFault::bad(
                                "text messages are not accepted; send binary MessagePack",
                            ))
                        }
                        ws::Event::Ping(p) => Incoming::Ping(p),
                        ws::Event::Pong | ws::Event::Fragment => Incoming::Nothing,
                        ws::Event::Close(code) => Incoming::Close(code),
                    };
                    Ok(Some((n, incoming)))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(FrameFault::ws(e)),
            },
        }
    }
}

/// Writes the server's frames: plain (unmasked) over WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFramer(pub Transport);

impl ServerFramer {
    /// Starts a frame whose body the caller appends to `out` next; returns where it
    /// starts, for [`ServerFramer::finish`].
    pub fn begin(self, out: &mut Vec<u8>) -> usize {
        match self.0 {
            Transport::Tcp => frame::begin(out),
            Transport::WebSocket => ws::begin(out),
        }
    }

    /// Closes the frame [`ServerFramer::begin`] started at `at`.
    pub fn finish(self, out: &mut Vec<u8>, at: usize) {
        match self.0 {
            Transport::Tcp => frame::finish(out, at),
            Transport::WebSocket => ws::finish(out, at, Opcode::Binary),
        }
    }

    /// Appends one framed server message.
    pub fn message(self, msg: &ServerMessage, out: &mut Vec<u8>) {
        let at = self.begin(out);
        msg.encode(out);
        self.finish(out, at);
    }

    /// Appends an already encoded message body.
    pub fn body(self, body: &[u8], out: &mut Vec<u8>) {
        match self.0 {
            Transport::Tcp => frame::encode(body, out),
            Transport::WebSocket => ws::write_frame(out, Opcode::Binary, body),
        }
    }

    /// Appends a WebSocket pong (nothing over TCP).
    pub fn pong(self, payload: &[u8], out: &mut Vec<u8>) {
        if self.0 == Transport::WebSocket {
            ws::write_frame(out, Opcode::Pong, payload);
        }
    }

    /// Appends a WebSocket close frame (nothing over TCP, where closing the socket says it).
    pub fn close(self, code: u16, out: &mut Vec<u8>) {
        if self.0 == Transport::WebSocket {
            ws::write_close(out, code);
        }
    }
}

/// A client message whose body is longer than the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message of {len} bytes exceeds max_message_bytes {max}")]
pub struct TooLarge {
    /// The body's length.
    pub len: usize,
    /// The largest body the server accepts.
    pub max: usize,
}

/// Room for a masked WebSocket header: the longest header and the 4-byte key.
const MASKED_HEADER: usize = ws::MAX_HEADER + 4;

/// Writes a client's frames: masked with the key given per frame over WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFramer(pub Transport);

impl ClientFramer {
    /// Appends `msg`, framed, to `out`, unless its body is longer than `max_body` (the
    /// server's `max_message_bytes`): then `out` is left as it was. The body is encoded in
    /// place and masked there, with no scratch buffer.
    pub fn message(
        self,
        msg: &ClientMessage<'_>,
        max_body: usize,
        mask: [u8; 4],
        out: &mut Vec<u8>,
    ) -> Result<(), TooLarge> {
        let at = out.len();
        let header = match self.0 {
            Transport::Tcp => frame::HEADER_LEN,
            Transport::WebSocket => MASKED_HEADER,
        };
        out.resize(at + header, 0);
        msg.encode(out);
        let len = out.len() - at - header;
        if len > max_body {
            out.truncate(at);
            return Err(TooLarge { len, max: max_body });
        }
        match self.0 {
            Transport::Tcp => frame::finish(out, at),
            Transport::WebSocket => finish_masked_binary(out, at, mask),
        }
        Ok(())
    }

    /// Appends an already encoded message body (a load tool's, possibly a bad one: no
    /// length check).
    pub fn body(self, body: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
        match self.0 {
            Transport::Tcp => frame::encode(body, out),
            Transport::WebSocket => ws::write_masked_frame(out, Opcode::Binary, body, mask),
        }
    }

    /// Appends a WebSocket control frame (a pong or a close); nothing over TCP.
    pub fn control(self, opcode: Opcode, payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
        if self.0 == Transport::WebSocket {
            ws::write_masked_frame(out, opcode, payload, mask);
        }
    }
}

/// FIN and the binary opcode: the first byte of every frame carrying one message.
const FIN_BINARY: u8 = 0x82;

/// Writes the masked binary header of the frame whose payload follows [`MASKED_HEADER`]
/// reserved bytes at `at`, slides the payload back behind it and masks it.
fn finish_masked_binary(out: &mut Vec<u8>, at: usize, mask: [u8; 4]) {
    let len = out.len() - at - MASKED_HEADER;
    let mut h = [0u8; MASKED_HEADER];
    h[0] = FIN_BINARY;
    let n = if len < 126 {
        h[1] = 0x80 | len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        h[1] = 0x80 | 126;
        h[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        h[1] = 0x80 | 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    h[n..n + 4].copy_from_slice(&mask);
    let n = n + 4;
    out[at..at + n].copy_from_slice(&h[..n]);
    out.copy_within(at + MASKED_HEADER.., at + n);
    out.truncate(at + n + len);
    ws::apply_mask(&mut out[at + n..], mask);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn chat(len: usize) -> String {
        "x".repeat(len)
    }

    #[test]
    fn client_frames_are_what_the_server_deframer_reads() {
        for transport in [Transport::Tcp, Transport::WebSocket] {
            for len in [0usize, 100, 125, 126, 1000, 65_535, 70_000] {
                let text = chat(len);
                let msg = ClientMessage::Chat {
                    req: 3,
                    text: &text,
                };
                let mut body = Vec::new();
                msg.encode(&mut body);
                let mut out = vec![7u8];
                ClientFramer(transport)
                    .message(&msg, usize::MAX, MASK, &mut out)
                    .unwrap();
                let mut same = vec![7u8];
                ClientFramer(transport).body(&body, MASK, &mut same);
                assert_eq!(out, same, "{transport} {len}");
                let whole = out.len() - 1;
                let mut deframer = Deframer::server(transport, 1 << 20);
                let (used, got) = deframer.decode(&mut out[1..]).unwrap().unwrap();
                assert_eq!((used, got), (whole, Incoming::Message(&body[..])));
            }
        }
    }

    #[test]
    fn a_client_message_over_the_limit_leaves_the_buffer_alone() {
        let text = chat(200);
        let msg = ClientMessage::Chat {
            req: 1,
            text: &text,
        };
        for transport in [Transport::Tcp, Transport::WebSocket] {
            let mut out = vec![1, 2, 3];
            let err = ClientFramer(transport)
                .message(&msg, 64, MASK, &mut out)
                .unwrap_err();
            assert_eq!((err.max, out), (64, vec![1, 2, 3]));
            assert!(err.len > 200);
        }
    }

    #[test]
    fn server_frames_are_what_the_client_deframer_reads() {
        for transport in [Transport::Tcp, Transport::WebSocket] {
            for len in [0usize, 125, 126, 70_000] {
                let msg = ServerMessage::Error {
                    code: ErrorCode::Internal,
                    message: chat(len),
                    req: 0,
                };
                let mut body = Vec::new();
                msg.encode(&mut body);
                let mut out = Vec::new();
                ServerFramer(transport).message(&msg, &mut out);
                let mut same = Vec::new();
                ServerFramer(transport).body(&body, &mut same);
                assert_eq!(out, same);
                let mut deframer = Deframer::client(transport, 1 << 20);
                let (used, got) = deframer.decode(&mut out).unwrap().unwrap();
                assert_eq!((used, got), (same.len(), Incoming::Message(&body[..])));
            }
        }
    }

    #[test]
    fn faults_carry_the_codes_a_peer_is_told() {
        let mut d = Deframer::server(Transport::Tcp, 8);
        let mut big = vec![0, 0, 0, 9];
        big.extend_from_slice(&[0; 9]);
        assert_eq!(
            d.decode(&mut big).unwrap_err().code,
            ErrorCode::MessageTooLarge
        );
        let mut text = Vec::new();
        ws::write_masked_frame(&mut text, Opcode::Text, b"hi", MASK);
        let mut d = Deframer::server(Transport::WebSocket, 64);
        assert_eq!(d.decode(&mut text).unwrap_err().code, ErrorCode::BadMessage);
        // The server role wants masked frames, the client role unmasked ones.
        let mut plain = Vec::new();
        ws::write_frame(&mut plain, Opcode::Binary, b"hi");
        let mut d = Deframer::server(Transport::WebSocket, 64);
        assert_eq!(
            d.decode(&mut plain).unwrap_err().code,
            ErrorCode::BadMessage
        );
        let mut close = Vec::new();
        ServerFramer(Transport::WebSocket).close(1001, &mut close);
        let mut d = Deframer::client(Transport::WebSocket, 64);
        assert_eq!(
            d.decode(&mut close).unwrap().unwrap().1,
            Incoming::Close(Some(1001))
        );
    }
}
