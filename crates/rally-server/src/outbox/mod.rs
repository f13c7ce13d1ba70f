//! The outbox (infra floor): how anything reaches a session — its bounded outbound
//! queue, its end reason and drain signal ([`SessionCtl`]), the [`SessionLink`] a room or
//! a command holds, and the registry of live sessions shutdown and the admin API reach.
//!
//! It sits below both the session (which drains the queue into its socket) and the room
//! (which fills it every tick), so neither imports the other.
//!
//! A room's state usually skips the queue: when nothing is queued or being written
//! before it, [`SessionLink::send_now`] writes it to the socket from the room's task
//! (the session attached it, [`SessionCtl::attach`]), so a state costs one system call
//! and no wake-up of the session. Only when the socket would block does the state go
//! through the queue and the writer, with its `timeout_ms` and `queue_capacity` bounds.
//!
//! Reads go the same way: a session seated in a room lends its socket's reads to the room
//! ([`Lend`], [`SessionCtl::lend`]) while it has nothing but inputs to read, and stops
//! waiting for its socket. The room reads every lent socket once at the start of its tick
//! ([`SessionCtl::with_lend`]), so an input costs no wake-up of the session either; what
//! the room may not handle itself it gives back ([`Lend::give_back`]) with the bytes.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use rally_protocol::{ErrorCode, ServerMessage};

use crate::connection::Connection;
use crate::error::ClientError;
use crate::limits::InputCell;
use crate::transport::{self, Transport};

mod registry;
mod token;

pub(crate) use registry::{millis_since, LiveSessions, Profile};
pub(crate) use token::ResumeToken;

/// Something for the writer to send.
#[derive(Debug)]
pub(crate) enum Outbound {
    Msg(ServerMessage),
    /// A WebSocket pong answering a client's ping.
    WsPong(Bytes),
    /// Framed bytes: the tail of a message the socket took only part of.
    Raw(Bytes),
}

/// A socket a room may write to (and, lent, read from) without waiting: any
/// [`Connection`], behind `dyn` so the outbox need not be generic.
pub(crate) trait DirectSocket: Send + Sync {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn clear_read_ready(&self);
}

impl<C: Connection> DirectSocket for C {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        Connection::try_write(self, buf)
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        Connection::try_read(self, buf)
    }

    fn clear_read_ready(&self) {
        Connection::clear_read_ready(self);
    }
}

/// A seated session's reads, lent to its room (see the module docs). The session lends
/// them only while it has nothing of its own to read: handshaken, seated, no partial
/// frame kept, not draining. The room reads the socket at the start of each tick and
/// handles what it can exactly as the session would (whole `input` messages within
/// `input_rate`, with this cell); at the first thing it may not handle (a request, a
/// ping, a WebSocket control frame, a partial frame, an input over the rate, the end of
/// the stream or an error) it stops and gives the reads back with the bytes from there
/// on, unhandled, for the session to handle in order.
#[derive(Debug)]
pub(crate) struct Lend {
    /// The room and seat the reads are lent to; no other room reads them.
    pub(crate) room_id: u64,
    pub(crate) player: u32,
    /// The input budget's cell: inputs the room admits count as the session's.
    pub(crate) input: InputCell,
    /// Set when the room gave the reads back: the session takes them (and `unread`) at
    /// its next wake-up.
    given_back: bool,
    /// Bytes the room read and did not handle, oldest first.
    pub(crate) unread: Vec<u8>,
}

impl Lend {
    pub(crate) fn new(room_id: u64, player: u32, input: InputCell) -> Self {
        Lend {
            room_id,
            player,
            input,
            given_back: false,
            unread: Vec::new(),
        }
    }

    /// The room stops reading: the session reads for itself again, starting with
    /// `unread` (the bytes from the first message the room did not handle).
    pub(crate) fn give_back(&mut self, unread: &[u8]) {
        self.given_back = true;
        self.unread.extend_from_slice(unread);
    }
}

impl std::fmt::Debug for dyn DirectSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("socket")
    }
}

/// What [`SessionLink::send_now`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Written to the socket (`bytes` of it; the rest, if any, queued for the writer).
    Written { transport: Transport, bytes: usize },
    /// Queued for the writer.
    Queued,
    /// The session is gone or was ended.
    Gone,
}

/// Why a session ended.
#[derive(Debug, Clone)]
pub(crate) enum Ending {
    /// The client closed the socket (or it broke).
    PeerClosed,
    /// The client sent a WebSocket close frame; it gets one back.
    ClientClosed,
    /// A fatal error the client is told about; `ws_close` is the WebSocket close status
    /// when the codec chose it (1002 protocol error, 1007 bad UTF-8, 1009 too big: see
    /// `transport::FrameFault`), else the close follows the error's code.
    Fault {
        error: ClientError,
        ws_close: Option<u16>,
    },
    /// The shutdown grace period ran out.
    Forced,
}

impl Ending {
    pub(crate) fn fault(code: ErrorCode, message: impl Into<String>) -> Self {
        Ending::Fault {
            error: ClientError::new(code, message),
            ws_close: None,
        }
    }
}

/// How a session is ended or told to drain from anywhere (its loops, its room, the
/// server): the first end reason wins.
///
/// Deliberately not a `CancellationToken`: the session's loops check it on every wake-up,
/// and here that check is two atomic loads and no lock.
#[derive(Debug)]
pub(crate) struct SessionCtl {
    /// Boxed: set once, at the end, and inline it would be 64 bytes of every session.
    ending: OnceLock<Box<Ending>>,
    draining: AtomicBool,
    /// A matchmaking match seated the player in a new room: the session picks the seat
    /// up from the queue (`Signal::Seat`).
    seat: AtomicBool,
    /// The session task's waker. The read and write loops run in the same task, so the
    /// one slot wakes both.
    waker: AtomicWaker,
    /// Messages waiting for the writer.
    outbox: Mutex<Outbox>,
    /// When the next complete message is due, for [`LiveSessions::sweep`]: milliseconds
    /// since the registry's epoch, shifted left by one, with the low bit set once the
    /// handshake is done (it picks the timeout's message). One atomic instead of a timer
    /// per session: a `Sleep` is 112 bytes of every session's state and a timer-wheel
    /// entry besides.
    deadline: AtomicU64,
    /// The directory's view of the session, once handshaken ([`LiveSessions::set_profile`]).
    profile: Mutex<Option<Profile>>,
}

/// The outbound queue: bounded by `queue_capacity`, and allocated only while it holds
/// something, so an idle connection costs no queue memory. (A channel would keep a
/// fixed block of slots per connection whether used or not.)
#[derive(Debug)]
struct Outbox {
    queue: VecDeque<Outbound>,
    capacity: u32,
    /// Set when the session is over: senders learn the player is gone.
    closed: bool,
    /// The session's socket, for [`SessionLink::send_now`] (and a lent read); dropped
    /// when the outbox closes, so the session gets its socket back to close it.
    direct: Option<std::sync::Arc<dyn DirectSocket>>,
    /// The socket's framing (apart from it: in the flags' padding, not a word of its own).
    transport: Transport,
    /// The writer took a batch and has not finished writing it: a message written now
    /// would overtake it.
    writing: bool,
    /// The reads, while lent to the room (boxed: only seated sessions have one).
    lend: Option<Box<Lend>>,
}

/// What [`SessionCtl::signal`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Ended,
    Drain,
    /// A match seated the player: take the seat from the queue.
    Seat,
}

impl SessionCtl {
    pub(crate) fn new(queue_capacity: usize) -> Self {
        SessionCtl {
            ending: OnceLock::new(),
            draining: AtomicBool::new(false),
            seat: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            outbox: Mutex::new(Outbox {
                queue: VecDeque::new(),
                capacity: u32::try_from(queue_capacity).unwrap_or(u32::MAX),
                closed: false,
                direct: None,
                transport: Transport::Tcp,
                writing: false,
                lend: None,
            }),
            deadline: AtomicU64::new(u64::MAX),
            profile: Mutex::new(None),
        }
    }

    fn profile(&self) -> MutexGuard<'_, Option<Profile>> {
        // Every critical section is a read or one assignment: still consistent if poisoned.
        self.profile.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next complete message is due `ms` milliseconds after the registry's epoch
    /// ([`LiveSessions::millis`]); `handshaken` says whether `hello` has been received.
    pub(crate) fn set_deadline(&self, ms: u64, handshaken: bool) {
        let packed = ms.saturating_mul(2) | u64::from(handshaken);
        self.deadline.store(packed, Ordering::Relaxed);
    }

    /// Ends the session with `TIMEOUT` if its deadline is at or before `now_ms`.
    fn expire(&self, now_ms: u64) -> bool {
        let packed = self.deadline.load(Ordering::Relaxed);
        if packed == u64::MAX || packed >> 1 > now_ms || self.is_ended() {
            return false;
        }
        let message = if packed & 1 == 1 {
            "no message received within timeout_ms"
        } else {
            "no hello received within handshake_timeout_ms"
        };
        self.end(Ending::fault(ErrorCode::Timeout, message));
        true
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        // Every critical section is a push or a take: a poisoned lock is still consistent.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes everything queued; pending (woken by the next push) while nothing is.
    pub(crate) fn poll_next_batch(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<VecDeque<Outbound>> {
        let mut outbox = self.outbox();
        if outbox.queue.is_empty() {
            // Registered under the lock: a push after this sees the new waker.
            self.waker.register(cx.waker());
            Poll::Pending
        } else {
            outbox.writing = true;
            Poll::Ready(std::mem::take(&mut outbox.queue))
        }
    }

    /// The batch taken by [`poll_next_batch`](Self::poll_next_batch) is written: rooms may write
    /// to the socket directly again.
    pub(crate) fn written(&self) {
        self.outbox().writing = false;
    }

    /// Lets rooms write this session's messages to `socket` themselves while nothing is
    /// queued ([`SessionLink::send_now`]).
    pub(crate) fn attach(&self, socket: std::sync::Arc<dyn DirectSocket>, transport: Transport) {
        let mut outbox = self.outbox();
        if !outbox.closed {
            outbox.direct = Some(socket);
            outbox.transport = transport;
        }
    }

    /// Closes the queue and returns what was left in it.
    pub(crate) fn close_outbox(&self) -> VecDeque<Outbound> {
        let mut outbox = self.outbox();
        outbox.closed = true;
        outbox.direct = None;
        outbox.lend = None;
        std::mem::take(&mut outbox.queue)
    }

    /// Session side: lends the reads to the room `lend` names. False (nothing lent) when
    /// the socket is not attached or the outbox is closed.
    pub(crate) fn lend(&self, lend: Lend) -> bool {
        let mut outbox = self.outbox();
        if outbox.closed || outbox.direct.is_none() {
            return false;
        }
        outbox.lend = Some(Box::new(lend));
        true
    }

    /// Session side: takes the reads back (given back by the room or not): from now on
    /// the room does not read the socket.
    pub(crate) fn take_lend(&self) -> Option<Box<Lend>> {
        self.outbox().lend.take()
    }

    /// Session side: whether the room gave the reads back.
    pub(crate) fn lend_given_back(&self) -> bool {
        self.outbox().lend.as_ref().is_some_and(|l| l.given_back)
    }

    /// Room side: runs `read` with the socket and the lend, if the reads are lent to seat
    /// `player` of room `room_id` and not given back. Holds the outbox's lock meanwhile,
    /// so the session cannot take the reads back halfway through a read; wakes the
    /// session if `read` gave them back.
    pub(crate) fn with_lend<R>(
        &self,
        room_id: u64,
        player: u32,
        read: impl FnOnce(&dyn DirectSocket, Transport, &mut Lend) -> R,
    ) -> Option<R> {
        let mut outbox = self.outbox();
        let outbox = &mut *outbox;
        let transport = outbox.transport;
        let (Some(lend), Some(socket)) = (outbox.lend.as_deref_mut(), &outbox.direct) else {
            return None;
        };
        if lend.given_back || lend.room_id != room_id || lend.player != player {
            return None;
        }
        let r = read(&**socket, transport, lend);
        if lend.given_back {
            self.waker.wake();
        }
        Some(r)
    }

    /// Room side: the seat changed hands, was left or freed, or the room ended: gives the
    /// reads back if they are lent to seat `player` of room `room_id`.
    pub(crate) fn give_back_lend(&self, room_id: u64, player: u32) {
        let _ = self.with_lend(room_id, player, |_, _, lend| lend.give_back(&[]));
    }

    pub(crate) fn end(&self, ending: Ending) {
        // Checked first: a repeated end allocates nothing.
        if self.ending.get().is_none() {
            let _ = self.ending.set(Box::new(ending));
        }
        self.waker.wake();
    }

    /// The server is shutting down: tell the client, keep serving until it closes.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// A new seat waits for the session (the matchmaking queue placed it).
    pub(crate) fn seat_ready(&self) {
        self.seat.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether an end was recorded.
    pub(crate) fn is_ended(&self) -> bool {
        self.ending.get().is_some()
    }

    pub(crate) fn ending(&self) -> Ending {
        self.ending
            .get()
            .map_or(Ending::PeerClosed, |e| Ending::clone(e))
    }

    /// Completes when the session ends, or (if `drain` is asked for) when draining starts.
    pub(crate) fn signal(&self, drain: bool) -> impl Future<Output = Signal> + '_ {
        self.signal_with(drain, false)
    }

    fn signal_with(&self, drain: bool, seat: bool) -> impl Future<Output = Signal> + '_ {
        std::future::poll_fn(move |cx| self.poll_signal(cx, drain, seat))
    }

    /// Ready when the session ends, when draining starts (if `drain`), or when a match
    /// seated the player; a poll, for a loop that keeps no future.
    pub(crate) fn poll_signal_or_seat(
        &self,
        cx: &mut std::task::Context<'_>,
        drain: bool,
    ) -> Poll<Signal> {
        self.poll_signal(cx, drain, true)
    }

    /// Ready when the session ends, when draining starts (if `drain`), or when a match
    /// seated the player (if `seat`); a poll, for a loop that keeps no future.
    pub(crate) fn poll_signal(
        &self,
        cx: &mut std::task::Context<'_>,
        drain: bool,
        seat: bool,
    ) -> Poll<Signal> {
        {
            let check = || {
                if self.is_ended() {
                    Some(Signal::Ended)
                } else if drain && self.draining.load(Ordering::Acquire) {
                    Some(Signal::Drain)
                } else if seat
                    && self.seat.load(Ordering::Acquire)
                    // Loaded first: a swap on every wake-up would write the cache line.
                    && self.seat.swap(false, Ordering::AcqRel)
                {
                    Some(Signal::Seat)
                } else {
                    None
                }
            };
            if let Some(s) = check() {
                return Poll::Ready(s);
            }
            self.waker.register(cx.waker());
            // Checked again: a signal between the first check and the registration
            // found no waker to wake.
            match check() {
                Some(s) => Poll::Ready(s),
                None => Poll::Pending,
            }
        }
    }
}

/// What a room or a command holds to reach a session.
#[derive(Clone)]
pub(crate) struct SessionLink {
    pub(crate) session_id: u64,
    pub(crate) ctl: Arc<SessionCtl>,
}

impl std::fmt::Debug for SessionLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The resume token is left out: it lets whoever holds it act as the player.
        f.debug_struct("SessionLink")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl SessionLink {
    /// This session's resume token, sent in `welcome` and registered by the room that
    /// seats it. A secret: never logged.
    ///
    /// Derived, not stored: the first 128 bits of SHA-256 over a random per-process key
    /// and the session id, so it is as unguessable as 128 random bits (the key never
    /// leaves the process; the input has a fixed length), unique per session, and costs
    /// a session no memory (a stored token was a 48-byte allocation per connection).
    pub(crate) fn resume_token(&self) -> Option<ResumeToken> {
        ResumeToken::derive(self.session_id)
    }

    /// Queues a message without waiting. A full queue ends the session as a slow consumer
    /// rather than growing memory. Returns false when the session is gone or was ended.
    pub(crate) fn send(&self, msg: Outbound) -> bool {
        self.push(msg, true)
    }

    /// [`send`](Self::send) from the session's own reader, which runs in the same task
    /// just before the writer (the session polls its reader first): the writer sees the message in the
    /// same poll, so waking the task would only cost a second, empty poll and a trip to
    /// the back of the run queue.
    pub(crate) fn send_in_task(&self, msg: Outbound) -> bool {
        self.push(msg, false)
    }

    /// Sends `msg` now: written straight to the socket from the caller's task when
    /// nothing is queued or being written before it and the socket takes it (a tail it
    /// does not take is queued for the writer), else queued like [`send`](Self::send).
    /// `scratch` is the caller's reused encoding buffer.
    ///
    /// The outbox lock is held across the write so that the writer cannot start a batch
    /// in between: order is kept. The write never waits, so the lock is short.
    pub(crate) fn send_now(&self, msg: ServerMessage, scratch: &mut Vec<u8>) -> Sent {
        let mut outbox = self.ctl.outbox();
        if outbox.closed {
            return Sent::Gone;
        }
        if let (Some(socket), true) = (&outbox.direct, outbox.queue.is_empty() && !outbox.writing) {
            let transport = outbox.transport;
            scratch.clear();
            transport::encode(transport, &msg, scratch);
            match socket.try_write(scratch) {
                Ok(n) if n == scratch.len() => {
                    return Sent::Written {
                        transport,
                        bytes: n,
                    }
                }
                Ok(n) if n > 0 => {
                    // A torn frame: its tail goes out first, through the writer.
                    outbox
                        .queue
                        .push_back(Outbound::Raw(Bytes::copy_from_slice(&scratch[n..])));
                    drop(outbox);
                    self.ctl.waker.wake();
                    return Sent::Written {
                        transport,
                        bytes: n,
                    };
                }
                // Would block (or failed: the writer meets the error and ends the
                // session): the queue takes it.
                _ => {}
            }
        }
        drop(outbox);
        if self.push(Outbound::Msg(msg), true) {
            Sent::Queued
        } else {
            Sent::Gone
        }
    }

    fn push(&self, msg: Outbound, wake: bool) -> bool {
        {
            let mut outbox = self.ctl.outbox();
            if outbox.closed {
                return false;
            }
            if outbox.queue.len() < outbox.capacity as usize {
                outbox.queue.push_back(msg);
                drop(outbox);
                if wake {
                    self.ctl.waker.wake();
                }
                return true;
            }
        }
        self.ctl.end(Ending::fault(
            ErrorCode::SlowConsumer,
            "outbound queue full: the client is not reading fast enough",
        ));
        false
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn timeout_message(ctl: &SessionCtl) -> Option<String> {
        match ctl.ending.get().map(|e| &**e) {
            Some(Ending::Fault { error, .. }) if error.code == ErrorCode::Timeout => {
                Some(error.message.clone())
            }
            _ => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweep_ends_only_sessions_past_their_deadline_naming_the_bound() {
        let sessions = Arc::new(LiveSessions::default());
        let start = tokio::time::Instant::now();
        let (hello, quiet, busy) = (
            Arc::new(SessionCtl::new(4)),
            Arc::new(SessionCtl::new(4)),
            Arc::new(SessionCtl::new(4)),
        );
        let at = |ms| sessions.millis(start + Duration::from_millis(ms));
        hello.set_deadline(at(500), false);
        quiet.set_deadline(at(1000), true);
        busy.set_deadline(at(1000), true);
        for (id, ctl) in [(1, &hello), (2, &quiet), (3, &busy)] {
            sessions.insert(id, ctl.clone());
        }
        let stop = tokio_util::sync::CancellationToken::new();
        let sweep = tokio::spawn(
            sessions
                .clone()
                .sweep(Duration::from_millis(50), stop.clone()),
        );

        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(!hello.is_ended(), "ended before its deadline");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            timeout_message(&hello).as_deref(),
            Some("no hello received within handshake_timeout_ms")
        );
        // A message pushes the deadline: the busy session outlives the quiet one.
        busy.set_deadline(at(2000), true);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            timeout_message(&quiet).as_deref(),
            Some("no message received within timeout_ms")
        );
        assert!(!busy.is_ended());
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert!(busy.is_ended());
        // An end already recorded is kept: the sweep never overwrites the first reason.
        let kicked = Arc::new(SessionCtl::new(4));
        kicked.set_deadline(0, true);
        kicked.end(Ending::fault(ErrorCode::Kicked, "bye"));
        sessions.insert(4, kicked.clone());
        assert_eq!(sessions.expire(), 0);
        assert!(timeout_message(&kicked).is_none());
        stop.cancel();
        sweep.await.unwrap();
    }

    #[test]
    fn resume_tokens_are_128_bits_of_hex_and_one_per_session() {
        let link = |session_id| SessionLink {
            session_id,
            ctl: Arc::new(SessionCtl::new(1)),
        };
        let one = link(1).resume_token().expect("the system has randomness");
        let hex = one.to_hex();
        assert_eq!(hex.len(), 32);
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        // What a client presents reads back as the same token; nothing else does.
        assert_eq!(ResumeToken::parse(&hex), Some(one));
        assert_eq!(ResumeToken::parse(&hex.to_uppercase()), Some(one));
        for bad in [
            "",
            &hex[..31],
            &format!("{hex}0"),
            &format!("{}zz", &hex[..30]),
        ] {
            assert_eq!(ResumeToken::parse(bad), None, "{bad:?}");
        }
        assert_eq!(format!("{one:?}"), "ResumeToken(..)", "never shown");
        // The same session always presents the same token; another session another.
        assert_eq!(link(1).resume_token(), Some(one));
        assert_ne!(link(2).resume_token(), Some(one));
    }

    #[test]
    fn a_deadline_is_rounded_up_to_the_millisecond() {
        let sessions = LiveSessions::default();
        let epoch = sessions.epoch();
        assert_eq!(sessions.millis(epoch), 0);
        assert_eq!(sessions.millis(epoch + Duration::from_micros(1)), 1);
        assert_eq!(sessions.millis(epoch + Duration::from_millis(7)), 7);
    }
}
