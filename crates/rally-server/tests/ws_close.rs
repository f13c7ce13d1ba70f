//! The close status a WebSocket client gets for each kind of bad stream, over a real
//! socket to a real server (issue 17): 1002 for a framing error, 1007 for text that is
//! not UTF-8, 1008 for valid text (Rally wants binary), 1009 for a message over
//! `max_message_bytes`, and 1000 back for the client's own close. Each fault also gets
//! the `error` message first. The codec's side of these cases is in
//! `crates/rally-protocol/tests/ws_conformance.rs`.

mod common;

use std::net::SocketAddr;

use common::{config, TestServer, RECV_LIMIT};
use rally_server::protocol::ws::{self, Event, Opcode};
use rally_server::protocol::{ClientMessage, ErrorCode, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const UPGRADE: &str =
    "GET /ws HTTP/1.1\r\nHost: rally\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
const MASK: [u8; 4] = [9, 8, 7, 6];

/// A masked client frame with the given first byte (FIN, RSV bits, opcode).
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ws::write_masked_frame(&mut out, Opcode::Binary, payload, MASK);
    out[0] = b0;
    out
}

/// Upgrades, says hello, sends `bad`, and reads until the server closes: the error codes
/// it sent and its close status.
async fn ending_for(addr: SocketAddr, bad: &[u8]) -> (Vec<ErrorCode>, Option<u16>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(UPGRADE.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let mut hello = Vec::new();
    ClientMessage::Hello {
        version: 1,
        client: "ws-close",
        resume: None,
        token: None,
    }
    .encode(&mut hello);
    let mut wire = frame(0x82, &hello);
    wire.extend_from_slice(bad);
    s.write_all(&wire).await.expect("write");
    tokio::time::timeout(RECV_LIMIT, async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the server closes in time");
    let head = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an upgrade answer");
    assert!(raw.starts_with(b"HTTP/1.1 101"));
    let mut frames = raw.split_off(head + 4);
    let mut decoder = ws::Decoder::client(1 << 20);
    let (mut errors, mut close, mut at) = (Vec::new(), None, 0);
    while let Some((n, event)) = decoder.decode(&mut frames[at..]).expect("valid frames") {
        match event {
            Event::Binary(b) => {
                if let ServerMessage::Error { code, .. } =
                    ServerMessage::decode(b).expect("a message")
                {
                    errors.push(code);
                }
            }
            Event::Close(code) => close = code,
            _ => {}
        }
        at += n;
    }
    (errors, close)
}

#[tokio::test]
async fn each_bad_stream_gets_its_close_status() {
    let server = TestServer::start(config()).await;
    let mut bad_close_code = Vec::new();
    bad_close_code.extend_from_slice(&999u16.to_be_bytes());
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.extend_from_slice(b"\xff");
    let cases: Vec<(&str, Vec<u8>, Vec<ErrorCode>, u16)> = vec![
        (
            "RSV1 set",
            frame(0xC2, b"x"),
            vec![ErrorCode::BadMessage],
            1002,
        ),
        (
            "reserved opcode",
            frame(0x83, b""),
            vec![ErrorCode::BadMessage],
            1002,
        ),
        (
            "stray continuation",
            frame(0x80, b"x"),
            vec![ErrorCode::BadMessage],
            1002,
        ),
        (
            "close code 999",
            frame(0x88, &bad_close_code),
            vec![ErrorCode::BadMessage],
            1002,
        ),
        (
            "close of one byte",
            frame(0x88, b"\x03"),
            vec![ErrorCode::BadMessage],
            1002,
        ),
        (
            "text not UTF-8",
            frame(0x81, b"caf\xc3"),
            vec![ErrorCode::BadMessage],
            1007,
        ),
        (
            "close reason not UTF-8",
            frame(0x88, &bad_reason),
            vec![ErrorCode::BadMessage],
            1007,
        ),
        (
            "valid text",
            frame(0x81, "café".as_bytes()),
            vec![ErrorCode::BadMessage],
            1008,
        ),
        (
            "too big",
            frame(0x82, &[0x90; 5000]),
            vec![ErrorCode::MessageTooLarge],
            1009,
        ),
        (
            "client close",
            frame(0x88, &1001u16.to_be_bytes()),
            vec![],
            1000,
        ),
    ];
    for (what, bad, errors, close) in cases {
        let got = ending_for(server.ws, &bad).await;
        assert_eq!(got, (errors, Some(close)), "{what}");
    }
    server.shutdown().await;
}
