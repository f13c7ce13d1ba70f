//! The server's handles (server floor, beside `server`): the [`ServerHandle`] a test or
//! an embedding program watches a running server through, and from which the server
//! gives each kind of task (rooms, commands, sessions, accept loops, the admin listener)
//! only the handles it uses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounts::Auth;
use crate::admin::AdminEnv;
use crate::cluster::Cluster;
use crate::command::{CommandChecks, CommandEnv};
use crate::config::Config;
use crate::directory::Directory;
use crate::games::Games;
use crate::limits::AddressLimits;
use crate::listener::AcceptEnv;
use crate::matchmaker::Matchmaker;
use crate::metrics::{DbCallMetric, Metrics};
use crate::outbox::LiveSessions;
use crate::queue::MatchQueue;
use crate::readiness::{Dependency, Readiness};
use crate::recording::Recordings;
use crate::resume::ResumeTokens;
use crate::room::RoomEnv;
use crate::session::SessionEnv;
use crate::storage::Storage;

/// Connections being refused at once with `SERVER_FULL` in their own task.
const MAX_REFUSALS: usize = 64;

/// A live view of a running server, for tests and embedding programs. It also holds the
/// server's handles, from which [`Server`](crate::Server) gives each task the ones it uses.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    pub(crate) config: Arc<Config>,
    pub(crate) games: Games,
    pub(crate) matchmaker: Arc<Matchmaker>,
    /// The matchmaking queue: tickets, and seats matches gave sessions.
    pub(crate) queue: Arc<MatchQueue>,
    pub(crate) directory: Arc<Directory>,
    /// Every task the server spawns, so none is lost and shutdown can wait for all.
    pub(crate) tracker: TaskTracker,
    /// Cancelled when shutdown begins.
    pub(crate) shutdown: CancellationToken,
    /// Every running session, so shutdown reaches each one.
    pub(crate) sessions: Arc<LiveSessions>,
    pub(crate) metrics: Arc<Metrics>,
    /// Dependencies that reported themselves unhealthy.
    pub(crate) readiness: Arc<Readiness>,
    /// The database; `None` for a server built without one (tests of the realtime path).
    pub(crate) storage: Option<Arc<Storage>>,
    /// Match recordings; `None` when `recordings_dir` is empty.
    pub(crate) recordings: Option<Arc<Recordings>>,
    /// Cluster mode: this node's part of the cluster; `None` for a single node.
    pub(crate) cluster: Option<Arc<Cluster>>,
}

impl ServerHandle {
    /// What rooms run with.
    pub(crate) fn room_env(&self) -> RoomEnv {
        RoomEnv {
            games: self.games.clone(),
            matchmaker: self.matchmaker.clone(),
            resume: Arc::new(ResumeTokens::default()),
            metrics: self.metrics.clone(),
            storage: self.storage.clone(),
            recordings: self.recordings.clone(),
            tracker: self.tracker.clone(),
            shutdown: self.shutdown.clone(),
            tick_period: self.config.tick_period(),
            reconnect_grace: self.config.reconnect_grace(),
            max_message_bytes: self.config.max_message_bytes as usize,
            timeout: self.config.timeout(),
            epoch: self.sessions.epoch(),
        }
    }

    /// What the accept loops run with, and through them sessions and commands.
    pub(crate) fn accept_env(&self, checks: Arc<dyn CommandChecks>) -> Arc<AcceptEnv> {
        let auth = Arc::new(Auth::new(&self.config));
        let commands = Arc::new(CommandEnv {
            checks,
            rooms: Arc::new(self.room_env()),
            auth: auth.clone(),
            storage: self.storage.clone(),
            directory: self.directory.clone(),
            queue: self.queue.clone(),
            cluster: self.cluster.clone(),
        });
        let session = Arc::new(SessionEnv {
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            sessions: self.sessions.clone(),
            directory: self.directory.clone(),
            auth,
            storage: self.storage.clone(),
            matchmaker: self.matchmaker.clone(),
            queue: self.queue.clone(),
            shutdown: self.shutdown.clone(),
            commands,
            next_session: AtomicU64::new(0),
        });
        Arc::new(AcceptEnv {
            session,
            addresses: AddressLimits::new(&self.config),
            limit: Arc::new(Semaphore::new(self.config.concurrency_limit as usize)),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            tracker: self.tracker.clone(),
        })
    }

    /// What the admin listener runs with.
    pub(crate) fn admin_env(&self) -> AdminEnv {
        AdminEnv {
            config: self.config.clone(),
            matchmaker: self.matchmaker.clone(),
            directory: self.directory.clone(),
            sessions: self.sessions.clone(),
            metrics: self.metrics.clone(),
            readiness: self.readiness.clone(),
            shutdown: self.shutdown.clone(),
            recordings: self.recordings.clone(),
            cluster: self.cluster.clone(),
        }
    }

    /// Handshaken sessions now.
    pub fn sessions(&self) -> usize {
        self.directory.len()
    }

    /// Open rooms now.
    pub fn rooms(&self) -> usize {
        self.matchmaker.room_count()
    }

    /// Tracked tasks now (sessions, rooms, accept loops, refusals).
    pub fn tasks(&self) -> usize {
        self.tracker.len()
    }

    /// Errors with `code` sent (or, for a client too slow to take it, meant) to clients since start.
    pub fn errors(&self, code: rally_protocol::ErrorCode) -> u64 {
        self.metrics.stats.errors(code)
    }

    /// Ticks skipped because a room fell behind, since start.
    pub fn missed_ticks(&self) -> u64 {
        self.metrics.stats.missed_ticks.load(Ordering::Relaxed)
    }

    /// Cluster mode: this node's id; `None` for a single node.
    pub fn node_id(&self) -> Option<&str> {
        self.cluster.as_deref().map(Cluster::node_id)
    }

    /// Cluster mode: the live nodes this node sees (itself included while a member); 0
    /// for a single node.
    pub fn cluster_nodes(&self) -> usize {
        self.cluster.as_ref().map_or(0, |c| c.nodes_alive())
    }

    /// Cluster mode: the rooms of the directory this node sees, as `(node, room id)`;
    /// empty for a single node.
    pub fn cluster_rooms(&self) -> Vec<(String, u64)> {
        self.cluster.as_ref().map_or_else(Vec::new, |c| {
            c.directory_rooms()
                .into_iter()
                .map(|r| (r.node, r.room_id))
                .collect()
        })
    }

    /// Cluster mode: the node leading the cluster's rating queue, as this node last read
    /// it; `None` for a single node or before the first election.
    pub fn cluster_queue_leader(&self) -> Option<String> {
        self.cluster.as_ref().and_then(|c| c.queue_leader())
    }

    /// Whether the server is draining (admin API `POST /admin/drain`).
    pub fn draining(&self) -> bool {
        self.matchmaker.is_draining()
    }

    /// The timer of one database operation, feeding
    /// `rally_db_call_duration_seconds{operation}`. The storage layer takes one per
    /// operation when it starts (this registers the series), keeps it, and times each
    /// call with [`DbCallMetric::time`] or [`DbCallMetric::record`].
    pub fn db_call_metric(&self, operation: &str) -> DbCallMetric {
        self.metrics.db_call(operation)
    }

    /// The readiness handle of a dependency such as `"database"`: while it reports
    /// itself unhealthy, `/readyz` answers 503 and names it.
    pub fn dependency(&self, name: &str) -> Dependency {
        Dependency::new(name, self.readiness.clone())
    }

    /// Database writes nobody waits for (session stats, match records) queued or running.
    pub fn pending_writes(&self) -> usize {
        self.storage.as_ref().map_or(0, |s| s.pending_writes())
    }

    /// Every seat of every open room now, as the rooms themselves report them (each
    /// room answers for itself, so the list is consistent per room, not across rooms).
    /// A room that does not answer within `timeout_ms` (it is ending) is left out.
    pub async fn seats(&self) -> Vec<SeatInfo> {
        let limit = self.config.timeout();
        let mut all = Vec::new();
        for room in self.matchmaker.rooms() {
            let Some(seats) = room.inspect(limit).await else {
                continue;
            };
            all.extend(seats.into_iter().map(|s| SeatInfo {
                room_id: room.id,
                player_id: s.player_id,
                session_id: s.session_id,
                account_id: s.account,
                away_for: s.away_for,
            }));
        }
        all
    }
}

/// One seat in a room, as [`ServerHandle::seats`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatInfo {
    /// The room.
    pub room_id: u64,
    /// The player's id in that room.
    pub player_id: u32,
    /// The session playing it; `None` while the player is away (its connection dropped
    /// and the seat is held for it to resume).
    pub session_id: Option<u64>,
    /// The account holding the seat; `None` for a guest.
    pub account_id: Option<u64>,
    /// How much longer an away player's seat is held.
    pub away_for: Option<Duration>,
}
