//! Accounts over real sockets, on SQLite and (when `RALLY_TEST_POSTGRES_URL` is set)
//! PostgreSQL: device login then play, session tokens in `hello` (valid, forged, expired,
//! missing), what an unauthenticated session may not do, player data with its permissions
//! and versions, profiles and names, the stats Rally keeps and the match record of a
//! tic-tac-toe game, resuming only as the same account, custom login through a real HTTP
//! webhook, and the flush of pending writes at shutdown.

mod common;

use std::time::{Duration, SystemTime};

use common::{accounts_config, device_id, start_with_db, Client, TestServer};
use rally_server::protocol::{msgpack, ClientMessage, ErrorCode, ServerMessage};
use rally_server::store::{AccountId, Store};
use rally_server::Config;
use rally_testkit::TestDb;

/// Waits (bounded) until `f` returns `Some`.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    for _ in 0..500 {
        if let Some(t) = f().await {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A second handle on a test server's database, to check what the server wrote.
async fn store(db: &TestDb) -> Store {
    db.open(&Config::default()).await
}

fn id(a: u64) -> AccountId {
    AccountId(i64::try_from(a).unwrap())
}

#[tokio::test]
async fn device_login_then_join_and_play_and_a_token_skips_the_login() {
    for db in TestDb::both().await {
        let server = start_with_db(accounts_config(&db), &db).await;
        let mut c = Client::tcp(server.tcp).await;
        c.send(&ClientMessage::Hello {
            version: 1,
            client: "t",
            resume: None,
            token: None,
        })
        .await;
        assert!(
            matches!(
                c.recv().await,
                Some(ServerMessage::Welcome { account_id: 0, .. })
            ),
            "no token, not logged in"
        );
        let device = device_id();
        let (account, token) = c.login(&device).await;
        assert!(account > 0);
        let (_, player) = c.join("arena").await;
        c.input(1, 0.5, 0.5).await;
        c.expect("a state with our input applied", |m| match m {
            ServerMessage::State { last_seq, .. } if *last_seq >= 1 => Some(()),
            _ => None,
        })
        .await;
        assert!(player > 0);

        // The same device id is the same account; the token logs a new connection in.
        let mut again = Client::ws(server.ws).await;
        let (_, restored) = again.hello_token(&token).await;
        assert_eq!(restored, account, "{}", db.backend());
        again.join("arena").await;
        let mut third = Client::tcp(server.tcp).await;
        third.hello().await;
        assert_eq!(third.login(&device).await.0, account);

        for cl in [c, again, third] {
            cl.close().await;
        }
        assert_eq!(server.shutdown().await.unflushed_writes, 0);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn without_a_valid_login_nothing_but_login_and_ping_is_allowed() {
    let db = TestDb::sqlite();
    let config = accounts_config(&db);
    let server = start_with_db(config.clone(), &db).await;

    let refused = |r: common::Reply, what: &str| match r {
        Err((ErrorCode::Unauthorized, _)) => {}
        other => panic!("{what}: expected UNAUTHORIZED, got {other:?}"),
    };
    // Missing token.
    let mut c = Client::tcp(server.tcp).await;
    c.hello().await;
    refused(
        c.call(ClientMessage::Join {
            req: 1,
            kind: "arena",
        })
        .await,
        "join",
    );
    refused(
        c.call(ClientMessage::Chat { req: 2, text: "hi" }).await,
        "chat",
    );
    refused(c.call(ClientMessage::Leave { req: 3 }).await, "leave");
    refused(
        c.call(ClientMessage::GetData {
            req: 4,
            owner: 0,
            key: "k",
        })
        .await,
        "get_data",
    );
    refused(
        c.call(ClientMessage::PutData {
            req: 5,
            key: "k",
            value: "1",
            expected_version: 0,
            public: false,
        })
        .await,
        "put_data",
    );
    refused(
        c.call(ClientMessage::GetProfile {
            req: 6,
            account_id: 0,
        })
        .await,
        "profile",
    );
    refused(
        c.call(ClientMessage::SetName { req: 7, name: "x" }).await,
        "set_name",
    );
    c.input(1, 1.0, 0.0).await;
    let (code, _, req) = c.expect_error().await;
    assert_eq!((code, req), (ErrorCode::Unauthorized, 0), "input");
    c.send(&ClientMessage::Ping { nonce: 5 }).await;
    assert_eq!(c.recv().await, Some(ServerMessage::Pong { nonce: 5 }));

    // Forged: right length and alphabet, another secret.
    let (account, token) = c.login(&device_id()).await;
    let other = rally_auth::TokenSigner::new(
        b"a different secret, 32 bytes long!",
        Duration::from_secs(60),
    );
    let forged = other.issue(account, SystemTime::now()).unwrap().token;
    // Altered: one character of a genuine token changed.
    let mut altered = token.clone().into_bytes();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    // Expired: genuine signature, expiry in the past.
    let ours = rally_auth::TokenSigner::new(
        config.auth_secret.expose().as_bytes(),
        Duration::from_secs(60),
    );
    let past = rally_auth::token::unix_ms(SystemTime::now()) - 1;
    let expired = ours.issue_with(account, past, [7; 16]).token;
    for (what, bad) in [
        ("forged", forged),
        ("altered", altered),
        ("expired", expired),
        ("garbage", "x".repeat(20)),
    ] {
        let mut d = Client::tcp(server.tcp).await;
        let (_, account) = d.hello_token(&bad).await;
        assert_eq!(account, 0, "{what}: welcome says not logged in");
        let (code, message, req) = d.expect_error().await;
        assert_eq!(
            (code, req),
            (ErrorCode::Unauthorized, 0),
            "{what}: {message}"
        );
        if what == "expired" {
            assert!(message.contains("expired"), "{message}");
        }
        refused(
            d.call(ClientMessage::Join {
                req: 9,
                kind: "arena",
            })
            .await,
            what,
        );
        // Not fatal: logging in works.
        d.login(&device_id()).await;
        d.join("arena").await;
        d.close().await;
    }
    // A token that is still valid works, and the server's own expiry is honoured.
    let fresh = ours.issue_with(account, past + 60_000, [8; 16]).token;
    let mut e = Client::tcp(server.tcp).await;
    assert_eq!(e.hello_token(&fresh).await.1, account);
    e.close().await;
    c.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn player_data_is_versioned_and_private_unless_public() {
    for db in TestDb::both().await {
        let server = start_with_db(accounts_config(&db), &db).await;
        let (mut a, _) = Client::tcp_hello(server.tcp).await;
        let (mut b, _) = Client::ws_hello(server.ws).await;
        let (ida, _) = a.login(&device_id()).await;
        let (idb, _) = b.login(&device_id()).await;
        assert_ne!(ida, idb);

        assert_eq!(
            a.get(0, "save").await,
            Ok((None, 0, false)),
            "missing: nil, version 0"
        );
        assert_eq!(a.put("save", r#"{"level":1}"#, 0, false).await, Ok(1));
        let (code, msg) = a.put("save", r#"{"level":9}"#, 0, false).await.unwrap_err();
        assert_eq!(code, ErrorCode::Conflict, "creating an existing key: {msg}");
        assert!(msg.contains("current version is 1"), "{msg}");
        assert_eq!(a.put("save", r#"{"level":2}"#, 1, false).await, Ok(2));
        let (code, msg) = a.put("save", r#"{"level":3}"#, 1, false).await.unwrap_err();
        assert_eq!(code, ErrorCode::Conflict, "stale version: {msg}");
        assert!(msg.contains("current version is 2"), "{msg}");
        // The current version is also a field of its own: [71, 31, message, req, version].
        let delete = ClientMessage::DeleteData {
            req: 91,
            key: "nothing-here",
            expected_version: 1,
        };
        a.send(&delete).await;
        let current = a
            .expect("the conflict", |m| match m {
                ServerMessage::Conflict {
                    req: 91,
                    current_version,
                    ..
                } => Some(*current_version),
                _ => None,
            })
            .await;
        assert_eq!(current, 0, "no such entry: version 0");
        let (value, version, public) = a.get(0, "save").await.unwrap();
        assert_eq!((version, public), (2, false));
        let value: serde_json::Value = serde_json::from_str(&value.unwrap()).unwrap();
        assert_eq!(value, serde_json::json!({"level": 2}));
        assert_eq!(a.put("badge", r#""gold""#, 0, true).await, Ok(1));

        // Another player: the private key reads as absent (like a missing one, so its
        // existence does not leak), the public one is readable.
        assert_eq!(b.get(ida, "save").await, Ok((None, 0, false)));
        assert_eq!(
            b.get(ida, "badge").await,
            Ok((Some(r#""gold""#.into()), 1, true))
        );
        assert_eq!(b.get(ida, "nothing").await, Ok((None, 0, false)));
        // Writes are always one's own: b's "save" is b's.
        assert_eq!(b.put("save", "[]", 0, false).await, Ok(1));
        assert_eq!(a.get(0, "save").await.unwrap().1, 2);

        // Bad input is refused before any database work.
        for (key, value) in [("save", "{not json"), ("bad key!", "1"), ("", "1")] {
            let (code, msg) = a.put(key, value, 0, false).await.unwrap_err();
            assert_eq!(code, ErrorCode::InvalidArgument, "{key:?} {value:?}: {msg}");
        }

        // Deletes are versioned too.
        let del = |key: &'static str, v: u64| ClientMessage::DeleteData {
            req: 80,
            key,
            expected_version: v,
        };
        assert!(matches!(
            a.call(del("save", 1)).await,
            Err((ErrorCode::Conflict, _))
        ));
        assert!(matches!(
            a.call(del("save", 2)).await,
            Ok(ServerMessage::Ok { req: 80 })
        ));
        assert_eq!(a.get(0, "save").await, Ok((None, 0, false)));
        assert!(matches!(
            a.call(del("save", 2)).await,
            Err((ErrorCode::Conflict, _))
        ));

        a.close().await;
        b.close().await;
        server.shutdown().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn profiles_names_and_the_chat_name_come_from_the_account() {
    let db = TestDb::sqlite();
    let server = start_with_db(accounts_config(&db), &db).await;
    let (mut a, _) = Client::tcp_hello(server.tcp).await;
    let (mut b, _) = Client::tcp_hello(server.tcp).await;
    let (ida, _) = a.login(&device_id()).await;
    let (idb, _) = b.login(&device_id()).await;
    let (name, sessions, play_ms, games) = a.profile(0).await.unwrap();
    assert_eq!(name, format!("player-{ida}"));
    assert_eq!((sessions, play_ms, games), (0, 0, 0));
    let ok = a
        .call(ClientMessage::SetName {
            req: 5,
            name: "Ada Lovelace",
        })
        .await;
    assert!(matches!(ok, Ok(ServerMessage::Ok { req: 5 })), "{ok:?}");
    let bad = a
        .call(ClientMessage::SetName {
            req: 6,
            name: "   ",
        })
        .await;
    assert!(
        matches!(bad, Err((ErrorCode::InvalidArgument, _))),
        "{bad:?}"
    );
    // Profiles are public.
    assert_eq!(b.profile(ida).await.unwrap().0, "Ada Lovelace");
    assert!(matches!(
        b.profile(1 << 62).await,
        Err((ErrorCode::NotFound, _))
    ));
    assert!(matches!(
        b.profile(u64::MAX).await,
        Err((ErrorCode::NotFound, _))
    ));
    // The session's cached name is what chat shows, with no database read.
    a.join("arena").await;
    b.join("arena").await;
    a.send(&ClientMessage::Chat {
        req: 9,
        text: "hello",
    })
    .await;
    let name = b
        .expect("a's chat line", |m| match m {
            ServerMessage::ChatLine { name, text, .. } if text == "hello" => Some(name.clone()),
            _ => None,
        })
        .await;
    assert_eq!(name, "Ada Lovelace");
    // A login refused while in a room: the seat is the account's.
    let r = a
        .call(ClientMessage::Login {
            req: 10,
            provider: "device",
            credential: &device_id(),
        })
        .await;
    assert!(matches!(r, Err((ErrorCode::AlreadyInRoom, _))), "{r:?}");
    let _ = idb;
    a.close().await;
    b.close().await;
    server.shutdown().await;
}

/// A tic-tac-toe view's board, from its MessagePack map.
fn board(payload: &[u8]) -> String {
    let mut r = msgpack::Reader::new(payload);
    let n = r.read_map_len().unwrap();
    for _ in 0..n {
        let key = r.read_str().unwrap();
        if key == "board" {
            return r.read_str().unwrap().to_owned();
        }
        r.skip_value().unwrap();
    }
    panic!("no board in the view");
}

async fn play_cell(c: &mut Client, seq: u32, cell: u64) {
    let mut payload = Vec::new();
    msgpack::write_uint(&mut payload, cell);
    c.send(&ClientMessage::Input {
        seq,
        payload: &payload,
    })
    .await;
    let cell = cell as usize;
    c.expect("the move on the board", |m| match m {
        ServerMessage::State { payload, .. } if board(payload).as_bytes()[cell] != b'.' => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test]
async fn a_finished_game_is_recorded_with_its_winner_and_stats_move() {
    for db in TestDb::both().await {
        let server = start_with_db(accounts_config(&db), &db).await;
        let (mut x, _) = Client::tcp_hello(server.tcp).await;
        let (mut o, _) = Client::ws_hello(server.ws).await;
        let (idx, _) = x.login(&device_id()).await;
        let (ido, _) = o.login(&device_id()).await;
        let (room, px) = x.join("tictactoe").await;
        let (room_o, po) = o.join("tictactoe").await;
        assert_eq!(room, room_o);
        // X: 0, 1, 2 (a row); O: 3, 4.
        play_cell(&mut x, 1, 0).await;
        play_cell(&mut o, 1, 3).await;
        play_cell(&mut x, 2, 1).await;
        play_cell(&mut o, 2, 4).await;
        play_cell(&mut x, 3, 2).await;
        for c in [&mut x, &mut o] {
            c.expect("room_closed", |m| {
                matches!(m, ServerMessage::RoomClosed { .. }).then_some(())
            })
            .await;
        }
        let check = store(&db).await;
        let record = until("the match is recorded", || async {
            check
                .recent_matches(id(idx), 10)
                .await
                .unwrap()
                .into_iter()
                .next()
        })
        .await;
        assert_eq!(record.kind, "tictactoe");
        let mut players = vec![id(idx), id(ido)];
        players.sort();
        assert_eq!(record.players, players);
        assert_eq!(
            record.result["result"]["outcome"], "x_won",
            "{}",
            record.result
        );
        assert_eq!(record.result["result"]["winner"], px);
        assert_eq!(
            record.result["players"][px.to_string()],
            idx,
            "{}",
            record.result
        );
        assert_eq!(record.result["players"][po.to_string()], ido);
        // Games played counts at once; sessions and play time when each session ends.
        assert_eq!(x.profile(0).await.unwrap().3, 1);
        x.close().await;
        o.close().await;
        for a in [idx, ido] {
            let stats = until("the sessions are counted", || async {
                let s = check.stats(id(a)).await.unwrap();
                (s.sessions == 1).then_some(s)
            })
            .await;
            assert_eq!(stats.games_played, 1, "{}", db.backend());
            assert!(stats.play_ms > 0, "{stats:?}");
        }
        check.close().await;
        server.shutdown().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_seat_is_resumed_only_by_its_own_account() {
    let db = TestDb::sqlite();
    let config = Config {
        reconnect_grace_ms: 10_000,
        ..accounts_config(&db)
    };
    let server = start_with_db(config, &db).await;
    let mut a = Client::tcp(server.tcp).await;
    let (_, resume) = a.hello_with(None).await;
    let (ida, token_a) = a.login(&device_id()).await;
    let (room, player) = a.join("arena").await;
    a.close().await; // a drop: the seat is held

    let (mut b, _) = Client::tcp_hello(server.tcp).await;
    let (_, token_b) = b.login(&device_id()).await;
    b.close().await;
    // Another account's session, then no session at all: neither takes the seat.
    for token in [Some(token_b), None] {
        let mut c = Client::tcp(server.tcp).await;
        c.send(&ClientMessage::Hello {
            version: 1,
            client: "thief",
            resume: Some(&resume),
            token: token.as_deref(),
        })
        .await;
        assert!(matches!(
            c.recv().await,
            Some(ServerMessage::Welcome { .. })
        ));
        let (code, _, req) = c.expect_error().await;
        assert_eq!(
            (code, req),
            (ErrorCode::ResumeFailed, 0),
            "token {}",
            token.is_some()
        );
        c.close().await;
    }
    // The owner, with its session token, takes the seat back.
    let mut back = Client::tcp(server.tcp).await;
    back.send(&ClientMessage::Hello {
        version: 1,
        client: "back",
        resume: Some(&resume),
        token: Some(&token_a),
    })
    .await;
    match back.recv().await {
        Some(ServerMessage::Welcome { account_id, .. }) => assert_eq!(account_id, ida),
        other => panic!("{other:?}"),
    }
    let seat = back
        .expect("joined req 0", |m| match m {
            ServerMessage::Joined {
                req: 0,
                room_id,
                player_id,
                ..
            } => Some((*room_id, *player_id)),
            _ => None,
        })
        .await;
    assert_eq!(seat, (room, player));
    back.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_login_switches_accounts_and_counts_the_session_of_the_first() {
    let db = TestDb::sqlite();
    let server = start_with_db(accounts_config(&db), &db).await;
    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    let (first, _) = c.login(&device_id()).await;
    let (second, _) = c.login(&device_id()).await;
    assert_ne!(first, second);
    assert_eq!(c.profile(0).await.unwrap().0, format!("player-{second}"));
    let check = store(&db).await;
    until("the first account's session is counted", || async {
        (check.stats(id(first)).await.unwrap().sessions == 1).then_some(())
    })
    .await;
    assert_eq!(
        check.stats(id(second)).await.unwrap().sessions,
        0,
        "still running"
    );
    c.close().await;
    until("the second account's session is counted", || async {
        (check.stats(id(second)).await.unwrap().sessions == 1).then_some(())
    })
    .await;
    check.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_flushes_every_pending_write_before_it_returns() {
    for db in TestDb::both().await {
        let config = Config {
            shutdown_grace_ms: 3_000,
            ..accounts_config(&db)
        };
        let mut server = start_with_db(config, &db).await;
        // 24 logged-in players: three times the write concurrency, half of them in
        // tic-tac-toe rooms that end with the shutdown (a match record each).
        let mut clients = Vec::new();
        let mut accounts = Vec::new();
        for i in 0..24 {
            let (mut c, _) = Client::tcp_hello(server.tcp).await;
            accounts.push(c.login(&device_id()).await.0);
            c.join(if i % 2 == 0 { "arena" } else { "tictactoe" }).await;
            clients.push(c);
        }
        server.begin_shutdown();
        for c in &mut clients {
            c.expect("shutdown", |m| {
                matches!(m, ServerMessage::Shutdown { .. }).then_some(())
            })
            .await;
        }
        for c in clients {
            c.close().await;
        }
        let report = tokio::time::timeout(Duration::from_secs(30), &mut server.task)
            .await
            .unwrap()
            .unwrap();
        assert!(report.drained, "{report:?}");
        assert_eq!(report.unflushed_writes, 0, "{report:?}");
        // The server's store is closed: whatever is in the database now was flushed.
        let check = store(&db).await;
        for a in &accounts {
            let s = check.stats(id(*a)).await.unwrap();
            assert_eq!(s.sessions, 1, "account {a} on {}: {s:?}", db.backend());
            assert_eq!(
                s.games_played, 1,
                "account {a}: its room ended with the shutdown"
            );
        }
        check.close().await;
        db.cleanup().await;
    }
}

mod webhook {
    use super::*;
    use axum::routing::post;
    use axum::{Json, Router};
    use serde_json::{json, Value};

    async fn login(Json(body): Json<Value>) -> (axum::http::StatusCode, Json<Value>) {
        match body["credential"].as_str() {
            Some("ada-password") => (
                axum::http::StatusCode::OK,
                Json(json!({"external_id": "ada", "display_name": "Ada"})),
            ),
            _ => (axum::http::StatusCode::FORBIDDEN, Json(json!({}))),
        }
    }

    #[tokio::test]
    async fn custom_login_asks_the_games_backend() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backend = tokio::spawn(async move {
            axum::serve(listener, Router::new().route("/login", post(login))).await
        });
        let db = TestDb::sqlite();
        let config = Config {
            auth_webhook_url: Some(format!("http://{addr}/login")),
            ..accounts_config(&db)
        };
        let server = start_with_db(config, &db).await;
        let (mut c, _) = Client::tcp_hello(server.tcp).await;
        let custom = |req, credential: &'static str| ClientMessage::Login {
            req,
            provider: "custom",
            credential,
        };
        let first = c.call(custom(1, "ada-password")).await;
        let Ok(ServerMessage::Session {
            account_id,
            display_name,
            ..
        }) = first
        else {
            panic!("{first:?}");
        };
        assert_eq!(
            display_name, "Ada",
            "the backend's name names a new account"
        );
        let again = c.call(custom(2, "ada-password")).await;
        assert!(
            matches!(again, Ok(ServerMessage::Session { account_id: a, .. }) if a == account_id)
        );
        let refused = c.call(custom(3, "wrong")).await;
        assert!(
            matches!(refused, Err((ErrorCode::Unauthorized, _))),
            "{refused:?}"
        );
        // Custom ids and device ids are separate: "ada" as a device id is another account.
        let dev = c
            .call(ClientMessage::Login {
                req: 4,
                provider: "device",
                credential: "ada-0000",
            })
            .await;
        assert!(matches!(dev, Ok(ServerMessage::Session { account_id: a, .. }) if a != account_id));
        c.close().await;
        server.shutdown().await;

        // A server without a webhook refuses custom logins.
        let db = TestDb::sqlite();
        let server = start_with_db(accounts_config(&db), &db).await;
        let (mut c, _) = Client::tcp_hello(server.tcp).await;
        let r = c.call(custom(1, "ada-password")).await;
        assert!(
            matches!(&r, Err((ErrorCode::Unauthorized, m)) if m.contains("not configured")),
            "{r:?}"
        );
        c.close().await;
        server.shutdown().await;
        backend.abort();
    }
}

#[tokio::test]
async fn realtime_play_without_a_database_when_logins_are_off() {
    // The development switch: guests play, but account data needs a login and a database.
    let server = TestServer::start(common::config()).await;
    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    let r = c
        .call(ClientMessage::Login {
            req: 4,
            provider: "device",
            credential: "device-0001",
        })
        .await;
    assert!(matches!(r, Err((ErrorCode::Unavailable, _))), "{r:?}");
    c.join("arena").await;
    c.input(1, 0.1, 0.1).await;
    let r = c
        .call(ClientMessage::GetData {
            req: 3,
            owner: 0,
            key: "k",
        })
        .await;
    assert!(matches!(r, Err((ErrorCode::Unauthorized, _))), "{r:?}");
    c.close().await;
    server.shutdown().await;
}

/// An account never holds two seats in one room: a join that lands where the account
/// already sits (here a second connection of the same account; in the network
/// simulation, a player whose `welcome` with its new resume token was lost) takes that
/// seat over instead of adding one. Found by `tests/sim` (seeds 3062 and 3203).
#[tokio::test]
async fn a_join_where_the_account_sits_takes_that_seat_over() {
    let db = TestDb::sqlite();
    let config = Config {
        reconnect_grace_ms: 10_000,
        ..accounts_config(&db)
    };
    let server = start_with_db(config, &db).await;
    let mut a = Client::tcp(server.tcp).await;
    a.hello_with(None).await;
    let (account, token) = a.login(&device_id()).await;
    let (room, player) = a.join("arena").await;

    let mut b = Client::tcp(server.tcp).await;
    assert_eq!(b.hello_token(&token).await.1, account);
    assert_eq!(
        b.join("arena").await,
        (room, player),
        "the same seat, not a second one"
    );
    let closed = a
        .expect("room_closed", |m| match m {
            ServerMessage::RoomClosed { room_id, .. } => Some(*room_id),
            _ => None,
        })
        .await;
    assert_eq!(closed, room, "the connection that held the seat is told");
    // Every state lists the account once.
    let players = b
        .expect("a state", |m| match m {
            ServerMessage::State { payload, .. } => {
                let mut r = msgpack::Reader::new(payload);
                Some(r.read_array_len().unwrap())
            }
            _ => None,
        })
        .await;
    assert_eq!(players, 1);
    let seats = server.handle.seats().await;
    assert_eq!(seats.len(), 1, "{seats:?}");
    assert_eq!(seats[0].account_id, Some(account));
    a.close().await;
    b.close().await;
    server.shutdown().await;
}
