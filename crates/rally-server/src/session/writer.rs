//! The write loop (session floor): drains the outbox in batches, one socket write per
//! batch, and says goodbye when the session ends (what is left, the reason, a close frame).

use std::collections::VecDeque;
use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use rally_protocol::ErrorCode;

use super::{SessionEnv, FAREWELL};
use crate::connection::Connection;
use crate::error::ClientError;
use crate::metrics::ErrorKind;
use crate::outbox::{Ending, Outbound, SessionCtl};
use crate::transport::{self, Transport};

/// Why a batch did not go out at once.
enum Blocked {
    /// The socket took part of it: the rest, and the messages and bytes of the whole
    /// batch (counted once the rest is out).
    Rest(Vec<u8>, usize, usize),
    /// The write failed.
    Failed,
}

pub(super) struct Writer<'a> {
    pub(super) env: &'a SessionEnv,
    pub(super) ctl: std::sync::Arc<SessionCtl>,
    pub(super) transport: Transport,
    pub(super) session_id: u64,
}

impl<'a> Writer<'a> {
    /// The write loop. Not an `async fn`, and the blocked write is boxed with its
    /// buffer: what stays in every session's state while it idles is the writer itself,
    /// the stream and the wait for the next batch.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice in every session's state"
    )]
    pub(super) fn run<C: Connection>(self, stream: &'a C) -> impl Future<Output = ()> + 'a {
        async move {
            loop {
                // One poll of the end signal, then of the outbox: a `select!` would keep
                // both futures in every session's state.
                let ctl = &self.ctl;
                let next = std::future::poll_fn(|cx| {
                    if ctl.poll_signal(cx, false, false).is_ready() {
                        return Poll::Ready(None);
                    }
                    ctl.poll_next_batch(cx).map(Some)
                });
                let Some(batch) = next.await else { break };
                // The socket is full: wait for it, boxed with the rest of the batch, so that
                // the wait's timer, readiness future and buffer take memory only while a
                // write is blocked. Made before any await, so nothing of the attempt is
                // kept in the session's state meanwhile.
                let wait = match self.write_batch(stream, batch) {
                    Ok(()) => None,
                    Err(Blocked::Rest(rest, messages, bytes)) => {
                        Some(Box::pin(self.wait_write(stream, rest, (messages, bytes))))
                    }
                    Err(Blocked::Failed) => {
                        self.ctl.end(Ending::PeerClosed);
                        break;
                    }
                };
                let written = match wait {
                    None => Ok(true),
                    Some(wait) => match wait.await {
                        Some(w) => w,
                        None => break,
                    },
                };
                match written {
                    Ok(true) => {}
                    Ok(false) => {
                        self.ctl.end(Ending::fault(
                            ErrorCode::Timeout,
                            "a write did not drain within timeout_ms",
                        ));
                        break;
                    }
                    Err(_) => {
                        self.ctl.end(Ending::PeerClosed);
                        break;
                    }
                }
            }
            // Boxed for the same reason: only a session that ends pays for its goodbye.
            Box::pin(self.farewell(stream, self.env.config.timeout())).await;
        }
    }

    /// Everything queued goes out in one write (at most queue_capacity messages). The
    /// buffer lives for this batch only: states are written by the room, so batches here
    /// are rare (replies, or a socket that was full) and a quiet player holds no buffer.
    fn write_batch<C: Connection>(
        &self,
        stream: &C,
        batch: VecDeque<Outbound>,
    ) -> Result<(), Blocked> {
        let mut wbuf = Vec::new();
        for out in &batch {
            self.encode(out, &mut wbuf);
        }
        // A torn frame's tail was counted when its head was written.
        let messages = batch
            .iter()
            .filter(|o| !matches!(o, Outbound::Raw(_)))
            .count();
        drop(batch);
        match transport::try_write_all(stream, &wbuf) {
            Ok(n) if n == wbuf.len() => {
                self.sent(messages, wbuf.len());
                Ok(())
            }
            Ok(n) => {
                let bytes = wbuf.len();
                wbuf.drain(..n);
                Err(Blocked::Rest(wbuf, messages, bytes))
            }
            Err(_) => Err(Blocked::Failed),
        }
    }

    /// A batch is out: one add per write call, not per message.
    fn sent(&self, messages: usize, bytes: usize) {
        self.ctl.written();
        self.env.metrics.stats.sent(self.transport, messages, bytes);
    }

    /// Writes the rest of a batch the socket did not take at once (`batch`: the whole
    /// batch's messages and bytes), waiting at most `timeout_ms`; `None` when the session
    /// ended meanwhile.
    async fn wait_write<C: Connection>(
        &self,
        stream: &C,
        rest: Vec<u8>,
        batch: (usize, usize),
    ) -> Option<std::io::Result<bool>> {
        let limit = self.env.config.timeout();
        let written = tokio::select! {
            biased;
            _ = self.ctl.signal(false) => None,
            w = transport::write_all(stream, &rest, limit) => Some(w),
        };
        if let Some(Ok(true)) = written {
            // Counted whole, as when the socket takes a batch at once.
            self.sent(batch.0, batch.1);
        }
        written
    }

    /// Whatever was queued (unless the client is too slow to take it), then the reason,
    /// then a WebSocket close frame.
    async fn farewell<C: Connection>(&self, stream: &C, limit: Duration) {
        let mut wbuf = Vec::new();
        let left = self.ctl.close_outbox();
        let ending = self.ctl.ending();
        let stuck = matches!(
            &ending,
            Ending::Fault {
                error: ClientError {
                    code: ErrorCode::SlowConsumer | ErrorCode::Timeout,
                    ..
                },
                ..
            }
        );
        let mut close_code = None;
        let mut ws_close = None;
        let mut messages = 0;
        match &ending {
            Ending::PeerClosed => return,
            Ending::Fault {
                error: fault,
                ws_close: chosen,
            } => {
                ws_close = *chosen;
                if !stuck {
                    for out in &left {
                        self.encode(out, &mut wbuf);
                    }
                    messages = left.len();
                }
                let code = fault.code;
                self.env.metrics.stats.count_error(ErrorKind::Session, code);
                tracing::info!(session_id = self.session_id, code = code.name(), detail = %fault.message, "fatal error to client");
                let msg = fault.clone().into_message(0);
                transport::encode(self.transport, &msg, &mut wbuf);
                messages += 1;
                close_code = Some(code);
            }
            Ending::ClientClosed => {}
            Ending::Forced => close_code = Some(ErrorCode::ServerShutdown),
        }
        transport::encode_close(
            self.transport,
            ws_close.unwrap_or_else(|| transport::ws_close_code(close_code)),
            &mut wbuf,
        );
        if !wbuf.is_empty()
            && matches!(
                transport::write_all(stream, &wbuf, FAREWELL.min(limit)).await,
                Ok(true)
            )
        {
            self.env
                .metrics
                .stats
                .sent(self.transport, messages, wbuf.len());
        }
    }

    fn encode(&self, out: &Outbound, wbuf: &mut Vec<u8>) {
        match out {
            Outbound::Msg(m) => transport::encode(self.transport, m, wbuf),
            Outbound::WsPong(p) => transport::encode_pong(self.transport, p, wbuf),
            Outbound::Raw(b) => wbuf.extend_from_slice(b),
        }
    }
}
