//! Task and call meters (infra floor): the guards that count a task while it runs and
//! time it when it ends, the database call timer, and the runtime busy sampler.

use std::future::Future;
use std::time::{Duration, Instant};

use metrics::{Gauge, Histogram};

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
    /// One match recording's writer, or the recordings' retention sweep.
    Recording,
}

impl TaskKind {
    pub(super) const ALL: [TaskKind; 9] = [
        TaskKind::Session,
        TaskKind::Room,
        TaskKind::Command,
        TaskKind::Listener,
        TaskKind::Refusal,
        TaskKind::Heartbeat,
        TaskKind::Write,
        TaskKind::DbProbe,
        TaskKind::Recording,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            TaskKind::Session => "session",
            TaskKind::Room => "room",
            TaskKind::Command => "command",
            TaskKind::Listener => "listener",
            TaskKind::Refusal => "refusal",
            TaskKind::Heartbeat => "heartbeat",
            TaskKind::Write => "db_write",
            TaskKind::DbProbe => "db_probe",
            TaskKind::Recording => "recording",
        }
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
/// [`Metrics`](super::Metrics) (the storage layer's background writes).
#[derive(Debug, Clone)]
pub(crate) struct TaskMeter {
    pub(super) active: Gauge,
    pub(super) duration: Histogram,
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

/// Times calls of one database operation into `rally_db_call_duration_seconds`.
///
/// The storage layer gets one per operation from
/// [`ServerHandle::db_call_metric`](crate::ServerHandle::db_call_metric) when it starts,
/// keeps it, and times every call with it: recording is an atomic push, no lookup.
#[derive(Debug, Clone)]
pub struct DbCallMetric {
    pub(super) histogram: Histogram,
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
