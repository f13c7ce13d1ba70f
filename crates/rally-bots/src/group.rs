//! A group of bots driven by one task: the unit of a lean swarm.
//!
//! A bot per task costs a task wake-up per state and a timer (and a wake-up) per input.
//! A group of [`BotsConfig::group`] bots (at most 64) instead has one task, one timer
//! and one read buffer. Each time the task wakes it sends the inputs that are due, then
//! polls the sockets that woke it (each socket has a waker of its own that marks its bot
//! in a bit set, [`Ready`]): reads go to the shared buffer and are decoded there, writes
//! go out at once with `try_write`. Each bot keeps its own
//! point in the input interval, so the server never sees a group's inputs in a burst:
//! the timer fires at the earliest bot's turn, but at most once per
//! [`TIMER_STEPS`]th of the interval, so a bot sends at most that late (2.5 ms at 20 Hz),
//! and its latency is measured from when it actually sent.
//!
//! Bots still entering (connect, login, join, a redirect) are futures of this same task
//! ([`crate::entry`]); once seated, each hands over its bare socket.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt as _};
use futures_util::task::AtomicWaker;
use tokio::time::{Instant, Sleep};

use crate::bot::{Bot, Masks, Phase};
use crate::config::BotsConfig;
use crate::entry::{self, Entered};
use crate::stats::{Stats, Tally};

/// The timer fires at most this many times per input interval.
pub(crate) const TIMER_STEPS: u32 = 10;
/// Bots in one group at most: one bit each in [`Ready`]'s word.
pub(crate) const MAX_GROUP: u32 = 64;
/// The shared read buffer: many states at once, far more than one socket holds per tick.
const READ_BUF: usize = 16 * 1024;

type Entering = Pin<Box<dyn Future<Output = Option<Entered>> + Send>>;

/// Which of a group's sockets woke it: each bot registers its own waker with its socket,
/// which sets the bot's bit and wakes the group's task. A wake-up then polls the sockets
/// that are ready, not all of them, and a timer wake-up polls none.
#[derive(Debug, Default)]
struct Ready {
    bits: AtomicU64,
    task: AtomicWaker,
}

/// The waker of one bot's socket.
struct BotWake {
    ready: Arc<Ready>,
    bit: u64,
}

impl Wake for BotWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.bits.fetch_or(self.bit, Ordering::AcqRel);
        self.ready.task.wake();
    }
}

/// Runs bots `ids` (at most [`MAX_GROUP`]) from `begin` (bot `id` starts at
/// `begin + id / ramp`) until `deadline`, then says goodbye to each, within
/// `cfg.close_timeout`.
pub(crate) async fn run(
    ids: std::ops::Range<u32>,
    cfg: Arc<BotsConfig>,
    stats: Arc<Stats>,
    begin: Instant,
    deadline: Instant,
) {
    debug_assert!(ids.len() <= MAX_GROUP as usize, "a group of {}", ids.len());
    let ramp = f64::from(cfg.ramp_per_sec.max(1));
    let entering: FuturesUnordered<Entering> = ids
        .clone()
        .map(|id| {
            let start = begin + Duration::from_secs_f64(f64::from(id) / ramp);
            Box::pin(entry::enter(
                id,
                cfg.clone(),
                stats.clone(),
                start,
                deadline,
            )) as Entering
        })
        .collect();
    let ready = Arc::new(Ready::default());
    let wakers = (0..ids.len())
        .map(|i| {
            Waker::from(Arc::new(BotWake {
                ready: ready.clone(),
                bit: 1 << i,
            }))
        })
        .collect();
    let step = (cfg.input_interval / TIMER_STEPS).max(Duration::from_micros(500));
    let mut group = Group {
        first: ids.start,
        slots: ids.clone().map(|_| None).collect(),
        live: 0,
        wakers,
        ready,
        owed: 0,
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
    /// The first bot's id: bot `id` is in slot `id - first`; also the group's shard in
    /// the stats.
    first: u32,
    /// The bots at play or saying goodbye, by slot.
    slots: Vec<Option<Bot>>,
    /// Occupied slots.
    live: usize,
    /// Each slot's socket waker.
    wakers: Vec<Waker>,
    ready: Arc<Ready>,
    /// Slots to poll at the next wake-up whatever their sockets say: a bot just seated,
    /// one with bytes to write, one that stopped at its share of reads.
    owed: u64,
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
        self.ready.task.register(cx.waker());
        while let Poll::Ready(Some(entered)) = self.entering.poll_next_unpin(cx) {
            if let Some(e) = entered {
                self.seat(e);
            }
        }
        let now = Instant::now();
        if !self.closing && now >= self.deadline {
            self.closing = true;
            let until = now + self.cfg.close_timeout;
            for (i, bot) in self.slots.iter_mut().enumerate() {
                if let Some(bot) = bot.as_mut().filter(|b| b.phase == Phase::Playing) {
                    self.tally.left += 1;
                    bot.goodbye(true, until, &mut self.masks);
                    self.owed |= 1 << i;
                }
            }
        }
        // Inputs due: written at once; a socket that did not take one all is polled for
        // writing below.
        if !self.closing {
            for (i, slot) in self.slots.iter_mut().enumerate() {
                let Some(bot) = slot.as_mut() else { continue };
                if bot.phase != Phase::Playing || bot.next_send > now {
                    continue;
                }
                let sent = bot.send_input(
                    now,
                    self.cfg.input_interval,
                    &mut self.scratch,
                    &mut self.masks,
                    &self.stats,
                    &mut self.tally,
                );
                match sent {
                    Ok(()) if bot.owes() => self.owed |= 1 << i,
                    Ok(()) => {}
                    Err(end) => {
                        self.stats.error(format!("disconnect:{}", end.kind()));
                        self.tally.left += 1;
                        *slot = None;
                        self.live -= 1;
                    }
                }
            }
        }
        // The sockets that woke the group, and those owed a poll.
        let mut due = self.ready.bits.swap(0, Ordering::AcqRel) | std::mem::take(&mut self.owed);
        while due != 0 {
            let i = due.trailing_zeros() as usize;
            due &= due - 1;
            let Some(bot) = self.slots.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            let mut bcx = Context::from_waker(&self.wakers[i]);
            let more = bot.poll(
                &mut bcx,
                &mut self.buf,
                &mut self.masks,
                &self.stats,
                &mut self.tally,
            );
            if more || bot.owes() {
                self.owed |= 1 << i;
            }
        }
        // What comes next: each bot's turn, goodbyes that ran out of time.
        let mut next = if self.closing {
            now + self.cfg.close_timeout
        } else {
            self.deadline
        };
        for slot in &mut self.slots {
            let Some(bot) = slot.as_ref() else { continue };
            match bot.phase {
                Phase::Playing => {
                    next = next.min(bot.next_send);
                    continue;
                }
                Phase::Closing { until } if now < until => {
                    next = next.min(until);
                    continue;
                }
                Phase::Closing { .. } => self.stats.error("close:timeout"),
                Phase::Done => {}
            }
            *slot = None;
            self.live -= 1;
        }
        self.stats.flush(self.first, &mut self.tally);
        if self.live == 0 && self.entering.is_empty() {
            return Poll::Ready(());
        }
        if self.owed != 0 {
            // Bytes to write, or a socket with more than its share: come back soon.
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

    /// Seats an entered bot in its slot; it is polled at once (its socket may hold states
    /// already, and polling registers its waker).
    fn seat(&mut self, e: Entered) {
        let i = (e.id - self.first) as usize;
        let mut bot = Bot::new(e.id, e.parts, e.max_body, e.joined, &self.cfg);
        if self.closing {
            // Seated just as the run ended: out at once.
            self.tally.left += 1;
            bot.goodbye(
                true,
                Instant::now() + self.cfg.close_timeout,
                &mut self.masks,
            );
        }
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.replace(bot).is_none() {
                self.live += 1;
            }
            self.owed |= 1 << i;
        }
    }
}
