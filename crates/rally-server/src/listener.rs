//! Accept loops: one per game listener, sharing one connection limit.
//!
//! At capacity a new connection is told `SERVER_FULL` at once and closed; it never waits
//! unseen. A connection past its address's limits (`max_connections_per_ip`,
//! `connection_rate_per_ip`) is told `RATE_LIMITED` the same way. Accept errors (out of file descriptors, say) are logged and retried with a
//! backoff that doubles up to a second; they never stop the server.

use std::sync::Arc;
use std::time::Duration;

use rally_protocol::{ErrorCode, ServerMessage};
use tokio::net::{TcpListener, TcpStream};

use crate::limits::AddressRefusal;
use crate::metrics::{ErrorKind, Limit, TaskKind};
use crate::server::Shared;
use crate::session;
use crate::transport::{self, Transport};

/// First wait after an accept error.
const BACKOFF_START: Duration = Duration::from_millis(5);
/// Longest wait between accept retries.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Bound on the time spent refusing one connection (WebSocket upgrade included).
const REFUSE_LIMIT: Duration = Duration::from_secs(1);

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, transport: Transport) {
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
                let slot = match shared.addresses.admit(peer.ip()) {
                    Ok(slot) => slot,
                    Err(refusal) => {
                        shared.stats.count_rate_limited(match refusal {
                            AddressRefusal::TooMany(_) => Limit::AddressConnections,
                            AddressRefusal::TooFast(_) => Limit::AddressRate,
                        });
                        refuse(
                            &shared,
                            stream,
                            peer,
                            transport,
                            ErrorCode::RateLimited,
                            refusal.message(),
                        );
                        continue;
                    }
                };
                match shared.limit.clone().try_acquire_owned() {
                    Ok(permit) => {
                        shared.tracker.spawn(session::run(
                            shared.clone(),
                            stream,
                            peer,
                            transport,
                            (permit, slot),
                        ));
                    }
                    Err(_) => {
                        let message = format!(
                            "the server is at its limit of {} connections",
                            shared.config.concurrency_limit
                        );
                        refuse(
                            &shared,
                            stream,
                            peer,
                            transport,
                            ErrorCode::ServerFull,
                            message,
                        );
                    }
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

/// Tells a connection why it is refused (`SERVER_FULL` at capacity, `RATE_LIMITED` past
/// its address's limits), then closes it.
///
/// Refusals run in their own tasks, at most a few at a time; past that the refusal is a
/// best-effort write that never waits, so a flood cannot pile up tasks.
fn refuse(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    transport: Transport,
    code: ErrorCode,
    message: String,
) {
    let _ = stream.set_nodelay(true);
    let mut frame = Vec::new();
    let msg = ServerMessage::Error {
        code,
        message,
        req: 0,
    };
    shared.stats.count_error(ErrorKind::Listener, code);
    // No session id yet: the peer address names the connection.
    tracing::debug!(
        code = code.name(),
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
                    transport::ws_close_code(Some(code)),
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
