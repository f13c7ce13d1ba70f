//! The read loop (session floor): reads what the socket has, decodes whole frames,
//! hands each message to the dispatch, pushes the idle deadline, and runs one request at
//! a time beside it.

use std::cell::RefCell;
use std::task::Poll;

use bytes::Bytes;

use super::{CommandFuture, Core};
use crate::command::{CommandError, Outcome};
use crate::connection::Connection;
use crate::error::ClientError;
use crate::limits::Budget;
use crate::outbox::{Ending, Outbound, Signal};
use crate::transport::{self, Decoder, Incoming};

thread_local! {
    /// The read buffer of every session polled on this thread. An array on the stack
    /// would be zeroed at every read: 8 KiB of stores per input, the largest item in
    /// callgrind's count (docs/flame/README.md). Held by no session between reads, so an
    /// idle connection still holds no read buffer.
    static READ_BUF: RefCell<Box<[u8]>> =
        RefCell::new(vec![0; transport::READ_CHUNK].into_boxed_slice());
}

/// What woke the read loop.
enum Woke {
    Signal(Signal),
    Outcome(u32, Result<Outcome, CommandError>),
    Readable(std::io::Result<()>),
}

pub(super) struct Reader {
    pub(super) decoder: Decoder,
    /// Bytes of an incomplete frame, kept between reads; empty and unallocated otherwise.
    pub(super) rbuf: Vec<u8>,
    /// The request running now, if any (one at a time; the rest wait in the core's queue).
    pub(super) pending: Option<CommandFuture>,
    pub(super) core: Core,
}

impl Reader {
    /// The read loop. Not an `async fn` (whose arguments the coroutine would store twice).
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice in every session's state"
    )]
    pub(super) fn run<'a, C: Connection>(
        &'a mut self,
        stream: &'a C,
    ) -> impl std::future::Future<Output = ()> + 'a {
        async move {
            if !self.rbuf.is_empty() {
                // Frames that arrived with the WebSocket upgrade request.
                let bytes = self.rbuf.len();
                if let Err(e) = self.process_buffered() {
                    self.core.link.ctl.end(e);
                }
                if self.core.messages != 0 {
                    self.core.push_deadline();
                }
                let env = &self.core.env;
                env.metrics
                    .stats
                    .received(self.core.transport, self.core.messages, bytes);
            }
            loop {
                if self.pending.is_none() {
                    self.pending = self.core.next_command();
                }
                // Polled by hand, in this order (the signal first): a `select!` over futures
                // would keep each one (a readiness waiter, the signal, the command) in every
                // session's state, and a closure over `self` keeps one reference.
                let woke = std::future::poll_fn(|cx| self.poll_woke(stream, cx)).await;
                let step = match woke {
                    Woke::Signal(Signal::Ended) => break,
                    Woke::Signal(Signal::Drain) => {
                        self.core.on_shutdown();
                        Ok(())
                    }
                    Woke::Signal(Signal::Seat) => {
                        self.core.take_match_seat();
                        Ok(())
                    }
                    Woke::Outcome(req, result) => {
                        self.pending = None;
                        self.core.on_outcome(req, result);
                        Ok(())
                    }
                    Woke::Readable(Err(_)) => Err(Ending::PeerClosed),
                    Woke::Readable(Ok(())) => self.on_readable(stream),
                };
                if let Err(ending) = step {
                    self.core.link.ctl.end(ending);
                    break;
                }
            }
            self.pending = None;
            // Out of the matchmaking queue; a seat a match gave it just now is left too.
            if let Some(m) = self.core.env.queue.forget(self.core.link.session_id) {
                self.core.membership = Some(Box::new(m));
            }
            let ending = self.core.link.ctl.ending();
            self.core.leave_room(&ending);
        }
    }

    /// What the loop waits for: an end, drain or seat signal, the running request's
    /// outcome, or the socket readable.
    fn poll_woke<C: Connection>(
        &mut self,
        stream: &C,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Woke> {
        let drain = !self.core.draining;
        if let Poll::Ready(signal) = self.core.link.ctl.poll_signal_or_seat(cx, drain) {
            return Poll::Ready(Woke::Signal(signal));
        }
        if let Some(command) = self.pending.as_mut() {
            if let Poll::Ready((req, result)) = command.as_mut().poll(cx) {
                return Poll::Ready(Woke::Outcome(req, result));
            }
        }
        stream.poll_read_ready(cx).map(Woke::Readable)
    }

    /// Reads what the socket has and handles every complete frame in it.
    fn on_readable<C: Connection>(&mut self, stream: &C) -> Result<(), Ending> {
        READ_BUF.with(|cell| match cell.try_borrow_mut() {
            Ok(mut chunk) => self.read_into(stream, &mut chunk),
            // Not re-entered (handling a message never reads another socket); if it ever
            // were, a buffer of its own keeps it correct.
            Err(_) => self.read_into(stream, &mut vec![0; transport::READ_CHUNK]),
        })
    }

    fn read_into<C: Connection>(&mut self, stream: &C, chunk: &mut [u8]) -> Result<(), Ending> {
        let n = match stream.try_read(chunk) {
            Ok(0) => return Err(Ending::PeerClosed),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(_) => return Err(Ending::PeerClosed),
        };
        if n < chunk.len() {
            // A short read emptied the socket. Clear tokio's readiness now, without the
            // extra read that would only return EAGAIN: a third of all read calls under
            // load. Safe: readiness is only cleared if no new event arrived since.
            stream.clear_read_ready();
        }
        let handled = self.core.messages;
        if self.rbuf.is_empty() {
            // The common case: whole frames, decoded straight from the stack buffer.
            let used = self.process(&mut chunk[..n])?;
            self.rbuf.extend_from_slice(&chunk[used..n]);
        } else {
            self.rbuf.extend_from_slice(&chunk[..n]);
            self.process_buffered()?;
        }
        let messages = self.core.messages.wrapping_sub(handled);
        // One add per read call, not per message: cheap enough for the hot path.
        self.core
            .env
            .metrics
            .stats
            .received(self.core.transport, messages, n);
        if messages != 0 {
            self.core.push_deadline();
        }
        Ok(())
    }

    fn process_buffered(&mut self) -> Result<(), Ending> {
        let mut buf = std::mem::take(&mut self.rbuf);
        let used = self.process(&mut buf)?;
        if used < buf.len() {
            buf.drain(..used);
            self.rbuf = buf;
        }
        Ok(())
    }

    /// Handles every complete frame at the start of `buf`; returns the bytes they took.
    fn process(&mut self, buf: &mut [u8]) -> Result<usize, Ending> {
        let mut at = 0;
        while at < buf.len() {
            let decoded = self
                .decoder
                .decode(&mut buf[at..])
                .map_err(|f| Ending::Fault {
                    error: ClientError::new(f.code, f.message),
                    ws_close: f.ws_close,
                })?;
            let Some((n, incoming)) = decoded else { break };
            at += n;
            match incoming {
                Incoming::Message(body) => self.core.on_message(body)?,
                Incoming::Ping(p) => {
                    if self.core.allow(Budget::Command, 0, "WebSocket ping")? {
                        self.core
                            .link
                            .send_in_task(Outbound::WsPong(Bytes::copy_from_slice(p)));
                    }
                }
                // Pongs and fragments cost a decode each: they count like requests.
                Incoming::Nothing => {
                    self.core
                        .allow(Budget::Command, 0, "WebSocket control frame")?;
                }
                Incoming::Close => return Err(Ending::ClientClosed),
            }
            if self.core.link.ctl.is_ended() {
                break;
            }
        }
        Ok(at)
    }
}
