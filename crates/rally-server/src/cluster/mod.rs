//! Cluster mode (its own floor, between commands and play): many `rally serve` nodes
//! sharing one NATS server, with no consensus of their own (`docs/cluster.md`).
//!
//! - **Membership**: each node rewrites its entry (addresses, load, draining) in the
//!   JetStream key-value bucket `rally_nodes` every third of `cluster_node_ttl_ms`; the
//!   bucket's `max_age` is that TTL, so a node that stops (killed, cut off) is gone within
//!   it. A drained node, or one shutting down, deletes its entry and leaves at once.
//! - **Room directory**: each node writes its open rooms into `rally_rooms` (key
//!   `<node>.<room id>`) on the same beat, and deletes the ones that ended.
//! - **Rating queue**: one elected node, the queue leader, holds the cluster's tickets and
//!   forms its matches (`queue`).
//! - **Seats across nodes**: every kind of join whose seat is not here asks the [`View`]
//!   where the player goes: a matching room with a seat on another node, else the
//!   least-loaded node (`join`, `join_or_create`); the least-loaded node (`create`); the
//!   room's owner (`join_by_id`, `join_by_code`). The owner is asked over NATS
//!   request/reply (`rally.reserve.<node>`, bounded by `cluster_request_timeout_ms`,
//!   retried per SPEC section 2) to reserve that seat; it answers with a signed,
//!   single-use seat ticket, which the player's `redirect` carries to the owner's
//!   `claim_seat`. Listings merge the directory with this node's rooms.
//!
//! Every node watches the membership and directory buckets into its [`View`], which expires entries by itself
//! (a watcher is not told when the bucket's `max_age` drops one). NATS going away stops
//! none of the matches: rooms play on, joins fall back to this node, and the watchers,
//! heartbeat and responder pick up again once the client reconnects (re-creating the
//! buckets if the server lost them).
//!
//! # Layout
//! - `view`: the entries seen, their expiry, and where a new player goes (no IO).
//! - `seats`: seats reserved here for redirected players, by ticket nonce.
//! - `membership`: the heartbeat into both buckets, and the watchers into the view.
//! - `reserve`: placing a joining player, reservations asked and answered, claims.
//! - `listing`: `list_rooms` over this node's rooms and the directory's.
//! - `queue`: the rating queue across nodes: the leader's election, tickets and
//!   matches, and each node's queued players' news.
//! - this file: the [`Cluster`] itself, connecting, starting its tasks, this node's
//!   entries, and what the admin API shows.

mod flight;
mod listing;
mod membership;
mod queue;
mod reserve;
mod seats;
mod view;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_nats::jetstream::kv::{self, Store};
use rally_auth::ticket::TicketSigner;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics::{ClusterMetrics, Metrics};
use crate::room::RoomEnv;
use crate::room_handle::RoomHandle;

pub(crate) use queue::QueueNews;
pub(crate) use reserve::RoomRef;
use seats::Seats;
use view::View;
pub(crate) use view::{NodeEntry, RoomEntry};

/// The membership bucket.
const NODES_BUCKET: &str = "rally_nodes";
/// The room directory bucket.
const ROOMS_BUCKET: &str = "rally_rooms";
/// The queue leader's bucket.
const QUEUE_BUCKET: &str = "rally_queue";
/// How long a watcher or the heartbeat waits before trying NATS again after a failure.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Why a node could not join the cluster at start.
#[derive(Debug, thiserror::Error)]
#[error("cannot join the cluster at {url} (cluster_nats_url): {reason}")]
pub struct ClusterError {
    /// The NATS URL.
    pub url: String,
    /// Why.
    pub reason: String,
}

/// This node's part of the cluster.
pub(crate) struct Cluster {
    node: String,
    tcp: String,
    ws: String,
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    nodes_kv: Store,
    rooms_kv: Store,
    queue_kv: Store,
    view: Mutex<View>,
    seats: Seats,
    signer: TicketSigner,
    ttl: Duration,
    ticket_ttl: Duration,
    request_timeout: Duration,
    metrics: ClusterMetrics,
    /// Set once a drained node has left the membership: it heartbeats no more.
    left: AtomicBool,
    /// Wakes the heartbeat to publish now (a room opened for another node's player).
    publish_now: Notify,
    /// This process among the node's lives: the reservations counts below restart with it.
    epoch: u64,
    /// Reservations granted here to each asking node (placed joins), under the asker's
    /// epoch: what the asker's view needs to count its players on their way exactly.
    granted: Mutex<HashMap<String, (u64, u64)>>,
    /// The queue leader, as last read from the queue bucket.
    queue_leader: Mutex<Option<String>>,
    /// The cluster's tickets while this node leads the queue.
    leader_queue: queue::LeaderQueue,
    /// News for this node's queued players (matches, ends), to the commands floor.
    queue_news: tokio::sync::mpsc::Sender<QueueNews>,
    /// Its other end, until the handler takes it.
    queue_news_rx: Mutex<Option<tokio::sync::mpsc::Receiver<QueueNews>>>,
    /// Wakes the commands floor's handler when the queue leader changed.
    leader_moved: Notify,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: the NATS handles and the signer say nothing useful.
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("tcp", &self.tcp)
            .field("ws", &self.ws)
            .finish_non_exhaustive()
    }
}

/// A number for this process's life as a node, never 0 (0 is "an older node" in answers):
/// random, or the start time when there is no randomness.
fn process_epoch() -> u64 {
    let mut bytes = [0u8; 8];
    let n = match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => unix_ms(std::time::SystemTime::now()),
    };
    n.max(1)
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `auto` becomes the listener's own address, an unspecified IP 127.0.0.1.
fn advertised(setting: &str, bound: std::net::SocketAddr) -> String {
    if setting != "auto" {
        return setting.to_owned();
    }
    let mut addr = bound;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr.to_string()
}

impl Cluster {
    /// Connects to NATS (bounded by `timeout_ms`) and makes sure both buckets exist.
    pub(crate) async fn connect(
        config: &Config,
        tcp: std::net::SocketAddr,
        ws: std::net::SocketAddr,
        metrics: &Metrics,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let url = config.cluster_nats_url.clone().unwrap_or_default();
        let fail = |reason: String| ClusterError {
            url: url.clone(),
            reason,
        };
        let cluster_metrics = metrics.cluster();
        let reconnects = cluster_metrics.nats_reconnects.clone();
        let connected_once = Arc::new(AtomicBool::new(false));
        let node = config.node_id.clone();
        let options = async_nats::ConnectOptions::new()
            .name(format!("rally-{node}"))
            .connection_timeout(config.timeout())
            // Forever: a node outlives a NATS restart, whatever it takes.
            .max_reconnects(None)
            .event_callback(move |event| {
                let reconnects = reconnects.clone();
                let connected_once = connected_once.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            if connected_once.swap(true, Ordering::Relaxed) {
                                reconnects.increment(1);
                                tracing::info!("NATS connection back");
                            }
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("NATS connection lost; reconnecting");
                        }
                        other => tracing::debug!(event = %other, "NATS event"),
                    }
                }
            });
        let client = tokio::time::timeout(config.timeout(), options.connect(url.as_str()))
            .await
            .map_err(|_| fail(format!("no answer within {} ms", config.timeout_ms)))?
            .map_err(|e| fail(e.to_string()))?;
        let js = async_nats::jetstream::new(client.clone());
        let ttl = config.cluster_node_ttl();
        let (nodes_kv, rooms_kv, queue_kv) =
            tokio::time::timeout(config.timeout(), buckets(&js, ttl))
                .await
                .map_err(|_| fail("JetStream did not answer (is it on? nats-server -js)".into()))?
                .map_err(|e| fail(format!("JetStream key-value: {e}")))?;
        tracing::info!(node = %node, nats = %url, "joined the cluster");
        let (queue_news, news_rx) = tokio::sync::mpsc::channel(queue::NEWS);
        Ok(Arc::new(Cluster {
            queue_kv,
            queue_leader: Mutex::new(None),
            leader_queue: queue::LeaderQueue::default(),
            queue_news,
            queue_news_rx: Mutex::new(Some(news_rx)),
            leader_moved: Notify::new(),
            tcp: advertised(&config.advertise_tcp, tcp),
            ws: advertised(&config.advertise_ws, ws),
            node,
            client,
            js,
            nodes_kv,
            rooms_kv,
            view: Mutex::new(View::new(ttl)),
            seats: Seats::default(),
            signer: TicketSigner::new(config.auth_secret.expose().as_bytes()),
            ttl,
            ticket_ttl: config.seat_ticket_ttl(),
            request_timeout: config.cluster_request_timeout(),
            metrics: cluster_metrics,
            left: AtomicBool::new(false),
            publish_now: Notify::new(),
            epoch: process_epoch(),
            granted: Mutex::new(HashMap::new()),
        }))
    }

    fn view(&self) -> MutexGuard<'_, View> {
        // Every critical section leaves the maps consistent: a poisoned lock is usable.
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This node's id.
    pub(crate) fn node_id(&self) -> &str {
        &self.node
    }

    /// Runs the heartbeat, both watchers and the reservation responder in `tracker` until
    /// `stop`; then leaves the membership.
    pub(crate) fn start(
        self: &Arc<Self>,
        rooms: Arc<RoomEnv>,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) {
        tracker.spawn(self.clone().heartbeat(rooms.clone(), stop.clone()));
        tracker.spawn(self.clone().watch(NODES_BUCKET, stop.clone()));
        tracker.spawn(self.clone().watch(ROOMS_BUCKET, stop.clone()));
        tracker.spawn(self.clone().respond(rooms, tracker.clone(), stop));
    }

    /// This node's entry with its live load.
    fn own_entry(&self, rooms: &RoomEnv) -> NodeEntry {
        // Seats taken or reserved, those held for redirected players included: a join in
        // flight counts at once, so concurrent placements spread.
        NodeEntry {
            node: self.node.clone(),
            tcp: self.tcp.clone(),
            ws: self.ws.clone(),
            players: u32::try_from(rooms.matchmaker.seats()).unwrap_or(u32::MAX),
            rooms: u32::try_from(rooms.matchmaker.room_count()).unwrap_or(u32::MAX),
            draining: rooms.matchmaker.is_draining(),
        }
    }

    /// A room's directory entry; its players are the seats taken or reserved (a seat
    /// held for a redirected player is not free).
    fn room_entry(&self, rooms: &RoomEnv, room: &RoomHandle) -> RoomEntry {
        let seats = rooms
            .matchmaker
            .seats_in(room.id)
            .unwrap_or_else(|| room.info.players.load(Ordering::Relaxed));
        RoomEntry {
            room_id: room.id,
            kind: room.kind.to_string(),
            node: self.node.clone(),
            players: u32::try_from(seats).unwrap_or(u32::MAX),
            max_players: u32::try_from(room.max_players).unwrap_or(u32::MAX),
            code: Some(room.code.to_string()),
            options: if room.options.is_empty() {
                Vec::new()
            } else {
                room.options.to_bytes()
            },
            metadata: room.info.metadata().to_vec(),
            private: room.private,
            locked: room.info.locked.load(Ordering::Relaxed),
            opened_ms: unix_ms(std::time::SystemTime::now())
                .saturating_sub(u64::try_from(room.info.opened.elapsed().as_millis()).unwrap_or(0)),
        }
    }

    /// What `GET /admin/cluster` shows: this node, every live node and its rooms.
    pub(crate) fn snapshot(&self) -> serde_json::Value {
        let view = self.view();
        let rooms = view.rooms();
        let nodes: Vec<serde_json::Value> = view
            .nodes()
            .into_iter()
            .map(|n| {
                let here: Vec<&RoomEntry> = rooms.iter().filter(|r| r.node == n.node).collect();
                serde_json::json!({
                    "node": n.node,
                    "tcp": n.tcp,
                    "ws": n.ws,
                    "players": n.players,
                    "rooms": n.rooms,
                    "draining": n.draining,
                    "room_list": here,
                })
            })
            .collect();
        serde_json::json!({
            "node": self.node,
            "queue_leader": self.queue_leader(),
            "left": self.left.load(Ordering::Acquire),
            "nodes": nodes,
        })
    }

    /// Live nodes now, this one included while it is a member.
    pub(crate) fn nodes_alive(&self) -> usize {
        self.view().nodes().len()
    }

    /// Live rooms of the directory now, every node's.
    pub(crate) fn directory_rooms(&self) -> Vec<RoomEntry> {
        self.view().rooms()
    }
}

/// Creates (or updates) the three buckets (membership, directory, queue leader): one value
/// per key, kept in memory, forgotten after `ttl` unless rewritten.
async fn buckets(
    js: &async_nats::jetstream::Context,
    ttl: Duration,
) -> Result<(Store, Store, Store), String> {
    let config = |bucket: &str| kv::Config {
        bucket: bucket.to_owned(),
        history: 1,
        max_age: ttl,
        storage: async_nats::jetstream::stream::StorageType::Memory,
        ..Default::default()
    };
    let nodes = js
        .create_or_update_key_value(config(NODES_BUCKET))
        .await
        .map_err(|e| e.to_string())?;
    let rooms = js
        .create_or_update_key_value(config(ROOMS_BUCKET))
        .await
        .map_err(|e| e.to_string())?;
    let queue = js
        .create_or_update_key_value(config(QUEUE_BUCKET))
        .await
        .map_err(|e| e.to_string())?;
    Ok((nodes, rooms, queue))
}

impl Cluster {
    /// Runs `handle` on every message published to `subject` until `stop` is cancelled
    /// or `handle` returns false. A failed subscription is retried every
    /// [`RETRY_PAUSE`], and a subscription that closes is made again (NATS
    /// reconnects underneath). `what` names the responder in the log. The seat
    /// reservations, the queue leader and the queue news all listen this way.
    async fn each_message<F, Fut>(
        &self,
        subject: String,
        what: &'static str,
        stop: &CancellationToken,
        mut handle: F,
    ) where
        F: FnMut(async_nats::Message) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        use futures_util::StreamExt;
        loop {
            let subscribed = tokio::select! {
                () = stop.cancelled() => return,
                s = self.client.subscribe(subject.clone()) => s,
            };
            let mut sub = match subscribed {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, subject, "cannot take {what}; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(RETRY_PAUSE) => continue,
                    }
                }
            };
            loop {
                let msg = tokio::select! {
                    () = stop.cancelled() => return,
                    m = sub.next() => m,
                };
                let Some(msg) = msg else { break };
                if !handle(msg).await {
                    return;
                }
            }
        }
    }
}
