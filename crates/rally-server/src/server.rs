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

use crate::command::{CommandChecks, DefaultChecks};
use crate::config::Config;
use crate::directory::Directory;
use crate::games::Games;
use crate::matchmaker::Matchmaker;
use crate::metrics::{DbCallMetric, Metrics, Stats};
use crate::readiness::{Dependency, Readiness};
use crate::resume::ResumeTokens;
use crate::session::LiveSessions;
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
    next_session: AtomicU64,
    /// Hot-path counters (relaxed atomics), read when `/metrics` is scraped.
    pub(crate) stats: Stats,
    /// The server's own metrics registry and the handles tasks record into.
    pub(crate) metrics: Metrics,
    /// Set by the admin API's drain: no new players or joins, rooms play on.
    draining: AtomicBool,
    /// Dependencies that reported themselves unhealthy.
    pub(crate) readiness: Arc<Readiness>,
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

    /// Binds the TCP, WebSocket and admin listeners at the configured addresses.
    pub async fn bind(self) -> Result<Server, BindError> {
        let bind = |what: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| BindError { what, addr, source })
        };
        let tcp = bind("tcp", self.config.tcp).await?;
        let ws = bind("http", self.config.http).await?;
        let admin = bind("admin", self.config.admin).await?;
        let directory = Arc::new(Directory::default());
        let default_checks: Arc<dyn CommandChecks> =
            Arc::new(DefaultChecks::new(self.games.clone(), directory.clone()));
        let checks = match self.wrap_checks {
            Some(wrap) => wrap(default_checks),
            None => default_checks,
        };
        let shutdown = CancellationToken::new();
        let metrics = Metrics::new(&self.games.kinds());
        let shared = Arc::new(Shared {
            limit: Arc::new(Semaphore::new(self.config.concurrency_limit as usize)),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
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

/// How a shutdown went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every connection and room finished within the grace period.
    pub drained: bool,
    /// Tasks still running when the grace period ended (closed by force).
    pub forced: usize,
    /// From the shutdown signal to the end.
    pub duration: Duration,
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
        tracing::info!(
            %tcp, ws = %format_args!("ws://{ws}/ws"), admin = %admin_addr,
            games = ?shared.games.kinds(), tick_hz = shared.config.tick_hz,
            concurrency_limit = shared.config.concurrency_limit,
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
