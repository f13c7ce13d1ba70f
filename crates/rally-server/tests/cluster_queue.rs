//! The rating queue across nodes, over a real nats-server and real sockets: players
//! connected to different nodes are matched into one room (the queue leader holds every
//! ticket), `leave_queue` on a node that is not the leader takes its player out, and the
//! match's players play. Skipped with a marked line when no nats-server is installed
//! (`eval "$(scripts/nats.sh)"`).

mod cluster_nodes;
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rally_protocol::{ClientMessage, ErrorCode, ServerMessage};
use rally_testkit::{eventually, NatsServer, TestServer};

use cluster_nodes::{cluster, quick_stop};
use common::Client as Raw;

async fn player(addr: SocketAddr) -> Raw {
    let mut c = Raw::tcp(addr).await;
    c.hello().await;
    c
}

async fn queue(c: &mut Raw, req: u32, rating: f64) {
    c.send(&ClientMessage::Queue {
        req,
        kind: "tictactoe",
        options: &[],
        rating,
        party: false,
    })
    .await;
    c.expect("queued", |m| match m {
        ServerMessage::Ok { req: r } if *r == req => Some(()),
        ServerMessage::Error {
            req: r,
            code,
            message,
        } if *r == req => {
            panic!("queue refused: {code} {message}")
        }
        _ => None,
    })
    .await;
}

/// Waits for the match (req 0): seated here, or redirected and claimed on the owner.
/// Returns the connection holding the seat, its node and the room.
async fn matched(mut c: Raw, here: &str) -> (Raw, String, u64) {
    let m = c
        .expect("the match", |m| match m {
            ServerMessage::Joined {
                req: 0, room_id, ..
            } => Some(Ok(*room_id)),
            ServerMessage::Redirect {
                req: 0,
                node,
                tcp,
                ticket,
                room_id,
                ..
            } => Some(Err((node.clone(), tcp.clone(), ticket.clone(), *room_id))),
            ServerMessage::Error { code, message, .. } => panic!("no match: {code} {message}"),
            _ => None,
        })
        .await;
    match m {
        Ok(room) => (c, here.to_owned(), room),
        Err((node, tcp, ticket, room)) => {
            c.close().await;
            let mut there = player(tcp.parse().expect("an address")).await;
            there
                .send(&ClientMessage::ClaimSeat {
                    req: 7,
                    ticket: &ticket,
                })
                .await;
            let claimed = there
                .expect("the claimed seat", |m| match m {
                    ServerMessage::Joined {
                        req: 7, room_id, ..
                    } => Some(*room_id),
                    ServerMessage::Error { req: 7, code, .. } => panic!("claim: {code}"),
                    _ => None,
                })
                .await;
            assert_eq!(claimed, room);
            (there, node, room)
        }
    }
}

/// Two queued players (each with the node it is connected to) are matched into one room
/// and both get the game's first state (tic-tac-toe starts with two); then they leave.
/// The room's node.
async fn meet_and_play(p: (Raw, &str), q: (Raw, &str)) -> String {
    let (mut p, p_node, p_room) = matched(p.0, p.1).await;
    let (mut q, q_node, q_room) = matched(q.0, q.1).await;
    assert_eq!((&p_node, p_room), (&q_node, q_room), "one room");
    for c in [&mut p, &mut q] {
        c.expect("a state", |m| {
            matches!(m, ServerMessage::State { .. }).then_some(())
        })
        .await;
    }
    p.close().await;
    q.close().await;
    p_node
}

fn leader_of(nodes: &[TestServer]) -> usize {
    nodes
        .iter()
        .position(|n| n.handle.cluster_queue_leader().as_deref() == n.handle.node_id())
        .expect("a leader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_queued_on_different_nodes_are_matched_into_one_room() {
    let Some(nats) = NatsServer::start("the queue across nodes") else {
        return;
    };
    let nodes = cluster(&nats, &["a", "b", "c"], quick_stop).await;
    for n in &nodes {
        let h = n.handle.clone();
        eventually("every node knows the queue leader", || {
            h.cluster_queue_leader().is_some()
        })
        .await;
    }
    let leader = leader_of(&nodes);
    let ids = |i: usize| nodes[i].handle.node_id().unwrap_or_default().to_owned();
    let (x, y) = ((leader + 1) % 3, (leader + 2) % 3);
    for round in 0..3 {
        // Two players on the two nodes that do not lead: neither could meet the other
        // in its own node's queue.
        let mut p = player(nodes[x].tcp).await;
        let mut q = player(nodes[y].tcp).await;
        let started = Instant::now();
        queue(&mut p, 1, 1000.0).await;
        queue(&mut q, 1, 1010.0).await;
        let node = meet_and_play((p, &ids(x)), (q, &ids(y))).await;
        eprintln!(
            "round {round}: matched on {node} in {:?}",
            started.elapsed()
        );
    }
    // leave_queue on a node that does not lead: the player is out, and a later player
    // is not matched with them (it times out of a quiet queue only after the kind's
    // timeout, so it is simply still waiting while the first is gone).
    let mut gone = player(nodes[x].tcp).await;
    queue(&mut gone, 1, 1000.0).await;
    gone.send(&ClientMessage::LeaveQueue { req: 2 }).await;
    gone.expect("left", |m| {
        matches!(m, ServerMessage::Ok { req: 2 }).then_some(())
    })
    .await;
    gone.send(&ClientMessage::LeaveQueue { req: 3 }).await;
    let (code, _, req) = gone.expect_error().await;
    assert_eq!((code, req), (ErrorCode::NotInQueue, 3));
    let mut late = player(nodes[y].tcp).await;
    queue(&mut late, 1, 1000.0).await;
    // Two passes go by: no match, since the only other ticket left.
    let quiet = tokio::time::timeout(Duration::from_millis(800), late.recv()).await;
    assert!(
        !matches!(
            quiet,
            Ok(Some(
                ServerMessage::Joined { .. } | ServerMessage::Redirect { .. }
            ))
        ),
        "{quiet:?}"
    );
    // A player that joins a room while queued is refused, as on one node.
    late.send(&ClientMessage::Join {
        req: 4,
        kind: "arena",
    })
    .await;
    let (code, _, req) = late.expect_error().await;
    assert_eq!((code, req), (ErrorCode::AlreadyQueued, 4));
    gone.close().await;
    late.close().await;
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_the_queue_over_and_waiting_players_are_told() {
    let Some(nats) = NatsServer::start("the queue leader changes") else {
        return;
    };
    let mut nodes = cluster(&nats, &["a", "b", "c"], quick_stop).await;
    for n in &nodes {
        let h = n.handle.clone();
        eventually("every node knows the queue leader", || {
            h.cluster_queue_leader().is_some()
        })
        .await;
    }
    let leader = leader_of(&nodes);
    let old = nodes.remove(leader);
    let old_id = old.handle.node_id().unwrap_or_default().to_owned();
    // A player waits on a node that does not lead when the leader leaves.
    let mut waiting = player(nodes[0].tcp).await;
    queue(&mut waiting, 1, 1000.0).await;
    let stopped = Instant::now();
    old.shutdown().await;
    let (code, message, req) = waiting.expect_error().await;
    assert_eq!((code, req), (ErrorCode::MatchTimeout, 0), "{message}");
    for n in &nodes {
        let h = n.handle.clone();
        let old_id = old_id.clone();
        eventually("a new leader", || {
            h.cluster_queue_leader().is_some_and(|l| l != old_id)
        })
        .await;
    }
    eprintln!(
        "a new queue leader {:?} after the old one stopped",
        stopped.elapsed()
    );
    // The new leader matches players of both remaining nodes.
    let here = |i: usize| nodes[i].handle.node_id().unwrap_or_default().to_owned();
    let mut p = player(nodes[0].tcp).await;
    let mut q = player(nodes[1].tcp).await;
    queue(&mut p, 1, 1000.0).await;
    queue(&mut q, 1, 1000.0).await;
    let (p, p_node, p_room) = matched(p, &here(0)).await;
    let (q, q_node, q_room) = matched(q, &here(1)).await;
    assert_eq!((p_node, p_room), (q_node, q_room));
    for c in [waiting, p, q] {
        c.close().await;
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_still_names_the_old_leader_is_sent_on_to_the_new_one() {
    let Some(nats) = NatsServer::start("a stale view of the queue leader") else {
        return;
    };
    // c reads the leader key every 20 s (a third of its TTL), a and b every 0.5 s: once
    // the key moves, c goes on naming the old leader for that long.
    let nodes = cluster(&nats, &["a", "b", "c"], |c| {
        quick_stop(c);
        if c.node_id == "c" {
            c.cluster_node_ttl_ms = 60_000;
        }
    })
    .await;
    for n in &nodes {
        let h = n.handle.clone();
        eventually("every node knows the queue leader", || {
            h.cluster_queue_leader().is_some()
        })
        .await;
    }
    let old = leader_of(&nodes);
    assert_ne!(old, 2, "c started last, after a or b took the key");
    let new = 1 - old;
    let ids = |i: usize| nodes[i].handle.node_id().unwrap_or_default().to_owned();
    // The key moves to the other of a and b (as when a leader is cut off and another
    // takes the lapsed key), written straight into the bucket.
    let client = async_nats::connect(nats.url()).await.expect("NATS");
    let kv = async_nats::jetstream::new(client)
        .get_key_value("rally_queue")
        .await
        .expect("the queue bucket");
    kv.put("leader", ids(new).into_bytes().into())
        .await
        .expect("the key written");
    for i in [old, new] {
        let (h, want) = (nodes[i].handle.clone(), ids(new));
        eventually("a and b read the new leader", || {
            h.cluster_queue_leader().as_deref() == Some(want.as_str())
        })
        .await;
    }
    assert_eq!(
        nodes[2].handle.cluster_queue_leader(),
        Some(ids(old)),
        "c has not read the key again"
    );
    // A player on c queues: c asks the old leader, which says it does not lead; c reads
    // the key and queues the ticket on the new one. The player gets its `ok`, and its
    // ticket is not ended by c's own news that the leader changed.
    let mut p = player(nodes[2].tcp).await;
    queue(&mut p, 1, 1000.0).await;
    assert_eq!(nodes[2].handle.cluster_queue_leader(), Some(ids(new)));
    let mut q = player(nodes[old].tcp).await;
    queue(&mut q, 1, 1005.0).await;
    meet_and_play((p, &ids(2)), (q, &ids(old))).await;
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_follows_a_queue_match_to_another_node() {
    use futures_util::StreamExt;
    let Some(nats) = NatsServer::start("the SDK's queue match across nodes") else {
        return;
    };
    let nodes = cluster(&nats, &["a", "b", "c"], quick_stop).await;
    for n in &nodes {
        let h = n.handle.clone();
        eventually("every node knows the queue leader", || {
            h.cluster_queue_leader().is_some()
        })
        .await;
    }
    let leader = leader_of(&nodes);
    let mut clients = Vec::new();
    for i in [(leader + 1) % 3, (leader + 2) % 3] {
        let config = rally_client::Config::new(nodes[i].tcp.to_string());
        let (client, events) = rally_client::Client::connect(config)
            .await
            .expect("connect");
        client
            .queue("tictactoe", &[], 1000.0, false)
            .await
            .expect("queued");
        clients.push((client, events));
    }
    let mut rooms = Vec::new();
    for (client, events) in &mut clients {
        let room = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(e) = events.next().await {
                match e {
                    rally_client::Event::Matched(room) => return Some(room),
                    rally_client::Event::Error(e) => panic!("no match: {e}"),
                    _ => {}
                }
            }
            None
        })
        .await
        .expect("a match in time")
        .expect("a match");
        assert_eq!(client.room().map(|r| r.room_id), Some(room.room_id));
        rooms.push(room.room_id);
    }
    assert_eq!(rooms[0], rooms[1], "one room");
    // The room is on one node, and both seats are in it.
    let mut seated = 0;
    for n in &nodes {
        seated += n
            .handle
            .seats()
            .await
            .iter()
            .filter(|s| s.room_id == rooms[0])
            .count();
    }
    assert_eq!(seated, 2);
    for (c, _) in clients {
        c.close().await;
    }
    for n in nodes {
        n.shutdown().await;
    }
}
