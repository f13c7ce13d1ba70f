//! Generators and wire helpers shared by the property tests: every client and server
//! message with arbitrary field values, arbitrary MessagePack payloads, and WebSocket
//! frames (masked, fragmented) written by hand the way a client writes them.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use bytes::Bytes;
use proptest::prelude::*;
use proptest::strategy::Union;
use rally_protocol::msgpack;
use rally_protocol::ws::{self, Opcode};
use rally_protocol::{ClientMessage, ErrorCode, ServerMessage};

/// Integers where MessagePack switches encodings, and the ends of each type.
const U64_EDGES: [u64; 14] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x1_0000,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MAX as u64,
    i64::MAX as u64 + 1,
    u64::MAX - 1,
    u64::MAX,
];

/// String lengths in bytes where MessagePack switches encodings (fixstr, str 8, 16, 32).
const STR_EDGES: [usize; 8] = [0, 1, 31, 32, 255, 256, 65_535, 65_536];

/// A `u64`, often one of the encoding edges.
pub fn u64_field() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => any::<u64>(),
        1 => 0u64..300,
        2 => proptest::sample::select(&U64_EDGES[..]),
    ]
}

/// A `u32`, often one of the encoding edges.
pub fn u32_field() -> impl Strategy<Value = u32> {
    prop_oneof![
        2 => any::<u32>(),
        1 => 0u32..300,
        2 => proptest::sample::select(
            U64_EDGES
                .iter()
                .filter_map(|&v| u32::try_from(v).ok())
                .collect::<Vec<_>>()
        ),
    ]
}

/// A string: any Unicode, or one whose length in bytes is an encoding edge (made of one
/// arbitrary character repeated, padded with ASCII to the exact length).
pub fn str_field() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        1 => (proptest::sample::select(&STR_EDGES[..]), any::<char>()).prop_map(|(n, c)| {
            let mut s = c.to_string().repeat(n / c.len_utf8());
            while s.len() < n {
                s.push('a');
            }
            s
        }),
    ]
}

/// Appends an extension value (fixext 1-16, ext 8/16).
fn write_ext(out: &mut Vec<u8>, kind: i8, data: &[u8]) {
    match data.len() {
        1 => out.push(0xd4),
        2 => out.push(0xd5),
        4 => out.push(0xd6),
        8 => out.push(0xd7),
        16 => out.push(0xd8),
        n if n <= 0xff => out.extend_from_slice(&[0xc7, n as u8]),
        n => {
            out.push(0xc8);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.push(kind as u8);
    out.extend_from_slice(data);
}

/// One arbitrary MessagePack value, encoded: a game payload.
pub fn payload() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just(vec![0xc0]),
        any::<bool>().prop_map(|b| {
            let mut o = Vec::new();
            msgpack::write_bool(&mut o, b);
            o
        }),
        any::<i64>().prop_map(|v| {
            let mut o = Vec::new();
            msgpack::write_int(&mut o, v);
            o
        }),
        u64_field().prop_map(|v| {
            let mut o = Vec::new();
            msgpack::write_uint(&mut o, v);
            o
        }),
        any::<f32>().prop_map(|v| {
            let mut o = Vec::new();
            msgpack::write_f32(&mut o, v);
            o
        }),
        any::<f64>().prop_map(|v| {
            let mut o = Vec::new();
            msgpack::write_f64(&mut o, v);
            o
        }),
        ".{0,40}".prop_map(|s| {
            let mut o = Vec::new();
            msgpack::write_str(&mut o, &s);
            o
        }),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| {
            let mut o = Vec::new();
            msgpack::write_bin(&mut o, &b);
            o
        }),
        (any::<i8>(), proptest::collection::vec(any::<u8>(), 1..300)).prop_map(|(k, d)| {
            let mut o = Vec::new();
            write_ext(&mut o, k, &d);
            o
        }),
    ];
    leaf.prop_recursive(3, 64, 20, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..20).prop_map(|items| {
                let mut o = Vec::new();
                msgpack::write_array_len(&mut o, items.len() as u32);
                items.iter().for_each(|i| o.extend_from_slice(i));
                o
            }),
            proptest::collection::vec((inner.clone(), inner), 0..18).prop_map(|pairs| {
                let mut o = Vec::new();
                msgpack::write_map_len(&mut o, pairs.len() as u32);
                for (k, v) in &pairs {
                    o.extend_from_slice(k);
                    o.extend_from_slice(v);
                }
                o
            }),
        ]
    })
}

/// Owned field values a client message is built from (client messages borrow).
#[derive(Debug, Clone)]
pub struct ClientFields {
    /// Which variant, `0..CLIENT_VARIANTS`.
    pub variant: usize,
    pub a: u32,
    pub b: u64,
    pub s: String,
    pub t: String,
    pub resume: Option<String>,
    pub token: Option<String>,
    pub flag: bool,
    pub payload: Vec<u8>,
}

/// Client message variants [`client`] builds.
pub const CLIENT_VARIANTS: usize = 23;

/// Field values for any client message.
pub fn client_fields() -> impl Strategy<Value = ClientFields> {
    (
        0..CLIENT_VARIANTS,
        u32_field(),
        u64_field(),
        str_field(),
        str_field(),
        proptest::option::of(str_field()),
        proptest::option::of(str_field()),
        any::<bool>(),
        payload(),
    )
        .prop_map(
            |(variant, a, b, s, t, resume, token, flag, payload)| ClientFields {
                variant,
                a,
                b,
                s,
                t,
                resume,
                token,
                flag,
                payload,
            },
        )
}

/// The client message `f` describes.
pub fn client(f: &ClientFields) -> ClientMessage<'_> {
    match f.variant {
        0 => ClientMessage::Hello {
            version: f.a,
            client: &f.s,
            resume: f.resume.as_deref(),
            token: f.token.as_deref(),
        },
        1 => ClientMessage::Join {
            req: f.a,
            kind: &f.s,
        },
        2 => ClientMessage::Leave { req: f.a },
        3 => ClientMessage::Input {
            seq: f.a,
            payload: &f.payload,
        },
        4 => ClientMessage::Chat {
            req: f.a,
            text: &f.s,
        },
        5 => ClientMessage::Ping { nonce: f.b },
        6 => ClientMessage::Login {
            req: f.a,
            provider: &f.s,
            credential: &f.t,
        },
        7 => ClientMessage::GetData {
            req: f.a,
            owner: f.b,
            key: &f.s,
        },
        8 => ClientMessage::PutData {
            req: f.a,
            key: &f.s,
            value: &f.t,
            expected_version: f.b,
            public: f.flag,
        },
        9 => ClientMessage::DeleteData {
            req: f.a,
            key: &f.s,
            expected_version: f.b,
        },
        10 => ClientMessage::GetProfile {
            req: f.a,
            account_id: f.b,
        },
        11 => ClientMessage::SetName {
            req: f.a,
            name: &f.s,
        },
        // Options and filters are any one value (the server checks that it is a map).
        12 => ClientMessage::Create {
            req: f.a,
            kind: &f.s,
            options: &f.payload,
            private: f.flag,
        },
        13 => ClientMessage::JoinOrCreate {
            req: f.a,
            kind: &f.s,
            options: &f.payload,
        },
        14 => ClientMessage::JoinById {
            req: f.a,
            room_id: f.b,
        },
        15 => ClientMessage::JoinByCode {
            req: f.a,
            code: &f.s,
        },
        16 => ClientMessage::ListRooms {
            req: f.a,
            kind: &f.s,
            filter: &f.payload,
            offset: f.b as u32,
            limit: (f.b >> 32) as u32,
        },
        17 => ClientMessage::Queue {
            req: f.a,
            kind: &f.s,
            options: &f.payload,
            // Any finite rating (a NaN would not compare equal after a round trip).
            rating: f.b as f64 / 3.0 - f64::from(f.a),
            party: f.flag,
        },
        18 => ClientMessage::LeaveQueue { req: f.a },
        19 => ClientMessage::Spectate {
            req: f.a,
            room_id: f.b,
            code: &f.s,
        },
        20 => ClientMessage::SpectateRecording {
            req: f.a,
            file: &f.s,
        },
        21 => ClientMessage::StopSpectating { req: f.a },
        22 => ClientMessage::ClaimSeat {
            req: f.a,
            ticket: &f.s,
        },
        v => unreachable!("client variant {v}"),
    }
}

/// Which variant a client message is; no wildcard, so a new variant fails to compile
/// here until the generators cover it.
pub fn client_variant(m: &ClientMessage<'_>) -> usize {
    match m {
        ClientMessage::Hello { .. } => 0,
        ClientMessage::Join { .. } => 1,
        ClientMessage::Leave { .. } => 2,
        ClientMessage::Input { .. } => 3,
        ClientMessage::Chat { .. } => 4,
        ClientMessage::Ping { .. } => 5,
        ClientMessage::Login { .. } => 6,
        ClientMessage::GetData { .. } => 7,
        ClientMessage::PutData { .. } => 8,
        ClientMessage::DeleteData { .. } => 9,
        ClientMessage::GetProfile { .. } => 10,
        ClientMessage::SetName { .. } => 11,
        ClientMessage::Create { .. } => 12,
        ClientMessage::JoinOrCreate { .. } => 13,
        ClientMessage::JoinById { .. } => 14,
        ClientMessage::JoinByCode { .. } => 15,
        ClientMessage::ListRooms { .. } => 16,
        ClientMessage::Queue { .. } => 17,
        ClientMessage::LeaveQueue { .. } => 18,
        ClientMessage::Spectate { .. } => 19,
        ClientMessage::SpectateRecording { .. } => 20,
        ClientMessage::StopSpectating { .. } => 21,
        ClientMessage::ClaimSeat { .. } => 22,
    }
}

/// Server message variants [`server`] generates.
pub const SERVER_VARIANTS: usize = 19;

/// Which variant a server message is; no wildcard, as for [`client_variant`].
pub fn server_variant(m: &ServerMessage) -> usize {
    match m {
        ServerMessage::Welcome { .. } => 0,
        ServerMessage::Joined { .. } => 1,
        ServerMessage::Left { .. } => 2,
        ServerMessage::State { .. } => 3,
        ServerMessage::ChatLine { .. } => 4,
        ServerMessage::Pong { .. } => 5,
        ServerMessage::Ok { .. } => 6,
        ServerMessage::Error { .. } => 7,
        ServerMessage::RoomClosed { .. } => 8,
        ServerMessage::Shutdown { .. } => 9,
        ServerMessage::Session { .. } => 10,
        ServerMessage::Data { .. } => 11,
        ServerMessage::Written { .. } => 12,
        ServerMessage::Profile { .. } => 13,
        ServerMessage::Conflict { .. } => 14,
        ServerMessage::Rooms { .. } => 15,
        ServerMessage::Spectating { .. } => 16,
        ServerMessage::SpectatorState { .. } => 17,
        ServerMessage::Redirect { .. } => 18,
    }
}

/// Any server message with arbitrary field values.
pub fn server() -> impl Strategy<Value = ServerMessage> {
    let (u32f, u64f, strf) = (u32_field, u64_field, str_field);
    Union::new(vec![
        (
            u32f(),
            u64f(),
            u32f(),
            u32f(),
            u32f(),
            u32f(),
            strf(),
            u32f(),
            u64f(),
            u32f(),
        )
            .prop_map(|(v, sid, hz, mmb, tmo, qc, rt, grace, acct, revision)| {
                ServerMessage::Welcome {
                    version: v,
                    session_id: sid,
                    tick_hz: hz,
                    max_message_bytes: mmb,
                    timeout_ms: tmo,
                    queue_capacity: qc,
                    resume_token: rt,
                    reconnect_grace_ms: grace,
                    account_id: acct,
                    revision,
                }
            })
            .boxed(),
        (u32f(), u64f(), u32f(), strf(), u32f(), strf(), u32f())
            .prop_map(|(req, room_id, player_id, kind, max_players, code, team)| {
                ServerMessage::Joined {
                    req,
                    room_id,
                    player_id,
                    kind,
                    max_players,
                    code,
                    team,
                }
            })
            .boxed(),
        (u32f(), u64f())
            .prop_map(|(req, room_id)| ServerMessage::Left { req, room_id })
            .boxed(),
        (u64f(), u32f(), payload())
            .prop_map(|(tick, last_seq, p)| ServerMessage::State {
                tick,
                last_seq,
                payload: Bytes::from(p),
            })
            .boxed(),
        (u64f(), u32f(), strf(), strf())
            .prop_map(|(room_id, player_id, name, text)| ServerMessage::ChatLine {
                room_id,
                player_id,
                name,
                text,
            })
            .boxed(),
        u64f()
            .prop_map(|nonce| ServerMessage::Pong { nonce })
            .boxed(),
        u32f().prop_map(|req| ServerMessage::Ok { req }).boxed(),
        (proptest::sample::select(ErrorCode::ALL), strf(), u32f())
            .prop_map(|(code, message, req)| ServerMessage::Error { code, message, req })
            .boxed(),
        (u64f(), strf())
            .prop_map(|(room_id, reason)| ServerMessage::RoomClosed { room_id, reason })
            .boxed(),
        (strf(), u32f())
            .prop_map(|(reason, reconnect_after_ms)| ServerMessage::Shutdown {
                reason,
                reconnect_after_ms,
            })
            .boxed(),
        (u32f(), u64f(), strf(), u64f(), strf())
            .prop_map(|(req, account_id, token, expires_at_ms, display_name)| {
                ServerMessage::Session {
                    req,
                    account_id,
                    token,
                    expires_at_ms,
                    display_name,
                }
            })
            .boxed(),
        (
            u32f(),
            u64f(),
            strf(),
            proptest::option::of(strf()),
            u64f(),
            any::<bool>(),
        )
            .prop_map(
                |(req, owner, key, value, version, public)| ServerMessage::Data {
                    req,
                    owner,
                    key,
                    value,
                    version,
                    public,
                },
            )
            .boxed(),
        (u32f(), strf(), u64f())
            .prop_map(|(req, key, version)| ServerMessage::Written { req, key, version })
            .boxed(),
        (u32f(), u64f(), strf(), u64f(), u64f(), u64f())
            .prop_map(
                |(req, account_id, display_name, sessions, play_ms, games_played)| {
                    ServerMessage::Profile {
                        req,
                        account_id,
                        display_name,
                        sessions,
                        play_ms,
                        games_played,
                    }
                },
            )
            .boxed(),
        (strf(), u32f(), u64f())
            .prop_map(|(message, req, current_version)| ServerMessage::Conflict {
                message,
                req,
                current_version,
            })
            .boxed(),
        (
            u32f(),
            u32f(),
            proptest::collection::vec(
                (
                    u64f(),
                    strf(),
                    strf(),
                    u32f(),
                    u32f(),
                    payload(),
                    u64f(),
                    any::<bool>(),
                ),
                0..4,
            ),
        )
            .prop_map(|(req, total, rooms)| ServerMessage::Rooms {
                req,
                total,
                rooms: rooms
                    .into_iter()
                    .map(
                        |(room_id, kind, code, players, max_players, metadata, age_ms, locked)| {
                            rally_protocol::RoomListing {
                                room_id,
                                kind,
                                code,
                                players,
                                max_players,
                                metadata: Bytes::from(metadata),
                                age_ms,
                                locked,
                            }
                        },
                    )
                    .collect(),
            })
            .boxed(),
        (u32f(), u64f(), strf(), u32f())
            .prop_map(|(req, room_id, kind, tick_hz)| ServerMessage::Spectating {
                req,
                room_id,
                kind,
                tick_hz,
            })
            .boxed(),
        (u64f(), u64f(), payload())
            .prop_map(|(room_id, tick, p)| ServerMessage::SpectatorState {
                room_id,
                tick,
                payload: Bytes::from(p),
            })
            .boxed(),
        (u32f(), strf(), strf(), strf(), strf(), u64f())
            .prop_map(
                |(req, node, tcp, ws, ticket, room_id)| ServerMessage::Redirect {
                    req,
                    node,
                    tcp,
                    ws,
                    ticket,
                    room_id,
                },
            )
            .boxed(),
    ])
}

/// Appends one masked frame, final or not, with any opcode bits (RFC 6455, section 5.2):
/// what a client writes, including the fragments `ws::write_masked_frame` cannot.
pub fn masked_frame(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    ws::apply_mask(&mut out[start..], mask);
}

/// Opcode bits of a continuation, a binary frame and a ping.
pub const CONTINUATION: u8 = 0x0;
pub const BINARY: u8 = 0x2;
pub const PING: u8 = 0x9;

/// Appends `body` as a masked binary message cut into fragments at `cuts` (offsets into
/// `body`, any order, out of range ones ignored), with a ping after every fragment but
/// the last when `pings`.
pub fn fragmented(out: &mut Vec<u8>, body: &[u8], cuts: &[usize], mask: [u8; 4], pings: bool) {
    let mut at: Vec<usize> = cuts
        .iter()
        .copied()
        .filter(|&c| c > 0 && c < body.len())
        .collect();
    at.sort_unstable();
    at.dedup();
    at.push(body.len());
    let mut start = 0;
    for (i, &end) in at.iter().enumerate() {
        let fin = i + 1 == at.len();
        let opcode = if i == 0 { BINARY } else { CONTINUATION };
        masked_frame(out, fin, opcode, &body[start..end], mask);
        if pings && !fin {
            masked_frame(out, true, PING, b"ping", mask);
        }
        start = end;
    }
}

/// Appends `body` as one unmasked binary frame, the way the server writes it.
pub fn server_frame(out: &mut Vec<u8>, body: &[u8]) {
    let at = ws::begin(out);
    out.extend_from_slice(body);
    ws::finish(out, at, Opcode::Binary);
}

/// A chunk-size source cycling through `sizes` (each at least 1).
pub fn cycle(sizes: Vec<usize>) -> impl FnMut() -> usize {
    let mut i = 0;
    move || {
        let n = sizes[i % sizes.len()].max(1);
        i += 1;
        n
    }
}
