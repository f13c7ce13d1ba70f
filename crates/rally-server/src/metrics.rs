//! Metrics: the figures `/metrics` shows, and the cheap counters the hot paths feed.
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

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use rally_protocol::ErrorCode;

use crate::server::Shared;
use crate::transport::Transport;

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

/// Shards of the traffic counters; a thread always uses the same one.
const SHARDS: usize = 16;
/// Highest error code number plus one (codes are below 64).
const CODES: usize = 64;

/// Where an error sent to a client came from: the `kind` label of `async_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Refused by an accept loop before any session started (`SERVER_FULL`).
    Listener,
    /// The connection: protocol faults, timeouts, slow consumers, inputs, kicks.
    Session,
    /// A request's checks or execution.
    Command,
    /// A room: inputs the game refused, an operator closing it.
    Room,
}

impl ErrorKind {
    const ALL: [ErrorKind; 4] = [
        ErrorKind::Listener,
        ErrorKind::Session,
        ErrorKind::Command,
        ErrorKind::Room,
    ];

    fn name(self) -> &'static str {
        match self {
            ErrorKind::Listener => "listener",
            ErrorKind::Session => "session",
            ErrorKind::Command => "command",
            ErrorKind::Room => "room",
        }
    }
}

/// Kinds of tracked tasks: the `kind` label of `async_tasks_active` and
/// `async_task_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskKind {
    /// One player connection (both its loops).
    Session,
    /// One room.
    Room,
    /// One request (join, leave, chat, resume), run inside its session's task.
    Command,
    /// An accept loop.
    Listener,
    /// Telling one connection `SERVER_FULL`.
    Refusal,
    /// The heartbeat that measures event loop lag.
    Heartbeat,
    /// A database write nobody waits for: a session's stats, a room's match record.
    Write,
    /// The probe that checks the database answers, for `/readyz`.
    DbProbe,
}

impl TaskKind {
    const ALL: [TaskKind; 8] = [
        TaskKind::Session,
        TaskKind::Room,
        TaskKind::Command,
        TaskKind::Listener,
        TaskKind::Refusal,
        TaskKind::Heartbeat,
        TaskKind::Write,
        TaskKind::DbProbe,
    ];

    fn name(self) -> &'static str {
        match self {
            TaskKind::Session => "session",
            TaskKind::Room => "room",
            TaskKind::Command => "command",
            TaskKind::Listener => "listener",
            TaskKind::Refusal => "refusal",
            TaskKind::Heartbeat => "heartbeat",
            TaskKind::Write => "db_write",
            TaskKind::DbProbe => "db_probe",
        }
    }
}

/// Which traffic counter.
#[derive(Debug, Clone, Copy)]
enum Flow {
    MessagesIn = 0,
    BytesIn = 1,
    MessagesOut = 2,
    BytesOut = 3,
}

/// One shard of the traffic counters, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct TrafficShard {
    /// `[transport][flow]`.
    counts: [[AtomicU64; 4]; 2],
}

thread_local! {
    /// This thread's traffic shard (`usize::MAX` until first used).
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

fn shard_index() -> usize {
    SHARD.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(i);
        }
        i
    })
}

fn transport_index(t: Transport) -> usize {
    match t {
        Transport::Tcp => 0,
        Transport::WebSocket => 1,
    }
}

const TRANSPORTS: [Transport; 2] = [Transport::Tcp, Transport::WebSocket];

/// The rate limits, as labelled in `rally_rate_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// An input past `input_rate`.
    Input = 0,
    /// A request or ping past `command_rate`.
    Command = 1,
    /// A connection closed for staying over its message limits.
    Closed = 2,
    /// A connection refused: `max_connections_per_ip` open from its address.
    AddressConnections = 3,
    /// A connection refused: past `connection_rate_per_ip`.
    AddressRate = 4,
}

impl Limit {
    const ALL: [Limit; 5] = [
        Limit::Input,
        Limit::Command,
        Limit::Closed,
        Limit::AddressConnections,
        Limit::AddressRate,
    ];

    fn label(self) -> &'static str {
        match self {
            Limit::Input => "input",
            Limit::Command => "command",
            Limit::Closed => "closed",
            Limit::AddressConnections => "connections_per_ip",
            Limit::AddressRate => "connection_rate_per_ip",
        }
    }
}

/// Counters the hot paths add to: relaxed atomics, read at scrape time.
#[derive(Debug)]
pub(crate) struct Stats {
    /// Ticks rooms skipped because they fell behind.
    pub(crate) missed_ticks: AtomicU64,
    /// Errors sent to clients, by where they came from and code number.
    errors: [[AtomicU64; CODES]; 4],
    /// Accept calls that failed (the server retries them).
    accept_errors: AtomicU64,
    /// Messages and connections refused by a rate limit, by [`Limit`].
    rate_limited: [AtomicU64; 5],
    traffic: Box<[TrafficShard; SHARDS]>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            missed_ticks: AtomicU64::new(0),
            errors: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            accept_errors: AtomicU64::new(0),
            rate_limited: std::array::from_fn(|_| AtomicU64::new(0)),
            traffic: Box::default(),
        }
    }
}

impl Stats {
    /// Counts an error sent (or meant) to a client.
    pub(crate) fn count_error(&self, kind: ErrorKind, code: ErrorCode) {
        if let Some(c) = self.errors[kind as usize].get(usize::from(code.as_u16())) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Errors with `code` sent to clients, from anywhere.
    pub(crate) fn errors(&self, code: ErrorCode) -> u64 {
        let at = usize::from(code.as_u16());
        self.errors
            .iter()
            .filter_map(|by_code| by_code.get(at))
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Counts one message or connection refused by `limit`.
    pub(crate) fn count_rate_limited(&self, limit: Limit) {
        self.rate_limited[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals by `limit` so far.
    pub(crate) fn rate_limited(&self, limit: Limit) -> u64 {
        self.rate_limited[limit as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn count_accept_error(&self) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    fn add(&self, transport: Transport, flow: Flow, n: u64) {
        self.traffic[shard_index()].counts[transport_index(transport)][flow as usize]
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Messages and bytes read in one read call.
    pub(crate) fn received(&self, transport: Transport, messages: u64, bytes: usize) {
        if messages > 0 {
            self.add(transport, Flow::MessagesIn, messages);
        }
        self.add(transport, Flow::BytesIn, bytes as u64);
    }

    /// Messages and bytes sent in one write call.
    pub(crate) fn sent(&self, transport: Transport, messages: usize, bytes: usize) {
        self.add(transport, Flow::MessagesOut, messages as u64);
        self.add(transport, Flow::BytesOut, bytes as u64);
    }

    fn traffic(&self, transport: Transport, flow: Flow) -> u64 {
        self.traffic
            .iter()
            .map(|s| s.counts[transport_index(transport)][flow as usize].load(Ordering::Relaxed))
            .sum()
    }
}

/// Counts a task as active while it lives and records how long it ran when dropped.
#[derive(Debug)]
pub(crate) struct TaskGuard {
    active: Gauge,
    duration: Histogram,
    started: Instant,
}

/// One task kind's gauge and histogram, for code that starts tasks without holding the
/// [`Metrics`] (the storage layer's background writes).
#[derive(Debug, Clone)]
pub(crate) struct TaskMeter {
    active: Gauge,
    duration: Histogram,
}

impl TaskMeter {
    /// Counts a task from now until the guard is dropped.
    pub(crate) fn start(&self) -> TaskGuard {
        self.active.increment(1.0);
        TaskGuard {
            active: self.active.clone(),
            duration: self.duration.clone(),
            started: Instant::now(),
        }
    }
}

impl TaskGuard {
    /// How long the task has run.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// How long the task has run, in whole milliseconds (the `duration_ms` of task logs).
    pub(crate) fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.active.decrement(1.0);
        self.duration.record(self.started.elapsed());
    }
}

/// Decrements a gauge when dropped (an open connection).
#[derive(Debug)]
pub(crate) struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Times calls of one database operation into `rally_db_call_duration_seconds`.
///
/// The storage layer gets one per operation from
/// [`ServerHandle::db_call_metric`](crate::ServerHandle::db_call_metric) when it starts,
/// keeps it, and times every call with it: recording is an atomic push, no lookup.
#[derive(Debug, Clone)]
pub struct DbCallMetric {
    histogram: Histogram,
}

impl DbCallMetric {
    /// Records one call that took `duration` (successful or not).
    pub fn record(&self, duration: Duration) {
        self.histogram.record(duration);
    }

    /// Runs `call` and records how long it took.
    pub async fn time<F: Future>(&self, call: F) -> F::Output {
        let started = Instant::now();
        let out = call.await;
        self.record(started.elapsed());
        out
    }
}

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
}

/// Commands with their own `command` label.
const COMMANDS: [&str; 11] = [
    "join",
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
];

/// The server's registry and the handles the server records into.
pub(crate) struct Metrics {
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

    /// Counts an open connection until the guard is dropped.
    pub(crate) fn connection(&self, transport: Transport) -> GaugeGuard {
        let g = &self.connections[transport_index(transport)];
        g.increment(1.0);
        GaugeGuard(g.clone())
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
    pub(crate) fn render(&self, shared: &Shared) -> String {
        let stats = &shared.stats;
        let set_counter = |n, labels: &[(&'static str, String)], v: u64| {
            self.counter(n, labels).absolute(v);
        };
        let set_gauge = |n, labels: &[(&'static str, String)], v: f64| {
            self.gauge(n, labels).set(v);
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

        let rooms = shared.matchmaker.rooms();
        let mut by_kind: HashMap<&str, usize> = HashMap::new();
        let mut players = 0;
        for room in &rooms {
            *by_kind.entry(&room.kind).or_default() += 1;
            players += room.info.players();
        }
        for (kind, gauge) in &self.rooms {
            gauge.set(by_kind.get(kind.as_str()).copied().unwrap_or(0) as f64);
        }
        set_gauge(name::PLAYERS, &[], players as f64);
        set_gauge(name::SESSIONS, &[], shared.directory.len() as f64);
        let draining = shared.is_draining() || shared.shutdown.is_cancelled();
        set_gauge(name::DRAINING, &[], f64::from(u8::from(draining)));
        set_gauge(
            name::READY,
            &[],
            f64::from(u8::from(shared.readiness_problems().is_empty())),
        );

        let rt = tokio::runtime::Handle::current().metrics();
        set_gauge(name::WORKERS, &[], rt.num_workers() as f64);
        set_gauge(name::ALIVE_TASKS, &[], rt.num_alive_tasks() as f64);
        set_gauge(name::GLOBAL_QUEUE, &[], rt.global_queue_depth() as f64);
        self.handle.render()
    }
}

/// Measures the share of time the runtime's workers are busy, between two samples.
#[derive(Debug)]
pub(crate) struct BusySampler {
    last_busy: Duration,
    last_at: Instant,
}

impl BusySampler {
    pub(crate) fn new() -> Self {
        BusySampler {
            last_busy: total_busy(),
            last_at: Instant::now(),
        }
    }

    /// The busy ratio since the previous sample (0 to 1).
    pub(crate) fn sample(&mut self) -> f64 {
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        let (busy, now) = (total_busy(), Instant::now());
        let spent = busy.saturating_sub(self.last_busy).as_secs_f64();
        let wall = now.duration_since(self.last_at).as_secs_f64() * workers.max(1) as f64;
        self.last_busy = busy;
        self.last_at = now;
        if wall > 0.0 {
            (spent / wall).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

fn total_busy() -> Duration {
    let rt = tokio::runtime::Handle::current().metrics();
    (0..rt.num_workers())
        .map(|w| rt.worker_total_busy_duration(w))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_from_many_threads_adds_up() {
        let stats = Stats::default();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        stats.received(Transport::Tcp, 2, 10);
                        stats.sent(Transport::WebSocket, 3, 7);
                    }
                });
            }
        });
        assert_eq!(stats.traffic(Transport::Tcp, Flow::MessagesIn), 16_000);
        assert_eq!(stats.traffic(Transport::Tcp, Flow::BytesIn), 80_000);
        assert_eq!(
            stats.traffic(Transport::WebSocket, Flow::MessagesOut),
            24_000
        );
        assert_eq!(stats.traffic(Transport::WebSocket, Flow::BytesOut), 56_000);
        assert_eq!(stats.traffic(Transport::WebSocket, Flow::MessagesIn), 0);
    }

    #[test]
    fn errors_are_counted_by_kind_and_summed_by_code() {
        let stats = Stats::default();
        stats.count_error(ErrorKind::Session, ErrorCode::NotInRoom);
        stats.count_error(ErrorKind::Command, ErrorCode::NotInRoom);
        stats.count_error(ErrorKind::Listener, ErrorCode::ServerFull);
        assert_eq!(stats.errors(ErrorCode::NotInRoom), 2);
        assert_eq!(stats.errors(ErrorCode::ServerFull), 1);
        assert_eq!(stats.errors(ErrorCode::Kicked), 0);
        // Every code fits the table.
        assert!(ErrorCode::ALL
            .iter()
            .all(|c| usize::from(c.as_u16()) < CODES));
    }
}
