//! The state the [`Client`](crate::Client) handle and the connection task share.
//!
//! One lock, never held across an `.await`, guards what both sides change: the bytes
//! waiting to be written, the requests waiting for a reply, the current session's
//! `welcome` and room. The handle encodes messages straight into the outgoing buffer and
//! wakes the task only when the buffer was empty, so an input costs one lock, one encode
//! and at most one wake-up, and the task writes everything queued in one system call.

use std::sync::{Mutex, MutexGuard, PoisonError};

use rally_protocol::ClientMessage;
use tokio::sync::{oneshot, Notify};

use crate::client::{Room, Welcome};
use crate::config::Transport;
use crate::error::Error;
use crate::events::{Event, EventQueue};
use crate::wire::Framing;

/// What the handle and the task share.
#[derive(Debug)]
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the connection task: bytes to write, or a close asked for.
    pub(crate) wake: Notify,
    /// Events waiting for the application.
    pub(crate) events: Mutex<EventQueue>,
}

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// A session is open; messages are written as they come.
    Connected,
    /// The connection dropped and a new one is being opened. Requests wait in the buffer
    /// for it; inputs are refused.
    Reconnecting,
    /// `close()` was called or the server is shutting down: what is queued is written,
    /// then the connection is closed.
    Closing,
    /// Over for good.
    Closed,
}

/// What a pending request is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// The reply to the request with this id.
    Req(u32),
    /// The `pong` with this nonce.
    Pong(u64),
}

/// A successful reply.
#[derive(Debug)]
pub(crate) enum Reply {
    Joined(Room),
    /// Cluster mode: the seat is on another node (revision 4).
    Redirect(Redirect),
    Left(u64),
    Ok,
    Pong,
    Session(crate::Session),
    Rooms(crate::client::RoomPage),
    Spectating(crate::client::Spectating),
}

/// A cluster `redirect` (`docs/protocol.md` section 11b): where the seat is, and the
/// ticket that claims it there ([`Connection::claim_seat`](crate::Connection::claim_seat)).
#[derive(Debug, Clone)]
pub struct Redirect {
    /// The node's raw TCP address, `host:port`.
    pub tcp: String,
    /// The node's WebSocket address, `host:port` (path `/ws`).
    pub ws: String,
    /// The seat ticket: a secret, claimed once.
    pub ticket: rally_protocol::Redacted<String>,
}

/// A move to another node the handle asked of the connection task, and where the task
/// says how it went.
#[derive(Debug)]
pub(crate) struct Move {
    pub(crate) addr: String,
    pub(crate) done: oneshot::Sender<Result<(), Error>>,
}

/// A request waiting for its reply.
#[derive(Debug)]
pub(crate) struct Pending {
    key: Key,
    tx: oneshot::Sender<Result<Reply, Error>>,
}

/// The shared state proper.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) phase: Phase,
    /// Whole frames waiting for the task to write them.
    pub(crate) out: Vec<u8>,
    framing: Framing,
    /// Bound on `out`.
    max_outbound: usize,
    /// Requests sent (or queued) and not answered; a handful at most.
    pending: Vec<Pending>,
    /// The current session's `welcome`: its limits and resume token.
    pub(crate) welcome: Welcome,
    /// The room this session is in, if any.
    pub(crate) room: Option<Room>,
    /// The last `login`'s session token, sent in the `hello` of each reconnection.
    pub(crate) session_token: Option<String>,
    /// Whether this player waits in the matchmaking queue: an unprompted `joined` is
    /// then its match, not a resume.
    pub(crate) queued: bool,
    /// The `claim_seat` request of a queue match on another node (a `redirect` with req
    /// 0): its `joined` is the match, told as [`Event::Matched`](crate::Event::Matched).
    pub(crate) claiming: Option<u32>,
    /// A move to another node (a cluster redirect) the task is to make.
    pub(crate) move_to: Option<Move>,
    next_req: u32,
    /// Nonce 0 is the task's keep-alive; the application's pings count from 1.
    next_nonce: u64,
}

impl Shared {
    pub(crate) fn new(
        welcome: Welcome,
        transport: Transport,
        event_capacity: usize,
        max_outbound: usize,
    ) -> Shared {
        Shared {
            inner: Mutex::new(Inner {
                phase: Phase::Connected,
                out: Vec::new(),
                framing: Framing::new(transport),
                max_outbound,
                pending: Vec::new(),
                welcome,
                room: None,
                session_token: None,
                move_to: None,
                next_req: 0,
                next_nonce: 0,
                queued: false,
                claiming: None,
            }),
            wake: Notify::new(),
            events: Mutex::new(EventQueue::new(event_capacity)),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind, still consistent
        // enough to close the connection with.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands an event to the application.
    pub(crate) fn emit(&self, event: Event) {
        let waker = self
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The end: no more writes, every waiting request fails, and the events stream
    /// yields [`Event::Closed`] then ends.
    pub(crate) fn finish(&self, error: Option<Error>) {
        {
            let mut inner = self.lock();
            inner.phase = Phase::Closed;
            inner.out = Vec::new();
            inner.fail_pending(error.as_ref().unwrap_or(&Error::Closed));
        }
        let waker = {
            let mut q = self.events.lock().unwrap_or_else(PoisonError::into_inner);
            if q.is_ended() {
                return;
            }
            let pushed = q.push(Event::Closed(error));
            q.end().or(pushed)
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Inner {
    /// Queues `msg` for the task. Returns whether the task must be woken (the buffer was
    /// empty, so no wake-up is on its way).
    pub(crate) fn push(&mut self, msg: &ClientMessage<'_>) -> Result<bool, Error> {
        let before = self.out.len();
        let max_body = self.welcome.max_message_bytes as usize;
        self.framing.push(&mut self.out, msg, max_body)?;
        // One message always fits in an empty buffer, however large.
        if before > 0 && self.out.len() > self.max_outbound {
            self.out.truncate(before);
            return Err(Error::Backpressure);
        }
        Ok(before == 0)
    }

    /// A fresh request id (never 0, which the protocol refuses).
    pub(crate) fn next_req(&mut self) -> u32 {
        self.next_req = self.next_req.wrapping_add(1).max(1);
        self.next_req
    }

    /// A fresh ping nonce (never 0, the keep-alive's).
    pub(crate) fn next_nonce(&mut self) -> u64 {
        self.next_nonce = self.next_nonce.wrapping_add(1).max(1);
        self.next_nonce
    }

    /// Registers a request; its reply comes through `tx`.
    pub(crate) fn wait_for(&mut self, key: Key, tx: oneshot::Sender<Result<Reply, Error>>) {
        self.pending.push(Pending { key, tx });
    }

    /// Forgets a request nobody waits for any more (timed out or cancelled).
    pub(crate) fn forget(&mut self, key: Key) {
        self.pending.retain(|p| p.key != key);
    }

    /// Answers the request waiting for `key`, if any still is.
    pub(crate) fn resolve(&mut self, key: Key, reply: Result<Reply, Error>) {
        if let Some(i) = self.pending.iter().position(|p| p.key == key) {
            let _ = self.pending.swap_remove(i).tx.send(reply);
        }
    }

    /// Fails every waiting request with `error`.
    pub(crate) fn fail_pending(&mut self, error: &Error) {
        for p in self.pending.drain(..) {
            let _ = p.tx.send(Err(error.clone()));
        }
    }
}
