//! Reaping: connections that stop taking part are ended by the server's timeouts and
//! bounds, and what they held (a session, a seat, a connection slot) is given back.
//!
//! - A player that goes silent after the handshake is closed with `TIMEOUT` after
//!   `timeout_ms`, and its seat is held for `reconnect_grace_ms`, then freed.
//! - A half-open player (it keeps sending but never reads, as when its network dropped
//!   the return path) is ended once its send queue or the kernel's buffers fill
//!   (`SLOW_CONSUMER`, or `TIMEOUT` for a blocked write); its session goes and its seat
//!   is freed after the grace.
//! - Bytes that never complete a message do not count: a trickle is timed out like
//!   silence, over TCP and WebSocket, and so are WebSocket pings alone.
//! - Before `hello`: silence, a trickled `hello` and, on the WebSocket port, a missing or
//!   trickled upgrade request are closed after the handshake bound (`timeout_ms`), and
//!   the connection count goes back down.
//!
//! Timing runs on tokio's paused clock (these tests use no database), so the bounds are
//! tight without racing real time.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{config, scrape, Client, TestServer};
use rally_server::protocol::ws::{self, Event, Opcode};
use rally_server::protocol::{frame, ClientMessage, ErrorCode, ServerMessage};
use rally_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const TIMEOUT_MS: u64 = 300;
const GRACE_MS: u64 = 500;
/// How often a live client sends something: comfortably inside the timeout and under
/// any per-connection message rate.
const KEEPALIVE: Duration = Duration::from_millis(140);

fn reaping_config() -> Config {
    Config {
        timeout_ms: TIMEOUT_MS,
        reconnect_grace_ms: GRACE_MS,
        ..config()
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Asserts `elapsed` is at least `at_least` ms and under `under` ms.
fn assert_between(what: &str, elapsed: Duration, at_least: u64, under: u64) {
    let e = ms(elapsed);
    assert!(
        (at_least..under).contains(&e),
        "{what}: {e} ms, expected {at_least}..{under} ms"
    );
}

fn listed(payload: &[u8], player: u32) -> bool {
    arena::decode_state(payload)
        .expect("an arena state")
        .iter()
        .any(|p| p.id == player)
}

/// A live player that pings every [`KEEPALIVE`] and watches its room's states until
/// `player` has been listed and then is not; returns the client and when the seat went.
fn watch_seat(mut c: Client, player: u32) -> JoinHandle<(Client, Instant)> {
    tokio::spawn(async move {
        let mut seen = false;
        let mut nonce = 0;
        let mut next_ping = Instant::now();
        loop {
            if Instant::now() >= next_ping {
                nonce += 1;
                c.send(&ClientMessage::Ping { nonce }).await;
                next_ping += KEEPALIVE;
            }
            match tokio::time::timeout_at(next_ping, c.recv()).await {
                Ok(Some(ServerMessage::State { payload, .. })) => {
                    if listed(&payload, player) {
                        seen = true;
                    } else if seen {
                        return (c, Instant::now());
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("the watching player was closed"),
                Err(_) => {}
            }
        }
    })
}

/// Reads until the server closes; returns the error codes received and when the close came.
async fn closed(c: &mut Client) -> (Vec<ErrorCode>, Instant) {
    let mut codes = Vec::new();
    while let Some(m) = c.recv().await {
        if let ServerMessage::Error { code, .. } = m {
            codes.push(code);
        }
    }
    (codes, Instant::now())
}

#[tokio::test(start_paused = true)]
async fn a_silent_player_is_timed_out_and_its_seat_freed_after_the_grace() {
    let server = TestServer::start(reaping_config()).await;
    let (mut live, _) = Client::tcp_hello(server.tcp).await;
    let (room, _) = live.join("arena").await;
    for silent_ws in [false, true] {
        let mut silent = if silent_ws {
            Client::ws(server.ws).await
        } else {
            Client::tcp(server.tcp).await
        };
        let (_, resume) = silent.hello_with(None).await;
        let (r, player) = silent.join("arena").await;
        assert_eq!(r, room);
        let quiet_since = Instant::now();
        let watcher = watch_seat(live, player);

        // It keeps its socket open and reads, but sends nothing.
        let (codes, closed_at) = closed(&mut silent).await;
        assert_eq!(codes, [ErrorCode::Timeout], "ws {silent_ws}");
        assert_between(
            "silent until closed",
            closed_at - quiet_since,
            TIMEOUT_MS,
            TIMEOUT_MS + 50,
        );
        assert_eq!(server.handle.sessions(), 1, "its session is gone");
        // A TIMEOUT may be the network's fault: the seat is held for the grace...
        let (c, freed_at) = watcher.await.expect("the watcher does not panic");
        live = c;
        assert_between(
            "seat held after the close",
            freed_at - closed_at,
            GRACE_MS,
            GRACE_MS + 100,
        );
        // ...and then it is gone for good.
        let mut late = Client::tcp(server.tcp).await;
        late.hello_with(Some(&resume)).await;
        assert_eq!(late.expect_error().await.0, ErrorCode::ResumeFailed);
        late.close().await;
        silent.close().await;
    }
    assert_eq!(server.handle.rooms(), 1);
    live.close().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_player_that_stops_reading_is_reaped_and_its_seat_freed() {
    let server = TestServer::start(Config {
        tick_hz: 120,
        ..reaping_config()
    })
    .await;
    let (mut live, _) = Client::tcp_hello(server.tcp).await;
    let (room, _) = live.join("arena").await;
    // A small receive buffer, so the kernel holds little of what the server sends.
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(server.tcp).await.expect("connect");
    let mut deaf = Client::Tcp {
        stream,
        buf: Vec::new(),
    };
    deaf.hello().await;
    let (r, player) = deaf.join("arena").await;
    assert_eq!(r, room);
    let Client::Tcp { mut stream, .. } = deaf else {
        unreachable!("made as a TCP client")
    };
    let watcher = watch_seat(live, player);
    let reaped_before =
        server.handle.errors(ErrorCode::SlowConsumer) + server.handle.errors(ErrorCode::Timeout);

    // From now on it never reads, but its inputs keep coming, so it is not idle.
    let deaf_since = Instant::now();
    let mut seq = 0;
    let mut input = Vec::new();
    while server.handle.sessions() == 2 {
        assert!(
            deaf_since.elapsed() < Duration::from_secs(120),
            "a player that never reads was not reaped"
        );
        seq += 1;
        let mut payload = Vec::new();
        arena::encode_input(&mut payload, 0.0, 0.0);
        let mut body = Vec::new();
        ClientMessage::Input {
            seq,
            payload: &payload,
        }
        .encode(&mut body);
        input.clear();
        frame::encode(&body, &mut input);
        // Once the server gave up, the write may fail: that is fine.
        let _ = stream.write_all(&input).await;
        tokio::time::sleep(KEEPALIVE).await;
    }
    let reaped_at = Instant::now();
    let slow = server.handle.errors(ErrorCode::SlowConsumer);
    let timed_out = server.handle.errors(ErrorCode::Timeout);
    assert_eq!(
        slow + timed_out,
        reaped_before + 1,
        "ended as a slow consumer ({slow}) or by a blocked write ({timed_out})"
    );
    // A stalled return path may be the network's fault: the seat is held for the grace.
    let (live, freed_at) = watcher.await.expect("the watcher does not panic");
    assert_between(
        "seat held after the reap",
        freed_at - reaped_at,
        GRACE_MS - ms(KEEPALIVE),
        GRACE_MS + 100,
    );
    assert_eq!(server.handle.sessions(), 1);
    drop(stream);
    live.close().await;
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Raw connections: bytes written on a schedule, everything the server says recorded.
// ---------------------------------------------------------------------------------------

/// What a raw connection saw before the server closed it.
#[derive(Debug)]
struct Seen {
    /// Rally messages, in order.
    messages: Vec<ServerMessage>,
    /// The WebSocket close frame's status, if one came.
    ws_close: Option<u16>,
    /// An HTTP answer, for a WebSocket upgrade that never finished.
    http: String,
    /// When the server closed the connection.
    at: Instant,
}

impl Seen {
    fn errors(&self) -> Vec<ErrorCode> {
        self.messages
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Error { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }
}

/// Writes `chunks` one every `every` (the first at once) while reading whatever the
/// server sends, until it closes the connection; bounded by 10 s of (paused) time.
async fn run_until_closed(
    mut stream: TcpStream,
    websocket: bool,
    chunks: &[Vec<u8>],
    every: Duration,
) -> Seen {
    let mut raw = Vec::new();
    let mut next = Instant::now();
    let mut i = 0;
    let at = tokio::time::timeout(common::RECV_LIMIT, async {
        loop {
            let mut chunk = [0u8; 4096];
            tokio::select! {
                r = stream.read(&mut chunk) => match r {
                    Ok(0) | Err(_) => return Instant::now(),
                    Ok(n) => raw.extend_from_slice(&chunk[..n]),
                },
                _ = tokio::time::sleep_until(next), if i < chunks.len() => {
                    // After the server gave up, writes may fail; reading tells the end.
                    let _ = stream.write_all(&chunks[i]).await;
                    i += 1;
                    next += every;
                }
            }
        }
    })
    .await
    .expect("the server closes the connection in time");
    let mut seen = Seen {
        messages: Vec::new(),
        ws_close: None,
        http: String::new(),
        at,
    };
    if raw.starts_with(b"HTTP/") {
        seen.http = String::from_utf8_lossy(&raw).into_owned();
    } else if websocket {
        let mut decoder = ws::Decoder::client(16 << 20);
        let mut at = 0;
        while let Some((n, event)) = decoder.decode(&mut raw[at..]).expect("valid frames") {
            match event {
                Event::Binary(b) => seen
                    .messages
                    .push(ServerMessage::decode(b).expect("a server message")),
                Event::Close(code) => seen.ws_close = code,
                _ => {}
            }
            at += n;
        }
    } else {
        let mut at = 0;
        while let Some((n, body)) = frame::decode(&raw[at..], 16 << 20).expect("valid frames") {
            seen.messages
                .push(ServerMessage::decode(body).expect("a server message"));
            at += n;
        }
    }
    seen
}

fn hello_body() -> Vec<u8> {
    let mut body = Vec::new();
    ClientMessage::Hello {
        version: 1,
        client: "raw",
        resume: None,
        token: None,
    }
    .encode(&mut body);
    body
}

fn tcp_frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(body, &mut out);
    out
}

fn ws_frame(opcode: Opcode, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ws::write_masked_frame(&mut out, opcode, body, [1, 2, 3, 4]);
    out
}

/// One byte per chunk.
fn bytewise(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.iter().map(|b| vec![*b]).collect()
}

const UPGRADE: &str =
    "GET /ws HTTP/1.1\r\nHost: rally\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A WebSocket connection upgraded by hand, so raw frames can follow.
async fn ws_upgraded(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(UPGRADE.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        let n = s.read(&mut b).await.expect("read the upgrade answer");
        assert_eq!(n, 1, "closed during the upgrade");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// A TCP connection after a completed `hello`.
async fn tcp_after_hello(addr: SocketAddr) -> TcpStream {
    let mut c = Client::tcp(addr).await;
    c.hello().await;
    match c {
        Client::Tcp { stream, buf } => {
            assert!(buf.is_empty(), "nothing but welcome yet");
            stream
        }
        Client::Ws(_) => unreachable!("made as a TCP client"),
    }
}

/// A WebSocket connection (upgraded by hand) after a completed `hello`.
async fn ws_after_hello(addr: SocketAddr) -> TcpStream {
    let mut s = ws_upgraded(addr).await;
    s.write_all(&ws_frame(Opcode::Binary, &hello_body()))
        .await
        .expect("write");
    // Welcome is one small unfragmented binary frame: read its header and payload.
    let mut header = [0u8; 2];
    s.read_exact(&mut header).await.expect("welcome's header");
    assert_eq!(header[0], 0x82, "a final binary frame");
    let mut body = vec![0u8; usize::from(header[1] & 0x7f)];
    s.read_exact(&mut body).await.expect("welcome");
    assert!(matches!(
        ServerMessage::decode(&body),
        Ok(ServerMessage::Welcome { .. })
    ));
    s
}

#[tokio::test(start_paused = true)]
async fn bytes_that_never_complete_a_message_do_not_keep_a_session() {
    let server = TestServer::start(reaping_config()).await;
    let every = Duration::from_millis(100);
    // A frame announcing 30 bytes, then a byte every 100 ms: 3 s to complete it.
    let mut tcp_partial = vec![0, 0, 0, 30];
    tcp_partial.extend(std::iter::repeat_n(0x90, 30));
    // A masked binary frame of 30 bytes, likewise.
    let ws_partial = ws_frame(Opcode::Binary, &[0x90; 30]);
    // WebSocket pings are answered but are not Rally messages.
    let pings: Vec<Vec<u8>> = (0..30u8).map(|i| ws_frame(Opcode::Ping, &[i])).collect();
    let cases: [(&str, bool, Vec<Vec<u8>>); 3] = [
        ("tcp trickle", false, bytewise(&tcp_partial)),
        ("ws trickle", true, bytewise(&ws_partial)),
        ("ws pings", true, pings),
    ];
    for (what, websocket, chunks) in cases {
        let stream = if websocket {
            ws_after_hello(server.ws).await
        } else {
            tcp_after_hello(server.tcp).await
        };
        let since = Instant::now();
        assert_eq!(server.handle.sessions(), 1, "{what}");
        let seen = run_until_closed(stream, websocket, &chunks, every).await;
        assert_eq!(seen.errors(), [ErrorCode::Timeout], "{what}: {seen:?}");
        if websocket {
            assert_eq!(seen.ws_close, Some(1008), "{what}");
        }
        assert_between(what, seen.at - since, TIMEOUT_MS, TIMEOUT_MS + 50);
        assert_eq!(server.handle.sessions(), 0, "{what}: the session is gone");
    }
    assert_eq!(server.handle.errors(ErrorCode::Timeout), 3);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn before_hello_silence_and_trickles_are_closed_after_the_handshake_bound() {
    let server = TestServer::start(reaping_config()).await;
    let every = Duration::from_millis(100);
    let connections = |s: &common::Scrape| {
        s.value("rally_connections", &[("transport", "tcp")])
            + s.value("rally_connections", &[("transport", "ws")])
    };
    assert_eq!(connections(&scrape(server.admin).await), 0.0);

    let hello = hello_body();
    let cases: [(&str, bool, bool, Vec<Vec<u8>>); 6] = [
        ("tcp silent", false, false, Vec::new()),
        (
            "tcp hello trickled",
            false,
            false,
            bytewise(&tcp_frame(&hello)),
        ),
        ("ws port, no upgrade", true, false, Vec::new()),
        (
            "ws upgrade trickled",
            true,
            false,
            bytewise(UPGRADE.as_bytes()),
        ),
        ("ws upgraded, silent", true, true, Vec::new()),
        (
            "ws hello trickled",
            true,
            true,
            bytewise(&ws_frame(Opcode::Binary, &hello)),
        ),
    ];
    for (what, websocket, upgraded, chunks) in cases {
        let stream = match (websocket, upgraded) {
            (false, _) => TcpStream::connect(server.tcp).await.expect("connect"),
            (true, false) => TcpStream::connect(server.ws).await.expect("connect"),
            (true, true) => ws_upgraded(server.ws).await,
        };
        let since = Instant::now();
        let seen = run_until_closed(stream, upgraded, &chunks, every).await;
        assert_between(what, seen.at - since, TIMEOUT_MS, TIMEOUT_MS + 50);
        assert!(
            !seen
                .messages
                .iter()
                .any(|m| matches!(m, ServerMessage::Welcome { .. })),
            "{what}: no welcome without a whole hello"
        );
        if !websocket || upgraded {
            // A Rally connection is told why.
            assert_eq!(seen.errors(), [ErrorCode::Timeout], "{what}: {seen:?}");
        } else {
            // Before the upgrade there is no Rally connection to speak on: the upgrade
            // request is answered 408.
            assert!(seen.messages.is_empty(), "{what}: {seen:?}");
            assert!(seen.http.starts_with("HTTP/1.1 408 "), "{what}: {seen:?}");
        }
        if upgraded {
            assert_eq!(seen.ws_close, Some(1008), "{what}");
        }
        assert_eq!(
            connections(&scrape(server.admin).await),
            0.0,
            "{what}: the connection is no longer counted"
        );
    }
    assert_eq!(server.handle.sessions(), 0);
    assert_eq!(server.handle.errors(ErrorCode::Timeout), 4);
    server.shutdown().await;
}
