//! Every message of protocol version 1, with its encoder and decoder.
//!
//! A message body is one MessagePack array whose first element is the message type (a
//! small integer) and whose next elements are the fields, in the order given here and in
//! `docs/protocol.md`. A decoder ignores elements past the ones it knows, so a later minor
//! revision may append fields without breaking older peers.
//!
//! Client messages decode by borrowing from the received bytes (no allocation on the
//! server's hot path); server messages decode into owned values for clients.

use bytes::Bytes;
use thiserror::Error;

use crate::error_code::ErrorCode;
use crate::msgpack::{self, ReadError, Reader};

/// The protocol version this crate speaks, sent in `hello` and `welcome`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Message type numbers: clients send 1-31, servers 64-95.
pub mod tag {
    /// Client `hello`.
    pub const HELLO: u8 = 1;
    /// Client `join`.
    pub const JOIN: u8 = 2;
    /// Client `leave`.
    pub const LEAVE: u8 = 3;
    /// Client `input`.
    pub const INPUT: u8 = 4;
    /// Client `chat`.
    pub const CHAT: u8 = 5;
    /// Client `ping`.
    pub const PING: u8 = 6;
    /// Server `welcome`.
    pub const WELCOME: u8 = 64;
    /// Server `joined`.
    pub const JOINED: u8 = 65;
    /// Server `left`.
    pub const LEFT: u8 = 66;
    /// Server `state`.
    pub const STATE: u8 = 67;
    /// Server `chat` (a room's chat line).
    pub const CHAT_LINE: u8 = 68;
    /// Server `pong`.
    pub const PONG: u8 = 69;
    /// Server `ok` (a request succeeded with nothing more to say).
    pub const OK: u8 = 70;
    /// Server `error`.
    pub const ERROR: u8 = 71;
    /// Server `room_closed`.
    pub const ROOM_CLOSED: u8 = 72;
    /// Server `shutdown`.
    pub const SHUTDOWN: u8 = 73;
}

/// Why a message body could not be decoded. The server answers all of these with
/// `BAD_MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The MessagePack itself is malformed or has the wrong types.
    #[error("{0}")]
    Read(#[from] ReadError),
    /// The type number is not one this version knows.
    #[error("unknown message type {0}")]
    UnknownType(u64),
    /// The array has fewer elements than the message type needs.
    #[error("message type {tag} needs {need} elements, got {got}")]
    MissingFields {
        /// The message type.
        tag: u8,
        /// Elements it needs, type included.
        need: u32,
        /// Elements present.
        got: u32,
    },
    /// Bytes follow the message array.
    #[error("trailing bytes after the message")]
    Trailing,
    /// An error code number this version does not know (client side only).
    #[error("unknown error code {0}")]
    UnknownCode(u16),
}

/// A message from a client, borrowing strings and payloads from the received bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage<'a> {
    /// `[1, version, client_name, resume_token?]`: the first message on every connection.
    Hello {
        /// The protocol version the client speaks.
        version: u32,
        /// Free text naming the client (for logs), at most 64 bytes.
        client: &'a str,
        /// The `resume_token` of an earlier session's `welcome`, to take its seat back.
        resume: Option<&'a str>,
    },
    /// `[2, req, kind]`: join a room of this kind, creating one if none has a free seat.
    Join {
        /// Request id, echoed in the reply (`joined` or `error`); non-zero.
        req: u32,
        /// The room kind, e.g. `"arena"`.
        kind: &'a str,
    },
    /// `[3, req]`: leave the current room.
    Leave {
        /// Request id, echoed in the reply (`left` or `error`).
        req: u32,
    },
    /// `[4, seq, payload]`: one input for the current room's game.
    Input {
        /// Increasing sequence number; echoed in `state` once processed.
        seq: u32,
        /// The game's input, one MessagePack value, as raw bytes.
        payload: &'a [u8],
    },
    /// `[5, req, text]`: a chat line to everyone in the current room.
    Chat {
        /// Request id, echoed in the reply (`ok` or `error`).
        req: u32,
        /// The text, 1 to 256 bytes of UTF-8.
        text: &'a str,
    },
    /// `[6, nonce]`: liveness check; answered by `pong` with the same nonce.
    Ping {
        /// Any number, echoed back.
        nonce: u64,
    },
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// `[64, version, session_id, tick_hz, max_message_bytes, timeout_ms, queue_capacity,
    /// resume_token, reconnect_grace_ms]`.
    Welcome {
        /// The protocol version the server speaks.
        version: u32,
        /// This connection's session id.
        session_id: u64,
        /// Room tick rate: states arrive this many times a second.
        tick_hz: u32,
        /// Largest message body the client may send.
        max_message_bytes: u32,
        /// The client must send something (a `ping` will do) at least this often.
        timeout_ms: u32,
        /// Outbound messages the server buffers for this client before dropping it.
        queue_capacity: u32,
        /// Present it in a later `hello` to take this session's seat back after a drop.
        resume_token: String,
        /// How long a dropped player's seat is kept for it.
        reconnect_grace_ms: u32,
    },
    /// `[65, req, room_id, player_id, kind, max_players]`: the reply to `join`.
    Joined {
        /// The `join` request id.
        req: u32,
        /// The room joined.
        room_id: u64,
        /// This player's id inside the room.
        player_id: u32,
        /// The room kind.
        kind: String,
        /// Seats in the room.
        max_players: u32,
    },
    /// `[66, req, room_id]`: the reply to `leave`.
    Left {
        /// The `leave` request id.
        req: u32,
        /// The room left.
        room_id: u64,
    },
    /// `[67, tick, last_seq, payload]`: the room's state after a tick.
    State {
        /// The room's tick number, from 1.
        tick: u64,
        /// The highest input seq of this player the room has processed (0: none yet).
        last_seq: u32,
        /// The game's state, one MessagePack value, as raw bytes.
        payload: Bytes,
    },
    /// `[68, room_id, player_id, name, text]`: a chat line said in the room.
    ChatLine {
        /// The room.
        room_id: u64,
        /// Who said it.
        player_id: u32,
        /// Their display name.
        name: String,
        /// What they said.
        text: String,
    },
    /// `[69, nonce]`: the reply to `ping`.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// `[70, req]`: a request succeeded.
    Ok {
        /// The request id.
        req: u32,
    },
    /// `[71, code, message, req]`: something went wrong.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// A human-readable explanation.
        message: String,
        /// The request this answers, or 0 when it answers none.
        req: u32,
    },
    /// `[72, room_id, reason]`: the room ended; the player is no longer in it.
    RoomClosed {
        /// The room.
        room_id: u64,
        /// Why, for people.
        reason: String,
    },
    /// `[73, reason, reconnect_after_ms]`: the server is going away; the connection
    /// closes once the client has closed its side or the grace period ends.
    Shutdown {
        /// Why, for people.
        reason: String,
        /// How long to wait before reconnecting (to this or another server).
        reconnect_after_ms: u32,
    },
}

fn expect(tag: u8, need: u32, got: u32) -> Result<(), DecodeError> {
    if got < need {
        Err(DecodeError::MissingFields { tag, need, got })
    } else {
        Ok(())
    }
}

/// Opens a message: reads the array header and the type, returns (type, element count).
fn open(r: &mut Reader<'_>) -> Result<(u64, u32), DecodeError> {
    let n = r.read_array_len()?;
    if n == 0 {
        return Err(DecodeError::MissingFields {
            tag: 0,
            need: 1,
            got: 0,
        });
    }
    Ok((r.read_u64()?, n))
}

/// Skips the elements past the `known` ones and checks that nothing follows the array.
fn close(r: &mut Reader<'_>, n: u32, known: u32) -> Result<(), DecodeError> {
    for _ in known..n {
        r.skip_value()?;
    }
    if r.remaining() != 0 {
        return Err(DecodeError::Trailing);
    }
    Ok(())
}

impl<'a> ClientMessage<'a> {
    /// Decodes one message body.
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let (t, n) = open(&mut r)?;
        let (msg, known) = match t {
            t if t == u64::from(tag::HELLO) => {
                expect(tag::HELLO, 3, n)?;
                let (version, client) = (r.read_u32()?, r.read_str()?);
                let resume = if n >= 4 && !r.try_nil() {
                    Some(r.read_str()?)
                } else {
                    None
                };
                (
                    ClientMessage::Hello {
                        version,
                        client,
                        resume,
                    },
                    n.min(4),
                )
            }
            t if t == u64::from(tag::JOIN) => {
                expect(tag::JOIN, 3, n)?;
                (
                    ClientMessage::Join {
                        req: r.read_u32()?,
                        kind: r.read_str()?,
                    },
                    3,
                )
            }
            t if t == u64::from(tag::LEAVE) => {
                expect(tag::LEAVE, 2, n)?;
                (ClientMessage::Leave { req: r.read_u32()? }, 2)
            }
            t if t == u64::from(tag::INPUT) => {
                expect(tag::INPUT, 3, n)?;
                (
                    ClientMessage::Input {
                        seq: r.read_u32()?,
                        payload: r.read_value_bytes()?,
                    },
                    3,
                )
            }
            t if t == u64::from(tag::CHAT) => {
                expect(tag::CHAT, 3, n)?;
                (
                    ClientMessage::Chat {
                        req: r.read_u32()?,
                        text: r.read_str()?,
                    },
                    3,
                )
            }
            t if t == u64::from(tag::PING) => {
                expect(tag::PING, 2, n)?;
                (
                    ClientMessage::Ping {
                        nonce: r.read_u64()?,
                    },
                    2,
                )
            }
            other => return Err(DecodeError::UnknownType(other)),
        };
        close(&mut r, n, known)?;
        Ok(msg)
    }

    /// Appends the message body to `out`. `Input` payloads must be one MessagePack value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ClientMessage::Hello {
                version,
                client,
                resume,
            } => {
                msgpack::write_array_len(out, if resume.is_some() { 4 } else { 3 });
                msgpack::write_uint(out, tag::HELLO.into());
                msgpack::write_uint(out, (*version).into());
                msgpack::write_str(out, client);
                if let Some(token) = resume {
                    msgpack::write_str(out, token);
                }
            }
            ClientMessage::Join { req, kind } => {
                msgpack::write_array_len(out, 3);
                msgpack::write_uint(out, tag::JOIN.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_str(out, kind);
            }
            ClientMessage::Leave { req } => {
                msgpack::write_array_len(out, 2);
                msgpack::write_uint(out, tag::LEAVE.into());
                msgpack::write_uint(out, (*req).into());
            }
            ClientMessage::Input { seq, payload } => {
                msgpack::write_array_len(out, 3);
                msgpack::write_uint(out, tag::INPUT.into());
                msgpack::write_uint(out, (*seq).into());
                out.extend_from_slice(payload);
            }
            ClientMessage::Chat { req, text } => {
                msgpack::write_array_len(out, 3);
                msgpack::write_uint(out, tag::CHAT.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_str(out, text);
            }
            ClientMessage::Ping { nonce } => {
                msgpack::write_array_len(out, 2);
                msgpack::write_uint(out, tag::PING.into());
                msgpack::write_uint(out, *nonce);
            }
        }
    }
}

/// Appends a `state` body without building a [`ServerMessage`]: the server's hot path,
/// called once per player per tick with a payload shared by the whole room.
pub fn encode_state(out: &mut Vec<u8>, tick: u64, last_seq: u32, payload: &[u8]) {
    msgpack::write_array_len(out, 4);
    msgpack::write_uint(out, tag::STATE.into());
    msgpack::write_uint(out, tick);
    msgpack::write_uint(out, last_seq.into());
    out.extend_from_slice(payload);
}

impl ServerMessage {
    /// Appends the message body to `out`. `State` payloads must be one MessagePack value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        use msgpack::{write_array_len as arr, write_str as s, write_uint as u};
        match self {
            ServerMessage::Welcome {
                version,
                session_id,
                tick_hz,
                max_message_bytes,
                timeout_ms,
                queue_capacity,
                resume_token,
                reconnect_grace_ms,
            } => {
                arr(out, 9);
                u(out, tag::WELCOME.into());
                u(out, (*version).into());
                u(out, *session_id);
                u(out, (*tick_hz).into());
                u(out, (*max_message_bytes).into());
                u(out, (*timeout_ms).into());
                u(out, (*queue_capacity).into());
                s(out, resume_token);
                u(out, (*reconnect_grace_ms).into());
            }
            ServerMessage::Joined {
                req,
                room_id,
                player_id,
                kind,
                max_players,
            } => {
                arr(out, 6);
                u(out, tag::JOINED.into());
                u(out, (*req).into());
                u(out, *room_id);
                u(out, (*player_id).into());
                s(out, kind);
                u(out, (*max_players).into());
            }
            ServerMessage::Left { req, room_id } => {
                arr(out, 3);
                u(out, tag::LEFT.into());
                u(out, (*req).into());
                u(out, *room_id);
            }
            ServerMessage::State {
                tick,
                last_seq,
                payload,
            } => encode_state(out, *tick, *last_seq, payload),
            ServerMessage::ChatLine {
                room_id,
                player_id,
                name,
                text,
            } => {
                arr(out, 5);
                u(out, tag::CHAT_LINE.into());
                u(out, *room_id);
                u(out, (*player_id).into());
                s(out, name);
                s(out, text);
            }
            ServerMessage::Pong { nonce } => {
                arr(out, 2);
                u(out, tag::PONG.into());
                u(out, *nonce);
            }
            ServerMessage::Ok { req } => {
                arr(out, 2);
                u(out, tag::OK.into());
                u(out, (*req).into());
            }
            ServerMessage::Error { code, message, req } => {
                arr(out, 4);
                u(out, tag::ERROR.into());
                u(out, code.as_u16().into());
                s(out, message);
                u(out, (*req).into());
            }
            ServerMessage::RoomClosed { room_id, reason } => {
                arr(out, 3);
                u(out, tag::ROOM_CLOSED.into());
                u(out, *room_id);
                s(out, reason);
            }
            ServerMessage::Shutdown {
                reason,
                reconnect_after_ms,
            } => {
                arr(out, 3);
                u(out, tag::SHUTDOWN.into());
                s(out, reason);
                u(out, (*reconnect_after_ms).into());
            }
        }
    }

    /// Decodes one message body (client side).
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let (t, n) = open(&mut r)?;
        let t = u8::try_from(t).map_err(|_| DecodeError::UnknownType(t))?;
        let (need, msg) = match t {
            tag::WELCOME => {
                expect(t, 9, n)?;
                let m = ServerMessage::Welcome {
                    version: r.read_u32()?,
                    session_id: r.read_u64()?,
                    tick_hz: r.read_u32()?,
                    max_message_bytes: r.read_u32()?,
                    timeout_ms: r.read_u32()?,
                    queue_capacity: r.read_u32()?,
                    resume_token: r.read_str()?.to_owned(),
                    reconnect_grace_ms: r.read_u32()?,
                };
                (9, m)
            }
            tag::JOINED => {
                expect(t, 6, n)?;
                let m = ServerMessage::Joined {
                    req: r.read_u32()?,
                    room_id: r.read_u64()?,
                    player_id: r.read_u32()?,
                    kind: r.read_str()?.to_owned(),
                    max_players: r.read_u32()?,
                };
                (6, m)
            }
            tag::LEFT => {
                expect(t, 3, n)?;
                (
                    3,
                    ServerMessage::Left {
                        req: r.read_u32()?,
                        room_id: r.read_u64()?,
                    },
                )
            }
            tag::STATE => {
                expect(t, 4, n)?;
                let m = ServerMessage::State {
                    tick: r.read_u64()?,
                    last_seq: r.read_u32()?,
                    payload: Bytes::copy_from_slice(r.read_value_bytes()?),
                };
                (4, m)
            }
            tag::CHAT_LINE => {
                expect(t, 5, n)?;
                let m = ServerMessage::ChatLine {
                    room_id: r.read_u64()?,
                    player_id: r.read_u32()?,
                    name: r.read_str()?.to_owned(),
                    text: r.read_str()?.to_owned(),
                };
                (5, m)
            }
            tag::PONG => {
                expect(t, 2, n)?;
                (
                    2,
                    ServerMessage::Pong {
                        nonce: r.read_u64()?,
                    },
                )
            }
            tag::OK => {
                expect(t, 2, n)?;
                (2, ServerMessage::Ok { req: r.read_u32()? })
            }
            tag::ERROR => {
                expect(t, 4, n)?;
                let raw = r.read_u16()?;
                let code = ErrorCode::from_u16(raw).ok_or(DecodeError::UnknownCode(raw))?;
                let m = ServerMessage::Error {
                    code,
                    message: r.read_str()?.to_owned(),
                    req: r.read_u32()?,
                };
                (4, m)
            }
            tag::ROOM_CLOSED => {
                expect(t, 3, n)?;
                let m = ServerMessage::RoomClosed {
                    room_id: r.read_u64()?,
                    reason: r.read_str()?.to_owned(),
                };
                (3, m)
            }
            tag::SHUTDOWN => {
                expect(t, 3, n)?;
                let m = ServerMessage::Shutdown {
                    reason: r.read_str()?.to_owned(),
                    reconnect_after_ms: r.read_u32()?,
                };
                (3, m)
            }
            other => return Err(DecodeError::UnknownType(other.into())),
        };
        close(&mut r, n, need)?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payload_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<i64>().prop_map(|v| {
                let mut o = Vec::new();
                msgpack::write_int(&mut o, v);
                o
            }),
            ".{0,40}".prop_map(|s| {
                let mut o = Vec::new();
                msgpack::write_str(&mut o, &s);
                o
            }),
            (any::<f32>(), any::<f32>()).prop_map(|(a, b)| {
                let mut o = Vec::new();
                msgpack::write_array_len(&mut o, 2);
                msgpack::write_f32(&mut o, a);
                msgpack::write_f32(&mut o, b);
                o
            }),
        ]
    }

    fn client_strategy() -> impl Strategy<Value = (u8, u64, String, Vec<u8>)> {
        (1u8..=7, any::<u64>(), ".{0,70}", payload_strategy())
    }

    fn build<'a>(t: u8, n: u64, s: &'a str, p: &'a [u8]) -> ClientMessage<'a> {
        match t {
            1 => ClientMessage::Hello {
                version: n as u32,
                client: s,
                resume: None,
            },
            7 => ClientMessage::Hello {
                version: n as u32,
                client: s,
                resume: Some(s),
            },
            2 => ClientMessage::Join {
                req: n as u32,
                kind: s,
            },
            3 => ClientMessage::Leave { req: n as u32 },
            4 => ClientMessage::Input {
                seq: n as u32,
                payload: p,
            },
            5 => ClientMessage::Chat {
                req: n as u32,
                text: s,
            },
            _ => ClientMessage::Ping { nonce: n },
        }
    }

    proptest! {
        #[test]
        fn client_messages_round_trip((t, n, s, p) in client_strategy()) {
            let m = build(t, n, &s, &p);
            let mut out = Vec::new();
            m.encode(&mut out);
            prop_assert_eq!(ClientMessage::decode(&out), Ok(m));
        }

        #[test]
        fn server_messages_round_trip(n in any::<u64>(), s in ".{0,70}", p in payload_strategy(), c in 0usize..ErrorCode::ALL.len()) {
            let all = vec![
                ServerMessage::Welcome { version: n as u32, session_id: n, tick_hz: 20, max_message_bytes: 4096, timeout_ms: n as u32, queue_capacity: 100, resume_token: s.clone(), reconnect_grace_ms: 10_000 },
                ServerMessage::Joined { req: n as u32, room_id: n, player_id: n as u32, kind: s.clone(), max_players: 16 },
                ServerMessage::Left { req: n as u32, room_id: n },
                ServerMessage::State { tick: n, last_seq: n as u32, payload: Bytes::from(p.clone()) },
                ServerMessage::ChatLine { room_id: n, player_id: 3, name: s.clone(), text: s.clone() },
                ServerMessage::Pong { nonce: n },
                ServerMessage::Ok { req: n as u32 },
                ServerMessage::Error { code: ErrorCode::ALL[c], message: s.clone(), req: n as u32 },
                ServerMessage::RoomClosed { room_id: n, reason: s.clone() },
                ServerMessage::Shutdown { reason: s.clone(), reconnect_after_ms: n as u32 },
            ];
            for m in all {
                let mut out = Vec::new();
                m.encode(&mut out);
                prop_assert_eq!(ServerMessage::decode(&out), Ok(m));
            }
        }

        #[test]
        fn arbitrary_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = ClientMessage::decode(&bytes);
            let _ = ServerMessage::decode(&bytes);
        }
    }

    #[test]
    fn extra_trailing_fields_are_ignored_but_trailing_bytes_are_not() {
        let mut out = Vec::new();
        msgpack::write_array_len(&mut out, 3);
        msgpack::write_uint(&mut out, tag::PING.into());
        msgpack::write_uint(&mut out, 7);
        msgpack::write_str(&mut out, "future field");
        assert_eq!(
            ClientMessage::decode(&out),
            Ok(ClientMessage::Ping { nonce: 7 })
        );
        out.push(0xc0);
        assert_eq!(ClientMessage::decode(&out), Err(DecodeError::Trailing));
    }

    #[test]
    fn missing_fields_and_unknown_types_are_errors() {
        let mut out = Vec::new();
        msgpack::write_array_len(&mut out, 1);
        msgpack::write_uint(&mut out, tag::INPUT.into());
        assert!(matches!(
            ClientMessage::decode(&out),
            Err(DecodeError::MissingFields { .. })
        ));
        let mut out = Vec::new();
        msgpack::write_array_len(&mut out, 1);
        msgpack::write_uint(&mut out, 99);
        assert_eq!(
            ClientMessage::decode(&out),
            Err(DecodeError::UnknownType(99))
        );
    }
}

/// The byte-level examples of `docs/protocol.md` section 13, so the document and the
/// code cannot drift apart.
#[cfg(test)]
mod documented_examples {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn client(m: ClientMessage<'_>, body: &str) {
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out, hex(body), "{m:?}");
        assert_eq!(ClientMessage::decode(&out), Ok(m));
    }

    fn server(m: ServerMessage, body: &str) {
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out, hex(body), "{m:?}");
        assert_eq!(ServerMessage::decode(&out), Ok(m));
    }

    #[test]
    fn section_13_bytes() {
        client(
            ClientMessage::Hello {
                version: 1,
                client: "demo",
                resume: None,
            },
            "93 01 01 a4 64 65 6d 6f",
        );
        client(
            ClientMessage::Join {
                req: 1,
                kind: "arena",
            },
            "93 02 01 a5 61 72 65 6e 61",
        );
        client(
            ClientMessage::Input {
                seq: 1,
                payload: &hex("92 ca 3f 80 00 00 ca 00 00 00 00"),
            },
            "93 04 01 92 ca 3f 80 00 00 ca 00 00 00 00",
        );
        client(ClientMessage::Ping { nonce: 7 }, "92 06 07");
        server(
            ServerMessage::Welcome {
                version: 1,
                session_id: 1,
                tick_hz: 20,
                max_message_bytes: 4096,
                timeout_ms: 30000,
                queue_capacity: 100,
                resume_token: "ab".into(),
                reconnect_grace_ms: 10000,
            },
            "99 40 01 01 14 cd 10 00 cd 75 30 64 a2 61 62 cd 27 10",
        );
        server(
            ServerMessage::Joined {
                req: 1,
                room_id: 1,
                player_id: 1,
                kind: "arena".into(),
                max_players: 16,
            },
            "96 41 01 01 01 a5 61 72 65 6e 61 10",
        );
        server(
            ServerMessage::State {
                tick: 1,
                last_seq: 1,
                payload: Bytes::from(hex("91 94 01 ca 43 7a 00 00 ca 43 fa 00 00 01")),
            },
            "94 43 01 01 91 94 01 ca 43 7a 00 00 ca 43 fa 00 00 01",
        );
        server(ServerMessage::Pong { nonce: 7 }, "92 45 07");
        server(
            ServerMessage::Error {
                code: ErrorCode::NotInRoom,
                message: "not in a room".into(),
                req: 0,
            },
            "94 47 14 ad 6e 6f 74 20 69 6e 20 61 20 72 6f 6f 6d 00",
        );
        let mut framed = Vec::new();
        crate::frame::encode(&hex("93 01 01 a4 64 65 6d 6f"), &mut framed);
        assert_eq!(framed, hex("00 00 00 08 93 01 01 a4 64 65 6d 6f"));
    }
}
