//! Spectators over real sockets: a spectator of a live room gets `spectating`, then the
//! very states the players get, without a seat (the room's player count does not move);
//! `stop_spectating` ends the stream; a room that does not exist is `NO_SUCH_MATCH`. A
//! finished match watched from its recording comes through the same stream, with the
//! states its player saw, then `room_closed`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{admin_config, http, Client, TestServer, ADMIN_TOKEN};
use rally_server::protocol::{ClientMessage, ErrorCode, ServerMessage};

/// `spectating`'s room id, for request `req`.
async fn spectating(c: &mut Client, req: u32) -> u64 {
    c.expect("spectating", |m| match m {
        ServerMessage::Spectating {
            req: r, room_id, ..
        } if *r == req => Some(*room_id),
        ServerMessage::Error { code, message, .. } => panic!("spectate failed: {code} {message}"),
        _ => None,
    })
    .await
}

/// The next `n` spectator states: tick -> payload.
async fn spectator_states(c: &mut Client, n: usize) -> BTreeMap<u64, Vec<u8>> {
    let mut out = BTreeMap::new();
    while out.len() < n {
        let (tick, payload) = c
            .expect("a spectator state", |m| match m {
                ServerMessage::SpectatorState { tick, payload, .. } => {
                    Some((*tick, payload.to_vec()))
                }
                _ => None,
            })
            .await;
        out.insert(tick, payload);
    }
    out
}

#[tokio::test]
async fn a_spectator_sees_the_players_states_without_a_seat() {
    let server = TestServer::start(admin_config()).await;
    let (mut player, _) = Client::tcp_hello(server.tcp).await;
    let (room_id, _) = player.join("arena").await;
    let (mut watcher, _) = Client::ws_hello(server.ws).await;
    watcher
        .send(&ClientMessage::Spectate {
            req: 5,
            room_id,
            code: "",
        })
        .await;
    assert_eq!(spectating(&mut watcher, 5).await, room_id);

    // The player moves; both see the same states, tick for tick.
    let mut seen = BTreeMap::new();
    for seq in 1..=20 {
        player.input(seq, 1.0, -0.5).await;
        let (tick, payload) = player
            .expect("a state", |m| match m {
                ServerMessage::State { tick, payload, .. } => Some((*tick, payload.to_vec())),
                _ => None,
            })
            .await;
        seen.insert(tick, payload);
    }
    let watched = spectator_states(&mut watcher, 20).await;
    let common: Vec<u64> = watched
        .keys()
        .filter(|t| seen.contains_key(t))
        .copied()
        .collect();
    assert!(common.len() >= 15, "{} ticks seen by both", common.len());
    for t in common {
        assert_eq!(watched[&t], seen[&t], "tick {t}");
    }
    // Not a seat: the room still has one player.
    let rooms = http(server.admin, "GET", "/admin/rooms", Some(ADMIN_TOKEN), None).await;
    assert_eq!(rooms.json()["rooms"][0]["player_count"], 1);

    // Stop: `ok`, then no spectator state after what was already on its way.
    watcher
        .send(&ClientMessage::StopSpectating { req: 6 })
        .await;
    watcher
        .expect("ok", |m| {
            matches!(m, ServerMessage::Ok { req: 6 }).then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    watcher
        .send(&ClientMessage::StopSpectating { req: 7 })
        .await;
    let (code, _, req) = watcher.expect_error().await;
    assert_eq!((code, req), (ErrorCode::NotSpectating, 7));
    // Everything after the first reply: no state arrived between the two replies' ends.
    watcher.send(&ClientMessage::Ping { nonce: 9 }).await;
    loop {
        match watcher.recv().await {
            Some(ServerMessage::Pong { nonce: 9 }) => break,
            Some(ServerMessage::SpectatorState { .. }) => panic!("a state after stop_spectating"),
            Some(_) => {}
            None => panic!("closed"),
        }
    }

    watcher
        .send(&ClientMessage::Spectate {
            req: 8,
            room_id: room_id + 1_000,
            code: "",
        })
        .await;
    let (code, _, req) = watcher.expect_error().await;
    assert_eq!((code, req), (ErrorCode::NoSuchMatch, 8));
    watcher
        .send(&ClientMessage::Spectate {
            req: 9,
            room_id,
            code: "ABCDEF",
        })
        .await;
    let (code, _, _) = watcher.expect_error().await;
    assert_eq!(
        code,
        ErrorCode::NoSuchMatch,
        "no room codes on this server yet"
    );

    // The room ending ends the stream with `room_closed`.
    watcher
        .send(&ClientMessage::Spectate {
            req: 10,
            room_id,
            code: "",
        })
        .await;
    spectating(&mut watcher, 10).await;
    player.close().await;
    watcher
        .expect("room_closed", |m| match m {
            ServerMessage::RoomClosed { room_id: r, .. } if *r == room_id => Some(()),
            _ => None,
        })
        .await;
    watcher.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_finished_match_is_watched_from_its_recording() {
    let dir = std::env::temp_dir().join(rally_testkit::unique_name("rally-spectate-rec"));
    let mut cfg = admin_config();
    cfg.tick_hz = 50;
    cfg.recordings_dir = Some(dir.display().to_string());
    let server = TestServer::start(cfg).await;
    let (mut player, _) = Client::tcp_hello(server.tcp).await;
    player.join("arena").await;
    let mut seen = BTreeMap::new();
    for seq in 1..=25 {
        player.input(seq, -0.3, 0.8).await;
        let (tick, payload) = player
            .expect("a state", |m| match m {
                ServerMessage::State { tick, payload, .. } => Some((*tick, payload.to_vec())),
                _ => None,
            })
            .await;
        seen.insert(tick, payload);
    }
    player.close().await;
    // The listing shows the file once the match is written.
    let file = loop {
        let r = http(
            server.admin,
            "GET",
            "/admin/recordings",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
        let list = r.json()["recordings"].clone();
        if list[0]["complete"] == true {
            break list[0]["file"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (mut watcher, _) = Client::tcp_hello(server.tcp).await;
    watcher
        .send(&ClientMessage::SpectateRecording {
            req: 3,
            file: &file,
        })
        .await;
    spectating(&mut watcher, 3).await;
    let mut watched = BTreeMap::new();
    loop {
        match watcher.recv().await {
            Some(ServerMessage::SpectatorState { tick, payload, .. }) => {
                watched.insert(tick, payload.to_vec());
            }
            Some(ServerMessage::RoomClosed { reason, .. }) => {
                assert_eq!(reason, "the recorded match ended");
                break;
            }
            Some(_) => {}
            None => panic!("closed during playback"),
        }
    }
    for (tick, payload) in &seen {
        assert_eq!(
            watched.get(tick),
            Some(payload),
            "tick {tick} as the player saw it"
        );
    }
    watcher
        .send(&ClientMessage::SpectateRecording {
            req: 4,
            file: "../../etc/passwd",
        })
        .await;
    let (code, _, _) = watcher.expect_error().await;
    assert_eq!(code, ErrorCode::NoSuchMatch);
    watcher.close().await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
