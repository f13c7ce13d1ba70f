//! [`ClientMessage`]: what a client sends, decoded by borrowing from the received bytes.

use super::{close, expect, open, redacted, tag, DecodeError, REDACTED};
use crate::msgpack::{self, ReadError, Reader};

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
    /// `[13, req, kind, options, private]`: open a new room of this kind and take a seat
    /// in it; answered by `joined` or `error` (revision 2).
    Create {
        /// Request id, echoed in the reply.
        req: u32,
        /// The room kind.
        kind: &'a str,
        /// The creation options: one MessagePack value (a map, or nil for none), as raw
        /// bytes; the game reads them, the server bounds them (`BAD_OPTIONS`).
        options: &'a [u8],
        /// Keep the room out of listings and `join_or_create`: joinable by id or code only.
        private: bool,
    },
    /// `[14, req, kind, options]`: join an open public room of this kind whose options
    /// match on the kind's filter keys, else create one; answered by `joined` or `error`
    /// (revision 2).
    JoinOrCreate {
        /// Request id, echoed in the reply.
        req: u32,
        /// The room kind.
        kind: &'a str,
        /// The options (a MessagePack map or nil, raw), for matching and for a new room.
        options: &'a [u8],
    },
    /// `[15, req, room_id]`: join one room by its id; answered by `joined` or `error`
    /// (revision 2).
    JoinById {
        /// Request id, echoed in the reply.
        req: u32,
        /// The room's id, from `joined` or `rooms`.
        room_id: u64,
    },
    /// `[16, req, code]`: join one room by its share code; answered by `joined` or
    /// `error` (revision 2).
    JoinByCode {
        /// Request id, echoed in the reply.
        req: u32,
        /// The room's code (6 characters; matched without regard to case).
        code: &'a str,
    },
    /// `[17, req, kind, filter, offset, limit]`: a page of the open public rooms of a
    /// kind; answered by `rooms` or `error` (revision 2).
    ListRooms {
        /// Request id, echoed in the reply.
        req: u32,
        /// The room kind.
        kind: &'a str,
        /// Option values a listed room must have (a MessagePack map or nil, raw).
        filter: &'a [u8],
        /// Rooms to skip, oldest first.
        offset: u32,
        /// Rooms wanted; the server caps it.
        limit: u32,
    },
    /// `[18, req, kind, options, rating, party]`: wait in the kind's matchmaking queue;
    /// answered by `ok` (queued), the match later by `joined` with req 0 (revision 2).
    Queue {
        /// Request id, echoed in the reply.
        req: u32,
        /// The room kind.
        kind: &'a str,
        /// The room options (a MessagePack map or nil, raw): players meet only with equal
        /// values of the kind's filter keys.
        options: &'a [u8],
        /// The player's rating (any integer or float on the wire).
        rating: f64,
        /// Queue every player of the sender's room as one party.
        party: bool,
    },
    /// `[19, req]`: leave the matchmaking queue; answered by `ok` or `error` (revision 2).
    LeaveQueue {
        /// Request id, echoed in the reply.
        req: u32,
    },
    /// `[20, req, room_id, code?]`: watch a room's states without a seat; answered by
    /// `spectating`, then `spectator_state`s. A non-empty `code` names the room by its
    /// share code instead of its id.
    Spectate {
        /// Request id, echoed in the reply.
        req: u32,
        /// The room.
        room_id: u64,
        /// The room's share code; empty: by `room_id`.
        code: &'a str,
    },
    /// `[21, req, file]`: watch a finished match from its recording, through the same
    /// stream; answered by `spectating`.
    SpectateRecording {
        /// Request id, echoed in the reply.
        req: u32,
        /// The recording's file name, as `GET /admin/recordings` lists it.
        file: &'a str,
    },
    /// `[22, req]`: stop watching; answered by `ok`.
    StopSpectating {
        /// Request id, echoed in the reply.
        req: u32,
    },
    /// `[23, req, ticket]` (revision 4): take the seat a `redirect`'s ticket reserved on
    /// this node; answered by `joined` or `error`.
    ClaimSeat {
        /// Request id, echoed in the reply.
        req: u32,
        /// The seat ticket, as the `redirect` gave it. A secret: never logged.
        ticket: &'a str,
    },
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
            ClientMessage::Create {
                req,
                kind,
                options,
                private,
            } => f
                .debug_struct("Create")
                .field("req", req)
                .field("kind", kind)
                .field("options_bytes", &options.len())
                .field("private", private)
                .finish(),
            ClientMessage::JoinOrCreate { req, kind, options } => f
                .debug_struct("JoinOrCreate")
                .field("req", req)
                .field("kind", kind)
                .field("options_bytes", &options.len())
                .finish(),
            ClientMessage::JoinById { req, room_id } => f
                .debug_struct("JoinById")
                .field("req", req)
                .field("room_id", room_id)
                .finish(),
            // A code is what lets a friend into a private room: kept out of logs.
            ClientMessage::JoinByCode { req, .. } => f
                .debug_struct("JoinByCode")
                .field("req", req)
                .field("code", &REDACTED)
                .finish(),
            ClientMessage::ListRooms {
                req,
                kind,
                filter,
                offset,
                limit,
            } => f
                .debug_struct("ListRooms")
                .field("req", req)
                .field("kind", kind)
                .field("filter_bytes", &filter.len())
                .field("offset", offset)
                .field("limit", limit)
                .finish(),
            ClientMessage::Queue {
                req,
                kind,
                options,
                rating,
                party,
            } => f
                .debug_struct("Queue")
                .field("req", req)
                .field("kind", kind)
                .field("options_bytes", &options.len())
                .field("rating", rating)
                .field("party", party)
                .finish(),
            ClientMessage::LeaveQueue { req } => {
                f.debug_struct("LeaveQueue").field("req", req).finish()
            }
            ClientMessage::Spectate { req, room_id, code } => f
                .debug_struct("Spectate")
                .field("req", req)
                .field("room_id", room_id)
                .field("code", code)
                .finish(),
            ClientMessage::SpectateRecording { req, file } => f
                .debug_struct("SpectateRecording")
                .field("req", req)
                .field("file", file)
                .finish(),
            ClientMessage::StopSpectating { req } => {
                f.debug_struct("StopSpectating").field("req", req).finish()
            }
            ClientMessage::ClaimSeat { req, .. } => f
                .debug_struct("ClaimSeat")
                .field("req", req)
                .field("ticket", &REDACTED)
                .finish(),
        }
    }
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
            | ClientMessage::SetName { req, .. }
            | ClientMessage::Create { req, .. }
            | ClientMessage::JoinOrCreate { req, .. }
            | ClientMessage::JoinById { req, .. }
            | ClientMessage::JoinByCode { req, .. }
            | ClientMessage::ListRooms { req, .. }
            | ClientMessage::Queue { req, .. }
            | ClientMessage::LeaveQueue { req } => Some(*req),
            ClientMessage::Spectate { req, .. }
            | ClientMessage::SpectateRecording { req, .. }
            | ClientMessage::StopSpectating { req } => Some(*req),
            ClientMessage::ClaimSeat { req, .. } => Some(*req),
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
            ClientMessage::Create { .. } => "create",
            ClientMessage::JoinOrCreate { .. } => "join_or_create",
            ClientMessage::JoinById { .. } => "join_by_id",
            ClientMessage::JoinByCode { .. } => "join_by_code",
            ClientMessage::ListRooms { .. } => "list_rooms",
            ClientMessage::Queue { .. } => "queue",
            ClientMessage::LeaveQueue { .. } => "leave_queue",
            ClientMessage::Spectate { .. } => "spectate",
            ClientMessage::SpectateRecording { .. } => "spectate_recording",
            ClientMessage::StopSpectating { .. } => "stop_spectating",
            ClientMessage::ClaimSeat { .. } => "claim_seat",
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
            t if t == u64::from(tag::CREATE) => {
                expect(tag::CREATE, 5, n)?;
                let m = ClientMessage::Create {
                    req: r.read_u32()?,
                    kind: r.read_str()?,
                    options: r.read_value_bytes()?,
                    private: r.read_bool()?,
                };
                (m, 5)
            }
            t if t == u64::from(tag::JOIN_OR_CREATE) => {
                expect(tag::JOIN_OR_CREATE, 4, n)?;
                let m = ClientMessage::JoinOrCreate {
                    req: r.read_u32()?,
                    kind: r.read_str()?,
                    options: r.read_value_bytes()?,
                };
                (m, 4)
            }
            t if t == u64::from(tag::JOIN_BY_ID) => {
                expect(tag::JOIN_BY_ID, 3, n)?;
                let m = ClientMessage::JoinById {
                    req: r.read_u32()?,
                    room_id: r.read_u64()?,
                };
                (m, 3)
            }
            t if t == u64::from(tag::JOIN_BY_CODE) => {
                expect(tag::JOIN_BY_CODE, 3, n)?;
                let m = ClientMessage::JoinByCode {
                    req: r.read_u32()?,
                    code: r.read_str()?,
                };
                (m, 3)
            }
            t if t == u64::from(tag::LIST_ROOMS) => {
                expect(tag::LIST_ROOMS, 6, n)?;
                let m = ClientMessage::ListRooms {
                    req: r.read_u32()?,
                    kind: r.read_str()?,
                    filter: r.read_value_bytes()?,
                    offset: r.read_u32()?,
                    limit: r.read_u32()?,
                };
                (m, 6)
            }
            t if t == u64::from(tag::QUEUE) => {
                expect(tag::QUEUE, 6, n)?;
                let m = ClientMessage::Queue {
                    req: r.read_u32()?,
                    kind: r.read_str()?,
                    options: r.read_value_bytes()?,
                    rating: r.read_f64()?,
                    party: r.read_bool()?,
                };
                (m, 6)
            }
            t if t == u64::from(tag::LEAVE_QUEUE) => {
                expect(tag::LEAVE_QUEUE, 2, n)?;
                (ClientMessage::LeaveQueue { req: r.read_u32()? }, 2)
            }
            t if t == u64::from(tag::SPECTATE) => {
                expect(tag::SPECTATE, 3, n)?;
                let (req, room_id) = (r.read_u32()?, r.read_u64()?);
                let code = if n >= 4 { r.read_str()? } else { "" };
                (ClientMessage::Spectate { req, room_id, code }, n.min(4))
            }
            t if t == u64::from(tag::SPECTATE_RECORDING) => {
                expect(tag::SPECTATE_RECORDING, 3, n)?;
                let m = ClientMessage::SpectateRecording {
                    req: r.read_u32()?,
                    file: r.read_str()?,
                };
                (m, 3)
            }
            t if t == u64::from(tag::STOP_SPECTATING) => {
                expect(tag::STOP_SPECTATING, 2, n)?;
                (ClientMessage::StopSpectating { req: r.read_u32()? }, 2)
            }
            t if t == u64::from(tag::CLAIM_SEAT) => {
                expect(tag::CLAIM_SEAT, 3, n)?;
                let m = ClientMessage::ClaimSeat {
                    req: r.read_u32()?,
                    ticket: r.read_str()?,
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
            ClientMessage::Create {
                req,
                kind,
                options,
                private,
            } => {
                msgpack::write_array_len(out, 5);
                msgpack::write_uint(out, tag::CREATE.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_str(out, kind);
                write_map_or_empty(out, options);
                msgpack::write_bool(out, *private);
            }
            ClientMessage::JoinOrCreate { req, kind, options } => {
                msgpack::write_array_len(out, 4);
                msgpack::write_uint(out, tag::JOIN_OR_CREATE.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_str(out, kind);
                write_map_or_empty(out, options);
            }
            ClientMessage::JoinById { req, room_id } => {
                msgpack::write_array_len(out, 3);
                msgpack::write_uint(out, tag::JOIN_BY_ID.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_uint(out, *room_id);
            }
            ClientMessage::JoinByCode { req, code } => {
                msgpack::write_array_len(out, 3);
                msgpack::write_uint(out, tag::JOIN_BY_CODE.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_str(out, code);
            }
            ClientMessage::ListRooms {
                req,
                kind,
                filter,
                offset,
                limit,
            } => {
                msgpack::write_array_len(out, 6);
                msgpack::write_uint(out, tag::LIST_ROOMS.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_str(out, kind);
                write_map_or_empty(out, filter);
                msgpack::write_uint(out, (*offset).into());
                msgpack::write_uint(out, (*limit).into());
            }
            ClientMessage::Queue {
                req,
                kind,
                options,
                rating,
                party,
            } => {
                msgpack::write_array_len(out, 6);
                msgpack::write_uint(out, tag::QUEUE.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_str(out, kind);
                write_map_or_empty(out, options);
                write_number(out, *rating);
                msgpack::write_bool(out, *party);
            }
            ClientMessage::LeaveQueue { req } => {
                msgpack::write_array_len(out, 2);
                msgpack::write_uint(out, tag::LEAVE_QUEUE.into());
                msgpack::write_uint(out, (*req).into());
            }
            ClientMessage::Spectate { req, room_id, code } => {
                // The code only when there is one: a revision-3 server reads either.
                msgpack::write_array_len(out, if code.is_empty() { 3 } else { 4 });
                msgpack::write_uint(out, tag::SPECTATE.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_uint(out, *room_id);
                if !code.is_empty() {
                    msgpack::write_str(out, code);
                }
            }
            ClientMessage::SpectateRecording { req, file } => {
                msgpack::write_array_len(out, 3);
                msgpack::write_uint(out, tag::SPECTATE_RECORDING.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_str(out, file);
            }
            ClientMessage::StopSpectating { req } => {
                msgpack::write_array_len(out, 2);
                msgpack::write_uint(out, tag::STOP_SPECTATING.into());
                msgpack::write_uint(out, (*req).into());
            }
            ClientMessage::ClaimSeat { req, ticket } => {
                msgpack::write_array_len(out, 3);
                msgpack::write_uint(out, tag::CLAIM_SEAT.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_str(out, ticket);
            }
        }
    }
}

/// Writes a number in the smallest form that holds it exactly: an integer, a float 32,
/// else a float 64 (a reader takes any of them as the same `f64`).
fn write_number(out: &mut Vec<u8>, v: f64) {
    // Below 2^53 every integer is exact in an f64, so the cast back is exact too.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if v.fract() == 0.0 && v.abs() < EXACT {
        msgpack::write_int(out, v as i64);
    } else if f64::from(v as f32) == v {
        msgpack::write_f32(out, v as f32);
    } else {
        msgpack::write_f64(out, v);
    }
}

/// Writes a raw options or filter value; an empty slice (a caller with no options)
/// is written as an empty map, so the message stays well-formed.
fn write_map_or_empty(out: &mut Vec<u8>, value: &[u8]) {
    if value.is_empty() {
        msgpack::write_map_len(out, 0);
    } else {
        out.extend_from_slice(value);
    }
}
