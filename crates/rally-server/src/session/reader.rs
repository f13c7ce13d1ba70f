//! The read loop (session floor): reads what the socket has, decodes whole frames,
//! hands each message to the dispatch, pushes the idle deadline, and runs one request at
//! a time beside it. Seated in a room, it lends the reads to the room while it has only
//! inputs to read ([`crate::outbox::Lend`]) and takes them back at its next wake-up.

use std::task::Poll;

use bytes::Bytes;

use super::{CommandFuture, Core};
use crate::command::{CommandError, Outcome};
use crate::connection::Connection;
use crate::error::ClientError;
use crate::limits::Budget;
use crate::outbox::{Ending, Lend, Outbound, Signal};
use crate::transport::{self, Decoder, Incoming};

/// What woke the read loop.
enum Woke {
    Signal(Signal),
    Outcome(u32, Result<Outcome, CommandError>),
    Readable(std::io::Result<()>),
    /// The room gave the lent reads back.
    GivenBack,
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
                self.count(0, bytes);
            }
            loop {
                if self.pending.is_none() {
                    self.pending = self.core.next_command();
                }
                // Polled by hand, in this order (the signal first): a `select!` over futures
                // would keep each one (a readiness waiter, the signal, the command) in every
                // session's state, and a closure over `self` keeps one reference.
                let woke = std::future::poll_fn(|cx| self.poll_woke(stream, cx)).await;
                if matches!(woke, Woke::Signal(Signal::Ended)) {
                    break;
                }
                // Whatever woke it, a session that lent its reads takes them back first
                // (and handles what the room read and gave back), so everything it does
                // next sees its own reads, in order.
                let step = self.reclaim().and_then(|()| match woke {
                    Woke::Signal(Signal::Ended) | Woke::GivenBack => Ok(()),
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
                });
                if let Err(ending) = step {
                    self.core.link.ctl.end(ending);
                    break;
                }
                self.lend_reads();
            }
            if self.core.lent {
                self.core.lent = false;
                drop(self.core.link.ctl.take_lend());
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
        if self.core.lent {
            // The room reads the socket: no readiness waiter, so bytes arriving wake
            // nobody; the room's giving back wakes the session through its handle.
            return if self.core.link.ctl.lend_given_back() {
                Poll::Ready(Woke::GivenBack)
            } else {
                Poll::Pending
            };
        }
        stream.poll_read_ready(cx).map(Woke::Readable)
    }

    /// Lends the reads to the room if the session has nothing of its own to read: no
    /// partial frame kept, no WebSocket message in progress, and seated ([`Core::lend`]).
    fn lend_reads(&mut self) {
        if self.core.lent || !self.rbuf.is_empty() || !self.decoder.is_idle() {
            return;
        }
        if let Some(lend) = self.core.lend() {
            self.core.lent = self.core.link.ctl.lend(lend);
        }
    }

    /// Takes the lent reads back, with the input budget the room drew on, and handles the
    /// bytes the room read and did not handle.
    fn reclaim(&mut self) -> Result<(), Ending> {
        if !self.core.lent {
            return Ok(());
        }
        self.core.lent = false;
        let Some(lend) = self.core.link.ctl.take_lend() else {
            return Ok(());
        };
        self.core.limits.set_input_cell(lend.input);
        let Lend { unread, .. } = *lend;
        if unread.is_empty() {
            return Ok(());
        }
        if self.rbuf.is_empty() {
            self.rbuf = unread;
        } else {
            self.rbuf.extend_from_slice(&unread);
        }
        let handled = self.core.messages;
        self.process_buffered()?;
        // The room counted the bytes when it read them.
        self.count(handled, 0);
        Ok(())
    }

    /// Counts the messages handled since `core.messages` was `before`, with `bytes` read,
    /// in one metrics add (per read call, not per message: cheap enough for the hot
    /// path), and moves the idle deadline if any message arrived.
    fn count(&mut self, before: u64, bytes: usize) {
        let messages = self.core.messages.wrapping_sub(before);
        self.core
            .env
            .metrics
            .stats
            .received(self.core.transport, messages, bytes);
        if messages != 0 {
            self.core.push_deadline();
        }
    }

    /// Reads what the socket has and handles every complete frame in it.
    fn on_readable<C: Connection>(&mut self, stream: &C) -> Result<(), Ending> {
        transport::with_read_chunk(|chunk| self.read_into(stream, chunk))
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
        self.count(handled, n);
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
