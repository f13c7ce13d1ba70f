//! The cluster tests' nodes: whole servers in this process on one nats-server, each
//! named, with a short membership TTL so that expiry tests run in seconds.

use rally_server::Config;
use rally_testkit::{eventually, local_config, NatsServer, TestServer};

/// The admin token every node takes.
pub const TOKEN: &str = "cluster-admin-token-0123456789";

fn node_config(nats: &NatsServer, id: &str) -> Config {
    Config {
        cluster_nats_url: Some(nats.url()),
        node_id: id.to_owned(),
        cluster_node_ttl_ms: 1500,
        admin_token: Some(rally_server::config::Secret::new(TOKEN)),
        ..local_config()
    }
}

/// Starts nodes `ids` on `nats` and waits until each sees all of them.
pub async fn cluster(
    nats: &NatsServer,
    ids: &[&str],
    tweak: impl Fn(&mut Config),
) -> Vec<TestServer> {
    let mut nodes = Vec::new();
    for id in ids {
        let mut c = node_config(nats, id);
        tweak(&mut c);
        nodes.push(TestServer::start(c).await);
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

/// Players left connected do not hold a node's shutdown for the default 10 s.
#[allow(dead_code)] // each test crate includes this module; not all of them use it
pub fn quick_stop(c: &mut Config) {
    c.shutdown_grace_ms = 300;
}
