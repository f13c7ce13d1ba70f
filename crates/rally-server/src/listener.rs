//! Accept loops (edge floor): one per game listener, sharing one connection limit.
//!
//! At capacity a new connection is told `SERVER_FULL` at once and closed; it never waits
//! unseen. A connection past its address's limits (`max_connections_per_ip`,
//! `connection_rate_per_ip`) is told `RATE_LIMITED` the same way. Accept errors (out of file descriptors, say) are logged and retried with a
//! backoff that doubles up to a second; they never stop the server.

use std::sync::Arc;
use std::time::Duration;

use rally_protocol::ErrorCode;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::connection::{Connection, Listener};
use crate::error::ClientError;
use crate::limits::{AddressLimits, AddressRefusal};
use crate::metrics::{ErrorKind, Limit, TaskKind};
use crate::session::{self, SessionEnv};
use crate::transport::{self, Transport};

/// First wait after an accept error.
const BACKOFF_START: Duration = Duration::from_millis(5);
/// Longest wait between accept retries.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Bound on the time spent refusing one connection (WebSocket upgrade included).
const REFUSE_LIMIT: Duration = Duration::from_secs(1);

/// What the accept loops are given: the gates a connection passes, and what its
/// session then runs with.
#[derive(Debug)]
pub(crate) struct AcceptEnv {
    /// What each session is given (its metrics, config and shutdown token too).
    pub(crate) session: Arc<SessionEnv>,
    /// Connections held and opened per second, per client address.
    pub(crate) addresses: Arc<AddressLimits>,
    /// One permit per player connection (`concurrency_limit`).
    pub(crate) limit: Arc<Semaphore>,
    /// Bounds the tasks that refuse connections at capacity.
    pub(crate) refusals: Arc<Semaphore>,
    /// Sessions and refusals run in the server's tracker.
    pub(crate) tracker: TaskTracker,
}

/// Accepts connections on `listener` until shutdown, starting a session for each one
/// admitted and refusing the rest.
pub(crate) async fn accept_loop<L: Listener>(
    env: Arc<AcceptEnv>,
    listener: L,
    transport: Transport,
) {
    let task = env.session.metrics.task(TaskKind::Listener);
    let mut backoff = BACKOFF_START;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = env.session.shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = BACKOFF_START;
                let slot = match env.addresses.admit(peer.ip()) {
                    Ok(slot) => slot,
                    Err(refusal) => {
                        env.session.metrics.stats.count_rate_limited(match refusal {
                            AddressRefusal::TooMany(_) => Limit::AddressConnections,
                            AddressRefusal::TooFast(_) => Limit::AddressRate,
                        });
                        refuse(
                            &env,
                            stream,
                            peer,
                            transport,
                            ErrorCode::RateLimited,
                            refusal.message(),
                        );
                        continue;
                    }
                };
                match env.limit.clone().try_acquire_owned() {
                    Ok(permit) => {
                        env.tracker.spawn(session::run(
                            env.session.clone(),
                            Arc::new(stream),
                            peer,
                            transport,
                            (permit, slot),
                        ));
                    }
                    Err(_) => {
                        let message = format!(
                            "the server is at its limit of {} connections",
                            env.session.config.concurrency_limit
                        );
                        refuse(
                            &env,
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
                env.session.metrics.stats.count_accept_error();
                tracing::warn!(error = %e, transport = transport.name(), retry_in_ms = backoff.as_millis() as u64, "accept failed");
                tokio::select! {
                    _ = env.session.shutdown.cancelled() => break,
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
fn refuse<C: Connection>(
    env: &AcceptEnv,
    stream: C,
    peer: std::net::SocketAddr,
    transport: Transport,
    code: ErrorCode,
    message: String,
) {
    let _ = stream.set_nodelay(true);
    let mut frame = Vec::new();
    let msg = ClientError::new(code, message).into_message(0);
    env.session
        .metrics
        .stats
        .count_error(ErrorKind::Listener, code);
    // No session id yet: the peer address names the connection.
    tracing::debug!(
        code = code.name(),
        transport = transport.name(),
        %peer,
        "connection refused"
    );
    match env.refusals.clone().try_acquire_owned() {
        Ok(permit) => {
            let task = env.session.metrics.task(TaskKind::Refusal);
            env.tracker.spawn(async move {
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
