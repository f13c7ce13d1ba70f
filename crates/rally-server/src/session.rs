//! One connection: a read loop and a write loop, joined by a bounded outbound queue.
//!
//! Both loops run in the connection's one task (joined, not spawned), sharing the
//! socket (a `TcpStream`, or any [`Connection`]) by reference: reads use `readable` +
//! `try_read` into a stack buffer, so an idle connection holds no read buffer; writes
//! drain the queue in batches and send each batch with one write.
//!
//! Bounds: the first message must be a `hello` within `timeout_ms`; after that a complete
//! message must arrive at least every `timeout_ms` (bytes alone do not count, so a
//! trickle cannot hold a session); a write that cannot drain within `timeout_ms` ends the
//! session; an outbound queue that fills (`queue_capacity`) ends it as a slow consumer.
//! Every end is recorded once in [`SessionCtl`] and reported to the client when it still
//! can be, then the socket is closed after a short linger so the report is not lost.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use rally_protocol::{ClientMessage, ErrorCode, ServerMessage, PROTOCOL_VERSION};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::accounts::{self, SessionAccount};
use crate::command::{self, Command, CommandContext, CommandError, Outcome};
use crate::connection::Connection;
use crate::directory::SessionRecord;
use crate::limits::{AddressSlot, Budget, MessageLimits, Verdict};
use crate::metrics::{ErrorKind, Limit, TaskKind};
use crate::room::{Control, InputMsg, Membership};
use crate::server::Shared;
use crate::transport::{self, Decoder, Incoming, Transport};

/// Requests sent and not yet answered (running or queued) before more are refused.
const MAX_COMMANDS_IN_FLIGHT: usize = 8;
/// A write buffer grown past this is freed after use rather than kept.
const MAX_KEPT_WRITE_BUFFER: usize = 64 * 1024;
/// Longest client name accepted in `hello`.
const MAX_CLIENT_NAME: usize = 64;
/// Longest time spent saying goodbye: the last error, the close frame, the linger.
const FAREWELL: Duration = Duration::from_secs(1);
/// Most bytes read and discarded while lingering before close.
const LINGER_BYTES: usize = 64 * 1024;
/// The reconnect hint sent with `shutdown`.
const RECONNECT_AFTER_MS: u32 = 1000;

/// Something for the writer to send.
#[derive(Debug)]
pub(crate) enum Outbound {
    Msg(ServerMessage),
    /// A WebSocket pong answering a client's ping.
    WsPong(Bytes),
}

/// Why a session ended.
#[derive(Debug, Clone)]
pub(crate) enum Ending {
    /// The client closed the socket (or it broke).
    PeerClosed,
    /// The client sent a WebSocket close frame; it gets one back.
    ClientClosed,
    /// A fatal error the client is told about.
    Fault { code: ErrorCode, message: String },
    /// The shutdown grace period ran out.
    Forced,
}

impl Ending {
    pub(crate) fn fault(code: ErrorCode, message: impl Into<String>) -> Self {
        Ending::Fault {
            code,
            message: message.into(),
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
    ending: OnceLock<Ending>,
    draining: AtomicBool,
    /// The session task's waker. The read and write loops run in the same task, so the
    /// one slot wakes both.
    waker: AtomicWaker,
    /// Messages waiting for the writer.
    outbox: Mutex<Outbox>,
}

/// The outbound queue: bounded by `queue_capacity`, and allocated only while it holds
/// something, so an idle connection costs no queue memory. (A channel would keep a
/// fixed block of slots per connection whether used or not.)
#[derive(Debug)]
struct Outbox {
    queue: VecDeque<Outbound>,
    capacity: usize,
    /// Set when the session is over: senders learn the player is gone.
    closed: bool,
}

/// What [`SessionCtl::signal`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Ended,
    Drain,
}

impl SessionCtl {
    fn new(queue_capacity: usize) -> Self {
        SessionCtl {
            ending: OnceLock::new(),
            draining: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            outbox: Mutex::new(Outbox {
                queue: VecDeque::new(),
                capacity: queue_capacity,
                closed: false,
            }),
        }
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        // Every critical section is a push or a take: a poisoned lock is still consistent.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes everything queued, waiting until there is something.
    fn next_batch(&self) -> impl Future<Output = VecDeque<Outbound>> + '_ {
        std::future::poll_fn(move |cx| {
            let mut outbox = self.outbox();
            if outbox.queue.is_empty() {
                // Registered under the lock: a push after this sees the new waker.
                self.waker.register(cx.waker());
                Poll::Pending
            } else {
                Poll::Ready(std::mem::take(&mut outbox.queue))
            }
        })
    }

    /// Closes the queue and returns what was left in it.
    fn close_outbox(&self) -> VecDeque<Outbound> {
        let mut outbox = self.outbox();
        outbox.closed = true;
        std::mem::take(&mut outbox.queue)
    }

    pub(crate) fn end(&self, ending: Ending) {
        let _ = self.ending.set(ending);
        self.waker.wake();
    }

    /// The server is shutting down: tell the client, keep serving until it closes.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether an end was recorded.
    fn is_ended(&self) -> bool {
        self.ending.get().is_some()
    }

    fn ending(&self) -> Ending {
        self.ending.get().cloned().unwrap_or(Ending::PeerClosed)
    }

    /// Completes when the session ends, or (if `drain` is asked for) when draining starts.
    fn signal(&self, drain: bool) -> impl Future<Output = Signal> + '_ {
        std::future::poll_fn(move |cx| {
            let check = || {
                if self.is_ended() {
                    Some(Signal::Ended)
                } else if drain && self.draining.load(Ordering::Acquire) {
                    Some(Signal::Drain)
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
        })
    }
}

/// Every running session, so shutdown can reach each one.
#[derive(Debug, Default)]
pub(crate) struct LiveSessions {
    /// Never held across `.await`.
    inner: Mutex<HashMap<u64, Arc<SessionCtl>>>,
}

impl LiveSessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<SessionCtl>>> {
        // Each critical section is one map operation or a loop of atomic stores, so a
        // poisoned lock still holds a consistent map.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, id: u64, ctl: Arc<SessionCtl>) {
        self.lock().insert(id, ctl);
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Tells every session the server is shutting down.
    pub(crate) fn drain_all(&self) {
        for ctl in self.lock().values() {
            ctl.drain();
        }
    }

    /// Ends every session now.
    pub(crate) fn end_all(&self) {
        for ctl in self.lock().values() {
            ctl.end(Ending::Forced);
        }
    }

    /// Ends one session with `KICKED` (admin API); false if there is no such session.
    pub(crate) fn kick(&self, id: u64, message: String) -> bool {
        match self.lock().get(&id) {
            Some(ctl) => {
                ctl.end(Ending::fault(ErrorCode::Kicked, message));
                true
            }
            None => false,
        }
    }
}

/// What a room or a command holds to reach a session.
#[derive(Clone)]
pub(crate) struct SessionLink {
    pub(crate) session_id: u64,
    /// This session's resume token, sent in `welcome`. A secret: never logged.
    pub(crate) resume_token: Option<Arc<str>>,
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
    /// Queues a message without waiting. A full queue ends the session as a slow consumer
    /// rather than growing memory. Returns false when the session is gone or was ended.
    pub(crate) fn send(&self, msg: Outbound) -> bool {
        self.push(msg, true)
    }

    /// [`send`](Self::send) from the session's own reader, which runs in the same task
    /// just before the writer ([`read_then_write`]): the writer sees the message in the
    /// same poll, so waking the task would only cost a second, empty poll and a trip to
    /// the back of the run queue.
    pub(crate) fn send_in_task(&self, msg: Outbound) -> bool {
        self.push(msg, false)
    }

    fn push(&self, msg: Outbound, wake: bool) -> bool {
        {
            let mut outbox = self.ctl.outbox();
            if outbox.closed {
                return false;
            }
            if outbox.queue.len() < outbox.capacity {
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

type CommandFuture = Pin<Box<dyn Future<Output = (u32, Result<Outcome, CommandError>)> + Send>>;

/// What admits a connection: a slot under `concurrency_limit` and one under its
/// address's `max_connections_per_ip`.
pub(crate) type Admission = (OwnedSemaphorePermit, AddressSlot);

/// Runs one accepted connection to its end. Holds `permit` (its connection slots) until
/// the player is gone.
pub(crate) async fn run<C: Connection>(
    shared: Arc<Shared>,
    mut stream: C,
    peer: SocketAddr,
    transport: Transport,
    permit: Admission,
) {
    let task = shared.metrics.task(TaskKind::Session);
    // Counted like the permit: until the player is gone, not while the socket lingers.
    let connection = shared.metrics.connection(transport);
    let started = Instant::now();
    let _ = stream.set_nodelay(true);
    // The WebSocket upgrade and the hello share one bound from the accept.
    let handshake = shared.config.handshake_timeout();
    let mut early = Vec::new();
    if transport == Transport::WebSocket {
        let accepted = tokio::select! {
            r = transport::accept_websocket(&stream, handshake) => r,
            _ = shared.shutdown.cancelled() => None,
        };
        match accepted {
            Some(rest) => early = rest,
            None => {
                drop((permit, connection));
                linger_close(&mut stream).await;
                return;
            }
        }
    }
    let session_id = shared.next_session_id();
    let ctl = Arc::new(SessionCtl::new(shared.config.queue_capacity as usize));
    shared.sessions.insert(session_id, ctl.clone());
    // Registered first, then checked: a shutdown racing this start is seen either way.
    if shared.shutdown.is_cancelled() {
        ctl.drain();
    }

    let link = SessionLink {
        session_id,
        resume_token: crate::resume::new_token(),
        ctl: ctl.clone(),
    };
    let mut reader = Reader {
        decoder: Decoder::new(transport, shared.config.max_message_bytes as usize),
        rbuf: early,
        core: Core {
            shared: shared.clone(),
            link,
            peer,
            transport,
            handshaken: false,
            draining: false,
            membership: None,
            account: None,
            queue: VecDeque::new(),
            running: false,
            deadline: started + handshake,
            messages: 0,
            limits: MessageLimits::new(&shared.config),
        },
    };
    let writer = Writer {
        shared: &shared,
        ctl: &ctl,
        transport,
        session_id,
    };
    read_then_write(reader.run(&stream), writer.run(&stream)).await;
    shared.sessions.remove(session_id);
    let ending = ctl.ending();
    // The player is gone: its slot is free for the next one, and it is no longer listed
    // (sessions(), /admin/players, rally_sessions), even while the socket lingers.
    drop((permit, connection));
    if reader.core.handshaken {
        shared.directory.remove(session_id);
    }
    if !matches!(ending, Ending::PeerClosed) {
        linger_close(&mut stream).await;
    }
    if let Some(account) = reader.core.account.take() {
        reader.core.end_account_session(account);
    }
    let (code, message) = match &ending {
        Ending::Fault { code, message } => (Some(code.name()), message.as_str()),
        Ending::PeerClosed => (None, "peer closed"),
        Ending::ClientClosed => (None, "client sent close"),
        Ending::Forced => (None, "shutdown grace expired"),
    };
    tracing::debug!(
        task_id = %format_args!("session-{session_id}"),
        async_model = "async_await",
        duration_ms = task.elapsed_ms(),
        session_id,
        transport = transport.name(),
        %peer,
        code,
        reason = message,
        "session ended"
    );
}

/// Runs the read and write loops of one session in its task, always polling the reader
/// first: what it queues in reply (`pong`, `welcome`, replies) is then written in the
/// same poll, without a wake-up (`tokio::join!` rotates which future goes first).
async fn read_then_write(read: impl Future<Output = ()>, write: impl Future<Output = ()>) {
    let mut read = std::pin::pin!(read);
    let mut write = std::pin::pin!(write);
    let (mut read_done, mut write_done) = (false, false);
    std::future::poll_fn(|cx| {
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
    .await;
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

struct Reader {
    decoder: Decoder,
    /// Bytes of an incomplete frame, kept between reads; empty and unallocated otherwise.
    rbuf: Vec<u8>,
    core: Core,
}

/// The session state the read loop keeps (apart from the decoder, so a decoded frame
/// borrowing the decoder can be handled with `&mut Core`).
struct Core {
    shared: Arc<Shared>,
    link: SessionLink,
    peer: SocketAddr,
    transport: Transport,
    handshaken: bool,
    draining: bool,
    membership: Option<Membership>,
    /// The account the session is logged in as (its display name is in the directory).
    account: Option<SessionAccount>,
    /// Commands waiting behind the running one, in order.
    queue: VecDeque<(u32, Command)>,
    /// Whether a command is running now.
    running: bool,
    /// When the next complete message must have arrived.
    deadline: Instant,
    /// Complete messages received, to move the deadline once per read, not per message.
    messages: u64,
    /// `input_rate` and `command_rate`.
    limits: MessageLimits,
}

impl Reader {
    async fn run<C: Connection>(&mut self, stream: &C) {
        let ctl = self.core.link.ctl.clone();
        let mut pending: Option<CommandFuture> = None;
        if !self.rbuf.is_empty() {
            // Frames that arrived with the WebSocket upgrade request.
            let bytes = self.rbuf.len();
            if let Err(e) = self.process_buffered() {
                ctl.end(e);
            }
            let shared = &self.core.shared;
            shared
                .stats
                .received(self.core.transport, self.core.messages, bytes);
        }
        // The idle timer is moved only when it fires: messages just push the deadline
        // forward, so a busy session never touches the timer wheel.
        let idle = tokio::time::sleep_until(self.core.deadline);
        tokio::pin!(idle);
        loop {
            if pending.is_none() {
                pending = self.core.next_command();
            }
            let command = async {
                match pending.as_mut() {
                    Some(f) => f.await,
                    None => std::future::pending().await,
                }
            };
            let step = tokio::select! {
                biased;
                signal = ctl.signal(!self.core.draining) => match signal {
                    Signal::Ended => break,
                    Signal::Drain => {
                        self.core.on_shutdown();
                        Ok(())
                    }
                },
                (req, result) = command => {
                    pending = None;
                    self.core.on_outcome(req, result);
                    Ok(())
                }
                _ = &mut idle => {
                    if Instant::now() >= self.core.deadline {
                        Err(Ending::fault(
                            ErrorCode::Timeout,
                            if self.core.handshaken {
                                "no message received within timeout_ms"
                            } else {
                                "no hello received within handshake_timeout_ms"
                            },
                        ))
                    } else {
                        idle.as_mut().reset(self.core.deadline);
                        Ok(())
                    }
                }
                r = stream.readable() => match r {
                    Err(_) => Err(Ending::PeerClosed),
                    Ok(()) => self.on_readable(stream),
                },
            };
            if let Err(ending) = step {
                ctl.end(ending);
                break;
            }
        }
        drop(pending);
        self.core.leave_room(&ctl.ending());
    }

    /// Reads what the socket has and handles every complete frame in it.
    fn on_readable<C: Connection>(&mut self, stream: &C) -> Result<(), Ending> {
        let mut chunk = [0u8; transport::READ_CHUNK];
        let n = match stream.try_read(&mut chunk) {
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
            .shared
            .stats
            .received(self.core.transport, messages, n);
        if messages != 0 {
            self.core.deadline = Instant::now() + self.core.shared.config.timeout();
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
                    code: f.code,
                    message: f.message,
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

impl Core {
    /// Sends a non-fatal error (fatal ones are the writer's farewell).
    fn error(&self, kind: ErrorKind, code: ErrorCode, message: impl Into<String>, req: u32) {
        let message = message.into();
        self.shared.stats.count_error(kind, code);
        tracing::debug!(session_id = self.link.session_id, code = code.name(), req, detail = %message, "error to client");
        self.link
            .send_in_task(Outbound::Msg(ServerMessage::Error { code, message, req }));
    }

    fn on_message(&mut self, body: &[u8]) -> Result<(), Ending> {
        let msg = ClientMessage::decode(body)
            .map_err(|e| Ending::fault(ErrorCode::BadMessage, e.to_string()))?;
        self.messages = self.messages.wrapping_add(1);
        if !self.handshaken {
            return self.on_hello(msg);
        }
        let budget = match &msg {
            ClientMessage::Input { .. } => Budget::Input,
            _ => Budget::Command,
        };
        if !self.allow(budget, msg.req().unwrap_or(0), msg.name())? {
            return Ok(());
        }
        match msg {
            ClientMessage::Hello { .. } => {
                Err(Ending::fault(ErrorCode::BadMessage, "hello sent twice"))
            }
            ClientMessage::Ping { nonce } => {
                self.link
                    .send_in_task(Outbound::Msg(ServerMessage::Pong { nonce }));
                Ok(())
            }
            ClientMessage::Input { seq, payload } => {
                self.on_input(seq, payload);
                Ok(())
            }
            ClientMessage::Join { req, kind } => self.enqueue(
                req,
                Command::Join {
                    kind: kind.to_owned(),
                },
            ),
            ClientMessage::Leave { req } => self.enqueue(req, Command::Leave),
            ClientMessage::Chat { req, text } => self.enqueue(
                req,
                Command::Chat {
                    text: text.to_owned(),
                },
            ),
            ClientMessage::Login {
                req,
                provider,
                credential,
            } => self.enqueue(
                req,
                Command::Login {
                    provider: provider.to_owned(),
                    credential: credential.to_owned(),
                },
            ),
            ClientMessage::GetData { req, owner, key } => self.enqueue(
                req,
                Command::GetData {
                    owner,
                    key: key.to_owned(),
                },
            ),
            ClientMessage::PutData {
                req,
                key,
                value,
                expected_version,
                public,
            } => self.enqueue(
                req,
                Command::PutData {
                    key: key.to_owned(),
                    value: value.to_owned(),
                    expected_version,
                    public,
                },
            ),
            ClientMessage::DeleteData {
                req,
                key,
                expected_version,
            } => self.enqueue(
                req,
                Command::DeleteData {
                    key: key.to_owned(),
                    expected_version,
                },
            ),
            ClientMessage::GetProfile { req, account_id } => {
                self.enqueue(req, Command::GetProfile { account_id })
            }
            ClientMessage::SetName { req, name } => self.enqueue(
                req,
                Command::SetName {
                    name: name.to_owned(),
                },
            ),
        }
    }

    /// Counts one message against its rate limit: `Ok(true)` to handle it, `Ok(false)`
    /// when it is refused (a request is answered `RATE_LIMITED`; an input or a ping is
    /// dropped, and the client told so at most once a second), `Err` to close the
    /// connection because it keeps going over.
    fn allow(&mut self, budget: Budget, req: u32, what: &str) -> Result<bool, Ending> {
        let verdict = self.limits.check(budget);
        if verdict == Verdict::Allow {
            return Ok(true);
        }
        let stats = &self.shared.stats;
        let (limit, key) = match budget {
            Budget::Input => (Limit::Input, "input_rate"),
            Budget::Command => (Limit::Command, "command_rate"),
        };
        stats.count_rate_limited(limit);
        let rate = self.limits.rate(budget);
        match verdict {
            Verdict::Allow => Ok(true),
            Verdict::Refuse { warn } => {
                if req != 0 || warn {
                    self.error(
                        ErrorKind::Session,
                        ErrorCode::RateLimited,
                        format!("{what} refused: over {rate} per second ({key})"),
                        req,
                    );
                }
                Ok(false)
            }
            Verdict::Close => {
                stats.count_rate_limited(Limit::Closed);
                Err(Ending::fault(
                    ErrorCode::RateLimited,
                    format!("closed: kept sending past {rate} per second ({key})"),
                ))
            }
        }
    }

    /// The session stops being `account` (it ended, or logged in as another): its play
    /// time and a session go to the account's stats, in the background.
    fn end_account_session(&self, account: SessionAccount) {
        if let Some(storage) = &self.shared.storage {
            let play_ms = u64::try_from(account.since.elapsed().as_millis()).unwrap_or(u64::MAX);
            if let Ok(id) = i64::try_from(account.id) {
                storage.record_session(rally_store::AccountId(id), play_ms);
            }
        }
    }

    fn on_hello(&mut self, msg: ClientMessage<'_>) -> Result<(), Ending> {
        let ClientMessage::Hello {
            version,
            client,
            resume,
            token,
        } = msg
        else {
            return Err(Ending::fault(
                ErrorCode::BadMessage,
                "the first message must be hello",
            ));
        };
        if version != PROTOCOL_VERSION {
            return Err(Ending::fault(
                ErrorCode::UnsupportedVersion,
                format!("protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"),
            ));
        }
        if client.len() > MAX_CLIENT_NAME {
            return Err(Ending::fault(
                ErrorCode::BadMessage,
                format!("client name longer than {MAX_CLIENT_NAME} bytes"),
            ));
        }
        if resume.is_none() && self.shared.is_draining() {
            // A player coming back to its seat may; a new player goes elsewhere.
            return Err(Ending::fault(
                ErrorCode::Draining,
                "the server is draining and takes no new players; connect to another server",
            ));
        }
        // The session token is checked here, without the database: a valid one logs the
        // session in before anything else it sends is handled.
        let verified = token.map(|t| self.shared.auth.verify(t));
        let account = match verified {
            Some(Ok(id)) => Some(id),
            _ => None,
        };
        let c = &self.shared.config;
        let session_id = self.link.session_id;
        self.link
            .send_in_task(Outbound::Msg(ServerMessage::Welcome {
                version: PROTOCOL_VERSION,
                session_id,
                tick_hz: c.tick_hz,
                max_message_bytes: c.max_message_bytes,
                timeout_ms: c.timeout_ms as u32,
                queue_capacity: c.queue_capacity,
                resume_token: self.link.resume_token.as_deref().unwrap_or("").to_owned(),
                reconnect_grace_ms: c.reconnect_grace_ms as u32,
                account_id: account.unwrap_or(0),
            }));
        if let Some(Err(e)) = verified {
            // Not fatal: the client may log in instead.
            self.error(
                ErrorKind::Session,
                ErrorCode::Unauthorized,
                format!("{e}; log in again"),
                0,
            );
        }
        if let Some(id) = account {
            self.account = Some(SessionAccount {
                id,
                since: std::time::Instant::now(),
            });
            // The display name, loaded ahead of the client's own requests.
            self.queue.push_back((0, Command::Restore));
        }
        if let Some(token) = resume {
            // Runs like a request with id 0: `joined` (req 0) or RESUME_FAILED follows.
            self.queue.push_back((
                0,
                Command::Resume {
                    token: token.to_owned(),
                },
            ));
        }
        let name = match account {
            Some(id) => accounts::default_name(id),
            None if client.trim().is_empty() => format!("player-{session_id}"),
            None => client.to_owned(),
        };
        self.shared.directory.insert(SessionRecord {
            session_id,
            name,
            account_id: account,
            transport: self.transport,
            peer: self.peer,
            since: std::time::Instant::now(),
        });
        self.handshaken = true;
        Ok(())
    }

    /// The current membership, forgotten once its room has ended.
    fn membership(&mut self) -> Option<&Membership> {
        if self.membership.as_ref().is_some_and(|m| !m.is_live()) {
            self.membership = None;
        }
        self.membership.as_ref()
    }

    fn on_input(&mut self, seq: u32, payload: &[u8]) {
        if self.account.is_none() && self.shared.auth.required {
            self.error(
                ErrorKind::Session,
                ErrorCode::Unauthorized,
                "input sent while not logged in",
                0,
            );
            return;
        }
        // No liveness check here: a closed room's input queue reports itself closed.
        let Some(m) = self.membership.as_ref() else {
            self.error(
                ErrorKind::Session,
                ErrorCode::NotInRoom,
                "input sent while not in a room",
                0,
            );
            return;
        };
        let input = InputMsg {
            session: self.link.session_id,
            player: m.player_id,
            seq,
            payload: Bytes::copy_from_slice(payload),
        };
        match m.room.inputs.try_send(input) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.error(
                ErrorKind::Session,
                ErrorCode::RoomBusy,
                "the room's input queue is full; input dropped",
                0,
            ),
            Err(TrySendError::Closed(_)) => {
                self.membership = None;
                self.error(
                    ErrorKind::Session,
                    ErrorCode::NotInRoom,
                    "the room has closed",
                    0,
                );
            }
        }
    }

    fn enqueue(&mut self, req: u32, cmd: Command) -> Result<(), Ending> {
        if req == 0 {
            return Err(Ending::fault(
                ErrorCode::BadMessage,
                "request id must not be 0",
            ));
        }
        if self.queue.len() + usize::from(self.running) >= MAX_COMMANDS_IN_FLIGHT {
            self.error(
                ErrorKind::Session,
                ErrorCode::RateLimited,
                format!("{MAX_COMMANDS_IN_FLIGHT} requests already wait for replies"),
                req,
            );
            return Ok(());
        }
        self.queue.push_back((req, cmd));
        Ok(())
    }

    /// Starts the next queued command, bounded by `timeout_ms`.
    fn next_command(&mut self) -> Option<CommandFuture> {
        let (req, cmd) = self.queue.pop_front()?;
        self.running = true;
        let membership = self.membership().cloned();
        let ctx = CommandContext {
            session_id: self.link.session_id,
            room: membership
                .as_ref()
                .map(|m| (m.room.id, m.room.kind.to_string())),
            draining: self.draining,
            account: self.account.map(|a| a.id),
        };
        let shared = self.shared.clone();
        let link = self.link.clone();
        let limit = shared.config.timeout();
        let session_id = self.link.session_id;
        Some(Box::pin(async move {
            let task = shared.metrics.task(TaskKind::Command);
            let name = cmd.name();
            let run = command::run(shared.clone(), req, cmd, ctx, link, membership);
            let result = match tokio::time::timeout(limit, run).await {
                Ok(r) => r,
                Err(_) => Err(CommandError::new(
                    ErrorCode::Timeout,
                    format!("{name} did not complete within timeout_ms"),
                )),
            };
            let elapsed = task.elapsed_ms();
            shared.metrics.command(name, task.elapsed());
            tracing::debug!(
                task_id = %format_args!("command-{session_id}-{req}"),
                async_model = "async_await",
                duration_ms = elapsed,
                session_id,
                command = name,
                code = result.as_ref().err().map(|e| e.code.name()),
                "command ended"
            );
            (req, result)
        }))
    }

    fn on_outcome(&mut self, req: u32, result: Result<Outcome, CommandError>) {
        self.running = false;
        match result {
            // The room already sent `joined`, ahead of its first state.
            Ok(Outcome::Joined(m)) => self.membership = Some(m),
            Ok(Outcome::Left { room_id }) => {
                self.membership = None;
                self.link
                    .send_in_task(Outbound::Msg(ServerMessage::Left { req, room_id }));
            }
            Ok(Outcome::Said) => {
                self.link
                    .send_in_task(Outbound::Msg(ServerMessage::Ok { req }));
            }
            Ok(Outcome::LoggedIn(login)) => {
                let since = match self.account.take() {
                    // The same account again: the session goes on.
                    Some(prev) if prev.id == login.account_id => prev.since,
                    Some(prev) => {
                        self.end_account_session(prev);
                        std::time::Instant::now()
                    }
                    None => std::time::Instant::now(),
                };
                self.account = Some(SessionAccount {
                    id: login.account_id,
                    since,
                });
                self.shared.directory.set_account(
                    self.link.session_id,
                    Some(login.account_id),
                    login.display_name.clone(),
                );
                self.link
                    .send_in_task(Outbound::Msg(ServerMessage::Session {
                        req,
                        account_id: login.account_id,
                        token: login.token.token,
                        expires_at_ms: login.token.expires_at_ms,
                        display_name: login.display_name,
                    }));
            }
            Ok(Outcome::Restored(name)) => {
                if let (Some(name), Some(account)) = (name, self.account) {
                    self.shared
                        .directory
                        .set_account(self.link.session_id, Some(account.id), name);
                }
            }
            Ok(Outcome::Forgotten(e)) => {
                // Not a session of that account after all; nothing to count for it.
                self.account = None;
                self.shared.directory.set_account(
                    self.link.session_id,
                    None,
                    format!("player-{}", self.link.session_id),
                );
                self.error(ErrorKind::Command, e.code, e.message, req);
            }
            Ok(Outcome::Reply(msg)) => {
                self.link.send_in_task(Outbound::Msg(msg));
            }
            Err(CommandError {
                current_version: Some(current_version),
                message,
                ..
            }) => {
                // CONFLICT carries the current version as a field (protocol section 9).
                self.shared
                    .stats
                    .count_error(ErrorKind::Command, ErrorCode::Conflict);
                self.link
                    .send_in_task(Outbound::Msg(ServerMessage::Conflict {
                        message,
                        req,
                        current_version,
                    }));
            }
            Err(e) => self.error(ErrorKind::Command, e.code, e.message, req),
        }
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
                        code: ErrorCode::Timeout | ErrorCode::SlowConsumer,
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

struct Writer<'a> {
    shared: &'a Shared,
    ctl: &'a SessionCtl,
    transport: Transport,
    session_id: u64,
}

impl Writer<'_> {
    async fn run<C: Connection>(&self, stream: &C) {
        let limit = self.shared.config.timeout();
        let mut wbuf = Vec::new();
        loop {
            let batch = tokio::select! {
                biased;
                _ = self.ctl.signal(false) => break,
                b = self.ctl.next_batch() => b,
            };
            // Everything queued goes out in one write (at most queue_capacity messages).
            for out in &batch {
                self.encode(out, &mut wbuf);
            }
            let messages = batch.len();
            drop(batch);
            let written = tokio::select! {
                biased;
                _ = self.ctl.signal(false) => break,
                w = transport::write_all(stream, &wbuf, limit) => w,
            };
            match written {
                // One add per write call, not per message.
                Ok(true) => self.shared.stats.sent(self.transport, messages, wbuf.len()),
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
            wbuf.clear();
            if wbuf.capacity() > MAX_KEPT_WRITE_BUFFER {
                wbuf = Vec::new();
            }
        }
        // Farewell: whatever was queued (unless the client is too slow to take it), then
        // the reason, then a WebSocket close frame.
        wbuf.clear();
        let left = self.ctl.close_outbox();
        let ending = self.ctl.ending();
        let stuck = matches!(
            &ending,
            Ending::Fault {
                code: ErrorCode::SlowConsumer | ErrorCode::Timeout,
                ..
            }
        );
        let mut close_code = None;
        let mut messages = 0;
        match &ending {
            Ending::PeerClosed => return,
            Ending::Fault { code, message } => {
                if !stuck {
                    for out in &left {
                        self.encode(out, &mut wbuf);
                    }
                    messages = left.len();
                }
                self.shared.stats.count_error(ErrorKind::Session, *code);
                tracing::info!(session_id = self.session_id, code = code.name(), detail = %message, "fatal error to client");
                let msg = ServerMessage::Error {
                    code: *code,
                    message: message.clone(),
                    req: 0,
                };
                transport::encode(self.transport, &msg, &mut wbuf);
                messages += 1;
                close_code = Some(*code);
            }
            Ending::ClientClosed => {}
            Ending::Forced => close_code = Some(ErrorCode::ServerShutdown),
        }
        transport::encode_close(
            self.transport,
            transport::ws_close_code(close_code),
            &mut wbuf,
        );
        if !wbuf.is_empty()
            && matches!(
                transport::write_all(stream, &wbuf, FAREWELL.min(limit)).await,
                Ok(true)
            )
        {
            self.shared.stats.sent(self.transport, messages, wbuf.len());
        }
    }

    fn encode(&self, out: &Outbound, wbuf: &mut Vec<u8>) {
        match out {
            Outbound::Msg(m) => transport::encode(self.transport, m, wbuf),
            Outbound::WsPong(p) => transport::encode_pong(self.transport, p, wbuf),
        }
    }
}
