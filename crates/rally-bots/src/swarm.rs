//! [`run`]: starts the bots, in groups ([`crate::group`]) that each enter their bots at
//! the ramp rate, on their own runtime thread(s); samples progress once a second, lets
//! every group say goodbye at the end of the duration and builds the [`Report`].

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::{self, Instant, MissedTickBehavior};

use crate::config::BotsConfig;
use crate::group;
use crate::report::{Interval, Latency, Report, Second};
use crate::stats::Stats;

/// Extra time, past each bot's own close bound, for the bots to finish at the end.
const STOP_SLACK: Duration = Duration::from_secs(5);

/// Runs the swarm described by `cfg` and reports what it measured. Never fails: what
/// goes wrong (connect failures, server errors, drops) is counted in the report.
pub async fn run(cfg: BotsConfig) -> Report {
    run_with(cfg, |_| {}).await
}

/// [`run`], calling `on_interval` at the end of each interval of `cfg.report_every`
/// (and once more for the last, shorter one, if it is at least half an interval).
pub async fn run_with(cfg: BotsConfig, mut on_interval: impl FnMut(&Interval)) -> Report {
    // Thousands of sockets need thousands of descriptors; raising the soft limit to
    // the hard one is all an unprivileged process can do, and failing is not fatal.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let cfg = Arc::new(cfg);
    let stats = Arc::new(Stats::new());
    let begin = Instant::now();
    let deadline = begin + cfg.duration;
    let lanes = match Lanes::start(cfg.threads) {
        Ok(lanes) => lanes,
        Err(e) => {
            // Not fatal: the caller's runtime can carry the bots, only less leanly.
            stats.error(format!("threads:{:?}", e.kind()));
            Lanes::default()
        }
    };
    let mut bots = JoinSet::new();
    let size = cfg.group.clamp(1, group::MAX_GROUP);
    for (i, first) in (0..cfg.bots).step_by(size as usize).enumerate() {
        let ids = first..cfg.bots.min(first.saturating_add(size));
        let group = group::run(ids, cfg.clone(), stats.clone(), begin, deadline);
        match lanes.pick(i as u32) {
            Some(lane) => bots.spawn_on(group, lane),
            None => bots.spawn(group),
        };
    }

    let mut timeline = Vec::new();
    let mut ticker = time::interval_at(begin + Duration::from_secs(1), Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_states = 0;
    let mut intervals = cfg
        .report_every
        .map(|every| Intervals::new(every, begin, &stats));
    while ticker.tick().await < deadline {
        let (second, window) = sample(&stats, begin, &mut last_states);
        if cfg.progress {
            progress(&second, Stats::load(&stats.active));
        }
        timeline.push(second);
        if let Some(i) = &mut intervals {
            i.add(&window);
            if let Some(done) = i.due(&stats, false) {
                on_interval(&done);
            }
        }
    }
    // The last partial second, if any, then the goodbyes.
    if Instant::now() < deadline {
        time::sleep_until(deadline).await;
    }
    let elapsed = begin.elapsed();
    let (window, total) = stats.take_window();
    if let Some(i) = &mut intervals {
        i.add(&window);
        if let Some(done) = i.due(&stats, true) {
            on_interval(&done);
        }
    }
    // Read after the last interval, so the intervals never add up to more.
    let inputs = Stats::load(&stats.inputs_sent);
    let states = Stats::load(&stats.states_received);
    let stop_limit = cfg.close_timeout + STOP_SLACK;
    if time::timeout(stop_limit, async {
        while bots.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        stats.error(format!("stop:timeout ({} groups)", bots.len()));
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
        join: Latency::of(&stats.joins()),
        source_ips: cfg.sources.map_or(0, |s| s.count()),
        redirects: Stats::load(&stats.redirects),
        inputs_sent: inputs,
        states_received: states,
        inputs_per_sec: inputs as f64 / secs,
        states_per_sec: states as f64 / secs,
        timeline,
    }
}

/// The threads the bots run on, each a single-threaded runtime of its own: a group's
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

    /// The runtime group `i` runs on, or `None` for the caller's.
    fn pick(&self, i: u32) -> Option<&Handle> {
        let n = self.lanes.len();
        (n > 0).then(|| &self.lanes[i as usize % n].handle)
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

/// The intervals of `--report-every`: the latencies of the seconds since the last one,
/// and the counters as they were then.
struct Intervals {
    every: Duration,
    begin: Instant,
    /// When the interval in progress started.
    since: Instant,
    latencies: Histogram<u64>,
    errors: u64,
    inputs: u64,
    states: u64,
}

impl Intervals {
    fn new(every: Duration, begin: Instant, stats: &Stats) -> Intervals {
        Intervals {
            every,
            begin,
            since: begin,
            latencies: crate::stats::histogram(),
            errors: stats.error_count(),
            inputs: Stats::load(&stats.inputs_sent),
            states: Stats::load(&stats.states_received),
        }
    }

    /// Adds one second's latencies to the interval in progress.
    fn add(&mut self, window: &Histogram<u64>) {
        // Cannot fail: every histogram has the same bounds.
        self.latencies.add(window).expect("same bounds");
    }

    /// The interval in progress, if it is over (or, at the `end` of the run, if it is at
    /// least half an interval long); the next one starts now.
    fn due(&mut self, stats: &Stats, end: bool) -> Option<Interval> {
        let now = Instant::now();
        let length = now.saturating_duration_since(self.since);
        // A tick may come a little early against the interval's own clock: allow 100 ms.
        let over = length + Duration::from_millis(100) >= self.every;
        if !(over || end && length * 2 >= self.every) {
            return None;
        }
        let (errors, inputs, states) = (
            stats.error_count(),
            Stats::load(&stats.inputs_sent),
            Stats::load(&stats.states_received),
        );
        let interval = Interval {
            elapsed_secs: now.saturating_duration_since(self.begin).as_secs_f64(),
            secs: length.as_secs_f64(),
            active: Stats::load(&stats.active),
            connected: Stats::load(&stats.connected),
            errors: errors - self.errors,
            errors_total: errors,
            inputs: inputs - self.inputs,
            states: states - self.states,
            latency: Latency::of(&self.latencies),
        };
        (self.errors, self.inputs, self.states) = (errors, inputs, states);
        self.latencies.reset();
        self.since = now;
        Some(interval)
    }
}

/// One second of the timeline: the latencies recorded in it, states received in it; and
/// the latencies themselves.
fn sample(stats: &Stats, begin: Instant, last_states: &mut u64) -> (Second, Histogram<u64>) {
    let (window, total) = stats.take_window();
    let states = Stats::load(&stats.states_received);
    let second = Second {
        elapsed_secs: begin.elapsed().as_secs_f64(),
        states: states - *last_states,
        window: Latency::of(&window),
        p99_so_far_ms: ms(total.value_at_quantile(0.99)),
    };
    *last_states = states;
    (second, window)
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
