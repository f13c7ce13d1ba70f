//! Accept loops: one per game listener, sharing one connection limit.
//!
//! At capacity a new connection is told `SERVER_FULL` at once and closed; it never waits
//! unseen. Accept errors (out of file descriptors, say) are logged and retried with a
//! backoff that doubles up to a second; they never stop the server.

use std::sync::Arc;
use std::time::Duration;

use rally_protocol::{ErrorCode, ServerMessage};

use crate::connection::{Connection, Listener};
use crate::metrics::{ErrorKind, TaskKind};
use crate::server::Shared;
use crate::session;
use crate::transport::{self, Transport};

/// First wait after an accept error.
const BACKOFF_START: Duration = Duration::from_millis(5);
/// Longest wait between accept retries.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Bound on the time spent refusing one connection (WebSocket upgrade included).
const REFUSE_LIMIT: Duration = Duration::from_secs(1);

pub(crate) async fn accept_loop<L: Listener>(
    shared: Arc<Shared>,
    listener: L,
    transport: Transport,
) {
    let task = shared.metrics.task(TaskKind::Listener);
    let mut backoff = BACKOFF_START;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = BACKOFF_START;
                match shared.limit.clone().try_acquire_owned() {
                    Ok(permit) => {
                        shared.tracker.spawn(session::run(
                            shared.clone(),
                            stream,
                            peer,
                            transport,
                            permit,
                        ));
                    }
                    Err(_) => refuse_full(&shared, stream, peer, transport),
                }
            }
            Err(e) => {
                shared.stats.count_accept_error();
                tracing::warn!(error = %e, transport = transport.name(), retry_in_ms = backoff.as_millis() as u64, "accept failed");
                tokio::select! {
                    _ = shared.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    tracing::debug!(
        task_id = %format_args!("listener-{}", transport.name()),
        async_model = "async_await",
        duration_ms = task.elapsed_ms(),
        "listener stopped"
    );
}

/// Tells a connection the server is full, then closes it.
///
/// Refusals run in their own tasks, at most a few at a time; past that the refusal is a
/// best-effort write that never waits, so a flood at capacity cannot pile up tasks.
fn refuse_full<C: Connection>(
    shared: &Arc<Shared>,
    stream: C,
    peer: std::net::SocketAddr,
    transport: Transport,
) {
    let _ = stream.set_nodelay(true);
    let mut frame = Vec::new();
    let msg = ServerMessage::Error {
        code: ErrorCode::ServerFull,
        message: format!(
            "the server is at its limit of {} connections",
            shared.config.concurrency_limit
        ),
        req: 0,
    };
    shared
        .stats
        .count_error(ErrorKind::Listener, ErrorCode::ServerFull);
    // No session id yet: the peer address names the connection.
    tracing::debug!(
        code = ErrorCode::ServerFull.name(),
        transport = transport.name(),
        %peer,
        "connection refused"
    );
    match shared.refusals.clone().try_acquire_owned() {
        Ok(permit) => {
            let task = shared.metrics.task(TaskKind::Refusal);
            shared.tracker.spawn(async move {
                let _task = task;
                let _permit = permit;
                if transport == Transport::WebSocket
                    && transport::accept_websocket(&stream, REFUSE_LIMIT)
                        .await
                        .is_none()
                {
                    return;
                }
                transport::encode(transport, &msg, &mut frame);
                transport::encode_close(
                    transport,
                    transport::ws_close_code(Some(ErrorCode::ServerFull)),
                    &mut frame,
                );
                let _ = transport::write_all(&stream, &frame, REFUSE_LIMIT).await;
                let mut stream = stream;
                session::linger_close(&mut stream).await;
            });
        }
        Err(_) if transport == Transport::Tcp => {
            transport::encode(transport, &msg, &mut frame);
            let _ = stream.try_write(&frame);
        }
        Err(_) => {}
    }
}
