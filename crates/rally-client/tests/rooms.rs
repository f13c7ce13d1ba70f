//! The revision 2 room requests from the SDK against a real server: two friends meet by
//! code, a room by id, join-or-create with options, a listing, and the refusals.

mod common;

use common::{connect, server_config, TestServer};
use rally_client::{Error, ErrorCode, Transport};

/// `{"mode": <mode>}` as MessagePack.
fn mode(m: &str) -> Vec<u8> {
    let mut out = vec![0x81, 0xa4];
    out.extend_from_slice(b"mode");
    out.push(0xa0 | m.len() as u8);
    out.extend_from_slice(m.as_bytes());
    out
}

fn code_of(e: Error) -> Option<ErrorCode> {
    e.code()
}

#[tokio::test]
async fn two_friends_meet_by_code_and_strangers_find_public_rooms() {
    let server = TestServer::start(server_config()).await;
    let (ada, _ada_events) = connect(server.tcp, Transport::Tcp).await;
    let (bob, _bob_events) = connect(server.ws, Transport::WebSocket).await;
    assert!(ada.welcome().revision >= 2, "a revision-2 server at least");

    let room = ada.create("tictactoe", &[], true).await.expect("create");
    assert_eq!(room.code.len(), 6);
    assert_eq!(ada.room(), Some(room.clone()));
    let same = bob
        .join_by_code(&room.code.to_lowercase())
        .await
        .expect("join by code");
    assert_eq!(
        (same.room_id, same.code.as_str()),
        (room.room_id, room.code.as_str())
    );

    // A private room is not listed; a public speed arena is, with its mode.
    let (carol, _carol_events) = connect(server.tcp, Transport::Tcp).await;
    let page = carol
        .list_rooms("tictactoe", &[], 0, 10)
        .await
        .expect("list");
    assert_eq!((page.total, page.rooms.len()), (0, 0));
    let speed = carol
        .join_or_create("arena", &mode("speed"))
        .await
        .expect("join_or_create");
    let (dave, _dave_events) = connect(server.tcp, Transport::Tcp).await;
    let page = dave
        .list_rooms("arena", &mode("speed"), 0, 10)
        .await
        .expect("list");
    assert_eq!(page.total, 1);
    assert_eq!(page.rooms[0].room_id, speed.room_id);
    assert_eq!(page.rooms[0].metadata, mode("speed"));
    let joined = dave.join_by_id(speed.room_id).await.expect("join by id");
    assert_eq!(joined.room_id, speed.room_id);

    // Refusals come back as server errors with their codes.
    let (eve, _eve_events) = connect(server.tcp, Transport::Tcp).await;
    let e = eve.join_by_id(room.room_id).await.unwrap_err();
    assert_eq!(
        code_of(e),
        Some(ErrorCode::RoomLocked),
        "the match started and locked"
    );
    let e = eve.create("arena", &mode("warp"), false).await.unwrap_err();
    assert_eq!(code_of(e), Some(ErrorCode::BadOptions));
    let e = eve.join_by_code("ZZZZZZ").await.unwrap_err();
    assert_eq!(code_of(e), Some(ErrorCode::NoSuchRoom));
}
