//! The admin API over real sockets: the bearer token (off without one, 401 when missing
//! or wrong), listing rooms and players, kick and close seen by the clients as protocol
//! errors with a code, and drain flipping readiness and refusing new players and joins.

mod common;

use common::{admin_config, close_room, http, scrape, Client, TestServer, ADMIN_TOKEN};
use rally_server::protocol::{ClientMessage, ErrorCode, ServerMessage};
use rally_server::Config;
use serde_json::{json, Value};

const ADMIN_ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/admin/rooms"),
    ("GET", "/admin/rooms/1"),
    ("GET", "/admin/players"),
    ("POST", "/admin/rooms/1/close"),
    ("POST", "/admin/players/1/kick"),
    ("POST", "/admin/drain"),
];

async fn get(server: &TestServer, path: &str) -> Value {
    let r = http(server.admin, "GET", path, Some(ADMIN_TOKEN), None).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    r.json()
}

async fn post(server: &TestServer, path: &str, body: Option<&str>) -> (u16, Value) {
    let r = http(server.admin, "POST", path, Some(ADMIN_TOKEN), body).await;
    (r.status, r.json())
}

#[tokio::test]
async fn the_admin_api_is_off_without_a_configured_token() {
    let server = TestServer::start(common::config()).await;
    for (method, path) in ADMIN_ENDPOINTS {
        let r = http(
            server.admin,
            method,
            path,
            Some("anything-at-all-0123"),
            None,
        )
        .await;
        assert_eq!(r.status, 403, "{method} {path}");
        assert_eq!(r.json()["error"], "admin_disabled", "{}", r.body);
        assert!(r.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("no admin token is configured")));
    }
    assert!(!server.handle.draining());
    // Health, readiness and metrics need no token.
    let r = http(server.admin, "GET", "/healthz", None, None).await;
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    let r = http(server.admin, "GET", "/readyz", None, None).await;
    assert_eq!((r.status, r.json()), (200, json!({"ready": true})));
    assert_eq!(
        http(server.admin, "GET", "/metrics", None, None)
            .await
            .status,
        200
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_rejects_missing_and_wrong_tokens() {
    let server = TestServer::start(admin_config()).await;
    let wrong = format!("{ADMIN_TOKEN}x");
    let prefix = &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1];
    for (method, path) in ADMIN_ENDPOINTS {
        for token in [None, Some(wrong.as_str()), Some(prefix), Some("")] {
            let r = http(server.admin, method, path, token, None).await;
            assert_eq!(r.status, 401, "{method} {path} with {token:?}: {}", r.body);
            assert_eq!(r.json()["error"], "unauthorized");
            assert!(r.head.contains("www-authenticate: bearer"), "{}", r.head);
        }
    }
    // Another scheme is no bearer token either.
    let r = tokio::time::timeout(common::RECV_LIMIT, async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(server.admin).await.unwrap();
        let req = format!(
            "GET /admin/rooms HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic {ADMIN_TOKEN}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    })
    .await
    .unwrap();
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    assert!(!server.handle.draining(), "a refused drain did nothing");
    assert_eq!(get(&server, "/admin/rooms").await, json!({"rooms": []}));
    server.shutdown().await;
}

#[tokio::test]
async fn rooms_and_players_are_listed() {
    let server = TestServer::start(admin_config()).await;
    let (mut a, sid_a) = Client::tcp_hello(server.tcp).await;
    let (mut b, sid_b) = Client::ws_hello(server.ws).await;
    let (c, sid_c) = Client::tcp_hello(server.tcp).await;
    let (room, pa) = a.join("arena").await;
    let (_, pb) = b.join("arena").await;
    // Wait for a state, so the room has ticked.
    a.expect("a state", |m| {
        matches!(m, ServerMessage::State { .. }).then_some(())
    })
    .await;

    let rooms = get(&server, "/admin/rooms").await;
    let list = rooms["rooms"].as_array().expect("a list of rooms");
    assert_eq!(list.len(), 1, "{rooms}");
    let r = &list[0];
    assert_eq!(r["id"], room);
    assert_eq!(r["kind"], "arena");
    assert_eq!(r["player_count"], 2);
    assert_eq!(r["max_players"], 16);
    assert_eq!(r["closing"], false);
    assert!(r["tick"].as_u64().is_some_and(|t| t >= 1), "{r}");
    assert!(r["age_ms"].as_u64().is_some(), "{r}");

    let detail = get(&server, &format!("/admin/rooms/{room}")).await;
    assert_eq!(detail["id"], room);
    assert_eq!(detail["kind"], "arena");
    assert!(detail["tick"].as_u64().is_some_and(|t| t >= 1));
    assert!(detail["age_ms"].as_u64().is_some());
    let seats = detail["players"].as_array().expect("seats");
    assert_eq!(seats.len(), 2, "{detail}");
    assert_eq!(seats[0]["player_id"], pa);
    assert_eq!(seats[0]["session_id"], sid_a);
    assert_eq!(seats[0]["name"], "test");
    assert_eq!(seats[0]["connected"], true);
    assert_eq!(seats[1]["player_id"], pb);
    assert_eq!(seats[1]["session_id"], sid_b);

    let players = get(&server, "/admin/players").await;
    let list = players["players"].as_array().expect("a list of players");
    assert_eq!(list.len(), 3, "{players}");
    let find = |sid: u64| {
        list.iter()
            .find(|p| p["id"] == sid)
            .unwrap_or_else(|| panic!("player {sid} in {players}"))
    };
    assert_eq!(find(sid_a)["transport"], "tcp");
    assert_eq!(
        find(sid_a)["room"],
        json!({"id": room, "kind": "arena", "player_id": pa})
    );
    assert_eq!(find(sid_b)["transport"], "ws");
    assert_eq!(find(sid_b)["room"]["player_id"], pb);
    assert_eq!(find(sid_c)["room"], Value::Null);
    assert!(find(sid_c)["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));

    let r = http(
        server.admin,
        "GET",
        "/admin/rooms/999",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (404, json!("not_found"))
    );
    let r = http(
        server.admin,
        "GET",
        "/admin/rooms/abc",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("bad_request"))
    );
    for client in [a, b, c] {
        client.close().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_kicked_player_gets_kicked_and_its_seat_is_freed() {
    // With a reconnect grace, a drop would hold the seat; a kick must not.
    let server = TestServer::start(Config {
        reconnect_grace_ms: 10_000,
        ..admin_config()
    })
    .await;
    let (mut a, sid_a) = Client::tcp_hello(server.tcp).await;
    let (mut b, _) = Client::ws_hello(server.ws).await;
    let (room, _) = a.join("arena").await;
    b.join("arena").await;

    let (status, body) = post(
        &server,
        &format!("/admin/players/{sid_a}/kick"),
        Some(r#"{"reason": "cheating"}"#),
    )
    .await;
    assert_eq!((status, body), (200, json!({"kicked": sid_a})));
    let (code, message, req) = a.expect_error().await;
    assert_eq!((code, req), (ErrorCode::Kicked, 0));
    assert!(message.contains("cheating"), "{message}");
    assert_eq!(a.recv().await, None, "a kick closes the connection");

    // The other player plays on, alone in the room: the seat was freed, not held.
    b.expect("a state", |m| {
        matches!(m, ServerMessage::State { .. }).then_some(())
    })
    .await;
    common::eventually("the kicked player's seat is freed", || {
        server.handle.sessions() == 1
    })
    .await;
    let mut seats = 0;
    for _ in 0..500 {
        let detail = get(&server, &format!("/admin/rooms/{room}")).await;
        seats = detail["players"].as_array().map_or(0, Vec::len);
        if seats == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seats, 1);
    let s = scrape(server.admin).await;
    assert_eq!(
        s.get("rally_rejections_total", &[("code", "KICKED")]),
        Some(1.0)
    );

    let (status, body) = post(&server, "/admin/players/424242/kick", None).await;
    assert_eq!((status, body["error"].clone()), (404, json!("not_found")));
    let (status, body) = post(
        &server,
        &format!("/admin/players/{sid_a}/kick"),
        Some("not json"),
    )
    .await;
    assert_eq!((status, body["error"].clone()), (400, json!("bad_request")));
    b.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_closed_room_tells_its_players_with_a_code() {
    let server = TestServer::start(admin_config()).await;
    let (mut a, _) = Client::tcp_hello(server.tcp).await;
    let (mut b, _) = Client::ws_hello(server.ws).await;
    let (room, _) = a.join("arena").await;
    b.join("arena").await;

    let (status, body) = post(
        &server,
        &format!("/admin/rooms/{room}/close"),
        Some(r#"{"reason": "maintenance"}"#),
    )
    .await;
    assert_eq!((status, body), (200, json!({"closed": room})));
    for c in [&mut a, &mut b] {
        let (code, message, req) = c.expect_error().await;
        assert_eq!((code, req), (ErrorCode::RoomClosed, 0));
        assert!(message.contains("maintenance"), "{message}");
        let closed = c
            .expect("room_closed", |m| match m {
                ServerMessage::RoomClosed { room_id, .. } => Some(*room_id),
                _ => None,
            })
            .await;
        assert_eq!(closed, room);
        // Not fatal: the connection stays, and the player may join again.
        c.send(&ClientMessage::Ping { nonce: 9 }).await;
        c.expect("pong", |m| {
            matches!(m, ServerMessage::Pong { nonce: 9 }).then_some(())
        })
        .await;
    }
    common::eventually("the room is gone", || server.handle.rooms() == 0).await;
    let (again, _) = a.join("arena").await;
    assert_ne!(again, room);
    let r = close_room(server.admin, room).await;
    assert_eq!(r.status, 404);
    let s = scrape(server.admin).await;
    assert_eq!(
        s.get("rally_rejections_total", &[("code", "ROOM_CLOSED")]),
        Some(2.0)
    );
    a.close().await;
    b.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn drain_flips_readiness_and_refuses_new_players_and_joins() {
    let server = TestServer::start(admin_config()).await;
    let (mut a, _) = Client::tcp_hello(server.tcp).await;
    let (mut idle, _) = Client::tcp_hello(server.tcp).await;
    let (room, _) = a.join("arena").await;

    let (status, body) = post(&server, "/admin/drain", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"draining": true, "already_draining": false, "rooms": 1, "players": 1})
    );
    assert!(server.handle.draining());
    let r = http(server.admin, "GET", "/readyz", None, None).await;
    assert_eq!(
        (r.status, r.json()),
        (503, json!({"ready": false, "reasons": ["draining"]}))
    );
    assert_eq!(
        http(server.admin, "GET", "/healthz", None, None)
            .await
            .status,
        200
    );
    let s = scrape(server.admin).await;
    assert_eq!(s.get("rally_draining", &[]), Some(1.0));
    assert_eq!(s.get("rally_ready", &[]), Some(0.0));

    // The room plays on.
    a.input(1, 1.0, 0.0).await;
    a.expect("a state with the input", |m| match m {
        ServerMessage::State { last_seq: 1, .. } => Some(()),
        _ => None,
    })
    .await;
    // A connected player not in a room cannot join.
    idle.send(&ClientMessage::Join {
        req: 5,
        kind: "arena",
    })
    .await;
    let (code, _, req) = idle.expect_error().await;
    assert_eq!((code, req), (ErrorCode::Draining, 5));
    // New players are refused with DRAINING, over both transports.
    for mut c in [Client::tcp(server.tcp).await, Client::ws(server.ws).await] {
        c.send(&ClientMessage::Hello {
            version: rally_server::protocol::PROTOCOL_VERSION,
            client: "late",
            resume: None,
            token: None,
        })
        .await;
        assert_eq!(c.expect_closed().await, Some(ErrorCode::Draining));
    }
    // Draining twice is harmless.
    let (status, body) = post(&server, "/admin/drain", None).await;
    assert_eq!(
        (status, body["already_draining"].clone()),
        (200, json!(true))
    );
    assert_eq!(server.handle.rooms(), 1, "room {room} still runs");
    a.close().await;
    idle.close().await;
    let report = server.shutdown().await;
    assert!(report.drained);
}
