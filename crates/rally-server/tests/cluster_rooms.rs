//! Every kind of join and the listing across nodes, over a real nats-server and real
//! sockets (raw protocol clients, so each redirect and claim is seen on the wire): two
//! friends on different nodes meet by code, join by id and join-or-create with options
//! reach another node's room, `create` goes to the least-loaded node, refusals are the
//! owner's, and a listing from any node shows every node's public rooms and no private
//! one. Skipped with a marked line when no nats-server is installed
//! (`eval "$(scripts/nats.sh)"`).

mod cluster_nodes;
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rally_protocol::{ClientMessage, ErrorCode, RoomListing, ServerMessage};
use rally_testkit::{eventually, NatsServer, TestServer};

use cluster_nodes::{cluster, quick_stop};
use common::Client as Raw;

/// `{"mode": mode}` as MessagePack.
fn mode(mode: &str) -> Vec<u8> {
    let mut v = vec![0x81, 0xa4];
    v.extend_from_slice(b"mode");
    v.push(0xa0 | u8::try_from(mode.len()).expect("a short mode"));
    v.extend_from_slice(mode.as_bytes());
    v
}

/// What a joining request got: seated where it was sent, or sent on.
#[derive(Debug)]
enum Answer {
    Joined {
        room_id: u64,
        code: String,
    },
    Redirect {
        node: String,
        tcp: String,
        ticket: String,
        room_id: u64,
    },
    Refused(ErrorCode),
}

async fn answer(c: &mut Raw, req: u32) -> Answer {
    c.expect("an answer to the join", |m| match m {
        ServerMessage::Joined {
            req: r,
            room_id,
            code,
            ..
        } if *r == req => Some(Answer::Joined {
            room_id: *room_id,
            code: code.clone(),
        }),
        ServerMessage::Redirect {
            req: r,
            node,
            tcp,
            ticket,
            room_id,
            ..
        } if *r == req => Some(Answer::Redirect {
            node: node.clone(),
            tcp: tcp.clone(),
            ticket: ticket.clone(),
            room_id: *room_id,
        }),
        ServerMessage::Error { req: r, code, .. } if *r == req => Some(Answer::Refused(*code)),
        _ => None,
    })
    .await
}

/// A player connected (and greeted) on `addr`.
async fn player(addr: SocketAddr) -> Raw {
    let mut c = Raw::tcp(addr).await;
    c.hello().await;
    c
}

/// Follows a redirect as a client does: connects to the owner, claims the seat there.
/// Returns the new connection, the owner's node id, the room and its code.
async fn follow(a: Answer) -> (Raw, String, u64, String) {
    let Answer::Redirect {
        node,
        tcp,
        ticket,
        room_id,
    } = a
    else {
        panic!("expected a redirect, got {a:?}");
    };
    let mut c = player(tcp.parse().expect("an address")).await;
    c.send(&ClientMessage::ClaimSeat {
        req: 50,
        ticket: &ticket,
    })
    .await;
    match answer(&mut c, 50).await {
        Answer::Joined { room_id: r, code } => {
            assert_eq!(r, room_id, "the ticket's room");
            (c, node, r, code)
        }
        other => panic!("the claim failed: {other:?}"),
    }
}

/// Seated where asked (`here`) or through the redirect: the connection holding the
/// seat, its node, the room and its code.
async fn seated(c: Raw, here: &str, a: Answer) -> (Raw, String, u64, String) {
    match a {
        Answer::Joined { room_id, code } => (c, here.to_owned(), room_id, code),
        redirect => {
            c.close().await;
            follow(redirect).await
        }
    }
}

fn joined(a: Answer) -> (u64, String) {
    match a {
        Answer::Joined { room_id, code } => (room_id, code),
        other => panic!("expected joined here, got {other:?}"),
    }
}

async fn list(c: &mut Raw, filter: &[u8]) -> (u32, Vec<RoomListing>) {
    c.send(&ClientMessage::ListRooms {
        req: 40,
        kind: "arena",
        filter,
        offset: 0,
        limit: 50,
    })
    .await;
    c.expect("rooms", |m| match m {
        ServerMessage::Rooms {
            req: 40,
            total,
            rooms,
        } => Some((*total, rooms.iter().collect())),
        ServerMessage::Error {
            req: 40,
            code,
            message,
        } => panic!("list_rooms: {code} {message}"),
        _ => None,
    })
    .await
}

/// Plays a few inputs and returns once a state applied the last one.
async fn plays(c: &mut Raw) {
    for seq in 1..=3 {
        c.input(seq, 1.0, 0.0).await;
    }
    c.expect("a state with input 3", |m| match m {
        ServerMessage::State { last_seq, .. } if *last_seq >= 3 => Some(()),
        ServerMessage::RoomClosed { .. } => panic!("the room closed"),
        _ => None,
    })
    .await;
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

async fn shutdown(nodes: Vec<TestServer>) {
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_on_different_nodes_meet_by_code_and_play_in_one_room() {
    let Some(nats) = NatsServer::start("friends meet by code across nodes") else {
        return;
    };
    let nodes = cluster(&nats, &["a", "b", "c"], quick_stop).await;
    let by_id = |id: &str| {
        nodes
            .iter()
            .find(|n| n.handle.node_id() == Some(id))
            .expect("a node")
    };
    let mut local_creates = Vec::new();
    let mut code_joins = Vec::new();
    let mut seated_players = Vec::new();
    for round in 0..3 {
        // The host creates a private room through a: on a while it is the least loaded
        // (round 0), else on the least-loaded node. The friend, on another node, joins by
        // its code at once, before the owner's next heartbeat may have put the room in
        // the directory (then the friend's node asks every node).
        let mut host = player(nodes[0].tcp).await;
        let started = Instant::now();
        host.send(&ClientMessage::Create {
            req: 1,
            kind: "arena",
            options: &[],
            private: true,
        })
        .await;
        let first = answer(&mut host, 1).await;
        if round == 0 {
            local_creates.push(started.elapsed());
        }
        let (mut host, owner, room, code) = seated(host, "a", first).await;
        assert_eq!(code.len(), 6);
        let others: Vec<&TestServer> = nodes
            .iter()
            .filter(|n| n.handle.node_id() != Some(owner.as_str()))
            .collect();
        let mut friend = player(others[0].tcp).await;
        let started = Instant::now();
        // Lower case: the code is matched as typed, on another node too.
        let typed = code.to_ascii_lowercase();
        friend
            .send(&ClientMessage::JoinByCode {
                req: 2,
                code: &typed,
            })
            .await;
        let (mut friend, friend_owner, friend_room, friend_code) =
            follow(answer(&mut friend, 2).await).await;
        code_joins.push(started.elapsed());
        assert_eq!(
            (&friend_owner, friend_room),
            (&owner, room),
            "round {round}"
        );
        assert_eq!(friend_code, code);
        // Both play in that room.
        plays(&mut host).await;
        plays(&mut friend).await;
        let seats = by_id(&owner).handle.seats().await;
        assert_eq!(
            seats.iter().filter(|s| s.room_id == room).count(),
            2,
            "{seats:?}"
        );
        // A code from a node that has it in its directory, once the heartbeat ran.
        let third_node = others[1];
        let h = third_node.handle.clone();
        eventually("the third node sees the private room", || {
            h.cluster_rooms()
                .iter()
                .any(|(n, id)| *n == owner && *id == room)
        })
        .await;
        let mut third = player(third_node.tcp).await;
        third
            .send(&ClientMessage::JoinByCode {
                req: 3,
                code: &code,
            })
            .await;
        let (third, third_owner, third_room, _) = follow(answer(&mut third, 3).await).await;
        assert_eq!((&third_owner, third_room), (&owner, room));
        third.close().await;
        // Not listed anywhere: private.
        for n in &nodes {
            let mut lister = player(n.tcp).await;
            let (_, rooms) = list(&mut lister, &[]).await;
            assert!(rooms.iter().all(|r| r.room_id != room), "{rooms:?}");
        }
        seated_players.push((host, friend));
    }
    let c = &nodes[2];
    // A code nobody holds: NO_SUCH_ROOM from every node, as on one.
    let mut stranger = player(c.tcp).await;
    stranger
        .send(&ClientMessage::JoinByCode {
            req: 4,
            code: "ZZZZZZ",
        })
        .await;
    assert!(matches!(
        answer(&mut stranger, 4).await,
        Answer::Refused(ErrorCode::NoSuchRoom)
    ));
    drop(seated_players);
    eprintln!(
        "create here {:?}; join by code through a redirect (redirect, connect, hello, claim), median {:?}",
        median(local_creates),
        median(code_joins)
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_goes_to_the_least_loaded_node_and_its_code_works_from_any_node() {
    let Some(nats) = NatsServer::start("create on the least-loaded node") else {
        return;
    };
    let nodes = cluster(&nats, &["a", "b", "c"], quick_stop).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    // a and c carry a player each; b is the least loaded.
    let mut busy = Vec::new();
    let mut busy_rooms = Vec::new();
    for n in [a, c] {
        let mut p = player(n.tcp).await;
        busy_rooms.push(p.join("arena").await.0);
        busy.push(p);
    }
    let ah = a.handle.clone();
    eventually("a sees every node's load", || ah.cluster_rooms().len() == 2).await;
    let mut host = player(a.tcp).await;
    let started = Instant::now();
    host.send(&ClientMessage::Create {
        req: 1,
        kind: "tictactoe",
        options: &[],
        private: true,
    })
    .await;
    let (mut host, owner, room, code) = follow(answer(&mut host, 1).await).await;
    eprintln!("create through a redirect: {:?}", started.elapsed());
    assert_eq!(owner, "b");
    assert_eq!(b.handle.rooms(), 1, "the room is on b");
    // The friend on c joins by the code the host got; the room then locks (tic-tac-toe
    // starts with two), and a third player gets the owner's refusal, from any node.
    let mut friend = player(c.tcp).await;
    friend
        .send(&ClientMessage::JoinByCode {
            req: 2,
            code: &code,
        })
        .await;
    let (friend, owner, friend_room, _) = follow(answer(&mut friend, 2).await).await;
    assert_eq!((owner.as_str(), friend_room), ("b", room));
    let mut local = player(b.tcp).await;
    local
        .send(&ClientMessage::JoinByCode {
            req: 3,
            code: &code,
        })
        .await;
    let Answer::Refused(here) = answer(&mut local, 3).await else {
        panic!("a third player joined a two-seat room");
    };
    assert!(
        matches!(here, ErrorCode::RoomLocked | ErrorCode::RoomFull),
        "{here}"
    );
    for (n, req) in [(a, 4), (c, 5)] {
        let mut far = player(n.tcp).await;
        far.send(&ClientMessage::JoinByCode { req, code: &code })
            .await;
        assert!(
            matches!(answer(&mut far, req).await, Answer::Refused(e) if e == here),
            "the same refusal as on the owner"
        );
        far.send(&ClientMessage::JoinById {
            req: req + 10,
            room_id: room,
        })
        .await;
        assert!(matches!(answer(&mut far, req + 10).await, Answer::Refused(e) if e == here));
    }
    // A draining node sends a join by id elsewhere too: a player connected to a before
    // the drain joins c's room through it.
    let mut early = player(a.tcp).await;
    let r = common::http(
        a.admin,
        "POST",
        "/admin/drain",
        Some(cluster_nodes::TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    early
        .send(&ClientMessage::JoinById {
            req: 6,
            room_id: busy_rooms[1],
        })
        .await;
    let (early, owner, r, _) = follow(answer(&mut early, 6).await).await;
    assert_eq!((owner.as_str(), r), ("c", busy_rooms[1]));
    early.close().await;
    host.send(&ClientMessage::Leave { req: 9 }).await;
    friend.close().await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_by_id_and_join_or_create_with_options_reach_another_nodes_room() {
    let Some(nats) = NatsServer::start("join by id and options across nodes") else {
        return;
    };
    let nodes = cluster(&nats, &["a", "b", "c"], quick_stop).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    // A public speed room on a.
    let mut host = player(a.tcp).await;
    let speed = mode("speed");
    let started = Instant::now();
    host.send(&ClientMessage::JoinOrCreate {
        req: 1,
        kind: "arena",
        options: &speed,
    })
    .await;
    let (room, _) = joined(answer(&mut host, 1).await);
    let local_join = started.elapsed();
    // By id from b: the owner's seat, at once (b asks every node when its directory
    // does not name the room yet).
    let mut by_id = player(b.tcp).await;
    let started = Instant::now();
    by_id
        .send(&ClientMessage::JoinById {
            req: 2,
            room_id: room,
        })
        .await;
    let (mut by_id, owner, r, _) = follow(answer(&mut by_id, 2).await).await;
    let id_join = started.elapsed();
    assert_eq!((owner.as_str(), r), ("a", room));
    plays(&mut by_id).await;
    // join_or_create speed from c: a's speed room, once c's directory shows it.
    let ch = c.handle.clone();
    eventually("c sees a's room", || {
        ch.cluster_rooms()
            .iter()
            .any(|(n, id)| n == "a" && *id == room)
    })
    .await;
    let mut fan = player(c.tcp).await;
    let started = Instant::now();
    fan.send(&ClientMessage::JoinOrCreate {
        req: 3,
        kind: "arena",
        options: &speed,
    })
    .await;
    let (fan, owner, r, _) = follow(answer(&mut fan, 3).await).await;
    let options_join = started.elapsed();
    assert_eq!((owner.as_str(), r), ("a", room));
    // classic from c: no classic room anywhere, c is among the least loaded: here.
    let mut other = player(c.tcp).await;
    other
        .send(&ClientMessage::JoinOrCreate {
            req: 4,
            kind: "arena",
            options: &mode("classic"),
        })
        .await;
    let (classic, _) = joined(answer(&mut other, 4).await);
    assert_ne!(classic, room);
    assert_eq!(a.handle.rooms(), 1);
    // An id nobody holds.
    let mut stranger = player(b.tcp).await;
    stranger
        .send(&ClientMessage::JoinById {
            req: 5,
            room_id: 12345,
        })
        .await;
    assert!(matches!(
        answer(&mut stranger, 5).await,
        Answer::Refused(ErrorCode::NoSuchRoom)
    ));
    eprintln!(
        "join_or_create here {local_join:?}; join_by_id redirected {id_join:?}; join_or_create with options redirected {options_join:?}"
    );
    fan.close().await;
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_from_any_node_shows_every_nodes_public_rooms_and_no_private_one() {
    let Some(nats) = NatsServer::start("listing across nodes") else {
        return;
    };
    let nodes = cluster(&nats, &["a", "b", "c"], quick_stop).await;
    // On each node: a public classic room, a public speed room, a private speed room.
    let mut players = Vec::new();
    let mut public = Vec::new();
    let mut private = Vec::new();
    for n in &nodes {
        for (options, hidden) in [
            (mode("classic"), false),
            (mode("speed"), false),
            (mode("speed"), true),
        ] {
            let mut p = player(n.tcp).await;
            p.send(&ClientMessage::Create {
                req: 1,
                kind: "arena",
                options: &options,
                private: hidden,
            })
            .await;
            // On the node asked, or the least-loaded one.
            let here = n.handle.node_id().unwrap_or_default().to_owned();
            let first = answer(&mut p, 1).await;
            let (p, _, room, _) = seated(p, &here, first).await;
            if hidden {
                private.push(room);
            } else {
                public.push(room);
            }
            players.push(p);
            // Apart by more than the listing's millisecond ages.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for n in &nodes {
        let h = n.handle.clone();
        eventually("every node's directory holds the nine rooms", || {
            h.cluster_rooms().len() == 9
        })
        .await;
    }
    let mut sorted_public = public.clone();
    sorted_public.sort_unstable();
    for n in &nodes {
        let mut lister = player(n.tcp).await;
        let started = Instant::now();
        let (total, rooms) = list(&mut lister, &[]).await;
        let took = started.elapsed();
        let mut ids: Vec<u64> = rooms.iter().map(|r| r.room_id).collect();
        // Oldest first across nodes: the order they were created in.
        assert_eq!(ids, public, "oldest first");
        ids.sort_unstable();
        assert_eq!(ids, sorted_public);
        assert_eq!(total, 6);
        assert!(rooms
            .iter()
            .all(|r| r.code.len() == 6 && r.players == 1 && r.max_players == 16));
        let (total, speed) = list(&mut lister, &mode("speed")).await;
        assert_eq!(total, 3, "{speed:?}");
        assert!(speed.iter().all(|r| !private.contains(&r.room_id)));
        // Paged: offset and limit over the merged list.
        lister
            .send(&ClientMessage::ListRooms {
                req: 41,
                kind: "arena",
                filter: &[],
                offset: 2,
                limit: 3,
            })
            .await;
        let page: Vec<u64> = lister
            .expect("a page", |m| match m {
                ServerMessage::Rooms {
                    req: 41,
                    total: 6,
                    rooms,
                } => Some(rooms.iter().map(|r| r.room_id).collect()),
                _ => None,
            })
            .await;
        assert_eq!(page, public[2..5]);
        eprintln!(
            "listing of 6 public rooms on 3 nodes from {}: {took:?}",
            n.handle.node_id().unwrap_or_default()
        );
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_follows_every_kind_of_join_across_nodes() {
    let Some(nats) = NatsServer::start("the SDK's joins across nodes") else {
        return;
    };
    let nodes = cluster(&nats, &["a", "b"], quick_stop).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    // A player on a makes b the least loaded: the host's create on a lands on b.
    let mut busy = player(a.tcp).await;
    busy.join("arena").await;
    let ah = a.handle.clone();
    eventually("a sees b", || ah.cluster_nodes() == 2).await;
    let connect = |addr: SocketAddr| async move {
        rally_client::Client::connect(rally_client::Config::new(addr.to_string()))
            .await
            .expect("connect")
            .0
    };
    let host = connect(a.tcp).await;
    let room = host
        .create("tictactoe", &[], true)
        .await
        .expect("created through a redirect");
    assert_eq!(b.handle.rooms(), 1, "the room is on b");
    let friend = connect(a.tcp).await;
    let joined = friend
        .join_by_code(&room.code)
        .await
        .expect("joined by code through a redirect");
    assert_eq!(joined.room_id, room.room_id);
    let third = connect(a.tcp).await;
    assert!(
        third.join_by_id(room.room_id).await.is_err(),
        "two seats, locked"
    );
    let classic = mode("classic");
    let other = connect(b.tcp).await;
    let r = other
        .join_or_create("arena", &classic)
        .await
        .expect("join_or_create");
    // Once b's directory shows that room, a second classic player on b gets it too.
    let bh = b.handle.clone();
    eventually("b sees the classic room", || {
        bh.cluster_rooms().iter().any(|(_, id)| *id == r.room_id)
    })
    .await;
    let fan = connect(b.tcp).await;
    let same = fan
        .join_or_create("arena", &classic)
        .await
        .expect("the same room");
    assert_eq!(same.room_id, r.room_id);
    for c in [host, friend, third, other, fan] {
        c.close().await;
    }
    shutdown(nodes).await;
}
