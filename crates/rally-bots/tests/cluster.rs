//! The swarm against a cluster of three nodes over a real nats-server, every bot
//! connecting to node a alone: the bots that node sends on (`redirect`) connect to the
//! node of their seat, claim it with the ticket and play there, over TCP and over
//! WebSocket. Skipped with a marked line without a nats-server
//! (`eval "$(scripts/nats.sh)"`), like the server's cluster tests.

use std::time::Duration;

use rally_bots::{BotsConfig, Report, SourceIps, Transport};
use rally_server::Config;
use rally_testkit::{eventually, local_config, NatsServer, TestServer};

const BOTS: u32 = 48;

async fn cluster(nats: &NatsServer, ids: &[&str]) -> Vec<TestServer> {
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(
            TestServer::start(Config {
                cluster_nats_url: Some(nats.url()),
                node_id: (*id).to_owned(),
                cluster_node_ttl_ms: 1500,
                reconnect_grace_ms: 0,
                ..local_config()
            })
            .await,
        );
    }
    for n in &nodes {
        let h = n.handle.clone();
        eventually("every node sees every node", || {
            h.cluster_nodes() == ids.len()
        })
        .await;
    }
    nodes
}

/// Runs the bots against node a over `transport`; returns the report and the rooms each
/// node had in the middle of the run.
async fn swarm(nodes: &[TestServer], transport: Transport) -> (Report, Vec<usize>) {
    let a = &nodes[0];
    let addr = match transport {
        Transport::Tcp => a.tcp,
        Transport::WebSocket => a.ws,
    };
    let mut cfg = BotsConfig::new(addr.to_string());
    cfg.transport = transport;
    cfg.bots = BOTS;
    cfg.ramp_per_sec = 100;
    cfg.duration = Duration::from_secs(4);
    cfg.warmup = Duration::from_millis(500);
    // From eight addresses, as `rally bots` does on its own: the nodes' per-address
    // connection rate would refuse 48 bots (and their second connections) from one.
    cfg.sources = Some(SourceIps::new([127, 0, 6, 1].into(), 8).expect("valid range"));
    let run = tokio::spawn(rally_bots::run(cfg));
    // Every bot is seated by 0.5 s plus the ramp (0.48 s); the run ends at 4 s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let rooms = nodes.iter().map(|n| n.handle.rooms()).collect();
    let report = run.await.expect("the swarm does not panic");
    (report, rooms)
}

fn check(report: &Report, rooms: &[usize]) {
    let table = report.summary_table();
    eprintln!("rooms per node {rooms:?}\n{table}");
    assert_eq!(report.errors, 0, "{table}");
    assert_eq!(report.connected, u64::from(BOTS), "{table}");
    assert!(
        rooms.iter().filter(|&&r| r > 0).count() > 1,
        "rooms on more than one node: {rooms:?}"
    );
    assert!(report.redirects >= 16, "{table}");
    assert!(
        report.redirects < u64::from(BOTS),
        "some seats on node a: {table}"
    );
    // Every bot played: about 3.5 s of states at 20 Hz each.
    assert!(report.states_received > u64::from(BOTS) * 20 * 3, "{table}");
    assert!(
        report.latency.samples > 0 && report.latency.p99 < 500.0,
        "{table}"
    );
    assert_eq!(report.to_json()["redirects"], report.redirects);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_through_one_node_follow_redirects_and_play_on_several() {
    let Some(nats) = NatsServer::start("bots through one node of a cluster") else {
        return;
    };
    let nodes = cluster(&nats, &["a", "b", "c"]).await;
    let (report, rooms) = swarm(&nodes, Transport::Tcp).await;
    check(&report, &rooms);
    let (report, rooms) = swarm(&nodes, Transport::WebSocket).await;
    check(&report, &rooms);
    for n in nodes {
        let drained = n.shutdown().await;
        assert!(drained.drained, "{drained:?}");
    }
}
