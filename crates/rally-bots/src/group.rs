//! A group of bots driven by one task: the unit of a lean swarm.
//!
//! A bot per task costs a task wake-up per state and a timer (and a wake-up) per input.
//! A group of [`BotsConfig::group`] bots instead has one task, one timer and one read
//! buffer. Each time the task wakes (a socket is readable, or the timer fired) it sends
//! the inputs that are due, then polls every socket: reads go to the shared buffer and
//! are decoded there, writes go out at once with `try_write`. Each bot keeps its own
//! point in the input interval, so the server never sees a group's inputs in a burst:
//! the timer fires at the earliest bot's turn, but at most once per
//! [`TIMER_STEPS`]th of the interval, so a bot sends at most that late (2.5 ms at 20 Hz),
//! and its latency is measured from when it actually sent.
//!
//! Bots still entering (connect, login, join, a redirect) are futures of this same task
//! ([`crate::entry`]); once seated, each hands over its bare socket.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt as _};
use tokio::time::{Instant, Sleep};

use crate::bot::{Bot, Masks, Phase};
use crate::config::BotsConfig;
use crate::entry::{self, Entered};
use crate::stats::{Stats, Tally};

/// The timer fires at most this many times per input interval.
pub(crate) const TIMER_STEPS: u32 = 20;
/// The shared read buffer: many states at once, far more than one socket holds per tick.
const READ_BUF: usize = 16 * 1024;

type Entering = Pin<Box<dyn Future<Output = Option<Entered>> + Send>>;

/// Runs bots `ids` from `begin` (bot `id` starts at `begin + id / ramp`) until
/// `deadline`, then says goodbye to each, within `cfg.close_timeout`.
pub(crate) async fn run(
    ids: std::ops::Range<u32>,
    cfg: Arc<BotsConfig>,
    stats: Arc<Stats>,
    begin: Instant,
    deadline: Instant,
) {
    let ramp = f64::from(cfg.ramp_per_sec.max(1));
    let entering: FuturesUnordered<Entering> = ids
        .clone()
        .map(|id| {
            let start = begin + Duration::from_secs_f64(f64::from(id) / ramp);
            Box::pin(entry::enter(id, cfg.clone(), stats.clone(), start, deadline)) as Entering
        })
        .collect();
    let step = (cfg.input_interval / TIMER_STEPS).max(Duration::from_micros(500));
    let mut group = Group {
        key: ids.start,
        bots: Vec::with_capacity(ids.len()),
        entering,
        buf: vec![0; READ_BUF].into_boxed_slice(),
        scratch: Vec::with_capacity(64),
        masks: Masks::new(seed(ids.start)),
        tally: Tally::default(),
        timer: Box::pin(tokio::time::sleep_until(begin)),
        step,
        deadline,
        closing: false,
        cfg,
        stats,
    };
    // Unconstrained: tokio's cooperative budget (128 operations a poll) would otherwise
    // cut a wake-up short over a group's sockets; [`crate::bot::READS_PER_WAKE`] bounds
    // each socket's share instead.
    tokio::task::unconstrained(poll_fn(|cx| group.poll(cx))).await;
}

/// A seed for the group's masking keys: the clock and the group.
fn seed(key: u32) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(key) << 32)
}

struct Group {
    /// The group's shard in the stats (its first bot's id).
    key: u32,
    bots: Vec<Bot>,
    entering: FuturesUnordered<Entering>,
    /// Every socket of the group is read into this, and its frames decoded in place.
    buf: Box<[u8]>,
    /// Encoded inputs, one at a time.
    scratch: Vec<u8>,
    masks: Masks,
    tally: Tally,
    /// The group's one timer: the next input due, the deadline, or a goodbye's bound.
    timer: Pin<Box<Sleep>>,
    /// The least time between two firings of the timer.
    step: Duration,
    deadline: Instant,
    /// Whether the goodbyes have begun (the deadline passed).
    closing: bool,
    cfg: Arc<BotsConfig>,
    stats: Arc<Stats>,
}

impl Group {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Poll::Ready(Some(entered)) = self.entering.poll_next_unpin(cx) {
            if let Some(e) = entered {
                if self.closing {
                    // Seated just as the run ended: out at once.
                    self.tally.left += 1;
                }
                let mut bot = Bot::new(e.id, e.parts, e.max_body, e.joined, &self.cfg);
                if self.closing {
                    bot.goodbye(true, Instant::now() + self.cfg.close_timeout, &mut self.masks);
                }
                self.bots.push(bot);
            }
        }
        let now = Instant::now();
        if !self.closing && now >= self.deadline {
            self.closing = true;
            let until = now + self.cfg.close_timeout;
            for bot in &mut self.bots {
                if bot.phase == Phase::Playing {
                    self.tally.left += 1;
                    bot.goodbye(true, until, &mut self.masks);
                }
            }
        }
        let mut next = if self.closing {
            now + self.cfg.close_timeout
        } else {
            self.deadline
        };
        let mut again = false;
        let Group {
            bots,
            buf,
            scratch,
            masks,
            tally,
            stats,
            cfg,
            ..
        } = self;
        bots.retain_mut(|bot| {
            if bot.phase == Phase::Playing && bot.next_send <= now {
                let sent = bot.send_input(now, cfg.input_interval, scratch, masks, stats, tally);
                if let Err(end) = sent {
                    stats.error(format!("disconnect:{}", end.kind()));
                    tally.left += 1;
                    return false;
                }
            }
            again |= bot.poll(cx, buf, masks, stats, tally);
            match bot.phase {
                Phase::Playing => next = next.min(bot.next_send),
                Phase::Closing { until } if now >= until => {
                    stats.error("close:timeout");
                    return false;
                }
                Phase::Closing { until } => next = next.min(until),
                Phase::Done => return false,
            }
            true
        });
        self.stats.flush(self.key, &mut self.tally);
        if self.bots.is_empty() && self.entering.is_empty() {
            return Poll::Ready(());
        }
        if again {
            // A socket had more than one wake-up's share: come back after the others.
            cx.waker().wake_by_ref();
        }
        // Inputs due within a step are sent together at its end, so the timer fires at
        // most once a step.
        let at = next.max(now + self.step);
        if self.timer.deadline() != at {
            self.timer.as_mut().reset(at);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}
