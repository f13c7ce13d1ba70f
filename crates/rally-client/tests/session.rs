//! A session against a real server: connect, join, inputs and states, chat, leave, ping,
//! close, over raw TCP and WebSocket; and a full server refusing without a retry.

mod common;

use common::{client_config, Proxy, TestServer, LIMIT};
use common::{connect, input, join_arena, next_matching, server_config, state_applying};
use rally_client::{Client, Error, ErrorCode, Event, Transport};
use std::sync::atomic::Ordering;

async fn play(transport: Transport) {
    let server = TestServer::start(server_config()).await;
    let (client, mut events) = connect(common::addr(&server, transport), transport).await;
    let welcome = client.welcome();
    assert_eq!(welcome.version, 1);
    assert_eq!(welcome.tick_hz, 20);
    assert!(!welcome.resume_token.expose().is_empty());
    assert!(
        !format!("{welcome:?}").contains(welcome.resume_token.expose().as_str()),
        "the token stays out of logs"
    );
    let room = join_arena(&client).await;

    // Steer towards the centre and watch the room apply the inputs and the player move.
    let me = |payload: &[u8]| {
        arena::decode_state(payload)
            .expect("an arena state")
            .into_iter()
            .find(|p| p.id == room.player_id)
            .expect("this player is in the state")
    };
    let (_, payload) = state_applying(&mut events, 0).await;
    let start = me(&payload);
    let (dx, dy) = ((500.0 - start.x).signum(), (500.0 - start.y).signum());
    client.send_input(1, &input(dx, dy)).unwrap();
    let (tick1, payload) = state_applying(&mut events, 1).await;
    let before = me(&payload);
    assert_eq!(before.last_seq, 1);
    client.send_input(2, &input(0.0, 0.0)).unwrap();
    let (tick2, payload) = state_applying(&mut events, 2).await;
    let after = me(&payload);
    assert!(tick2 > tick1);
    assert!(
        (after.x - start.x) * dx > 0.0 && (after.y - start.y) * dy > 0.0,
        "{start:?} -> {after:?}"
    );

    // Refused locally, before they could cost the connection.
    assert!(matches!(
        client.send_input(3, &[0x92, 0x01]),
        Err(Error::InvalidPayload)
    ));
    let huge = rally_protocol_str(5000);
    assert!(matches!(
        client.send_input(3, &huge),
        Err(Error::TooLarge { max: 4096, .. })
    ));

    let rtt = client.ping().await.expect("pong");
    assert!(rtt < LIMIT);

    client.close().await;
    let last = next_matching(&mut events, "the end", |e| match e {
        Event::Closed(error) => Some(error.clone()),
        _ => None,
    })
    .await;
    assert!(last.is_none(), "{last:?}");
    assert!(
        futures_util::StreamExt::next(&mut events).await.is_none(),
        "the stream ends after Closed"
    );
    // The close left the room, so the seat is not held and the room ends.
    common::eventually("the room ends", || server.handle.rooms() == 0).await;
    assert!(server.shutdown().await.drained);
}

/// A MessagePack str of `len` bytes: one valid value, too large for the server.
fn rally_protocol_str(len: usize) -> Vec<u8> {
    let mut v = vec![0xda, (len >> 8) as u8, len as u8];
    v.resize(3 + len, b'a');
    v
}

#[tokio::test]
async fn tcp_connect_join_inputs_states() {
    play(Transport::Tcp).await;
}

#[tokio::test]
async fn websocket_connect_join_inputs_states() {
    play(Transport::WebSocket).await;
}

#[tokio::test]
async fn chat_is_answered_and_heard() {
    let server = TestServer::start(server_config()).await;
    for transport in [Transport::Tcp, Transport::WebSocket] {
        let (client, mut events) = connect(common::addr(&server, transport), transport).await;
        // Outside a room, chat is refused with the server's code, not retried.
        match client.chat("anyone?").await {
            Err(Error::Server { code, .. }) => assert_eq!(code, ErrorCode::NotInRoom),
            other => panic!("{other:?}"),
        }
        let room = join_arena(&client).await;
        client.chat("hello room").await.expect("ok");
        let line = next_matching(&mut events, "the chat line", |e| match e {
            Event::Chat(line) => Some(line.clone()),
            _ => None,
        })
        .await;
        assert_eq!(line.text, "hello room");
        assert_eq!(line.name, "sdk-test");
        assert_eq!(
            (line.room_id, line.player_id),
            (room.room_id, room.player_id)
        );
        match client.chat("   ").await {
            Err(Error::Server { code, .. }) => assert_eq!(code, ErrorCode::InvalidArgument),
            other => panic!("{other:?}"),
        }
        client.close().await;
    }
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn leave_answers_with_the_room_and_states_stop() {
    let server = TestServer::start(server_config()).await;
    let (client, mut events) = connect(server.tcp, Transport::Tcp).await;
    let room = join_arena(&client).await;
    state_applying(&mut events, 0).await;
    assert_eq!(client.leave().await.expect("left"), room.room_id);
    assert_eq!(client.room(), None);
    // `left` comes after the room's last state: drop what came before it, then no state
    // may come any more.
    while let Ok(Some(_)) = tokio::time::timeout(
        std::time::Duration::ZERO,
        futures_util::StreamExt::next(&mut events),
    )
    .await
    {}
    client.ping().await.expect("pong");
    match client.leave().await {
        Err(Error::Server { code, .. }) => assert_eq!(code, ErrorCode::NotInRoom),
        other => panic!("{other:?}"),
    }
    match client.send_input(1, &input(1.0, 0.0)) {
        Ok(()) => {}
        other => panic!("inputs are not checked locally against the room: {other:?}"),
    }
    let e = next_matching(&mut events, "NOT_IN_ROOM for the input", |e| match e {
        Event::Error(e) => Some(e.clone()),
        Event::State(_) => panic!("a state after left"),
        _ => None,
    })
    .await;
    assert_eq!(e.code(), Some(ErrorCode::NotInRoom));
    client.close().await;
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn a_full_server_refuses_with_server_full_and_no_retry() {
    let mut config = server_config();
    config.concurrency_limit = 1;
    let server = TestServer::start(config).await;
    for transport in [Transport::Tcp, Transport::WebSocket] {
        let (first, _events) = connect(common::addr(&server, transport), transport).await;
        // Through a proxy that counts the connections the client opens.
        let proxy = Proxy::start(common::addr(&server, transport)).await;
        let refused = Client::connect(client_config(proxy.addr, transport)).await;
        match refused {
            Err(Error::Server { code, .. }) => assert_eq!(code, ErrorCode::ServerFull),
            other => panic!("{transport:?}: {other:?}"),
        }
        assert_eq!(
            proxy.accepted.load(Ordering::SeqCst),
            1,
            "{transport:?}: one attempt only"
        );
        first.close().await;
        common::eventually("the slot is free", || server.handle.sessions() == 0).await;
    }
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn server_shutdown_ends_the_stream_without_reconnecting() {
    let mut server = TestServer::start(server_config()).await;
    let (client, mut events) = connect(server.tcp, Transport::Tcp).await;
    join_arena(&client).await;
    server.begin_shutdown();
    let after = next_matching(&mut events, "shutdown", |e| match e {
        Event::Shutdown {
            reconnect_after, ..
        } => Some(*reconnect_after),
        _ => None,
    })
    .await;
    assert!(after > std::time::Duration::ZERO);
    let last = next_matching(&mut events, "the end", |e| match e {
        Event::Closed(error) => Some(error.clone()),
        other @ (Event::Disconnected(_) | Event::Reconnected(_)) => {
            panic!("no reconnection after a shutdown: {other:?}")
        }
        _ => None,
    })
    .await;
    assert!(last.is_none(), "{last:?}");
    assert!(matches!(client.join("arena").await, Err(Error::Closed)));
    let report = tokio::time::timeout(LIMIT, server.task)
        .await
        .unwrap()
        .unwrap();
    assert!(report.drained, "the client closed within the grace");
}
