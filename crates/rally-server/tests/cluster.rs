//! Cluster mode over a real nats-server (each test its own, `rally_testkit::NatsServer`)
//! and real sockets: nodes are whole servers in this process, players are the Rust SDK
//! or raw protocol clients. Skipped with a marked line when no nats-server is installed
//! (`eval "$(scripts/nats.sh)"`). Killing a node's process is in `crates/rally/tests/cluster.rs`.

mod cluster_nodes;
mod common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rally_client::{Client, Event};
use rally_protocol::{ClientMessage, ErrorCode, ServerMessage};
use rally_testkit::{eventually, NatsServer, TestServer};

use cluster_nodes::{cluster, TOKEN};
use common::{http, Client as Raw};

/// `[dx, dy]` as MessagePack.
fn input(dx: f32, dy: f32) -> Vec<u8> {
    let mut v = vec![0x92, 0xca];
    v.extend_from_slice(&dx.to_be_bytes());
    v.push(0xca);
    v.extend_from_slice(&dy.to_be_bytes());
    v
}

/// One bot: joins `arena` through `addr`, then sends an input every 50 ms for `play`,
/// and measures each input's latency to the first state that applied it. Returns the
/// latencies, the errors it saw, and how long its join took (a redirect included).
async fn bot(addr: String, play: Duration) -> (Vec<Duration>, Vec<String>, Duration) {
    let mut errors = Vec::new();
    let (client, mut events) = match Client::connect(rally_client::Config::new(addr)).await {
        Ok(c) => c,
        Err(e) => return (Vec::new(), vec![format!("connect: {e}")], Duration::ZERO),
    };
    let joining = Instant::now();
    if let Err(e) = client.join("arena").await {
        return (Vec::new(), vec![format!("join: {e}")], Duration::ZERO);
    }
    let joined_in = joining.elapsed();
    let mut sent: Vec<(u32, Instant)> = Vec::new();
    let mut latencies = Vec::new();
    let mut seq = 0;
    let mut every = tokio::time::interval(Duration::from_millis(50));
    let end = tokio::time::sleep(play);
    tokio::pin!(end);
    loop {
        tokio::select! {
            () = &mut end => break,
            _ = every.tick() => {
                seq += 1;
                if let Err(e) = client.send_input(seq, &input(1.0, 0.0)) {
                    errors.push(format!("input: {e}"));
                }
                sent.push((seq, Instant::now()));
            }
            e = events.next() => match e {
                Some(Event::State(s)) => {
                    sent.retain(|(k, at)| {
                        if *k <= s.last_seq {
                            latencies.push(at.elapsed());
                            false
                        } else {
                            true
                        }
                    });
                }
                Some(Event::Error(e)) => errors.push(format!("event: {e}")),
                Some(Event::Closed(e)) => {
                    errors.push(format!("closed: {e:?}"));
                    break;
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    client.close().await;
    (latencies, errors, joined_in)
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get((v.len() * 99 / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_connected_to_one_node_are_spread_over_three_and_play() {
    let Some(nats) = NatsServer::start("players spread over three nodes") else {
        return;
    };
    let nodes = cluster(&nats, &["a", "b", "c"], |_| {}).await;
    let a = nodes[0].tcp.to_string();
    let started = Instant::now();
    // 48 bots, all through node a, joining 8 at a time.
    let mut bots = Vec::new();
    for i in 0..48 {
        bots.push(tokio::spawn(bot(a.clone(), Duration::from_secs(3))));
        if i % 8 == 7 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Mid-play: one full room on each node.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rooms: Vec<usize> = nodes.iter().map(|n| n.handle.rooms()).collect();
    let seats: Vec<usize> = {
        let mut v = Vec::new();
        for n in &nodes {
            v.push(n.handle.seats().await.len());
        }
        v
    };
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    let mut joins = Vec::new();
    for b in bots {
        let (l, e, j) = b.await.expect("a bot does not panic");
        latencies.extend(l);
        errors.extend(e);
        joins.push(j);
    }
    // The first 16 joined on a; the other 32 were redirected (bots start in order).
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    let (local, redirected) = (median(joins[..16].to_vec()), median(joins[16..].to_vec()));
    eprintln!("join time, median: local {local:?}, redirected {redirected:?}");
    let p99 = p99(latencies.clone());
    eprintln!(
        "48 bots through node a: rooms per node {rooms:?}, players per node {seats:?}, {} inputs measured, p99 {p99:?}, errors {}: {errors:?}, took {:?}",
        latencies.len(),
        errors.len(),
        started.elapsed()
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(rooms, [1, 1, 1]);
    assert_eq!(seats, [16, 16, 16]);
    assert!(latencies.len() > 48 * 20, "every bot played");
    assert!(p99 < Duration::from_millis(500), "p99 {p99:?}");
    let redirects = common::scrape(nodes[0].admin)
        .await
        .value("rally_cluster_redirects_total", &[]);
    assert!(
        redirects >= 32.0,
        "32 of 48 players were sent on: {redirects}"
    );
    for n in nodes {
        n.shutdown().await;
    }
}

async fn claim(addr: std::net::SocketAddr, ticket: &str) -> Result<u64, ErrorCode> {
    let mut c = Raw::tcp(addr).await;
    c.hello().await;
    c.send(&ClientMessage::ClaimSeat { req: 2, ticket }).await;
    match c.recv().await {
        Some(ServerMessage::Joined {
            req: 2, room_id, ..
        }) => Ok(room_id),
        Some(ServerMessage::Error { req: 2, code, .. }) => Err(code),
        other => panic!("expected joined or error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seat_tickets_are_refused_replayed_expired_forged_or_on_another_node() {
    let Some(nats) = NatsServer::start("seat ticket refusals") else {
        return;
    };
    let nodes = cluster(&nats, &["a", "b"], |c| c.seat_ticket_ttl_ms = 1000).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    // Clients first, then the drain: a's joins now go to b.
    let mut first = Raw::tcp(a.tcp).await;
    first.hello().await;
    let mut second = Raw::tcp(a.tcp).await;
    second.hello().await;
    let r = http(a.admin, "POST", "/admin/drain", Some(TOKEN), None).await;
    assert_eq!(r.status, 200, "{}", r.body);

    for c in [&mut first, &mut second] {
        c.send(&ClientMessage::Join {
            req: 1,
            kind: "arena",
        })
        .await;
    }
    let ticket = |m: Option<ServerMessage>| match m {
        Some(ServerMessage::Redirect { node, ticket, .. }) => {
            assert_eq!(node, "b");
            ticket
        }
        other => panic!("expected a redirect, got {other:?}"),
    };
    let t1 = ticket(first.recv().await);
    let t2 = ticket(second.recv().await);

    // On the wrong node (a, through a client connected before the drain); forged (one
    // character changed); then claimed, then replayed.
    first
        .send(&ClientMessage::ClaimSeat {
            req: 2,
            ticket: &t1,
        })
        .await;
    let (code, _, req) = first.expect_error().await;
    assert_eq!((code, req), (ErrorCode::TicketWrongNode, 2));
    let mut forged = t1.clone().into_bytes();
    let at = forged.len() / 2;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    assert_eq!(claim(b.tcp, &forged).await, Err(ErrorCode::TicketInvalid));
    assert_eq!(
        claim(b.tcp, "not a ticket").await,
        Err(ErrorCode::TicketInvalid)
    );
    let room = claim(b.tcp, &t1).await.expect("the ticket's seat");
    assert_eq!(claim(b.tcp, &t1).await, Err(ErrorCode::TicketUsed));
    assert!(b.handle.rooms() == 1, "the seat is in a room on b: {room}");

    // Past its second of life, the second ticket is refused and its seat given back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(claim(b.tcp, &t2).await, Err(ErrorCode::TicketExpired));
    let seats = b.handle.seats().await;
    assert_eq!(seats.len(), 1, "only the claimed seat is held: {seats:?}");
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_under_play_drops_no_match_and_the_node_then_leaves() {
    let Some(nats) = NatsServer::start("drain under play") else {
        return;
    };
    let nodes = cluster(&nats, &["a", "b"], |_| {}).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    // Two players in a room on a (its own least-loaded pick), playing.
    let mut p1 = Raw::tcp(a.tcp).await;
    p1.hello().await;
    let (room, _) = p1.join("arena").await;
    let mut newcomer = Raw::tcp(a.tcp).await;
    newcomer.hello().await;
    let r = http(a.admin, "POST", "/admin/drain", Some(TOKEN), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A join on the draining node goes to b.
    let (_c, node, _ticket) = {
        newcomer
            .send(&ClientMessage::Join {
                req: 1,
                kind: "arena",
            })
            .await;
        match newcomer.recv().await {
            Some(ServerMessage::Redirect { node, ticket, .. }) => ((), node, ticket),
            other => panic!("expected a redirect, got {other:?}"),
        }
    };
    assert_eq!(node, "b");
    // The match on a goes on: states keep coming.
    for seq in 1..=10 {
        p1.input(seq, 1.0, 0.0).await;
    }
    let mut states = 0;
    while states < 10 {
        match p1.recv().await {
            Some(ServerMessage::State { .. }) => states += 1,
            Some(ServerMessage::RoomClosed { .. }) | None => panic!("the match was dropped"),
            Some(_) => {}
        }
    }
    assert_eq!(a.handle.rooms(), 1, "room {room} plays on while a drains");
    let bh = b.handle.clone();
    assert_eq!(bh.cluster_nodes(), 2);
    // The match ends (its last player leaves): a leaves the cluster.
    p1.send(&ClientMessage::Leave { req: 9 }).await;
    eventually("b no longer sees the drained node", || {
        bh.cluster_nodes() == 1
    })
    .await;
    let r = http(b.admin, "GET", "/admin/cluster", Some(TOKEN), None).await;
    let nodes_seen: Vec<String> = r.json()["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["node"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(nodes_seen, ["b"]);
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_under_play_matches_go_on_and_the_directory_recovers() {
    let Some(mut nats) = NatsServer::start("nats restarted under play") else {
        return;
    };
    let nodes = cluster(&nats, &["a", "b"], |_| {}).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut p = Raw::tcp(a.tcp).await;
    p.hello().await;
    p.join("arena").await;
    let bh = b.handle.clone();
    eventually("b sees a's room", || {
        bh.cluster_rooms().iter().any(|(n, _)| n == "a")
    })
    .await;
    nats.kill();
    // Play goes on without NATS, past the TTL: b forgets a (and itself: nothing
    // heartbeats), and a new player on b still gets a room, on b.
    let killed = Instant::now();
    let mut seq = 0;
    let mut states = 0;
    while killed.elapsed() < Duration::from_millis(2500) {
        seq += 1;
        p.input(seq, 1.0, 0.0).await;
        match p.recv().await {
            Some(ServerMessage::State { .. }) => states += 1,
            Some(ServerMessage::RoomClosed { .. }) | None => panic!("the match was dropped"),
            Some(_) => {}
        }
    }
    assert!(states > 20, "states kept coming: {states}");
    assert_eq!(
        bh.cluster_nodes(),
        0,
        "b forgot every node while NATS was down"
    );
    let mut q = Raw::tcp(b.tcp).await;
    q.hello().await;
    q.join("arena").await;
    nats.restart();
    // Both nodes reconnect and re-create the buckets; b sees a and its room again.
    let started = Instant::now();
    let deadline = Duration::from_secs(15);
    while !(bh.cluster_nodes() == 2 && bh.cluster_rooms().iter().any(|(n, _)| n == "a")) {
        assert!(
            started.elapsed() < deadline,
            "the directory did not recover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "directory recovered {:?} after nats-server came back",
        started.elapsed()
    );
    let reconnects = common::scrape(a.admin)
        .await
        .value("rally_cluster_nats_reconnects_total", &[]);
    assert!(reconnects >= 1.0, "{reconnects}");
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn a_single_node_has_no_cluster_and_refuses_tickets() {
    let server = TestServer::start(common::admin_config()).await;
    assert_eq!(server.handle.node_id(), None);
    let mut c = Raw::tcp(server.tcp).await;
    c.hello().await;
    c.send(&ClientMessage::ClaimSeat {
        req: 3,
        ticket: "AQAAAZPmU1Xo",
    })
    .await;
    let (code, _, req) = c.expect_error().await;
    assert_eq!((code, req), (ErrorCode::TicketWrongNode, 3));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_follows_a_redirect_over_websocket_and_plays() {
    let Some(nats) = NatsServer::start("the SDK follows a redirect over WebSocket") else {
        return;
    };
    let nodes = cluster(&nats, &["a", "b"], |_| {}).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    // a's room fills up (a is its own least-loaded pick while b is as empty).
    let mut raws = Vec::new();
    for _ in 0..16 {
        let mut r = Raw::tcp(a.tcp).await;
        r.hello().await;
        r.join("arena").await;
        raws.push(r);
    }
    let mut config = rally_client::Config::new(a.ws.to_string());
    config.transport = rally_protocol::Transport::WebSocket;
    let (client, mut events) = Client::connect(config).await.expect("connect over ws");
    let room = client
        .join("arena")
        .await
        .expect("joined through the redirect");
    assert_eq!(client.room(), Some(room.clone()));
    assert_eq!(b.handle.rooms(), 1, "the seat is on b");
    client.send_input(1, &input(1.0, 0.0)).expect("an input");
    let applied = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = events.next().await {
            if let Event::State(s) = e {
                if s.last_seq >= 1 {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(applied, Ok(true), "b's room applied the input");
    client.close().await;
    for r in raws {
        r.close().await;
    }
    for n in nodes {
        n.shutdown().await;
    }
}
