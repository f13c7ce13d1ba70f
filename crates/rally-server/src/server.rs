//! The server (top floor): how it is built, how it starts, and how it shuts down.
//!
//! Building makes the handles each kind of task uses (rooms, commands, sessions, accept
//! loops, the admin listener) and gives each only its own; nothing holds them all but
//! the [`Server`] itself while it runs.
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
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use rally_store::{Store, StoreError};

use crate::admin;
use crate::cluster::{Cluster, ClusterError};
use crate::command::{self, CommandChecks, DefaultChecks};
use crate::config::Config;
use crate::connection::Listener;
use crate::directory::Directory;
use crate::games::Games;
use crate::handle::ServerHandle;
use crate::heartbeat;
use crate::listener::{self, AcceptEnv};
use crate::metrics::Metrics;
use crate::outbox::LiveSessions;
use crate::queue::{self, MatchQueue};
use crate::readiness::Dependency;
use crate::recording::Recordings;
use crate::storage::{self, Storage};
use crate::transport::Transport;

/// How long tasks get to stop after the grace period, once force-cancelled.
const FORCE_LIMIT: Duration = Duration::from_secs(2);

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Cluster mode: NATS could not be reached, or JetStream refused the buckets.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
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
        // Not derived: the checks wrapper is a closure.
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
        self.build(
            vec![(tcp, Transport::Tcp), (ws, Transport::WebSocket)],
            Some(admin),
        )
        .await
    }

    /// Serves players on listeners the caller made instead of binding the configured
    /// addresses, each speaking the transport it is paired with, and opens the database
    /// as [`bind`](Self::bind) does. There is no admin listener (`/metrics`, `/readyz`
    /// and the admin API are off); [`Server::handle`] still gives a live view.
    ///
    /// For embedding on sockets of one's own, and for the network simulation tests,
    /// which run the very same sessions over simulated TCP.
    pub async fn on_listeners<L: Listener>(
        self,
        listeners: impl IntoIterator<Item = (L, Transport)>,
    ) -> Result<Server<L>, StartError> {
        self.build(listeners.into_iter().collect(), None).await
    }

    async fn build<L: Listener>(
        self,
        listeners: Vec<(L, Transport)>,
        admin: Option<TcpListener>,
    ) -> Result<Server<L>, StartError> {
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
        let sessions = Arc::new(LiveSessions::default());
        let directory = Arc::new(Directory::new(sessions.clone()));
        let default_checks: Arc<dyn CommandChecks> = Arc::new(DefaultChecks::new(
            self.games.clone(),
            directory.clone(),
            self.config.auth_required,
        ));
        let checks = match self.wrap_checks {
            Some(wrap) => wrap(default_checks),
            None => default_checks,
        };
        let config = Arc::new(self.config);
        let metrics = Arc::new(Metrics::new(&self.games.kinds()));
        let storage = store.map(|s| Arc::new(Storage::new(s, &metrics, &config)));
        let queue = Arc::new(MatchQueue::new(
            &self.games.kinds(),
            queue::LIMITS,
            metrics.clone(),
        ));
        let tracker = TaskTracker::new();
        let recordings = Recordings::new(&config, metrics.recording(), tracker.clone());
        let cluster = if config.clustered() {
            let addr = |t: Transport| {
                listeners
                    .iter()
                    .find(|(_, lt)| *lt == t)
                    .map_or(NO_ADDR, |(l, _)| local(l))
            };
            let (tcp, ws) = (addr(Transport::Tcp), addr(Transport::WebSocket));
            Some(Cluster::connect(&config, tcp, ws, &metrics).await?)
        } else {
            None
        };
        let handle = ServerHandle {
            config: config.clone(),
            games: self.games,
            matchmaker: Arc::default(),
            queue,
            directory,
            tracker,
            shutdown: CancellationToken::new(),
            sessions,
            metrics,
            readiness: Arc::default(),
            storage,
            recordings,
            cluster,
        };
        let accept = handle.accept_env(checks);
        Ok(Server {
            handle,
            accept,
            listeners,
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

/// A server with its listeners bound, ready to run: tokio TCP listeners from
/// [`ServerBuilder::bind`], or any [`Listener`] from [`ServerBuilder::on_listeners`].
pub struct Server<L: Listener = TcpListener> {
    /// The server's handles (a [`ServerHandle`] is a clone).
    handle: ServerHandle,
    /// What the accept loops (and through them sessions and commands) run with.
    accept: Arc<AcceptEnv>,
    /// The game listeners, each with the transport it speaks.
    listeners: Vec<(L, Transport)>,
    /// `None` when the server was given its listeners: no admin endpoints.
    admin: Option<TcpListener>,
}

impl<L: Listener> std::fmt::Debug for Server<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.handle.config)
            .field("games", &self.handle.games)
            .field("tcp", &self.listener_addr(Transport::Tcp))
            .field("ws", &self.listener_addr(Transport::WebSocket))
            .field("admin", &self.admin.as_ref().map(local))
            .finish()
    }
}

fn local<L: Listener>(l: &L) -> SocketAddr {
    // A bound listener always has a local address; the fallback only satisfies the type.
    l.local_addr().unwrap_or(NO_ADDR)
}

/// Stands in for the address of a listener the server does not have.
const NO_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

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
}

impl<L: Listener> Server<L> {
    /// Where the first listener of `transport` is, if the server has one.
    pub fn listener_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(_, t)| *t == transport)
            .map(|(l, _)| local(l))
    }

    /// Where raw TCP clients connect (`0.0.0.0:0` if the server has no TCP listener).
    pub fn tcp_addr(&self) -> SocketAddr {
        self.listener_addr(Transport::Tcp).unwrap_or(NO_ADDR)
    }

    /// Where WebSocket clients connect (path `/ws`; `0.0.0.0:0` if the server has no
    /// WebSocket listener).
    pub fn ws_addr(&self) -> SocketAddr {
        self.listener_addr(Transport::WebSocket).unwrap_or(NO_ADDR)
    }

    /// Where the admin endpoints are (`0.0.0.0:0` if the server has none).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.as_ref().map_or(NO_ADDR, local)
    }

    /// A live view of the server.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Serves until `shutdown` completes, then drains (see the module docs).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> ShutdownReport {
        let shown = |addr: Option<SocketAddr>, f: fn(SocketAddr) -> String| {
            addr.map_or_else(|| "none".to_owned(), f)
        };
        let tcp = shown(self.listener_addr(Transport::Tcp), |a| a.to_string());
        let ws = shown(self.listener_addr(Transport::WebSocket), |a| {
            format!("ws://{a}/ws")
        });
        let admin_addr = shown(self.admin.as_ref().map(local), |a| a.to_string());
        let shared = self.handle;
        for (l, transport) in self.listeners {
            shared
                .tracker
                .spawn(listener::accept_loop(self.accept.clone(), l, transport));
        }
        // The matchmaking queue's passes stop when shutdown begins (no new rooms open).
        shared.tracker.spawn(command::run_queue(
            self.accept.session.commands.clone(),
            shared.tracker.clone(),
            shared.shutdown.clone(),
        ));
        // The admin listener and the heartbeat outlive the drain (metrics and readiness
        // stay visible while it runs), so they are stopped last, apart from the tracker.
        let admin_stop = CancellationToken::new();
        let admin_env = Arc::new(shared.admin_env());
        let admin = self
            .admin
            .map(|l| tokio::spawn(admin::serve(l, admin_env, admin_stop.clone())));
        let heartbeat = tokio::spawn(heartbeat::run(shared.metrics.clone(), admin_stop.clone()));
        // Sessions time out through one sweep, not a timer each; it runs through the drain.
        let sweep = tokio::spawn(
            shared
                .sessions
                .clone()
                .sweep(shared.config.sweep_period(), admin_stop.clone()),
        );
        if let Some(r) = &shared.recordings {
            // In the tracker and stopped by the shutdown token, like any other job.
            shared
                .tracker
                .spawn(r.clone().retention(shared.shutdown.clone()));
        }
        // The cluster's tasks stop when shutdown begins: the node leaves the membership
        // at once, so no other node sends it players while it drains.
        let cluster_stop = CancellationToken::new();
        let cluster_tasks = TaskTracker::new();
        if let Some(cluster) = &shared.cluster {
            let rooms = self.accept.session.commands.rooms.clone();
            cluster.start(rooms, &cluster_tasks, cluster_stop.clone());
        }
        cluster_tasks.close();
        // The probe stops before the store closes, after the drain.
        let probe_stop = CancellationToken::new();
        let probe = shared.storage.clone().map(|s| {
            tokio::spawn(s.probe(
                Dependency::new("database", shared.readiness.clone()),
                probe_stop.clone(),
            ))
        });
        tracing::info!(
            %tcp, %ws, admin = %admin_addr,
            games = ?shared.games.kinds(), tick_hz = shared.config.tick_hz,
            concurrency_limit = shared.config.concurrency_limit,
            database = %shared.config.database_url,
            auth_required = shared.config.auth_required,
            recordings = ?shared.recordings.as_ref().map(|r| r.dir().display().to_string()),
            environment = ?shared.config.environment,
            "rally is serving"
        );

        shutdown.await;
        let started = Instant::now();
        cluster_stop.cancel();
        if tokio::time::timeout(FORCE_LIMIT, cluster_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("cluster tasks did not stop in time");
        }
        let (drained, forced) = shared.drain().await;
        probe_stop.cancel();
        if let Some(p) = probe {
            let _ = p.await;
        }
        let unflushed_writes = shared.flush().await;
        admin_stop.cancel();
        // An admin client holding its connection open must not hold the exit.
        if let Some(admin) = admin {
            if tokio::time::timeout(FORCE_LIMIT, admin).await.is_err() {
                tracing::warn!("admin listener did not stop in time");
            }
        }
        let _ = heartbeat.await;
        let _ = sweep.await;
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

impl ServerHandle {
    /// Tells players, ends rooms, and waits for every task within `shutdown_grace_ms`,
    /// then ends what is left: whether the drain was clean, and how many tasks it forced.
    async fn drain(&self) -> (bool, usize) {
        let grace = self.config.shutdown_grace();
        tracing::info!(
            sessions = self.directory.len(),
            rooms = self.matchmaker.room_count(),
            grace_ms = grace.as_millis() as u64,
            "shutting down: telling players, ending rooms, draining connections"
        );
        self.matchmaker.close();
        self.shutdown.cancel();
        self.sessions.drain_all();
        self.tracker.close();
        let drained = tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok();
        let mut forced = 0;
        if !drained {
            forced = self.tracker.len();
            tracing::warn!(tasks = forced, "grace period over: closing what is left");
            self.sessions.end_all();
            if tokio::time::timeout(FORCE_LIMIT, self.tracker.wait())
                .await
                .is_err()
            {
                tracing::error!(
                    tasks = self.tracker.len(),
                    "tasks still running after force; exiting anyway"
                );
            }
        }
        (drained, forced)
    }

    /// Writes what the ended sessions and rooms queued, then closes the store: the
    /// writes still pending when the flush gave up.
    async fn flush(&self) -> usize {
        let grace = self.config.shutdown_grace();
        let mut unflushed_writes = 0;
        if let Some(storage) = &self.storage {
            // Every session and room has ended (or was forced to) and queued its writes.
            let pending = storage.pending_writes();
            let bound = self.config.timeout() * 3 + grace;
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
        unflushed_writes
    }
}
