//! Replays the fuzz corpora through the fuzz targets' own checks
//! (`rally_protocol::fuzzing`), so every input the fuzzer kept is a regression test that
//! runs on stable in `cargo test`: `fuzz/corpus/<target>/` (minimized with
//! `cargo fuzz cmin`) and `fuzz/seeds/<target>/` (hand-made: valid frames of every
//! message, see `write_seeds`, plus any crash reproducers).
//!
//! Fails when a directory is missing or empty: a replay of nothing proves nothing.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use rally_protocol::fuzzing;
use rally_protocol::msgpack;
use rally_protocol::ws::{self, Opcode};
use rally_protocol::{frame, ClientMessage, ErrorCode, ServerMessage};

/// A fuzz target's check: panics when an invariant breaks.
type Check = fn(&[u8]);

/// Each target and its check.
const TARGETS: [(&str, Check); 3] = [
    ("frame_decoder", fuzzing::frame_decoder),
    ("message_decoder", fuzzing::message_decoder),
    ("ws_decoder", fuzzing::ws_decoder),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files in `dir`, sorted; panics when it is missing or holds none.
fn files(dir: &Path) -> Vec<PathBuf> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    files
}

fn replay(kind: &str) {
    for (target, check) in TARGETS {
        let dir = fuzz_dir().join(kind).join(target);
        let files = files(&dir);
        for file in &files {
            let data = std::fs::read(file).expect("a corpus file");
            if panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
                panic!("{} fails the {target} checks", file.display());
            }
        }
        println!("{target}: {} {kind} inputs pass", files.len());
    }
}

#[test]
fn every_corpus_input_passes_its_targets_checks() {
    replay("corpus");
}

#[test]
fn every_seed_passes_its_targets_checks() {
    replay("seeds");
}

/// One of each client message.
fn client_samples() -> Vec<Vec<u8>> {
    let mut arena_input = Vec::new();
    msgpack::write_array_len(&mut arena_input, 2);
    msgpack::write_f32(&mut arena_input, 1.0);
    msgpack::write_f32(&mut arena_input, -0.5);
    let messages = [
        ClientMessage::Hello {
            version: 1,
            client: "demo",
            resume: None,
            token: None,
        },
        ClientMessage::Hello {
            version: 1,
            client: "demo",
            resume: Some("0123456789abcdef0123456789abcdef"),
            token: Some("tk"),
        },
        ClientMessage::Join {
            req: 1,
            kind: "arena",
        },
        ClientMessage::Leave { req: 2 },
        ClientMessage::Input {
            seq: 70_000,
            payload: &arena_input,
        },
        ClientMessage::Input {
            seq: 1,
            payload: &[
                0x83, 0xa1, 0x61, 0xc0, 0xa1, 0x62, 0xc3, 0xd6, 0x01, 1, 2, 3, 4, 0x05,
            ],
        },
        ClientMessage::Chat {
            req: 3,
            text: "gg, hé",
        },
        ClientMessage::Ping { nonce: u64::MAX },
        ClientMessage::Login {
            req: 4,
            provider: "device",
            credential: "dev-0001",
        },
        ClientMessage::GetData {
            req: 5,
            owner: 0,
            key: "save",
        },
        ClientMessage::PutData {
            req: 6,
            key: "save",
            value: "{\"lv\":2}",
            expected_version: 1,
            public: true,
        },
        ClientMessage::DeleteData {
            req: 7,
            key: "save",
            expected_version: 300,
        },
        ClientMessage::GetProfile {
            req: 8,
            account_id: 1 << 40,
        },
        ClientMessage::SetName {
            req: u32::MAX,
            name: "Ada",
        },
        ClientMessage::Create {
            req: 9,
            kind: "arena",
            options: &[
                0x81, 0xa4, b'm', b'o', b'd', b'e', 0xa5, b's', b'p', b'e', b'e', b'd',
            ],
            private: true,
        },
        ClientMessage::JoinOrCreate {
            req: 10,
            kind: "arena",
            options: &[0x80],
        },
        ClientMessage::JoinById {
            req: 11,
            room_id: (1 << 53) - 1,
        },
        ClientMessage::JoinByCode {
            req: 12,
            code: "K7WQ3M",
        },
        ClientMessage::ListRooms {
            req: 13,
            kind: "arena",
            filter: &[0x80],
            offset: 0,
            limit: 50,
        },
        ClientMessage::Spectate {
            req: 9,
            room_id: 3,
            code: "",
        },
        ClientMessage::Spectate {
            req: 10,
            room_id: 0,
            code: "ABC234",
        },
        ClientMessage::SpectateRecording {
            req: 11,
            file: "1765000000000-arena-3.rrec",
        },
        ClientMessage::StopSpectating { req: 12 },
        ClientMessage::ClaimSeat {
            req: 9,
            ticket: "AQAAAZPmU1Xo",
        },
        ClientMessage::Queue {
            req: 14,
            kind: "tictactoe",
            options: &[0x80],
            rating: 1512.5,
            party: true,
        },
        ClientMessage::LeaveQueue { req: 15 },
    ];
    messages
        .iter()
        .map(|m| {
            let mut body = Vec::new();
            m.encode(&mut body);
            body
        })
        .collect()
}

/// One of each server message.
fn server_samples() -> Vec<Vec<u8>> {
    let state = vec![
        0x91, 0x94, 0x01, 0xca, 0x43, 0x7a, 0x00, 0x00, 0xca, 0x43, 0xfa, 0x00, 0x00, 0x01,
    ];
    let messages = [
        ServerMessage::Welcome {
            version: 1,
            session_id: 1,
            tick_hz: 20,
            max_message_bytes: 4096,
            timeout_ms: 30_000,
            queue_capacity: 100,
            resume_token: "ab".into(),
            reconnect_grace_ms: 10_000,
            account_id: 42,
            revision: 2,
        },
        ServerMessage::Joined {
            req: 1,
            room_id: 1,
            player_id: 1,
            kind: "arena".into(),
            max_players: 16,
            code: "K7WQ3M".into(),
            team: 0,
        },
        ServerMessage::Rooms {
            req: 9,
            total: 1,
            rooms: rally_protocol::Listings::new(&[rally_protocol::RoomListing {
                room_id: 1 << 40,
                kind: "arena".into(),
                code: "K7WQ3M".into(),
                players: 3,
                max_players: 16,
                metadata: vec![0x81, 0xa3, b'm', b'a', b'p', 0xa4, b'd', b'u', b's', b'k'].into(),
                age_ms: 1500,
                locked: false,
            }]),
        },
        ServerMessage::Left { req: 2, room_id: 1 },
        ServerMessage::State {
            tick: 1,
            last_seq: 1,
            payload: state.clone().into(),
        },
        ServerMessage::ChatLine {
            room_id: 1,
            player_id: 2,
            name: "Ada".into(),
            text: "gg".into(),
        },
        ServerMessage::Pong { nonce: 7 },
        ServerMessage::Ok { req: 3 },
        ServerMessage::Error {
            code: ErrorCode::Conflict,
            message: "current version 2".into(),
            req: 3,
        },
        ServerMessage::RoomClosed {
            room_id: 1,
            reason: "the game is over".into(),
        },
        ServerMessage::Shutdown {
            reason: "restart".into(),
            reconnect_after_ms: 5000,
        },
        ServerMessage::Session {
            req: 4,
            account_id: 42,
            token: "tk".into(),
            expires_at_ms: 1_700_000_000_000,
            display_name: "Ada".into(),
        },
        ServerMessage::Data {
            req: 5,
            owner: 42,
            key: "save".into(),
            value: Some("{\"lv\":2}".into()),
            version: 2,
            public: false,
        },
        ServerMessage::Data {
            req: 5,
            owner: 42,
            key: "none".into(),
            value: None,
            version: 0,
            public: false,
        },
        ServerMessage::Written {
            req: 6,
            key: "save".into(),
            version: 2,
        },
        ServerMessage::Profile {
            req: 8,
            account_id: 42,
            display_name: "Ada".into(),
            sessions: 3,
            play_ms: 100_000,
            games_played: 2,
        },
        ServerMessage::Spectating {
            req: 9,
            room_id: 3,
            kind: "arena".into(),
            tick_hz: 20,
        },
        ServerMessage::SpectatorState {
            room_id: 3,
            tick: 7,
            payload: state.into(),
        },
        ServerMessage::Redirect {
            req: 2,
            node: "b".into(),
            tcp: "127.0.0.1:7001".into(),
            ws: "127.0.0.1:8081".into(),
            ticket: "AQAAAZPmU1Xo".into(),
            room_id: 3,
        },
    ];
    messages
        .iter()
        .map(|m| {
            let mut body = Vec::new();
            m.encode(&mut body);
            body
        })
        .collect()
}

/// The first byte of a stream input (see `rally_protocol::fuzzing`): limit index, side
/// (WebSocket: false is the server reading masked frames) and chunk-cap index.
fn params(limit: u8, client_side: bool, chunk_cap: u8) -> u8 {
    limit | if client_side { 8 } else { 0 } | (chunk_cap << 5)
}

const DEFAULT_LIMIT: u8 = 5; // 4096
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Writes the hand-made seeds into `fuzz/seeds/<target>/`: every message's body, alone
/// and framed for raw TCP and for WebSocket (masked from a client, unmasked from the
/// server), fragmented, batched, with control frames, and the limit cases. Run by hand
/// after a message changes:
/// `cargo test -p rally-protocol --test fuzz_corpus -- --ignored write_seeds`
#[test]
#[ignore = "writes fuzz/seeds; run by hand to regenerate them"]
fn write_seeds() {
    let root = fuzz_dir().join("seeds");
    let write = |target: &str, name: String, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    let clients = client_samples();
    let servers = server_samples();

    for (i, body) in clients.iter().enumerate() {
        write("message_decoder", format!("client-{i:02}"), body);
    }
    for (i, body) in servers.iter().enumerate() {
        write("message_decoder", format!("server-{i:02}"), body);
    }

    // Raw TCP: each message framed, at varied chunk sizes; all of them in one stream; an
    // oversized and an empty frame after a valid one; a small limit.
    let mut all = vec![params(DEFAULT_LIMIT, false, 2), 7];
    for (i, body) in clients.iter().chain(&servers).enumerate() {
        let mut seed = vec![params(DEFAULT_LIMIT, false, (i % 8) as u8), i as u8];
        frame::encode(body, &mut seed);
        frame::encode(body, &mut all);
        write("frame_decoder", format!("frame-{i:02}"), &seed);
    }
    write("frame_decoder", "all-messages".into(), &all);
    for (name, header) in [
        ("gigabyte", 1u32 << 30),
        ("empty", 0),
        ("over-by-one", 4097),
    ] {
        let mut seed = vec![params(DEFAULT_LIMIT, false, 0), 1];
        frame::encode(&clients[7], &mut seed);
        seed.extend_from_slice(&header.to_be_bytes());
        seed.extend_from_slice(&[0x92, 0x06, 0x07]);
        write("frame_decoder", name.into(), &seed);
    }
    let mut seed = vec![params(2, false, 3), 3]; // limit 64
    frame::encode(&clients[1], &mut seed);
    write("frame_decoder", "limit-64".into(), &seed);

    // WebSocket, server side: each client message in one masked frame; one fragmented
    // with a ping between the fragments; a close; a text message; an oversized length.
    for (i, body) in clients.iter().enumerate() {
        let mut seed = vec![params(DEFAULT_LIMIT, false, (i % 8) as u8), i as u8];
        ws::write_masked_frame(&mut seed, Opcode::Binary, body, MASK);
        write("ws_decoder", format!("client-frame-{i:02}"), &seed);
    }
    let mut seed = vec![params(DEFAULT_LIMIT, false, 1), 9];
    let body = &clients[10];
    seed.extend_from_slice(&[0x02, 0x80 | 4]);
    seed.extend_from_slice(&MASK);
    let start = seed.len();
    seed.extend_from_slice(&body[..4]);
    ws::apply_mask(&mut seed[start..], MASK);
    ws::write_masked_frame(&mut seed, Opcode::Ping, b"are you there", MASK);
    let fin = seed.len();
    ws::write_masked_frame(&mut seed, Opcode::Binary, &body[4..], MASK);
    seed[fin] = 0x80; // a final continuation
    ws::write_masked_frame(&mut seed, Opcode::Pong, b"", MASK);
    ws::write_masked_frame(&mut seed, Opcode::Close, &1000u16.to_be_bytes(), MASK);
    write("ws_decoder", "fragmented-ping-close".into(), &seed);
    let mut seed = vec![params(DEFAULT_LIMIT, false, 0), 2];
    ws::write_masked_frame(&mut seed, Opcode::Text, b"{\"hello\":1}", MASK);
    write("ws_decoder", "text".into(), &seed);
    let mut seed = vec![params(DEFAULT_LIMIT, false, 0), 4, 0x82, 0x80 | 127];
    seed.extend_from_slice(&(1u64 << 62).to_be_bytes());
    seed.extend_from_slice(&MASK);
    write("ws_decoder", "exabyte".into(), &seed);
    let mut seed = vec![params(6, false, 4), 5]; // limit 65,536: a 16-bit length
    ws::write_masked_frame(&mut seed, Opcode::Binary, &[0x91; 300], MASK);
    write("ws_decoder", "length-16".into(), &seed);

    // Reassembly regressions: fragments that once made the buffer reserve past the
    // limit (3,000 then 1,096 bytes reserved 6,000 for 4,096; 2 then 5 reserved Vec's
    // minimum of 8 for 7).
    for (name, limit, first, rest) in [
        ("reassembly-4096", DEFAULT_LIMIT, 3000, 1096),
        ("reassembly-7", 1, 2, 5),
    ] {
        let body: Vec<u8> = (0..first + rest).map(|i| i as u8).collect();
        let mut seed = vec![params(limit, false, 7), 0];
        let first_frame = seed.len();
        ws::write_masked_frame(&mut seed, Opcode::Binary, &body[..first], MASK);
        seed[first_frame] = 0x02; // binary, not final
        let last = seed.len();
        ws::write_masked_frame(&mut seed, Opcode::Binary, &body[first..], MASK);
        seed[last] = 0x80; // the final continuation
        write("ws_decoder", name.into(), &seed);
    }

    // WebSocket, client side: each server message unmasked, as the server writes it.
    for (i, body) in servers.iter().enumerate() {
        let mut seed = vec![params(DEFAULT_LIMIT, true, (i % 8) as u8), i as u8];
        ws::write_frame(&mut seed, Opcode::Binary, body);
        write("ws_decoder", format!("server-frame-{i:02}"), &seed);
    }
    let mut seed = vec![params(DEFAULT_LIMIT, true, 2), 1];
    for body in &servers {
        ws::write_frame(&mut seed, Opcode::Binary, body);
    }
    ws::write_close(&mut seed, 1001);
    write("ws_decoder", "server-all-then-close".into(), &seed);
}
