//! Reconnection: a player whose connection drops keeps its seat for
//! `reconnect_grace_ms` and takes it back, same room and player id, by presenting the
//! resume token of its last `welcome`; after the grace the seat is freed.

mod common;

use std::time::Duration;

use common::{config, eventually, Client, TestServer};
use rally_server::protocol::{ClientMessage, ErrorCode, ServerMessage};

fn with_grace(ms: u64) -> rally_server::Config {
    let mut c = config();
    c.reconnect_grace_ms = ms;
    c
}

/// Waits for a state listing (or, with `present = false`, not listing) player `id`.
async fn until_listed(c: &mut Client, id: u32, present: bool) {
    c.expect("a state", |m| match m {
        ServerMessage::State { payload, .. } => {
            let ps = arena::decode_state(payload).expect("arena state");
            (ps.iter().any(|p| p.id == id) == present).then_some(())
        }
        _ => None,
    })
    .await
}

/// Waits for this player's own last processed seq to reach `seq`.
async fn until_seq(c: &mut Client, seq: u32) {
    c.expect("my seq", |m| match m {
        ServerMessage::State { last_seq, .. } => (*last_seq >= seq).then_some(()),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn a_dropped_player_resumes_its_seat() {
    let server = TestServer::start(with_grace(10_000)).await;
    let mut a = Client::tcp(server.tcp).await;
    let (_, token) = a.hello_with(None).await;
    assert_eq!(token.len(), 32, "128-bit hex token");
    let (room, pa) = a.join("arena").await;
    let (mut b, _) = Client::ws_hello(server.ws).await;
    assert_eq!(b.join("arena").await.0, room);
    for seq in 1..=3 {
        a.input(seq, 1.0, 0.0).await;
    }
    until_seq(&mut a, 3).await;

    drop(a); // the connection drops, no leave
    eventually("the session is gone", || server.handle.sessions() == 1).await;
    until_listed(&mut b, pa, true).await; // the seat is held

    let mut again = Client::tcp(server.tcp).await;
    let (_, new_token) = again.hello_with(Some(&token)).await;
    assert_ne!(new_token, token, "each welcome brings a fresh token");
    let (room2, pa2) = again
        .expect("joined", |m| match m {
            ServerMessage::Joined {
                req: 0,
                room_id,
                player_id,
                ..
            } => Some((*room_id, *player_id)),
            _ => None,
        })
        .await;
    assert_eq!((room2, pa2), (room, pa), "same room, same player id");
    until_seq(&mut again, 3).await; // the processed seq survived the drop
    again.input(4, -1.0, 0.0).await;
    until_seq(&mut again, 4).await;

    // The old token no longer works: it was replaced by the new session's.
    let mut thief = Client::tcp(server.tcp).await;
    thief.hello_with(Some(&token)).await;
    let (code, _, req) = thief.expect_error().await;
    assert_eq!((code, req), (ErrorCode::ResumeFailed, 0));
    thief.close().await;
    again.close().await;
    b.close().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_seat_is_freed_after_the_grace() {
    let server = TestServer::start(with_grace(500)).await;
    let mut a = Client::tcp(server.tcp).await;
    let (_, token) = a.hello_with(None).await;
    let (_, pa) = a.join("arena").await;
    let (mut b, _) = Client::tcp_hello(server.tcp).await;
    b.join("arena").await;
    until_listed(&mut b, pa, true).await;
    drop(a);
    let dropped = tokio::time::Instant::now();
    until_listed(&mut b, pa, false).await;
    let freed_after = dropped.elapsed();
    assert!(freed_after >= Duration::from_millis(500), "{freed_after:?}");
    assert!(freed_after < Duration::from_millis(700), "{freed_after:?}");

    let mut late = Client::tcp(server.tcp).await;
    late.hello_with(Some(&token)).await;
    let (code, message, req) = late.expect_error().await;
    assert_eq!((code, req), (ErrorCode::ResumeFailed, 0), "{message}");
    // The late client is a fresh session and may join normally.
    let (_, p) = late.join("arena").await;
    assert_ne!(p, pa);
    late.close().await;
    b.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn leaving_on_purpose_frees_the_seat_at_once() {
    let server = TestServer::start(with_grace(60_000)).await;
    // A WebSocket close frame is a deliberate goodbye.
    let mut a = Client::ws(server.ws).await;
    let (_, token) = a.hello_with(None).await;
    let (room, _) = a.join("arena").await;
    a.close().await;
    eventually("the room is freed", || server.handle.rooms() == 0).await;
    let mut c = Client::tcp(server.tcp).await;
    c.hello_with(Some(&token)).await;
    assert_eq!(c.expect_error().await.0, ErrorCode::ResumeFailed);
    let _ = room;
    c.close().await;

    // So is `leave`.
    let mut d = Client::tcp(server.tcp).await;
    let (_, token_d) = d.hello_with(None).await;
    d.join("arena").await;
    d.send(&ClientMessage::Leave { req: 2 }).await;
    d.expect("left", |m| {
        matches!(m, ServerMessage::Left { .. }).then_some(())
    })
    .await;
    drop(d);
    let mut e = Client::tcp(server.tcp).await;
    e.hello_with(Some(&token_d)).await;
    assert_eq!(e.expect_error().await.0, ErrorCode::ResumeFailed);
    e.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_half_open_connection_loses_its_seat_to_the_resumed_one() {
    let server = TestServer::start(with_grace(10_000)).await;
    let mut old = Client::tcp(server.tcp).await;
    let (_, token) = old.hello_with(None).await;
    let (room, p) = old.join("arena").await;
    // The old connection is still open (the server has not noticed any drop).
    let mut new = Client::tcp(server.tcp).await;
    new.hello_with(Some(&token)).await;
    let joined = new
        .expect("joined", |m| match m {
            ServerMessage::Joined {
                room_id, player_id, ..
            } => Some((*room_id, *player_id)),
            _ => None,
        })
        .await;
    assert_eq!(joined, (room, p));
    let closed = old
        .expect("room closed", |m| match m {
            ServerMessage::RoomClosed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(closed.contains("resumed"), "{closed}");
    // The old connection's inputs no longer move the player.
    old.input(50, 1.0, 1.0).await;
    new.input(1, 1.0, 1.0).await;
    until_seq(&mut new, 1).await;
    let seq = new
        .expect("state", |m| match m {
            ServerMessage::State { last_seq, .. } => Some(*last_seq),
            _ => None,
        })
        .await;
    assert_eq!(seq, 1, "the old connection's seq 50 was ignored");
    old.close().await;
    new.close().await;
    server.shutdown().await;
}
