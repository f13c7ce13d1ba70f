//! The low-level [`Connection`] over real sockets: against a real server over raw TCP and
//! WebSocket (join, inputs, states whose `last_seq` advances, ping, server errors, a
//! fatal error, shutdown, a clean close, cancelled reads), and against a scripted
//! WebSocket server for what Rally's server never does (pings, fragmented messages),
//! which the [`Client`](rally_client::Client), whose task drives a `Connection`, passes
//! too.

mod common;

use std::time::Duration;

use common::{client_config, input, server_config, TestServer, LIMIT};
use rally_client::{Connection, Error, ErrorCode, Message, Room, Transport};
use rally_protocol::ws::{self, Opcode};
use rally_protocol::{handshake, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const BOTH: [Transport; 2] = [Transport::Tcp, Transport::WebSocket];

async fn connect(server: &TestServer, transport: Transport) -> Connection {
    Connection::connect(&client_config(common::addr(server, transport), transport))
        .await
        .expect("connect")
}

/// The next message `f` picks, skipping the others; panics if the connection ends or
/// nothing matches within [`LIMIT`].
async fn next_msg<T>(
    conn: &mut Connection,
    what: &str,
    mut f: impl FnMut(&Message<'_>) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(LIMIT, async {
        loop {
            match conn.recv().await {
                Ok(m) => {
                    if let Some(t) = f(&m) {
                        return t;
                    }
                }
                Err(e) => panic!("the connection ended while waiting for {what}: {e}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The player's own entry in an arena state.
fn me(payload: &[u8], room: &Room) -> arena::PlayerState {
    arena::decode_state(payload)
        .expect("an arena state")
        .into_iter()
        .find(|p| p.id == room.player_id)
        .expect("this player is in the state")
}

/// Waits for a state applying input `seq`; returns its tick and this player's entry.
async fn applying(conn: &mut Connection, room: &Room, seq: u32) -> (u64, arena::PlayerState) {
    next_msg(conn, "a state applying the input", |m| match m {
        Message::State(s) if s.last_seq >= seq => Some((s.tick, me(s.payload, room))),
        _ => None,
    })
    .await
}

async fn play(transport: Transport) {
    let server = TestServer::start(server_config()).await;
    let mut conn = connect(&server, transport).await;
    assert_eq!(conn.transport(), transport);
    assert_eq!(conn.welcome().tick_hz, 20);
    assert!(conn.room().is_none());
    let room = conn.join(arena::KIND).await.expect("join");
    assert_eq!(room.kind, arena::KIND);
    assert_eq!(conn.room(), Some(&room));

    // Steer towards the centre and watch the room apply the inputs and the player move.
    let (_, start) = applying(&mut conn, &room, 0).await;
    let (dx, dy) = ((500.0 - start.x).signum(), (500.0 - start.y).signum());
    conn.send_input(1, &input(dx, dy)).unwrap();
    if !conn.try_flush().unwrap() {
        conn.flush().await.unwrap();
    }
    assert_eq!(conn.unwritten(), 0);
    let (tick1, before) = applying(&mut conn, &room, 1).await;
    assert_eq!(before.last_seq, 1);
    // Left in the buffer on purpose: `recv` writes it while it waits.
    conn.send_input(2, &input(0.0, 0.0)).unwrap();
    let (tick2, after) = applying(&mut conn, &room, 2).await;
    assert_eq!(after.last_seq, 2);
    assert!(tick2 > tick1);
    assert!(
        (after.x - start.x) * dx > 0.0 && (after.y - start.y) * dy > 0.0,
        "{start:?} -> {after:?}"
    );

    // Refused locally, before they could cost the connection; nothing is buffered.
    assert!(matches!(
        conn.send_input(3, &[0x92, 0x01]),
        Err(Error::InvalidPayload)
    ));
    let mut huge = vec![0xda, 0x13, 0x88];
    huge.resize(3 + 5000, b'a');
    assert!(matches!(
        conn.send_input(3, &huge),
        Err(Error::TooLarge { max: 4096, .. })
    ));
    assert_eq!(conn.unwritten(), 0);

    conn.send_ping(7).unwrap();
    conn.flush().await.unwrap();
    let nonce = next_msg(&mut conn, "the pong", |m| match m {
        Message::Pong { nonce } => Some(*nonce),
        _ => None,
    })
    .await;
    assert_eq!(nonce, 7);
    assert!(!conn.is_over());

    conn.close().await.expect("a clean goodbye");
    // The close left the room, so the seat is not held and the room ends.
    common::eventually("the room ends", || server.handle.rooms() == 0).await;
    assert!(server.shutdown().await.drained);
}

/// A caller that drives the socket itself (`rally bots`): the seat taken through
/// `join_or_redirect` (here, on a single node, never a redirect), then the bare socket
/// carries the session on: a ping written to it is answered on it.
#[tokio::test]
async fn a_connection_taken_apart_goes_on_on_its_socket() {
    let server = TestServer::start(server_config()).await;
    for transport in BOTH {
        let mut conn = connect(&server, transport).await;
        match conn.join_or_redirect(arena::KIND).await.expect("join") {
            rally_client::Seat::Here(room) => assert_eq!(room.kind, arena::KIND),
            rally_client::Seat::Elsewhere(to) => panic!("a single node redirected to {to:?}"),
        }
        // A ticket means nothing to a single node: refused, and never retried.
        assert!(conn.claim_seat("not-a-ticket").await.is_err());
        let parts = conn.into_parts();
        let mut stream = parts.stream;
        let mut out = parts.unwritten;
        rally_protocol::framing::ClientFramer(transport)
            .message(
                &rally_protocol::ClientMessage::Ping { nonce: 77 },
                usize::MAX,
                [1, 2, 3, 4],
                &mut out,
            )
            .expect("a ping fits");
        stream.write_all(&out).await.expect("write");
        let mut deframer = rally_protocol::framing::Deframer::client(transport, 1 << 20);
        let mut buf = parts.unread;
        let pong = tokio::time::timeout(LIMIT, async {
            loop {
                let mut pos = 0;
                while let Some((used, incoming)) = deframer.decode(&mut buf[pos..]).expect("frames")
                {
                    pos += used;
                    if let rally_protocol::framing::Incoming::Message(body) = incoming {
                        if let Ok(ServerMessage::Pong { nonce }) = ServerMessage::decode(body) {
                            return nonce;
                        }
                    }
                }
                buf.drain(..pos);
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.expect("read");
                assert!(n > 0, "the server closed");
                buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .expect("a pong in time");
        assert_eq!(pong, 77);
    }
}

#[tokio::test]
async fn tcp_connect_join_inputs_states_close() {
    play(Transport::Tcp).await;
}

#[tokio::test]
async fn websocket_connect_join_inputs_states_close() {
    play(Transport::WebSocket).await;
}

#[tokio::test]
async fn server_errors_surface_and_the_connection_goes_on() {
    let server = TestServer::start(server_config()).await;
    for transport in BOTH {
        let mut conn = connect(&server, transport).await;
        // A refused request fails with the server's code, at once (not retried).
        match conn.join("no-such-kind").await {
            Err(Error::Server { code, .. }) => assert_eq!(code, ErrorCode::UnknownRoomKind),
            other => panic!("{transport:?}: {other:?}"),
        }
        // An input outside a room earns an unprompted error that does not end anything.
        conn.send_input(1, &input(1.0, 0.0)).unwrap();
        conn.flush().await.unwrap();
        let e = next_msg(&mut conn, "NOT_IN_ROOM", |m| match m {
            Message::Error(e) => Some(e.clone()),
            Message::State(_) => panic!("a state outside a room"),
            _ => None,
        })
        .await;
        assert_eq!(e.code(), Some(ErrorCode::NotInRoom), "{transport:?}");
        assert!(!conn.is_over());
        let room = conn.join(arena::KIND).await.expect("join after the errors");
        assert_eq!(conn.leave().await.expect("left"), room.room_id);
        assert!(conn.room().is_none());
        conn.close().await.expect("a clean goodbye");
    }
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn a_server_that_requires_logins_lets_a_device_in() {
    let db = rally_testkit::TestDb::sqlite();
    let config = rally_server::Config {
        auth_required: true,
        ..server_config()
    };
    let store = db.open(&config).await;
    let server = TestServer::start_with(
        rally_server::Server::builder(config, rally_testkit::games()).store(store),
    )
    .await;
    for transport in BOTH {
        let mut conn = connect(&server, transport).await;
        match conn.join(arena::KIND).await {
            Err(Error::Server { code, .. }) => assert_eq!(code, ErrorCode::Unauthorized),
            other => panic!("{transport:?}: {other:?}"),
        }
        let session = conn
            .login("device", "connection-test-device")
            .await
            .expect("login");
        assert!(session.account_id > 0);
        assert!(!session.token.expose().is_empty());
        assert!(
            !format!("{session:?}").contains(session.token.expose().as_str()),
            "the token stays out of logs"
        );
        let room = conn.join(arena::KIND).await.expect("join once logged in");
        applying(&mut conn, &room, 0).await;
        conn.close().await.expect("a clean goodbye");
    }
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn a_fatal_server_error_ends_the_connection() {
    // The server times out a connection that sends nothing for 100 ms.
    let config = rally_server::Config {
        timeout_ms: 100,
        ..server_config()
    };
    let server = TestServer::start(config).await;
    for transport in BOTH {
        let mut conn = connect(&server, transport).await;
        let ended = tokio::time::timeout(LIMIT, async {
            loop {
                if let Err(e) = conn.recv().await {
                    return e;
                }
            }
        })
        .await
        .expect("the server times the connection out");
        assert_eq!(
            ended.code(),
            Some(ErrorCode::Timeout),
            "{transport:?}: {ended}"
        );
        assert!(conn.is_over());
        assert!(matches!(conn.recv().await, Err(Error::Closed)));
        assert!(matches!(
            conn.send_input(1, &input(0.0, 0.0)),
            Err(Error::Closed)
        ));
        conn.close().await.expect("nothing to say goodbye to");
    }
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn a_source_ip_is_the_address_the_server_sees() {
    let server = TestServer::start(server_config()).await;
    for (transport, last) in [(Transport::Tcp, 42), (Transport::WebSocket, 43)] {
        let source = std::net::Ipv4Addr::new(127, 0, 3, last);
        let config =
            client_config(common::addr(&server, transport), transport).source_ip(source.into());
        let mut conn = Connection::connect(&config).await.expect("connect");
        assert_eq!(conn.local_addr().expect("local address").ip(), source);
        // A real session from there: the server answers a join.
        conn.join(arena::KIND).await.expect("join");
        conn.close().await.expect("a clean goodbye");
    }
    // An address family the target does not have is refused, not silently ignored.
    let config =
        client_config(server.tcp, Transport::Tcp).source_ip(std::net::Ipv6Addr::LOCALHOST.into());
    match Connection::connect(&config).await {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::AddrNotAvailable),
        other => panic!("{other:?}"),
    }
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn a_full_server_refuses_the_connection() {
    let config = rally_server::Config {
        concurrency_limit: 1,
        ..server_config()
    };
    let server = TestServer::start(config).await;
    for transport in BOTH {
        let first = connect(&server, transport).await;
        let addr = common::addr(&server, transport);
        match Connection::connect(&client_config(addr, transport)).await {
            Err(Error::Server { code, .. }) => assert_eq!(code, ErrorCode::ServerFull),
            other => panic!("{transport:?}: {other:?}"),
        }
        first.close().await.expect("a clean goodbye");
        common::eventually("the slot is free", || server.handle.sessions() == 0).await;
    }
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn a_server_shutdown_is_a_message_then_a_clean_close() {
    for transport in BOTH {
        let mut server = TestServer::start(server_config()).await;
        let mut conn = connect(&server, transport).await;
        let room = conn.join(arena::KIND).await.expect("join");
        applying(&mut conn, &room, 0).await;
        server.begin_shutdown();
        let after = next_msg(&mut conn, "shutdown", |m| match m {
            Message::Shutdown {
                reconnect_after, ..
            } => Some(*reconnect_after),
            _ => None,
        })
        .await;
        assert!(after > Duration::ZERO);
        conn.close().await.expect("a clean goodbye");
        let report = tokio::time::timeout(LIMIT, server.task)
            .await
            .unwrap()
            .unwrap();
        assert!(
            report.drained,
            "{transport:?}: the client closed within the grace"
        );
    }
}

#[tokio::test]
async fn cancelled_reads_lose_nothing() {
    let server = TestServer::start(server_config()).await;
    for transport in BOTH {
        let mut conn = connect(&server, transport).await;
        let room = conn.join(arena::KIND).await.expect("join");
        applying(&mut conn, &room, 0).await;
        // Reads cut short again and again, as a `select!` loop's other branches do: the
        // room's ticks must still come one after the other, none lost or garbled.
        let mut ticks = Vec::new();
        let started = tokio::time::Instant::now();
        while ticks.len() < 12 {
            assert!(started.elapsed() < LIMIT, "{transport:?}: states stopped");
            if let Ok(msg) = tokio::time::timeout(Duration::from_millis(3), conn.recv()).await {
                if let Message::State(s) = msg.expect("the connection goes on") {
                    me(s.payload, &room);
                    ticks.push(s.tick);
                }
            }
        }
        assert!(
            ticks.windows(2).all(|w| w[1] == w[0] + 1),
            "{transport:?}: {ticks:?}"
        );
        conn.close().await.expect("a clean goodbye");
    }
    assert!(server.shutdown().await.drained);
}

/// A scripted WebSocket server: after the handshake and `welcome` it sends a ping and a
/// state in two fragments, checks the client's pong, then waits for its close frame.
async fn scripted_ws_server(listener: TcpListener, state: Vec<u8>) {
    let (mut sock, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    let (used, req) = loop {
        let mut chunk = [0u8; 1024];
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the client hung up during the upgrade");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(parsed) = handshake::parse_request(&buf, "/ws").unwrap() {
            break parsed;
        }
    };
    buf.drain(..used);
    let mut out = Vec::new();
    handshake::write_accept(&mut out, &req);
    let mut body = Vec::new();
    ServerMessage::Welcome {
        version: 1,
        session_id: 1,
        tick_hz: 20,
        max_message_bytes: 4096,
        timeout_ms: 30_000,
        queue_capacity: 100,
        resume_token: "t".into(),
        reconnect_grace_ms: 0,
        account_id: 0,
        revision: 2,
    }
    .encode(&mut body);
    ws::write_frame(&mut out, Opcode::Binary, &body);
    ws::write_frame(&mut out, Opcode::Ping, b"hi");
    // The state in two frames: binary without FIN, then a final continuation.
    let (a, b) = state.split_at(state.len() / 2);
    out.extend_from_slice(&[0x02, a.len() as u8]);
    out.extend_from_slice(a);
    out.extend_from_slice(&[0x80, b.len() as u8]);
    out.extend_from_slice(b);
    sock.write_all(&out).await.unwrap();

    // The client's frames: the hello, the pong, then its close frame.
    let mut decoder = ws::Decoder::server(4096);
    let mut seen = Vec::new();
    loop {
        loop {
            // The pong's payload is checked by hand (the decoder does not keep it).
            if buf.len() >= 8 && buf[0] == 0x8a {
                assert_eq!(buf[1], 0x82, "a masked pong of 2 bytes");
                let mut payload = [buf[6], buf[7]];
                ws::apply_mask(&mut payload, [buf[2], buf[3], buf[4], buf[5]]);
                assert_eq!(&payload, b"hi");
            }
            let Some((used, event)) = decoder.decode(&mut buf).unwrap() else {
                break;
            };
            seen.push(match event {
                ws::Event::Binary(_) => "message",
                ws::Event::Pong => "pong",
                ws::Event::Close(code) => {
                    assert_eq!(code, Some(ws::close_code::NORMAL));
                    "close"
                }
                other => panic!("unexpected {other:?}"),
            });
            buf.drain(..used);
        }
        if seen.contains(&"close") {
            break;
        }
        let mut chunk = [0u8; 1024];
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the client hung up before its close frame: {seen:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(seen, ["message", "pong", "close"]);
    let mut out = Vec::new();
    ws::write_close(&mut out, ws::close_code::NORMAL);
    sock.write_all(&out).await.unwrap();
    // Dropping the socket closes it: the client's goodbye sees the end.
}

#[tokio::test]
async fn websocket_pings_are_answered_and_fragments_reassembled() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut state = Vec::new();
    rally_protocol::message::encode_state(&mut state, 5, 3, &[0x92, 0x01, 0x02]);
    let server = tokio::spawn(scripted_ws_server(listener, state));

    let mut conn = Connection::connect(&client_config(addr, Transport::WebSocket))
        .await
        .expect("connect");
    let got = next_msg(&mut conn, "the fragmented state", |m| match m {
        Message::State(s) => Some(s.to_state()),
        _ => None,
    })
    .await;
    assert_eq!((got.tick, got.last_seq), (5, 3));
    assert_eq!(&got.payload[..], &[0x92, 0x01, 0x02]);
    conn.close().await.expect("a clean goodbye");
    tokio::time::timeout(LIMIT, server)
        .await
        .expect("the scripted server finishes")
        .expect("the scripted server saw what it expected");
}

#[tokio::test]
async fn the_clients_connection_answers_pings_and_reassembles_fragments() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut state = Vec::new();
    rally_protocol::message::encode_state(&mut state, 5, 3, &[0x92, 0x01, 0x02]);
    let server = tokio::spawn(scripted_ws_server(listener, state));

    let (client, mut events) =
        rally_client::Client::connect(client_config(addr, Transport::WebSocket))
            .await
            .expect("connect");
    let got = tokio::time::timeout(LIMIT, async {
        loop {
            match futures_util::StreamExt::next(&mut events).await {
                Some(rally_client::Event::State(s)) => break s,
                Some(_) => {}
                None => panic!("the events ended before the state"),
            }
        }
    })
    .await
    .expect("the fragmented state, in time");
    assert_eq!((got.tick, got.last_seq), (5, 3));
    assert_eq!(&got.payload[..], &[0x92, 0x01, 0x02]);
    // Not in a room: no `leave`, only the close frame the scripted server waits for.
    client.close().await;
    tokio::time::timeout(LIMIT, server)
        .await
        .expect("the scripted server finishes")
        .expect("the scripted server saw what it expected");
}
