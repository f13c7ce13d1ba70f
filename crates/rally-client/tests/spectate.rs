//! Spectating through the SDK against a real server: `spectate` returns what is watched,
//! the room's states arrive as `Event::SpectatorState` with the player's payloads, and
//! `stop_spectating` ends it (a second stop is `NOT_SPECTATING`).

mod common;

use common::{server_config, TestServer, LIMIT};
use rally_client::{Client, Config, ErrorCode, Event};

#[tokio::test]
async fn a_client_watches_a_room_and_stops() {
    let server = TestServer::start(server_config()).await;
    let (player, mut player_events) = Client::connect(Config::new(server.tcp.to_string()))
        .await
        .expect("connect the player");
    let room = player.join("arena").await.expect("join");
    let (watcher, mut events) = Client::connect(Config::new(server.tcp.to_string()))
        .await
        .expect("connect the watcher");
    let watching = watcher.spectate(room.room_id).await.expect("spectate");
    assert_eq!(
        (watching.room_id, watching.kind.as_str()),
        (room.room_id, "arena")
    );
    let state = tokio::time::timeout(LIMIT, async {
        loop {
            match futures_util::StreamExt::next(&mut events).await {
                Some(Event::SpectatorState(s)) => return s,
                Some(_) => continue,
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("a spectator state in time");
    assert_eq!(state.room_id, room.room_id);
    // The player got the very same payload for that tick.
    let seen = tokio::time::timeout(LIMIT, async {
        loop {
            match futures_util::StreamExt::next(&mut player_events).await {
                Some(Event::State(s)) if s.tick == state.tick => return s,
                Some(_) => continue,
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("the player's state of that tick");
    assert_eq!(seen.payload, state.payload);
    watcher.stop_spectating().await.expect("stop");
    let again = watcher.stop_spectating().await.unwrap_err();
    assert_eq!(again.code(), Some(ErrorCode::NotSpectating));
    watcher.close().await;
    player.close().await;
    assert!(server.shutdown().await.drained);
}
