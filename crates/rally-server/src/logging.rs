//! Log lines: the two formats `rally serve` writes (`--log-format pretty|json`), as a
//! `tracing-subscriber` layer the binary installs (and tests install over a buffer).
//!
//! JSON lines are flat: an event's fields sit next to `timestamp`, `level`, `target` and
//! `message`, so a task-end event reads
//! `{"timestamp":..,"level":"DEBUG","message":"session ended","task_id":"session-7","async_model":"async_await","duration_ms":1520,..}`.
//!
//! What Rally logs never includes a secret: resume tokens and the admin token are
//! left out of every event and every `Debug` output that could reach one.
//!
//! Infra floor: imports only the config.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::config::LogFormat;

/// The formatting layer for `format`, writing to `writer`. Add a filter (the
/// `log_level`) with [`Layer::with_filter`].
pub fn layer<S, W>(format: LogFormat, writer: W) -> Box<dyn Layer<S> + Send + Sync + 'static>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => fmt.boxed(),
    }
}
