//! A room (play floor, its top): one task that owns one game and ticks it.
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
//!
//! A room is opened with options its game was made from, and is public (listed, found by
//! `join_or_create`) or private (joined by id or code only). Its game may publish
//! metadata and lock it ([`RoomControl`]); the room passes those on to the matchmaker.
//!
//! # Layout
//! - `env`: what every room task is given ([`RoomEnv`]).
//! - `control`: one method per control message.
//! - `tick`: one tick: inputs, the game, the states sent.
//! - this file: the task (start, run, finish, the match record) and the seat helpers.

mod control;
mod env;
mod tick;

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use rally_game::{CloseReason, Game, PlayerId, Rng, RoomControl, RoomOptions};
use rally_protocol::{ErrorCode, ServerMessage};
use rally_record::encode::{self, Header};
use rally_store::AccountId;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::error::{ClientError, CommandError};
use crate::games::{Kind, KindRules};
use crate::matchmaker::{FilterKey, NewRoom};
use crate::metrics::{ErrorKind, TaskKind};
use crate::outbox::{Outbound, ResumeToken, SessionLink};
use crate::recording::{RoomRecording, Summary, HASH_EVERY};
use crate::room_handle::{
    ControlReceiver, ControlSender, InputMsg, InputQueue, Reservation, RoomHandle, RoomInfo,
    RoomParts, SeatHold,
};

pub(crate) use env::RoomEnv;

/// Control messages a room keeps for each seat: join, leave, chat, a few in flight each.
const CONTROL_PER_SEAT: usize = 4;
/// Inputs a room buffers per seat between two ticks.
const INPUTS_PER_SEAT: usize = 16;
/// Spectators one room takes: each costs the room one queued message per state.
pub(crate) const MAX_SPECTATORS: usize = 64;

/// A session watching the room without a seat.
struct Spectator {
    link: SessionLink,
    /// Cancelled when the session stops watching (or ends).
    watching: CancellationToken,
}

struct Seat {
    id: PlayerId,
    /// The connected session; `None` while the player is away.
    link: Option<SessionLink>,
    /// The token the player's next connection presents to take the seat back.
    token: Option<ResumeToken>,
    /// When an away player's seat is given up.
    away_until: Option<Instant>,
    last_seq: u32,
    /// The account that holds the seat; only it may resume the seat.
    account: Option<u64>,
    /// The session that last held the seat (connected or away): only it may free it.
    session: u64,
    /// The holding session's membership token; cancelled when the seat changes hands or
    /// is freed, so a displaced session knows it is in no room.
    held: SeatHold,
    /// The player's team, from 1; 0 when the kind has no teams.
    team: u32,
}

impl Seat {
    fn held_by(&self, session: u64) -> bool {
        self.link.as_ref().is_some_and(|l| l.session_id == session)
    }
}

struct Room {
    env: Arc<RoomEnv>,
    handle: RoomHandle,
    game: Box<dyn Game>,
    /// Sorted by id (ids only grow), so lookups are a binary search.
    seats: Vec<Seat>,
    next_player: PlayerId,
    tick: u64,
    /// Reused tick buffers: the room state and the per-player views.
    room_buf: Vec<u8>,
    views: Vec<(PlayerId, Vec<u8>)>,
    /// Reused buffer a state is encoded into for writing it to a socket.
    write_buf: Vec<u8>,
    /// Seats whose session was found gone (closed or slow) while sending; marked away
    /// after the send loop.
    gone: Vec<PlayerId>,
    /// The inputs being applied this tick, swapped out of the handle's queue (kept
    /// between ticks so that neither side allocates in the steady state).
    inputs: Vec<InputMsg>,
    /// `rally_tick_duration_seconds` for this room's kind, held so a tick records
    /// without a lookup.
    tick_duration: metrics::Histogram,
    /// Every account that took a seat, with its player id, for the match record.
    players: Vec<(PlayerId, u64)>,
    /// When the room opened: the match's start.
    opened_at: SystemTime,
    /// The kind's rules: minimum players, teams.
    rules: KindRules,
    /// Whether the game was told it has its minimum of players ([`Game::start`]).
    started: bool,
    /// The game's random numbers ([`rally_game::Tick::rng`]), seeded per room; the seed is
    /// in the recording's header.
    rng: Rng,
    /// This match's recording; `None` when recording is off (or it was cut).
    recording: Option<RoomRecording>,
    /// Not seated, not counted in `max_players`, at most [`MAX_SPECTATORS`].
    spectators: Vec<Spectator>,
}

/// A fresh seed per room: from the OS, or, should that fail, from the clock (a seed
/// needs to differ between rooms, not to be secret).
fn room_seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    })
}

/// The registered kind, or `UNKNOWN_ROOM_KIND`.
fn kind_spec<'a>(env: &'a RoomEnv, kind: &str) -> Result<&'a Kind, CommandError> {
    env.games.get(kind).ok_or_else(|| {
        CommandError::new(ErrorCode::UnknownRoomKind, format!("no room kind {kind:?}"))
    })
}

/// Where `join_or_create` looks for rooms with these options: the kind, and the
/// canonical values of the kind's filter keys.
pub(crate) fn filter_key(kind: &str, rules: &KindRules, options: &RoomOptions) -> FilterKey {
    let mut values = Vec::new();
    for key in rules.keys() {
        values.extend_from_slice(&options.canonical(key));
    }
    (Arc::from(kind), values)
}

/// Makes the game for a new room, or says why the options are refused.
fn make_game(spec: &Kind, options: &RoomOptions) -> Result<Box<dyn Game>, CommandError> {
    (spec.factory)(options).map_err(|r| CommandError::new(ErrorCode::BadOptions, r.0))
}

/// Reserves a seat in the oldest open public room of `kind` whose options match
/// `options` on the kind's filter keys, opening one with `options` if there is none
/// (`join_or_create`, and `join` with no options).
pub(crate) fn join_or_create(
    env: &Arc<RoomEnv>,
    kind: &str,
    options: RoomOptions,
) -> Result<(RoomHandle, Reservation), CommandError> {
    let spec = kind_spec(env, kind)?;
    let filter = filter_key(kind, &spec.rules, &options);
    if let Some(found) = env.matchmaker.reserve_open(&filter)? {
        return Ok(found);
    }
    // Made outside the registry's lock: a game's factory is the game's code. If another
    // join opened a matching room meanwhile, that room is joined and this game dropped.
    let game = make_game(spec, &options)?;
    let room = NewRoom {
        kind: Arc::from(kind),
        private: false,
        reuse: true,
        filter,
    };
    let options = Arc::new(options);
    env.matchmaker.reserve_or_open(room, |id, code| {
        spawn(env, id, code, kind, spec, options, false, game)
    })
}

/// Opens a new room of `kind` with `options`, public or private, and reserves its first
/// seat (`create`).
pub(crate) fn create(
    env: &Arc<RoomEnv>,
    kind: &str,
    options: RoomOptions,
    private: bool,
) -> Result<(RoomHandle, Reservation), CommandError> {
    let spec = kind_spec(env, kind)?;
    let game = make_game(spec, &options)?;
    let room = NewRoom {
        kind: Arc::from(kind),
        private,
        reuse: false,
        filter: filter_key(kind, &spec.rules, &options),
    };
    let options = Arc::new(options);
    env.matchmaker.reserve_or_open(room, |id, code| {
        spawn(env, id, code, kind, spec, options, private, game)
    })
}

/// Reserves a seat in the room with this id (`join_by_id`).
pub(crate) fn reserve_id(
    env: &Arc<RoomEnv>,
    room_id: u64,
) -> Result<(RoomHandle, Reservation), CommandError> {
    env.matchmaker.reserve_id(room_id)
}

/// Reserves a seat in the room with this share code (`join_by_code`).
pub(crate) fn reserve_code(
    env: &Arc<RoomEnv>,
    code: &str,
) -> Result<(RoomHandle, Reservation), CommandError> {
    let id = env.matchmaker.find_code(code)?;
    env.matchmaker.reserve_id(id)
}

/// Starts a room task and returns its handle.
#[allow(clippy::too_many_arguments)] // one call per way of opening a room; a struct would only wrap them
fn spawn(
    env: &Arc<RoomEnv>,
    id: u64,
    code: Arc<str>,
    kind: &str,
    spec: &Kind,
    options: Arc<RoomOptions>,
    private: bool,
    game: Box<dyn Game>,
) -> RoomHandle {
    let (control, control_rx) = ControlSender::channel(spec.max_players * CONTROL_PER_SEAT);
    let handle = RoomHandle::new(RoomParts {
        id,
        kind: Arc::from(kind),
        code,
        private,
        options,
        max_players: spec.max_players,
        control,
        inputs: InputQueue::new(spec.max_players * INPUTS_PER_SEAT),
        token: env.shutdown.child_token(),
        reason: Arc::new(OnceLock::new()),
        info: Arc::new(RoomInfo::new()),
    });
    let seed = room_seed();
    let opened_at = SystemTime::now();
    let recording = env.recordings.as_ref().map(|r| {
        r.start(&Header {
            room_id: id,
            kind: kind.to_owned(),
            game_version: game.version().to_owned(),
            options: handle.options.to_bytes(),
            seed,
            tick_hz: (1.0 / env.tick_period.as_secs_f64()).round() as u32,
            hash_every: HASH_EVERY,
            started_unix_ms: opened_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        })
    });
    let room = Room {
        env: env.clone(),
        handle: handle.clone(),
        game,
        seats: Vec::with_capacity(spec.max_players.min(64)),
        next_player: 1,
        tick: 0,
        room_buf: Vec::new(),
        views: Vec::new(),
        write_buf: Vec::new(),
        gone: Vec::new(),
        inputs: Vec::new(),
        tick_duration: env.metrics.tick_histogram(kind),
        players: Vec::new(),
        rules: spec.rules.clone(),
        started: false,
        opened_at,
        rng: Rng::new(seed),
        recording,
        spectators: Vec::new(),
    };
    env.tracker.spawn(room.run(control_rx));
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

/// Closes a room's input queue when dropped.
struct CloseInputs(RoomHandle);

impl Drop for Room {
    /// However the room ends (at the end of `finish`, or a game that panics), the
    /// sessions that lent it their reads read for themselves again (and, the input queue
    /// closed first, do not lend them again).
    fn drop(&mut self) {
        for seat in &self.seats {
            if let Some(link) = &seat.link {
                link.ctl.give_back_lend(self.handle.id, seat.id);
            }
        }
    }
}

impl Drop for CloseInputs {
    fn drop(&mut self) {
        self.0.inputs.close();
    }
}

impl Room {
    async fn run(mut self, mut control: ControlReceiver) {
        let task = self.env.metrics.task(TaskKind::Room);
        // However the task ends (a game that panics included), later inputs find the
        // queue closed (NOT_IN_ROOM) rather than filling it for nobody.
        let _inputs_closed = CloseInputs(self.handle.clone());
        let started = Instant::now();
        let period = self.env.tick_period;
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
                Some(c) = control.recv() => self.on_control(*c),
                now = interval.tick() => {
                    let periods = (now.duration_since(last).as_secs_f64() / period.as_secs_f64()).round().max(1.0);
                    last = now;
                    let missed = periods as u64 - 1;
                    if missed > 0 {
                        self.env.metrics.stats.missed_ticks.fetch_add(missed, Ordering::Relaxed);
                    }
                    let took = std::time::Instant::now();
                    self.run_tick(period.mul_f64(periods), now);
                    let took = took.elapsed();
                    self.tick_duration.record(took);
                    self.handle
                        .info
                        .tick_micros
                        .store(took.as_micros() as u64, Ordering::Relaxed);
                    if self.game.is_over() {
                        break CloseReason::GameOver;
                    }
                }
            }
        };
        // Closed before the players hear `room_closed`: an input sent after it finds the
        // queue closed (NOT_IN_ROOM) rather than being dropped unseen.
        control.close();
        self.handle.inputs.close();
        self.finish(reason, task.elapsed_ms());
    }

    pub(super) fn seat(&mut self, player: PlayerId) -> Option<&mut Seat> {
        let at = self.seats.binary_search_by_key(&player, |s| s.id).ok()?;
        Some(&mut self.seats[at])
    }

    /// Publishes the seat count for the admin API and `/metrics`.
    pub(super) fn count_players(&self) {
        self.handle
            .info
            .players
            .store(self.seats.len(), Ordering::Relaxed);
    }

    pub(super) fn joined(&self, req: u32, player: PlayerId, team: u32) -> ServerMessage {
        ServerMessage::Joined {
            req,
            room_id: self.handle.id,
            player_id: player,
            kind: self.handle.kind.to_string(),
            max_players: self.handle.max_players as u32,
            code: self.handle.code.to_string(),
            team,
        }
    }

    /// Passes on what the game asked for: metadata to the room's info (listings, admin),
    /// a lock change to the matchmaker (which stops or resumes seating players here).
    pub(super) fn apply_control(&mut self, mut control: RoomControl) {
        if let Some(metadata) = control.take_metadata() {
            self.handle.info.set_metadata(Bytes::from(metadata));
        }
        if let Some(locked) = control.take_locked() {
            if locked != self.handle.info.is_locked() {
                self.env.matchmaker.set_locked(self.handle.id, locked);
            }
        }
    }

    /// The player's connection is gone: hold the seat for the reconnect grace, or free it
    /// at once when there is no grace (or no token to come back with).
    pub(super) fn set_away(&mut self, player: PlayerId) {
        let grace = self.env.reconnect_grace;
        let room_id = self.handle.id;
        let Some(seat) = self.seat(player) else {
            return;
        };
        if let Some(link) = seat.link.take() {
            link.ctl.give_back_lend(room_id, player);
        }
        if grace.is_zero() || seat.token.is_none() {
            self.remove(player);
        } else if seat.away_until.is_none() {
            seat.away_until = Some(Instant::now() + grace);
        }
    }

    pub(super) fn mark_gone_away(&mut self) {
        while let Some(p) = self.gone.pop() {
            self.set_away(p);
        }
    }

    /// Frees the seats of players away for longer than the grace.
    pub(super) fn expire_away(&mut self, now: Instant) {
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

    pub(super) fn notify(&mut self, player: PlayerId, msg: ServerMessage) {
        if let Some(link) = self.seat(player).and_then(|s| s.link.as_ref()) {
            if !link.send(Outbound::Msg(msg)) {
                self.gone.push(player);
            }
        }
    }

    /// Frees a seat: the game forgets the player, its resume token stops working, and the
    /// matchmaker gets the seat back.
    pub(super) fn remove(&mut self, player: PlayerId) {
        if let Ok(at) = self.seats.binary_search_by_key(&player, |s| s.id) {
            let seat = self.seats.remove(at);
            if let Some(link) = &seat.link {
                link.ctl.give_back_lend(self.handle.id, player);
            }
            seat.held.cancel();
            if let Some(t) = seat.token {
                self.env.resume.remove(&t);
            }
            if let Some(out) = self.recording.as_mut().and_then(RoomRecording::records) {
                encode::leave(out, player);
            }
            self.game.leave(player);
            self.count_players();
            self.env.matchmaker.release(self.handle.id);
        }
    }

    fn finish(mut self, reason: CloseReason, duration_ms: u64) {
        self.game.shutdown(reason);
        self.finish_recording(reason, duration_ms);
        self.record_match(duration_ms);
        let id = self.handle.id;
        let note = self.handle.info.close_note.get();
        for seat in &self.seats {
            if let Some(t) = &seat.token {
                self.env.resume.remove(t);
            }
            if let Some(link) = &seat.link {
                if reason == CloseReason::Closed {
                    // An operator closed it: say so with a code a client can act on.
                    let message = match note {
                        Some(n) => format!("the room was closed by an operator: {n}"),
                        None => "the room was closed by an operator".to_owned(),
                    };
                    self.env
                        .metrics
                        .stats
                        .count_error(ErrorKind::Room, ErrorCode::RoomClosed);
                    tracing::info!(
                        session_id = link.session_id,
                        code = ErrorCode::RoomClosed.name(),
                        room_id = id,
                        detail = %message,
                        "error to client"
                    );
                    link.send(Outbound::Msg(
                        ClientError::new(ErrorCode::RoomClosed, message).into_message(0),
                    ));
                }
                link.send(Outbound::Msg(ServerMessage::RoomClosed {
                    room_id: id,
                    reason: reason_text(reason).into(),
                }));
            }
        }
        for s in &self.spectators {
            s.link.send(Outbound::Msg(ServerMessage::RoomClosed {
                room_id: id,
                reason: reason_text(reason).into(),
            }));
        }
        self.env.matchmaker.remove(id);
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
        let Some(storage) = &self.env.storage else {
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

impl Room {
    /// Ends the recording with its trailer: the reason, the ticks, the duration and the
    /// game's result; the writer then fsyncs it.
    fn finish_recording(&mut self, reason: CloseReason, duration_ms: u64) {
        let Some(recording) = self.recording.take() else {
            return;
        };
        let result = self.game.result().unwrap_or(serde_json::Value::Null);
        let result = serde_json::to_string(&result).unwrap_or_else(|_| "null".to_owned());
        let mut players: Vec<u64> = self.players.iter().map(|(_, a)| *a).collect();
        players.sort_unstable();
        players.dedup();
        let end = encode::EndReason::from(reason);
        let summary = Summary {
            room_id: self.handle.id,
            kind: self.handle.kind.to_string(),
            game_version: self.game.version().to_owned(),
            tick_hz: (1.0 / self.env.tick_period.as_secs_f64()).round() as u32,
            started_unix_ms: self
                .opened_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            players,
            reason: Some(end.name().to_owned()),
            ticks: Some(self.tick),
            duration_ms: Some(duration_ms),
            complete: true,
            ..Summary::default()
        };
        let ticks = self.tick;
        recording.finish(
            |out| encode::end(out, end, ticks, duration_ms, &result),
            summary,
        );
    }
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: the game is a trait object without `Debug`.
        f.debug_struct("Room")
            .field("id", &self.handle.id)
            .field("seats", &self.seats.len())
            .finish()
    }
}
