//! [`Connection`]: one session, owned and driven by the caller's own task.
//!
//! The low-level alternative to [`Client`](crate::Client), for programs that run
//! thousands of sessions in one process (bots, load generators) or that have an event
//! loop of their own. It opens a session exactly as [`Client::connect`](crate::Client::connect)
//! does (raw TCP or WebSocket, several addresses raced, each connection attempt retried
//! by the policy) and then starts nothing: no task, no lock, no `Arc`, no channel. The
//! task that owns it does everything through `&mut self`:
//!
//! - [`Connection::login`], [`Connection::join`] and [`Connection::leave`] write their
//!   request and read until its reply, retried by the policy on a timeout.
//! - [`Connection::send_input`] (and [`Connection::send_ping`]) only encode into the
//!   write buffer. [`Connection::try_flush`] writes it without waiting,
//!   [`Connection::flush`] waits until it is written, and [`Connection::recv`] writes
//!   what is left while it waits for the server.
//! - [`Connection::recv`] returns the next server message. A state is lent from the read
//!   buffer ([`StateRef`]): receiving one allocates nothing. WebSocket pings are answered
//!   inside it.
//! - [`Connection::close`] says goodbye: `leave` if in a room, the WebSocket close frame
//!   or the TCP FIN, and a bounded wait for the server to close too.
//!
//! What stays with the caller:
//!
//! - **Keep-alive.** The server closes a connection that sends no message for
//!   `timeout_ms` ([`Welcome::timeout_ms`]). A caller sending inputs at the tick rate
//!   needs nothing more; one that may be quiet that long sends a ping
//!   ([`Connection::send_ping`] and a flush) every third of it.
//! - **A silent server.** `recv` waits as long as the server says nothing; bound it
//!   (`tokio::time::timeout`, or a deadline in the caller's `select!`).
//! - **Reconnection.** There is none: when the connection drops, `recv` returns the error
//!   and the connection is over. [`Client`](crate::Client) reconnects and resumes the seat.
//!
//! ```no_run
//! use std::time::Duration;
//! use rally_client::{Config, Connection, Message};
//!
//! # async fn demo() -> Result<(), rally_client::Error> {
//! let mut conn = Connection::connect(&Config::new("127.0.0.1:7000")).await?;
//! conn.join("arena").await?;
//! let mut ticker = tokio::time::interval(Duration::from_millis(50));
//! let mut seq = 0;
//! loop {
//!     tokio::select! {
//!         _ = ticker.tick() => {
//!             seq += 1;
//!             // [dx, dy] = [1.0, 0.0] as MessagePack.
//!             conn.send_input(seq, &[0x92, 0xca, 0x3f, 0x80, 0, 0, 0])?;
//!             conn.try_flush()?;
//!         }
//!         msg = conn.recv() => match msg? {
//!             Message::State(s) if s.last_seq >= 100 => break,
//!             Message::State(s) => println!("tick {}: {} payload bytes", s.tick, s.payload.len()),
//!             Message::Shutdown { .. } | Message::RoomClosed { .. } => break,
//!             _ => {}
//!         },
//!     }
//! }
//! conn.close().await?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use rally_protocol::ws::{close_code, Opcode};
use rally_protocol::{msgpack, ClientMessage, ErrorCode, Redacted};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::ask::{self, Ask};
use crate::client::{Room, RoomPage, Welcome};
use crate::config::{Config, Transport};
use crate::connect::{self, Conn, Tokens, READ_CHUNK};
use crate::error::Error;
use crate::events::{ChatLine, SpectatorState, State};
use crate::retry::{jitter_unit, RetryPolicy};
use crate::said::{follow_room, said, Said};
use crate::shared::{Redirect, Reply};
use crate::wire::{decode, peek_state, Framing, Inbound, Span, Unit};

/// Bounds [`Connection::close`]: the `leave`, the goodbye, the wait for the server's close.
const CLOSE_LIMIT: Duration = Duration::from_secs(3);
/// Bounds the `leave` inside [`Connection::close`], leaving time for the rest.
const CLOSE_LEAVE_LIMIT: Duration = Duration::from_secs(2);

/// A room's state after one tick, lent from the connection's read buffer until the next
/// call on the [`Connection`]. [`StateRef::to_state`] makes an owned copy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StateRef<'a> {
    /// The room's tick number, from 1, consecutive.
    pub tick: u64,
    /// The highest `seq` of this player's inputs the room has applied (0: none yet).
    pub last_seq: u32,
    /// The game's state: one MessagePack value, as the game wrote it.
    pub payload: &'a [u8],
}

impl StateRef<'_> {
    /// An owned copy, as the [`Events`](crate::Events) stream would have yielded it.
    pub fn to_state(&self) -> State {
        State {
            tick: self.tick,
            last_seq: self.last_seq,
            payload: Bytes::copy_from_slice(self.payload),
        }
    }
}

/// What the server said, from [`Connection::recv`]. Replies to requests are not among
/// them: [`Connection::join`] and [`Connection::leave`] read their own.
#[derive(Debug)]
#[non_exhaustive]
pub enum Message<'a> {
    /// The room's state after a tick.
    State(StateRef<'a>),
    /// A chat line said in the room (this player's own included).
    Chat(ChatLine),
    /// A state of the room or recording this connection watches (protocol revision 3).
    SpectatorState(SpectatorState),
    /// The room ended (the game is over, the server is shutting down, ...); this
    /// connection is in no room now.
    RoomClosed {
        /// The room.
        room_id: u64,
        /// Why, for people.
        reason: String,
    },
    /// An error the server sent unprompted that leaves the connection open:
    /// `INPUT_REJECTED`, `ROOM_BUSY`, `NOT_IN_ROOM` for an input. (A fatal one is
    /// returned as `recv`'s error instead.)
    Error(Error),
    /// The answer to a [`Connection::send_ping`].
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// The server is going away: close the connection, and connect again after
    /// `reconnect_after`, to this server or another.
    Shutdown {
        /// Why, for people.
        reason: String,
        /// How long the server asks clients to wait before reconnecting.
        reconnect_after: Duration,
    },
    /// The matchmaking queue seated this player in its match (`joined` with request id
    /// 0); states of that room follow.
    Matched(Room),
    /// The server moved this player out of its room (`left` with request id 0): its
    /// party is going to a match, whose [`Message::Matched`] follows.
    Left {
        /// The room left.
        room_id: u64,
    },
}

/// One session with a Rally server, driven by the task that owns it; see the
/// [module docs](self). Dropping it closes the socket abruptly (over raw TCP the server
/// then holds the seat for `reconnect_grace_ms`, as for a network drop); prefer
/// [`Connection::close`].
pub struct Connection {
    stream: TcpStream,
    /// Received bytes and the transport's decoder; a state handed out by `recv` is lent
    /// from here.
    inbound: Inbound,
    /// Frames outgoing messages for the transport.
    framing: Framing,
    /// Encoded messages; `out[written..]` is not written yet. Cleared once all of it is,
    /// so it keeps its capacity and does not grow.
    out: Vec<u8>,
    written: usize,
    /// The session's `welcome`: its limits.
    welcome: Welcome,
    /// The room this session is in, if any.
    room: Option<Room>,
    /// The last request id used (0 before the first: the protocol refuses id 0).
    next_req: u32,
    /// From the config: each request attempt's bound, and how requests are retried.
    request_timeout: Duration,
    retry: RetryPolicy,
    /// From the config: the bound on `out[written..]`.
    max_outbound: usize,
    /// An unprompted `error` with a code this SDK does not know: fatal exactly when the
    /// server closes right after it (`docs/protocol.md` section 9), so it becomes the
    /// error of the close that follows.
    unknown_error: Option<Error>,
    /// Whether this player waits in the matchmaking queue: an unprompted `joined` is then
    /// its match, not a resume.
    queued: bool,
    /// An error ended the connection (it was returned once); every call fails since.
    over: bool,
    /// When bytes last came in and last went out: the [`Client`](crate::Client)'s task
    /// keeps the session alive and notices a silent server by them.
    last_read: Instant,
    last_write: Instant,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.stream.peer_addr().ok())
            .field("welcome", &self.welcome)
            .field("room", &self.room)
            .field("unwritten", &self.unwritten())
            .finish_non_exhaustive()
    }
}

/// The server's `session`: the reply to [`Connection::login`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The account logged in as.
    pub account_id: u64,
    /// Logs in again without a `login`, in a later `hello` (the high-level
    /// [`Client`](crate::Client) does that). A secret: it is left out of `Debug` output.
    pub token: Redacted<String>,
    /// When the token stops working, in Unix milliseconds.
    pub expires_at_ms: u64,
    /// The account's display name.
    pub display_name: String,
}

/// What [`Connection::join_or_redirect`] got.
#[derive(Debug)]
pub enum Seat {
    /// A seat on this node: the room's states follow.
    Here(Room),
    /// In a cluster, a seat reserved on another node: connect there
    /// ([`Connection::connect_at`]) and claim it ([`Connection::claim_seat`]).
    Elsewhere(Redirect),
}

/// A connection taken apart ([`Connection::into_parts`]), for a caller that drives the
/// socket itself from here on (`rally bots` polls many sockets from one task).
#[derive(Debug)]
#[non_exhaustive]
pub struct Parts {
    /// The socket, past the handshake (and the WebSocket upgrade).
    pub stream: TcpStream,
    /// Bytes received and not decoded yet: the start of what the server sent next.
    /// Their deframing starts afresh (a server never fragments, `docs/protocol.md`
    /// section 2, so no message is cut off).
    pub unread: Vec<u8>,
    /// Bytes encoded and not yet written: write them before anything else.
    pub unwritten: Vec<u8>,
}

/// What one buffered unit turned out to be, as owned values and places in the read
/// buffer, so the connection can act on it before anything is lent out.
pub(crate) enum Next {
    /// Something [`Connection::recv`] returns.
    Found(Found),
    /// The reply to a request (`req` is never 0).
    Reply {
        req: u32,
        reply: Result<Reply, Error>,
    },
    /// A `joined` that answers no request: the server gave the seat back after a
    /// reconnection that presented a resume token (only the `Client` does).
    Resumed(Room),
    /// Nothing for the caller: a WebSocket ping (answered), a pong frame, a fragment, a
    /// message type from a newer protocol revision, a second `welcome`.
    Nothing,
}

/// A [`Message`] with a place in the read buffer instead of a borrowed payload.
pub(crate) enum Found {
    State {
        tick: u64,
        last_seq: u32,
        payload: Span,
    },
    Chat(ChatLine),
    SpectatorState(SpectatorState),
    RoomClosed {
        room_id: u64,
        reason: String,
    },
    Error(Error),
    Pong(u64),
    Shutdown {
        reason: String,
        reconnect_after: Duration,
    },
    Matched(Room),
    Left(u64),
}

impl Connection {
    /// Connects to one of `config.addrs` (all at once when there are several) and
    /// completes the handshake, like [`Client::connect`](crate::Client::connect): each
    /// address is tried with the retry policy, and a single address fails with its last
    /// error, several with [`Error::AllFailed`]. `config.reconnect` and
    /// `config.event_capacity` do not apply: a `Connection` neither reconnects nor
    /// queues events.
    pub async fn connect(config: &Config) -> Result<Connection, Error> {
        config.check().map_err(Error::Config)?;
        let (conn, welcome) = connect::open_any(config, Tokens::default()).await?;
        Ok(Connection::new(conn, welcome, config))
    }

    /// The session `conn` opened, which `welcome` began.
    pub(crate) fn new(conn: Conn, welcome: Welcome, config: &Config) -> Connection {
        let now = Instant::now();
        Connection {
            stream: conn.stream,
            inbound: conn.inbound,
            framing: Framing::new(config.transport),
            out: Vec::new(),
            written: 0,
            welcome,
            room: None,
            next_req: 0,
            request_timeout: config.request_timeout,
            retry: config.retry,
            max_outbound: config.max_outbound_bytes,
            unknown_error: None,
            queued: false,
            over: false,
            last_read: now,
            last_write: now,
        }
    }

    /// This end's address: the [`Config::source_ip`] it was made from, if one was set,
    /// and the port the system chose.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.stream.local_addr()
    }

    /// Opens a session on `addr`, an address outside `config.addrs` (a cluster
    /// [`Redirect`]'s), logged in with `session_token` when given (the token of an
    /// earlier [`Connection::login`]), with the retry policy.
    pub async fn connect_at(
        config: &Config,
        addr: &str,
        session_token: Option<&str>,
    ) -> Result<Connection, Error> {
        config.check().map_err(Error::Config)?;
        let tokens = Tokens {
            resume: None,
            session: session_token,
        };
        let (conn, welcome) = connect::open_at(config, addr, tokens).await?;
        Ok(Connection::new(conn, welcome, config))
    }

    /// The socket and the bytes still buffered either way; the connection's own state
    /// (room, request ids) ends here.
    pub fn into_parts(self) -> Parts {
        let mut unwritten = self.out;
        unwritten.drain(..self.written);
        Parts {
            stream: self.stream,
            unread: self.inbound.into_unread(),
            unwritten,
        }
    }

    /// The session's `welcome`: its id and the limits to respect.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The room this connection is in, if any.
    pub fn room(&self) -> Option<&Room> {
        self.room.as_ref()
    }

    /// Whether the connection is over: an error that ends it (the server closed it, a
    /// fatal server error, a broken socket or protocol) was returned, and every call
    /// fails with [`Error::Closed`] since.
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// Bytes encoded and not yet written to the socket.
    pub fn unwritten(&self) -> usize {
        self.out.len() - self.written
    }

    /// The transport this connection speaks.
    pub fn transport(&self) -> Transport {
        self.framing.transport()
    }

    /// Logs in (`docs/protocol.md` section 5a): `provider` `"device"` with a device id
    /// the client keeps (8 to 128 visible ASCII characters; whoever has it is that
    /// player), or `"custom"` with what the game's backend checks. A server that requires
    /// logins (its default) refuses joins and inputs with `UNAUTHORIZED` until then.
    /// Requested like [`Connection::join`].
    pub async fn login(&mut self, provider: &str, credential: &str) -> Result<Session, Error> {
        self.ask(ask::login(provider, credential)).await
    }

    /// Joins a room of `kind` (join-or-create) and returns it once the server says
    /// `joined`; states of the room follow from [`Connection::recv`]. Each attempt is
    /// bounded by `request_timeout` and a timeout is retried by the policy. Messages that
    /// arrive before the reply (states of a room this connection was already in, chat,
    /// unprompted errors) are skipped; a `shutdown` fails the request with
    /// `SERVER_SHUTDOWN`.
    pub async fn join(&mut self, kind: &str) -> Result<Room, Error> {
        self.ask(ask::join(kind)).await
    }

    /// [`Connection::join`], except that in a cluster a `redirect` is returned
    /// ([`Seat::Elsewhere`]) for the caller to follow, as [`Client::join`](crate::Client::join)
    /// does itself.
    pub async fn join_or_redirect(&mut self, kind: &str) -> Result<Seat, Error> {
        Ok(match self.ask(ask::join_or_redirect(kind)).await? {
            ask::Seated::Here(room) => Seat::Here(room),
            ask::Seated::Elsewhere(to) => Seat::Elsewhere(to),
        })
    }

    /// Takes the seat a [`Redirect`]'s `ticket` reserved on this node (`claim_seat`,
    /// revision 4). One attempt, bounded by `request_timeout`: a ticket works once, so a
    /// retry could only be refused (`TICKET_USED`); join again instead.
    pub async fn claim_seat(&mut self, ticket: &str) -> Result<Room, Error> {
        let claim = ask::claim_seat(ticket);
        self.check()?;
        let since = self.next_req;
        let req = self.next_req();
        self.push(&claim.message(req))?;
        let reply = tokio::time::timeout(self.request_timeout, self.reply(since))
            .await
            .unwrap_or(Err(Error::Timeout("waiting for a reply")))?;
        claim.answer(reply)
    }

    /// [`Client::create`](crate::Client::create) on this connection, requested like
    /// [`Connection::join`].
    pub async fn create(
        &mut self,
        kind: &str,
        options: &[u8],
        private: bool,
    ) -> Result<Room, Error> {
        self.ask(ask::create(kind, options, private)).await
    }

    /// [`Client::join_or_create`](crate::Client::join_or_create) on this connection.
    pub async fn join_or_create(&mut self, kind: &str, options: &[u8]) -> Result<Room, Error> {
        self.ask(ask::join_or_create(kind, options)).await
    }

    /// [`Client::join_by_id`](crate::Client::join_by_id) on this connection.
    pub async fn join_by_id(&mut self, room_id: u64) -> Result<Room, Error> {
        self.ask(ask::join_by_id(room_id)).await
    }

    /// [`Client::join_by_code`](crate::Client::join_by_code) on this connection.
    pub async fn join_by_code(&mut self, code: &str) -> Result<Room, Error> {
        self.ask(ask::join_by_code(code)).await
    }

    /// [`Client::list_rooms`](crate::Client::list_rooms) on this connection.
    pub async fn list_rooms(
        &mut self,
        kind: &str,
        filter: &[u8],
        offset: u32,
        limit: u32,
    ) -> Result<RoomPage, Error> {
        self.ask(ask::list_rooms(kind, filter, offset, limit)).await
    }

    /// Enters the rating queue of `kind` with `options` (a MessagePack map, or empty for
    /// none) and `rating`; with `party`, every connected player of this connection's
    /// room comes along. Returns once queued (`ok`); the match arrives later from
    /// [`Connection::recv`] as [`Message::Matched`] (after a [`Message::Left`] when this
    /// player sat in a room), or the queue gives up with a `MATCH_TIMEOUT`
    /// [`Message::Error`].
    pub async fn queue(
        &mut self,
        kind: &str,
        options: &[u8],
        rating: f64,
        party: bool,
    ) -> Result<(), Error> {
        let was = self.queued;
        // Before the request: nothing of the match can arrive before its `ok`, but the
        // flag must be up when it does.
        self.queued = true;
        let queued = self.ask(ask::queue(kind, options, rating, party)).await;
        if let Err(e) = &queued {
            self.queued = was && e.code() == Some(ErrorCode::AlreadyQueued);
        }
        queued
    }

    /// Leaves the rating queue (`NOT_IN_QUEUE` when not in it).
    pub async fn leave_queue(&mut self) -> Result<(), Error> {
        let left = self.ask(ask::leave_queue()).await;
        self.queued = false;
        left
    }

    /// Leaves the current room; returns its id once the server says `left`, after the
    /// room's last state. Like [`Connection::join`], it skips what arrives before the
    /// reply.
    pub async fn leave(&mut self) -> Result<u64, Error> {
        self.ask(ask::leave()).await
    }

    /// Encodes one input into the write buffer; nothing is written yet (see
    /// [`Connection::try_flush`]). `seq` must increase from one input to the next (the
    /// server ignores a repeated one), `payload` is one MessagePack value for the game.
    /// Refused locally, before it could cost the connection, when the payload is not one
    /// value ([`Error::InvalidPayload`]) or the message exceeds the server's
    /// `max_message_bytes` ([`Error::TooLarge`]); refused when `max_outbound_bytes` are
    /// already waiting ([`Error::Backpressure`]).
    pub fn send_input(&mut self, seq: u32, payload: &[u8]) -> Result<(), Error> {
        // A payload that is not one value would be a malformed message, fatal.
        if !msgpack::is_single_value(payload) {
            return Err(Error::InvalidPayload);
        }
        self.push(&ClientMessage::Input { seq, payload })
    }

    /// Encodes a `ping` into the write buffer; its [`Message::Pong`] comes back from
    /// [`Connection::recv`]. This is the keep-alive of a connection that sends nothing
    /// else for a third of `timeout_ms`.
    pub fn send_ping(&mut self, nonce: u64) -> Result<(), Error> {
        self.push(&ClientMessage::Ping { nonce })
    }

    /// Writes what the buffer holds without waiting: returns whether it is all written.
    /// What the socket cannot take now stays buffered for the next flush or `recv`.
    pub fn try_flush(&mut self) -> Result<bool, Error> {
        self.check()?;
        while self.written < self.out.len() {
            match self.stream.try_write(&self.out[self.written..]) {
                Ok(0) => return Err(self.end(Error::PeerClosed)),
                Ok(n) => {
                    self.written += n;
                    self.last_write = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(self.end(e.into())),
            }
        }
        self.written_all();
        Ok(true)
    }

    /// Writes everything the buffer holds, waiting for the socket as long as it takes:
    /// bound it with a timeout. Cancel-safe: what was written is not written again.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.check()?;
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]).await {
                Ok(0) => return Err(self.end(Error::PeerClosed)),
                Ok(n) => {
                    self.written += n;
                    self.last_write = Instant::now();
                }
                Err(e) => return Err(self.end(e.into())),
            }
        }
        self.written_all();
        Ok(())
    }

    /// The next message from the server. Waits as long as the server is silent (bound
    /// it), writing what is buffered meanwhile; answers WebSocket pings itself. A
    /// [`Message::State`] borrows the read buffer until the next call.
    ///
    /// Fails when the connection is over: [`Error::PeerClosed`] when the server closed
    /// it, the server's error when it sent a fatal one (`TIMEOUT`, `SLOW_CONSUMER`,
    /// `BAD_MESSAGE`, ...), an IO or protocol error; the connection is then of no further
    /// use ([`Connection::is_over`]). Cancel-safe: a message is lost only if it was
    /// returned, and bytes read are kept for the next call, so `recv` can be one branch
    /// of a `select!` loop.
    pub async fn recv(&mut self) -> Result<Message<'_>, Error> {
        self.check()?;
        loop {
            match self.next()? {
                Some(Next::Found(found)) => return Ok(self.lend(found)),
                Some(Next::Reply { .. } | Next::Resumed(_) | Next::Nothing) => {}
                None => self.fill().await?,
            }
        }
    }

    /// Ends the session cleanly: leaves the room first if in one (over raw TCP a close
    /// without it looks like a drop, and the server would hold the seat), writes what is
    /// buffered, closes (WebSocket close frame, then FIN), and reads until the server
    /// closes too, so it has seen everything sent. Bounded (3 s); the socket is closed
    /// either way. A connection already over has nobody to say goodbye to: `Ok` at once.
    /// Fails when the goodbye could not finish: the connection broke meanwhile, or the
    /// bound passed ([`Error::Timeout`]).
    pub async fn close(mut self) -> Result<(), Error> {
        if self.over {
            return Ok(());
        }
        match tokio::time::timeout(CLOSE_LIMIT, self.goodbye()).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout("closing")),
        }
    }

    async fn goodbye(&mut self) -> Result<(), Error> {
        if self.room.is_some() {
            // One attempt: a room that closed meanwhile answers NOT_IN_ROOM, which is
            // fine, and a broken connection shows in the writes below.
            let since = self.next_req;
            let req = self.next_req();
            self.push(&ClientMessage::Leave { req })?;
            let _ = tokio::time::timeout(CLOSE_LEAVE_LIMIT, self.reply(since)).await;
        }
        self.farewell().await
    }

    /// The end of every goodbye: the WebSocket close frame after what is buffered, the
    /// FIN, then reads (discarded) until the server closes too. Unbounded: the caller
    /// bounds it.
    pub(crate) async fn farewell(&mut self) -> Result<(), Error> {
        self.framing.push_control(
            &mut self.out,
            Opcode::Close,
            &close_code::NORMAL.to_be_bytes(),
        );
        self.flush().await?;
        self.stream.shutdown().await?;
        self.inbound.discard();
        loop {
            self.inbound.buf.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.inbound.buf).await? == 0 {
                return Ok(());
            }
            self.inbound.buf.clear();
        }
    }

    /// A request with the retry policy: each attempt has a fresh id and its own
    /// timeout, and a reply to any attempt of this call answers it (a late reply to a
    /// timed-out attempt is as good as the next one's).
    async fn ask<T>(&mut self, ask: Ask<'_, T>) -> Result<T, Error> {
        self.check()?;
        let since = self.next_req;
        let mut attempt = 1;
        loop {
            let req = self.next_req();
            self.push(&ask.message(req))?;
            let outcome = tokio::time::timeout(self.request_timeout, self.reply(since))
                .await
                .unwrap_or(Err(Error::Timeout("waiting for a reply")));
            match outcome {
                // Only timeouts: any other failure of a single connection is final.
                Err(e)
                    if attempt < self.retry.max_attempts
                        && (matches!(e, Error::Timeout(_))
                            || e.code() == Some(ErrorCode::Timeout)) =>
                {
                    tokio::time::sleep(self.retry.delay(attempt, jitter_unit())).await;
                    attempt += 1;
                }
                done => return ask.answer(done?),
            }
        }
    }

    /// Reads until the reply to a request issued after id `since`.
    async fn reply(&mut self, since: u32) -> Result<Reply, Error> {
        loop {
            match self.next()? {
                Some(Next::Reply { req, reply })
                    if (1..=self.next_req.wrapping_sub(since))
                        .contains(&req.wrapping_sub(since)) =>
                {
                    return reply
                }
                Some(Next::Found(Found::Shutdown { reason, .. })) => {
                    return Err(Error::Server {
                        code: ErrorCode::ServerShutdown,
                        message: reason,
                    })
                }
                Some(_) => {}
                None => self.fill().await?,
            }
        }
    }

    /// One step for a task that also has other things to wait for (the `Client`'s): the
    /// next buffered unit if there is one, else one read or write (`None` then, so the
    /// caller looks at its other business before the next step). Cancel-safe, like
    /// [`Connection::recv`]; every error ends the connection.
    pub(crate) async fn step(&mut self) -> Result<Option<Next>, Error> {
        self.check()?;
        if let Some(next) = self.next()? {
            return Ok(Some(next));
        }
        self.fill().await?;
        Ok(None)
    }

    /// Takes `out`'s bytes to write, leaving an empty buffer there, once everything
    /// before is written (the caller asks when [`Connection::unwritten`] is 0). A swap,
    /// so two buffers alternate and neither is copied or reallocated.
    pub(crate) fn refill(&mut self, out: &mut Vec<u8>) {
        debug_assert_eq!(self.unwritten(), 0, "refilled over unwritten bytes");
        self.written_all();
        std::mem::swap(&mut self.out, out);
    }

    /// Sets the room this connection is in: a reconnection that asks its seat back.
    pub(crate) fn set_room(&mut self, room: Option<Room>) {
        self.room = room;
    }

    /// When bytes last came in (or the session began).
    pub(crate) fn last_read(&self) -> Instant {
        self.last_read
    }

    /// When bytes last went out (or the session began).
    pub(crate) fn last_write(&self) -> Instant {
        self.last_write
    }

    /// A fresh request id (never 0, which the protocol refuses).
    fn next_req(&mut self) -> u32 {
        self.next_req = self.next_req.wrapping_add(1).max(1);
        self.next_req
    }

    /// Encodes `msg` into the write buffer, within `max_outbound_bytes` (one message
    /// always fits in an empty buffer, however large).
    fn push(&mut self, msg: &ClientMessage<'_>) -> Result<(), Error> {
        self.check()?;
        let before = self.out.len();
        let max_body = self.welcome.max_message_bytes as usize;
        self.framing.push(&mut self.out, msg, max_body)?;
        if before > self.written && self.out.len() - self.written > self.max_outbound {
            self.out.truncate(before);
            return Err(Error::Backpressure);
        }
        Ok(())
    }

    fn written_all(&mut self) {
        self.out.clear();
        self.written = 0;
    }

    /// Fails with [`Error::Closed`] once the connection is over.
    fn check(&self) -> Result<(), Error> {
        if self.over {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Marks the connection over because of `e`, and returns it.
    fn end(&mut self, e: Error) -> Error {
        self.over = true;
        e
    }

    /// Waits until the socket has more bytes for the read buffer, writing what is
    /// buffered meanwhile (it returns early once that is all written, so the caller
    /// looks again). Every error ends the connection.
    async fn fill(&mut self) -> Result<(), Error> {
        let r = self.fill_once().await;
        r.map_err(|e| self.end(e))
    }

    async fn fill_once(&mut self) -> Result<(), Error> {
        let buf = &mut self.inbound.buf;
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let read = if self.written < self.out.len() {
            let (mut rd, mut wr) = self.stream.split();
            tokio::select! {
                r = rd.read_buf(buf) => r?,
                r = wr.write(&self.out[self.written..]) => {
                    match r? {
                        0 => return Err(Error::PeerClosed),
                        n => self.written += n,
                    }
                    self.last_write = Instant::now();
                    if self.written == self.out.len() {
                        self.written_all();
                    }
                    return Ok(());
                }
            }
        } else {
            self.stream.read_buf(buf).await?
        };
        if read == 0 {
            return Err(self.ended());
        }
        self.last_read = Instant::now();
        Ok(())
    }

    /// The error that ends a connection the server closed.
    fn ended(&mut self) -> Error {
        self.unknown_error.take().unwrap_or(Error::PeerClosed)
    }

    /// Decodes the next buffered unit and does what concerns the connection itself:
    /// answers pings, follows the room, ends on a close or a fatal error. `None` when
    /// more bytes are needed. Every error ends the connection.
    fn next(&mut self) -> Result<Option<Next>, Error> {
        let r = self.decode_next();
        r.map_err(|e| self.end(e))
    }

    fn decode_next(&mut self) -> Result<Option<Next>, Error> {
        let Some(unit) = self.inbound.next_span()? else {
            return Ok(None);
        };
        let body = match unit {
            Unit::Body(span) => span,
            Unit::Ping(span) => {
                self.framing
                    .push_control(&mut self.out, Opcode::Pong, self.inbound.span(span));
                self.try_flush()?;
                return Ok(Some(Next::Nothing));
            }
            Unit::Close => {
                // Answered in kind (RFC 6455 section 5.5.1); the connection is over
                // whether or not the answer gets through.
                self.framing.push_control(
                    &mut self.out,
                    Opcode::Close,
                    &close_code::NORMAL.to_be_bytes(),
                );
                let _ = self.try_flush();
                return Err(self.ended());
            }
            Unit::Nothing => return Ok(Some(Next::Nothing)),
        };
        if let Some((tick, last_seq, payload)) = peek_state(self.inbound.span(body)) {
            self.unknown_error = None;
            return Ok(Some(Next::Found(Found::State {
                tick,
                last_seq,
                payload: body.sub(payload),
            })));
        }
        let said = said(decode(self.inbound.span(body))?);
        if said.is_message() {
            self.unknown_error = None;
        }
        follow_room(&mut self.room, &said);
        let next = match said {
            // Well-formed states were decoded in place above; the full decoder accepts
            // exactly the same ones.
            Said::State => return Err(Error::Protocol("a state decoded two ways".into())),
            Said::Reply { req, reply } => Next::Reply { req, reply },
            Said::Resumed(room) if self.queued => {
                self.queued = false;
                Next::Found(Found::Matched(room))
            }
            Said::Resumed(room) => Next::Resumed(room),
            Said::MovedOut(room_id) => {
                // A party's member did not ask, but its match is coming all the same.
                self.queued = true;
                Next::Found(Found::Left(room_id))
            }
            Said::Pong(nonce) => Next::Found(Found::Pong(nonce)),
            Said::Chat(line) => Next::Found(Found::Chat(line)),
            Said::SpectatorState(s) => Next::Found(Found::SpectatorState(s)),
            Said::RoomClosed { room_id, reason } => {
                Next::Found(Found::RoomClosed { room_id, reason })
            }
            Said::Shutdown {
                reason,
                reconnect_after,
            } => Next::Found(Found::Shutdown {
                reason,
                reconnect_after,
            }),
            Said::Error(e) => {
                if e.code() == Some(ErrorCode::MatchTimeout) {
                    self.queued = false;
                }
                Next::Found(Found::Error(e))
            }
            Said::UnknownError(e) => {
                self.unknown_error = Some(e.clone());
                Next::Found(Found::Error(e))
            }
            // A `Connection` does not reconnect: a fatal code ends it (the server closes
            // after it), the others are reported.
            Said::ResumeFailed(e) | Said::Dropped(e) | Said::Fatal(e) => {
                if matches!(&e, Error::Server { code, .. } if code.is_fatal()) {
                    return Err(e);
                }
                Next::Found(Found::Error(e))
            }
            Said::Nothing | Said::Ignored => Next::Nothing,
        };
        Ok(Some(next))
    }

    /// `found` as the caller sees it, its payload lent from the read buffer.
    pub(crate) fn lend(&self, found: Found) -> Message<'_> {
        match found {
            Found::State {
                tick,
                last_seq,
                payload,
            } => Message::State(StateRef {
                tick,
                last_seq,
                payload: self.inbound.span(payload),
            }),
            Found::Chat(line) => Message::Chat(line),
            Found::SpectatorState(s) => Message::SpectatorState(s),
            Found::RoomClosed { room_id, reason } => Message::RoomClosed { room_id, reason },
            Found::Error(e) => Message::Error(e),
            Found::Pong(nonce) => Message::Pong { nonce },
            Found::Shutdown {
                reason,
                reconnect_after,
            } => Message::Shutdown {
                reason,
                reconnect_after,
            },
            Found::Matched(room) => Message::Matched(room),
            Found::Left(room_id) => Message::Left { room_id },
        }
    }
}
