//! Metrics (infra floor): the figures `/metrics` shows, and the cheap counters the hot
//! paths feed.
//!
//! Figures come in three kinds, by how often they change:
//! - **Per message** (messages and bytes in and out) and **per error**: relaxed atomic
//!   adds into [`Stats`], copied into the Prometheus registry when `/metrics` is scraped.
//!   Traffic is added once per read or write system call, not per message, into one of
//!   several cache-line-sized shards picked by thread, so the workers never contend on
//!   one counter.
//! - **Per task or tick** (a session or room starting and ending, a command, a room
//!   tick): `metrics` handles registered once when the server starts and held in
//!   [`Metrics`]; recording is an atomic operation, never a registry lookup.
//! - **Read at scrape time**: what the server already knows (sessions, rooms by kind,
//!   players, missed ticks, the tokio runtime's own figures).
//!
//! The recorder is the server's own (built with `PrometheusBuilder::build_recorder`, not
//! installed globally), so several servers in one process keep separate figures.
//! `docs/admin.md` lists every metric with its type and labels.
//!
//! # Layout
//! - `stats`: the hot-path counters ([`Stats`]).
//! - `tasks`: task guards, the database call timer, the runtime busy sampler.
//! - this file: the registry, and the render of a scrape from the counters and a
//!   [`Gauges`] snapshot the caller takes of the server.

mod stats;
mod tasks;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use rally_protocol::ErrorCode;

use crate::transport::Transport;
use stats::{transport_index, Flow, TRANSPORTS};

pub(crate) use stats::{ErrorKind, Limit, Stats};
pub use tasks::DbCallMetric;
pub(crate) use tasks::{BusySampler, TaskGuard, TaskKind, TaskMeter};

/// A session's task and connection, counted in one guard of 24 bytes (a [`TaskGuard`]
/// and a gauge guard took 64, and this is held in every connection's state): the
/// connection stops counting at [`SessionMeter::player_gone`] (or the drop), the task
/// at the drop, which also records its duration.
#[derive(Debug)]
pub(crate) struct SessionMeter<'a> {
    metrics: &'a Metrics,
    /// When the session started: microseconds since [`meter_epoch`] (an `Instant` is 16
    /// bytes, and this guard is in every connection's state).
    started_us: u64,
    transport: Transport,
    /// Whether the connection is still counted.
    open: bool,
}

impl SessionMeter<'_> {
    /// The player is gone (its socket may still linger): the connection stops counting.
    pub(crate) fn player_gone(&mut self) {
        if std::mem::take(&mut self.open) {
            self.metrics.connections[transport_index(self.transport)].decrement(1.0);
        }
    }

    /// How long the session has run.
    fn elapsed(&self) -> Duration {
        Duration::from_micros(micros_since_epoch().saturating_sub(self.started_us))
    }

    /// How long the session has run, in whole milliseconds.
    pub(crate) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// What session meters count from: the first use in this process.
fn meter_epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn micros_since_epoch() -> u64 {
    u64::try_from(meter_epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

impl Drop for SessionMeter<'_> {
    fn drop(&mut self) {
        self.player_gone();
        let kind = TaskKind::Session as usize;
        self.metrics.tasks_active[kind].decrement(1.0);
        self.metrics.task_duration[kind].record(self.elapsed());
    }
}

/// Buckets for durations that may be short or very long (tasks: a command to a session).
const TASK_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
];
/// Buckets for a room tick: well under a millisecond normally, 50 ms is a whole period at 20 Hz.
const TICK_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];
/// Buckets for commands and database calls: bounded by `timeout_ms` (at most 60 s).
const CALL_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

/// Buckets for a wait in the matchmaking queue: a pass runs every 250 ms, and a kind's
/// timeout is at most minutes.
const QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

/// Metric names, written once.
mod name {
    pub(super) const TASKS_ACTIVE: &str = "async_tasks_active";
    pub(super) const TASK_DURATION: &str = "async_task_duration_seconds";
    pub(super) const ERRORS: &str = "async_errors_total";
    pub(super) const LAG: &str = "event_loop_lag_ms";
    pub(super) const CONNECTIONS: &str = "rally_connections";
    pub(super) const SESSIONS: &str = "rally_sessions";
    pub(super) const ROOMS: &str = "rally_rooms";
    pub(super) const PLAYERS: &str = "rally_players";
    pub(super) const TICK: &str = "rally_tick_duration_seconds";
    pub(super) const MISSED_TICKS: &str = "rally_missed_ticks_total";
    pub(super) const MESSAGES_IN: &str = "rally_messages_in_total";
    pub(super) const MESSAGES_OUT: &str = "rally_messages_out_total";
    pub(super) const BYTES_IN: &str = "rally_bytes_in_total";
    pub(super) const BYTES_OUT: &str = "rally_bytes_out_total";
    pub(super) const REJECTIONS: &str = "rally_rejections_total";
    pub(super) const RATE_LIMITED: &str = "rally_rate_limited_total";
    pub(super) const COMMAND: &str = "rally_command_duration_seconds";
    pub(super) const DB_CALL: &str = "rally_db_call_duration_seconds";
    pub(super) const DRAINING: &str = "rally_draining";
    pub(super) const READY: &str = "rally_ready";
    pub(super) const WORKERS: &str = "rally_tokio_workers";
    pub(super) const BUSY_RATIO: &str = "rally_tokio_busy_ratio";
    pub(super) const GLOBAL_QUEUE: &str = "rally_tokio_global_queue_depth";
    pub(super) const ALIVE_TASKS: &str = "rally_tokio_alive_tasks";
    pub(super) const QUEUE_WAITING: &str = "rally_queue_players";
    pub(super) const QUEUE_WAIT: &str = "rally_queue_wait_seconds";
    pub(super) const RECORDING_BYTES: &str = "rally_recording_bytes_total";
    pub(super) const RECORDINGS_TRUNCATED: &str = "rally_recordings_truncated_total";
    pub(super) const RECORDING_WRITE: &str = "rally_recording_write_seconds";
    pub(super) const CLUSTER_NODES: &str = "rally_cluster_nodes_alive";
    pub(super) const CLUSTER_REDIRECTS: &str = "rally_cluster_redirects_total";
    pub(super) const CLUSTER_RESERVATION: &str = "rally_cluster_reservation_duration_seconds";
    pub(super) const CLUSTER_RESERVATION_FAILURES: &str =
        "rally_cluster_reservation_failures_total";
    pub(super) const CLUSTER_NATS_RECONNECTS: &str = "rally_cluster_nats_reconnects_total";
}

/// A room kind's matchmaking queue figures: players waiting, and how long tickets waited
/// until they were matched or timed out.
#[derive(Debug, Clone)]
pub(crate) struct QueueMeter {
    waiting: Gauge,
    matched: Histogram,
    timeout: Histogram,
}

impl QueueMeter {
    /// Players waiting now.
    pub(crate) fn waiting(&self, players: usize) {
        self.waiting.set(players as f64);
    }

    /// A ticket was matched after `waited`.
    pub(crate) fn matched(&self, waited: Duration) {
        self.matched.record(waited);
    }

    /// A ticket timed out after `waited`.
    pub(crate) fn timed_out(&self, waited: Duration) {
        self.timeout.record(waited);
    }
}

/// The match recordings' figures, handed to the recordings writer when the server starts.
#[derive(Debug, Clone)]
pub(crate) struct RecordingMetrics {
    /// Bytes written to recording files.
    pub(crate) bytes: Counter,
    /// Recordings cut short: the room's buffer was full (the disk did not keep up).
    pub(crate) cut_buffer_full: Counter,
    /// Recordings cut short: a write failed.
    pub(crate) cut_write_error: Counter,
    /// Time one write (and its flush to the OS) took.
    pub(crate) write: Histogram,
    /// The writer tasks.
    pub(crate) task: TaskMeter,
}

/// The cluster's figures (cluster mode only), registered once and held by the cluster.
#[derive(Clone)]
pub(crate) struct ClusterMetrics {
    /// Live nodes in this node's view, itself included.
    pub(crate) nodes_alive: Gauge,
    /// Players sent to another node with a seat ticket.
    pub(crate) redirects: Counter,
    /// Time to reserve a seat on another node, retries included.
    pub(crate) reservation_seconds: Histogram,
    /// Reservations on another node that failed after their retries.
    pub(crate) reservation_failures: Counter,
    /// Times the NATS connection came back after a loss.
    pub(crate) nats_reconnects: Counter,
}

impl std::fmt::Debug for ClusterMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterMetrics").finish_non_exhaustive()
    }
}

/// Commands with their own `command` label.
const COMMANDS: [&str; 22] = [
    "join",
    "create",
    "join_or_create",
    "join_by_id",
    "join_by_code",
    "list_rooms",
    "queue",
    "leave_queue",
    "leave",
    "chat",
    "resume",
    "restore",
    "login",
    "get_data",
    "put_data",
    "delete_data",
    "get_profile",
    "set_name",
    "spectate",
    "spectate_recording",
    "stop_spectating",
    "claim_seat",
];

/// What `/metrics` reads from the rest of the server at scrape time, taken by the caller
/// (the admin listener) so the registry needs no view of rooms, sessions or readiness.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gauges {
    /// Open rooms by kind.
    pub(crate) rooms_by_kind: HashMap<String, usize>,
    /// Players seated in rooms (away ones included).
    pub(crate) players: usize,
    /// Handshaken sessions.
    pub(crate) sessions: usize,
    /// Draining (admin API) or shutting down.
    pub(crate) draining: bool,
    /// Whether `/readyz` would answer ready.
    pub(crate) ready: bool,
}

/// The server's registry, the handles the server records into, and the hot-path
/// counters ([`Stats`]).
pub(crate) struct Metrics {
    /// The hot-path counters.
    pub(crate) stats: Stats,
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    tasks_active: [Gauge; TaskKind::ALL.len()],
    task_duration: [Histogram; TaskKind::ALL.len()],
    connections: [Gauge; 2],
    commands: [Histogram; COMMANDS.len()],
    tick_duration: HashMap<String, Histogram>,
    rooms: HashMap<String, Gauge>,
    lag_ms: Gauge,
    busy_ratio: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: the recorder's `Debug` would dump every series it holds.
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

fn key(name: &'static str, labels: &[(&'static str, String)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, v.clone()))
        .collect();
    Key::from_parts(name, labels)
}

impl Metrics {
    /// A registry with every metric described, for a server offering room `kinds`.
    pub(crate) fn new(kinds: &[String]) -> Self {
        let builder = [
            (name::TASK_DURATION, TASK_BUCKETS),
            (name::TICK, TICK_BUCKETS),
            (name::COMMAND, CALL_BUCKETS),
            (name::DB_CALL, CALL_BUCKETS),
            (name::QUEUE_WAIT, QUEUE_WAIT_BUCKETS),
            (name::RECORDING_WRITE, CALL_BUCKETS),
            (name::CLUSTER_RESERVATION, CALL_BUCKETS),
        ]
        .into_iter()
        .fold(PrometheusBuilder::new(), |b, (metric, buckets)| {
            // Only an empty bucket list is refused, and these are constants with values.
            b.set_buckets_for_metric(Matcher::Full(metric.to_owned()), buckets)
                .expect("bucket lists are not empty")
        });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let mut m = Metrics {
            stats: Stats::default(),
            tasks_active: std::array::from_fn(|_| Gauge::noop()),
            task_duration: std::array::from_fn(|_| Histogram::noop()),
            connections: std::array::from_fn(|_| Gauge::noop()),
            commands: std::array::from_fn(|_| Histogram::noop()),
            tick_duration: HashMap::new(),
            rooms: HashMap::new(),
            lag_ms: Gauge::noop(),
            busy_ratio: Gauge::noop(),
            recorder,
            handle,
        };
        m.describe();
        for (i, kind) in TaskKind::ALL.iter().enumerate() {
            let labels = [("kind", kind.name().to_owned())];
            m.tasks_active[i] = m.gauge(name::TASKS_ACTIVE, &labels);
            m.task_duration[i] = m.histogram(name::TASK_DURATION, &labels);
        }
        for t in TRANSPORTS {
            m.connections[transport_index(t)] =
                m.gauge(name::CONNECTIONS, &[("transport", t.name().to_owned())]);
        }
        for (i, c) in COMMANDS.iter().enumerate() {
            m.commands[i] = m.histogram(name::COMMAND, &[("command", (*c).to_owned())]);
        }
        for kind in kinds {
            let labels = [("kind", kind.clone())];
            let tick = m.histogram(name::TICK, &labels);
            let rooms = m.gauge(name::ROOMS, &labels);
            m.tick_duration.insert(kind.clone(), tick);
            m.rooms.insert(kind.clone(), rooms);
        }
        m.lag_ms = m.gauge(name::LAG, &[]);
        m.busy_ratio = m.gauge(name::BUSY_RATIO, &[]);
        // Families that otherwise appear only with their first event: shown from the
        // start, at zero, so dashboards and alerts find them.
        m.counter(
            name::ERRORS,
            &[("kind", "accept".into()), ("code", "IO".into())],
        )
        .absolute(0);
        for limit in Limit::ALL {
            m.counter(name::RATE_LIMITED, &[("limit", limit.label().to_owned())])
                .absolute(0);
        }
        for code in ErrorCode::ALL {
            m.counter(name::REJECTIONS, &[("code", code.name().to_owned())])
                .absolute(0);
        }
        m
    }

    fn describe(&self) {
        let r = &self.recorder;
        let counters = [
            (name::ERRORS, "Errors, by where they happened (kind) and code: errors sent to clients, and failed accepts (kind accept, code IO)"),
            (name::MISSED_TICKS, "Room ticks skipped because a room fell behind (skipped, never burst)"),
            (name::MESSAGES_IN, "Complete protocol messages received from clients, by transport"),
            (name::MESSAGES_OUT, "Protocol messages (and WebSocket pongs) written to clients, by transport"),
            (name::BYTES_IN, "Bytes read from client connections (framing included), by transport"),
            (name::BYTES_OUT, "Bytes written to client connections (framing included), by transport"),
            (name::REJECTIONS, "Error messages sent to clients, by error code (every code a client receives counts)"),
            (name::RECORDING_BYTES, "Bytes written to match recording files"),
            (name::RECORDINGS_TRUNCATED, "Match recordings cut short, by reason: buffer_full (the disk did not keep up), write_error (a write failed); the game went on"),
            (name::CLUSTER_REDIRECTS, "Cluster mode: players sent to another node with a seat ticket"),
            (name::CLUSTER_RESERVATION_FAILURES, "Cluster mode: seat reservations on another node that failed after their retries (the player joined here instead)"),
            (name::CLUSTER_NATS_RECONNECTS, "Cluster mode: times the NATS connection came back after a loss"),
            (name::RATE_LIMITED, "Refused by a rate limit: inputs and requests/pings over their per-connection rate, connections closed for staying over, connections refused by their address's limits"),
        ];
        for (n, help) in counters {
            r.describe_counter(n.into(), None, help.into());
        }
        let gauges = [
            (
                name::TASKS_ACTIVE,
                "Tasks running now, by kind (sessions, rooms, commands, background jobs)",
            ),
            (
                name::LAG,
                "How late the heartbeat task (every 100 ms) woke up last, in milliseconds",
            ),
            (
                name::CONNECTIONS,
                "Open player connections, by transport (before and after the handshake)",
            ),
            (name::SESSIONS, "Handshaken player sessions"),
            (name::ROOMS, "Open rooms, by room kind"),
            (
                name::PLAYERS,
                "Players seated in rooms (including seats held for a dropped player to resume)",
            ),
            (
                name::DRAINING,
                "1 while the server is draining (admin API) or shutting down",
            ),
            (name::READY, "1 when /readyz answers ready"),
            (name::WORKERS, "tokio worker threads"),
            (
                name::BUSY_RATIO,
                "Share of time tokio's workers were busy over the last second (0 to 1)",
            ),
            (name::GLOBAL_QUEUE, "Tasks waiting in tokio's global queue"),
            (name::ALIVE_TASKS, "Tasks alive in the tokio runtime"),
            (
                name::QUEUE_WAITING,
                "Players waiting in the matchmaking queue, by room kind",
            ),
            (
                name::CLUSTER_NODES,
                "Cluster mode: live nodes this node sees, itself included",
            ),
        ];
        for (n, help) in gauges {
            r.describe_gauge(n.into(), None, help.into());
        }
        let histograms = [
            (name::TASK_DURATION, "How long tasks ran, by kind"),
            (
                name::TICK,
                "Time one room tick took (inputs, game, states), by room kind",
            ),
            (
                name::COMMAND,
                "Time one request took, checks included, by command",
            ),
            (
                name::DB_CALL,
                "Time one database call took, by operation (fed by the storage layer)",
            ),
            (
                name::QUEUE_WAIT,
                "How long a matchmaking ticket waited, by room kind and outcome (matched, timeout)",
            ),
            (
                name::RECORDING_WRITE,
                "Time one write of a match recording took (buffered records, then the flush to the OS)",
            ),
            (
                name::CLUSTER_RESERVATION,
                "Cluster mode: time to reserve a seat on another node, retries included",
            ),
        ];
        for (n, help) in histograms {
            r.describe_histogram(n.into(), Some(Unit::Seconds), help.into());
        }
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, String)]) -> Counter {
        self.recorder
            .register_counter(&key(name, labels), &metadata())
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, String)]) -> Gauge {
        self.recorder
            .register_gauge(&key(name, labels), &metadata())
    }

    fn histogram(&self, name: &'static str, labels: &[(&'static str, String)]) -> Histogram {
        self.recorder
            .register_histogram(&key(name, labels), &metadata())
    }

    /// The cluster's figures, registered now (at zero).
    pub(crate) fn cluster(&self) -> ClusterMetrics {
        let m = ClusterMetrics {
            nodes_alive: self.gauge(name::CLUSTER_NODES, &[]),
            redirects: self.counter(name::CLUSTER_REDIRECTS, &[]),
            reservation_seconds: self.histogram(name::CLUSTER_RESERVATION, &[]),
            reservation_failures: self.counter(name::CLUSTER_RESERVATION_FAILURES, &[]),
            nats_reconnects: self.counter(name::CLUSTER_NATS_RECONNECTS, &[]),
        };
        m.redirects.absolute(0);
        m.reservation_failures.absolute(0);
        m.nats_reconnects.absolute(0);
        m
    }

    /// Counts a task of `kind` as running until the guard is dropped.
    pub(crate) fn task(&self, kind: TaskKind) -> TaskGuard {
        self.task_meter(kind).start()
    }

    /// The gauge and histogram of a task kind, to start tasks with later.
    pub(crate) fn task_meter(&self, kind: TaskKind) -> TaskMeter {
        let i = kind as usize;
        TaskMeter {
            active: self.tasks_active[i].clone(),
            duration: self.task_duration[i].clone(),
        }
    }

    /// Counts a session task and its open connection (see [`SessionMeter`]).
    pub(crate) fn session(&self, transport: Transport) -> SessionMeter<'_> {
        self.tasks_active[TaskKind::Session as usize].increment(1.0);
        self.connections[transport_index(transport)].increment(1.0);
        SessionMeter {
            metrics: self,
            started_us: micros_since_epoch(),
            transport,
            open: true,
        }
    }

    /// Records how long a command took.
    pub(crate) fn command(&self, command: &str, took: Duration) {
        if let Some(i) = COMMANDS.iter().position(|c| *c == command) {
            self.commands[i].record(took);
        }
    }

    /// The tick duration histogram of a room kind (held by each room).
    pub(crate) fn tick_histogram(&self, kind: &str) -> Histogram {
        self.tick_duration
            .get(kind)
            .cloned()
            .unwrap_or_else(|| self.histogram(name::TICK, &[("kind", kind.to_owned())]))
    }

    /// The matchmaking queue's figures for a room `kind`, registered at once so they show
    /// (at zero) before the first player queues.
    pub(crate) fn queue_meter(&self, kind: &str) -> QueueMeter {
        let waiting = self.gauge(name::QUEUE_WAITING, &[("kind", kind.to_owned())]);
        waiting.set(0.0);
        let wait = |outcome: &str| {
            self.histogram(
                name::QUEUE_WAIT,
                &[("kind", kind.to_owned()), ("outcome", outcome.to_owned())],
            )
        };
        QueueMeter {
            waiting,
            matched: wait("matched"),
            timeout: wait("timeout"),
        }
    }

    /// The recordings writer's figures (registered now, so they show at zero).
    pub(crate) fn recording(&self) -> RecordingMetrics {
        let bytes = self.counter(name::RECORDING_BYTES, &[]);
        let cut = |reason: &str| {
            let c = self.counter(name::RECORDINGS_TRUNCATED, &[("reason", reason.to_owned())]);
            c.increment(0);
            c
        };
        bytes.increment(0);
        RecordingMetrics {
            bytes,
            cut_buffer_full: cut("buffer_full"),
            cut_write_error: cut("write_error"),
            write: self.histogram(name::RECORDING_WRITE, &[]),
            task: self.task_meter(TaskKind::Recording),
        }
    }

    /// The timer of one database operation.
    pub(crate) fn db_call(&self, operation: &str) -> DbCallMetric {
        DbCallMetric {
            histogram: self.histogram(name::DB_CALL, &[("operation", operation.to_owned())]),
        }
    }

    /// The heartbeat's latest measurement.
    pub(crate) fn set_lag(&self, lag: Duration) {
        self.lag_ms.set(lag.as_secs_f64() * 1000.0);
    }

    /// The runtime sampler's latest busy ratio.
    pub(crate) fn set_busy_ratio(&self, ratio: f64) {
        self.busy_ratio.set(ratio);
    }

    /// Moves recorded histogram samples into their buckets, so that samples do not pile
    /// up between scrapes (or when nobody scrapes).
    pub(crate) fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Brings the scrape-time figures up to date and renders everything.
    pub(crate) fn render(&self, gauges: &Gauges) -> String {
        self.copy_counters();
        self.set_gauges(gauges);
        self.handle.render()
    }

    /// Copies the hot-path counters into the registry.
    fn copy_counters(&self) {
        let stats = &self.stats;
        let set_counter = |n, labels: &[(&'static str, String)], v: u64| {
            self.counter(n, labels).absolute(v);
        };
        for t in TRANSPORTS {
            let labels = [("transport", t.name().to_owned())];
            set_counter(
                name::MESSAGES_IN,
                &labels,
                stats.traffic(t, Flow::MessagesIn),
            );
            set_counter(name::BYTES_IN, &labels, stats.traffic(t, Flow::BytesIn));
            set_counter(
                name::MESSAGES_OUT,
                &labels,
                stats.traffic(t, Flow::MessagesOut),
            );
            set_counter(name::BYTES_OUT, &labels, stats.traffic(t, Flow::BytesOut));
        }
        for code in ErrorCode::ALL {
            let at = usize::from(code.as_u16());
            let mut total = 0;
            for kind in ErrorKind::ALL {
                let n = stats.errors[kind as usize]
                    .get(at)
                    .map_or(0, |c| c.load(Ordering::Relaxed));
                if n > 0 {
                    let labels = [
                        ("kind", kind.name().to_owned()),
                        ("code", code.name().to_owned()),
                    ];
                    set_counter(name::ERRORS, &labels, n);
                }
                total += n;
            }
            set_counter(name::REJECTIONS, &[("code", code.name().to_owned())], total);
        }
        set_counter(
            name::ERRORS,
            &[("kind", "accept".into()), ("code", "IO".into())],
            stats.accept_errors.load(Ordering::Relaxed),
        );
        for limit in Limit::ALL {
            set_counter(
                name::RATE_LIMITED,
                &[("limit", limit.label().to_owned())],
                stats.rate_limited(limit),
            );
        }
        set_counter(
            name::MISSED_TICKS,
            &[],
            stats.missed_ticks.load(Ordering::Relaxed),
        );
    }

    /// Sets the gauges read at scrape time: the caller's snapshot and the runtime's own.
    fn set_gauges(&self, gauges: &Gauges) {
        let set_gauge = |n, labels: &[(&'static str, String)], v: f64| {
            self.gauge(n, labels).set(v);
        };
        for (kind, gauge) in &self.rooms {
            gauge.set(gauges.rooms_by_kind.get(kind).copied().unwrap_or(0) as f64);
        }
        set_gauge(name::PLAYERS, &[], gauges.players as f64);
        set_gauge(name::SESSIONS, &[], gauges.sessions as f64);
        set_gauge(name::DRAINING, &[], f64::from(u8::from(gauges.draining)));
        set_gauge(name::READY, &[], f64::from(u8::from(gauges.ready)));

        let rt = tokio::runtime::Handle::current().metrics();
        set_gauge(name::WORKERS, &[], rt.num_workers() as f64);
        set_gauge(name::ALIVE_TASKS, &[], rt.num_alive_tasks() as f64);
        set_gauge(name::GLOBAL_QUEUE, &[], rt.global_queue_depth() as f64);
    }
}
