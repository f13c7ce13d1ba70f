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
    /// Client `login`.
    pub const LOGIN: u8 = 7;
    /// Client `get_data`.
    pub const GET_DATA: u8 = 8;
    /// Client `put_data`.
    pub const PUT_DATA: u8 = 9;
    /// Client `delete_data`.
    pub const DELETE_DATA: u8 = 10;
    /// Client `get_profile`.
    pub const GET_PROFILE: u8 = 11;
    /// Client `set_name`.
    pub const SET_NAME: u8 = 12;
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
    /// Server `session` (the reply to `login`).
    pub const SESSION: u8 = 74;
    /// Server `data` (the reply to `get_data`).
    pub const DATA: u8 = 75;
    /// Server `written` (the reply to `put_data`).
    pub const WRITTEN: u8 = 76;
    /// Server `profile` (the reply to `get_profile`).
    pub const PROFILE: u8 = 77;
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
///
/// Its `Debug` output leaves secrets out: resume and session tokens, login credentials.
#[derive(Clone, PartialEq)]
pub enum ClientMessage<'a> {
    /// `[1, version, client_name, resume_token?, session_token?]`: the first message on
    /// every connection.
    Hello {
        /// The protocol version the client speaks.
        version: u32,
        /// Free text naming the client (for logs), at most 64 bytes.
        client: &'a str,
        /// The `resume_token` of an earlier session's `welcome`, to take its seat back.
        resume: Option<&'a str>,
        /// The session token of an earlier `login`, to be that account again without
        /// logging in.
        token: Option<&'a str>,
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
    /// `[7, req, provider, credential]`: log in; answered by `session` or `error`.
    Login {
        /// Request id, echoed in the reply.
        req: u32,
        /// `"device"` (the credential is a device id the client chose) or `"custom"` (the
        /// game's backend checks the credential).
        provider: &'a str,
        /// The device id, or what the game's backend checks. A secret.
        credential: &'a str,
    },
    /// `[8, req, owner, key]`: read one key-value entry; answered by `data` or `error`.
    GetData {
        /// Request id, echoed in the reply.
        req: u32,
        /// Whose entry: an account id, or 0 for the sender's own.
        owner: u64,
        /// The key.
        key: &'a str,
    },
    /// `[9, req, key, value, expected_version, public]`: write one of the sender's own
    /// entries; answered by `written` or `error`.
    PutData {
        /// Request id, echoed in the reply.
        req: u32,
        /// The key.
        key: &'a str,
        /// The value, as JSON text.
        value: &'a str,
        /// The version the sender last saw; 0: the entry must not exist yet.
        expected_version: u64,
        /// Whether other players may read it.
        public: bool,
    },
    /// `[10, req, key, expected_version]`: delete one of the sender's own entries;
    /// answered by `ok` or `error`.
    DeleteData {
        /// Request id, echoed in the reply.
        req: u32,
        /// The key.
        key: &'a str,
        /// The entry's current version.
        expected_version: u64,
    },
    /// `[11, req, account_id]`: a profile; answered by `profile` or `error`.
    GetProfile {
        /// Request id, echoed in the reply.
        req: u32,
        /// Whose: an account id, or 0 for the sender's own.
        account_id: u64,
    },
    /// `[12, req, name]`: set the sender's display name; answered by `ok` or `error`.
    SetName {
        /// Request id, echoed in the reply.
        req: u32,
        /// The new name.
        name: &'a str,
    },
}

/// What a `Debug` line shows in place of a secret.
const REDACTED: &str = "<redacted>";

fn redacted<T>(secret: &Option<T>) -> Option<&'static str> {
    secret.as_ref().map(|_| REDACTED)
}

impl std::fmt::Debug for ClientMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientMessage::Hello {
                version,
                client,
                resume,
                token,
            } => f
                .debug_struct("Hello")
                .field("version", version)
                .field("client", client)
                .field("resume", &redacted(resume))
                .field("token", &redacted(token))
                .finish(),
            ClientMessage::Join { req, kind } => f
                .debug_struct("Join")
                .field("req", req)
                .field("kind", kind)
                .finish(),
            ClientMessage::Leave { req } => f.debug_struct("Leave").field("req", req).finish(),
            ClientMessage::Input { seq, payload } => f
                .debug_struct("Input")
                .field("seq", seq)
                .field("payload", payload)
                .finish(),
            ClientMessage::Chat { req, text } => f
                .debug_struct("Chat")
                .field("req", req)
                .field("text", text)
                .finish(),
            ClientMessage::Ping { nonce } => f.debug_struct("Ping").field("nonce", nonce).finish(),
            ClientMessage::Login { req, provider, .. } => f
                .debug_struct("Login")
                .field("req", req)
                .field("provider", provider)
                .field("credential", &REDACTED)
                .finish(),
            ClientMessage::GetData { req, owner, key } => f
                .debug_struct("GetData")
                .field("req", req)
                .field("owner", owner)
                .field("key", key)
                .finish(),
            ClientMessage::PutData {
                req,
                key,
                value,
                expected_version,
                public,
            } => f
                .debug_struct("PutData")
                .field("req", req)
                .field("key", key)
                .field("value", value)
                .field("expected_version", expected_version)
                .field("public", public)
                .finish(),
            ClientMessage::DeleteData {
                req,
                key,
                expected_version,
            } => f
                .debug_struct("DeleteData")
                .field("req", req)
                .field("key", key)
                .field("expected_version", expected_version)
                .finish(),
            ClientMessage::GetProfile { req, account_id } => f
                .debug_struct("GetProfile")
                .field("req", req)
                .field("account_id", account_id)
                .finish(),
            ClientMessage::SetName { req, name } => f
                .debug_struct("SetName")
                .field("req", req)
                .field("name", name)
                .finish(),
        }
    }
}

/// A message from the server.
///
/// Its `Debug` output leaves the resume and session tokens out.
#[derive(Clone, PartialEq)]
pub enum ServerMessage {
    /// `[64, version, session_id, tick_hz, max_message_bytes, timeout_ms, queue_capacity,
    /// resume_token, reconnect_grace_ms, account_id]`.
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
        /// The account the `hello`'s session token logged in as; 0 when it carried none or
        /// an invalid one (an `UNAUTHORIZED` error then follows).
        account_id: u64,
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
    /// `[71, 31, message, req, current_version]`: the `CONFLICT` error of a `put_data` or
    /// `delete_data`, with the entry's current version (0: no such entry) as a field, so a
    /// client need not parse it out of the message. A reader that knows only `Error`
    /// ignores the fifth element (forward compatibility) and still sees a `CONFLICT`.
    Conflict {
        /// A human-readable explanation (it names the current version too).
        message: String,
        /// The request this answers.
        req: u32,
        /// The entry's current version; 0 when it does not exist.
        current_version: u64,
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
    /// `[74, req, account_id, token, expires_at_ms, display_name]`: the reply to `login`.
    Session {
        /// The `login` request id.
        req: u32,
        /// The account logged in as.
        account_id: u64,
        /// The session token: send it in a later `hello` to skip the login. A secret.
        token: String,
        /// When the token stops working, in Unix milliseconds.
        expires_at_ms: u64,
        /// The account's display name.
        display_name: String,
    },
    /// `[75, req, owner, key, value, version, public]`: the reply to `get_data`.
    Data {
        /// The `get_data` request id.
        req: u32,
        /// Whose entry (never 0: the sender's own account id when it asked for 0).
        owner: u64,
        /// The key.
        key: String,
        /// The value as JSON text; `None` when there is no such entry.
        value: Option<String>,
        /// The entry's version; 0 when there is no such entry.
        version: u64,
        /// Whether other players may read it.
        public: bool,
    },
    /// `[76, req, key, version]`: the reply to `put_data`; the write is durable.
    Written {
        /// The `put_data` request id.
        req: u32,
        /// The key written.
        key: String,
        /// The entry's new version.
        version: u64,
    },
    /// `[77, req, account_id, display_name, sessions, play_ms, games_played]`: the reply to
    /// `get_profile`.
    Profile {
        /// The `get_profile` request id.
        req: u32,
        /// Whose profile.
        account_id: u64,
        /// The name other players see.
        display_name: String,
        /// Sessions the account has finished.
        sessions: u64,
        /// Play time over those sessions, in milliseconds.
        play_ms: u64,
        /// Games played: rooms the account played in until they ended.
        games_played: u64,
    },
}

impl std::fmt::Debug for ServerMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerMessage::Welcome {
                version,
                session_id,
                tick_hz,
                max_message_bytes,
                timeout_ms,
                queue_capacity,
                resume_token: _,
                reconnect_grace_ms,
                account_id,
            } => f
                .debug_struct("Welcome")
                .field("version", version)
                .field("session_id", session_id)
                .field("tick_hz", tick_hz)
                .field("max_message_bytes", max_message_bytes)
                .field("timeout_ms", timeout_ms)
                .field("queue_capacity", queue_capacity)
                .field("resume_token", &REDACTED)
                .field("reconnect_grace_ms", reconnect_grace_ms)
                .field("account_id", account_id)
                .finish(),
            ServerMessage::Session {
                req,
                account_id,
                token: _,
                expires_at_ms,
                display_name,
            } => f
                .debug_struct("Session")
                .field("req", req)
                .field("account_id", account_id)
                .field("token", &REDACTED)
                .field("expires_at_ms", expires_at_ms)
                .field("display_name", display_name)
                .finish(),
            ServerMessage::Joined {
                req,
                room_id,
                player_id,
                kind,
                max_players,
            } => f
                .debug_struct("Joined")
                .field("req", req)
                .field("room_id", room_id)
                .field("player_id", player_id)
                .field("kind", kind)
                .field("max_players", max_players)
                .finish(),
            ServerMessage::Left { req, room_id } => f
                .debug_struct("Left")
                .field("req", req)
                .field("room_id", room_id)
                .finish(),
            ServerMessage::State {
                tick,
                last_seq,
                payload,
            } => f
                .debug_struct("State")
                .field("tick", tick)
                .field("last_seq", last_seq)
                .field("payload", payload)
                .finish(),
            ServerMessage::ChatLine {
                room_id,
                player_id,
                name,
                text,
            } => f
                .debug_struct("ChatLine")
                .field("room_id", room_id)
                .field("player_id", player_id)
                .field("name", name)
                .field("text", text)
                .finish(),
            ServerMessage::Pong { nonce } => f.debug_struct("Pong").field("nonce", nonce).finish(),
            ServerMessage::Ok { req } => f.debug_struct("Ok").field("req", req).finish(),
            ServerMessage::Error { code, message, req } => f
                .debug_struct("Error")
                .field("code", code)
                .field("message", message)
                .field("req", req)
                .finish(),
            ServerMessage::Conflict {
                message,
                req,
                current_version,
            } => f
                .debug_struct("Conflict")
                .field("message", message)
                .field("req", req)
                .field("current_version", current_version)
                .finish(),
            ServerMessage::RoomClosed { room_id, reason } => f
                .debug_struct("RoomClosed")
                .field("room_id", room_id)
                .field("reason", reason)
                .finish(),
            ServerMessage::Shutdown {
                reason,
                reconnect_after_ms,
            } => f
                .debug_struct("Shutdown")
                .field("reason", reason)
                .field("reconnect_after_ms", reconnect_after_ms)
                .finish(),
            ServerMessage::Data {
                req,
                owner,
                key,
                value,
                version,
                public,
            } => f
                .debug_struct("Data")
                .field("req", req)
                .field("owner", owner)
                .field("key", key)
                .field("value", value)
                .field("version", version)
                .field("public", public)
                .finish(),
            ServerMessage::Written { req, key, version } => f
                .debug_struct("Written")
                .field("req", req)
                .field("key", key)
                .field("version", version)
                .finish(),
            ServerMessage::Profile {
                req,
                account_id,
                display_name,
                sessions,
                play_ms,
                games_played,
            } => f
                .debug_struct("Profile")
                .field("req", req)
                .field("account_id", account_id)
                .field("display_name", display_name)
                .field("sessions", sessions)
                .field("play_ms", play_ms)
                .field("games_played", games_played)
                .finish(),
        }
    }
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
    /// The request id of a request (section 7 of docs/protocol.md); `None` for `hello`,
    /// `ping` and `input`, which are not requests.
    pub fn req(&self) -> Option<u32> {
        match self {
            ClientMessage::Hello { .. }
            | ClientMessage::Ping { .. }
            | ClientMessage::Input { .. } => None,
            ClientMessage::Join { req, .. }
            | ClientMessage::Leave { req }
            | ClientMessage::Chat { req, .. }
            | ClientMessage::Login { req, .. }
            | ClientMessage::GetData { req, .. }
            | ClientMessage::PutData { req, .. }
            | ClientMessage::DeleteData { req, .. }
            | ClientMessage::GetProfile { req, .. }
            | ClientMessage::SetName { req, .. } => Some(*req),
        }
    }

    /// The message's name in docs/protocol.md, e.g. `put_data`.
    pub fn name(&self) -> &'static str {
        match self {
            ClientMessage::Hello { .. } => "hello",
            ClientMessage::Ping { .. } => "ping",
            ClientMessage::Input { .. } => "input",
            ClientMessage::Join { .. } => "join",
            ClientMessage::Leave { .. } => "leave",
            ClientMessage::Chat { .. } => "chat",
            ClientMessage::Login { .. } => "login",
            ClientMessage::GetData { .. } => "get_data",
            ClientMessage::PutData { .. } => "put_data",
            ClientMessage::DeleteData { .. } => "delete_data",
            ClientMessage::GetProfile { .. } => "get_profile",
            ClientMessage::SetName { .. } => "set_name",
        }
    }

    /// Decodes one message body.
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let (t, n) = open(&mut r)?;
        let (msg, known) = match t {
            t if t == u64::from(tag::HELLO) => {
                expect(tag::HELLO, 3, n)?;
                let (version, client) = (r.read_u32()?, r.read_str()?);
                let mut optional_str = |present: bool| -> Result<Option<&'a str>, ReadError> {
                    Ok(if present && !r.try_nil() {
                        Some(r.read_str()?)
                    } else {
                        None
                    })
                };
                let resume = optional_str(n >= 4)?;
                let token = optional_str(n >= 5)?;
                (
                    ClientMessage::Hello {
                        version,
                        client,
                        resume,
                        token,
                    },
                    n.min(5),
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
            t if t == u64::from(tag::LOGIN) => {
                expect(tag::LOGIN, 4, n)?;
                let m = ClientMessage::Login {
                    req: r.read_u32()?,
                    provider: r.read_str()?,
                    credential: r.read_str()?,
                };
                (m, 4)
            }
            t if t == u64::from(tag::GET_DATA) => {
                expect(tag::GET_DATA, 4, n)?;
                let m = ClientMessage::GetData {
                    req: r.read_u32()?,
                    owner: r.read_u64()?,
                    key: r.read_str()?,
                };
                (m, 4)
            }
            t if t == u64::from(tag::PUT_DATA) => {
                expect(tag::PUT_DATA, 6, n)?;
                let m = ClientMessage::PutData {
                    req: r.read_u32()?,
                    key: r.read_str()?,
                    value: r.read_str()?,
                    expected_version: r.read_u64()?,
                    public: r.read_bool()?,
                };
                (m, 6)
            }
            t if t == u64::from(tag::DELETE_DATA) => {
                expect(tag::DELETE_DATA, 4, n)?;
                let m = ClientMessage::DeleteData {
                    req: r.read_u32()?,
                    key: r.read_str()?,
                    expected_version: r.read_u64()?,
                };
                (m, 4)
            }
            t if t == u64::from(tag::GET_PROFILE) => {
                expect(tag::GET_PROFILE, 3, n)?;
                let m = ClientMessage::GetProfile {
                    req: r.read_u32()?,
                    account_id: r.read_u64()?,
                };
                (m, 3)
            }
            t if t == u64::from(tag::SET_NAME) => {
                expect(tag::SET_NAME, 3, n)?;
                let m = ClientMessage::SetName {
                    req: r.read_u32()?,
                    name: r.read_str()?,
                };
                (m, 3)
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
                token,
            } => {
                let len = match (resume, token) {
                    (_, Some(_)) => 5,
                    (Some(_), None) => 4,
                    (None, None) => 3,
                };
                msgpack::write_array_len(out, len);
                msgpack::write_uint(out, tag::HELLO.into());
                msgpack::write_uint(out, (*version).into());
                msgpack::write_str(out, client);
                if len >= 4 {
                    match resume {
                        Some(t) => msgpack::write_str(out, t),
                        None => msgpack::write_nil(out),
                    }
                }
                if let Some(t) = token {
                    msgpack::write_str(out, t);
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
            ClientMessage::Login {
                req,
                provider,
                credential,
            } => {
                msgpack::write_array_len(out, 4);
                msgpack::write_uint(out, tag::LOGIN.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_str(out, provider);
                msgpack::write_str(out, credential);
            }
            ClientMessage::GetData { req, owner, key } => {
                msgpack::write_array_len(out, 4);
                msgpack::write_uint(out, tag::GET_DATA.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_uint(out, *owner);
                msgpack::write_str(out, key);
            }
            ClientMessage::PutData {
                req,
                key,
                value,
                expected_version,
                public,
            } => {
                msgpack::write_array_len(out, 6);
                msgpack::write_uint(out, tag::PUT_DATA.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_str(out, key);
                msgpack::write_str(out, value);
                msgpack::write_uint(out, *expected_version);
                msgpack::write_bool(out, *public);
            }
            ClientMessage::DeleteData {
                req,
                key,
                expected_version,
            } => {
                msgpack::write_array_len(out, 4);
                msgpack::write_uint(out, tag::DELETE_DATA.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_str(out, key);
                msgpack::write_uint(out, *expected_version);
            }
            ClientMessage::GetProfile { req, account_id } => {
                msgpack::write_array_len(out, 3);
                msgpack::write_uint(out, tag::GET_PROFILE.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_uint(out, *account_id);
            }
            ClientMessage::SetName { req, name } => {
                msgpack::write_array_len(out, 3);
                msgpack::write_uint(out, tag::SET_NAME.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_str(out, name);
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
                account_id,
            } => {
                arr(out, 10);
                u(out, tag::WELCOME.into());
                u(out, (*version).into());
                u(out, *session_id);
                u(out, (*tick_hz).into());
                u(out, (*max_message_bytes).into());
                u(out, (*timeout_ms).into());
                u(out, (*queue_capacity).into());
                s(out, resume_token);
                u(out, (*reconnect_grace_ms).into());
                u(out, *account_id);
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
            ServerMessage::Conflict {
                message,
                req,
                current_version,
            } => {
                arr(out, 5);
                u(out, tag::ERROR.into());
                u(out, ErrorCode::Conflict.as_u16().into());
                s(out, message);
                u(out, (*req).into());
                u(out, *current_version);
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
            ServerMessage::Session {
                req,
                account_id,
                token,
                expires_at_ms,
                display_name,
            } => {
                arr(out, 6);
                u(out, tag::SESSION.into());
                u(out, (*req).into());
                u(out, *account_id);
                s(out, token);
                u(out, *expires_at_ms);
                s(out, display_name);
            }
            ServerMessage::Data {
                req,
                owner,
                key,
                value,
                version,
                public,
            } => {
                arr(out, 7);
                u(out, tag::DATA.into());
                u(out, (*req).into());
                u(out, *owner);
                s(out, key);
                match value {
                    Some(v) => s(out, v),
                    None => msgpack::write_nil(out),
                }
                u(out, *version);
                msgpack::write_bool(out, *public);
            }
            ServerMessage::Written { req, key, version } => {
                arr(out, 4);
                u(out, tag::WRITTEN.into());
                u(out, (*req).into());
                s(out, key);
                u(out, *version);
            }
            ServerMessage::Profile {
                req,
                account_id,
                display_name,
                sessions,
                play_ms,
                games_played,
            } => {
                arr(out, 7);
                u(out, tag::PROFILE.into());
                u(out, (*req).into());
                u(out, *account_id);
                s(out, display_name);
                u(out, *sessions);
                u(out, *play_ms);
                u(out, *games_played);
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
                    // Absent from servers older than accounts: not logged in.
                    account_id: if n >= 10 { r.read_u64()? } else { 0 },
                };
                (n.min(10), m)
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
                let message = r.read_str()?.to_owned();
                let req = r.read_u32()?;
                if code == ErrorCode::Conflict && n >= 5 {
                    let current_version = r.read_u64()?;
                    let m = ServerMessage::Conflict {
                        message,
                        req,
                        current_version,
                    };
                    (5, m)
                } else {
                    (4, ServerMessage::Error { code, message, req })
                }
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
            tag::SESSION => {
                expect(t, 6, n)?;
                let m = ServerMessage::Session {
                    req: r.read_u32()?,
                    account_id: r.read_u64()?,
                    token: r.read_str()?.to_owned(),
                    expires_at_ms: r.read_u64()?,
                    display_name: r.read_str()?.to_owned(),
                };
                (6, m)
            }
            tag::DATA => {
                expect(t, 7, n)?;
                let req = r.read_u32()?;
                let owner = r.read_u64()?;
                let key = r.read_str()?.to_owned();
                let value = if r.try_nil() {
                    None
                } else {
                    Some(r.read_str()?.to_owned())
                };
                let m = ServerMessage::Data {
                    req,
                    owner,
                    key,
                    value,
                    version: r.read_u64()?,
                    public: r.read_bool()?,
                };
                (7, m)
            }
            tag::WRITTEN => {
                expect(t, 4, n)?;
                let m = ServerMessage::Written {
                    req: r.read_u32()?,
                    key: r.read_str()?.to_owned(),
                    version: r.read_u64()?,
                };
                (4, m)
            }
            tag::PROFILE => {
                expect(t, 7, n)?;
                let m = ServerMessage::Profile {
                    req: r.read_u32()?,
                    account_id: r.read_u64()?,
                    display_name: r.read_str()?.to_owned(),
                    sessions: r.read_u64()?,
                    play_ms: r.read_u64()?,
                    games_played: r.read_u64()?,
                };
                (7, m)
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

    #[test]
    fn requests_carry_their_id_and_others_none() {
        let join = ClientMessage::Join {
            req: 7,
            kind: "arena",
        };
        assert_eq!((join.req(), join.name()), (Some(7), "join"));
        let put = ClientMessage::PutData {
            req: 9,
            key: "k",
            value: "1",
            expected_version: 0,
            public: false,
        };
        assert_eq!((put.req(), put.name()), (Some(9), "put_data"));
        let ping = ClientMessage::Ping { nonce: 3 };
        assert_eq!((ping.req(), ping.name()), (None, "ping"));
        let input = ClientMessage::Input {
            seq: 1,
            payload: &[0x90],
        };
        assert_eq!((input.req(), input.name()), (None, "input"));
    }

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
        (1u8..=16, any::<u64>(), ".{0,70}", payload_strategy())
    }

    fn build<'a>(t: u8, n: u64, s: &'a str, p: &'a [u8]) -> ClientMessage<'a> {
        match t {
            1 => ClientMessage::Hello {
                version: n as u32,
                client: s,
                resume: None,
                token: None,
            },
            7 => ClientMessage::Hello {
                version: n as u32,
                client: s,
                resume: Some(s),
                token: None,
            },
            8 => ClientMessage::Hello {
                version: n as u32,
                client: s,
                resume: None,
                token: Some(s),
            },
            9 => ClientMessage::Hello {
                version: n as u32,
                client: s,
                resume: Some(s),
                token: Some(s),
            },
            10 => ClientMessage::Login {
                req: n as u32,
                provider: s,
                credential: s,
            },
            11 => ClientMessage::GetData {
                req: n as u32,
                owner: n,
                key: s,
            },
            12 => ClientMessage::PutData {
                req: n as u32,
                key: s,
                value: s,
                expected_version: n,
                public: n.is_multiple_of(2),
            },
            13 => ClientMessage::DeleteData {
                req: n as u32,
                key: s,
                expected_version: n,
            },
            14 => ClientMessage::GetProfile {
                req: n as u32,
                account_id: n,
            },
            15 => ClientMessage::SetName {
                req: n as u32,
                name: s,
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
                ServerMessage::Welcome { version: n as u32, session_id: n, tick_hz: 20, max_message_bytes: 4096, timeout_ms: n as u32, queue_capacity: 100, resume_token: s.clone(), reconnect_grace_ms: 10_000, account_id: n },
                ServerMessage::Joined { req: n as u32, room_id: n, player_id: n as u32, kind: s.clone(), max_players: 16 },
                ServerMessage::Left { req: n as u32, room_id: n },
                ServerMessage::State { tick: n, last_seq: n as u32, payload: Bytes::from(p.clone()) },
                ServerMessage::ChatLine { room_id: n, player_id: 3, name: s.clone(), text: s.clone() },
                ServerMessage::Pong { nonce: n },
                ServerMessage::Ok { req: n as u32 },
                ServerMessage::Error { code: ErrorCode::ALL[c], message: s.clone(), req: n as u32 },
                ServerMessage::Conflict { message: s.clone(), req: n as u32, current_version: n },
                ServerMessage::RoomClosed { room_id: n, reason: s.clone() },
                ServerMessage::Shutdown { reason: s.clone(), reconnect_after_ms: n as u32 },
                ServerMessage::Session { req: n as u32, account_id: n, token: s.clone(), expires_at_ms: n, display_name: s.clone() },
                ServerMessage::Data { req: n as u32, owner: n, key: s.clone(), value: Some(s.clone()), version: n, public: true },
                ServerMessage::Data { req: n as u32, owner: n, key: s.clone(), value: None, version: 0, public: false },
                ServerMessage::Written { req: n as u32, key: s.clone(), version: n },
                ServerMessage::Profile { req: n as u32, account_id: n, display_name: s.clone(), sessions: n, play_ms: n, games_played: n },
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
    fn a_hello_from_before_session_tokens_still_decodes() {
        // [1, 1, "c", "resume"]: four elements, no token.
        let mut out = Vec::new();
        msgpack::write_array_len(&mut out, 4);
        msgpack::write_uint(&mut out, tag::HELLO.into());
        msgpack::write_uint(&mut out, 1);
        msgpack::write_str(&mut out, "c");
        msgpack::write_str(&mut out, "resume");
        let m = ClientMessage::decode(&out).unwrap();
        assert_eq!(
            m,
            ClientMessage::Hello {
                version: 1,
                client: "c",
                resume: Some("resume"),
                token: None
            }
        );
        // A welcome without account_id (9 elements) means not logged in.
        let mut out = Vec::new();
        msgpack::write_array_len(&mut out, 9);
        for v in [tag::WELCOME.into(), 1, 2, 20, 4096, 30000, 100] {
            msgpack::write_uint(&mut out, v);
        }
        msgpack::write_str(&mut out, "ab");
        msgpack::write_uint(&mut out, 10000);
        assert!(matches!(
            ServerMessage::decode(&out),
            Ok(ServerMessage::Welcome { account_id: 0, .. })
        ));
    }

    #[test]
    fn debug_output_hides_tokens_and_credentials() {
        let hello = ClientMessage::Hello {
            version: 1,
            client: "c",
            resume: Some("resume-secret"),
            token: Some("token-secret"),
        };
        let login = ClientMessage::Login {
            req: 1,
            provider: "device",
            credential: "device-secret",
        };
        let session = ServerMessage::Session {
            req: 1,
            account_id: 7,
            token: "token-secret".into(),
            expires_at_ms: 1,
            display_name: "Ada".into(),
        };
        let shown = format!("{hello:?} {login:?} {session:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("Ada") && shown.contains("device"), "{shown}");
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
                token: None,
            },
            "93 01 01 a4 64 65 6d 6f",
        );
        client(
            ClientMessage::Hello {
                version: 1,
                client: "demo",
                resume: None,
                token: Some("tk"),
            },
            "95 01 01 a4 64 65 6d 6f c0 a2 74 6b",
        );
        client(
            ClientMessage::Login {
                req: 2,
                provider: "device",
                credential: "dev-0001",
            },
            "94 07 02 a6 64 65 76 69 63 65 a8 64 65 76 2d 30 30 30 31",
        );
        client(
            ClientMessage::PutData {
                req: 3,
                key: "save",
                value: "{\"lv\":2}",
                expected_version: 1,
                public: false,
            },
            "96 09 03 a4 73 61 76 65 a8 7b 22 6c 76 22 3a 32 7d 01 c2",
        );
        client(
            ClientMessage::GetData {
                req: 4,
                owner: 0,
                key: "save",
            },
            "94 08 04 00 a4 73 61 76 65",
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
                account_id: 0,
            },
            "9a 40 01 01 14 cd 10 00 cd 75 30 64 a2 61 62 cd 27 10 00",
        );
        server(
            ServerMessage::Session {
                req: 2,
                account_id: 42,
                token: "tk".into(),
                expires_at_ms: 1_700_000_000_000,
                display_name: "Ada".into(),
            },
            "96 4a 02 2a a2 74 6b cf 00 00 01 8b cf e5 68 00 a3 41 64 61",
        );
        server(
            ServerMessage::Written {
                req: 3,
                key: "save".into(),
                version: 2,
            },
            "94 4c 03 a4 73 61 76 65 02",
        );
        server(
            ServerMessage::Data {
                req: 4,
                owner: 42,
                key: "save".into(),
                value: Some("{\"lv\":2}".into()),
                version: 2,
                public: false,
            },
            "97 4b 04 2a a4 73 61 76 65 a8 7b 22 6c 76 22 3a 32 7d 02 c2",
        );
        server(
            ServerMessage::Data {
                req: 4,
                owner: 42,
                key: "none".into(),
                value: None,
                version: 0,
                public: false,
            },
            "97 4b 04 2a a4 6e 6f 6e 65 c0 00 c2",
        );
        server(
            ServerMessage::Conflict {
                message: "version conflict: the current version is 2".into(),
                req: 3,
                current_version: 2,
            },
            "95 47 1f d9 2a 76 65 72 73 69 6f 6e 20 63 6f 6e 66 6c 69 63 74 3a 20 74 68 65 20 63 75 72 72 65 6e 74 20 76 65 72 73 69 6f 6e 20 69 73 20 32 03 02",
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
