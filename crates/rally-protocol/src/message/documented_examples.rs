//! The byte-level examples of `docs/protocol.md` section 13, so the document and the
//! code cannot drift apart.

use super::*;
use crate::error_code::ErrorCode;
use bytes::Bytes;

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
