//! What every bot reports while the run goes on: counters (atomics), errors by kind
//! (rare, behind a lock) and latencies in a few sharded HDR histograms.
//!
//! Thousands of bots share a handful of histogram shards (bot id modulo the shard
//! count): one histogram per bot would cost far too much memory, one global lock would
//! be contended. Locks are held for one `record`, never across an `.await`.

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

    /// Records one latency of bot `bot`.
    pub(crate) fn record(&self, bot: u32, latency: Duration) {
        let us = micros(latency);
        let mut shard = self.shards[bot as usize % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shard.total.saturating_record(us);
        shard.window.saturating_record(us);
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
