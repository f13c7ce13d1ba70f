//! Cluster mode (its own floor, between commands and play): many `rally serve` nodes
//! sharing one NATS server, with no consensus of their own (`docs/cluster.md`).
//!
//! - **Membership**: each node rewrites its entry (addresses, load, draining) in the
//!   JetStream key-value bucket `rally_nodes` every third of `cluster_node_ttl_ms`; the
//!   bucket's `max_age` is that TTL, so a node that stops (killed, cut off) is gone within
//!   it. A drained node, or one shutting down, deletes its entry and leaves at once.
//! - **Room directory**: each node writes its open rooms into `rally_rooms` (key
//!   `<node>.<room id>`) on the same beat, and deletes the ones that ended.
//! - **Seats across nodes**: `join` on a node with no free seat of the kind asks the
//!   [`View`] where the player goes: a room with a seat on another node, else the
//!   least-loaded node. The chosen owner is asked over NATS request/reply
//!   (`rally.reserve.<node>`, bounded by `cluster_request_timeout_ms`, retried per SPEC
//!   section 2) to reserve a seat; it answers with a signed, single-use seat ticket, which
//!   the player's `redirect` carries to the owner's `claim_seat`.
//!
//! Every node watches both buckets into its [`View`], which expires entries by itself
//! (a watcher is not told when the bucket's `max_age` drops one). NATS going away stops
//! none of the matches: rooms play on, joins fall back to this node, and the watchers,
//! heartbeat and responder pick up again once the client reconnects (re-creating the
//! buckets if the server lost them).
//!
//! # Layout
//! - `view`: the entries seen, their expiry, and where a new player goes (no IO).
//! - `seats`: seats reserved here for redirected players, by ticket nonce.
//! - this file: connecting, the heartbeat, the watchers, the reservation responder, the
//!   requester side of a reservation, and claims.

mod seats;
mod view;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::kv::{self, Operation, Store};
use bytes::Bytes;
use futures_util::StreamExt;
use rally_auth::ticket::{self, Ticket, TicketError, TicketSigner};
use rally_auth::RetryPolicy;
use rally_protocol::{ErrorCode, ServerMessage};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::error::CommandError;
use crate::metrics::{ClusterMetrics, Metrics};
use crate::room::{self, RoomEnv};
use crate::room_handle::{Reservation, RoomHandle};

use seats::{Pending, Seats};
pub(crate) use view::{NodeEntry, RoomEntry};
use view::{Placement, View};

/// The membership bucket.
const NODES_BUCKET: &str = "rally_nodes";
/// The room directory bucket.
const ROOMS_BUCKET: &str = "rally_rooms";
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

/// A seat reservation asked of another node.
#[derive(Debug, Serialize, Deserialize)]
struct ReserveRequest {
    kind: String,
    /// The account the seat is for (0: a guest).
    account: u64,
    /// The node asking, for logs.
    from: String,
}

/// The owner's answer.
#[derive(Debug, Serialize, Deserialize)]
enum ReserveReply {
    Seat {
        ticket: String,
        room: RoomEntry,
        node_players: u32,
        node_rooms: u32,
    },
    Refused {
        code: u16,
        message: String,
    },
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

fn unix_nanos(t: SystemTime) -> i128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// When an entry was written, on this node's monotonic clock (the nodes of one cluster
/// are assumed to keep their wall clocks in step, as NTP does).
fn written_at(entry: &kv::Entry) -> Instant {
    let age_ns = unix_nanos(SystemTime::now()) - entry.created.unix_timestamp_nanos();
    let age = Duration::from_nanos(u64::try_from(age_ns.max(0)).unwrap_or(u64::MAX));
    Instant::now().checked_sub(age).unwrap_or_else(Instant::now)
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
        let (nodes_kv, rooms_kv) = tokio::time::timeout(config.timeout(), buckets(&js, ttl))
            .await
            .map_err(|_| fail("JetStream did not answer (is it on? nats-server -js)".into()))?
            .map_err(|e| fail(format!("JetStream key-value: {e}")))?;
        tracing::info!(node = %node, nats = %url, "joined the cluster");
        Ok(Arc::new(Cluster {
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
            code: None,
            options: None,
            metadata: None,
            private: false,
            locked: false,
        }
    }

    /// Rewrites this node's entry and its rooms' every third of the TTL (or at once when
    /// asked), sweeps expired seats and view entries, and leaves once drained.
    async fn heartbeat(self: Arc<Self>, rooms: Arc<RoomEnv>, stop: CancellationToken) {
        let every = self.ttl / 3;
        let mut published: Vec<String> = Vec::new();
        let mut broken = false;
        loop {
            let now = Instant::now();
            let swept = self.seats.sweep(now);
            if swept > 0 {
                tracing::debug!(seats = swept, "seat tickets expired unclaimed");
            }
            let alive = {
                let mut view = self.view();
                view.expire(now);
                view.nodes().len()
            };
            self.metrics.nodes_alive.set(alive as f64);
            let me = self.own_entry(&rooms);
            if me.draining && me.rooms == 0 && self.seats.len() == 0 {
                // Drained: every match here has finished. Leave, and say so once.
                if !self.left.swap(true, Ordering::AcqRel) {
                    let _ = self.nodes_kv.delete(&self.node).await;
                    self.view().remove_node(&self.node);
                    tracing::info!(node = %self.node, "drained: left the cluster");
                }
            } else if !self.left.load(Ordering::Acquire) {
                if broken {
                    // NATS came back without the buckets (a memory store restarted).
                    broken = buckets(&self.js, self.ttl).await.is_err();
                }
                if !broken {
                    broken = self.publish(&me, &rooms, &mut published).await.is_err();
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(if broken { RETRY_PAUSE } else { every }) => {}
                () = self.publish_now.notified() => {}
            }
        }
        // Shutting down: leave now rather than after the TTL.
        let _ = tokio::time::timeout(self.request_timeout, async {
            let _ = self.nodes_kv.delete(&self.node).await;
            for key in &published {
                let _ = self.rooms_kv.delete(key).await;
            }
        })
        .await;
    }

    /// Writes this node's entry and its rooms', and deletes the entries of rooms gone.
    async fn publish(
        &self,
        me: &NodeEntry,
        rooms: &RoomEnv,
        published: &mut Vec<String>,
    ) -> Result<(), String> {
        let bound = self.request_timeout;
        let write = async {
            let entry = serde_json::to_vec(me).map_err(|e| e.to_string())?;
            self.nodes_kv
                .put(&self.node, Bytes::from(entry))
                .await
                .map_err(|e| e.to_string())?;
            self.view().put_node(me.clone(), Instant::now());
            let mut now_open = Vec::new();
            for room in rooms.matchmaker.rooms() {
                let entry = self.room_entry(rooms, &room);
                let key = entry.key();
                let bytes = serde_json::to_vec(&entry).map_err(|e| e.to_string())?;
                self.rooms_kv
                    .put(&key, Bytes::from(bytes))
                    .await
                    .map_err(|e| e.to_string())?;
                now_open.push(key);
            }
            for gone in published.iter().filter(|k| !now_open.contains(k)) {
                let _ = self.rooms_kv.delete(gone).await;
            }
            *published = now_open;
            Ok::<(), String>(())
        };
        match tokio::time::timeout(bound * 3, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cluster heartbeat failed; retrying");
                Err(e)
            }
            Err(_) => {
                tracing::warn!("cluster heartbeat timed out; retrying");
                Err("timed out".into())
            }
        }
    }

    /// Follows one bucket into the view, re-opening the watch whenever it ends.
    async fn watch(self: Arc<Self>, bucket: &'static str, stop: CancellationToken) {
        let store = if bucket == NODES_BUCKET {
            self.nodes_kv.clone()
        } else {
            self.rooms_kv.clone()
        };
        loop {
            let opened = tokio::select! {
                () = stop.cancelled() => return,
                w = tokio::time::timeout(self.request_timeout * 3, store.watch_with_history(">")) => w,
            };
            match opened {
                Ok(Ok(mut watch)) => loop {
                    let next = tokio::select! {
                        () = stop.cancelled() => return,
                        n = watch.next() => n,
                    };
                    match next {
                        Some(Ok(entry)) => self.apply(bucket, &entry),
                        Some(Err(e)) => {
                            tracing::debug!(bucket, error = %e, "cluster watch ended; reopening");
                            break;
                        }
                        None => break,
                    }
                },
                Ok(Err(e)) => tracing::debug!(bucket, error = %e, "cannot watch; retrying"),
                Err(_) => tracing::debug!(bucket, "watch did not open in time; retrying"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RETRY_PAUSE) => {}
            }
        }
    }

    /// One watched change.
    fn apply(&self, bucket: &str, entry: &kv::Entry) {
        let at = written_at(entry);
        let mut view = self.view();
        match (bucket, entry.operation) {
            (NODES_BUCKET, Operation::Put) => {
                if let Ok(n) = serde_json::from_slice::<NodeEntry>(&entry.value) {
                    // A node's own entry is kept by its heartbeat, with its live load.
                    if n.node != self.node {
                        view.put_node(n, at);
                    }
                }
            }
            (NODES_BUCKET, _) => {
                if entry.key != self.node {
                    view.remove_node(&entry.key);
                }
            }
            (_, Operation::Put) => {
                if let Ok(r) = serde_json::from_slice::<RoomEntry>(&entry.value) {
                    view.put_room(r, at);
                }
            }
            (_, _) => view.remove_room(&entry.key),
        }
    }

    /// Answers other nodes' seat reservations, each in its own tracked task.
    async fn respond(
        self: Arc<Self>,
        rooms: Arc<RoomEnv>,
        tracker: TaskTracker,
        stop: CancellationToken,
    ) {
        let subject = format!("rally.reserve.{}", self.node);
        loop {
            let subscribed = tokio::select! {
                () = stop.cancelled() => return,
                s = self.client.subscribe(subject.clone()) => s,
            };
            let mut sub = match subscribed {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take seat reservations; retrying");
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
                let Some(reply_to) = msg.reply.clone() else {
                    continue;
                };
                let me = self.clone();
                let rooms = rooms.clone();
                tracker.spawn(async move {
                    let reply = me.reserve_here(&rooms, &msg.payload);
                    if let Ok(bytes) = serde_json::to_vec(&reply) {
                        let _ = me.client.publish(reply_to, Bytes::from(bytes)).await;
                    }
                });
            }
        }
    }

    /// Reserves a seat here for another node's player, under a fresh ticket.
    fn reserve_here(&self, rooms: &Arc<RoomEnv>, payload: &[u8]) -> ReserveReply {
        let refuse = |e: CommandError| ReserveReply::Refused {
            code: e.code.as_u16(),
            message: e.message,
        };
        let Ok(ask) = serde_json::from_slice::<ReserveRequest>(payload) else {
            return refuse(CommandError::new(
                ErrorCode::Internal,
                "a malformed reservation",
            ));
        };
        if self.left.load(Ordering::Acquire) {
            return refuse(CommandError::new(
                ErrorCode::Draining,
                "this node left the cluster",
            ));
        }
        let (room, reservation) = match room::reserve(rooms, &ask.kind) {
            Ok(r) => r,
            Err(e) => return refuse(e),
        };
        match self.ticket_for(&room, reservation, ask.account) {
            Ok(ticket) => {
                tracing::debug!(room_id = room.id, from = %ask.from, "seat reserved for a redirected player");
                self.publish_now.notify_one();
                let me = self.own_entry(rooms);
                let entry = self.room_entry(rooms, &room);
                ReserveReply::Seat {
                    ticket,
                    room: entry,
                    node_players: me.players,
                    node_rooms: me.rooms,
                }
            }
            Err(e) => refuse(e),
        }
    }

    /// Signs a ticket for a seat and holds the seat under its nonce.
    fn ticket_for(
        &self,
        room: &RoomHandle,
        reservation: Reservation,
        account: u64,
    ) -> Result<String, CommandError> {
        let internal = |what: &str| CommandError::new(ErrorCode::Internal, what.to_owned());
        let nonce = ticket::nonce().map_err(|_| internal("no randomness for a seat ticket"))?;
        let t = Ticket {
            node: self.node.clone(),
            room_id: room.id,
            account_id: account,
            nonce,
            expires_at_ms: TicketSigner::expiry(SystemTime::now(), self.ticket_ttl),
        };
        let text = self
            .signer
            .sign(&t)
            .map_err(|_| internal("cannot sign a seat ticket"))?;
        let pending = Pending {
            room: room.clone(),
            reservation,
            until: Instant::now() + self.ticket_ttl,
        };
        self.seats.hold(nonce, pending).map_err(|_| {
            CommandError::new(
                ErrorCode::RoomFull,
                "too many seats wait for redirected players",
            )
        })?;
        Ok(text)
    }

    /// Where a player joining `kind` here goes: `None` to join here, or the `redirect`
    /// (answering request `req`) to the node holding the seat reserved for it. Here when
    /// this node has a free seat of the kind; when the node asked fails (after its
    /// retries), here too unless this node drains.
    pub(crate) async fn place(
        &self,
        rooms: &RoomEnv,
        req: u32,
        kind: &str,
        account: Option<u64>,
    ) -> Result<Option<ServerMessage>, CommandError> {
        let me = self.own_entry(rooms);
        if !me.draining && rooms.matchmaker.has_open_seat(kind) {
            return Ok(None);
        }
        // Chosen and counted under one lock, so concurrent joins see each other's picks.
        let placement = self.view().place_and_count(kind, &me);
        let owner = match placement {
            Some(Placement::Local) => return Ok(None),
            Some(Placement::Remote(owner)) => owner,
            None => {
                return Err(CommandError::new(
                    ErrorCode::ClusterUnavailable,
                    "every node of the cluster is draining; try again shortly",
                ))
            }
        };
        let started = Instant::now();
        let asked = self.reserve_on(&owner, kind, account.unwrap_or(0)).await;
        self.metrics.reservation_seconds.record(started.elapsed());
        self.view().settle(
            &owner.node,
            asked
                .as_ref()
                .ok()
                .map(|(_, room, players, rooms)| (room.clone(), *players, *rooms)),
        );
        match asked {
            Ok((ticket, room, _, _)) => {
                self.metrics.redirects.increment(1);
                Ok(Some(ServerMessage::Redirect {
                    req,
                    node: owner.node,
                    tcp: owner.tcp,
                    ws: owner.ws,
                    ticket,
                    room_id: room.room_id,
                }))
            }
            Err(e) => {
                self.metrics.reservation_failures.increment(1);
                tracing::warn!(node = %owner.node, error = %e.message, "seat reservation on another node failed");
                if me.draining {
                    Err(e)
                } else {
                    // The player still gets a room: here.
                    Ok(None)
                }
            }
        }
    }

    /// Asks `owner` for a seat, retried per SPEC section 2 (timeouts only).
    async fn reserve_on(
        &self,
        owner: &NodeEntry,
        kind: &str,
        account: u64,
    ) -> Result<(String, RoomEntry, u32, u32), CommandError> {
        let ask = ReserveRequest {
            kind: kind.to_owned(),
            account,
            from: self.node.clone(),
        };
        let payload = Bytes::from(serde_json::to_vec(&ask).unwrap_or_default());
        let subject = format!("rally.reserve.{}", owner.node);
        let timed_out = || {
            CommandError::new(
                ErrorCode::ClusterUnavailable,
                format!("node {} did not answer a seat reservation", owner.node),
            )
        };
        let answer = RetryPolicy::SPEC
            .run(
                None,
                |e: &CommandError| e.code == ErrorCode::Timeout,
                |_| {
                    let (subject, payload) = (subject.clone(), payload.clone());
                    async move {
                        match tokio::time::timeout(
                            self.request_timeout,
                            self.client.request(subject, payload),
                        )
                        .await
                        {
                            Err(_) => Err(CommandError::new(ErrorCode::Timeout, "")),
                            Ok(Err(e)) => Err(CommandError::new(
                                ErrorCode::ClusterUnavailable,
                                format!("node {}: {e}", owner.node),
                            )),
                            Ok(Ok(msg)) => Ok(msg.payload),
                        }
                    }
                },
            )
            .await
            .map_err(|e| {
                if e.code == ErrorCode::Timeout {
                    timed_out()
                } else {
                    e
                }
            })?;
        match serde_json::from_slice::<ReserveReply>(&answer) {
            Ok(ReserveReply::Seat {
                ticket,
                room,
                node_players,
                node_rooms,
            }) => Ok((ticket, room, node_players, node_rooms)),
            Ok(ReserveReply::Refused { code, message }) => Err(CommandError::new(
                ErrorCode::from_u16(code).unwrap_or(ErrorCode::ClusterUnavailable),
                format!("node {}: {message}", owner.node),
            )),
            Err(_) => Err(CommandError::new(
                ErrorCode::ClusterUnavailable,
                format!("node {} answered a reservation with nonsense", owner.node),
            )),
        }
    }

    /// Takes the seat a ticket reserved here, for the player logged in as `account`.
    pub(crate) fn claim(
        &self,
        text: &str,
        account: Option<u64>,
    ) -> Result<(RoomHandle, Reservation), CommandError> {
        let t = self
            .signer
            .verify(text, SystemTime::now())
            .map_err(|e| match e {
                TicketError::Expired => CommandError::new(
                    ErrorCode::TicketExpired,
                    "the seat ticket has expired; join again",
                ),
                _ => CommandError::new(ErrorCode::TicketInvalid, "not a valid seat ticket"),
            })?;
        if t.node != self.node {
            return Err(CommandError::new(
                ErrorCode::TicketWrongNode,
                format!("the seat is on node {}, this is {}", t.node, self.node),
            ));
        }
        if t.account_id != account.unwrap_or(0) {
            return Err(CommandError::new(
                ErrorCode::TicketInvalid,
                "the seat ticket was issued to another player",
            ));
        }
        let pending = self.seats.claim(&t.nonce).ok_or_else(|| {
            CommandError::new(
                ErrorCode::TicketUsed,
                "the seat ticket was already used (or this node no longer holds its seat)",
            )
        })?;
        Ok((pending.room, pending.reservation))
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

/// Creates (or updates) both buckets: one value per key, kept in memory, forgotten after
/// `ttl` unless rewritten.
async fn buckets(
    js: &async_nats::jetstream::Context,
    ttl: Duration,
) -> Result<(Store, Store), String> {
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
    Ok((nodes, rooms))
}
