//! The retry policy on real sockets: resets and timeouts are retried up to 3 attempts,
//! a refused connection, a server refusal and a bad response are returned at once.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rally_client::{Client, Config, Error, ErrorCode};
use rally_protocol::{frame, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A listener on 127.0.0.1 that hands each connection to `serve`, counting them.
async fn fake_server<F, Fut>(serve: F) -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream));
        }
    });
    (addr, count, task)
}

/// Reads the client's hello, then answers `msg`.
async fn answer(mut stream: TcpStream, msg: ServerMessage) {
    let mut buf = vec![0u8; 256];
    let _ = stream.read(&mut buf).await;
    let (mut body, mut out) = (Vec::new(), Vec::new());
    msg.encode(&mut body);
    frame::encode(&body, &mut out);
    let _ = stream.write_all(&out).await;
    // Hold the connection a moment so the client reads the answer, not a close.
    let _ = stream.read(&mut buf).await;
}

#[tokio::test]
async fn a_connection_reset_is_retried_up_to_three_attempts() {
    let (addr, count, task) = fake_server(|stream: TcpStream| async move {
        // SO_LINGER 0: closing sends a reset instead of a FIN.
        stream.set_zero_linger().unwrap();
        drop(stream);
    })
    .await;
    match Client::connect(Config::new(addr.to_string())).await {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        other => panic!("{other:?}"),
    }
    assert_eq!(count.load(Ordering::SeqCst), 3);
    task.abort();
}

#[tokio::test]
async fn a_timeout_is_retried_up_to_three_attempts() {
    let (addr, count, task) = fake_server(|mut stream: TcpStream| async move {
        // Accepts and never answers.
        let mut sink = [0u8; 256];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    let mut config = Config::new(addr.to_string());
    config.connect_timeout = Duration::from_millis(200);
    match Client::connect(config).await {
        Err(Error::Timeout(_)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(count.load(Ordering::SeqCst), 3);
    task.abort();
}

#[tokio::test]
async fn a_server_refusal_or_a_bad_response_is_not_retried() {
    let (addr, count, task) = fake_server(|stream: TcpStream| {
        answer(
            stream,
            ServerMessage::Error {
                code: ErrorCode::UnsupportedVersion,
                message: "speak 2".into(),
                req: 0,
            },
        )
    })
    .await;
    match Client::connect(Config::new(addr.to_string())).await {
        Err(Error::Server { code, message }) => {
            assert_eq!(code, ErrorCode::UnsupportedVersion);
            assert_eq!(message, "speak 2");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
    task.abort();

    // Something other than welcome.
    let (addr, count, task) =
        fake_server(|stream: TcpStream| answer(stream, ServerMessage::Pong { nonce: 1 })).await;
    match Client::connect(Config::new(addr.to_string())).await {
        Err(Error::Protocol(why)) => assert!(why.contains("expected welcome"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
    task.abort();
}

#[tokio::test]
async fn a_refused_connection_is_not_retried() {
    let addr = common::closed_port().await;
    let started = Instant::now();
    match Client::connect(Config::new(addr.to_string())).await {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("{other:?}"),
    }
    // A retry would have slept at least 100 ms + 200 ms first.
    assert!(started.elapsed() < Duration::from_millis(300));
}
