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
            | ClientMessage::ClaimSeat { req, .. } => Some(*req),
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
            ClientMessage::ClaimSeat { req, ticket } => {
                msgpack::write_array_len(out, 3);
                msgpack::write_uint(out, tag::CLAIM_SEAT.into());
                msgpack::write_uint(out, (*req).into());
                msgpack::write_str(out, ticket);
            }
        }
    }
}
