//! Limits and timeouts: capacity, idle and handshake timeouts, oversized and malformed
//! messages, slow consumers. Each bad client gets a clear error code and is closed, and
//! the server keeps serving everyone else.

mod common;

use std::time::Duration;

use common::{config, eventually, Client, TestServer};
use rally_server::protocol::{frame, msgpack, ws, ClientMessage, ErrorCode, ServerMessage};
use tokio::io::AsyncWriteExt;

async fn assert_still_serving(c: &mut Client, nonce: u64) {
    c.send(&ClientMessage::Ping { nonce }).await;
    c.expect("pong", |m| {
        matches!(m, ServerMessage::Pong { nonce: n } if *n == nonce).then_some(())
    })
    .await;
}

#[tokio::test]
async fn at_capacity_new_connections_get_server_full_at_once() {
    let mut cfg = config();
    cfg.concurrency_limit = 2;
    let server = TestServer::start(cfg).await;
    let (mut a, _) = Client::tcp_hello(server.tcp).await;
    let (b, _) = Client::ws_hello(server.ws).await;

    // Over TCP the refusal needs no handshake from the client.
    let mut full = Client::tcp(server.tcp).await;
    assert_eq!(full.expect_closed().await, Some(ErrorCode::ServerFull));
    // Over WebSocket it comes right after the upgrade.
    let mut full = Client::ws(server.ws).await;
    assert_eq!(full.expect_closed().await, Some(ErrorCode::ServerFull));

    assert_still_serving(&mut a, 1).await;
    assert_eq!(server.handle.errors(ErrorCode::ServerFull), 2);
    // A freed slot is usable again.
    b.close().await;
    eventually("the slot is released", || server.handle.sessions() == 1).await;
    let mut again = None;
    for _ in 0..100 {
        let mut c = Client::tcp(server.tcp).await;
        c.send(&ClientMessage::Hello {
            version: 1,
            client: "again",
            resume: None,
            token: None,
        })
        .await;
        match c.recv().await {
            Some(ServerMessage::Welcome { .. }) => {
                again = Some(c);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let c = again.expect("a connection is accepted once a slot frees");
    c.close().await;
    a.close().await;
    assert!(server.shutdown().await.drained);
}

#[tokio::test(start_paused = true)]
async fn idle_and_handshake_timeouts_close_with_timeout() {
    let mut cfg = config();
    cfg.timeout_ms = 1000;
    let server = TestServer::start(cfg).await;
    let (mut live, _) = Client::tcp_hello(server.tcp).await;

    // Time is paused: the server's timers and these instants share one clock, which moves
    // only when every task waits, so when a close happens is exact however loaded the
    // machine is. Each quiet client's last activity lies between the two instants taken
    // around its connect, and a watcher notes when the server closed it.
    let watch = |c: Client, before: tokio::time::Instant| {
        let after = tokio::time::Instant::now();
        let task = tokio::spawn(async move {
            let mut c = c;
            let code = c.expect_closed().await;
            (code, tokio::time::Instant::now())
        });
        (before, after, task)
    };
    let t = tokio::time::Instant::now();
    let idle = watch(Client::tcp_hello(server.tcp).await.0, t);
    let t = tokio::time::Instant::now();
    let silent = watch(Client::tcp(server.tcp).await, t);
    let t = tokio::time::Instant::now();
    let silent_ws = watch(Client::ws(server.ws).await, t);
    // The live client keeps talking past the bound and is not closed.
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_still_serving(&mut live, i).await;
    }
    for (what, (before, after, task)) in [
        ("idle", idle),
        ("silent", silent),
        ("silent websocket", silent_ws),
    ] {
        let (code, at) = task.await.expect("the watcher does not panic");
        assert_eq!(code, Some(ErrorCode::Timeout), "{what}");
        // Not early: no sooner than timeout_ms after its last activity.
        let waited = at.saturating_duration_since(before);
        assert!(
            waited >= Duration::from_millis(1000),
            "{what} closed {waited:?} after connecting, before timeout_ms"
        );
        // In time: at most a little past it (the close frame is written after the timer).
        let late = at.saturating_duration_since(after);
        assert!(
            late <= Duration::from_millis(1100),
            "{what} closed {late:?} after its last activity, well past timeout_ms"
        );
    }
    assert_still_serving(&mut live, 99).await;

    // Bytes that never complete a message do not hold a session open either.
    let (mut trickle, _) = Client::tcp_hello(server.tcp).await;
    trickle.send_bytes(&[0, 0, 0, 10, 0x92]).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        if let Client::Tcp { stream, .. } = &mut trickle {
            let _ = stream.write_all(&[0xc0]).await;
        }
    }
    assert_eq!(trickle.expect_closed().await, Some(ErrorCode::Timeout));
    live.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_messages_are_refused_with_message_too_large() {
    let mut cfg = config();
    cfg.max_message_bytes = 64;
    let server = TestServer::start(cfg).await;
    let (mut bystander, _) = Client::ws_hello(server.ws).await;

    // A length prefix claiming a gigabyte is refused from the header alone.
    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    c.send_bytes(&[0x40, 0, 0, 0]).await;
    assert_eq!(c.expect_closed().await, Some(ErrorCode::MessageTooLarge));

    // One byte over the limit.
    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    let mut body = Vec::new();
    ClientMessage::Chat {
        req: 1,
        text: &"x".repeat(62),
    }
    .encode(&mut body);
    assert!(body.len() > 64);
    c.send_body(&body).await;
    assert_eq!(c.expect_closed().await, Some(ErrorCode::MessageTooLarge));

    // The same over WebSocket.
    let (mut c, _) = Client::ws_hello(server.ws).await;
    c.send_body(&body).await;
    assert_eq!(c.expect_closed().await, Some(ErrorCode::MessageTooLarge));

    assert_still_serving(&mut bystander, 7).await;
    bystander.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_messages_are_refused_with_bad_message() {
    let server = TestServer::start(config()).await;
    let (mut bystander, _) = Client::tcp_hello(server.tcp).await;

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("reserved msgpack marker", vec![0xc1]),
        ("not an array", vec![0x07]),
        ("unknown type", vec![0x91, 0x63]),
        ("missing fields", vec![0x91, 0x04]),
        ("truncated string", vec![0x93, 0x05, 0x01, 0xa5, b'h']),
        ("trailing bytes", vec![0x92, 0x06, 0x01, 0xc0]),
    ];
    let mut negative = Vec::new();
    msgpack::write_array_len(&mut negative, 2);
    msgpack::write_uint(&mut negative, 6);
    msgpack::write_int(&mut negative, -1);
    cases.push(("negative nonce", negative));

    for (what, body) in &cases {
        let (mut c, _) = Client::tcp_hello(server.tcp).await;
        c.send_body(body).await;
        assert_eq!(
            c.expect_closed().await,
            Some(ErrorCode::BadMessage),
            "{what}"
        );
    }
    // An empty TCP frame.
    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    c.send_bytes(&[0, 0, 0, 0]).await;
    assert_eq!(c.expect_closed().await, Some(ErrorCode::BadMessage));
    // Anything but hello first.
    let mut c = Client::tcp(server.tcp).await;
    c.send(&ClientMessage::Ping { nonce: 1 }).await;
    assert_eq!(c.expect_closed().await, Some(ErrorCode::BadMessage));
    // A second hello.
    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    c.send(&ClientMessage::Hello {
        version: 1,
        client: "again",
        resume: None,
        token: None,
    })
    .await;
    assert_eq!(c.expect_closed().await, Some(ErrorCode::BadMessage));
    // A version the server does not speak.
    let mut c = Client::tcp(server.tcp).await;
    c.send(&ClientMessage::Hello {
        version: 2,
        client: "future",
        resume: None,
        token: None,
    })
    .await;
    assert_eq!(c.expect_closed().await, Some(ErrorCode::UnsupportedVersion));
    // Over WebSocket: a malformed body, and a text message.
    let (mut c, _) = Client::ws_hello(server.ws).await;
    c.send_body(&[0xc1]).await;
    assert_eq!(c.expect_closed().await, Some(ErrorCode::BadMessage));
    let (c, _) = Client::ws_hello(server.ws).await;
    if let Client::Ws(mut w) = c {
        use futures_util::SinkExt;
        w.send(tokio_tungstenite::tungstenite::Message::Text(
            "hello".into(),
        ))
        .await
        .unwrap();
        let mut c = Client::Ws(w);
        assert_eq!(c.expect_closed().await, Some(ErrorCode::BadMessage));
    }

    assert_still_serving(&mut bystander, 3).await;
    bystander.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn websocket_requests_for_other_paths_are_refused() {
    let server = TestServer::start(config()).await;
    let err = tokio_tungstenite::connect_async(format!("ws://{}/other", server.ws))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    // A raw WebSocket client built from the protocol crate (masked frames) also works.
    let mut stream = tokio::net::TcpStream::connect(server.ws).await.unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let mut body = Vec::new();
    ClientMessage::Hello {
        version: 1,
        client: "raw",
        resume: None,
        token: None,
    }
    .encode(&mut body);
    let mut wire = Vec::new();
    ws::write_masked_frame(&mut wire, ws::Opcode::Binary, &body, [1, 2, 3, 4]);
    stream.write_all(&wire).await.unwrap();
    let mut got = Vec::new();
    let welcome = loop {
        assert!(got.len() < 4096);
        stream.readable().await.unwrap();
        let mut chunk = [0u8; 1024];
        match stream.try_read(&mut chunk) {
            Ok(0) => panic!("closed"),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(_) => continue,
        }
        let Some(head) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head_text = String::from_utf8_lossy(&got[..head]).to_string();
        assert!(head_text.starts_with("HTTP/1.1 101"), "{head_text}");
        assert!(
            head_text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "{head_text}"
        );
        let mut rest = got[head + 4..].to_vec();
        if let Ok(Some((_, ws::Event::Binary(b)))) = ws::Decoder::client(1 << 20).decode(&mut rest)
        {
            break ServerMessage::decode(b).unwrap();
        }
    };
    assert!(matches!(welcome, ServerMessage::Welcome { .. }));
    drop(stream);
    let _ = frame::HEADER_LEN;
    eventually("the raw client is gone", || server.handle.sessions() == 0).await;
    server.shutdown().await;
}

/// This process's resident set in KiB, from `/proc/self/status`. On Linux its absence
/// fails the test (the bound would otherwise pass unchecked); elsewhere it is `None` and
/// the memory half of the test is skipped with a note.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status");
    if cfg!(target_os = "linux") {
        let status = status.expect("/proc/self/status is readable on Linux");
        let kib = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
        Some(kib.expect("VmRSS in /proc/self/status"))
    } else {
        eprintln!("note: no /proc on this OS; the RSS bound is not checked");
        None
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_memory_stays_bounded() {
    let mut cfg = config();
    cfg.queue_capacity = 16;
    cfg.timeout_ms = 2000;
    let server = TestServer::start(cfg).await;
    let (mut bystander, _) = Client::tcp_hello(server.tcp).await;
    let (slow, _) = Client::tcp_hello(server.tcp).await;
    let Client::Tcp { mut stream, .. } = slow else {
        unreachable!()
    };
    let rss_before = rss_kib();

    // Flood pings and never read a pong. Unbounded buffering would hold every pong:
    // 2 million of them, far beyond the bound asserted below.
    let mut batch = Vec::new();
    let mut body = Vec::new();
    for nonce in 0..10_000u64 {
        body.clear();
        ClientMessage::Ping {
            nonce: u64::MAX - nonce,
        }
        .encode(&mut body);
        frame::encode(&body, &mut batch);
    }
    let mut sent = 0usize;
    let refused = loop {
        if sent > 200 {
            break false;
        }
        match tokio::time::timeout(Duration::from_secs(10), stream.write_all(&batch)).await {
            Ok(Ok(())) => sent += 1,
            Ok(Err(_)) | Err(_) => break true,
        }
    };
    assert!(
        refused,
        "the server kept accepting pings from a client that never reads"
    );
    eventually("the slow session is gone", || server.handle.sessions() == 1).await;
    assert_eq!(
        server.handle.errors(ErrorCode::SlowConsumer),
        1,
        "dropped as a slow consumer"
    );
    // What this bounds: the growth of this process, which is the server and this test's
    // two clients. The flooding client holds only its batch (400 KB) and the kernel's
    // socket buffers hold what it wrote, so growth here is the server's buffering of
    // pings and pongs: 2 million pongs kept would be over 30 MiB, far past the bound.
    if let (Some(before), Some(now)) = (rss_before, rss_kib()) {
        let grown = now.saturating_sub(before);
        eprintln!("RSS grew by {grown} KiB while flooding");
        assert!(grown < 16 * 1024, "RSS grew by {grown} KiB");
    }
    assert_still_serving(&mut bystander, 5).await;
    bystander.close().await;
    server.shutdown().await;
}
