//! The server: what every task shares, how it starts, and how it shuts down.
//!
//! Shutdown (SPEC.md section 4) is a cancellation tree rooted at the server's
//! `shutdown` token. Cancelling it stops the accept loops and ends every room (room
//! tokens are its children; each game gets its shutdown hook and each room tells its
//! players `room_closed`). Sessions are the leaves: the server reaches each through the
//! live-session registry and tells it to drain, which sends the client `shutdown` and
//! waits for the client to close. (Sessions use a lock-free signal rather than child
//! tokens because they check it on every wake-up; a token check takes a mutex, and
//! profiling showed it at 5% of the server's CPU.) Every task is in one tracker; when it
//! is empty the drain was clean. If `shutdown_grace_ms` passes first, every session left
//! is ended at once.
//!
//! Then the database: each session and room that ended queued its last writes (a
//! session's stats, a room's match record); shutdown flushes them all, a few at a time,
//! and only then closes the store and returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use rally_store::{Store, StoreError};

use crate::accounts::Auth;
use crate::command::{CommandChecks, DefaultChecks};
use crate::config::Config;
use crate::directory::Directory;
use crate::games::Games;
use crate::limits::AddressLimits;
use crate::matchmaker::Matchmaker;
use crate::metrics::{DbCallMetric, Metrics, Stats};
use crate::readiness::{Dependency, Readiness};
use crate::resume::ResumeTokens;
use crate::session::LiveSessions;
use crate::storage::{self, Storage};
use crate::transport::Transport;
use crate::{admin, heartbeat, listener};

/// Connections being refused at once with `SERVER_FULL` in their own task.
const MAX_REFUSALS: usize = 64;
/// How long tasks get to stop after the grace period, once force-cancelled.
const FORCE_LIMIT: Duration = Duration::from_secs(2);

/// What every task of one server shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) games: Games,
    pub(crate) checks: Arc<dyn CommandChecks>,
    pub(crate) matchmaker: Matchmaker,
    pub(crate) directory: Arc<Directory>,
    /// Every task the server spawns, so none is lost and shutdown can wait for all.
    pub(crate) tracker: TaskTracker,
    /// Cancelled when shutdown begins.
    pub(crate) shutdown: CancellationToken,
    /// Every running session, so shutdown reaches each one.
    pub(crate) sessions: LiveSessions,
    /// Seats held for players who may come back, by resume token.
    pub(crate) resume: ResumeTokens,
    /// One permit per player connection (`concurrency_limit`).
    pub(crate) limit: Arc<Semaphore>,
    /// Bounds the tasks that refuse connections at capacity.
    pub(crate) refusals: Arc<Semaphore>,
    /// Connections held and opened per second, per client address.
    pub(crate) addresses: Arc<AddressLimits>,
    next_session: AtomicU64,
    /// Hot-path counters (relaxed atomics), read when `/metrics` is scraped.
    pub(crate) stats: Stats,
    /// The server's own metrics registry and the handles tasks record into.
    pub(crate) metrics: Metrics,
    /// Set by the admin API's drain: no new players or joins, rooms play on.
    draining: AtomicBool,
    /// Dependencies that reported themselves unhealthy.
    pub(crate) readiness: Arc<Readiness>,
    /// Session tokens, the login webhook, whether logins are required.
    pub(crate) auth: Auth,
    /// The database; `None` for a server built without one (tests of the realtime path).
    pub(crate) storage: Option<Arc<Storage>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("games", &self.games)
            .finish()
    }
}

impl Shared {
    pub(crate) fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether the admin API asked the server to drain.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Starts draining; returns false if it already was.
    pub(crate) fn start_draining(&self) -> bool {
        !self.draining.swap(true, Ordering::AcqRel)
    }

    /// Why the server is not ready, as `/readyz` lists it; empty when ready.
    pub(crate) fn readiness_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.shutdown.is_cancelled() {
            problems.push("shutting down".to_owned());
        }
        if self.is_draining() {
            problems.push("draining".to_owned());
        }
        for (name, reason) in self.readiness.problems() {
            problems.push(format!("{name} unhealthy: {reason}"));
        }
        problems
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The database could not be opened or migrated.
    #[error("cannot open the database {url} (database_url): {source}")]
    Database {
        /// The URL, password hidden.
        url: String,
        /// Why.
        #[source]
        source: StoreError,
    },
}

/// Where a server's database comes from.
enum StoreChoice {
    /// Open `database_url` when binding (what `rally serve` does).
    Open,
    /// This store, already open.
    Given(Store),
    /// None: logins and player data are unavailable.
    Without,
}

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({what}): {source}")]
pub struct BindError {
    /// Which listener.
    pub what: &'static str,
    /// The address asked for.
    pub addr: SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

type WrapChecks = Box<dyn FnOnce(Arc<dyn CommandChecks>) -> Arc<dyn CommandChecks> + Send>;

/// Configures a server before it binds its listeners.
pub struct ServerBuilder {
    config: Config,
    games: Games,
    wrap_checks: Option<WrapChecks>,
    store: StoreChoice,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("games", &self.games)
            .finish()
    }
}

impl ServerBuilder {
    /// Replaces or wraps the command checks: `wrap` gets the default checks and returns
    /// the ones to use.
    pub fn checks(
        mut self,
        wrap: impl FnOnce(Arc<dyn CommandChecks>) -> Arc<dyn CommandChecks> + Send + 'static,
    ) -> Self {
        self.wrap_checks = Some(Box::new(wrap));
        self
    }

    /// Uses `store` (open and migrated, e.g. by [`storage::open_store`]) instead of
    /// opening `database_url`. The server closes it at the end of its shutdown.
    pub fn store(mut self, store: Store) -> Self {
        self.store = StoreChoice::Given(store);
        self
    }

    /// Runs without a database: logins and player-data requests get `UNAVAILABLE`, and
    /// nothing is recorded. For tests and tools that exercise only the realtime path
    /// (with `auth_required = false`).
    pub fn without_store(mut self) -> Self {
        self.store = StoreChoice::Without;
        self
    }

    /// Whether [`bind`](Self::bind) will open `database_url` (neither
    /// [`store`](Self::store) nor [`without_store`](Self::without_store) was chosen).
    pub fn opens_database(&self) -> bool {
        matches!(self.store, StoreChoice::Open)
    }

    /// The configuration the server will run with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Binds the TCP, WebSocket and admin listeners at the configured addresses and opens
    /// (and migrates) the database.
    pub async fn bind(self) -> Result<Server, StartError> {
        let bind = |what: &'static str, addr: SocketAddr| async move {
            listen(addr).map_err(|source| BindError { what, addr, source })
        };
        let tcp = bind("tcp", self.config.tcp).await?;
        let ws = bind("http", self.config.http).await?;
        let admin = bind("admin", self.config.admin).await?;
        let store = match self.store {
            StoreChoice::Open => {
                Some(storage::open_store(&self.config).await.map_err(|source| {
                    StartError::Database {
                        url: self.config.database_url.to_string(),
                        source,
                    }
                })?)
            }
            StoreChoice::Given(store) => Some(store),
            StoreChoice::Without => None,
        };
        let directory = Arc::new(Directory::default());
        let default_checks: Arc<dyn CommandChecks> = Arc::new(DefaultChecks::new(
            self.games.clone(),
            directory.clone(),
            self.config.auth_required,
        ));
        let checks = match self.wrap_checks {
            Some(wrap) => wrap(default_checks),
            None => default_checks,
        };
        let shutdown = CancellationToken::new();
        let metrics = Metrics::new(&self.games.kinds());
        let storage = store.map(|s| Arc::new(Storage::new(s, &metrics, &self.config)));
        let shared = Arc::new(Shared {
            auth: Auth::new(&self.config),
            storage,
            limit: Arc::new(Semaphore::new(self.config.concurrency_limit as usize)),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            addresses: AddressLimits::new(&self.config),
            config: self.config,
            games: self.games,
            checks,
            matchmaker: Matchmaker::default(),
            directory,
            tracker: TaskTracker::new(),
            sessions: LiveSessions::default(),
            resume: ResumeTokens::default(),
            shutdown,
            next_session: AtomicU64::new(0),
            stats: Stats::default(),
            metrics,
            draining: AtomicBool::new(false),
            readiness: Arc::default(),
        });
        Ok(Server {
            shared,
            tcp,
            ws,
            admin,
        })
    }
}

/// Pending connections the kernel queues for `accept` (capped by `net.core.somaxconn`).
/// The default of 128 overflows when a burst of connections arrives at once (a crowd
/// reconnecting after a restart, or a slowloris opening a thousand sockets): the
/// kernel then drops the handshakes past it and honest players wait for a
/// retransmission, a second or more.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener with [`LISTEN_BACKLOG`] and `SO_REUSEADDR` (a restarted server can
/// bind while old connections linger in TIME_WAIT).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How a shutdown went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every connection and room finished within the grace period.
    pub drained: bool,
    /// Tasks still running when the grace period ended (closed by force).
    pub forced: usize,
    /// From the shutdown signal to the end.
    pub duration: Duration,
    /// Database writes (session stats, match records) still pending when the flush gave
    /// up; 0: everything was written.
    pub unflushed_writes: usize,
}

/// A live view of a running server, for tests and embedding programs.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl ServerHandle {
    /// Handshaken sessions now.
    pub fn sessions(&self) -> usize {
        self.shared.directory.len()
    }

    /// Open rooms now.
    pub fn rooms(&self) -> usize {
        self.shared.matchmaker.room_count()
    }

    /// Tracked tasks now (sessions, rooms, accept loops, refusals).
    pub fn tasks(&self) -> usize {
        self.shared.tracker.len()
    }

    /// Errors with `code` sent (or, for a client too slow to take it, meant) to clients since start.
    pub fn errors(&self, code: rally_protocol::ErrorCode) -> u64 {
        self.shared.stats.errors(code)
    }

    /// Ticks skipped because a room fell behind, since start.
    pub fn missed_ticks(&self) -> u64 {
        self.shared.stats.missed_ticks.load(Ordering::Relaxed)
    }

    /// Whether the server is draining (admin API `POST /admin/drain`).
    pub fn draining(&self) -> bool {
        self.shared.is_draining()
    }

    /// The timer of one database operation, feeding
    /// `rally_db_call_duration_seconds{operation}`. The storage layer takes one per
    /// operation when it starts (this registers the series), keeps it, and times each
    /// call with [`DbCallMetric::time`] or [`DbCallMetric::record`].
    pub fn db_call_metric(&self, operation: &str) -> DbCallMetric {
        self.shared.metrics.db_call(operation)
    }

    /// The readiness handle of a dependency such as `"database"`: while it reports
    /// itself unhealthy, `/readyz` answers 503 and names it.
    pub fn dependency(&self, name: &str) -> Dependency {
        Dependency::new(name, self.shared.readiness.clone())
    }

    /// Database writes nobody waits for (session stats, match records) queued or running.
    pub fn pending_writes(&self) -> usize {
        self.shared
            .storage
            .as_ref()
            .map_or(0, |s| s.pending_writes())
    }
}

/// A server with its listeners bound, ready to run.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    tcp: TcpListener,
    ws: TcpListener,
    admin: TcpListener,
}

fn local(l: &TcpListener) -> SocketAddr {
    // A bound listener always has a local address; the fallback only satisfies the type.
    l.local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

impl Server {
    /// Starts configuring a server with these games.
    pub fn builder(config: Config, games: Games) -> ServerBuilder {
        ServerBuilder {
            config,
            games,
            wrap_checks: None,
            store: StoreChoice::Open,
        }
    }

    /// Where raw TCP clients connect.
    pub fn tcp_addr(&self) -> SocketAddr {
        local(&self.tcp)
    }

    /// Where WebSocket clients connect (path `/ws`).
    pub fn ws_addr(&self) -> SocketAddr {
        local(&self.ws)
    }

    /// Where the admin endpoints are.
    pub fn admin_addr(&self) -> SocketAddr {
        local(&self.admin)
    }

    /// A live view of the server.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `shutdown` completes, then drains (see the module docs).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> ShutdownReport {
        let shared = self.shared;
        let (tcp, ws) = (local(&self.tcp), local(&self.ws));
        shared.tracker.spawn(listener::accept_loop(
            shared.clone(),
            self.tcp,
            Transport::Tcp,
        ));
        shared.tracker.spawn(listener::accept_loop(
            shared.clone(),
            self.ws,
            Transport::WebSocket,
        ));
        let admin_addr = local(&self.admin);
        // The admin listener and the heartbeat outlive the drain (metrics and readiness
        // stay visible while it runs), so they are stopped last, apart from the tracker.
        let admin_stop = CancellationToken::new();
        let admin = tokio::spawn(admin::serve(self.admin, shared.clone(), admin_stop.clone()));
        let heartbeat = tokio::spawn(heartbeat::run(shared.clone(), admin_stop.clone()));
        // The probe stops before the store closes, after the drain.
        let probe_stop = CancellationToken::new();
        let probe = shared.storage.clone().map(|s| {
            tokio::spawn(s.probe(
                Dependency::new("database", shared.readiness.clone()),
                probe_stop.clone(),
            ))
        });
        tracing::info!(
            %tcp, ws = %format_args!("ws://{ws}/ws"), admin = %admin_addr,
            games = ?shared.games.kinds(), tick_hz = shared.config.tick_hz,
            concurrency_limit = shared.config.concurrency_limit,
            database = %shared.config.database_url,
            auth_required = shared.config.auth_required,
            environment = ?shared.config.environment,
            "rally is serving"
        );

        shutdown.await;
        let started = Instant::now();
        let grace = shared.config.shutdown_grace();
        tracing::info!(
            sessions = shared.directory.len(),
            rooms = shared.matchmaker.room_count(),
            grace_ms = grace.as_millis() as u64,
            "shutting down: telling players, ending rooms, draining connections"
        );
        shared.matchmaker.close();
        shared.shutdown.cancel();
        shared.sessions.drain_all();
        shared.tracker.close();
        let drained = tokio::time::timeout(grace, shared.tracker.wait())
            .await
            .is_ok();
        let mut forced = 0;
        if !drained {
            forced = shared.tracker.len();
            tracing::warn!(tasks = forced, "grace period over: closing what is left");
            shared.sessions.end_all();
            if tokio::time::timeout(FORCE_LIMIT, shared.tracker.wait())
                .await
                .is_err()
            {
                tracing::error!(
                    tasks = shared.tracker.len(),
                    "tasks still running after force; exiting anyway"
                );
            }
        }
        probe_stop.cancel();
        if let Some(p) = probe {
            let _ = p.await;
        }
        let mut unflushed_writes = 0;
        if let Some(storage) = &shared.storage {
            // Every session and room has ended (or was forced to) and queued its writes.
            let pending = storage.pending_writes();
            let bound = shared.config.timeout() * 3 + grace;
            unflushed_writes = storage.flush(bound).await;
            if unflushed_writes > 0 {
                tracing::error!(
                    pending,
                    unflushed = unflushed_writes,
                    "database writes still pending after the flush bound; closing anyway"
                );
            } else {
                tracing::info!(writes = pending, "database writes flushed");
            }
            storage.close().await;
        }
        admin_stop.cancel();
        // An admin client holding its connection open must not hold the exit.
        if tokio::time::timeout(FORCE_LIMIT, admin).await.is_err() {
            tracing::warn!("admin listener did not stop in time");
        }
        let _ = heartbeat.await;
        let report = ShutdownReport {
            drained,
            forced,
            duration: started.elapsed(),
            unflushed_writes,
        };
        tracing::info!(
            drained,
            forced,
            duration_ms = report.duration.as_millis() as u64,
            "shutdown complete"
        );
        report
    }
}
