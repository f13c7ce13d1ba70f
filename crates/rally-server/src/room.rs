//! A room: one task that owns one game and ticks it.
//!
//! Data flows one way: sessions queue inputs into the room's bounded input queue; each
//! tick the room applies every queued input, advances the game, and puts the state in
//! each player's outbound queue. Joins, leaves and chat come through a separate control
//! queue, handled as they arrive, so a join does not wait for a tick. Missed ticks are
//! skipped, never burst: the next tick covers the time of the ones skipped.
//!
//! A player whose connection drops keeps its seat for `reconnect_grace_ms` ("away"):
//! the game keeps it, no state is sent to it, and a new connection presenting the
//! session's resume token takes the seat back with the same player id. After the grace
//! the seat is freed like a leave. An account never holds two seats in one room: its
//! join into a room where it already sits takes that seat over the same way.
//!
//! A room ends when its last seat is released, when its game is over, when an operator
//! closes it or when the server shuts down (its token is a child of the server's).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rally_game::{CloseReason, PlayerId, Refusal, Tick};
use rally_protocol::{ErrorCode, ServerMessage};
use rally_store::AccountId;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::games::{GameObject, Kind};
use crate::matchmaker::Reservation;
use crate::metrics::{ErrorKind, TaskKind};
use crate::server::Shared;
use crate::session::{Outbound, SessionLink};

/// Control messages a room keeps for each seat: join, leave, chat, a few in flight each.
const CONTROL_PER_SEAT: usize = 4;
/// Inputs a room buffers per seat between two ticks.
const INPUTS_PER_SEAT: usize = 16;

/// One input on its way to a room.
#[derive(Debug)]
pub(crate) struct InputMsg {
    /// The sending session: inputs from a connection that lost its seat to a resumed
    /// one are dropped.
    pub(crate) session: u64,
    pub(crate) player: PlayerId,
    pub(crate) seq: u32,
    pub(crate) payload: Bytes,
}

/// Requests a room handles as they arrive.
pub(crate) enum Control {
    /// Seat a player. The room sends `joined` itself, so it precedes the first state.
    Join {
        link: SessionLink,
        req: u32,
        reservation: Reservation,
        /// The player's account (`None`: a guest, when logins are not required).
        account: Option<u64>,
        /// The membership's token, cancelled when the session no longer holds the seat.
        held: CancellationToken,
        reply: oneshot::Sender<Result<PlayerId, Refusal>>,
    },
    /// Free a player's seat (if `session` still holds it).
    Leave {
        player: PlayerId,
        session: u64,
        reply: Option<oneshot::Sender<()>>,
    },
    /// The player's connection dropped: keep the seat for the reconnect grace.
    Detach { player: PlayerId, session: u64 },
    /// A new connection takes an away (or half-open) seat back. The room sends `joined`
    /// with request id 0 itself.
    Resume {
        player: PlayerId,
        /// The token presented: the seat is taken only while this is still its token, so
        /// two connections presenting one token at once do not both get it.
        token: String,
        link: SessionLink,
        /// The new membership's token; the displaced one's is cancelled.
        held: CancellationToken,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// Say a line to everyone in the room (if `session` still holds the seat).
    Chat {
        player: PlayerId,
        session: u64,
        name: String,
        text: String,
        /// Whether the line was said.
        reply: oneshot::Sender<bool>,
    },
    /// Describe the seats (admin API).
    Inspect {
        reply: oneshot::Sender<Vec<SeatView>>,
    },
}

/// One seat as the admin API shows it.
#[derive(Debug, Clone)]
pub(crate) struct SeatView {
    pub(crate) player_id: PlayerId,
    /// The connected session; `None` while the player is away.
    pub(crate) session_id: Option<u64>,
    pub(crate) last_seq: u32,
    /// How long the seat is still held for an away player.
    pub(crate) away_for: Option<Duration>,
    /// The account that holds the seat (`None`: a guest).
    pub(crate) account: Option<u64>,
}

/// What anyone may read about a room without asking its task.
#[derive(Debug)]
pub(crate) struct RoomInfo {
    pub(crate) opened: std::time::Instant,
    /// The last tick run.
    tick: AtomicU64,
    /// How long the last tick took, in microseconds (the admin API's `tick_ms`).
    tick_micros: AtomicU64,
    /// Seats taken (players away included).
    players: AtomicUsize,
    /// The operator's words when the admin API closed the room.
    pub(crate) close_note: OnceLock<String>,
}

impl RoomInfo {
    pub(crate) fn tick(&self) -> u64 {
        self.tick.load(Ordering::Relaxed)
    }

    pub(crate) fn players(&self) -> usize {
        self.players.load(Ordering::Relaxed)
    }

    /// How long the last tick took.
    pub(crate) fn tick_time(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.tick_micros.load(Ordering::Relaxed))
    }
}

/// How sessions and the matchmaker reach a room.
#[derive(Debug, Clone)]
pub(crate) struct RoomHandle {
    pub(crate) id: u64,
    pub(crate) kind: Arc<str>,
    pub(crate) max_players: usize,
    pub(crate) control: mpsc::Sender<Control>,
    pub(crate) inputs: mpsc::Sender<InputMsg>,
    /// Cancelled when the room ends; a child of the server's shutdown token.
    pub(crate) token: CancellationToken,
    /// Why the room was cancelled, set by whoever cancels it (unset: server shutdown).
    pub(crate) reason: Arc<OnceLock<CloseReason>>,
    pub(crate) info: Arc<RoomInfo>,
}

impl RoomHandle {
    /// Ends the room for `reason` (the first reason given wins).
    pub(crate) fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Asks the room for its seats, bounded by `limit`; `None` if it did not answer (it
    /// ended, or it is too busy).
    pub(crate) async fn inspect(&self, limit: Duration) -> Option<Vec<SeatView>> {
        tokio::time::timeout(limit, async {
            let (reply, answer) = oneshot::channel();
            self.control.send(Control::Inspect { reply }).await.ok()?;
            answer.await.ok()
        })
        .await
        .ok()
        .flatten()
    }
}

/// A session's seat in a room.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub(crate) room: RoomHandle,
    pub(crate) player_id: PlayerId,
    /// Cancelled when this session stops holding the seat: another connection resumed
    /// it, or it was freed. A child of the room's token, so the room's end cancels it too.
    pub(crate) held: CancellationToken,
}

impl Membership {
    /// Whether the room still runs and this session still holds the seat.
    pub(crate) fn is_live(&self) -> bool {
        !self.held.is_cancelled()
    }
}

struct Seat {
    id: PlayerId,
    /// The connected session; `None` while the player is away.
    link: Option<SessionLink>,
    /// The token the player's next connection presents to take the seat back.
    token: Option<Arc<str>>,
    /// When an away player's seat is given up.
    away_until: Option<Instant>,
    last_seq: u32,
    /// The account that holds the seat; only it may resume the seat.
    account: Option<u64>,
    /// The session that last held the seat (connected or away): only it may free it.
    session: u64,
    /// The holding session's membership token; cancelled when the seat changes hands or
    /// is freed, so a displaced session knows it is in no room.
    held: CancellationToken,
}

impl Seat {
    fn held_by(&self, session: u64) -> bool {
        self.link.as_ref().is_some_and(|l| l.session_id == session)
    }
}

struct Room {
    shared: Arc<Shared>,
    handle: RoomHandle,
    game: Box<dyn GameObject>,
    /// Sorted by id (ids only grow), so lookups are a binary search.
    seats: Vec<Seat>,
    next_player: PlayerId,
    tick: u64,
    /// Reused tick buffers: the room state and the per-player views.
    room_buf: Vec<u8>,
    views: Vec<(PlayerId, Vec<u8>)>,
    /// Seats whose session was found gone (closed or slow) while sending; marked away
    /// after the send loop.
    gone: Vec<PlayerId>,
    /// `rally_tick_duration_seconds` for this room's kind, held so a tick records
    /// without a lookup.
    tick_duration: metrics::Histogram,
    /// Every account that took a seat, with its player id, for the match record.
    players: Vec<(PlayerId, u64)>,
    /// When the room opened: the match's start.
    opened_at: SystemTime,
}

/// Starts a room task and returns its handle.
pub(crate) fn spawn(shared: &Arc<Shared>, id: u64, kind: &str, spec: &Kind) -> RoomHandle {
    let (control, control_rx) = mpsc::channel(spec.max_players * CONTROL_PER_SEAT);
    let (inputs, inputs_rx) = mpsc::channel(spec.max_players * INPUTS_PER_SEAT);
    let handle = RoomHandle {
        id,
        kind: Arc::from(kind),
        max_players: spec.max_players,
        control,
        inputs,
        token: shared.shutdown.child_token(),
        reason: Arc::new(OnceLock::new()),
        info: Arc::new(RoomInfo {
            opened: std::time::Instant::now(),
            tick: AtomicU64::new(0),
            players: AtomicUsize::new(0),
            close_note: OnceLock::new(),
            tick_micros: AtomicU64::new(0),
        }),
    };
    let room = Room {
        shared: shared.clone(),
        handle: handle.clone(),
        game: (spec.factory)(),
        seats: Vec::with_capacity(spec.max_players.min(64)),
        next_player: 1,
        tick: 0,
        room_buf: Vec::new(),
        views: Vec::new(),
        gone: Vec::new(),
        tick_duration: shared.metrics.tick_histogram(kind),
        players: Vec::new(),
        opened_at: SystemTime::now(),
    };
    shared.tracker.spawn(room.run(control_rx, inputs_rx));
    handle
}

fn reason_text(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Empty => "the room is empty",
        CloseReason::GameOver => "the game is over",
        CloseReason::ServerShutdown => "the server is shutting down",
        CloseReason::Closed => "the room was closed by an operator",
    }
}

impl Room {
    async fn run(
        mut self,
        mut control: mpsc::Receiver<Control>,
        mut inputs: mpsc::Receiver<InputMsg>,
    ) {
        let task = self.shared.metrics.task(TaskKind::Room);
        let started = Instant::now();
        let period = self.shared.config.tick_period();
        let mut interval = tokio::time::interval_at(started + period, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut last = started;
        tracing::debug!(
            room_id = self.handle.id,
            kind = &*self.handle.kind,
            "room opened"
        );
        let token = self.handle.token.clone();
        let cancelled = token.cancelled();
        tokio::pin!(cancelled);
        let reason = loop {
            tokio::select! {
                biased;
                _ = &mut cancelled => {
                    break self.handle.reason.get().copied().unwrap_or(CloseReason::ServerShutdown);
                }
                Some(c) = control.recv() => self.on_control(c),
                now = interval.tick() => {
                    let periods = (now.duration_since(last).as_secs_f64() / period.as_secs_f64()).round().max(1.0);
                    last = now;
                    let missed = periods as u64 - 1;
                    if missed > 0 {
                        self.shared.stats.missed_ticks.fetch_add(missed, Ordering::Relaxed);
                    }
                    let took = std::time::Instant::now();
                    self.run_tick(&mut inputs, period.mul_f64(periods), now);
                    let took = took.elapsed();
                    self.tick_duration.record(took);
                    self.handle.info.tick_micros.store(took.as_micros() as u64, Ordering::Relaxed);
                    if self.game.is_over() {
                        break CloseReason::GameOver;
                    }
                }
            }
        };
        // Closed before the players hear `room_closed`: an input sent after it finds the
        // queue closed (NOT_IN_ROOM) rather than being dropped unseen.
        control.close();
        inputs.close();
        self.finish(reason, task.elapsed_ms());
    }

    fn seat(&mut self, player: PlayerId) -> Option<&mut Seat> {
        let at = self.seats.binary_search_by_key(&player, |s| s.id).ok()?;
        Some(&mut self.seats[at])
    }

    fn on_control(&mut self, c: Control) {
        match c {
            Control::Join {
                link,
                req,
                reservation,
                account,
                held,
                reply,
            } => {
                // An account never holds two seats in one room: a join that lands where
                // the account already sits (a connection it lost and could not resume, say
                // because the `welcome` with its new resume token never arrived; or another
                // device) takes that seat over, as a resume would.
                let sitting = account
                    .and_then(|a| self.seats.iter().find(|s| s.account == Some(a)))
                    .map(|s| s.id);
                if let Some(player) = sitting {
                    // The seat is counted already: the one reserved for the join goes back.
                    drop(reservation);
                    self.take_over(
                        player,
                        link,
                        held,
                        req,
                        "the seat was taken by a new connection of the same account",
                    );
                    if reply.send(Ok(player)).is_err() {
                        self.set_away(player);
                    }
                    return;
                }
                if self.seats.len() >= self.handle.max_players {
                    let _ = reply.send(Err(Refusal::new("the room is full")));
                    return;
                }
                let id = self.next_player;
                if let Err(refusal) = self.game.join(id) {
                    // Dropping the reservation frees the seat it held.
                    let _ = reply.send(Err(refusal));
                    return;
                }
                self.next_player += 1;
                reservation.keep();
                link.send(Outbound::Msg(self.joined(req, id)));
                let token = link.resume_token.clone();
                if let Some(t) = &token {
                    self.shared
                        .resume
                        .insert(t.clone(), self.handle.clone(), id, account);
                }
                let session = link.session_id;
                self.seats.push(Seat {
                    id,
                    link: Some(link),
                    token,
                    away_until: None,
                    last_seq: 0,
                    account,
                    session,
                    held,
                });
                self.count_players();
                if reply.send(Ok(id)).is_ok() {
                    if let Some(a) = account {
                        self.players.push((id, a));
                    }
                } else {
                    // The join was abandoned (its command timed out): undo it and say so.
                    self.notify(
                        id,
                        ServerMessage::RoomClosed {
                            room_id: self.handle.id,
                            reason: "the join did not complete in time".into(),
                        },
                    );
                    self.remove(id);
                }
            }
            Control::Leave {
                player,
                session,
                reply,
            } => {
                // Only the seat's own session frees it: a connection the seat was resumed
                // away from does not free it for the one that took it.
                if self.seat(player).is_some_and(|s| s.session == session) {
                    self.remove(player);
                }
                if let Some(r) = reply {
                    let _ = r.send(());
                }
            }
            Control::Detach { player, session } => {
                if self.seat(player).is_some_and(|s| s.held_by(session)) {
                    self.set_away(player);
                }
            }
            Control::Resume {
                player,
                token,
                link,
                held,
                reply,
            } => {
                let Some(seat) = self.seat(player) else {
                    let _ = reply.send(Err(Refusal::new("the seat is no longer held")));
                    return;
                };
                if seat.token.as_deref() != Some(token.as_str()) {
                    // Used already: an earlier resume replaced it with its own token.
                    let _ = reply.send(Err(Refusal::new("the resume token was already used")));
                    return;
                }
                self.take_over(
                    player,
                    link,
                    held,
                    0,
                    "the seat was resumed by a new connection",
                );
                if reply.send(Ok(())).is_err() {
                    self.set_away(player);
                }
            }
            Control::Chat {
                player,
                session,
                name,
                text,
                reply,
            } => {
                let said = self.seat(player).is_some_and(|s| s.held_by(session));
                if said {
                    let line = ServerMessage::ChatLine {
                        room_id: self.handle.id,
                        player_id: player,
                        name,
                        text,
                    };
                    for seat in &self.seats {
                        if let Some(link) = &seat.link {
                            if !link.send(Outbound::Msg(line.clone())) {
                                self.gone.push(seat.id);
                            }
                        }
                    }
                    self.mark_gone_away();
                }
                let _ = reply.send(said);
            }
            Control::Inspect { reply } => {
                let now = Instant::now();
                let seats = self
                    .seats
                    .iter()
                    .map(|s| SeatView {
                        player_id: s.id,
                        session_id: s.link.as_ref().map(|l| l.session_id),
                        last_seq: s.last_seq,
                        away_for: s.away_until.map(|t| t.saturating_duration_since(now)),
                        account: s.account,
                    })
                    .collect();
                let _ = reply.send(seats);
            }
        }
    }

    /// A new connection takes `player`'s seat, and gets `joined` with `req`: the
    /// connection that held it, if any (a half-open one the server has not noticed yet,
    /// or another of the account's), is told the room closed for it, `why`; the seat's
    /// resume token becomes the new connection's.
    fn take_over(
        &mut self,
        player: PlayerId,
        link: SessionLink,
        held: CancellationToken,
        req: u32,
        why: &str,
    ) {
        let (room_id, joined) = (self.handle.id, self.joined(req, player));
        let Some(seat) = self.seat(player) else {
            return;
        };
        if let Some(old) = seat.link.take() {
            old.send(Outbound::Msg(ServerMessage::RoomClosed {
                room_id,
                reason: why.into(),
            }));
        }
        // The displaced session is in no room from now on.
        std::mem::replace(&mut seat.held, held).cancel();
        seat.session = link.session_id;
        let old_token = std::mem::replace(&mut seat.token, link.resume_token.clone());
        let account = seat.account;
        seat.away_until = None;
        link.send(Outbound::Msg(joined));
        let new_token = seat.token.clone();
        seat.link = Some(link);
        if let Some(t) = old_token {
            self.shared.resume.remove(&t);
        }
        if let Some(t) = new_token {
            self.shared
                .resume
                .insert(t, self.handle.clone(), player, account);
        }
    }

    /// Publishes the seat count for the admin API and `/metrics`.
    fn count_players(&self) {
        self.handle
            .info
            .players
            .store(self.seats.len(), Ordering::Relaxed);
    }

    fn joined(&self, req: u32, player: PlayerId) -> ServerMessage {
        ServerMessage::Joined {
            req,
            room_id: self.handle.id,
            player_id: player,
            kind: self.handle.kind.to_string(),
            max_players: self.handle.max_players as u32,
        }
    }

    /// The player's connection is gone: hold the seat for the reconnect grace, or free it
    /// at once when there is no grace (or no token to come back with).
    fn set_away(&mut self, player: PlayerId) {
        let grace = self.shared.config.reconnect_grace();
        let Some(seat) = self.seat(player) else {
            return;
        };
        seat.link = None;
        if grace.is_zero() || seat.token.is_none() {
            self.remove(player);
        } else if seat.away_until.is_none() {
            seat.away_until = Some(Instant::now() + grace);
        }
    }

    fn mark_gone_away(&mut self) {
        while let Some(p) = self.gone.pop() {
            self.set_away(p);
        }
    }

    /// Frees the seats of players away for longer than the grace.
    fn expire_away(&mut self, now: Instant) {
        let expired: Vec<PlayerId> = self
            .seats
            .iter()
            .filter(|s| s.away_until.is_some_and(|t| t <= now))
            .map(|s| s.id)
            .collect();
        for p in expired {
            self.remove(p);
        }
    }

    fn notify(&mut self, player: PlayerId, msg: ServerMessage) {
        if let Some(link) = self.seat(player).and_then(|s| s.link.as_ref()) {
            if !link.send(Outbound::Msg(msg)) {
                self.gone.push(player);
            }
        }
    }

    /// Frees a seat: the game forgets the player, its resume token stops working, and the
    /// matchmaker gets the seat back.
    fn remove(&mut self, player: PlayerId) {
        if let Ok(at) = self.seats.binary_search_by_key(&player, |s| s.id) {
            let seat = self.seats.remove(at);
            seat.held.cancel();
            if let Some(t) = seat.token {
                self.shared.resume.remove(&t);
            }
            self.game.leave(player);
            self.count_players();
            self.shared.matchmaker.release(self.handle.id);
        }
    }

    fn run_tick(&mut self, inputs: &mut mpsc::Receiver<InputMsg>, dt: Duration, now: Instant) {
        self.expire_away(now);
        // Apply what is queued now; inputs arriving meanwhile wait for the next tick.
        for _ in 0..inputs.len() {
            let Ok(input) = inputs.try_recv() else { break };
            let Ok(at) = self.seats.binary_search_by_key(&input.player, |s| s.id) else {
                continue;
            };
            if input.seq <= self.seats[at].last_seq || !self.seats[at].held_by(input.session) {
                continue; // a duplicate, or from a connection that lost the seat
            }
            match self.game.input(input.player, input.seq, &input.payload) {
                Ok(()) => self.seats[at].last_seq = input.seq,
                Err(refusal) => {
                    self.shared
                        .stats
                        .count_error(ErrorKind::Room, ErrorCode::InputRejected);
                    if let Some(link) = &self.seats[at].link {
                        tracing::debug!(
                            session_id = link.session_id,
                            code = ErrorCode::InputRejected.name(),
                            room_id = self.handle.id,
                            detail = %refusal.0,
                            "error to client"
                        );
                    }
                    self.notify(
                        input.player,
                        ServerMessage::Error {
                            code: ErrorCode::InputRejected,
                            message: refusal.0,
                            req: 0,
                        },
                    )
                }
            }
        }
        self.tick += 1;
        self.handle.info.tick.store(self.tick, Ordering::Relaxed);
        self.room_buf.clear();
        self.views.clear();
        self.game.tick(&mut Tick::new(
            self.tick,
            dt,
            &mut self.room_buf,
            &mut self.views,
        ));
        let room_state =
            (!self.room_buf.is_empty()).then(|| Bytes::copy_from_slice(&self.room_buf));
        let views: Vec<(PlayerId, Bytes)> = self
            .views
            .drain(..)
            .map(|(p, v)| (p, Bytes::from(v)))
            .collect();
        for seat in &self.seats {
            let Some(link) = &seat.link else { continue };
            let payload = match views.iter().find(|(p, _)| *p == seat.id) {
                Some((_, v)) => v.clone(),
                None => match &room_state {
                    Some(s) => s.clone(),
                    None => continue,
                },
            };
            let state = ServerMessage::State {
                tick: self.tick,
                last_seq: seat.last_seq,
                payload,
            };
            if !link.send(Outbound::Msg(state)) {
                self.gone.push(seat.id);
            }
        }
        self.mark_gone_away();
    }

    fn finish(mut self, reason: CloseReason, duration_ms: u64) {
        self.game.shutdown(reason);
        self.record_match(duration_ms);
        let id = self.handle.id;
        let note = self.handle.info.close_note.get();
        for seat in &self.seats {
            if let Some(t) = &seat.token {
                self.shared.resume.remove(t);
            }
            if let Some(link) = &seat.link {
                if reason == CloseReason::Closed {
                    // An operator closed it: say so with a code a client can act on.
                    let message = match note {
                        Some(n) => format!("the room was closed by an operator: {n}"),
                        None => "the room was closed by an operator".to_owned(),
                    };
                    self.shared
                        .stats
                        .count_error(ErrorKind::Room, ErrorCode::RoomClosed);
                    tracing::info!(
                        session_id = link.session_id,
                        code = ErrorCode::RoomClosed.name(),
                        room_id = id,
                        detail = %message,
                        "error to client"
                    );
                    link.send(Outbound::Msg(ServerMessage::Error {
                        code: ErrorCode::RoomClosed,
                        message,
                        req: 0,
                    }));
                }
                link.send(Outbound::Msg(ServerMessage::RoomClosed {
                    room_id: id,
                    reason: reason_text(reason).into(),
                }));
            }
        }
        self.shared.matchmaker.remove(id);
        self.handle.close(reason);
        self.handle.info.players.store(0, Ordering::Relaxed);
        tracing::info!(
            task_id = %format_args!("room-{id}"),
            async_model = "async_await",
            duration_ms,
            room_id = id,
            kind = &*self.handle.kind,
            ticks = self.tick,
            players = self.seats.len(),
            reason = ?reason,
            "room ended"
        );
    }
}

impl Room {
    /// Hands the match record to the storage layer (which writes it in the background and
    /// flushes it at shutdown): every account that played, the game's result, and which
    /// player id each account had, as `{"players": {"<player id>": <account id>, ...},
    /// "result": <Game::result, or null>}`. Rooms nobody logged in to play are not recorded.
    fn record_match(&self, duration_ms: u64) {
        let Some(storage) = &self.shared.storage else {
            return;
        };
        if self.players.is_empty() {
            return;
        }
        let mut accounts: Vec<AccountId> = Vec::with_capacity(self.players.len());
        for (_, a) in &self.players {
            if let Ok(id) = i64::try_from(*a) {
                if !accounts.contains(&AccountId(id)) {
                    accounts.push(AccountId(id));
                }
            }
        }
        let seats: serde_json::Map<String, serde_json::Value> = self
            .players
            .iter()
            .map(|(p, a)| (p.to_string(), serde_json::Value::from(*a)))
            .collect();
        let result = serde_json::json!({
            "players": seats,
            "result": self.game.result().unwrap_or(serde_json::Value::Null),
        });
        storage.record_match(
            self.handle.kind.to_string(),
            accounts,
            self.opened_at,
            duration_ms,
            result,
        );
    }
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("id", &self.handle.id)
            .field("seats", &self.seats.len())
            .finish()
    }
}
