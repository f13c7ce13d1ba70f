//! What every bot reports while the run goes on: counters (atomics), errors by kind
//! (rare, behind a lock) and latencies in a few sharded HDR histograms.
//!
//! Thousands of bots share a handful of histogram shards (group modulo the shard
//! count): one histogram per bot would cost far too much memory, one global lock would
//! be contended. A group counts into its own [`Tally`] while it handles a wake-up and
//! adds it here once at the end ([`Stats::flush`]): one lock and a few atomic additions
//! per wake-up, not per message. Locks are never held across an `.await`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latency shards; a few per core is plenty.
const SHARDS: usize = 16;
/// Largest latency recorded, in microseconds (longer ones are clamped to it).
const MAX_LATENCY_US: u64 = 60_000_000;

/// Shared by every bot of one run.
#[derive(Debug)]
pub(crate) struct Stats {
    /// Bots that joined a room (ever).
    pub(crate) connected: AtomicU64,
    /// Bots in a room right now.
    pub(crate) active: AtomicU64,
    pub(crate) inputs_sent: AtomicU64,
    pub(crate) states_received: AtomicU64,
    /// Cluster `redirect`s followed (docs/protocol.md section 11b).
    pub(crate) redirects: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    shards: Vec<Mutex<Shard>>,
    /// Join times (connect to `joined`), once per bot: one lock is enough.
    joins: Mutex<Histogram<u64>>,
}

/// Latencies since the start, and since the last [`Stats::take_window`].
#[derive(Debug)]
struct Shard {
    total: Histogram<u64>,
    window: Histogram<u64>,
}

/// A histogram for latencies in microseconds, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    // Cannot fail: 1 <= low, high >= 2 * low, sigfig 3 is in 0..=5.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats {
            connected: AtomicU64::new(0),
            active: AtomicU64::new(0),
            inputs_sent: AtomicU64::new(0),
            states_received: AtomicU64::new(0),
            redirects: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        total: histogram(),
                        window: histogram(),
                    })
                })
                .collect(),
            joins: Mutex::new(histogram()),
        }
    }

    /// Counts one error of `kind` (e.g. `connect:io`, `server:ROOM_FULL`, `disconnect`).
    pub(crate) fn error(&self, kind: impl Into<String>) {
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        *errors.entry(kind.into()).or_insert(0) += 1;
    }

    pub(crate) fn errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Errors of every kind so far.
    pub(crate) fn error_count(&self) -> u64 {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }

    /// Records how long one bot took from starting to connect until it was in a room.
    pub(crate) fn record_join(&self, took: Duration) {
        self.joins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(micros(took));
    }

    /// Every join time recorded so far.
    pub(crate) fn joins(&self) -> Histogram<u64> {
        self.joins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records one latency, into shard `key`'s histograms.
    #[cfg(test)]
    pub(crate) fn record(&self, key: u32, latency: Duration) {
        let mut tally = Tally::default();
        tally.latency(latency);
        self.flush(key, &mut tally);
    }

    /// Adds what a group counted (`key`: its shard) and empties the tally.
    pub(crate) fn flush(&self, key: u32, tally: &mut Tally) {
        if !tally.latencies.is_empty() {
            let mut shard = self.shards[key as usize % SHARDS]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for &us in &tally.latencies {
                shard.total.saturating_record(us);
                shard.window.saturating_record(us);
            }
            tally.latencies.clear();
        }
        for (counter, n) in [
            (&self.inputs_sent, &mut tally.inputs),
            (&self.states_received, &mut tally.states),
        ] {
            if *n > 0 {
                Stats::add(counter, std::mem::take(n));
            }
        }
        if tally.left > 0 {
            self.active
                .fetch_sub(std::mem::take(&mut tally.left), Ordering::Relaxed);
        }
    }

    /// The latencies recorded since the last call (the windows are reset), and all of
    /// them since the start.
    pub(crate) fn take_window(&self) -> (Histogram<u64>, Histogram<u64>) {
        let mut window = histogram();
        let mut total = histogram();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            // Cannot fail: every histogram has the same bounds.
            window.add(&shard.window).expect("same bounds");
            total.add(&shard.total).expect("same bounds");
            shard.window.reset();
        }
        (window, total)
    }

    pub(crate) fn load(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What a group counts while it handles one wake-up, added to the [`Stats`] at its end.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) inputs: u64,
    pub(crate) states: u64,
    /// Bots that stopped playing (out of `active`).
    pub(crate) left: u64,
    /// Latencies in microseconds; the buffer is kept from one wake-up to the next.
    latencies: Vec<u64>,
}

impl Tally {
    pub(crate) fn latency(&mut self, d: Duration) {
        self.latencies.push(micros(d));
    }
}

/// `d` in whole microseconds, within the histograms' bounds.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(MAX_LATENCY_US)
        .clamp(1, MAX_LATENCY_US)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_reset_and_totals_accumulate() {
        let stats = Stats::new();
        for bot in 0..40 {
            stats.record(bot, Duration::from_millis(10));
        }
        let (w, t) = stats.take_window();
        assert_eq!((w.len(), t.len()), (40, 40));
        stats.record(3, Duration::from_secs(3600));
        let (w, t) = stats.take_window();
        assert_eq!((w.len(), t.len()), (1, 41));
        assert!(t.max() <= MAX_LATENCY_US + MAX_LATENCY_US / 1000);
        stats.error("disconnect");
        stats.error("disconnect");
        stats.error("join:timeout");
        assert_eq!(stats.errors()["disconnect"], 2);
        assert_eq!(stats.error_count(), 3);
        stats.record_join(Duration::from_millis(4));
        stats.record_join(Duration::from_millis(8));
        assert_eq!(stats.joins().len(), 2);
    }
}
