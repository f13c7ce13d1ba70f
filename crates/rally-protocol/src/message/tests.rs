//! Unit tests of the message codecs: round trips, limits and malformed bodies.

use super::*;
use crate::error_code::ErrorCode;
use crate::msgpack;
use bytes::Bytes;
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
    (1u8..=26, any::<u64>(), ".{0,70}", payload_strategy())
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
        16 => ClientMessage::Create {
            req: n as u32,
            kind: s,
            options: p,
            private: n.is_multiple_of(2),
        },
        17 => ClientMessage::JoinOrCreate {
            req: n as u32,
            kind: s,
            options: p,
        },
        18 => ClientMessage::JoinById {
            req: n as u32,
            room_id: n,
        },
        19 => ClientMessage::JoinByCode {
            req: n as u32,
            code: s,
        },
        20 => ClientMessage::ListRooms {
            req: n as u32,
            kind: s,
            filter: p,
            offset: n as u32,
            limit: (n >> 32) as u32,
        },
        21 => ClientMessage::Queue {
            req: n as u32,
            kind: s,
            options: p,
            rating: n as f64 / 7.0,
            party: n.is_multiple_of(2),
        },
        22 => ClientMessage::LeaveQueue { req: n as u32 },
        23 => ClientMessage::Spectate {
            req: n as u32,
            room_id: n,
            code: s,
        },
        24 => ClientMessage::SpectateRecording {
            req: n as u32,
            file: s,
        },
        25 => ClientMessage::StopSpectating { req: n as u32 },
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
            ServerMessage::Welcome { version: n as u32, session_id: n, tick_hz: 20, max_message_bytes: 4096, timeout_ms: n as u32, queue_capacity: 100, resume_token: s.clone(), reconnect_grace_ms: 10_000, account_id: n, revision: n as u32 },
            ServerMessage::Joined { req: n as u32, room_id: n, player_id: n as u32, kind: s.clone(), max_players: 16, code: s.clone(), team: n as u32 },
            ServerMessage::Rooms { req: n as u32, total: n as u32, rooms: Listings::new(&[]) },
            ServerMessage::Rooms { req: n as u32, total: 2, rooms: Listings::new(&[
                RoomListing { room_id: n, kind: s.clone(), code: s.clone(), players: 3, max_players: 16, metadata: Bytes::from(p.clone()), age_ms: n, locked: true },
                RoomListing { room_id: 1, kind: s.clone(), code: "ABC234".into(), players: 0, max_players: 2, metadata: Bytes::from_static(&[0xc0]), age_ms: 0, locked: false },
            ]) },
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
            ServerMessage::Spectating { req: n as u32, room_id: n, kind: s.clone(), tick_hz: 20 },
            ServerMessage::SpectatorState { room_id: n, tick: n, payload: Bytes::from(p.clone()) },
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

#[test]
fn a_joined_and_welcome_from_before_revision_2_still_decode() {
    // [65, 1, 7, 1, "arena", 16]: no code, no team.
    let mut out = Vec::new();
    msgpack::write_array_len(&mut out, 6);
    for v in [tag::JOINED.into(), 1, 7, 1] {
        msgpack::write_uint(&mut out, v);
    }
    msgpack::write_str(&mut out, "arena");
    msgpack::write_uint(&mut out, 16);
    assert_eq!(
        ServerMessage::decode(&out),
        Ok(ServerMessage::Joined {
            req: 1,
            room_id: 7,
            player_id: 1,
            kind: "arena".into(),
            max_players: 16,
            code: String::new(),
            team: 0,
        })
    );
    // A welcome of 10 elements (accounts, no revision) means revision 1.
    let mut out = Vec::new();
    msgpack::write_array_len(&mut out, 10);
    for v in [tag::WELCOME.into(), 1, 2, 20, 4096, 30000, 100] {
        msgpack::write_uint(&mut out, v);
    }
    msgpack::write_str(&mut out, "ab");
    msgpack::write_uint(&mut out, 10000);
    msgpack::write_uint(&mut out, 5);
    assert!(matches!(
        ServerMessage::decode(&out),
        Ok(ServerMessage::Welcome {
            account_id: 5,
            revision: 1,
            ..
        })
    ));
}

#[test]
fn a_rooms_reply_claiming_more_listings_than_bytes_is_refused() {
    let mut out = Vec::new();
    msgpack::write_array_len(&mut out, 4);
    msgpack::write_uint(&mut out, tag::ROOMS.into());
    msgpack::write_uint(&mut out, 1);
    msgpack::write_uint(&mut out, 1);
    msgpack::write_array_len(&mut out, u32::MAX);
    assert!(ServerMessage::decode(&out).is_err());
}

#[test]
fn codes_stay_out_of_debug_output() {
    let join = ClientMessage::JoinByCode {
        req: 1,
        code: "SECRET",
    };
    let joined = ServerMessage::Joined {
        req: 1,
        room_id: 2,
        player_id: 1,
        kind: "arena".into(),
        max_players: 16,
        code: "SECRET".into(),
        team: 0,
    };
    let shown = format!("{join:?} {joined:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
}

#[test]
fn revision_4_messages_encode_as_docs_protocol_md_shows() {
    let hex = |m: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        m(&mut out);
        out.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let claim = ClientMessage::ClaimSeat {
        req: 2,
        ticket: "tk",
    };
    assert_eq!(hex(&|o| claim.encode(o)), "93 17 02 a2 74 6b");
    let redirect = ServerMessage::Redirect {
        req: 1,
        node: "b".into(),
        tcp: "127.0.0.1:7001".into(),
        ws: "127.0.0.1:8081".into(),
        ticket: "tk".into(),
        room_id: 3,
    };
    assert_eq!(
        hex(&|o| redirect.encode(o)),
        "97 54 01 a1 62 ae 31 32 37 2e 30 2e 30 2e 31 3a 37 30 30 31 ae 31 32 37 2e 30 2e 30 \
         2e 31 3a 38 30 38 31 a2 74 6b 03"
    );
    let mut body = Vec::new();
    redirect.encode(&mut body);
    assert_eq!(ServerMessage::decode(&body), Ok(redirect));
    let shown = format!("{:?} {:?}", claim, ServerMessage::decode(&body));
    assert!(
        !shown.contains("\"tk\""),
        "tickets stay out of Debug: {shown}"
    );
}
