//! Authorization over real sockets: what a client may not do, and that trying changes
//! nothing.
//!
//! - Rooms: inputs, `leave` and `chat` outside a room (before a join, after a leave,
//!   after the room closed) get `NOT_IN_ROOM` and move nothing; a player in one room
//!   cannot reach another room's game or chat.
//! - Player data: another account's private entries cannot be read, nobody can write or
//!   delete another account's entries (not even with an extra `owner` field on the wire),
//!   public entries are readable and stay unwritable; data requests need a login, on any
//!   server.
//! - Impersonation: forged and altered session tokens (in `hello` or used as a login
//!   credential) grant no account; another account's resume token takes no seat, held or
//!   connected, and none works after the grace; a resume token takes a seat once, even
//!   when two connections present it at the same moment; a connection whose seat was
//!   resumed by a newer one can no longer chat or leave for it; `set_name` names only
//!   the caller.
//! - The admin API: every `/admin/*` route needs the exact token, in the header only;
//!   health, readiness and metrics need none.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{
    accounts_config, admin_config, close_room, config, device_id, eventually, http, start_with_db,
    Client, Reply, TestServer, ADMIN_TOKEN,
};
use rally_server::protocol::{msgpack, ClientMessage, ErrorCode, ServerMessage};
use rally_server::Config;
use rally_testkit::TestDb;
use serde_json::json;

/// Messages received until the pong for `nonce`, states left out. The server answers a
/// ping in order, so whatever was queued for this client before the ping arrived (a chat
/// line another player's `ok` already vouched for, say) is in the list.
async fn until_pong(c: &mut Client, nonce: u64) -> Vec<ServerMessage> {
    c.send(&ClientMessage::Ping { nonce }).await;
    let mut seen = Vec::new();
    loop {
        match c.recv().await {
            Some(ServerMessage::Pong { nonce: n }) if n == nonce => return seen,
            Some(ServerMessage::State { .. }) => {}
            Some(m) => seen.push(m),
            None => panic!("closed while waiting for pong {nonce}; saw {seen:?}"),
        }
    }
}

/// The next arena state seen by `c` from a tick after `after`: `(tick, players)`.
async fn arena_state_after(c: &mut Client, after: u64) -> (u64, Vec<arena::PlayerState>) {
    c.expect("an arena state", |m| match m {
        ServerMessage::State { tick, payload, .. } if *tick > after => {
            Some((*tick, arena::decode_state(payload).expect("an arena state")))
        }
        _ => None,
    })
    .await
}

/// Waits until `c`'s own last applied seq reaches `seq`.
async fn until_seq(c: &mut Client, seq: u32) {
    c.expect("my seq applied", |m| match m {
        ServerMessage::State { last_seq, .. } => (*last_seq >= seq).then_some(()),
        _ => None,
    })
    .await
}

/// Waits for `joined` with request id 0 (a resumed seat): `(room, player)`.
async fn resumed(c: &mut Client) -> (u64, u32) {
    c.expect("joined req 0", |m| match m {
        ServerMessage::Joined {
            req: 0,
            room_id,
            player_id,
            ..
        } => Some((*room_id, *player_id)),
        ServerMessage::Error { code, message, .. } => panic!("not resumed: {code} {message}"),
        _ => None,
    })
    .await
}

fn assert_refused(reply: Reply, code: ErrorCode, what: &str) {
    match reply {
        Err((c, _)) if c == code => {}
        other => panic!("{what}: expected {code}, got {other:?}"),
    }
}

/// Sends an input and expects `NOT_IN_ROOM` with req 0.
async fn input_refused(c: &mut Client, seq: u32, what: &str) {
    c.input(seq, 1.0, 1.0).await;
    let (code, message, req) = c.expect_error().await;
    assert_eq!((code, req), (ErrorCode::NotInRoom, 0), "{what}: {message}");
}

fn cell(i: u64) -> Vec<u8> {
    let mut v = Vec::new();
    msgpack::write_uint(&mut v, i);
    v
}

/// The board of a tic-tac-toe view, if `m` is one.
fn board_of(m: &ServerMessage) -> Option<String> {
    let ServerMessage::State { payload, .. } = m else {
        return None;
    };
    let mut r = msgpack::Reader::new(payload);
    let n = r.read_map_len().ok()?;
    let mut board = None;
    for _ in 0..n {
        match r.read_str().ok()? {
            "board" => board = Some(r.read_str().ok()?.to_owned()),
            _ => r.skip_value().ok()?,
        }
    }
    board
}

/// Reads tic-tac-toe views until one shows a board not in `seen`; returns it.
async fn next_board(c: &mut Client, seen: &[&str]) -> String {
    c.expect("a new tictactoe board", |m| {
        board_of(m).filter(|b| !seen.contains(&b.as_str()))
    })
    .await
}

/// Reads tic-tac-toe views until one shows `board`.
async fn until_board(c: &mut Client, board: &str) {
    c.expect(board, |m| (board_of(m)? == board).then_some(()))
        .await
}

const EMPTY: &str = ".........";

// ---------------------------------------------------------------------------------------
// 1. Rooms
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn outside_a_room_inputs_leave_and_chat_are_refused_and_move_nothing() {
    let server = TestServer::start(admin_config()).await;
    let (mut a, _) = Client::tcp_hello(server.tcp).await;
    let (mut b, _) = Client::ws_hello(server.ws).await;
    let (room, pa) = a.join("arena").await;
    let (room_b, pb) = b.join("arena").await;
    assert_eq!(room_b, room);
    let (t0, before) = arena_state_after(&mut b, 0).await;
    assert_eq!(
        before.iter().map(|p| p.id).collect::<Vec<_>>(),
        [pa, pb],
        "both seated"
    );

    // Never joined.
    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    for seq in 1..=3 {
        input_refused(&mut c, seq, "before any join").await;
    }
    assert_refused(
        c.call(ClientMessage::Leave { req: 1 }).await,
        ErrorCode::NotInRoom,
        "leave before any join",
    );
    assert_refused(
        c.call(ClientMessage::Chat { req: 2, text: "hi" }).await,
        ErrorCode::NotInRoom,
        "chat before any join",
    );
    // Joined the same room, then left it.
    let (mut d, _) = Client::tcp_hello(server.tcp).await;
    let (room_d, _) = d.join("arena").await;
    assert_eq!(room_d, room);
    assert!(matches!(
        d.call(ClientMessage::Leave { req: 3 }).await,
        Ok(ServerMessage::Left { room_id, .. }) if room_id == room
    ));
    for seq in 1..=3 {
        input_refused(&mut d, seq, "after leave").await;
    }
    assert_refused(
        d.call(ClientMessage::Leave { req: 4 }).await,
        ErrorCode::NotInRoom,
        "leave after leave",
    );
    assert_refused(
        d.call(ClientMessage::Chat {
            req: 5,
            text: "still here?",
        })
        .await,
        ErrorCode::NotInRoom,
        "chat after leave",
    );
    assert_eq!(server.handle.errors(ErrorCode::NotInRoom), 10);

    // Nobody moved, no seq was applied, and the leaver's seat is gone, as the room's
    // members see it a few ticks later.
    let (t1, _) = arena_state_after(&mut b, t0).await;
    let (_, after) = arena_state_after(&mut b, t1 + 2).await;
    assert_eq!(after, before, "the room's state did not change");
    assert!(after.iter().all(|p| p.last_seq == 0), "{after:?}");
    let seen = until_pong(&mut b, 1).await;
    assert!(
        !seen
            .iter()
            .any(|m| matches!(m, ServerMessage::ChatLine { .. })),
        "no chat reached the room: {seen:?}"
    );

    // After an operator closed the room.
    let r = close_room(server.admin, room).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for cl in [&mut a, &mut b] {
        cl.expect("room_closed", |m| {
            matches!(m, ServerMessage::RoomClosed { room_id, .. } if *room_id == room).then_some(())
        })
        .await;
    }
    let errors = server.handle.errors(ErrorCode::NotInRoom);
    input_refused(&mut a, 1, "after the room closed").await;
    assert_refused(
        a.call(ClientMessage::Leave { req: 6 }).await,
        ErrorCode::NotInRoom,
        "leave after the room closed",
    );
    assert_refused(
        b.call(ClientMessage::Chat {
            req: 7,
            text: "anyone?",
        })
        .await,
        ErrorCode::NotInRoom,
        "chat after the room closed",
    );
    assert_eq!(server.handle.errors(ErrorCode::NotInRoom), errors + 3);
    eventually("the closed room is gone", || server.handle.rooms() == 0).await;
    for cl in [a, b, c, d] {
        cl.close().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn inputs_after_the_game_ended_are_refused() {
    let server = TestServer::start(config()).await;
    let (mut x, _) = Client::tcp_hello(server.tcp).await;
    let (mut o, _) = Client::tcp_hello(server.tcp).await;
    let (room, _) = x.join("tictactoe").await;
    assert_eq!(o.join("tictactoe").await.0, room);
    // X takes the top row while O plays the middle one; each move lands before the
    // next is sent.
    let moves = [
        (0u64, "X........"),
        (3, "X..O....."),
        (1, "XX.O....."),
        (4, "XX.OO...."),
        (2, "XXXOO...."),
    ];
    for (i, (c, board)) in moves.into_iter().enumerate() {
        let player = if i % 2 == 0 { &mut x } else { &mut o };
        player
            .send(&ClientMessage::Input {
                seq: i as u32 + 1,
                payload: &cell(c),
            })
            .await;
        until_board(&mut x, board).await;
    }
    for cl in [&mut x, &mut o] {
        cl.expect("room_closed", |m| {
            matches!(m, ServerMessage::RoomClosed { room_id, .. } if *room_id == room).then_some(())
        })
        .await;
    }
    for (cl, what) in [(&mut x, "winner"), (&mut o, "loser")] {
        cl.send(&ClientMessage::Input {
            seq: 20,
            payload: &cell(8),
        })
        .await;
        let (code, message, req) = cl.expect_error().await;
        assert_eq!((code, req), (ErrorCode::NotInRoom, 0), "{what}: {message}");
    }
    x.close().await;
    o.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_player_in_one_room_cannot_reach_another() {
    let server = TestServer::start(config()).await;
    let (mut x1, _) = Client::tcp_hello(server.tcp).await;
    let (mut o1, _) = Client::tcp_hello(server.tcp).await;
    let (mut x2, _) = Client::ws_hello(server.ws).await;
    let (mut o2, _) = Client::ws_hello(server.ws).await;
    let (one, _) = x1.join("tictactoe").await;
    assert_eq!(o1.join("tictactoe").await.0, one);
    let (two, _) = x2.join("tictactoe").await;
    assert_ne!(two, one, "a full tictactoe room opens another");
    assert_eq!(o2.join("tictactoe").await.0, two);

    // Room one's move lands in room one only.
    x1.send(&ClientMessage::Input {
        seq: 1,
        payload: &cell(4),
    })
    .await;
    assert_eq!(next_board(&mut o1, &[EMPTY]).await, "....X....");
    // Room one's chat reaches room one only.
    assert!(matches!(
        x1.call(ClientMessage::Chat {
            req: 1,
            text: "only for room one"
        })
        .await,
        Ok(ServerMessage::Ok { req: 1 })
    ));
    for (cl, n) in [(&mut x2, 1), (&mut o2, 2)] {
        let seen = until_pong(cl, n).await;
        assert!(
            !seen
                .iter()
                .any(|m| matches!(m, ServerMessage::ChatLine { .. })),
            "room two heard room one: {seen:?}"
        );
    }
    // Room two's board starts empty: its first move is the only mark on it.
    x2.send(&ClientMessage::Input {
        seq: 1,
        payload: &cell(0),
    })
    .await;
    assert_eq!(next_board(&mut o2, &[EMPTY]).await, "X........");
    // Leaving room one ends room one's match, not room two's.
    assert!(matches!(
        x1.call(ClientMessage::Leave { req: 2 }).await,
        Ok(ServerMessage::Left { room_id, .. }) if room_id == one
    ));
    o2.send(&ClientMessage::Input {
        seq: 1,
        payload: &cell(1),
    })
    .await;
    assert_eq!(
        next_board(&mut x2, &[EMPTY, "X........"]).await,
        "XO......."
    );
    let seen = until_pong(&mut x2, 3).await;
    assert!(
        !seen
            .iter()
            .any(|m| matches!(m, ServerMessage::RoomClosed { .. })),
        "{seen:?}"
    );
    for cl in [x1, o1, x2, o2] {
        cl.close().await;
    }
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 2. Player data
// ---------------------------------------------------------------------------------------

/// A raw request body: `fields` after the type, as MessagePack values already encoded.
fn body(kind: u64, fields: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    msgpack::write_array_len(&mut out, fields.len() as u32 + 1);
    msgpack::write_uint(&mut out, kind);
    for f in fields {
        out.extend_from_slice(f);
    }
    out
}

fn uint(v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    msgpack::write_uint(&mut out, v);
    out
}

fn text(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    msgpack::write_str(&mut out, s);
    out
}

fn boolean(v: bool) -> Vec<u8> {
    let mut out = Vec::new();
    msgpack::write_bool(&mut out, v);
    out
}

/// Sends a raw request body and waits for the reply to `req`.
async fn raw_call(c: &mut Client, req: u32, raw: &[u8]) -> Reply {
    c.send_body(raw).await;
    let reply = c
        .expect("a reply", |m| match m {
            ServerMessage::Written { req: r, .. }
            | ServerMessage::Ok { req: r }
            | ServerMessage::Data { req: r, .. }
                if *r == req =>
            {
                Some(m.clone())
            }
            ServerMessage::Error { req: r, .. } | ServerMessage::Conflict { req: r, .. }
                if *r == req =>
            {
                Some(m.clone())
            }
            _ => None,
        })
        .await;
    match reply {
        ServerMessage::Error { code, message, .. } => Err((code, message)),
        ServerMessage::Conflict { message, .. } => Err((ErrorCode::Conflict, message)),
        other => Ok(other),
    }
}

#[tokio::test]
async fn another_players_data_cannot_be_read_privately_or_written_at_all() {
    for db in TestDb::both().await {
        let backend = db.backend();
        let server = start_with_db(accounts_config(&db), &db).await;
        let (mut a, _) = Client::tcp_hello(server.tcp).await;
        let (mut b, _) = Client::ws_hello(server.ws).await;
        let device_a = device_id();
        let (ida, _) = a.login(&device_a).await;
        b.login(&device_id()).await;
        assert_eq!(a.put("secret", r#"{"gold":100}"#, 0, false).await, Ok(1));
        assert_eq!(a.put("card", r#""hello""#, 0, true).await, Ok(1));
        assert_eq!(a.put("card", r#""hello again""#, 1, true).await, Ok(2));

        // Reads: the private entry reads exactly as a missing one (neither its value nor
        // its existence leaks), the public one is readable.
        assert_eq!(
            b.get(ida, "secret").await,
            Ok((None, 0, false)),
            "{backend}"
        );
        assert_eq!(
            b.get(ida, "no-such-key").await,
            Ok((None, 0, false)),
            "{backend}"
        );
        assert_eq!(
            b.get(ida, "card").await,
            Ok((Some(r#""hello again""#.into()), 2, true)),
            "{backend}"
        );

        // Writes and deletes carry no owner: B's requests act on B's own entries, even
        // with an owner smuggled in as an extra field (which readers ignore).
        let put = |req: u64, key: &str, value: &str, expected: u64, owner: u64| {
            body(
                9,
                &[
                    uint(req),
                    text(key),
                    text(value),
                    uint(expected),
                    boolean(false),
                    uint(owner),
                ],
            )
        };
        // Expected version 2 is A's card's version: for B's (missing) card it conflicts.
        let (code, message) = raw_call(&mut b, 11, &put(11, "card", r#""pwned""#, 2, ida))
            .await
            .unwrap_err();
        assert_eq!(code, ErrorCode::Conflict, "{backend}: {message}");
        assert!(message.contains("none"), "B has no card: {message}");
        let (code, _) = raw_call(&mut b, 12, &put(12, "secret", r#"{"gold":0}"#, 1, ida))
            .await
            .unwrap_err();
        assert_eq!(code, ErrorCode::Conflict, "{backend}: B has no secret");
        // Creating them creates B's.
        assert!(matches!(
            raw_call(&mut b, 13, &put(13, "card", r#""mine""#, 0, ida)).await,
            Ok(ServerMessage::Written { version: 1, .. })
        ));
        let delete = |req: u64, key: &str, expected: u64, owner: u64| {
            body(10, &[uint(req), text(key), uint(expected), uint(owner)])
        };
        let (code, _) = raw_call(&mut b, 14, &delete(14, "secret", 1, ida))
            .await
            .unwrap_err();
        assert_eq!(code, ErrorCode::Conflict, "{backend}: B has no secret");
        assert!(matches!(
            raw_call(&mut b, 15, &delete(15, "card", 1, ida)).await,
            Ok(ServerMessage::Ok { req: 15 })
        ));
        // The owner (a new connection, logged in again) reads its entries back unchanged.
        let mut again = Client::tcp(server.tcp).await;
        again.hello().await;
        assert_eq!(again.login(&device_a).await.0, ida);
        assert_eq!(
            again.get(0, "secret").await,
            Ok((Some(r#"{"gold":100}"#.into()), 1, false)),
            "{backend}"
        );
        assert_eq!(
            again.get(ida, "card").await,
            Ok((Some(r#""hello again""#.into()), 2, true)),
            "{backend}"
        );
        assert_eq!(b.get(0, "card").await, Ok((None, 0, false)), "{backend}");

        // Made private again, the public entry is no longer readable by others.
        assert_eq!(a.put("card", r#""hello again""#, 2, false).await, Ok(3));
        assert_eq!(b.get(ida, "card").await, Ok((None, 0, false)));

        for cl in [a, b, again] {
            cl.close().await;
        }
        server.shutdown().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn data_requests_need_a_login_on_any_server() {
    let db = TestDb::sqlite();
    // Even where guests may play (auth_required = false), data needs an account.
    for auth_required in [true, false] {
        let config = db.config(Config {
            auth_required,
            ..config()
        });
        let server = start_with_db(config, &db).await;
        let (mut owner, _) = Client::tcp_hello(server.tcp).await;
        let (ida, _) = owner.login(&device_id()).await;
        assert_eq!(owner.put("save", "1", 0, true).await, Ok(1));

        let (mut guest, _) = Client::tcp_hello(server.tcp).await;
        let requests = [
            ClientMessage::GetData {
                req: 1,
                owner: 0,
                key: "save",
            },
            ClientMessage::GetData {
                req: 2,
                owner: ida,
                key: "save",
            },
            ClientMessage::PutData {
                req: 3,
                key: "save",
                value: "2",
                expected_version: 1,
                public: true,
            },
            ClientMessage::DeleteData {
                req: 4,
                key: "save",
                expected_version: 1,
            },
            ClientMessage::GetProfile {
                req: 5,
                account_id: ida,
            },
            ClientMessage::SetName { req: 6, name: "x" },
        ];
        for r in requests {
            let what = format!("{r:?} (auth_required = {auth_required})");
            assert_refused(guest.call(r).await, ErrorCode::Unauthorized, &what);
        }
        assert_eq!(
            owner.get(0, "save").await,
            Ok((Some("1".into()), 1, true)),
            "untouched"
        );
        guest.close().await;
        owner.close().await;
        server.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------
// 3. Impersonation
// ---------------------------------------------------------------------------------------

/// `hello` with optional resume and session tokens; returns welcome's account id.
async fn hello_with_tokens(c: &mut Client, resume: Option<&str>, token: Option<&str>) -> u64 {
    c.send(&ClientMessage::Hello {
        version: 1,
        client: "t",
        resume,
        token,
    })
    .await;
    match c.recv().await {
        Some(ServerMessage::Welcome { account_id, .. }) => account_id,
        other => panic!("expected welcome, got {other:?}"),
    }
}

/// `token` with its account id field replaced by `account` (the signature left as is).
fn with_account(token: &str, account: u64) -> String {
    let mut raw = URL_SAFE_NO_PAD.decode(token).expect("a base64url token");
    raw[1..9].copy_from_slice(&account.to_be_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

#[tokio::test]
async fn forged_session_tokens_grant_no_account() {
    let db = TestDb::sqlite();
    let server = start_with_db(accounts_config(&db), &db).await;
    let (mut a, _) = Client::tcp_hello(server.tcp).await;
    let (mut b, _) = Client::tcp_hello(server.tcp).await;
    let (ida, token_a) = a.login(&device_id()).await;
    let (idb, token_b) = b.login(&device_id()).await;
    assert_eq!(a.put("secret", r#""a's""#, 0, false).await, Ok(1));

    // B's genuine token re-labelled with A's account id: the signature no longer fits.
    let relabelled = with_account(&token_b, ida);
    assert_eq!(relabelled.len(), token_b.len());
    let mut c = Client::tcp(server.tcp).await;
    assert_eq!(hello_with_tokens(&mut c, None, Some(&relabelled)).await, 0);
    assert_eq!(c.expect_error().await.0, ErrorCode::Unauthorized);
    assert_refused(
        c.call(ClientMessage::GetData {
            req: 1,
            owner: ida,
            key: "secret",
        })
        .await,
        ErrorCode::Unauthorized,
        "a relabelled token",
    );
    assert_refused(
        c.call(ClientMessage::GetData {
            req: 2,
            owner: 0,
            key: "secret",
        })
        .await,
        ErrorCode::Unauthorized,
        "a relabelled token, own data",
    );

    // A session token is not a credential for `login`: as a device id it is just a
    // (new) device, not the token's account; other providers do not exist.
    let (as_device, _) = c.login(&token_a).await;
    assert_ne!(as_device, ida);
    assert_ne!(as_device, idb);
    assert_eq!(c.get(ida, "secret").await, Ok((None, 0, false)));
    assert_eq!(c.get(0, "secret").await, Ok((None, 0, false)));
    for provider in ["session", "token", ""] {
        let r = c
            .call(ClientMessage::Login {
                req: 3,
                provider,
                credential: &token_a,
            })
            .await;
        assert_refused(r, ErrorCode::InvalidArgument, provider);
    }
    // `custom` without a login backend.
    assert_refused(
        c.call(ClientMessage::Login {
            req: 4,
            provider: "custom",
            credential: &token_a,
        })
        .await,
        ErrorCode::Unauthorized,
        "custom",
    );
    // Still the device account after the refused logins.
    match c
        .call(ClientMessage::GetProfile {
            req: 5,
            account_id: 0,
        })
        .await
    {
        Ok(ServerMessage::Profile { account_id, .. }) => assert_eq!(account_id, as_device),
        other => panic!("{other:?}"),
    }
    // A's entry is untouched.
    assert_eq!(
        a.get(0, "secret").await,
        Ok((Some(r#""a's""#.into()), 1, false))
    );
    for cl in [a, b, c] {
        cl.close().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn another_accounts_resume_token_takes_no_seat_held_or_connected() {
    let db = TestDb::sqlite();
    let config = Config {
        reconnect_grace_ms: 3_000,
        ..accounts_config(&db)
    };
    let server = start_with_db(config.clone(), &db).await;
    let mut a = Client::tcp(server.tcp).await;
    let (_, resume_a) = a.hello_with(None).await;
    let (ida, token_a) = a.login(&device_id()).await;
    let (room, pa) = a.join("arena").await;
    let (mut b, _) = Client::tcp_hello(server.tcp).await;
    let (_, token_b) = b.login(&device_id()).await;
    b.close().await;
    let (mut watcher, _) = Client::tcp_hello(server.tcp).await;
    watcher.login(&device_id()).await;
    assert_eq!(watcher.join("arena").await.0, room);

    // While A is connected: B's session, no session, and a token forged for A.
    let forged = rally_auth::TokenSigner::new(
        b"not the server's secret, 32 bytes",
        Duration::from_secs(60),
    )
    .issue(ida, std::time::SystemTime::now())
    .unwrap()
    .token;
    for (what, token) in [
        ("B's session", Some(token_b.as_str())),
        ("no session", None),
        ("a forged session", Some(forged.as_str())),
    ] {
        let mut thief = Client::tcp(server.tcp).await;
        let account = hello_with_tokens(&mut thief, Some(&resume_a), token).await;
        assert_ne!(account, ida, "{what}");
        if what == "a forged session" {
            let (code, _, req) = thief.expect_error().await;
            assert_eq!((code, req), (ErrorCode::Unauthorized, 0), "{what}");
        }
        let (code, message, req) = thief.expect_error().await;
        assert_eq!(
            (code, req),
            (ErrorCode::ResumeFailed, 0),
            "{what}: {message}"
        );
        // The thief sits in no room.
        if token == Some(token_b.as_str()) {
            input_refused(&mut thief, 1, what).await;
            assert_refused(
                thief.call(ClientMessage::Leave { req: 1 }).await,
                ErrorCode::NotInRoom,
                what,
            );
        }
        thief.close().await;
    }
    // A still holds its seat: nothing closed on it, and its inputs apply.
    let seen = until_pong(&mut a, 1).await;
    assert!(
        !seen
            .iter()
            .any(|m| matches!(m, ServerMessage::RoomClosed { .. })),
        "{seen:?}"
    );
    a.input(1, 0.0, 0.0).await;
    until_seq(&mut a, 1).await;

    // A drops: its seat is held. B's session still cannot take it.
    a.close().await;
    let mut thief = Client::tcp(server.tcp).await;
    hello_with_tokens(&mut thief, Some(&resume_a), Some(&token_b)).await;
    assert_eq!(thief.expect_error().await.0, ErrorCode::ResumeFailed);
    thief.close().await;
    until_pong(&mut watcher, 1).await; // what was queued before now
    let (_, players) = arena_state_after(&mut watcher, 0).await;
    assert!(players.iter().any(|p| p.id == pa), "the seat is held");

    // After the grace even A's own session cannot resume it.
    watcher
        .expect("A's seat freed", |m| match m {
            ServerMessage::State { payload, .. } => {
                let ps = arena::decode_state(payload).expect("arena state");
                (!ps.iter().any(|p| p.id == pa)).then_some(())
            }
            _ => None,
        })
        .await;
    let mut late = Client::tcp(server.tcp).await;
    assert_eq!(
        hello_with_tokens(&mut late, Some(&resume_a), Some(&token_a)).await,
        ida
    );
    let (code, message, req) = late.expect_error().await;
    assert_eq!((code, req), (ErrorCode::ResumeFailed, 0), "{message}");
    input_refused(&mut late, 2, "after a failed resume").await;
    late.close().await;
    watcher.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_resume_token_takes_the_seat_once() {
    let server = TestServer::start(Config {
        reconnect_grace_ms: 10_000,
        ..config()
    })
    .await;
    let mut a = Client::tcp(server.tcp).await;
    let (_, token) = a.hello_with(None).await;
    let (room, pa) = a.join("arena").await;
    drop(a);
    eventually("A's session is gone", || server.handle.sessions() == 0).await;
    // Two connections present the same token at once: one gets the seat.
    let mut first = Client::tcp(server.tcp).await;
    let mut second = Client::tcp(server.tcp).await;
    for c in [&mut first, &mut second] {
        c.send(&ClientMessage::Hello {
            version: 1,
            client: "twin",
            resume: Some(&token),
            token: None,
        })
        .await;
    }
    let mut outcomes = Vec::new();
    for c in [&mut first, &mut second] {
        assert!(matches!(
            c.recv().await,
            Some(ServerMessage::Welcome { .. })
        ));
        let outcome = c
            .expect("joined or RESUME_FAILED", |m| match m {
                ServerMessage::Joined {
                    req: 0,
                    room_id,
                    player_id,
                    ..
                } => Some(Ok((*room_id, *player_id))),
                ServerMessage::Error { code, req: 0, .. } => Some(Err(*code)),
                _ => None,
            })
            .await;
        outcomes.push(outcome);
    }
    let winners = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(
        winners, 1,
        "exactly one connection took the seat: {outcomes:?}"
    );
    assert!(outcomes.contains(&Ok((room, pa))), "{outcomes:?}");
    assert!(
        outcomes.contains(&Err(ErrorCode::ResumeFailed)),
        "{outcomes:?}"
    );
    // The winner plays on undisturbed.
    let winner = if outcomes[0].is_ok() {
        &mut first
    } else {
        &mut second
    };
    let seen = until_pong(winner, 1).await;
    assert!(
        !seen
            .iter()
            .any(|m| matches!(m, ServerMessage::RoomClosed { .. })),
        "{seen:?}"
    );
    winner.input(1, 0.0, 0.0).await;
    until_seq(winner, 1).await;
    first.close().await;
    second.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_whose_seat_was_resumed_can_no_longer_act_for_it() {
    let server = TestServer::start(Config {
        reconnect_grace_ms: 10_000,
        ..config()
    })
    .await;
    let mut old = Client::tcp(server.tcp).await;
    let (_, token) = old.hello_with(None).await;
    let (room, p) = old.join("arena").await;
    let (mut b, _) = Client::tcp_hello(server.tcp).await;
    assert_eq!(b.join("arena").await.0, room);
    // The player's new connection takes the seat while the old one is still open.
    let mut new = Client::tcp(server.tcp).await;
    let (_, new_token) = new.hello_with(Some(&token)).await;
    assert_eq!(resumed(&mut new).await, (room, p));
    old.expect("room_closed", |m| {
        matches!(m, ServerMessage::RoomClosed { room_id, .. } if *room_id == room).then_some(())
    })
    .await;

    // The old connection is in no room: it cannot chat as the player.
    assert_refused(
        old.call(ClientMessage::Chat {
            req: 1,
            text: "still me",
        })
        .await,
        ErrorCode::NotInRoom,
        "chat from the displaced connection",
    );
    let seen = until_pong(&mut b, 1).await;
    assert!(
        !seen
            .iter()
            .any(|m| matches!(m, ServerMessage::ChatLine { .. })),
        "the room heard the displaced connection: {seen:?}"
    );
    // The new connection drops (the seat is held for it), then the old one leaves: the
    // seat stays held for the new connection's token.
    new.close().await;
    eventually("the new connection is gone", || {
        server.handle.sessions() == 2
    })
    .await;
    assert_refused(
        old.call(ClientMessage::Leave { req: 2 }).await,
        ErrorCode::NotInRoom,
        "leave from the displaced connection",
    );
    let mut back = Client::tcp(server.tcp).await;
    back.hello_with(Some(&new_token)).await;
    assert_eq!(
        resumed(&mut back).await,
        (room, p),
        "the held seat survived"
    );
    // And the old connection, being in no room, may join as a new player.
    let (room_again, p_again) = old.join("arena").await;
    assert_eq!(room_again, room);
    assert_ne!(p_again, p);
    for cl in [old, b, back] {
        cl.close().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn set_name_names_only_the_caller() {
    let db = TestDb::sqlite();
    let server = start_with_db(accounts_config(&db), &db).await;
    let (mut a, _) = Client::tcp_hello(server.tcp).await;
    let (mut b, _) = Client::tcp_hello(server.tcp).await;
    let (ida, _) = a.login(&device_id()).await;
    let (idb, _) = b.login(&device_id()).await;
    let (room, _) = a.join("arena").await;
    assert_eq!(b.join("arena").await.0, room);
    let (mut w, _) = Client::tcp_hello(server.tcp).await;
    w.login(&device_id()).await;
    assert_eq!(w.join("arena").await.0, room);
    assert!(matches!(
        a.call(ClientMessage::SetName {
            req: 1,
            name: "Alice"
        })
        .await,
        Ok(ServerMessage::Ok { req: 1 })
    ));
    assert_eq!(b.profile(ida).await.unwrap().0, "Alice");
    assert_eq!(a.profile(idb).await.unwrap().0, format!("player-{idb}"));
    assert_eq!(b.profile(0).await.unwrap().0, format!("player-{idb}"));
    // In chat too: each line carries its sayer's own name.
    for (c, line) in [(&mut a, "from a"), (&mut b, "from b")] {
        assert!(c
            .call(ClientMessage::Chat { req: 2, text: line })
            .await
            .is_ok());
    }
    let mut names = Vec::new();
    while names.len() < 2 {
        let line = w
            .expect("a chat line", |m| match m {
                ServerMessage::ChatLine { name, text, .. } => Some((name.clone(), text.clone())),
                _ => None,
            })
            .await;
        names.push(line);
    }
    assert_eq!(
        names,
        [
            ("Alice".to_owned(), "from a".to_owned()),
            (format!("player-{idb}"), "from b".to_owned())
        ]
    );
    for cl in [a, b, w] {
        cl.close().await;
    }
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 4. The admin API
// ---------------------------------------------------------------------------------------

/// One raw HTTP request with whatever headers; returns the status.
async fn raw_http(addr: std::net::SocketAddr, head: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let out = tokio::time::timeout(common::RECV_LIMIT, async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(head.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("read");
        out
    })
    .await
    .expect("an answer in time");
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {text}"))
}

#[tokio::test]
async fn every_admin_route_needs_the_exact_token_in_the_header() {
    let server = TestServer::start(admin_config()).await;
    let (mut p, session) = Client::tcp_hello(server.tcp).await;
    let (room, _) = p.join("arena").await;
    let routes = [
        ("GET", "/admin/rooms".to_owned()),
        ("GET", format!("/admin/rooms/{room}")),
        ("GET", "/admin/players".to_owned()),
        ("POST", format!("/admin/rooms/{room}/close")),
        ("POST", format!("/admin/players/{session}/kick")),
        ("POST", "/admin/drain".to_owned()),
    ];
    let mut last_byte = ADMIN_TOKEN.as_bytes().to_vec();
    *last_byte.last_mut().unwrap() ^= 1;
    let last_byte = String::from_utf8(last_byte).unwrap();
    let first_byte = format!("X{}", &ADMIN_TOKEN[1..]);
    let shorter = &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1];
    let longer = format!("{ADMIN_TOKEN}0");
    let upper = ADMIN_TOKEN.to_uppercase();
    let wrong: [Option<&str>; 7] = [
        None,
        Some(&last_byte),
        Some(&first_byte),
        Some(shorter),
        Some(&longer),
        Some(&upper),
        Some(""),
    ];
    for (method, path) in &routes {
        for token in wrong {
            let r = http(server.admin, method, path, token, None).await;
            assert_eq!(r.status, 401, "{method} {path} with {token:?}: {}", r.body);
            assert_eq!(r.json()["error"], "unauthorized", "{method} {path}");
            assert!(r.head.contains("www-authenticate: bearer"), "{}", r.head);
            assert!(!r.body.contains(ADMIN_TOKEN), "{}", r.body);
        }
        // Not in the query string, nor in another header.
        for query in ["token", "access_token", "admin_token", "bearer"] {
            let r = http(
                server.admin,
                method,
                &format!("{path}?{query}={ADMIN_TOKEN}"),
                None,
                None,
            )
            .await;
            assert_eq!(r.status, 401, "{method} {path}?{query}=...");
        }
        for header in [
            format!("X-Admin-Token: {ADMIN_TOKEN}"),
            format!("Authorization: {ADMIN_TOKEN}"),
            format!("Authorization: Basic {ADMIN_TOKEN}"),
            format!("Cookie: admin_token={ADMIN_TOKEN}"),
        ] {
            let status = raw_http(
                server.admin,
                &format!(
                    "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{header}\r\nContent-Length: 0\r\n\r\n"
                ),
            )
            .await;
            assert_eq!(status, 401, "{method} {path} with {header:?}");
        }
    }
    // HEAD runs the GET handlers: guarded too.
    let status = raw_http(
        server.admin,
        "HEAD /admin/players HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 401);

    // None of the refused requests did anything.
    assert!(!server.handle.draining());
    assert_eq!(server.handle.rooms(), 1);
    assert_eq!(server.handle.sessions(), 1);
    p.send(&ClientMessage::Ping { nonce: 1 }).await;
    p.expect("pong: not kicked", |m| {
        matches!(m, ServerMessage::Pong { nonce: 1 }).then_some(())
    })
    .await;
    let r = http(server.admin, "GET", "/readyz", None, None).await;
    assert_eq!((r.status, r.json()), (200, json!({"ready": true})));

    // The exact token opens every route (the POSTs last: they change things).
    for (method, path) in &routes {
        let r = http(server.admin, method, path, Some(ADMIN_TOKEN), None).await;
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
    }
    assert!(server.handle.draining());
    assert_eq!(p.expect_closed().await, Some(ErrorCode::Kicked));
    server.shutdown().await;
}

#[tokio::test]
async fn health_readiness_and_metrics_need_no_token_and_ignore_one() {
    let server = TestServer::start(admin_config()).await;
    for token in [None, Some("wrong-token-0123456789"), Some(ADMIN_TOKEN)] {
        let r = http(server.admin, "GET", "/healthz", token, None).await;
        assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
        let r = http(server.admin, "GET", "/readyz", token, None).await;
        assert_eq!((r.status, r.json()), (200, json!({"ready": true})));
        let r = http(server.admin, "GET", "/metrics", token, None).await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains("rally_sessions"), "{}", r.body);
        assert!(!r.body.contains(ADMIN_TOKEN));
    }
    // They are read-only: POST is not allowed.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = http(server.admin, "POST", path, None, None).await;
        assert_eq!(r.status, 405, "POST {path}");
    }
    let r = http(
        server.admin,
        "POST",
        "/admin/drain",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    for token in [None, Some(ADMIN_TOKEN)] {
        let r = http(server.admin, "GET", "/readyz", token, None).await;
        assert_eq!(
            (r.status, r.json()),
            (503, json!({"ready": false, "reasons": ["draining"]}))
        );
        assert_eq!(
            http(server.admin, "GET", "/healthz", token, None)
                .await
                .status,
            200
        );
    }
    server.shutdown().await;
}
