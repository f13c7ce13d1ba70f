//! The retry policy of SPEC.md section 2, as a function any async operation can use.
//!
//! At most 3 attempts; between them an exponential backoff starting at 100 ms (100 ms,
//! then 200 ms), each plus a random jitter so that many clients dropped at once do not
//! come back in lockstep. Only errors the caller classifies as retryable (for the SDK:
//! [`Error::is_retryable`](crate::Error::is_retryable), timeouts and connection resets)
//! are retried; any other error is returned at once.

use std::future::Future;

pub use rally_retry::{jitter_unit, RetryPolicy};

/// Runs `op` until it succeeds, fails with an error `retryable` refuses, or has failed
/// `policy.max_attempts` times; returns its last result. Sleeps [`RetryPolicy::delay`]
/// (with a random jitter draw) between attempts, on tokio's clock.
pub async fn retry<T, E, Fut>(
    policy: &RetryPolicy,
    retryable: impl Fn(&E) -> bool,
    mut op: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    policy.run(None, retryable, |_| op()).await
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::Error;

    const MS: Duration = Duration::from_millis(1);

    /// Runs `retry` over scripted outcomes; returns the result and when each attempt began.
    async fn scripted(outcomes: Vec<Result<u32, Error>>) -> (Result<u32, Error>, Vec<Duration>) {
        let start = Instant::now();
        let script = RefCell::new(outcomes.into_iter());
        let starts = RefCell::new(Vec::new());
        let r = retry(&RetryPolicy::SPEC, Error::is_retryable, || {
            starts.borrow_mut().push(start.elapsed());
            let next = script
                .borrow_mut()
                .next()
                .expect("no more attempts scripted");
            async move { next }
        })
        .await;
        (r, starts.into_inner())
    }

    fn reset() -> Error {
        io::Error::from(io::ErrorKind::ConnectionReset).into()
    }

    #[test]
    fn delays_double_from_100ms_plus_at_most_a_quarter() {
        let p = RetryPolicy::SPEC;
        assert_eq!(p.delay(1, 0.0), 100 * MS);
        assert_eq!(p.delay(2, 0.0), 200 * MS);
        assert_eq!(p.delay(1, 1.0), 125 * MS);
        assert_eq!(p.delay(2, 1.0), 250 * MS);
        assert_eq!(p.delay(2, 7.0), 250 * MS, "draws are clamped");
        for _ in 0..100 {
            let u = jitter_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_is_retried() {
        let (r, starts) = scripted(vec![Err(Error::Timeout("connect")), Ok(7)]).await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(starts.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_reset_is_retried() {
        let (r, starts) = scripted(vec![Err(reset()), Ok(7)]).await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(starts.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_retryable_error_returns_after_one_attempt() {
        let refused: Error = io::Error::from(io::ErrorKind::ConnectionRefused).into();
        for e in [
            refused,
            Error::Server {
                code: rally_protocol::ErrorCode::ServerFull,
                message: "full".into(),
            },
            Error::Protocol("not a welcome".into()),
        ] {
            let (r, starts) = scripted(vec![Err(e.clone()), Ok(7)]).await;
            assert_eq!(r.unwrap_err().to_string(), e.to_string());
            assert_eq!(starts, vec![Duration::ZERO], "{e}: one attempt, no wait");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_three_attempts_with_the_last_error() {
        let (r, starts) = scripted(vec![
            Err(Error::Timeout("first")),
            Err(reset()),
            Err(Error::Timeout("third")),
        ])
        .await;
        assert!(matches!(r, Err(Error::Timeout("third"))), "{r:?}");
        assert_eq!(starts.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_100ms_then_200ms_plus_jitter() {
        let (_, starts) = scripted(vec![
            Err(Error::Timeout("a")),
            Err(Error::Timeout("b")),
            Err(Error::Timeout("c")),
        ])
        .await;
        let first = starts[1] - starts[0];
        let second = starts[2] - starts[1];
        // The timer wheel has a 1 ms resolution: allow a tick of rounding.
        assert!((100 * MS..=126 * MS).contains(&first), "{first:?}");
        assert!((200 * MS..=251 * MS).contains(&second), "{second:?}");
    }
}
