//! Arena: the demo game and the benchmark scenario "arena-16 @ 20 Hz" (SPEC.md section 7).
//!
//! Up to 16 players move on a square field. Each input is a velocity; each tick moves
//! every player by its latest velocity and sends everyone one state listing every
//! player's id, position and last processed input seq.
//!
//! Rooms take one option, `mode`: `"classic"` (the default) or `"speed"` (players move
//! at twice [`SPEED`]); it is the kind's filter key, so `join_or_create` keeps the modes
//! apart, and each room publishes `{"mode": ...}` as its metadata.
//!
//! Wire formats (MessagePack, see `docs/protocol.md`):
//! - input payload: `[dx, dy]`, two numbers in -1.0..=1.0 (larger values are clamped;
//!   NaN or infinity is refused).
//! - state payload: `[[id, x, y, last_seq], ...]`, one entry per player in join order,
//!   `x` and `y` as float 32 in 0.0..=[`FIELD`].
//!
//! Deterministic (see `rally_game`'s "Determinism"): time comes from the tick, spawn
//! points from the player id, and [`Arena::state_hash`] covers every player's fields,
//! so a recorded match replays to the same hashes.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

use rally_game::msgpack::{self, Reader};
use rally_game::{Game, PlayerId, Refusal, RoomControl, RoomOptions, StateHasher, Tick};

/// The room kind name Arena is registered under.
pub const KIND: &str = "arena";
/// Seats per room.
pub const MAX_PLAYERS: usize = 16;
/// The field is FIELD x FIELD units.
pub const FIELD: f32 = 1000.0;
/// Units per second at full velocity.
pub const SPEED: f32 = 100.0;
/// The option key that picks the mode, and the kind's filter key.
pub const MODE: &str = "mode";

/// How fast players move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// [`SPEED`] units per second.
    #[default]
    Classic,
    /// Twice [`SPEED`].
    Speed,
}

impl Mode {
    /// The mode's name in options and metadata.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Classic => "classic",
            Mode::Speed => "speed",
        }
    }

    fn speed(self) -> f32 {
        match self {
            Mode::Classic => SPEED,
            Mode::Speed => 2.0 * SPEED,
        }
    }
}

#[derive(Debug, Clone)]
struct Player {
    id: PlayerId,
    x: f32,
    y: f32,
    /// Latest velocity, each in -1..=1.
    vx: f32,
    vy: f32,
    last_seq: u32,
}

/// One arena room's state.
#[derive(Debug, Default)]
pub struct Arena {
    /// In join order; at most 16, so a linear search beats a map.
    players: Vec<Player>,
    mode: Mode,
}

impl Arena {
    /// An empty arena in classic mode.
    pub fn new() -> Self {
        Arena::default()
    }

    /// An empty arena for a room created with `options`: `mode` is `"classic"` (or
    /// absent) or `"speed"`; any other value, or another type, is refused.
    pub fn from_options(options: &RoomOptions) -> Result<Self, Refusal> {
        let mode = match options.get(MODE) {
            None => Mode::Classic,
            Some(_) => match options.str(MODE) {
                Some("classic") => Mode::Classic,
                Some("speed") => Mode::Speed,
                _ => return Err(Refusal::new("arena mode must be \"classic\" or \"speed\"")),
            },
        };
        Ok(Arena {
            players: Vec::new(),
            mode,
        })
    }

    /// The room's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn player_mut(&mut self, id: PlayerId) -> Option<&mut Player> {
        self.players.iter_mut().find(|p| p.id == id)
    }
}

/// Reads an input payload `[dx, dy]`.
pub fn decode_input(payload: &[u8]) -> Result<(f32, f32), Refusal> {
    let bad = |_| Refusal::new("arena input must be [dx, dy] with two finite numbers");
    let mut r = Reader::new(payload);
    if r.read_array_len().map_err(bad)? < 2 {
        return Err(Refusal::new("arena input must be [dx, dy]"));
    }
    let dx = r.read_f64().map_err(bad)?;
    let dy = r.read_f64().map_err(bad)?;
    if !dx.is_finite() || !dy.is_finite() {
        return Err(Refusal::new("arena input must be finite numbers"));
    }
    Ok((dx.clamp(-1.0, 1.0) as f32, dy.clamp(-1.0, 1.0) as f32))
}

/// Writes an input payload `[dx, dy]` (for clients and bots).
pub fn encode_input(out: &mut Vec<u8>, dx: f32, dy: f32) {
    msgpack::write_array_len(out, 2);
    msgpack::write_f32(out, dx);
    msgpack::write_f32(out, dy);
}

/// One player's entry in a state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayerState {
    /// Player id.
    pub id: PlayerId,
    /// Position.
    pub x: f32,
    /// Position.
    pub y: f32,
    /// Last input seq processed for this player.
    pub last_seq: u32,
}

/// Reads a state payload (for clients and bots).
pub fn decode_state(payload: &[u8]) -> Result<Vec<PlayerState>, msgpack::ReadError> {
    let mut r = Reader::new(payload);
    let n = r.read_array_len()?;
    let mut out = Vec::with_capacity((n as usize).min(MAX_PLAYERS));
    for _ in 0..n {
        let fields = r.read_array_len()?;
        let p = PlayerState {
            id: r.read_u32()?,
            x: r.read_f64()? as f32,
            y: r.read_f64()? as f32,
            last_seq: r.read_u32()?,
        };
        for _ in 4..fields {
            r.skip_value()?;
        }
        out.push(p);
    }
    Ok(out)
}

impl Game for Arena {
    fn join(&mut self, player: PlayerId) -> Result<(), Refusal> {
        // Spread spawn points over the field without a random source, so runs repeat.
        let h = player.wrapping_mul(2_654_435_761);
        let x = (h % 1000) as f32 / 1000.0 * FIELD;
        let y = ((h / 1000) % 1000) as f32 / 1000.0 * FIELD;
        self.players.push(Player {
            id: player,
            x,
            y,
            vx: 0.0,
            vy: 0.0,
            last_seq: 0,
        });
        Ok(())
    }

    fn leave(&mut self, player: PlayerId) {
        self.players.retain(|p| p.id != player);
    }

    fn input(&mut self, player: PlayerId, seq: u32, payload: &[u8]) -> Result<(), Refusal> {
        let (dx, dy) = decode_input(payload)?;
        let p = self
            .player_mut(player)
            .ok_or_else(|| Refusal::new("not in this arena"))?;
        p.vx = dx;
        p.vy = dy;
        p.last_seq = seq;
        Ok(())
    }

    fn start(&mut self, room: &mut RoomControl) {
        // {"mode": "<mode>"}: what a lobby shows for the room.
        let mut metadata = Vec::new();
        msgpack::write_map_len(&mut metadata, 1);
        msgpack::write_str(&mut metadata, MODE);
        msgpack::write_str(&mut metadata, self.mode.name());
        // Small and well-formed, so never refused.
        let _ = room.set_metadata(&metadata);
    }

    fn tick(&mut self, tick: &mut Tick<'_>) {
        let step = self.mode.speed() * tick.dt().as_secs_f32();
        for p in &mut self.players {
            p.x = (p.x + p.vx * step).clamp(0.0, FIELD);
            p.y = (p.y + p.vy * step).clamp(0.0, FIELD);
        }
        let out = tick.room_state();
        msgpack::write_array_len(out, self.players.len() as u32);
        for p in &self.players {
            msgpack::write_array_len(out, 4);
            msgpack::write_uint(out, p.id.into());
            msgpack::write_f32(out, p.x);
            msgpack::write_f32(out, p.y);
            msgpack::write_uint(out, p.last_seq.into());
        }
    }

    /// Every player's id, position, velocity and last seq, in join order.
    fn state_hash(&self) -> Option<u64> {
        let mut h = StateHasher::new();
        for p in &self.players {
            h.u64(p.id.into()).f32(p.x).f32(p.y).f32(p.vx).f32(p.vy);
            h.u64(p.last_seq.into());
        }
        Some(h.finish())
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run_tick(game: &mut Arena, n: u64) -> Vec<PlayerState> {
        let (mut room, mut views) = (Vec::new(), Vec::new());
        game.tick(&mut Tick::new(
            n,
            Duration::from_millis(50),
            &mut room,
            &mut views,
        ));
        assert!(views.is_empty());
        assert!(msgpack::is_single_value(&room));
        decode_state(&room).unwrap()
    }

    #[test]
    fn inputs_move_players_and_state_lists_everyone() {
        let mut g = Arena::new();
        g.join(1).unwrap();
        g.join(2).unwrap();
        let before = run_tick(&mut g, 1);
        let mut input = Vec::new();
        encode_input(&mut input, 1.0, 0.0);
        g.input(1, 7, &input).unwrap();
        let after = run_tick(&mut g, 2);
        assert_eq!(after.len(), 2);
        assert_eq!(after[0].last_seq, 7);
        assert_eq!(after[1].last_seq, 0);
        if before[0].x < FIELD - 5.0 {
            assert!(
                (after[0].x - before[0].x - 5.0).abs() < 1e-3,
                "moved 100 u/s for 50 ms"
            );
        }
        assert_eq!(after[1].x, before[1].x);
    }

    #[test]
    fn bad_inputs_are_refused_and_big_ones_clamped() {
        let mut g = Arena::new();
        g.join(1).unwrap();
        assert!(g.input(1, 1, &[0xc0]).is_err());
        let mut nan = Vec::new();
        encode_input(&mut nan, f32::NAN, 0.0);
        assert!(g.input(1, 2, &nan).is_err());
        let mut big = Vec::new();
        encode_input(&mut big, 50.0, -50.0);
        assert_eq!(decode_input(&big), Ok((1.0, -1.0)));
    }

    #[test]
    fn the_state_hash_follows_the_state() {
        let mut g = Arena::new();
        g.join(1).unwrap();
        let h0 = g.state_hash();
        let mut input = Vec::new();
        encode_input(&mut input, 0.5, 0.0);
        g.input(1, 1, &input).unwrap();
        assert_ne!(g.state_hash(), h0, "a new velocity changes the hash");
        let h1 = g.state_hash();
        run_tick(&mut g, 1);
        assert_ne!(g.state_hash(), h1, "moving changes it");
    }
}

#[cfg(test)]
mod mode_tests {
    use super::*;

    fn options(mode: &[u8]) -> RoomOptions {
        let mut bytes = Vec::new();
        msgpack::write_map_len(&mut bytes, 1);
        msgpack::write_str(&mut bytes, MODE);
        bytes.extend_from_slice(mode);
        RoomOptions::parse(&bytes).unwrap()
    }

    fn s(v: &str) -> Vec<u8> {
        let mut out = Vec::new();
        msgpack::write_str(&mut out, v);
        out
    }

    #[test]
    fn the_mode_option_picks_the_speed_and_bad_modes_are_refused() {
        assert_eq!(
            Arena::from_options(&RoomOptions::empty()).unwrap().mode(),
            Mode::Classic
        );
        assert_eq!(
            Arena::from_options(&options(&s("speed"))).unwrap().mode(),
            Mode::Speed
        );
        assert!(Arena::from_options(&options(&s("warp"))).is_err());
        assert!(Arena::from_options(&options(&[0x01])).is_err());
        // A speed arena moves a player twice as far in one tick.
        let mut moved = Vec::new();
        for mode in ["classic", "speed"] {
            let mut arena = Arena::from_options(&options(&s(mode))).unwrap();
            arena.join(1).unwrap();
            let mut input = Vec::new();
            encode_input(&mut input, 1.0, 0.0);
            arena.input(1, 1, &input).unwrap();
            let x0 = arena.players[0].x;
            let (mut room, mut views) = (Vec::new(), Vec::new());
            let mut tick = Tick::new(1, std::time::Duration::from_secs(1), &mut room, &mut views);
            arena.tick(&mut tick);
            moved.push(arena.players[0].x - x0);
        }
        assert!(moved[0] > 0.0 && moved[1] > moved[0] * 1.5, "{moved:?}");
    }

    #[test]
    fn the_room_publishes_its_mode() {
        let mut arena = Arena::from_options(&options(&s("speed"))).unwrap();
        let mut control = RoomControl::new();
        arena.start(&mut control);
        let metadata = control.take_metadata().unwrap();
        assert_eq!(
            rally_game::to_json(&metadata),
            rally_game::serde_json::json!({"mode": "speed"})
        );
    }
}
