//! Reconnection: the connection is cut from under the client by a proxy, and the SDK
//! reconnects, presents its resume token and takes its seat back, with the events
//! stream going on; or reports that it could not.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{
    client_config, input, join_arena, next_matching, server_config, state_applying, Proxy,
    TestServer,
};
use rally_client::{Client, ErrorCode, Event, Transport};

async fn resumes_after_a_drop(transport: Transport) {
    let server = TestServer::start(server_config()).await;
    let proxy = Proxy::start(common::addr(&server, transport)).await;
    let (client, mut events) = Client::connect(client_config(proxy.addr, transport))
        .await
        .expect("connect");
    let first = client.welcome();
    let room = join_arena(&client).await;
    client.send_input(1, &input(0.5, 0.5)).unwrap();
    let (tick_before, _) = state_applying(&mut events, 1).await;

    proxy.cut();
    let cause = next_matching(&mut events, "the drop", |e| match e {
        Event::Disconnected(cause) => Some(cause.clone()),
        _ => None,
    })
    .await;
    assert!(
        cause.is_retryable() || matches!(cause, rally_client::Error::PeerClosed),
        "{cause}"
    );
    let second = next_matching(&mut events, "the reconnection", |e| match e {
        Event::Reconnected(w) => Some(w.clone()),
        Event::Closed(e) => panic!("gave up: {e:?}"),
        _ => None,
    })
    .await;
    assert_ne!(second.session_id, first.session_id, "a new session");
    assert_ne!(second.resume_token, first.resume_token, "a new token");
    let resumed = next_matching(&mut events, "the seat back", |e| match e {
        Event::Resumed(room) => Some(room.clone()),
        Event::ResumeFailed(e) => panic!("resume failed: {e}"),
        _ => None,
    })
    .await;
    assert_eq!(resumed, room, "same room, same player id");
    assert_eq!(client.room(), Some(room.clone()));
    assert_eq!(client.welcome(), second);
    assert_eq!(proxy.accepted.load(Ordering::SeqCst), 2);

    // States flow again on the same stream, the room's ticks going on, and the room
    // still applies this player's inputs where they left off.
    let (tick_after, _) = state_applying(&mut events, 1).await;
    assert!(tick_after > tick_before);
    client.send_input(2, &input(0.0, 0.0)).unwrap();
    state_applying(&mut events, 2).await;
    assert_eq!(server.handle.rooms(), 1);

    client.close().await;
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn tcp_resumes_into_the_same_room_after_a_drop() {
    resumes_after_a_drop(Transport::Tcp).await;
}

#[tokio::test]
async fn websocket_resumes_into_the_same_room_after_a_drop() {
    resumes_after_a_drop(Transport::WebSocket).await;
}

#[tokio::test]
async fn an_expired_seat_is_reported_as_resume_failed() {
    let mut config = server_config();
    config.reconnect_grace_ms = 0;
    let server = TestServer::start(config).await;
    let proxy = Proxy::start(server.tcp).await;
    let (client, mut events) = Client::connect(client_config(proxy.addr, Transport::Tcp))
        .await
        .expect("connect");
    join_arena(&client).await;
    // Hold the reconnection until the server has freed the seat, so the token is stale.
    proxy.set_open(false);
    proxy.cut();
    common::eventually("the seat is freed", || server.handle.rooms() == 0).await;
    proxy.set_open(true);
    let failure = next_matching(&mut events, "the resume failure", |e| match e {
        Event::ResumeFailed(e) => Some(e.clone()),
        Event::Resumed(room) => panic!("resumed an expired seat: {room:?}"),
        Event::Closed(e) => panic!("gave up: {e:?}"),
        _ => None,
    })
    .await;
    assert_eq!(failure.code(), Some(ErrorCode::ResumeFailed));
    assert_eq!(client.room(), None);
    // The new session is usable: join again.
    join_arena(&client).await;
    client.close().await;
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn a_drop_outside_a_room_reconnects_without_a_token() {
    let server = TestServer::start(server_config()).await;
    let proxy = Proxy::start(server.tcp).await;
    let (client, mut events) = Client::connect(client_config(proxy.addr, Transport::Tcp))
        .await
        .expect("connect");
    proxy.cut();
    next_matching(&mut events, "the reconnection", |e| match e {
        Event::Reconnected(_) => Some(()),
        Event::Closed(e) => panic!("gave up: {e:?}"),
        _ => None,
    })
    .await;
    // Nothing to resume, so no resume verdict either; a ping proves the new session.
    client.ping().await.expect("pong");
    join_arena(&client).await;
    let mut seen = Vec::new();
    while let Ok(Some(e)) =
        tokio::time::timeout(Duration::ZERO, futures_util::StreamExt::next(&mut events)).await
    {
        seen.push(e);
    }
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, Event::ResumeFailed(_) | Event::Resumed(_))),
        "{seen:?}"
    );
    client.close().await;
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn an_idle_client_keeps_its_session_alive() {
    let mut config = server_config();
    config.timeout_ms = 600;
    let server = TestServer::start(config).await;
    let (client, mut events) = common::connect(server.tcp, Transport::Tcp).await;
    let session = client.welcome().session_id;
    // Idle for more than twice the server's timeout: the SDK's pings keep it open.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client.ping().await.expect("pong");
    assert_eq!(client.welcome().session_id, session);
    if let Ok(Some(e)) =
        tokio::time::timeout(Duration::ZERO, futures_util::StreamExt::next(&mut events)).await
    {
        panic!("nothing should have happened: {e:?}");
    }
    client.close().await;
    assert!(server.shutdown().await.drained);
}

/// With logins required: the client logs in, plays, loses its connection, and the
/// reconnection's `hello` carries the session token, so the seat (bound to the account)
/// comes back without another login.
#[tokio::test]
async fn a_logged_in_client_resumes_as_its_account() {
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
    let proxy = Proxy::start(common::addr(&server, Transport::Tcp)).await;
    let (client, mut events) = Client::connect(client_config(proxy.addr, Transport::Tcp))
        .await
        .expect("connect");
    match client.join(arena::KIND).await {
        Err(rally_client::Error::Server { code, .. }) => {
            assert_eq!(code, ErrorCode::Unauthorized)
        }
        other => panic!("a join before logging in: {other:?}"),
    }
    let session = client
        .login_device("sdk-resume-test-device")
        .await
        .expect("login");
    assert!(session.account_id > 0);
    let room = join_arena(&client).await;
    client.send_input(1, &input(0.5, 0.5)).unwrap();
    state_applying(&mut events, 1).await;

    proxy.cut();
    let second = next_matching(&mut events, "the reconnection", |e| match e {
        Event::Reconnected(w) => Some(w.clone()),
        Event::Closed(e) => panic!("gave up: {e:?}"),
        _ => None,
    })
    .await;
    assert_eq!(
        second.account_id, session.account_id,
        "logged in by the token"
    );
    let resumed = next_matching(&mut events, "the seat back", |e| match e {
        Event::Resumed(room) => Some(room.clone()),
        Event::ResumeFailed(e) => panic!("resume failed: {e}"),
        Event::Error(e) => panic!("{e}"),
        _ => None,
    })
    .await;
    assert_eq!(resumed, room);
    client.send_input(2, &input(0.0, 0.0)).unwrap();
    state_applying(&mut events, 2).await;
    client.close().await;
    assert!(server.shutdown().await.drained);
}
