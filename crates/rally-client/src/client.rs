//! The [`Client`] handle: join a room, send inputs, chat, leave, ping, close.
//!
//! Requests (`join`, `leave`, `chat`) await their reply, matched by request id, each
//! attempt bounded by `request_timeout` and retried by the policy on a timeout or a
//! lost connection. Inputs never wait on the network: they are encoded into the
//! outgoing buffer and written by the connection task.

use std::sync::Arc;
use std::time::Duration;

use rally_protocol::{msgpack, ClientMessage, ErrorCode, Redacted};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::ask::{self, Ask};
use crate::config::Config;
use crate::connect::Tokens;
use crate::connection::Session;
use crate::error::Error;
use crate::events::Events;
use crate::retry::retry;
use crate::shared::{Key, Phase, Reply, Shared};
use crate::{connect, driver};

/// The server's `welcome`: the session and the limits the client must respect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The protocol version the server speaks.
    pub version: u32,
    /// This connection's session id (a new one after each reconnection).
    pub session_id: u64,
    /// States per second in a room; sending inputs faster gains nothing.
    pub tick_hz: u32,
    /// Largest message body the client may send; larger ones are refused locally
    /// ([`Error::TooLarge`]) since the server would close the connection for them.
    pub max_message_bytes: u32,
    /// The client must send a message at least this often; the SDK pings when idle.
    pub timeout_ms: u32,
    /// Messages the server queues for this client before dropping it as too slow.
    pub queue_capacity: u32,
    /// Takes this session's seat back after a drop (the SDK presents it itself). A
    /// secret: it is left out of `Debug` output.
    pub resume_token: Redacted<String>,
    /// How long the server keeps a dropped player's seat.
    pub reconnect_grace_ms: u32,
    /// The account this session is logged in as (by the session token sent in `hello`);
    /// 0 when not logged in.
    pub account_id: u64,
    /// The highest protocol revision the server speaks (2 adds rooms by code and id,
    /// options and listings; 1: a server that predates them).
    pub revision: u32,
}

/// The room this client is in, from `joined`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// The room.
    pub room_id: u64,
    /// This player's id in the room; kept across a resumed reconnection.
    pub player_id: u32,
    /// The room kind, e.g. `"arena"`.
    pub kind: String,
    /// Seats in the room.
    pub max_players: u32,
    /// The room's share code: give it to a friend for [`Client::join_by_code`] ("" from
    /// a server before revision 2).
    pub code: String,
    /// This player's team, from 1; 0 when the room kind has no teams.
    pub team: u32,
}

/// One page of a room listing ([`Client::list_rooms`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RoomPage {
    /// How many rooms match in all.
    pub total: u32,
    /// This page, oldest room first.
    pub rooms: Vec<RoomInfo>,
}

/// One open public room in a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomInfo {
    /// The room's id, for [`Client::join_by_id`].
    pub room_id: u64,
    /// The room kind.
    pub kind: String,
    /// The room's share code, for [`Client::join_by_code`].
    pub code: String,
    /// Seats taken.
    pub players: u32,
    /// Seats in all.
    pub max_players: u32,
    /// What the game published about the room: one MessagePack value (nil when none).
    pub metadata: Vec<u8>,
    /// How long the room has been open, in milliseconds.
    pub age_ms: u64,
    /// Whether the game locked the room (it takes no joins now).
    pub locked: bool,
}

impl From<rally_protocol::RoomListing> for RoomInfo {
    fn from(l: rally_protocol::RoomListing) -> Self {
        RoomInfo {
            room_id: l.room_id,
            kind: l.kind,
            code: l.code,
            players: l.players,
            max_players: l.max_players,
            metadata: l.metadata.to_vec(),
            age_ms: l.age_ms,
            locked: l.locked,
        }
    }
}

/// What this client watches, from `spectating`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spectating {
    /// The room watched (for a recording, the room that played it).
    pub room_id: u64,
    /// The room kind.
    pub kind: String,
    /// States per second.
    pub tick_hz: u32,
}

/// A connection to a Rally server. Methods take `&self`: share it behind an `Arc` to
/// send from several tasks. Dropping it aborts the connection; [`Client::close`] ends it
/// cleanly.
#[derive(Debug)]
pub struct Client {
    shared: Arc<Shared>,
    config: Arc<Config>,
    /// The connection task; awaited by `close`, aborted on drop.
    driver: Option<JoinHandle<()>>,
}

/// Bounds the wait for the connection task to finish its goodbye in `close`.
const CLOSE_LIMIT: Duration = Duration::from_secs(3);

impl Client {
    /// Connects to one of `config.addrs` (all at once when there are several), completes
    /// the handshake, and starts the connection task. Each address is tried with the
    /// retry policy. Fails with that address's last error when there is one address, or
    /// [`Error::AllFailed`] listing each when there are several.
    pub async fn connect(config: Config) -> Result<(Client, Events), Error> {
        config.check().map_err(Error::Config)?;
        let config = Arc::new(config);
        let (conn, welcome) = connect::open_any(&config, Tokens::default()).await?;
        let shared = Arc::new(Shared::new(
            welcome,
            config.transport,
            config.event_capacity,
            config.max_outbound_bytes,
        ));
        let driver = tokio::spawn(driver::run(shared.clone(), config.clone(), conn));
        let events = Events::new(shared.clone());
        Ok((
            Client {
                shared,
                config,
                driver: Some(driver),
            },
            events,
        ))
    }

    /// The current session's `welcome` (a new one after each reconnection).
    pub fn welcome(&self) -> Welcome {
        self.shared.lock().welcome.clone()
    }

    /// Logs in (`provider` `"device"` with a device id the application chose and keeps,
    /// e.g. a UUID; or `"custom"` with what the game's backend checks) and returns the
    /// session. A server that requires logins (its default) refuses joins, inputs and
    /// data requests with `UNAUTHORIZED` until then. The session token is kept and sent
    /// in the `hello` of every reconnection, so a resumed seat stays this account's; if
    /// it expired by then, an [`Event::Error`](crate::Event::Error) with `UNAUTHORIZED`
    /// says to log in again.
    pub async fn login(&self, provider: &str, credential: &str) -> Result<Session, Error> {
        self.ask(ask::login(provider, credential)).await
    }

    /// [`login`](Self::login) with a device id.
    pub async fn login_device(&self, device_id: &str) -> Result<Session, Error> {
        self.login("device", device_id).await
    }

    /// The room this client is in, if any.
    pub fn room(&self) -> Option<Room> {
        self.shared.lock().room.clone()
    }

    /// Joins a room of `kind` (join-or-create) and returns it once the server says
    /// `joined`; states of the room follow on the events stream.
    ///
    /// In a cluster the server may answer with a `redirect` to the node holding the seat
    /// it reserved: the client then moves its connection there (logged in again with its
    /// session token), claims the seat with the ticket, and returns that room, as if the
    /// first node had seated it. Reconnections after that try the new node first, then
    /// the configured addresses. [`create`](Self::create),
    /// [`join_or_create`](Self::join_or_create), [`join_by_id`](Self::join_by_id) and
    /// [`join_by_code`](Self::join_by_code) follow a redirect the same way.
    pub async fn join(&self, kind: &str) -> Result<Room, Error> {
        self.seat(ask::join_or_redirect(kind)).await
    }

    /// Sends a seating request; follows a `redirect` when the seat is on another node.
    async fn seat(&self, seating: ask::Ask<'_, ask::Seated>) -> Result<Room, Error> {
        match self.ask(seating).await? {
            ask::Seated::Here(room) => Ok(room),
            ask::Seated::Elsewhere(to) => self.follow(to).await,
        }
    }

    /// Moves to the node of a `redirect` and claims the seat there.
    async fn follow(&self, to: crate::shared::Redirect) -> Result<Room, Error> {
        let addr = match self.config.transport {
            rally_protocol::Transport::Tcp => to.tcp,
            rally_protocol::Transport::WebSocket => to.ws,
        };
        let (done, moved) = oneshot::channel();
        {
            let mut inner = self.shared.lock();
            if inner.phase != Phase::Connected {
                return Err(Error::ConnectionLost);
            }
            inner.move_to = Some(crate::shared::Move { addr, done });
        }
        self.shared.wake.notify_one();
        // The connection task opens the new connection with the retry policy, each
        // attempt bounded by `connect_timeout`; this bounds the whole move.
        let bound = self.config.connect_timeout * 4;
        match tokio::time::timeout(bound, moved).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(e),
            Ok(Err(_)) => return Err(Error::Closed),
            Err(_) => return Err(Error::Timeout("moving to the node holding the seat")),
        }
        // Once, never retried: a ticket is single-use, so a second attempt after a lost
        // reply could only be refused.
        let claim = ask::claim_seat(to.ticket.expose());
        let reply = self
            .request_once(|req, _| (Key::Req(req), claim.message(req)))
            .await?;
        claim.answer(reply)
    }

    /// Opens a new room of `kind` with `options` (one MessagePack map; `&[]` for none)
    /// and joins it. A `private` room stays out of listings and
    /// [`join_or_create`](Self::join_or_create): share its [`Room::code`] (or id) to let
    /// friends in. Refused with `BAD_OPTIONS` when the server or the game rejects the
    /// options.
    pub async fn create(&self, kind: &str, options: &[u8], private: bool) -> Result<Room, Error> {
        self.seat(ask::or_redirect(ask::create(kind, options, private)))
            .await
    }

    /// Joins the oldest open public room of `kind` whose options match `options` on the
    /// kind's filter keys, or opens one with `options`.
    pub async fn join_or_create(&self, kind: &str, options: &[u8]) -> Result<Room, Error> {
        self.seat(ask::or_redirect(ask::join_or_create(kind, options)))
            .await
    }

    /// Joins the room with this id (private ones too). `NO_SUCH_ROOM`, `ROOM_FULL`,
    /// `ROOM_LOCKED` or `JOIN_REFUSED` say why not.
    pub async fn join_by_id(&self, room_id: u64) -> Result<Room, Error> {
        self.seat(ask::or_redirect(ask::join_by_id(room_id))).await
    }

    /// Joins the room with this share code (6 characters, case does not matter).
    pub async fn join_by_code(&self, code: &str) -> Result<Room, Error> {
        self.seat(ask::or_redirect(ask::join_by_code(code))).await
    }

    /// A page of the open public rooms of `kind` whose options have the values in
    /// `filter` (a MessagePack map; `&[]` for all), oldest first, from `offset`; the
    /// server caps `limit` (at 50).
    pub async fn list_rooms(
        &self,
        kind: &str,
        filter: &[u8],
        offset: u32,
        limit: u32,
    ) -> Result<RoomPage, Error> {
        self.ask(ask::list_rooms(kind, filter, offset, limit)).await
    }

    /// Enters the rating queue of `kind` with `options` (a MessagePack map, or empty for
    /// none) and `rating`; with `party`, every connected player of this client's room
    /// comes along. Returns once queued; the match arrives as [`Event::Matched`] (after
    /// an [`Event::Left`] when this player sat in a room), or the queue gives up with an
    /// [`Event::Error`] of code `MATCH_TIMEOUT`.
    pub async fn queue(
        &self,
        kind: &str,
        options: &[u8],
        rating: f64,
        party: bool,
    ) -> Result<(), Error> {
        let ask = ask::queue(kind, options, rating, party);
        let was = std::mem::replace(&mut self.shared.lock().queued, true);
        let queued = retry(&self.config.retry, Error::is_retryable, || {
            // Raised with the request, under the lock that writes it: the match's
            // `joined` can only come after.
            self.request_once(|req, inner| {
                inner.queued = true;
                (Key::Req(req), ask.message(req))
            })
        })
        .await
        .and_then(|r| ask.answer(r));
        if let Err(e) = &queued {
            self.shared.lock().queued = was && e.code() == Some(ErrorCode::AlreadyQueued);
        }
        queued
    }

    /// Leaves the rating queue (`NOT_IN_QUEUE` when not in it).
    pub async fn leave_queue(&self) -> Result<(), Error> {
        let left = self.ask(ask::leave_queue()).await;
        self.shared.lock().queued = false;
        left
    }

    /// Sends one input: `seq` must increase from one input to the next (the server
    /// ignores a repeated one), `payload` is one MessagePack value for the game. Never
    /// waits on the network: the input is queued and written by the connection task.
    /// Refused while reconnecting ([`Error::ConnectionLost`]) and when
    /// `max_outbound_bytes` are already waiting ([`Error::Backpressure`]).
    pub fn send_input(&self, seq: u32, payload: &[u8]) -> Result<(), Error> {
        // A payload that is not one value would be a malformed message, fatal.
        if !msgpack::is_single_value(payload) {
            return Err(Error::InvalidPayload);
        }
        let wake = {
            let mut inner = self.shared.lock();
            match inner.phase {
                Phase::Connected => {}
                Phase::Reconnecting => return Err(Error::ConnectionLost),
                Phase::Closing | Phase::Closed => return Err(Error::Closed),
            }
            inner.push(&ClientMessage::Input { seq, payload })?
        };
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Says `text` to everyone in the room; returns once the server says `ok` (the line
    /// itself comes back on the events stream first).
    pub async fn chat(&self, text: &str) -> Result<(), Error> {
        self.ask(ask::chat(text)).await
    }

    /// Watches room `room_id` without a seat (protocol revision 3): its room states
    /// follow as [`Event::SpectatorState`](crate::Event::SpectatorState) until
    /// [`Event::RoomClosed`](crate::Event::RoomClosed) or [`Client::stop_spectating`].
    /// Replaces whatever this client watched before.
    pub async fn spectate(&self, room_id: u64) -> Result<Spectating, Error> {
        self.ask(ask::spectate(room_id)).await
    }

    /// Watches a finished match from its recording (`file`, a name `GET
    /// /admin/recordings` lists), through the same stream, at the recorded tick rate.
    pub async fn spectate_recording(&self, file: &str) -> Result<Spectating, Error> {
        self.ask(ask::spectate_recording(file)).await
    }

    /// Stops watching; `NOT_SPECTATING` when nothing was watched.
    pub async fn stop_spectating(&self) -> Result<(), Error> {
        self.ask(ask::stop_spectating()).await
    }

    /// Leaves the current room; returns its id once the server says `left`. No state of
    /// that room follows.
    pub async fn leave(&self) -> Result<u64, Error> {
        self.ask(ask::leave()).await
    }

    /// Sends a `ping` and returns the round-trip time once its `pong` arrives. Not
    /// retried: a retried ping would not measure anything. (The SDK pings by itself
    /// when idle; this is for measuring.) While seated in a room ticking at 20 Hz or
    /// more, the server reads the ping at the room's next tick (docs/protocol.md
    /// section 8), so the time includes up to one tick (50 ms at 20 Hz).
    pub async fn ping(&self) -> Result<Duration, Error> {
        let sent = Instant::now();
        match self
            .request_once(|_, inner| {
                let nonce = inner.next_nonce();
                (Key::Pong(nonce), ClientMessage::Ping { nonce })
            })
            .await?
        {
            Reply::Pong => Ok(sent.elapsed()),
            other => Err(Error::Protocol(format!("unexpected reply {other:?}"))),
        }
    }

    /// Ends the connection cleanly: leaves the room first (over raw TCP a bare close
    /// looks like a drop, and the server would hold the seat for `reconnect_grace_ms`),
    /// writes what is queued, closes, and waits (bounded) for the server to close too.
    pub async fn close(mut self) {
        let connected = self.shared.lock().phase == Phase::Connected;
        if connected && self.room().is_some() {
            // Best effort: a room that already closed answers NOT_IN_ROOM, which is fine.
            let _ = self
                .request_once(|req, _| (Key::Req(req), ClientMessage::Leave { req }))
                .await;
        }
        {
            let mut inner = self.shared.lock();
            if matches!(inner.phase, Phase::Connected | Phase::Reconnecting) {
                inner.phase = Phase::Closing;
            }
        }
        self.shared.wake.notify_one();
        if let Some(mut driver) = self.driver.take() {
            if tokio::time::timeout(CLOSE_LIMIT, &mut driver)
                .await
                .is_err()
            {
                driver.abort();
                self.shared.finish(None);
            }
        }
    }

    /// A request with the retry policy: each attempt has a fresh id and its own timeout.
    async fn ask<T>(&self, ask: Ask<'_, T>) -> Result<T, Error> {
        let reply = retry(&self.config.retry, Error::is_retryable, || {
            self.request_once(|req, _| (Key::Req(req), ask.message(req)))
        })
        .await?;
        ask.answer(reply)
    }

    /// Queues one message built by `build` (from a fresh request id and the shared
    /// state) and waits, bounded by `request_timeout`, for the reply to the key it names.
    async fn request_once<'m>(
        &self,
        build: impl FnOnce(u32, &mut crate::shared::Inner) -> (Key, ClientMessage<'m>),
    ) -> Result<Reply, Error> {
        let (tx, rx) = oneshot::channel();
        let (key, wake) = {
            let mut inner = self.shared.lock();
            // While reconnecting, the request waits in the buffer for the new session.
            if matches!(inner.phase, Phase::Closing | Phase::Closed) {
                return Err(Error::Closed);
            }
            let req = inner.next_req();
            let (key, msg) = build(req, &mut inner);
            let wake = inner.push(&msg)?;
            inner.wait_for(key, tx);
            (key, wake)
        };
        if wake {
            self.shared.wake.notify_one();
        }
        // Forgets the request however this future ends: reply, timeout or cancellation.
        let _forget = Forget {
            shared: &self.shared,
            key,
        };
        match tokio::time::timeout(self.config.request_timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout("waiting for a reply")),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            driver.abort();
            self.shared.finish(None);
        }
    }
}

/// Removes a pending request when its waiter goes away.
struct Forget<'a> {
    shared: &'a Shared,
    key: Key,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.shared.lock().forget(self.key);
    }
}
