//! Rooms over the wire: arena players see each other move, TCP and WebSocket players
//! share a room, chat, join-or-create, disposal, a turn-based game that ends.

mod common;

use common::{config, eventually, Client, TestServer};
use rally_server::protocol::{msgpack, ClientMessage, ErrorCode, ServerMessage};

/// Receives states until `f` accepts the decoded arena players; returns what `f` returned.
async fn until_state<T>(
    c: &mut Client,
    mut f: impl FnMut(u32, &[arena::PlayerState]) -> Option<T>,
) -> T {
    c.expect("a matching state", |m| match m {
        ServerMessage::State {
            last_seq, payload, ..
        } => {
            let players = arena::decode_state(payload).expect("arena state");
            f(*last_seq, &players)
        }
        _ => None,
    })
    .await
}

fn find(players: &[arena::PlayerState], id: u32) -> Option<arena::PlayerState> {
    players.iter().copied().find(|p| p.id == id)
}

async fn see_each_other_move(mut a: Client, mut b: Client) {
    let (room_a, pa) = a.join("arena").await;
    let (room_b, pb) = b.join("arena").await;
    assert_eq!(room_a, room_b, "join-or-create puts both in one room");
    assert_ne!(pa, pb);

    let start_a = until_state(&mut b, |_, ps| find(ps, pa)).await;
    let start_b = until_state(&mut a, |_, ps| find(ps, pb)).await;
    // A moves right, B moves down; each keeps sending at 20 Hz like a real client.
    let (dx_a, dy_b) = (
        if start_a.x < 500.0 { 1.0 } else { -1.0 },
        if start_b.y < 500.0 { 1.0 } else { -1.0 },
    );
    for seq in 1..=5 {
        a.input(seq, dx_a, 0.0).await;
        b.input(seq, 0.0, dy_b).await;
    }
    // B sees A move and sees A's last processed seq; A's own header echoes its seq.
    let moved_a = until_state(&mut b, |_, ps| {
        find(ps, pa).filter(|p| (p.x - start_a.x).abs() > 1.0 && p.last_seq == 5)
    })
    .await;
    assert_eq!(moved_a.y, start_a.y);
    let moved_b = until_state(&mut a, |seq, ps| {
        (seq == 5).then_some(())?;
        find(ps, pb).filter(|p| (p.y - start_b.y).abs() > 1.0)
    })
    .await;
    assert_eq!(moved_b.x, start_b.x);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn two_tcp_players_see_each_other_move() {
    let server = TestServer::start(config()).await;
    let (a, _) = Client::tcp_hello(server.tcp).await;
    let (b, _) = Client::tcp_hello(server.tcp).await;
    see_each_other_move(a, b).await;
    eventually("the empty room is disposed", || server.handle.rooms() == 0).await;
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn a_tcp_player_and_a_websocket_player_share_a_room() {
    let server = TestServer::start(config()).await;
    let (a, _) = Client::tcp_hello(server.tcp).await;
    let (b, _) = Client::ws_hello(server.ws).await;
    see_each_other_move(a, b).await;
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn chat_reaches_everyone_in_the_room() {
    let server = TestServer::start(config()).await;
    let (mut a, _) = Client::tcp_hello(server.tcp).await;
    let (mut b, _) = Client::ws_hello(server.ws).await;
    let (room, pa) = a.join("arena").await;
    b.join("arena").await;
    a.send(&ClientMessage::Chat { req: 7, text: "gg" }).await;
    for c in [&mut a, &mut b] {
        let line = c
            .expect("chat", |m| match m {
                ServerMessage::ChatLine {
                    room_id,
                    player_id,
                    name,
                    text,
                } => Some((*room_id, *player_id, name.clone(), text.clone())),
                _ => None,
            })
            .await;
        assert_eq!(line, (room, pa, "test".to_owned(), "gg".to_owned()));
    }
    a.expect("ok", |m| {
        matches!(m, ServerMessage::Ok { req: 7 }).then_some(())
    })
    .await;
    // Invalid chat is refused, and the connection stays.
    a.send(&ClientMessage::Chat {
        req: 8,
        text: &"y".repeat(300),
    })
    .await;
    assert_eq!(a.expect_error().await.0, ErrorCode::InvalidArgument);
    a.send(&ClientMessage::Chat { req: 9, text: "  " }).await;
    assert_eq!(a.expect_error().await.0, ErrorCode::InvalidArgument);
    a.close().await;
    b.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn room_errors_are_reported_and_not_fatal() {
    let server = TestServer::start(config()).await;
    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    c.input(1, 1.0, 0.0).await;
    assert_eq!(
        c.expect_error().await,
        (
            ErrorCode::NotInRoom,
            "input sent while not in a room".into(),
            0
        )
    );
    c.send(&ClientMessage::Chat { req: 2, text: "hi" }).await;
    assert_eq!(c.expect_error().await.0, ErrorCode::NotInRoom);
    c.send(&ClientMessage::Join {
        req: 3,
        kind: "chess",
    })
    .await;
    let (code, message, req) = c.expect_error().await;
    assert_eq!((code, req), (ErrorCode::UnknownRoomKind, 3));
    assert!(
        message.contains("arena"),
        "the error lists what is offered: {message}"
    );
    c.send(&ClientMessage::Join {
        req: 0,
        kind: "arena",
    })
    .await;
    assert_eq!(
        c.expect_closed().await,
        Some(ErrorCode::BadMessage),
        "request id 0 is malformed"
    );

    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    let (room, _) = c.join("arena").await;
    c.send(&ClientMessage::Join {
        req: 4,
        kind: "arena",
    })
    .await;
    assert_eq!(c.expect_error().await.0, ErrorCode::AlreadyInRoom);
    // An input the game refuses.
    c.send(&ClientMessage::Input {
        seq: 1,
        payload: &[0xa1, b'x'],
    })
    .await;
    assert_eq!(c.expect_error().await.0, ErrorCode::InputRejected);
    c.send(&ClientMessage::Leave { req: 5 }).await;
    let left = c
        .expect("left", |m| {
            matches!(m, ServerMessage::Left { .. }).then(|| m.clone())
        })
        .await;
    assert_eq!(
        left,
        ServerMessage::Left {
            req: 5,
            room_id: room
        }
    );
    c.send(&ClientMessage::Leave { req: 6 }).await;
    assert_eq!(
        c.expect_error().await,
        (ErrorCode::NotInRoom, "not in a room".into(), 6)
    );
    eventually("the empty room is disposed", || server.handle.rooms() == 0).await;
    c.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_full_arena_opens_a_second_room() {
    let server = TestServer::start(config()).await;
    let mut clients = Vec::new();
    let mut rooms = Vec::new();
    for _ in 0..arena::MAX_PLAYERS + 1 {
        let (mut c, _) = Client::tcp_hello(server.tcp).await;
        rooms.push(c.join("arena").await.0);
        clients.push(c);
    }
    assert!(rooms[..arena::MAX_PLAYERS].iter().all(|r| *r == rooms[0]));
    assert_ne!(rooms[arena::MAX_PLAYERS], rooms[0]);
    assert_eq!(server.handle.rooms(), 2);
    // The 16th player's state lists all 16.
    let n = until_state(&mut clients[arena::MAX_PLAYERS - 1], |_, ps| {
        (ps.len() == 16).then_some(ps.len())
    })
    .await;
    assert_eq!(n, 16);
    for c in clients {
        c.close().await;
    }
    eventually("both rooms are disposed", || server.handle.rooms() == 0).await;
    server.shutdown().await;
}

fn cell(i: u64) -> Vec<u8> {
    let mut v = Vec::new();
    msgpack::write_uint(&mut v, i);
    v
}

/// Reads tic-tac-toe views until one has this board; returns the result field.
async fn until_board(c: &mut Client, board: &str) -> String {
    c.expect("a board", |m| {
        let ServerMessage::State { payload, .. } = m else {
            return None;
        };
        let mut r = msgpack::Reader::new(payload);
        let n = r.read_map_len().ok()?;
        let (mut b, mut result) = (String::new(), String::new());
        for _ in 0..n {
            match r.read_str().ok()? {
                "board" => b = r.read_str().ok()?.to_owned(),
                "result" => result = r.read_str().ok()?.to_owned(),
                _ => r.skip_value().ok()?,
            }
        }
        (b == board).then_some(result)
    })
    .await
}

#[tokio::test]
async fn tictactoe_plays_to_a_win_and_the_room_closes() {
    let server = TestServer::start(config()).await;
    let (mut x, _) = Client::tcp_hello(server.tcp).await;
    let (mut o, _) = Client::ws_hello(server.ws).await;
    let (room, _) = x.join("tictactoe").await;
    assert_eq!(o.join("tictactoe").await.0, room);
    // O may not move first.
    o.send(&ClientMessage::Input {
        seq: 1,
        payload: &cell(4),
    })
    .await;
    assert_eq!(o.expect_error().await.0, ErrorCode::InputRejected);
    let moves = [
        (0u64, "X........"),
        (3, "X..O....."),
        (1, "XX.O....."),
        (4, "XX.OO...."),
    ];
    for (i, (c, board)) in moves.iter().enumerate() {
        let player = if i % 2 == 0 { &mut x } else { &mut o };
        player
            .send(&ClientMessage::Input {
                seq: i as u32 + 2,
                payload: &cell(*c),
            })
            .await;
        assert_eq!(until_board(&mut x, board).await, "playing");
    }
    x.send(&ClientMessage::Input {
        seq: 10,
        payload: &cell(2),
    })
    .await;
    assert_eq!(until_board(&mut o, "XXXOO....").await, "x_won");
    let closed = o
        .expect("room closed", |m| {
            matches!(m, ServerMessage::RoomClosed { .. }).then(|| m.clone())
        })
        .await;
    assert_eq!(
        closed,
        ServerMessage::RoomClosed {
            room_id: room,
            reason: "the game is over".into()
        }
    );
    eventually("the finished room is gone", || server.handle.rooms() == 0).await;
    // The players can start a new match.
    let (room2, _) = x.join("tictactoe").await;
    assert_ne!(room2, room);
    x.close().await;
    o.close().await;
    server.shutdown().await;
}
