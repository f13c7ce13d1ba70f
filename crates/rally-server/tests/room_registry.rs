//! Rooms a game can shape, over real sockets (protocol revision 2): create with options,
//! join by code or id, private rooms, locked rooms, join-or-create by filter keys,
//! listings with many rooms, unguessable ids and codes, and the game's refusals.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{admin_config, config, http, Client, Reply, TestServer, ADMIN_TOKEN};
use rally_server::game::{msgpack, Game, JoinContext, PlayerId, Refusal, RoomControl, Tick};
use rally_server::protocol::{ClientMessage, ErrorCode, ServerMessage, PROTOCOL_REVISION};
use rally_server::{Config, KindRules, Server};

/// Starts at two players, then locks itself and says so in its metadata; two teams.
#[derive(Default)]
struct Duel;

impl Game for Duel {
    fn leave(&mut self, _: PlayerId) {}
    fn input(&mut self, _: PlayerId, _: u32, _: &[u8]) -> Result<(), Refusal> {
        Ok(())
    }
    fn tick(&mut self, _: &mut Tick<'_>) {}
    fn start(&mut self, room: &mut RoomControl) {
        room.lock();
        room.set_metadata(&map(&[("started", &[0xc3])]))
            .expect("small metadata");
    }
}

/// Takes its first player and refuses everyone after, with a reason.
#[derive(Default)]
struct Picky {
    seated: usize,
}

impl Game for Picky {
    fn join_with(&mut self, _: PlayerId, ctx: &mut JoinContext<'_>) -> Result<(), Refusal> {
        if ctx.players() > 0 || self.seated > 0 {
            return Err(Refusal::new("this room wants one player only"));
        }
        self.seated += 1;
        Ok(())
    }
    fn leave(&mut self, _: PlayerId) {}
    fn input(&mut self, _: PlayerId, _: u32, _: &[u8]) -> Result<(), Refusal> {
        Ok(())
    }
    fn tick(&mut self, _: &mut Tick<'_>) {}
}

/// A MessagePack map of string keys to raw values.
fn map(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    msgpack::write_map_len(&mut out, entries.len() as u32);
    for (k, v) in entries {
        msgpack::write_str(&mut out, k);
        out.extend_from_slice(v);
    }
    out
}

fn s(v: &str) -> Vec<u8> {
    let mut out = Vec::new();
    msgpack::write_str(&mut out, v);
    out
}

fn mode(m: &str) -> Vec<u8> {
    map(&[("mode", &s(m))])
}

fn server_config() -> Config {
    Config {
        concurrency_limit: 3000,
        max_connections_per_ip: 10_000,
        connection_rate_per_ip: 10_000,
        admin_token: admin_config().admin_token,
        ..config()
    }
}

async fn start() -> TestServer {
    let mut games = rally_testkit::games();
    games.register_kind("duel", KindRules::new(4).min_players(2).teams(2), |_| {
        Ok(Duel)
    });
    games.register("picky", 4, Picky::default);
    games.register("solo", 1, Picky::default);
    TestServer::start_with(Server::builder(server_config(), games)).await
}

async fn player(server: &TestServer) -> Client {
    let mut c = Client::tcp(server.tcp).await;
    c.hello().await;
    c
}

/// What `joined` says: (room id, player id, code, team).
fn joined(reply: Reply) -> (u64, u32, String, u32) {
    match reply {
        Ok(ServerMessage::Joined {
            room_id,
            player_id,
            code,
            team,
            ..
        }) => (room_id, player_id, code, team),
        other => panic!("expected joined, got {other:?}"),
    }
}

fn refused(reply: Reply) -> (ErrorCode, String) {
    match reply {
        Err(e) => e,
        Ok(m) => panic!("expected an error, got {m:?}"),
    }
}

async fn create(c: &mut Client, kind: &str, options: &[u8], private: bool) -> Reply {
    c.call(ClientMessage::Create {
        req: 11,
        kind,
        options,
        private,
    })
    .await
}

async fn list(
    c: &mut Client,
    kind: &str,
    filter: &[u8],
    offset: u32,
    limit: u32,
) -> (u32, Vec<rally_server::protocol::RoomListing>) {
    match c
        .call(ClientMessage::ListRooms {
            req: 12,
            kind,
            filter,
            offset,
            limit,
        })
        .await
    {
        Ok(ServerMessage::Rooms { total, rooms, .. }) => (total, rooms.to_vec()),
        other => panic!("expected rooms, got {other:?}"),
    }
}

#[tokio::test]
async fn two_friends_meet_by_code_and_play() {
    let server = start().await;
    let mut ada = Client::tcp(server.tcp).await;
    let welcome_revision = {
        ada.send(&ClientMessage::Hello {
            version: 1,
            client: "test",
            resume: None,
            token: None,
        })
        .await;
        match ada.recv().await {
            Some(ServerMessage::Welcome { revision, .. }) => revision,
            other => panic!("expected welcome, got {other:?}"),
        }
    };
    assert_eq!(welcome_revision, PROTOCOL_REVISION);
    let (room, ada_id, code, _) = joined(create(&mut ada, "tictactoe", &[], true).await);
    assert_eq!(code.len(), 6);
    // Bob types the code as he heard it, in lower case, over WebSocket.
    let mut bob = Client::ws(server.ws).await;
    bob.hello().await;
    let (bob_room, bob_id, bob_code, _) = joined(
        bob.call(ClientMessage::JoinByCode {
            req: 3,
            code: &code.to_lowercase(),
        })
        .await,
    );
    assert_eq!((bob_room, bob_code), (room, code));
    assert_ne!(ada_id, bob_id);
    // Both see the match begin: the room sends each its view.
    for c in [&mut ada, &mut bob] {
        c.expect("a playing state", |m| match m {
            ServerMessage::State { payload, .. } => {
                let text = String::from_utf8_lossy(payload).to_string();
                text.contains("playing").then_some(())
            }
            _ => None,
        })
        .await;
    }
    // The match locked the room: a third player is turned away by id.
    let mut eve = player(&server).await;
    let (code, _) = refused(
        eve.call(ClientMessage::JoinById {
            req: 4,
            room_id: room,
        })
        .await,
    );
    assert!(
        matches!(code, ErrorCode::RoomLocked | ErrorCode::RoomFull),
        "{code}"
    );
}

#[tokio::test]
async fn a_private_room_is_never_listed_nor_joined_by_join_or_create() {
    let server = start().await;
    let mut host = player(&server).await;
    let (private_room, _, _, _) = joined(create(&mut host, "arena", &mode("speed"), true).await);
    let mut other = player(&server).await;
    let (total, rooms) = list(&mut other, "arena", &[], 0, 50).await;
    assert_eq!(total, 0, "{rooms:?}");
    let (public_room, _, _, _) = joined(
        other
            .call(ClientMessage::JoinOrCreate {
                req: 5,
                kind: "arena",
                options: &mode("speed"),
            })
            .await,
    );
    assert_ne!(public_room, private_room);
    let mut third = player(&server).await;
    let (total, rooms) = list(&mut third, "arena", &[], 0, 50).await;
    assert_eq!(total, 1);
    assert_eq!(rooms[0].room_id, public_room);
    assert!(rooms.iter().all(|r| r.room_id != private_room));
    // The plain `join` of revision 1 does not find it either.
    let (room, _) = third.join("arena").await;
    assert_ne!(room, private_room);
}

#[tokio::test]
async fn a_started_room_locks_itself_refuses_joins_and_shows_it_in_listings() {
    let server = start().await;
    let mut a = player(&server).await;
    let (room, _, code, team_a) = joined(create(&mut a, "duel", &[], false).await);
    let mut b = player(&server).await;
    let (room_b, _, _, team_b) = joined(
        b.call(ClientMessage::JoinById {
            req: 2,
            room_id: room,
        })
        .await,
    );
    assert_eq!(room_b, room);
    assert_eq!((team_a, team_b), (1, 2), "two teams, filled in turn");
    // The game started at two players and locked the room: joins are refused by id,
    // by code, and join_or_create opens another room.
    let mut c = player(&server).await;
    let (e, _) = refused(
        c.call(ClientMessage::JoinById {
            req: 3,
            room_id: room,
        })
        .await,
    );
    assert_eq!(e, ErrorCode::RoomLocked);
    let (e, _) = refused(
        c.call(ClientMessage::JoinByCode {
            req: 4,
            code: &code,
        })
        .await,
    );
    assert_eq!(e, ErrorCode::RoomLocked);
    let (other, _, _, _) = joined(
        c.call(ClientMessage::JoinOrCreate {
            req: 5,
            kind: "duel",
            options: &[0x80],
        })
        .await,
    );
    assert_ne!(other, room);
    let mut d = player(&server).await;
    let (total, rooms) = list(&mut d, "duel", &[], 0, 50).await;
    assert_eq!(total, 2);
    let listed = rooms.iter().find(|r| r.room_id == room).expect("listed");
    assert!(listed.locked);
    assert_eq!((listed.players, listed.max_players), (2, 4));
    assert_eq!(
        listed.metadata.as_ref(),
        map(&[("started", &[0xc3])]).as_slice()
    );
}

#[tokio::test]
async fn join_or_create_keeps_rooms_apart_by_their_filter_keys() {
    let server = start().await;
    let join_or_create = |options: Vec<u8>| {
        let addr = server.tcp;
        async move {
            let mut c = Client::tcp(addr).await;
            c.hello().await;
            let r = joined(
                c.call(ClientMessage::JoinOrCreate {
                    req: 1,
                    kind: "arena",
                    options: &options,
                })
                .await,
            );
            (c, r.0)
        }
    };
    let (_a, speed) = join_or_create(mode("speed")).await;
    let (_b, classic) = join_or_create(mode("classic")).await;
    let (_c, speed_again) = join_or_create(mode("speed")).await;
    // A key that is not a filter key does not split rooms.
    let (_d, speed_too) = join_or_create(map(&[("mode", &s("speed")), ("note", &s("hi"))])).await;
    // No mode is "classic" to the game but another filter value to the registry.
    let (_e, unset) = join_or_create(vec![0x80]).await;
    assert_ne!(speed, classic);
    assert_eq!(speed, speed_again);
    assert_eq!(speed, speed_too);
    assert!(unset != speed && unset != classic);
    // A listing filtered by mode sees only those rooms.
    let mut f = player(&server).await;
    let (total, rooms) = list(&mut f, "arena", &mode("speed"), 0, 50).await;
    assert_eq!(total, 1);
    assert_eq!(rooms[0].room_id, speed);
    assert_eq!(rooms[0].players, 3);
    assert_eq!(
        rooms[0].metadata.as_ref(),
        mode("speed").as_slice(),
        "arena publishes its mode"
    );
}

#[tokio::test]
async fn bad_options_and_the_games_refusals_reach_the_client() {
    let server = start().await;
    let mut c = player(&server).await;
    // Not a map; a map too deep; a map the game refuses (arena knows two modes).
    let (e, _) = refused(create(&mut c, "arena", &[0x92, 0x01, 0x02], false).await);
    assert_eq!(e, ErrorCode::BadOptions);
    let deep = map(&[("d", &[0x91, 0x91, 0x91, 0x91, 0x01])]);
    let (e, _) = refused(create(&mut c, "arena", &deep, false).await);
    assert_eq!(e, ErrorCode::BadOptions);
    let (e, message) = refused(create(&mut c, "arena", &mode("warp"), false).await);
    assert_eq!(e, ErrorCode::BadOptions);
    assert!(message.contains("classic"), "{message}");
    let (e, _) = refused(
        c.call(ClientMessage::ListRooms {
            req: 9,
            kind: "arena",
            filter: &[0x01],
            offset: 0,
            limit: 10,
        })
        .await,
    );
    assert_eq!(e, ErrorCode::BadOptions);
    let (e, _) = refused(create(&mut c, "nope", &[], false).await);
    assert_eq!(e, ErrorCode::UnknownRoomKind);
    // The connection is fine after all that, and the game's own refusal of a join
    // arrives with its reason.
    let (room, _, _, _) = joined(create(&mut c, "picky", &[], false).await);
    let mut d = player(&server).await;
    let (e, message) = refused(
        d.call(ClientMessage::JoinById {
            req: 2,
            room_id: room,
        })
        .await,
    );
    assert_eq!(e, ErrorCode::JoinRefused);
    assert_eq!(message, "this room wants one player only");
    // A refused join costs no seat: the room still lists one player.
    let (_, rooms) = list(&mut d, "picky", &[], 0, 10).await;
    assert_eq!(rooms[0].players, 1);
}

#[tokio::test]
async fn a_code_and_an_id_are_refused_once_their_room_ends() {
    let server = start().await;
    let mut host = player(&server).await;
    let (room, _, code, _) = joined(create(&mut host, "arena", &[], true).await);
    assert!(matches!(
        host.call(ClientMessage::Leave { req: 7 }).await,
        Ok(ServerMessage::Left { .. })
    ));
    let mut friend = player(&server).await;
    let (e, _) = refused(
        friend
            .call(ClientMessage::JoinByCode {
                req: 1,
                code: &code,
            })
            .await,
    );
    assert_eq!(e, ErrorCode::NoSuchRoom);
    let (e, _) = refused(
        friend
            .call(ClientMessage::JoinById {
                req: 2,
                room_id: room,
            })
            .await,
    );
    assert_eq!(e, ErrorCode::NoSuchRoom);
    // Codes that cannot exist are refused the same way, without a hint.
    for bad in ["", "ABC", "IIIIII", "ABCDEFG", "abc-12"] {
        let (e, _) = refused(
            friend
                .call(ClientMessage::JoinByCode { req: 3, code: bad })
                .await,
        );
        assert!(
            matches!(e, ErrorCode::NoSuchRoom | ErrorCode::InvalidArgument),
            "{bad:?}: {e}"
        );
    }
}

#[tokio::test]
async fn listings_stay_bounded_with_two_thousand_rooms_and_ids_are_not_guessable() {
    const ROOMS: usize = 2000;
    let server = start().await;
    let mut players = Vec::with_capacity(ROOMS);
    let mut ids = Vec::with_capacity(ROOMS);
    let mut codes = HashSet::new();
    // A few hundred at a time: each is a connection, a hello and a create.
    for chunk in 0..ROOMS / 200 {
        let made = futures_util::future::join_all((0..200).map(|i| {
            let addr = server.tcp;
            async move {
                let mut c = Client::tcp(addr).await;
                c.hello().await;
                // Every fourth room is private: never listed.
                let private = (chunk * 200 + i) % 4 == 0;
                let r = joined(create(&mut c, "solo", &[], private).await);
                (c, r, private)
            }
        }))
        .await;
        for (c, (id, _, code, _), private) in made {
            players.push(c);
            ids.push((id, private));
            codes.insert(code);
        }
    }
    assert_eq!(codes.len(), ROOMS, "every live room has its own code");
    for code in &codes {
        assert!(
            code.bytes()
                .all(|b| b"ABCDEFGHJKMNPQRSTUVWXYZ23456789".contains(&b)),
            "{code}"
        );
    }
    // Ids are random below 2^53: rooms opened one after another are not neighbours.
    assert!(ids.iter().all(|(id, _)| *id > 0 && *id < 1 << 53));
    let neighbours = ids
        .windows(2)
        .filter(|w| w[0].0.abs_diff(w[1].0) < 1000)
        .count();
    assert!(
        neighbours < 5,
        "{neighbours} rooms opened in a row have close ids"
    );

    let mut reader = player(&server).await;
    let public = ids.iter().filter(|(_, p)| !p).count() as u32;
    let started = Instant::now();
    let (total, page) = list(&mut reader, "solo", &[], 0, 100_000).await;
    let first = started.elapsed();
    assert_eq!(total, public);
    assert_eq!(page.len(), 50, "a page is capped at 50");
    let private: HashSet<u64> = ids.iter().filter(|(_, p)| *p).map(|(id, _)| *id).collect();
    // Walk every page: no private room, no room twice, all public ones once.
    let mut seen = HashSet::new();
    let mut offset = 0;
    loop {
        let (t, page) = list(&mut reader, "solo", &[], offset, 50).await;
        assert_eq!(t, total);
        if page.is_empty() {
            break;
        }
        for r in &page {
            assert!(!private.contains(&r.room_id));
            assert!(seen.insert(r.room_id));
        }
        offset += page.len() as u32;
    }
    assert_eq!(seen.len() as u32, public);
    // A filtered listing walks the kind's rooms: still quick at 2,000.
    let started = Instant::now();
    let (t, _) = list(&mut reader, "solo", &mode("none"), 0, 50).await;
    assert_eq!(t, 0);
    let filtered = started.elapsed();
    println!("2,000 rooms: first page in {first:?}, a filtered listing in {filtered:?}");
    assert!(first < Duration::from_secs(1) && filtered < Duration::from_secs(1));
    drop(players);
}

#[tokio::test]
async fn the_admin_api_shows_codes_options_metadata_locks_and_teams() {
    let server = start().await;
    let mut a = player(&server).await;
    let (arena_room, _, arena_code, _) =
        joined(create(&mut a, "arena", &mode("speed"), true).await);
    let mut b = player(&server).await;
    let (duel, _, _, _) = joined(create(&mut b, "duel", &[], false).await);
    let mut c = player(&server).await;
    joined(
        c.call(ClientMessage::JoinById {
            req: 2,
            room_id: duel,
        })
        .await,
    );
    // The arena publishes its mode once its first player sits down; the duel locks at two.
    // (Both are set before the joins that cause them are answered; the loop only
    // bounds the wait should that ever change.)
    let mut rooms = Vec::new();
    for _ in 0..100 {
        let r = http(server.admin, "GET", "/admin/rooms", Some(ADMIN_TOKEN), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        rooms = r.json()["rooms"].as_array().cloned().unwrap_or_default();
        if rooms.len() == 2 && rooms.iter().all(|r| !r["metadata"].is_null()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let arena = rooms
        .iter()
        .find(|r| r["id"] == arena_room)
        .expect("the arena is listed");
    assert_eq!(arena["code"], arena_code.as_str());
    assert_eq!(arena["private"], true);
    assert_eq!(arena["locked"], false);
    assert_eq!(arena["options"], serde_json::json!({"mode": "speed"}));
    assert_eq!(arena["metadata"], serde_json::json!({"mode": "speed"}));
    let duel_json = rooms
        .iter()
        .find(|r| r["id"] == duel)
        .expect("the duel is listed");
    assert_eq!(duel_json["locked"], true);
    assert_eq!(duel_json["metadata"], serde_json::json!({"started": true}));
    let detail = http(
        server.admin,
        "GET",
        &format!("/admin/rooms/{duel}"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await
    .json();
    let teams: Vec<u64> = detail["players"]
        .as_array()
        .expect("seats")
        .iter()
        .filter_map(|p| p["team"].as_u64())
        .collect();
    assert_eq!(teams, vec![1, 2]);
}
