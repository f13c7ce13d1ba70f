//! The heartbeat (infra floor, beside the metrics it feeds): a task that wakes every 100 ms and measures how late it woke
//! (`event_loop_lag_ms`), the tokio runtime's busy ratio, and the metrics upkeep.
//!
//! A late wake-up means the runtime's workers were busy with other tasks (or blocked):
//! every player's messages waited as long. The timer has a 1 ms resolution, so a healthy
//! server shows a lag between 0 and about 1 ms.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::{BusySampler, Metrics, TaskKind};

/// How often the heartbeat wakes.
const PERIOD: Duration = Duration::from_millis(100);
/// Wake-ups between two runtime samples (and metrics upkeeps): one second.
const SAMPLE_EVERY: u32 = 10;

/// Runs until `stop` is cancelled.
pub(crate) async fn run(metrics: Arc<Metrics>, stop: CancellationToken) {
    let task = metrics.task(TaskKind::Heartbeat);
    let mut busy = BusySampler::new();
    let mut beats: u32 = 0;
    loop {
        let due = Instant::now() + PERIOD;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        metrics.set_lag(Instant::now().saturating_duration_since(due));
        beats = beats.wrapping_add(1);
        if beats.is_multiple_of(SAMPLE_EVERY) {
            metrics.set_busy_ratio(busy.sample());
            metrics.upkeep();
        }
    }
    tracing::debug!(
        task_id = "heartbeat",
        async_model = "async_await",
        duration_ms = task.elapsed_ms(),
        "heartbeat stopped"
    );
}
