//! A seated player's socket is read by its room at each tick (the session lends its
//! reads while it has only inputs to read): everything a client sends while seated is
//! still handled, in order, whatever arrives together in one read; the reads come back
//! to the session when the player leaves, is displaced or the room ends.

mod common;

use common::{admin_config, close_room, config, Client, TestServer};
use rally_server::protocol::{frame, ClientMessage, ServerMessage};

/// One framed TCP message.
fn framed(msg: &ClientMessage<'_>) -> Vec<u8> {
    let mut body = Vec::new();
    msg.encode(&mut body);
    let mut out = Vec::new();
    frame::encode(&body, &mut out);
    out
}

fn input(seq: u32) -> Vec<u8> {
    let mut payload = Vec::new();
    arena::encode_input(&mut payload, 1.0, 0.0);
    framed(&ClientMessage::Input {
        seq,
        payload: &payload,
    })
}

/// Waits for this player's last processed seq to reach `seq`.
async fn until_seq(c: &mut Client, seq: u32) {
    c.expect("my seq", |m| match m {
        ServerMessage::State { last_seq, .. } => (*last_seq >= seq).then_some(()),
        _ => None,
    })
    .await
}

async fn pong(c: &mut Client, nonce: u64) {
    c.expect("pong", |m| match m {
        ServerMessage::Pong { nonce: n } => (*n == nonce).then_some(()),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn everything_a_seated_player_sends_in_one_write_is_handled_in_order() {
    let server = TestServer::start(config()).await;
    let (mut a, _) = Client::tcp_hello(server.tcp).await;
    let (room, _) = a.join("arena").await;

    // Three inputs in one segment: the room takes all three at one tick.
    let batch: Vec<u8> = (1..=3).flat_map(input).collect();
    a.send_bytes(&batch).await;
    until_seq(&mut a, 3).await;

    // An input, a ping, an input, a chat request and an input, in one write: the room
    // takes the first input, gives the rest back at the ping, and the session handles
    // them in order (the chat's `ok` after the pong, every input applied).
    let mut mixed = input(4);
    mixed.extend(framed(&ClientMessage::Ping { nonce: 7 }));
    mixed.extend(input(5));
    mixed.extend(framed(&ClientMessage::Chat { req: 9, text: "hi" }));
    mixed.extend(input(6));
    a.send_bytes(&mixed).await;
    pong(&mut a, 7).await;
    a.expect("the chat's ok", |m| match m {
        ServerMessage::Ok { req: 9 } => Some(()),
        _ => None,
    })
    .await;
    until_seq(&mut a, 6).await;

    // A frame split over two writes a tick apart: the room gives back the first half,
    // the session completes it and lends the reads again.
    let split = input(7);
    a.send_bytes(&split[..3]).await;
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    a.send_bytes(&split[3..]).await;
    until_seq(&mut a, 7).await;
    a.send_bytes(&input(8)).await;
    until_seq(&mut a, 8).await;

    // Leaving takes the reads back: the lobby session still answers at once.
    a.send(&ClientMessage::Leave { req: 10 }).await;
    a.expect("left", |m| match m {
        ServerMessage::Left { req: 10, room_id } => (*room_id == room).then_some(()),
        _ => None,
    })
    .await;
    a.send(&ClientMessage::Ping { nonce: 11 }).await;
    pong(&mut a, 11).await;

    // And seated again, it plays on.
    a.join("arena").await;
    a.send_bytes(&input(20)).await;
    until_seq(&mut a, 20).await;
}

#[tokio::test]
async fn a_seated_websocket_player_is_answered_and_plays() {
    let server = TestServer::start(config()).await;
    let (mut a, _) = Client::ws_hello(server.ws).await;
    a.join("arena").await;
    for seq in 1..=5 {
        a.input(seq, 0.0, 1.0).await;
    }
    a.send(&ClientMessage::Ping { nonce: 3 }).await;
    pong(&mut a, 3).await;
    a.input(6, 0.0, 1.0).await;
    until_seq(&mut a, 6).await;
}

#[tokio::test]
async fn a_player_whose_room_closed_is_read_again() {
    let server = TestServer::start(admin_config()).await;
    let (mut a, _) = Client::tcp_hello(server.tcp).await;
    let (room, _) = a.join("arena").await;
    a.send_bytes(&input(1)).await;
    until_seq(&mut a, 1).await;
    // The operator closes the room: the room gives the reads back as it ends.
    let reply = close_room(server.admin, room).await;
    assert_eq!(reply.status, 200);
    a.expect("room_closed", |m| match m {
        ServerMessage::RoomClosed { room_id, .. } => (*room_id == room).then_some(()),
        _ => None,
    })
    .await;
    a.send(&ClientMessage::Ping { nonce: 5 }).await;
    pong(&mut a, 5).await;
}
