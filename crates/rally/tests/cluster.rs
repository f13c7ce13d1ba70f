//! A cluster of three `rally serve` processes over a nats-server of the test's own: a node
//! killed with SIGKILL under play. Its players (Rust SDK bots, which connected to node a
//! alone and were redirected) reconnect to the address they know, find their seat gone
//! (`RESUME_FAILED`), join again and are placed on the survivors; the directory forgets
//! the dead node within its TTL. Skipped with a marked line without a nats-server
//! (`eval "$(scripts/nats.sh)"`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{serve, Served};
use futures_util::StreamExt;
use rally_client::{Client, Event};
use rally_testkit::{NatsServer, TestDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// Membership TTL of the test's nodes.
const TTL_MS: u64 = 1500;

/// The value of an unlabelled metric on `admin`'s `/metrics`.
async fn metric(admin: &str, name: &str) -> Option<f64> {
    let mut s = tokio::net::TcpStream::connect(admin).await.ok()?;
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut body))
        .await
        .ok()?
        .ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn node(nats: &NatsServer, db: &TestDb, id: &str) -> Served {
    let ttl = TTL_MS.to_string();
    let url = nats.url();
    serve(
        &db.url,
        &[
            "--cluster-nats-url",
            &url,
            "--node-id",
            id,
            "--cluster-node-ttl-ms",
            &ttl,
            "--auth-required",
            "false",
        ],
    )
    .await
}

/// `[dx, dy]` as MessagePack.
fn input() -> Vec<u8> {
    let mut v = vec![0x92, 0xca];
    v.extend_from_slice(&1.0f32.to_be_bytes());
    v.push(0xca);
    v.extend_from_slice(&0.0f32.to_be_bytes());
    v
}

/// Joins until seated (a join may race a dying node).
async fn join(client: &Client) {
    loop {
        if client.join("arena").await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A bot that connects to `addr`, plays, and joins again whenever its seat is lost;
/// `seated` counts the bots in a room now.
async fn bot(addr: String, seated: Arc<AtomicUsize>, mut stop: watch::Receiver<bool>) {
    let Ok((client, mut events)) = Client::connect(rally_client::Config::new(addr)).await else {
        return;
    };
    join(&client).await;
    seated.fetch_add(1, Ordering::SeqCst);
    let mut in_room = true;
    let mut seq = 0;
    let mut every = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = every.tick() => {
                seq += 1;
                let _ = client.send_input(seq, &input());
            }
            e = events.next() => match e {
                Some(Event::Disconnected(_)) => {
                    if std::mem::take(&mut in_room) {
                        seated.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                Some(Event::ResumeFailed(_) | Event::RoomClosed { .. }) => {
                    if std::mem::take(&mut in_room) {
                        seated.fetch_sub(1, Ordering::SeqCst);
                    }
                    join(&client).await;
                    in_room = true;
                    seated.fetch_add(1, Ordering::SeqCst);
                }
                Some(Event::Resumed(_)) => {
                    if !std::mem::replace(&mut in_room, true) {
                        seated.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Some(Event::Closed(_)) | None => break,
                Some(_) => {}
            }
        }
    }
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_players_are_in_rooms_on_the_survivors_within_5_s() {
    let Some(nats) = NatsServer::start("kill -9 of a cluster node") else {
        return;
    };
    let dbs = [TestDb::sqlite(), TestDb::sqlite(), TestDb::sqlite()];
    let a = node(&nats, &dbs[0], "a").await;
    let b = node(&nats, &dbs[1], "b").await;
    let c = node(&nats, &dbs[2], "c").await;
    for n in [&a, &b, &c] {
        let started = Instant::now();
        while metric(&n.admin, "rally_cluster_nodes_alive").await != Some(3.0) {
            assert!(started.elapsed() < Duration::from_secs(10), "membership");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let seated = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop) = watch::channel(false);
    let mut bots = Vec::new();
    for i in 0..48 {
        bots.push(tokio::spawn(bot(
            a.tcp.clone(),
            seated.clone(),
            stop.clone(),
        )));
        if i % 8 == 7 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let started = Instant::now();
    while seated.load(Ordering::SeqCst) < 48 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "48 bots seated"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut before = Vec::new();
    for n in [&a, &b, &c] {
        before.push(metric(&n.admin, "rally_players").await.unwrap_or(0.0));
    }
    let on_b = before[1];
    assert!(on_b > 0.0, "node b has players to lose: {before:?}");

    let killed = Instant::now();
    b.kill().await;
    // The displaced bots notice, then are seated again on a or c.
    let deadline = Duration::from_secs(5);
    while seated.load(Ordering::SeqCst) == 48 && killed.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    while seated.load(Ordering::SeqCst) < 48 {
        assert!(
            killed.elapsed() < deadline,
            "{} of 48 bots seated {deadline:?} after the kill",
            seated.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let recovered = killed.elapsed();
    let mut forgotten = None;
    while forgotten.is_none() {
        let alive = metric(&a.admin, "rally_cluster_nodes_alive").await;
        if alive == Some(2.0) {
            forgotten = Some(killed.elapsed());
        }
        assert!(
            killed.elapsed() < Duration::from_millis(TTL_MS + 2000),
            "node a still counts {alive:?} nodes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let players = [
        metric(&a.admin, "rally_players").await.unwrap_or(0.0),
        metric(&c.admin, "rally_players").await.unwrap_or(0.0),
    ];
    eprintln!(
        "players per node {before:?}; kill -9 of node b ({on_b} players): all 48 bots seated again after {recovered:?} \
         (players a {}, c {}); a forgot b after {:?} (TTL {TTL_MS} ms)",
        players[0],
        players[1],
        forgotten.unwrap_or_default()
    );
    assert_eq!(players[0] + players[1], 48.0);
    let _ = stop_tx.send(true);
    for bot in bots {
        let _ = tokio::time::timeout(Duration::from_secs(10), bot).await;
    }
    assert!(a.terminate().await);
    assert!(c.terminate().await);
}
