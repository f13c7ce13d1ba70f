//! [`ServerMessage`]: what the server sends, decoded into owned values for clients, and
//! [`encode_state`], the allocation-free `state` encoder of the server's hot path.

use bytes::Bytes;

use super::{close, expect, open, tag, DecodeError, REDACTED};
use crate::error_code::ErrorCode;
use crate::msgpack::{self, Reader};

/// A message from the server.
///
/// Its `Debug` output leaves the resume and session tokens out.
#[derive(Clone, PartialEq)]
pub enum ServerMessage {
    /// `[64, version, session_id, tick_hz, max_message_bytes, timeout_ms, queue_capacity,
    /// resume_token, reconnect_grace_ms, account_id, revision]`.
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
        /// The highest protocol revision the server speaks (1 when a server older than
        /// revisions leaves it out).
        revision: u32,
    },
    /// `[65, req, room_id, player_id, kind, max_players, code, team]`: the reply to
    /// `join`, `create`, `join_or_create`, `join_by_id` and `join_by_code`.
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
        /// The room's share code, for `join_by_code` ("" from a server before revision 2).
        code: String,
        /// The player's team, from 1; 0 when the kind has no teams.
        team: u32,
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
    /// `[78, req, total, rooms]`: the reply to `list_rooms` (revision 2): one page of
    /// the open public rooms of a kind that match the filter, oldest first.
    Rooms {
        /// The `list_rooms` request id.
        req: u32,
        /// How many rooms match in all (the page is part of them).
        total: u32,
        /// The page.
        rooms: Listings,
    },
    /// `[82, req, room_id, kind, tick_hz]`: the reply to `spectate` or
    /// `spectate_recording`; `spectator_state`s follow until `room_closed` (or
    /// `stop_spectating`).
    Spectating {
        /// The request id.
        req: u32,
        /// The room watched (for a recording: the room that played it).
        room_id: u64,
        /// The room kind.
        kind: String,
        /// States per second.
        tick_hz: u32,
    },
    /// `[83, room_id, tick, payload]`: the state everyone in the watched room got.
    SpectatorState {
        /// The room watched.
        room_id: u64,
        /// The room's tick number.
        tick: u64,
        /// The game's room state, one MessagePack value, as raw bytes.
        payload: Bytes,
    },
    /// `[84, req, node, tcp, ws, ticket, room_id]` (revision 4): the reply to `join` when
    /// the seat is on another node of the cluster. The client connects to that node (`tcp`
    /// for raw TCP, `ws` for WebSocket at path `/ws`, each `host:port`), says `hello`, and
    /// sends `claim_seat` with `ticket` before it expires.
    Redirect {
        /// The `join` request id.
        req: u32,
        /// The node holding the seat.
        node: String,
        /// Its raw TCP address, `host:port`.
        tcp: String,
        /// Its WebSocket address, `host:port` (path `/ws`).
        ws: String,
        /// The single-use seat ticket. A secret: never logged.
        ticket: String,
        /// The room the seat is in.
        room_id: u64,
    },
}

/// The page of a `rooms` reply, kept as its MessagePack array and read listing by
/// listing ([`Listings::iter`]): decoding a reply then allocates no more than its body,
/// as for every other message, though an owned [`RoomListing`] is ten times the size of
/// its smallest encoding.
#[derive(Clone, PartialEq)]
pub struct Listings {
    /// Listings in the array.
    count: u32,
    /// The array, header included.
    bytes: Bytes,
}

impl std::fmt::Debug for Listings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl FromIterator<RoomListing> for Listings {
    fn from_iter<I: IntoIterator<Item = RoomListing>>(iter: I) -> Self {
        Listings::new(&iter.into_iter().collect::<Vec<_>>())
    }
}

impl Listings {
    /// The page `rooms`, encoded.
    pub fn new(rooms: &[RoomListing]) -> Self {
        let mut out = Vec::new();
        // A page is capped by the server far below u32::MAX.
        let count = u32::try_from(rooms.len()).unwrap_or(u32::MAX);
        msgpack::write_array_len(&mut out, count);
        for room in rooms.iter().take(count as usize) {
            room.encode(&mut out);
        }
        Listings {
            count,
            bytes: out.into(),
        }
    }

    /// Listings on the page.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the page is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Each listing, decoded as it is reached.
    pub fn iter(&self) -> impl Iterator<Item = RoomListing> + '_ {
        let mut r = Reader::new(&self.bytes);
        // Checked when the page was decoded or built.
        let count = r.read_array_len().unwrap_or(0);
        (0..count).map_while(move |_| RoomListing::decode(&mut r).ok())
    }

    /// Every listing, owned.
    pub fn to_vec(&self) -> Vec<RoomListing> {
        self.iter().collect()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
    }

    /// Reads the array and checks every listing in it, without allocating per listing.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let raw = r.read_value_bytes()?;
        let mut check = Reader::new(raw);
        let count = check.read_array_len()?;
        for _ in 0..count {
            RoomListing::check(&mut check)?;
        }
        Ok(Listings {
            count,
            bytes: Bytes::copy_from_slice(raw),
        })
    }
}

/// One room in a `rooms` reply: `[room_id, kind, code, players, max_players, metadata,
/// age_ms, locked]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomListing {
    /// The room's id, for `join_by_id`.
    pub room_id: u64,
    /// The room kind.
    pub kind: String,
    /// The room's share code, for `join_by_code`.
    pub code: String,
    /// Seats taken.
    pub players: u32,
    /// Seats in all.
    pub max_players: u32,
    /// What the game published about the room: one MessagePack value (nil when none),
    /// as raw bytes.
    pub metadata: Bytes,
    /// How long the room has been open, in milliseconds.
    pub age_ms: u64,
    /// Whether the game locked the room (it takes no joins now).
    pub locked: bool,
}

/// Fields in a [`RoomListing`] array.
const LISTING_FIELDS: u32 = 8;

impl RoomListing {
    fn encode(&self, out: &mut Vec<u8>) {
        use msgpack::{write_str as s, write_uint as u};
        msgpack::write_array_len(out, LISTING_FIELDS);
        u(out, self.room_id);
        s(out, &self.kind);
        s(out, &self.code);
        u(out, self.players.into());
        u(out, self.max_players.into());
        if self.metadata.is_empty() {
            msgpack::write_nil(out);
        } else {
            out.extend_from_slice(&self.metadata);
        }
        u(out, self.age_ms);
        msgpack::write_bool(out, self.locked);
    }

    /// Reads one listing's fields without keeping them: the check a page gets when it
    /// is decoded.
    fn check(r: &mut Reader<'_>) -> Result<(), DecodeError> {
        let n = r.read_array_len()?;
        expect(tag::ROOMS, LISTING_FIELDS, n)?;
        r.read_u64()?;
        r.read_str()?;
        r.read_str()?;
        r.read_u32()?;
        r.read_u32()?;
        r.read_value_bytes()?;
        r.read_u64()?;
        r.read_bool()?;
        for _ in LISTING_FIELDS..n {
            r.skip_value()?;
        }
        Ok(())
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.read_array_len()?;
        expect(tag::ROOMS, LISTING_FIELDS, n)?;
        let listing = RoomListing {
            room_id: r.read_u64()?,
            kind: r.read_str()?.to_owned(),
            code: r.read_str()?.to_owned(),
            players: r.read_u32()?,
            max_players: r.read_u32()?,
            metadata: Bytes::copy_from_slice(r.read_value_bytes()?),
            age_ms: r.read_u64()?,
            locked: r.read_bool()?,
        };
        // A later revision may append fields to a listing too.
        for _ in LISTING_FIELDS..n {
            r.skip_value()?;
        }
        Ok(listing)
    }
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
                revision,
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
                .field("revision", revision)
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
                code: _,
                team,
            } => f
                .debug_struct("Joined")
                .field("req", req)
                .field("room_id", room_id)
                .field("player_id", player_id)
                .field("kind", kind)
                .field("max_players", max_players)
                // The code lets anyone into a private room: kept out of logs.
                .field("code", &REDACTED)
                .field("team", team)
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
            ServerMessage::Rooms { req, total, rooms } => f
                .debug_struct("Rooms")
                .field("req", req)
                .field("total", total)
                .field("rooms", &rooms.len())
                .finish(),
            ServerMessage::Spectating {
                req,
                room_id,
                kind,
                tick_hz,
            } => f
                .debug_struct("Spectating")
                .field("req", req)
                .field("room_id", room_id)
                .field("kind", kind)
                .field("tick_hz", tick_hz)
                .finish(),
            ServerMessage::SpectatorState {
                room_id,
                tick,
                payload,
            } => f
                .debug_struct("SpectatorState")
                .field("room_id", room_id)
                .field("tick", tick)
                .field("payload_bytes", &payload.len())
                .finish(),
            ServerMessage::Redirect {
                req,
                node,
                tcp,
                ws,
                ticket: _,
                room_id,
            } => f
                .debug_struct("Redirect")
                .field("req", req)
                .field("node", node)
                .field("tcp", tcp)
                .field("ws", ws)
                .field("ticket", &REDACTED)
                .field("room_id", room_id)
                .finish(),
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
                revision,
            } => {
                arr(out, 11);
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
                u(out, (*revision).into());
            }
            ServerMessage::Joined {
                req,
                room_id,
                player_id,
                kind,
                max_players,
                code,
                team,
            } => {
                arr(out, 8);
                u(out, tag::JOINED.into());
                u(out, (*req).into());
                u(out, *room_id);
                u(out, (*player_id).into());
                s(out, kind);
                u(out, (*max_players).into());
                s(out, code);
                u(out, (*team).into());
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
            ServerMessage::Rooms { req, total, rooms } => {
                arr(out, 4);
                u(out, tag::ROOMS.into());
                u(out, (*req).into());
                u(out, (*total).into());
                rooms.encode(out);
            }
            ServerMessage::Spectating {
                req,
                room_id,
                kind,
                tick_hz,
            } => {
                arr(out, 5);
                u(out, tag::SPECTATING.into());
                u(out, (*req).into());
                u(out, *room_id);
                s(out, kind);
                u(out, (*tick_hz).into());
            }
            ServerMessage::SpectatorState {
                room_id,
                tick,
                payload,
            } => {
                arr(out, 4);
                u(out, tag::SPECTATOR_STATE.into());
                u(out, *room_id);
                u(out, *tick);
                out.extend_from_slice(payload);
            }
            ServerMessage::Redirect {
                req,
                node,
                tcp,
                ws,
                ticket,
                room_id,
            } => {
                arr(out, 7);
                u(out, tag::REDIRECT.into());
                u(out, (*req).into());
                s(out, node);
                s(out, tcp);
                s(out, ws);
                s(out, ticket);
                u(out, *room_id);
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
                    // Absent from servers older than revisions: revision 1.
                    revision: if n >= 11 { r.read_u32()? } else { 1 },
                };
                (n.min(11), m)
            }
            tag::JOINED => {
                expect(t, 6, n)?;
                let m = ServerMessage::Joined {
                    req: r.read_u32()?,
                    room_id: r.read_u64()?,
                    player_id: r.read_u32()?,
                    kind: r.read_str()?.to_owned(),
                    max_players: r.read_u32()?,
                    // Absent from servers before revision 2: no code, no team.
                    code: if n >= 7 {
                        r.read_str()?.to_owned()
                    } else {
                        String::new()
                    },
                    team: if n >= 8 { r.read_u32()? } else { 0 },
                };
                (n.min(8), m)
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
            tag::ROOMS => {
                expect(t, 4, n)?;
                let req = r.read_u32()?;
                let total = r.read_u32()?;
                let rooms = Listings::decode(&mut r)?;
                (4, ServerMessage::Rooms { req, total, rooms })
            }
            tag::SPECTATING => {
                expect(t, 5, n)?;
                let m = ServerMessage::Spectating {
                    req: r.read_u32()?,
                    room_id: r.read_u64()?,
                    kind: r.read_str()?.to_owned(),
                    tick_hz: r.read_u32()?,
                };
                (5, m)
            }
            tag::SPECTATOR_STATE => {
                expect(t, 4, n)?;
                let m = ServerMessage::SpectatorState {
                    room_id: r.read_u64()?,
                    tick: r.read_u64()?,
                    payload: Bytes::copy_from_slice(r.read_value_bytes()?),
                };
                (4, m)
            }
            tag::REDIRECT => {
                expect(t, 7, n)?;
                let m = ServerMessage::Redirect {
                    req: r.read_u32()?,
                    node: r.read_str()?.to_owned(),
                    tcp: r.read_str()?.to_owned(),
                    ws: r.read_str()?.to_owned(),
                    ticket: r.read_str()?.to_owned(),
                    room_id: r.read_u64()?,
                };
                (7, m)
            }
            other => return Err(DecodeError::UnknownType(other.into())),
        };
        close(&mut r, n, need)?;
        Ok(msg)
    }
}
