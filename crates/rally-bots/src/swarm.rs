//! [`run`]: starts the bots at the ramp rate on their own runtime thread(s), samples
//! progress once a second, stops every bot at the end of the duration and builds the
//! [`Report`].

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::{self, Instant, MissedTickBehavior};

use crate::bot;
use crate::config::BotsConfig;
use crate::report::{Latency, Report, Second};
use crate::stats::Stats;

/// Extra time, past each bot's own close bound, for the bots to finish at the end.
const STOP_SLACK: Duration = Duration::from_secs(5);

/// Runs the swarm described by `cfg` and reports what it measured. Never fails: what
/// goes wrong (connect failures, server errors, drops) is counted in the report.
pub async fn run(cfg: BotsConfig) -> Report {
    // Thousands of sockets need thousands of descriptors; raising the soft limit to
    // the hard one is all an unprivileged process can do, and failing is not fatal.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let cfg = Arc::new(cfg);
    let stats = Arc::new(Stats::new());
    let begin = Instant::now();
    let deadline = begin + cfg.duration;
    let ramp = f64::from(cfg.ramp_per_sec.max(1));
    let lanes = match Lanes::start(cfg.threads) {
        Ok(lanes) => lanes,
        Err(e) => {
            // Not fatal: the caller's runtime can carry the bots, only less leanly.
            stats.error(format!("threads:{:?}", e.kind()));
            Lanes::default()
        }
    };
    let mut bots = JoinSet::new();
    for id in 0..cfg.bots {
        let start = begin + Duration::from_secs_f64(f64::from(id) / ramp);
        let bot = bot::run(id, cfg.clone(), stats.clone(), start, deadline);
        match lanes.pick(id) {
            Some(lane) => bots.spawn_on(bot, lane),
            None => bots.spawn(bot),
        };
    }

    let mut timeline = Vec::new();
    let mut ticker = time::interval_at(begin + Duration::from_secs(1), Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_states = 0;
    while ticker.tick().await < deadline {
        let second = sample(&stats, begin, &mut last_states);
        if cfg.progress {
            progress(&second, Stats::load(&stats.active));
        }
        timeline.push(second);
    }
    // The last partial second, if any, then the goodbyes.
    if Instant::now() < deadline {
        time::sleep_until(deadline).await;
    }
    let elapsed = begin.elapsed();
    let inputs = Stats::load(&stats.inputs_sent);
    let states = Stats::load(&stats.states_received);
    let (_, total) = stats.take_window();
    let stop_limit = cfg.close_timeout + STOP_SLACK;
    if time::timeout(stop_limit, async {
        while bots.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        stats.error(format!("stop:timeout ({} bots)", bots.len()));
        bots.shutdown().await;
    }
    lanes.stop().await;
    if cfg.progress {
        eprintln!();
    }

    let secs = elapsed.as_secs_f64();
    let errors_by_kind = stats.errors();
    Report {
        bots: cfg.bots,
        transport: cfg.transport,
        duration_secs: secs,
        connected: Stats::load(&stats.connected),
        errors: errors_by_kind.values().sum(),
        errors_by_kind,
        latency: Latency::of(&total),
        inputs_sent: inputs,
        states_received: states,
        inputs_per_sec: inputs as f64 / secs,
        states_per_sec: states as f64 / secs,
        timeline,
    }
}

/// The threads the bots run on, each a single-threaded runtime of its own: a bot's
/// wake-ups, reads and writes then never cross threads (no work stealing, no cross-core
/// hand-offs), which on a small box is most of a runtime's cost per message. Empty: the
/// bots run on the caller's runtime.
#[derive(Debug, Default)]
struct Lanes {
    lanes: Vec<Lane>,
}

#[derive(Debug)]
struct Lane {
    handle: Handle,
    /// Dropped to let the thread's runtime finish.
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Lanes {
    fn start(threads: usize) -> std::io::Result<Lanes> {
        let mut lanes = Vec::with_capacity(threads);
        for i in 0..threads {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("rally-bots-{i}"))
                .spawn(move || {
                    // Runs the bots spawned onto it until told to stop; whatever is
                    // left then is dropped with the runtime.
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
            lanes.push(Lane {
                handle,
                stop,
                thread,
            });
        }
        Ok(Lanes { lanes })
    }

    /// The runtime bot `id` runs on, or `None` for the caller's.
    fn pick(&self, id: u32) -> Option<&Handle> {
        let n = self.lanes.len();
        (n > 0).then(|| &self.lanes[id as usize % n].handle)
    }

    /// Stops every thread and waits for it (the bots are done by then).
    async fn stop(self) {
        for lane in self.lanes {
            drop(lane.stop);
            // Joining blocks, so not on the runtime; a thread that panicked has
            // nothing left to report.
            let _ = tokio::task::spawn_blocking(move || lane.thread.join()).await;
        }
    }
}

/// One second of the timeline: the latencies recorded in it, states received in it.
fn sample(stats: &Stats, begin: Instant, last_states: &mut u64) -> Second {
    let (window, total) = stats.take_window();
    let states = Stats::load(&stats.states_received);
    let second = Second {
        elapsed_secs: begin.elapsed().as_secs_f64(),
        states: states - *last_states,
        window: Latency::of(&window),
        p99_so_far_ms: ms(total.value_at_quantile(0.99)),
    };
    *last_states = states;
    second
}

/// Redraws the progress line on stderr.
fn progress(s: &Second, active: u64) {
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r[{:>5.1}s] connected {:>6}  states/s {:>8}  p99 so far {:>8.2} ms ",
        s.elapsed_secs, active, s.states, s.p99_so_far_ms
    );
    let _ = err.flush();
}

/// Microseconds (as recorded) to milliseconds.
pub(crate) fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}
