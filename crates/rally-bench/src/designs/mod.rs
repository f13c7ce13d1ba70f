//! The references Rally is measured against: the two fastest hand-written designs of the
//! arena scenario on this machine (../shared/BENCHMARK.md, "the two fastest hand-written
//! designs"), each a `rally bench-worker` server speaking Rally's protocol over TCP and
//! WebSocket. They use Rally's protocol crate (sans IO) for the bytes, so what differs
//! is the engine around them. Neither has config, limits, timeouts, resume, metrics or a
//! graceful shutdown: they are the least a server can do. Never serve players with them.
//!
//! # Layout
//! - [`tasks`]: a reader task per connection publishes its latest input into the room's
//!   slot for its seat; the room task encodes the state once per tick and `try_write`s it
//!   to each socket itself; a socket that would block skips the snapshot.
//! - [`poll`]: no task per connection: the room owns its non-blocking sockets and does
//!   one `read` and one `write` per player per tick.
//! - this file: what both share: the room's constants, framing, the replies to each
//!   message, the state encoding.

pub mod poll;
pub mod tasks;

use std::time::Duration;

use rally_protocol::framing::{Deframer, Incoming, ServerFramer};
use rally_protocol::message::encode_state;
use rally_protocol::msgpack::{self, Reader};
use rally_protocol::{handshake, ws, ClientMessage, ServerMessage, Transport, PROTOCOL_VERSION};

/// Seats per room (arena-16).
pub(crate) const SEATS: u32 = 16;
/// The room's tick (20 Hz).
pub(crate) const TICK: Duration = Duration::from_millis(50);
/// Largest message accepted from a client.
pub(crate) const MAX_MESSAGE: usize = 4096;
/// Bytes read from a socket in one call: a tick's worth of a player's inputs is tens of
/// bytes, so this is never the limit.
pub(crate) const READ_CHUNK: usize = 2048;
/// Unsent bytes a connection may hold before it is dropped as not reading.
pub(crate) const MAX_PENDING: usize = 64 * 1024;

/// What a message asks of the room (everything else is answered in place).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Act {
    /// Answered, or nothing to do.
    Nothing,
    /// Take a seat; the `joined` reply is the room's to write.
    Join { req: u32, kind: String },
    /// The player's latest input.
    Input { seq: u32, dx: f32, dy: f32 },
    /// Give up the seat.
    Leave { req: u32 },
    /// End the connection (bad bytes or a close frame).
    Close,
}

/// Appends one message, framed for the transport.
pub(crate) fn put(out: &mut Vec<u8>, ws: bool, body: impl FnOnce(&mut Vec<u8>)) {
    let framer = ServerFramer(transport(ws));
    let at = framer.begin(out);
    body(out);
    framer.finish(out, at);
}

fn transport(ws: bool) -> Transport {
    if ws {
        Transport::WebSocket
    } else {
        Transport::Tcp
    }
}

/// Appends one player's state: the room's shared `payload` after its own header.
pub(crate) fn put_state(out: &mut Vec<u8>, ws: bool, tick: u64, last_seq: u32, payload: &[u8]) {
    put(out, ws, |o| encode_state(o, tick, last_seq, payload));
}

/// Appends the `joined` reply.
pub(crate) fn put_joined(
    out: &mut Vec<u8>,
    ws: bool,
    req: u32,
    room_id: u64,
    player: u32,
    kind: &str,
) {
    let msg = ServerMessage::Joined {
        req,
        room_id,
        player_id: player,
        kind: kind.to_owned(),
        max_players: SEATS,
        // The reference designs speak revision 1: no codes, no teams.
        code: String::new(),
        team: 0,
    };
    put(out, ws, |o| msg.encode(o));
}

/// Appends the `left` reply.
pub(crate) fn put_left(out: &mut Vec<u8>, ws: bool, req: u32, room_id: u64) {
    put(out, ws, |o| ServerMessage::Left { req, room_id }.encode(o));
}

/// The room's payload, once per tick: `[[id, x, y, last_seq], ...]`.
pub(crate) fn encode_players(
    payload: &mut Vec<u8>,
    players: impl ExactSizeIterator<Item = (u32, f32, f32, u32)>,
) {
    payload.clear();
    msgpack::write_array_len(payload, players.len() as u32);
    for (id, x, y, seq) in players {
        msgpack::write_array_len(payload, 4);
        msgpack::write_uint(payload, id.into());
        msgpack::write_f32(payload, x);
        msgpack::write_f32(payload, y);
        msgpack::write_uint(payload, seq.into());
    }
}

/// Moves a player by its velocity over one tick, inside the 1000 x 1000 arena.
pub(crate) fn step(x: f32, y: f32, vx: f32, vy: f32) -> (f32, f32) {
    let step = TICK.as_secs_f32() * 100.0;
    (
        (x + vx * step).clamp(0.0, 1000.0),
        (y + vy * step).clamp(0.0, 1000.0),
    )
}

/// Reads a WebSocket upgrade request for `/ws` into `buf` and returns the accept to
/// send; what follows the request stays in `buf`. `None`: refused or closed.
pub(crate) async fn upgrade(stream: &tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        if let Some(accept) = parse_upgrade(buf)? {
            return Some(accept);
        }
        stream.readable().await.ok()?;
        match stream.try_read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
    }
}

/// The accept for a whole upgrade request at the start of `buf` (removed from it):
/// `Some(None)` while incomplete, `None` when refused.
pub(crate) fn parse_upgrade(buf: &mut Vec<u8>) -> Option<Option<Vec<u8>>> {
    match handshake::parse_request(buf, "/ws") {
        Ok(Some((used, req))) => {
            let mut out = Vec::new();
            handshake::write_accept(&mut out, &req);
            buf.drain(..used);
            Some(Some(out))
        }
        Ok(None) => Some(None),
        Err(_) => None,
    }
}

/// One connection's frames, length-prefixed (TCP) or WebSocket: the protocol crate's
/// server-role deframer, as Rally's sessions use.
pub(crate) struct Framer {
    deframer: Deframer,
    ws: bool,
}

impl Framer {
    pub(crate) fn new(ws: bool) -> Self {
        Framer {
            deframer: Deframer::server(transport(ws), MAX_MESSAGE),
            ws,
        }
    }

    pub(crate) fn is_ws(&self) -> bool {
        self.ws
    }

    /// Handles every whole frame at the start of `buf`: each message body goes to `f`
    /// (which returns false to stop), WebSocket pings are answered into `out`. Returns the
    /// bytes used, or `None` when the connection must end.
    pub(crate) fn each(
        &mut self,
        buf: &mut [u8],
        out: &mut Vec<u8>,
        mut f: impl FnMut(&[u8], &mut Vec<u8>) -> bool,
    ) -> Option<usize> {
        let framer = ServerFramer(transport(self.ws));
        let mut pos = 0;
        loop {
            match self.deframer.decode(&mut buf[pos..]) {
                Ok(Some((used, incoming))) => {
                    pos += used;
                    match incoming {
                        Incoming::Message(body) => {
                            if !f(body, out) {
                                return None;
                            }
                        }
                        Incoming::Ping(p) => framer.pong(p, out),
                        Incoming::Nothing => {}
                        Incoming::Close(_) => {
                            framer.close(ws::close_code::NORMAL, out);
                            return None;
                        }
                    }
                }
                Ok(None) => return Some(pos),
                Err(_) => return None,
            }
        }
    }
}

/// Answers one message into `out`, or says what the room must do with it.
pub(crate) fn respond(body: &[u8], ws: bool, session: u64, seated: bool, out: &mut Vec<u8>) -> Act {
    let Ok(msg) = ClientMessage::decode(body) else {
        return Act::Close;
    };
    let reply = match msg {
        ClientMessage::Hello { .. } => ServerMessage::Welcome {
            version: PROTOCOL_VERSION,
            session_id: session,
            tick_hz: 20,
            max_message_bytes: MAX_MESSAGE as u32,
            timeout_ms: 30_000,
            queue_capacity: 100,
            resume_token: String::new(),
            reconnect_grace_ms: 0,
            account_id: 0,
            revision: 1,
        },
        ClientMessage::Join { req, kind } if !seated => {
            return Act::Join {
                req,
                kind: kind.to_owned(),
            }
        }
        ClientMessage::Join { req, .. } => ServerMessage::Error {
            code: rally_protocol::ErrorCode::AlreadyInRoom,
            message: "already in a room".into(),
            req,
        },
        ClientMessage::Input { seq, payload } => {
            let mut r = Reader::new(payload);
            return match (r.read_array_len(), r.read_f64(), r.read_f64()) {
                (Ok(_), Ok(dx), Ok(dy)) => Act::Input {
                    seq,
                    dx: dx as f32,
                    dy: dy as f32,
                },
                _ => Act::Nothing,
            };
        }
        ClientMessage::Leave { req } => return Act::Leave { req },
        ClientMessage::Ping { nonce } => ServerMessage::Pong { nonce },
        ClientMessage::Chat { req, .. } => ServerMessage::Ok { req },
        // Accounts cost a reference server nothing: any login is this session's account.
        ClientMessage::Login { req, .. } => ServerMessage::Session {
            req,
            account_id: session,
            token: String::new(),
            expires_at_ms: u64::MAX,
            display_name: format!("player-{session}"),
        },
        ClientMessage::GetData { req, .. }
        | ClientMessage::PutData { req, .. }
        | ClientMessage::DeleteData { req, .. }
        | ClientMessage::GetProfile { req, .. }
        | ClientMessage::SetName { req, .. }
        | ClientMessage::ClaimSeat { req, .. } => ServerMessage::Error {
            code: rally_protocol::ErrorCode::Unavailable,
            message: "a reference server keeps no player data".into(),
            req,
        },
        // Revision 2's rooms: a reference server has one way in, `join`.
        ClientMessage::Create { req, .. }
        | ClientMessage::JoinOrCreate { req, .. }
        | ClientMessage::JoinById { req, .. }
        | ClientMessage::JoinByCode { req, .. }
        | ClientMessage::ListRooms { req, .. }
        | ClientMessage::Queue { req, .. }
        | ClientMessage::LeaveQueue { req } => ServerMessage::Error {
            code: rally_protocol::ErrorCode::InvalidArgument,
            message: "a reference server offers join only".into(),
            req,
        },
        ClientMessage::Spectate { req, .. }
        | ClientMessage::SpectateRecording { req, .. }
        | ClientMessage::StopSpectating { req } => ServerMessage::Error {
            code: rally_protocol::ErrorCode::NoSuchMatch,
            message: "a reference server has no spectators".into(),
            req,
        },
    };
    put(out, ws, |o| reply.encode(o));
    Act::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;
    use rally_protocol::frame;
    use rally_protocol::msgpack::write_f64;

    fn framed(msg: &ClientMessage<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        let at = frame::begin(&mut out);
        msg.encode(&mut out);
        frame::finish(&mut out, at);
        out
    }

    #[test]
    fn frames_are_split_and_answered_in_order() {
        let mut payload = Vec::new();
        msgpack::write_array_len(&mut payload, 2);
        write_f64(&mut payload, 0.5);
        write_f64(&mut payload, -1.0);
        let mut buf = framed(&ClientMessage::Ping { nonce: 7 });
        buf.extend(framed(&ClientMessage::Input {
            seq: 3,
            payload: &payload,
        }));
        let whole = buf.len();
        buf.extend_from_slice(&[0, 0]); // the start of a next frame
        let mut framer = Framer::new(false);
        let (mut out, mut acts) = (Vec::new(), Vec::new());
        let used = framer.each(&mut buf, &mut out, |body, out| {
            acts.push(respond(body, false, 1, true, out));
            true
        });
        assert_eq!(used, Some(whole));
        assert_eq!(
            acts,
            vec![
                Act::Nothing,
                Act::Input {
                    seq: 3,
                    dx: 0.5,
                    dy: -1.0
                }
            ]
        );
        let (_, body) = frame::decode(&out, 1 << 16).expect("frame").expect("whole");
        assert_eq!(
            ServerMessage::decode(body).expect("decodes"),
            ServerMessage::Pong { nonce: 7 }
        );
    }

    #[test]
    fn garbage_ends_the_connection() {
        let mut buf = framed(&ClientMessage::Ping { nonce: 1 });
        buf[4] = 0xc1; // never valid MessagePack
        let mut framer = Framer::new(false);
        let mut out = Vec::new();
        let used = framer.each(&mut buf, &mut out, |body, out| {
            respond(body, false, 1, false, out) != Act::Close
        });
        assert_eq!(used, None);
    }
}
