//! One connection (session floor): a read loop and a write loop, joined by a bounded
//! outbound queue (the outbox).
//!
//! Both loops run in the connection's one task (joined, not spawned), sharing the
//! socket (a `TcpStream`, or any [`Connection`]) by reference: reads use `readable` +
//! `try_read` into a stack buffer, so an idle connection holds no read buffer; writes
//! drain the queue in batches and send each batch with one write. A room writes its
//! states to the socket itself while the queue is empty (`SessionLink::send_now`), so
//! the write loop carries replies and whatever a full socket made wait. Seated in a room
//! (at `tick_hz` >= 20), the read loop lends its reads to the room while it has only
//! inputs to read, and the room reads the socket once per tick (`outbox::Lend`): an
//! input then costs no wake-up of the session at all.
//!
//! Bounds: the first message must be a `hello` within `timeout_ms`; after that a complete
//! message must arrive at least every `timeout_ms` (bytes alone do not count, so a
//! trickle cannot hold a session); a write that cannot drain within `timeout_ms` ends the
//! session; an outbound queue that fills (`queue_capacity`) ends it as a slow consumer.
//! Every end is recorded once in [`SessionCtl`] and reported to the client when it still
//!
//! # Layout
//! - `env`: what every session is given ([`SessionEnv`]).
//! - `reader`: the read loop: socket reads, frames, the idle deadline.
//! - `hello`: the handshake.
//! - `dispatch`: one message: its rate limit, then its handling (inputs to the room,
//!   requests to the queue).
//! - `requests`: the request queue: running commands, applying their outcomes.
//! - `writer`: the write loop and the farewell.
//! - this file: the session task's run and lifecycle: start, end, leaving the room.

mod dispatch;
mod env;
mod hello;
mod reader;
mod requests;
mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use rally_protocol::{ErrorCode, ServerMessage};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::accounts::SessionAccount;
use crate::command::{CommandError, Outcome};
use crate::connection::Connection;
use crate::error::ClientError;
use crate::limits::{AddressSlot, MessageLimits};
use crate::outbox::{Ending, Lend, Outbound, SessionCtl, SessionLink};
use crate::room_handle::{Control, Membership, Watching};
use crate::transport::{self, Decoder, Transport};
use reader::Reader;
use writer::Writer;

pub(crate) use env::SessionEnv;

/// Requests sent and not yet answered (running or queued) before more are refused.
const MAX_COMMANDS_IN_FLIGHT: usize = 8;
/// Longest client name accepted in `hello`.
const MAX_CLIENT_NAME: usize = 64;
/// Longest time spent saying goodbye: the last error, the close frame, the linger.
const FAREWELL: Duration = Duration::from_secs(1);
/// Most bytes read and discarded while lingering before close.
const LINGER_BYTES: usize = 64 * 1024;
/// The reconnect hint sent with `shutdown`.
const RECONNECT_AFTER_MS: u32 = 1000;
/// Below this `tick_hz` a seated session keeps its reads: a room reads lent sockets once
/// per tick, so a request or ping would wait up to a tick (50 ms here) to be read.
const LEND_MIN_TICK_HZ: u32 = 20;

type CommandFuture = Pin<Box<dyn Future<Output = (u32, Result<Outcome, CommandError>)> + Send>>;

/// What admits a connection: a slot under `concurrency_limit` and one under its
/// address's `max_connections_per_ip`.
pub(crate) type Admission = (OwnedSemaphorePermit, AddressSlot);

/// Runs one accepted connection to its end. Holds `permit` (its connection slots) until
/// the player is gone.
///
/// Not an `async fn`: an async fn's arguments are moved into locals, and the coroutine
/// keeps both copies for its whole life. The block below uses its captures in place, so
/// each is stored once in the session's task (every byte of it is held per connection).
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would store its arguments twice in every session's state"
)]
pub(crate) fn run<C: Connection>(
    env: Arc<SessionEnv>,
    stream: Arc<C>,
    peer: SocketAddr,
    transport: Transport,
    permit: Admission,
) -> impl Future<Output = ()> + Send {
    // Built before the block: what the block captures is stored once for the session's
    // life, so the peer and the settings live in the read state only.
    let link = SessionLink {
        session_id: env.next_session_id(),
        ctl: Arc::new(SessionCtl::new(env.config.queue_capacity as usize)),
    };
    let mut reader = Reader {
        decoder: Decoder::new(transport, env.config.max_message_bytes as usize),
        rbuf: Vec::new(),
        pending: None,
        core: Core::new(env, link, peer, transport),
    };
    async move {
        let env = reader.core.env.clone();
        // Not kept in a local: the writer holds the session's handle while both loops run.
        let ctl = &reader.core.link.ctl;
        let transport = reader.core.transport;
        // The connection is counted like the permit: until the player is gone, not while
        // the socket lingers.
        let mut meter = env.metrics.session(transport);
        let _ = stream.set_nodelay(true);
        // The WebSocket upgrade and the hello share one bound from the accept. Set here,
        // not kept in a local: whatever lives across the upgrade's await takes room in
        // the session's state for good.
        let handshake = env.config.handshake_timeout();
        ctl.set_deadline(env.sessions.millis(Instant::now() + handshake), false);
        if transport == Transport::WebSocket {
            // Boxed: the upgrade's buffers and timers are needed once, and inline they
            // would size every session's future for good.
            let accepted = tokio::select! {
                r = Box::pin(transport::accept_websocket(&*stream, handshake)) => r,
                _ = env.shutdown.cancelled() => None,
            };
            let Some(rest) = accepted else {
                drop(permit);
                meter.player_gone();
                // Lingers in a task of its own: awaited here, what is live at this
                // point would be kept in every session's state.
                if let Some(mut stream) = Arc::into_inner(stream) {
                    tokio::spawn(async move { linger_close(&mut stream).await });
                }
                return;
            };
            // The bytes that came with the upgrade request.
            reader.rbuf = rest;
        }
        let ctl = &reader.core.link.ctl;
        // Shared with the outbox, so the room can write states to it
        // (`SessionLink::send_now`); the outbox lets go of it when it closes, at the
        // writer's farewell.
        ctl.attach(stream.clone(), transport);
        env.sessions
            .insert(reader.core.link.session_id, ctl.clone());
        // Registered first, then checked: a shutdown racing this start is seen either way.
        if env.shutdown.is_cancelled() {
            ctl.drain();
        }
        {
            let writer = Writer {
                env: &env,
                ctl: ctl.clone(),
                transport,
                session_id: reader.core.link.session_id,
            };
            let write = std::pin::pin!(writer.run(&*stream));
            let read = std::pin::pin!(reader.run(&*stream));
            read_then_write(read, write).await;
        }
        let ctl = &reader.core.link.ctl;
        // The writer's farewell closed the outbox, which dropped its share of the socket.
        ctl.close_outbox();
        let session_id = reader.core.link.session_id;
        env.sessions.remove(session_id);
        let ending = ctl.ending();
        // The player is gone: its slot is free for the next one, and it is no longer
        // listed (sessions(), /admin/players, rally_sessions), even while the socket
        // lingers.
        drop(permit);
        meter.player_gone();
        if let Some(account) = reader.core.account.take() {
            reader.core.end_account_session(account);
        }
        let (code, message) = match &ending {
            Ending::Fault { error: e, .. } => (Some(e.code.name()), e.message.as_str()),
            Ending::PeerClosed => (None, "peer closed"),
            Ending::ClientClosed => (None, "client sent close"),
            Ending::Forced => (None, "shutdown grace expired"),
        };
        tracing::debug!(
            task_id = %format_args!("session-{session_id}"),
            async_model = "async_await",
            duration_ms = meter.elapsed_ms(),
            session_id,
            transport = transport.name(),
            peer = %reader.core.peer,
            code,
            reason = message,
            "session ended"
        );
        // Last, and boxed with the socket: only a session that ends pays for the linger's
        // state, and nothing above is kept while it runs.
        if !matches!(ending, Ending::PeerClosed) {
            drop(ending);
            Box::pin(linger_last(stream)).await;
        }
    }
}

/// Lingers on the socket if this was its last holder (the outbox has let go of it).
async fn linger_last<C: Connection>(stream: Arc<C>) {
    if let Some(mut stream) = Arc::into_inner(stream) {
        linger_close(&mut stream).await;
    }
}

/// Runs the read and write loops of one session in its task, always polling the reader
/// first: what it queues in reply (`pong`, `welcome`, replies) is then written in the
/// same poll, without a wake-up (`tokio::join!` rotates which future goes first).
///
/// A plain future, not an `async fn`: it holds just the two pinned references and two
/// flags in the session's state.
fn read_then_write<'a>(
    mut read: Pin<&'a mut impl Future<Output = ()>>,
    mut write: Pin<&'a mut impl Future<Output = ()>>,
) -> impl Future<Output = ()> + 'a {
    let (mut read_done, mut write_done) = (false, false);
    std::future::poll_fn(move |cx| {
        if !read_done {
            read_done = read.as_mut().poll(cx).is_ready();
        }
        if !write_done {
            write_done = write.as_mut().poll(cx).is_ready();
        }
        if read_done && write_done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
}

/// Half-closes, then reads and discards for a moment so the peer sees our last bytes
/// before the kernel would answer its unread bytes with a reset.
pub(crate) async fn linger_close<C: Connection>(stream: &mut C) {
    let _ = tokio::time::timeout(FAREWELL, async {
        let _ = stream.shutdown().await;
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            if stream.readable().await.is_err() {
                break;
            }
            let mut sink = Vec::new();
            match transport::read_append(stream, &mut sink) {
                Ok(0) => break,
                Ok(n) => discarded += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
    })
    .await;
}

/// The session state the read loop keeps (apart from the decoder, so a decoded frame
/// borrowing the decoder can be handled with `&mut Core`).
struct Core {
    env: Arc<SessionEnv>,
    link: SessionLink,
    peer: SocketAddr,
    transport: Transport,
    handshaken: bool,
    draining: bool,
    /// Boxed: an idle or lobby session has none, and inline it would cost every
    /// session's future its 88 bytes.
    membership: Option<Box<Membership>>,
    /// The spectator stream this session watches; dropping it stops the stream.
    spectating: Option<Watching>,
    /// The account the session is logged in as (its display name is in the directory).
    account: Option<SessionAccount>,
    /// Commands waiting behind the running one, in order.
    queue: requests::CommandQueue,
    /// Whether a command is running now.
    running: bool,
    /// Complete messages received, to move the deadline once per read, not per message.
    messages: u64,
    /// `input_rate` and `command_rate`.
    limits: MessageLimits,
    /// Whether the reads are lent to the room ([`Lend`]).
    lent: bool,
}

impl Core {
    /// A session not yet handshaken (its `hello` deadline is already on `link.ctl`: the
    /// sweep of [`crate::outbox::LiveSessions`] ends it with `TIMEOUT` after that).
    fn new(
        env: Arc<SessionEnv>,
        link: SessionLink,
        peer: SocketAddr,
        transport: Transport,
    ) -> Self {
        Core {
            limits: MessageLimits::new(&env.config),
            env,
            link,
            peer,
            transport,
            handshaken: false,
            draining: false,
            membership: None,
            spectating: None,
            account: None,
            queue: requests::CommandQueue::default(),
            running: false,
            messages: 0,
            lent: false,
        }
    }

    /// The reads to lend to the room, if the session is seated in one (and the room ticks
    /// often enough to read for it), handshaken, allowed to play, and not draining.
    fn lend(&mut self) -> Option<Lend> {
        let config = &self.env.config;
        if !self.handshaken
            || self.draining
            || config.tick_hz < LEND_MIN_TICK_HZ
            || (self.account.is_none() && self.env.auth.required)
            || self.link.ctl.is_ended()
        {
            return None;
        }
        let m = self.membership()?;
        // A room whose task ended without closing (a game that panicked) reads nothing.
        if m.room.inputs.is_closed() {
            return None;
        }
        let (room_id, player) = (m.room.id, m.player_id);
        Some(Lend::new(room_id, player, self.limits.input_cell()))
    }

    /// A complete message arrived: the next one is due `timeout_ms` from now.
    fn push_deadline(&self) {
        let due = Instant::now() + self.env.config.timeout();
        let ms = self.env.sessions.millis(due);
        self.link.ctl.set_deadline(ms, self.handshaken);
    }

    /// The session stops being `account` (it ended, or logged in as another): its play
    /// time and a session go to the account's stats, in the background.
    fn end_account_session(&self, account: SessionAccount) {
        if let Some(storage) = &self.env.storage {
            let play_ms = u64::try_from(account.since.elapsed().as_millis()).unwrap_or(u64::MAX);
            if let Ok(id) = i64::try_from(account.id) {
                storage.record_session(rally_store::AccountId(id), play_ms);
            }
        }
    }

    /// The current membership, forgotten once its room has ended.
    fn membership(&mut self) -> Option<&Membership> {
        if self.membership.as_ref().is_some_and(|m| !m.is_live()) {
            self.membership = None;
        }
        self.membership.as_deref()
    }

    /// A matchmaking match seated the player: its new room replaces the one it left (the
    /// queue freed that seat and said `left` before seating it; joins are refused while
    /// queued, so no other room can be held here, but if one is, it is left too).
    fn take_match_seat(&mut self) {
        let Some(new) = self.env.queue.take_seat(self.link.session_id) else {
            return;
        };
        if let Some(old) = self.membership().cloned() {
            if old.room.id != new.room.id {
                let _ = old.room.control.try_send(Control::Leave {
                    player: old.player_id,
                    session: self.link.session_id,
                    reply: None,
                });
                self.link.send_in_task(Outbound::Msg(ServerMessage::Left {
                    req: 0,
                    room_id: old.room.id,
                }));
            }
        }
        self.membership = Some(Box::new(new));
    }

    fn on_shutdown(&mut self) {
        self.draining = true;
        self.link
            .send_in_task(Outbound::Msg(ServerMessage::Shutdown {
                reason: "the server is shutting down".into(),
                reconnect_after_ms: RECONNECT_AFTER_MS,
            }));
    }

    /// The session is over: leave the room, or, when the connection merely dropped,
    /// keep the seat for the player to resume.
    fn leave_room(&mut self, ending: &Ending) {
        if let Some(m) = self.membership().cloned() {
            let (player, session) = (m.player_id, self.link.session_id);
            // A drop or a stall may be the network's fault; a close frame, a protocol
            // violation or the end of a shutdown is not coming back.
            let hold = matches!(
                ending,
                Ending::PeerClosed
                    | Ending::Fault {
                        error: ClientError {
                            code: ErrorCode::Timeout | ErrorCode::SlowConsumer,
                            ..
                        },
                        ..
                    }
            );
            let msg = if hold {
                Control::Detach { player, session }
            } else {
                Control::Leave {
                    player,
                    session,
                    reply: None,
                }
            };
            // If the room's control queue is full, the room still finds this session's
            // queue closed on its next send and holds the seat as for a drop.
            let _ = m.room.control.try_send(msg);
            self.membership = None;
        }
    }
}
