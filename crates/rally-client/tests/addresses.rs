//! Several server addresses: tried at once, the first to complete the handshake wins,
//! the others are cancelled; when all fail, the error lists each.

mod common;

use std::time::Duration;

use common::{closed_port, server_config, TestServer, LIMIT};
use rally_client::{Client, Config, Error};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

#[tokio::test]
async fn one_refuses_one_works_and_the_client_connects() {
    let server = TestServer::start(server_config()).await;
    let refused = closed_port().await;
    let config = Config::new(refused.to_string()).addr(server.tcp.to_string());
    let (client, _events) = Client::connect(config).await.expect("connect");
    let room = client.join("arena").await.expect("join");
    assert!(room.player_id >= 1);
    client.close().await;
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn all_failing_says_so_for_each_address() {
    let (a, b) = (closed_port().await, closed_port().await);
    let config = Config::new(a.to_string()).addr(b.to_string());
    match Client::connect(config).await {
        Err(e @ Error::AllFailed(_)) => {
            let Error::AllFailed(failures) = &e else {
                unreachable!()
            };
            assert_eq!(failures.len(), 2);
            for (_, f) in failures {
                assert!(
                    matches!(f, Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused),
                    "{f}"
                );
            }
            let text = e.to_string();
            assert!(text.contains("all 2 servers failed"), "{text}");
            assert!(
                text.contains(&a.to_string()) && text.contains(&b.to_string()),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_losing_attempt_is_cancelled() {
    let server = TestServer::start(server_config()).await;
    // A server that accepts and never answers: its attempt could only time out.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config =
        Config::new(silent.local_addr().unwrap().to_string()).addr(server.tcp.to_string());
    config.connect_timeout = Duration::from_secs(60);
    let connecting = tokio::spawn(Client::connect(config));
    let (mut loser, _) = silent.accept().await.unwrap();
    let (client, _events) = tokio::time::timeout(LIMIT, connecting)
        .await
        .expect("the working server wins without waiting for the silent one")
        .unwrap()
        .expect("connect");
    // The silent server's connection was dropped: it reads the client's hello, then the end.
    let mut rest = Vec::new();
    tokio::time::timeout(LIMIT, loser.read_to_end(&mut rest))
        .await
        .expect("the losing connection is closed")
        .unwrap();
    client.close().await;
    assert!(server.shutdown().await.drained);
}
