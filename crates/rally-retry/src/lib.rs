//! The retry policy of SPEC.md section 2, one implementation for every caller: the
//! client SDK's connects and requests, and the server's own outbound calls (the auth
//! webhook, the database). At most 3 attempts, waits of 100 ms then 200 ms, each plus a
//! random jitter of up to 25% so that many callers failing at once do not retry in
//! lockstep. The caller says which errors are worth another attempt; any other error is
//! returned at once.
//!
//! A call may also carry a deadline: no wait or attempt starts that would end past it, so
//! the retries of one command fit inside that command's own bound.

#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How many times to try and how long to wait in between.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 counts as 1).
    pub max_attempts: u32,
    /// The wait before the second attempt; each later wait doubles it.
    pub base_delay: Duration,
    /// The largest jitter added to a wait, as a fraction of it (0.25: up to +25%).
    pub jitter: f64,
}

impl RetryPolicy {
    /// SPEC.md section 2: 3 attempts, waits of 100 ms and 200 ms, each plus up to 25%.
    pub const SPEC: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(100),
        jitter: 0.25,
    };

    /// The wait after failed attempt number `attempt` (from 1), for a jitter draw `unit`
    /// in `0.0..1.0`: `base_delay * 2^(attempt - 1) * (1 + jitter * unit)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        let base = self.base_delay.saturating_mul(1 << doublings);
        base + base.mul_f64((self.jitter * unit.clamp(0.0, 1.0)).max(0.0))
    }

    /// Runs `op` until it succeeds, fails with an error `retryable` refuses, has failed
    /// `max_attempts` times, or the next wait would end past `deadline`; returns its last
    /// result. `op` gets the attempt number, from 1.
    pub async fn run<T, E, Fut>(
        &self,
        deadline: Option<Instant>,
        retryable: impl Fn(&E) -> bool,
        mut op: impl FnMut(u32) -> Fut,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            match op(attempt).await {
                Err(e) if attempt < self.max_attempts.max(1) && retryable(&e) => {
                    let wait = self.delay(attempt, jitter_unit());
                    if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                        return Err(e);
                    }
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                done => return done,
            }
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy::SPEC
    }
}

/// A uniform draw in `0.0..1.0`; no jitter if the OS has no randomness to give.
pub fn jitter_unit() -> f64 {
    getrandom::u32().map_or(0.0, |r| f64::from(r) / (f64::from(u32::MAX) + 1.0))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn waits_double_with_bounded_jitter() {
        let p = RetryPolicy::SPEC;
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(100));
        assert_eq!(p.delay(2, 0.0), Duration::from_millis(200));
        assert_eq!(p.delay(1, 0.999), Duration::from_micros(124_975));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_only_what_it_is_told_at_most_three_times() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let r: Result<(), &str> = RetryPolicy::SPEC
            .run(
                None,
                |e| *e == "reset",
                |_| async {
                    calls.fetch_add(1, Ordering::Relaxed);
                    Err("reset")
                },
            )
            .await;
        assert_eq!(r, Err("reset"));
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300) && waited <= Duration::from_millis(375));

        calls.store(0, Ordering::Relaxed);
        let r: Result<(), &str> = RetryPolicy::SPEC
            .run(
                None,
                |e| *e == "reset",
                |_| async {
                    calls.fetch_add(1, Ordering::Relaxed);
                    Err("refused by the peer")
                },
            )
            .await;
        assert_eq!(r, Err("refused by the peer"));
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "not retryable: returned at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_cuts_the_retries_short() {
        let calls = AtomicU32::new(0);
        let deadline = Instant::now() + Duration::from_millis(150);
        let r: Result<(), ()> = RetryPolicy::SPEC
            .run(
                Some(deadline),
                |_| true,
                |_| async {
                    calls.fetch_add(1, Ordering::Relaxed);
                    Err(())
                },
            )
            .await;
        assert!(r.is_err());
        // 100-125 ms of wait fit before the deadline; the 200 ms one does not.
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        assert!(Instant::now() < deadline);
    }
}
