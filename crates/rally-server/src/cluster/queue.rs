//! The rating queue across nodes: one node, the queue leader, holds every waiting ticket
//! of the cluster and forms the matches, so players queued on different nodes meet.
//!
//! - **Leader**: elected with the key-value bucket `rally_queue`'s atomic `create` of the
//!   key `leader` (the bucket's `max_age` is the node TTL); the leader rewrites it every
//!   third of the TTL, and when it stops (killed, cut off) the key lapses and the next
//!   node to try `create` leads. One leader for every kind, not one per kind: a pass over
//!   10,000 tickets is milliseconds, so spreading kinds over leaders would buy nothing
//!   and cost an election each.
//! - **Home nodes** (every node, the leader too) keep their queued players
//!   (`MatchQueue::hold_remote`) and forward `queue` to the leader over request/reply
//!   (`rally.queue.<leader>`, retried per SPEC section 2), and `leave_queue` and
//!   disconnects as cancellations.
//! - The leader's pass (every `queue::PASS_EVERY`, the local queue's state machine)
//!   places each match's room on the least-loaded node (`View::place`), reserves every
//!   seat there before anyone sits (a private room, as a local match), and tells each
//!   player's home node (`rally.queue.home.<node>`): a seat ticket, or the end of the
//!   ticket (`MATCH_TIMEOUT`, or why the room could not open). The home node seats its
//!   player when the room is its own, else answers `redirect` (req 0).
//! - A new leader starts empty: home nodes that see the leader change end their waiting
//!   players' tickets (`MATCH_TIMEOUT`, "queue again"), as NATS holds no ticket.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use async_nats::jetstream::kv::Operation;
use bytes::Bytes;
use rally_game::RoomOptions;
use rally_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::reserve::Want;
use super::view::{Placement, Seek};
use super::Cluster;
use crate::error::CommandError;
use crate::queue::{refused, MatchQueue, MatchRules, PoolKey, Tickets, LIMITS, PASS_EVERY};
use crate::room::{self, RoomEnv};

/// The leader's key in the queue bucket.
pub(super) const LEADER_KEY: &str = "leader";
/// News for this node's queued players waiting to be handled, at most.
pub(super) const NEWS: usize = 1024;

/// A player waiting on the leader: where they are connected.
#[derive(Debug, Clone)]
struct Member {
    node: String,
    session: u64,
    account: u64,
}

/// The leader's tickets (kept on every node, used on the leader only).
#[derive(Debug)]
struct Waiting {
    tickets: Tickets<Member, Bytes>,
    /// Member ids by (node, session): a session id is unique on its node only.
    ids: HashMap<(String, u64), u64>,
    next_id: u64,
}

/// The leader's queue.
#[derive(Debug)]
pub(super) struct LeaderQueue(Mutex<Waiting>);

impl Default for LeaderQueue {
    fn default() -> Self {
        LeaderQueue(Mutex::new(Waiting {
            tickets: Tickets::new(LIMITS),
            ids: HashMap::new(),
            next_id: 0,
        }))
    }
}

impl LeaderQueue {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // Map operations that leave the maps consistent: a poisoned lock is usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a home node asks of the leader.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ToLeader {
    Enqueue {
        node: String,
        kind: String,
        /// The room options, MessagePack (empty: none).
        #[serde(default, with = "super::view::hex")]
        options: Vec<u8>,
        rating: f64,
        /// (session, account) of each player of the ticket, all connected to `node`.
        members: Vec<(u64, u64)>,
    },
    Cancel {
        node: String,
        session: u64,
    },
}

/// The leader's answer.
#[derive(Debug, Serialize, Deserialize)]
enum LeaderAnswer {
    Done,
    Refused {
        code: u16,
        message: String,
    },
    /// The node asked does not lead (any more): the asker reads the key and asks again.
    /// A node before this answer existed reads it as nonsense, `CLUSTER_UNAVAILABLE`, as
    /// the refusal it used to get.
    NotLeader,
}

/// What a player is told when the queue's leader cannot be reached as it changes.
const NOT_LEADER: &str = "the queue's leader is changing; try again";

/// What the leader tells a player's home node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum QueueNews {
    /// A match: the seat waits on `node`, in `room_id`, under `ticket`.
    Matched {
        session: u64,
        node: String,
        tcp: String,
        ws: String,
        ticket: String,
        room_id: u64,
    },
    /// The ticket ended without a seat (timed out, or the match's room could not open).
    Ended {
        session: u64,
        code: u16,
        message: String,
    },
}

fn unavailable(what: impl Into<String>) -> CommandError {
    CommandError::new(ErrorCode::ClusterUnavailable, what)
}

impl Cluster {
    /// The queue leader now, if one is known (the admin API and tests).
    pub(crate) fn queue_leader(&self) -> Option<String> {
        self.leader()
    }

    /// The queue leader now, if one is known.
    fn leader(&self) -> Option<String> {
        self.queue_leader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_leader(&self, leader: Option<String>) {
        let (changed, was_me) = {
            let mut now = self.queue_leader.lock().unwrap_or_else(|e| e.into_inner());
            let changed = now.is_some() && *now != leader;
            let was_me = now.as_deref() == Some(self.node.as_str());
            *now = leader.clone();
            (changed, was_me)
        };
        if changed && was_me {
            // Every node ends the tickets it had here: none may be matched any more.
            let mut w = self.leader_queue.lock();
            w.tickets = Tickets::new(LIMITS);
            w.ids.clear();
        }
        if changed {
            tracing::info!(leader = ?leader, "the queue leader changed");
            // A permit, not a message: changes coalesce and none is lost to a full queue.
            self.leader_moved.notify_one();
        }
    }

    /// Returns once the queue leader changed since the last call returned (at once when
    /// it did meanwhile): the tickets another leader held are gone. This node's players
    /// whose `queue` is on its way wait for its answer instead.
    pub(crate) async fn queue_leader_moved(&self) {
        self.leader_moved.notified().await;
    }

    /// This node's queue news, for the commands floor's handler; the first caller gets it.
    pub(crate) fn take_queue_news(&self) -> Option<mpsc::Receiver<QueueNews>> {
        self.queue_news_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Queues a ticket of this node's players (`(session, account)` each) on the leader:
    /// the leader that took it.
    pub(crate) async fn enqueue(
        &self,
        kind: &str,
        options: &[u8],
        rating: f64,
        members: Vec<(u64, u64)>,
    ) -> Result<String, CommandError> {
        let ask = ToLeader::Enqueue {
            node: self.node.clone(),
            kind: kind.to_owned(),
            options: options.to_vec(),
            rating,
            members,
        };
        self.tell_leader(&ask).await
    }

    /// Sends `ask` to the leader this node knows. A node that answers it no longer leads
    /// (the key moved since this node last read it, up to a third of the TTL ago) makes
    /// this node read the key now and ask the leader it names, once. The leader that
    /// took it.
    async fn tell_leader(&self, ask: &ToLeader) -> Result<String, CommandError> {
        let payload = Bytes::from(serde_json::to_vec(ask).map_err(|_| unavailable("unencodable"))?);
        let mut leader = self
            .leader()
            .ok_or_else(|| unavailable("the cluster has no matchmaker yet; try again shortly"))?;
        let mut again = true;
        loop {
            let answer = self
                .request(&leader, format!("rally.queue.{leader}"), payload.clone())
                .await?;
            match serde_json::from_slice::<LeaderAnswer>(&answer) {
                Ok(LeaderAnswer::Done) => return Ok(leader),
                Ok(LeaderAnswer::NotLeader) if again => {
                    again = false;
                    match self.read_leader().await {
                        Some(now) if now != leader => leader = now,
                        _ => return Err(unavailable(NOT_LEADER)),
                    }
                }
                Ok(LeaderAnswer::NotLeader) => return Err(unavailable(NOT_LEADER)),
                Ok(LeaderAnswer::Refused { code, message }) => {
                    return Err(CommandError::new(
                        ErrorCode::from_u16(code).unwrap_or(ErrorCode::ClusterUnavailable),
                        message,
                    ))
                }
                Err(_) => {
                    return Err(unavailable(format!(
                        "the matchmaker on {leader} answered nonsense"
                    )))
                }
            }
        }
    }

    /// Reads who leads the queue now (not taking the lead), and keeps it.
    async fn read_leader(&self) -> Option<String> {
        let read = tokio::time::timeout(self.request_timeout, self.queue_kv.entry(LEADER_KEY));
        match read.await {
            Ok(Ok(Some(e))) if e.operation == Operation::Put => {
                let holder = String::from_utf8_lossy(&e.value).into_owned();
                self.set_leader(Some(holder.clone()));
                Some(holder)
            }
            _ => None,
        }
    }

    /// Starts the queue's tasks: the election, the leader's responder and passes, this
    /// node's news subscription and its cancellations.
    pub(crate) fn start_queue(
        self: &Arc<Self>,
        rooms: Arc<RoomEnv>,
        queue: Arc<MatchQueue>,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) {
        tracker.spawn(self.clone().elect(stop.clone()));
        tracker.spawn(
            self.clone()
                .lead(rooms.clone(), tracker.clone(), stop.clone()),
        );
        tracker.spawn(self.clone().passes(rooms, tracker.clone(), stop.clone()));
        tracker.spawn(self.clone().hear(stop.clone()));
        if let Some(cancels) = queue.take_cancels() {
            tracker.spawn(self.clone().cancel(cancels, stop));
        }
    }

    /// Keeps the leader known: renews the key while leading, takes it when it lapsed.
    async fn elect(self: Arc<Self>, stop: CancellationToken) {
        let every = self.ttl / 3;
        loop {
            let round = tokio::time::timeout(self.request_timeout, self.elect_once()).await;
            if round.is_err() {
                tracing::debug!("queue leader election timed out; retrying");
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
        }
        // Leaving: hand the queue over now rather than after the TTL.
        if self.leader().as_deref() == Some(self.node.as_str()) {
            let _ =
                tokio::time::timeout(self.request_timeout, self.queue_kv.delete(LEADER_KEY)).await;
        }
    }

    async fn elect_once(&self) {
        let me = Bytes::from(self.node.clone().into_bytes());
        let leaving = self.left.load(Ordering::Acquire);
        match self.queue_kv.entry(LEADER_KEY).await {
            Ok(Some(e)) if e.operation == Operation::Put => {
                let holder = String::from_utf8_lossy(&e.value).into_owned();
                if holder == self.node && leaving {
                    // Drained away: hand the queue over now rather than after the TTL.
                    let _ = self.queue_kv.delete(LEADER_KEY).await;
                    self.set_leader(None);
                    return;
                }
                if holder == self.node {
                    // Renewed only if nobody took it meanwhile; if somebody did (or NATS
                    // hiccuped), the next round reads who leads.
                    if self
                        .queue_kv
                        .update(LEADER_KEY, me, e.revision)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                self.set_leader(Some(holder));
            }
            Ok(_) if !leaving => {
                // Another node may win the race: the next round reads who.
                if self.queue_kv.create(LEADER_KEY, me).await.is_ok() {
                    tracing::info!(node = %self.node, "leading the cluster's queue");
                    self.set_leader(Some(self.node.clone()));
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "cannot read the queue leader"),
        }
    }

    /// Answers the home nodes' tickets and cancellations while this node leads.
    async fn lead(
        self: Arc<Self>,
        rooms: Arc<RoomEnv>,
        tracker: TaskTracker,
        stop: CancellationToken,
    ) {
        let subject = format!("rally.queue.{}", self.node);
        self.each_message(subject, "queue requests", &stop, |msg| {
            if let Some(reply_to) = msg.reply.clone() {
                let answer = self.answer(&rooms, &msg.payload);
                let me = self.clone();
                tracker.spawn(async move {
                    if let Ok(bytes) = serde_json::to_vec(&answer) {
                        let _ = me.client.publish(reply_to, Bytes::from(bytes)).await;
                    }
                });
            }
            std::future::ready(true)
        })
        .await;
    }

    /// One home node's request, on the leader.
    fn answer(&self, rooms: &RoomEnv, payload: &[u8]) -> LeaderAnswer {
        let refuse = |e: CommandError| LeaderAnswer::Refused {
            code: e.code.as_u16(),
            message: e.message,
        };
        if self.leader().as_deref() != Some(self.node.as_str()) {
            return LeaderAnswer::NotLeader;
        }
        match serde_json::from_slice::<ToLeader>(payload) {
            Ok(ToLeader::Enqueue {
                node,
                kind,
                options,
                rating,
                members,
            }) => match self.admit(rooms, node, &kind, options, rating, members) {
                Ok(()) => LeaderAnswer::Done,
                Err(e) => refuse(e),
            },
            Ok(ToLeader::Cancel { node, session }) => {
                let mut w = self.leader_queue.lock();
                if let Some(id) = w.ids.remove(&(node, session)) {
                    w.tickets.remove_member(id);
                }
                LeaderAnswer::Done
            }
            Err(_) => refuse(CommandError::new(
                ErrorCode::Internal,
                "a malformed queue request",
            )),
        }
    }

    /// Queues a ticket on the leader, with the kind's rules as this node has them (every
    /// node runs the same games).
    fn admit(
        &self,
        rooms: &RoomEnv,
        node: String,
        kind: &str,
        options: Vec<u8>,
        rating: f64,
        members: Vec<(u64, u64)>,
    ) -> Result<(), CommandError> {
        let rules = rooms.games.rules(kind).ok_or_else(|| {
            CommandError::new(ErrorCode::UnknownRoomKind, format!("no room kind {kind:?}"))
        })?;
        let queue_rules = rules.queue_rules().ok_or_else(|| {
            CommandError::new(
                ErrorCode::InvalidArgument,
                format!("room kind {kind:?} has no matchmaking queue"),
            )
        })?;
        let parsed = RoomOptions::parse(&options)
            .map_err(|e| CommandError::new(ErrorCode::BadOptions, e.0))?;
        let (_, filter) = room::filter_key(kind, rules, &parsed);
        let pool = PoolKey {
            kind: Arc::from(kind),
            filter,
        };
        let match_rules = MatchRules::of(rules, queue_rules);
        let mut w = self.leader_queue.lock();
        let mut ids = Vec::with_capacity(members.len());
        for (session, account) in members {
            if w.ids.contains_key(&(node.clone(), session)) {
                return Err(CommandError::new(
                    ErrorCode::AlreadyQueued,
                    "already in the queue",
                ));
            }
            w.next_id += 1;
            let member = Member {
                node: node.clone(),
                session,
                account,
            };
            ids.push((w.next_id, member));
        }
        let keys: Vec<(u64, (String, u64))> = ids
            .iter()
            .map(|(id, m)| (*id, (m.node.clone(), m.session)))
            .collect();
        let now = tokio::time::Instant::now().into_std();
        w.tickets
            .enqueue(pool, &match_rules, ids, rating, Bytes::from(options), now)
            .map_err(refused)?;
        for (id, key) in keys {
            w.ids.insert(key, id);
        }
        Ok(())
    }

    /// The leader's passes: every `PASS_EVERY`, while it leads and tickets wait.
    async fn passes(
        self: Arc<Self>,
        rooms: Arc<RoomEnv>,
        tracker: TaskTracker,
        stop: CancellationToken,
    ) {
        let mut every = tokio::time::interval(PASS_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            if self.leader().as_deref() != Some(self.node.as_str()) {
                continue;
            }
            let me = self.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let now = tokio::time::Instant::now().into_std();
                let mut w = me.leader_queue.lock();
                if w.tickets.len() == 0 {
                    return None;
                }
                let out = w.tickets.pass(now);
                // Matched and timed-out players leave the id map with their tickets.
                let gone: Vec<(String, u64)> = out
                    .matches
                    .iter()
                    .flat_map(|m| m.tickets.iter())
                    .flat_map(|t| t.members.iter())
                    .chain(out.timed_out.iter().flat_map(|t| t.members.iter()))
                    .map(|(_, m)| (m.node.clone(), m.session))
                    .collect();
                for key in gone {
                    w.ids.remove(&key);
                }
                Some(out)
            })
            .await;
            let Ok(Some(out)) = outcome else { continue };
            for t in out.timed_out {
                for (_, m) in t.members {
                    let news = QueueNews::Ended {
                        session: m.session,
                        code: ErrorCode::MatchTimeout.as_u16(),
                        message: format!(
                            "no match found within {} s; queue again to keep waiting",
                            t.waited.as_secs()
                        ),
                    };
                    self.tell_home(&m.node, &news).await;
                }
            }
            for m in out.matches {
                let options = m
                    .tickets
                    .first()
                    .map(|t| t.payload.clone())
                    .unwrap_or_default();
                let players: Vec<(Member, u32)> = m
                    .tickets
                    .into_iter()
                    .flat_map(|t| {
                        let team = t.team;
                        t.members.into_iter().map(move |(_, member)| (member, team))
                    })
                    .collect();
                let me = self.clone();
                let rooms = rooms.clone();
                let kind = m.pool.kind.to_string();
                tracker.spawn(async move { me.seat_match(&rooms, &kind, options, players).await });
            }
        }
    }

    /// Places a match's room on the least-loaded node, reserves every seat there, and
    /// tells each player's home node.
    async fn seat_match(
        &self,
        rooms: &Arc<RoomEnv>,
        kind: &str,
        options: Bytes,
        players: Vec<(Member, u32)>,
    ) {
        let me = self.own_entry(rooms);
        let placed = self.view().place_and_count(kind, Seek::NewRoom, &me);
        let owner = match placed {
            Some(Placement::Local) => me.clone(),
            Some(Placement::Remote(n)) => n,
            None => {
                let e = unavailable("every node of the cluster is draining; queue again shortly");
                for (m, _) in &players {
                    self.end(m, &e).await;
                }
                return;
            }
        };
        let mut seats = Vec::with_capacity(players.len());
        let mut room_id = None;
        for (m, team) in &players {
            let want = match room_id {
                None => Want::New {
                    options: options.to_vec(),
                    private: true,
                    team: *team,
                },
                Some(room_id) => Want::Id {
                    room_id,
                    team: *team,
                },
            };
            let reserved = if owner.node == self.node {
                self.reserve_here_for(rooms, kind, want, m.account)
            } else {
                self.reserve_on(&owner, kind, want, m.account, false)
                    .await
                    .map(|(ticket, answer)| (ticket, answer.room.room_id))
            };
            match reserved {
                Ok((ticket, id)) => {
                    room_id = Some(id);
                    seats.push(ticket);
                }
                Err(e) => {
                    // The seats reserved so far are given back as their tickets expire.
                    if owner.node != self.node {
                        self.view().settle(&owner.node, None);
                    }
                    for (m, _) in &players {
                        self.end(m, &e).await;
                    }
                    return;
                }
            }
        }
        if owner.node != self.node {
            self.view().settle(&owner.node, None);
        }
        let Some(room_id) = room_id else { return };
        for ((m, _), ticket) in players.iter().zip(seats) {
            let news = QueueNews::Matched {
                session: m.session,
                node: owner.node.clone(),
                tcp: owner.tcp.clone(),
                ws: owner.ws.clone(),
                ticket,
                room_id,
            };
            self.tell_home(&m.node, &news).await;
        }
    }

    async fn end(&self, m: &Member, e: &CommandError) {
        let news = QueueNews::Ended {
            session: m.session,
            code: e.code.as_u16(),
            message: e.message.clone(),
        };
        self.tell_home(&m.node, &news).await;
    }

    /// Sends a player's home node its news (at most once: a node gone has nobody to tell).
    async fn tell_home(&self, node: &str, news: &QueueNews) {
        if node == self.node {
            if self.queue_news.send(news.clone()).await.is_err() {
                tracing::debug!("queue news after shutdown");
            }
            return;
        }
        if let Ok(bytes) = serde_json::to_vec(news) {
            let subject = format!("rally.queue.home.{node}");
            if let Err(e) = self.client.publish(subject, Bytes::from(bytes)).await {
                tracing::warn!(node, error = %e, "cannot tell a queued player's node");
            }
        }
    }

    /// This node's news from the leader, into the commands floor's handler.
    async fn hear(self: Arc<Self>, stop: CancellationToken) {
        let subject = format!("rally.queue.home.{}", self.node);
        self.each_message(subject, "queue news", &stop, |msg| {
            let (stop, news) = (&stop, &self.queue_news);
            async move {
                let Ok(news_item) = serde_json::from_slice::<QueueNews>(&msg.payload) else {
                    return true;
                };
                // Bounded wait: the handler drains it as fast as sessions take messages.
                tokio::select! {
                    () = stop.cancelled() => false,
                    sent = news.send(news_item) => sent.is_ok(),
                }
            }
        })
        .await;
    }

    /// Tells the leader of the players that left the queue here.
    async fn cancel(self: Arc<Self>, mut cancels: mpsc::Receiver<u64>, stop: CancellationToken) {
        loop {
            let session = tokio::select! {
                () = stop.cancelled() => return,
                s = cancels.recv() => match s { Some(s) => s, None => return },
            };
            let ask = ToLeader::Cancel {
                node: self.node.clone(),
                session,
            };
            if let Err(e) = self.tell_leader(&ask).await {
                // The leader matches them anyway: the match finds nobody here, its seat
                // ticket expires and the seat is given back.
                tracing::debug!(session, error = %e.message, "queue cancellation not delivered");
            }
        }
    }
}
