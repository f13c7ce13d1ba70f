//! The rating queue from the SDK against a real server: two clients are matched into one
//! tic-tac-toe room (`Event::Matched`), a party of two moves from its arena room to its
//! match (`Event::Left`, then `Event::Matched`), a `Connection` sees `Message::Matched`,
//! and `leave_queue` and its refusals.

mod common;

use common::{client_config, connect, next_matching, server_config, TestServer};
use rally_client::{Connection, ErrorCode, Event, Message, Transport};

#[tokio::test]
async fn two_clients_are_matched_and_a_party_moves_together() {
    let server = TestServer::start(server_config()).await;
    let (ada, mut ada_events) = connect(server.tcp, Transport::Tcp).await;
    let (bob, mut bob_events) = connect(server.ws, Transport::WebSocket).await;
    ada.queue("tictactoe", &[], 1500.0, false)
        .await
        .expect("queue");
    let again = ada.queue("tictactoe", &[], 1500.0, false).await;
    assert_eq!(again.unwrap_err().code(), Some(ErrorCode::AlreadyQueued));
    bob.queue("tictactoe", &[], 1480.0, false)
        .await
        .expect("queue");
    let matched = |e: &Event| match e {
        Event::Matched(room) => Some(room.clone()),
        Event::Resumed(_) => panic!("a match taken for a resume"),
        _ => None,
    };
    let a = next_matching(&mut ada_events, "ada's match", matched).await;
    let b = next_matching(&mut bob_events, "bob's match", matched).await;
    assert_eq!(a.room_id, b.room_id);
    assert_eq!(ada.room().map(|r| r.room_id), Some(a.room_id));
    assert_eq!(
        ada.leave_queue().await.unwrap_err().code(),
        Some(ErrorCode::NotInQueue)
    );

    // A party of two in an arena room queues for arena (four a match) with two solos.
    let (cy, mut cy_events) = connect(server.tcp, Transport::Tcp).await;
    let (di, mut di_events) = connect(server.tcp, Transport::Tcp).await;
    let lobby = cy.create("arena", &[], true).await.expect("create");
    di.join_by_code(&lobby.code).await.expect("join by code");
    cy.queue("arena", &[], 1000.0, true)
        .await
        .expect("party queue");
    let mut solos = Vec::new();
    for rating in [990.0, 1010.0] {
        let (c, events) = connect(server.ws, Transport::WebSocket).await;
        c.queue("arena", &[], rating, false).await.expect("queue");
        solos.push((c, events));
    }
    let mut rooms = Vec::new();
    for events in [&mut cy_events, &mut di_events] {
        let left = next_matching(events, "left for the match", |e| match e {
            Event::Left { room_id } => Some(*room_id),
            Event::Matched(_) => panic!("matched before left"),
            _ => None,
        })
        .await;
        assert_eq!(left, lobby.room_id);
        rooms.push(next_matching(events, "the party's match", matched).await);
    }
    for (_, events) in &mut solos {
        rooms.push(next_matching(events, "a solo's match", matched).await);
    }
    assert!(rooms.iter().all(|r| r.room_id == rooms[0].room_id));
    assert_ne!(rooms[0].room_id, lobby.room_id);
    assert_eq!(cy.room().map(|r| r.room_id), Some(rooms[0].room_id));

    for c in [ada, bob, cy, di] {
        c.close().await;
    }
    for (c, _) in solos {
        c.close().await;
    }
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn a_connection_sees_its_match_as_a_message() {
    let server = TestServer::start(server_config()).await;
    let mut a = Connection::connect(&client_config(server.tcp, Transport::Tcp))
        .await
        .expect("connect");
    let mut b = Connection::connect(&client_config(server.ws, Transport::WebSocket))
        .await
        .expect("connect");
    a.queue("tictactoe", &[], 7.5, false).await.expect("queue");
    a.leave_queue().await.expect("leave_queue");
    a.queue("tictactoe", &[], 7.5, false).await.expect("queue");
    b.queue("tictactoe", &[], 8.0, false).await.expect("queue");
    let mut rooms = Vec::new();
    for c in [&mut a, &mut b] {
        let room = tokio::time::timeout(common::LIMIT, async {
            loop {
                if let Message::Matched(room) = c.recv().await.expect("recv") {
                    return room;
                }
            }
        })
        .await
        .expect("a match within the limit");
        rooms.push(room);
    }
    assert_eq!(rooms[0].room_id, rooms[1].room_id);
    assert_eq!(a.room().map(|r| r.room_id), Some(rooms[0].room_id));
    a.close().await.expect("close");
    b.close().await.expect("close");
    assert!(server.shutdown().await.drained);
}
