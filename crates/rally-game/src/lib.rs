//! The trait a game developer implements to run a game on Rally.
//!
//! A game is plain, synchronous Rust: it never touches a socket, a clock or a task. The
//! server gives each room its own game value, made from the room's [`RoomOptions`] by the
//! factory registered for its kind and owned by the room's task, and calls it in this
//! order: [`Game::join_with`] (which calls [`Game::join`] unless overridden) and
//! [`Game::leave`] as players come and go, [`Game::start`] once when the room first has
//! its kind's minimum of players, [`Game::input`] for each queued input at the start of a
//! tick, then [`Game::tick`] once per tick, which advances the simulation and writes the
//! state to send. When the room ends for any reason, [`Game::shutdown`] is called once,
//! then [`Game::result`] for the match record. From `join_with`, `start` and `tick` a game
//! may publish metadata and lock or unlock its room ([`RoomControl`]).
//!
//! States and inputs are MessagePack values (see `docs/protocol.md`); [`msgpack`] reads
//! and writes them without allocating.
//!
//! # Determinism
//! Rally records matches and replays them (`docs/recordings.md`): a replay makes a new game
//! value and calls it with the recorded joins, leaves, inputs and ticks, in the recorded
//! order, and checks [`Game::state_hash`] against the recorded one. That works only if the
//! game's state is a function of those calls alone. So a deterministic game:
//! - takes time only from [`Tick::dt`] and [`Tick::number`], never from a clock;
//! - takes randomness only from [`Tick::rng`] (seeded per room, the seed is recorded),
//!   never from `rand::thread_rng`, the OS, addresses or a `HashMap`'s iteration order
//!   (its hasher is randomly seeded: iterate a `BTreeMap` or a `Vec` instead);
//! - keeps no state outside its value (no globals, statics, files or network);
//! - does the same thing with the same floats on every run (no `f32::mul_add` that the
//!   target may fuse differently, no threads racing).
//!
//! # Layout
//! - [`Game`]: the trait.
//! - [`Tick`]: what one tick gets and where it writes its state.
//! - [`Rng`], [`StateHasher`] (`rng`): the tick's seeded random numbers, and a stable hash
//!   for [`Game::state_hash`].
//! - [`Refusal`], [`CloseReason`]: what a game can refuse, and why a room ends.
//! - `options`: [`RoomOptions`], the bounded map a room is created with.
//! - `room`: [`RoomControl`] (metadata, lock) and [`JoinContext`] (what a join is told).
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod options;
mod rng;
mod room;

use std::time::Duration;

pub use options::{
    to_json, Filter, OptionsError, RoomOptions, MAX_OPTIONS_BYTES, MAX_OPTION_DEPTH,
    MAX_OPTION_ENTRIES, MAX_OPTION_KEY_BYTES,
};
pub use room::{JoinContext, RoomControl, MAX_METADATA_BYTES};

pub use rally_protocol::msgpack;
pub use rng::{Rng, StateHasher};
/// The JSON values [`Game::result`] returns, so a game needs no dependency of its own.
pub use serde_json;

/// A player's id inside one room. Ids start at 1 and are not reused within a room.
pub type PlayerId = u32;

/// A game's "no": the join or input is refused and the client gets an error with this text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Refusal {
    /// A refusal with a message for the client.
    pub fn new(message: impl Into<String>) -> Self {
        Refusal(message.into())
    }
}

/// Why a room is ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The last player left.
    Empty,
    /// The game said it is over ([`Game::is_over`]).
    GameOver,
    /// The server is shutting down.
    ServerShutdown,
    /// An operator closed the room.
    Closed,
}

/// One tick: its number, the time it covers, and the buffers the state goes into.
///
/// Write one MessagePack value with [`Tick::room_state`] to send everyone the same
/// state, and/or one with [`Tick::player_state`] to give a player its own view (it then
/// gets its view instead of the room state). Write nothing to send nothing this tick.
/// Draw random numbers from [`Tick::rng`] only (see "Determinism" in the crate docs).
#[derive(Debug)]
pub struct Tick<'a> {
    number: u64,
    dt: Duration,
    room: &'a mut Vec<u8>,
    views: &'a mut Vec<(PlayerId, Vec<u8>)>,
    /// Metadata and lock changes the game asks for this tick.
    control: RoomControl,
    rng: RngSlot<'a>,
}

/// The room's generator, or, for a tick made without one (a game's unit test), one seeded
/// by the tick number so the test still repeats.
#[derive(Debug)]
enum RngSlot<'a> {
    Room(&'a mut Rng),
    Own(Rng),
}

impl<'a> Tick<'a> {
    /// A tick writing into the given buffers. The server makes these; tests of a game may too.
    pub fn new(
        number: u64,
        dt: Duration,
        room: &'a mut Vec<u8>,
        views: &'a mut Vec<(PlayerId, Vec<u8>)>,
    ) -> Self {
        Tick {
            number,
            dt,
            room,
            views,
            control: RoomControl::default(),
            rng: RngSlot::Own(Rng::new(number)),
        }
    }

    /// This tick draws from `rng`: the room's generator, which lives as long as the room
    /// (its seed is in the match's recording).
    pub fn with_rng(mut self, rng: &'a mut Rng) -> Self {
        self.rng = RngSlot::Room(rng);
        self
    }

    /// The room's seeded random number generator: the only source of randomness a
    /// deterministic game uses.
    pub fn rng(&mut self) -> &mut Rng {
        match &mut self.rng {
            RngSlot::Room(r) => r,
            RngSlot::Own(r) => r,
        }
    }

    /// Metadata and lock changes for the room (e.g. lock it when the match starts); the
    /// server applies them after the tick.
    pub fn room(&mut self) -> &mut RoomControl {
        &mut self.control
    }

    /// The changes asked for this tick (for the server, after [`Game::tick`]).
    pub fn take_control(&mut self) -> RoomControl {
        std::mem::take(&mut self.control)
    }

    /// The tick number, from 1, increasing by one per tick run (skipped ticks are not numbered).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Simulated time this tick covers: one tick period, or more after skipped ticks.
    pub fn dt(&self) -> Duration {
        self.dt
    }

    /// The buffer for the state everyone gets; append exactly one MessagePack value.
    pub fn room_state(&mut self) -> &mut Vec<u8> {
        self.room
    }

    /// The buffer for `player`'s own view; append exactly one MessagePack value.
    pub fn player_state(&mut self, player: PlayerId) -> &mut Vec<u8> {
        let at = match self.views.iter().position(|(p, _)| *p == player) {
            Some(at) => at,
            None => {
                self.views.push((player, Vec::new()));
                self.views.len() - 1
            }
        };
        &mut self.views[at].1
    }
}

/// A game: the state of one room and the rules that move it.
pub trait Game: Send + 'static {
    /// A player takes a seat. Refuse to keep them out (e.g. the match has started); the
    /// client gets `JOIN_REFUSED` with the refusal's text. The default takes everyone.
    fn join(&mut self, player: PlayerId) -> Result<(), Refusal> {
        let _ = player;
        Ok(())
    }

    /// [`Game::join`] with the seat's context: its team, the seats already taken, and
    /// the room's metadata and lock. Override it instead of `join` to use them; the
    /// default calls `join`.
    fn join_with(&mut self, player: PlayerId, ctx: &mut JoinContext<'_>) -> Result<(), Refusal> {
        let _ = ctx;
        self.join(player)
    }

    /// The room has its kind's minimum of players for the first time (called once, after
    /// the join that made it so; at once after the first join for kinds without a
    /// minimum). A game that waits for players starts its match here.
    fn start(&mut self, room: &mut RoomControl) {
        let _ = room;
    }

    /// A player left or was disconnected.
    fn leave(&mut self, player: PlayerId);

    /// One input from `player`, with its sequence number and its payload (one MessagePack
    /// value, not yet checked). Refuse it when it makes no sense to the game; the player's
    /// processed seq then does not advance.
    fn input(&mut self, player: PlayerId, seq: u32, payload: &[u8]) -> Result<(), Refusal>;

    /// Advance the simulation by one tick and write the state to send.
    fn tick(&mut self, tick: &mut Tick<'_>);

    /// True once the game has ended; the room sends that tick's state and closes.
    fn is_over(&self) -> bool {
        false
    }

    /// The room is ending; called once, after the last tick.
    fn shutdown(&mut self, reason: CloseReason) {
        let _ = reason;
    }

    /// The match's result, recorded with the match when the room ends (called once, after
    /// [`Game::shutdown`]): any JSON value, e.g. `{"winner": 1}`, naming players by their
    /// [`PlayerId`]s (the record maps those to accounts). `None`, the default, records the
    /// match with a `null` result. Keep it small: the server refuses results over 64 KiB
    /// of JSON.
    fn result(&self) -> Option<serde_json::Value> {
        None
    }

    /// A hash of the game's whole state, recorded every few ticks so a replay can show
    /// that it reached the same state (use [`StateHasher`]: it is stable across builds).
    /// `None`, the default, makes the server hash the room state the last tick wrote
    /// instead: enough for a game whose room state shows all of its state, blind to what
    /// it keeps hidden (per-player views are not hashed).
    fn state_hash(&self) -> Option<u64> {
        None
    }

    /// The game's version, written in each recording's header, so a replay can say that
    /// it runs a match under another version than the one that played it.
    fn version(&self) -> &str {
        ""
    }
}
