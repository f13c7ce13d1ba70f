//! Tic-tac-toe: a turn-based example showing that Rally's game trait fits more than
//! real-time games.
//!
//! Unlike Arena it sends a per-player view (each player learns its own mark), sends a
//! state only when something changed, and ends: the room closes after the final state.
//!
//! A private match between friends: one player `create`s a private room (it never shows
//! in listings nor takes `join_or_create` players) and shares the room's code; the other
//! sends `join_by_code`. When the second player sits down the room locks itself and
//! publishes `{"status": "playing"}`.
//!
//! Wire formats (MessagePack):
//! - input payload: a cell index `0..=8` (row-major).
//! - state payload: a map `{"you": "X"|"O", "board": "X.O......", "turn": player_id (0 when
//!   nobody is to move), "result": "waiting"|"playing"|"x_won"|"o_won"|"draw"|"forfeit"}`.
//!   The same map without `"you"` is the room state, which only spectators get (a
//!   player's own view replaces it).
//! - match result ([`Game::result`], recorded when the room ends): the outcome and the
//!   winner's player id.
//!
//! Deterministic: it uses no time and no randomness, and [`TicTacToe::state_hash`] covers
//! the seats, the board, the turn and the outcome.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

use rally_game::msgpack::{self, Reader};
use rally_game::{serde_json, Game, JoinContext, PlayerId, Refusal, StateHasher, Tick};

/// The room kind name tic-tac-toe is registered under.
pub const KIND: &str = "tictactoe";
/// Seats per room.
pub const MAX_PLAYERS: usize = 2;

const LINES: [[usize; 3]; 8] = [
    [0, 1, 2],
    [3, 4, 5],
    [6, 7, 8],
    [0, 3, 6],
    [1, 4, 7],
    [2, 5, 8],
    [0, 4, 8],
    [2, 4, 6],
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Waiting,
    Playing,
    Won(usize),
    Draw,
    /// The player with this mark index won because the other left.
    Forfeit(usize),
}

/// One tic-tac-toe match.
#[derive(Debug)]
pub struct TicTacToe {
    /// Players by mark: index 0 plays X and moves first, index 1 plays O.
    seats: [Option<PlayerId>; 2],
    /// Cells: None, or the mark index that took it.
    board: [Option<usize>; 9],
    /// Mark index to move.
    turn: usize,
    outcome: Outcome,
    /// Whether players have seen the latest board.
    dirty: bool,
}

impl Default for TicTacToe {
    fn default() -> Self {
        TicTacToe {
            seats: [None, None],
            board: [None; 9],
            turn: 0,
            outcome: Outcome::Waiting,
            dirty: false,
        }
    }
}

impl TicTacToe {
    /// An empty board waiting for two players.
    pub fn new() -> Self {
        TicTacToe::default()
    }

    fn mark_of(&self, player: PlayerId) -> Option<usize> {
        self.seats.iter().position(|s| *s == Some(player))
    }

    fn settle(&mut self) {
        for line in LINES {
            if let [Some(a), Some(b), Some(c)] = line.map(|i| self.board[i]) {
                if a == b && b == c {
                    self.outcome = Outcome::Won(a);
                    return;
                }
            }
        }
        if self.board.iter().all(Option::is_some) {
            self.outcome = Outcome::Draw;
        }
    }

    fn result_name(&self) -> &'static str {
        match self.outcome {
            Outcome::Waiting => "waiting",
            Outcome::Playing => "playing",
            Outcome::Won(0) => "x_won",
            Outcome::Won(_) => "o_won",
            Outcome::Draw => "draw",
            Outcome::Forfeit(_) => "forfeit",
        }
    }
}

impl Game for TicTacToe {
    fn join_with(&mut self, player: PlayerId, ctx: &mut JoinContext<'_>) -> Result<(), Refusal> {
        self.join(player)?;
        if self.outcome == Outcome::Playing {
            // No one else may sit down once the match is on, even after a player leaves.
            ctx.room().lock();
            let mut metadata = Vec::new();
            msgpack::write_map_len(&mut metadata, 1);
            msgpack::write_str(&mut metadata, "status");
            msgpack::write_str(&mut metadata, "playing");
            // Small and well-formed, so never refused.
            let _ = ctx.room().set_metadata(&metadata);
        }
        Ok(())
    }

    fn join(&mut self, player: PlayerId) -> Result<(), Refusal> {
        if self.outcome != Outcome::Waiting {
            return Err(Refusal::new("this match has already started"));
        }
        let free = self
            .seats
            .iter()
            .position(Option::is_none)
            .ok_or_else(|| Refusal::new("full"))?;
        self.seats[free] = Some(player);
        if self.seats.iter().all(Option::is_some) {
            self.outcome = Outcome::Playing;
        }
        self.dirty = true;
        Ok(())
    }

    fn leave(&mut self, player: PlayerId) {
        if let Some(mark) = self.mark_of(player) {
            match self.outcome {
                Outcome::Waiting => self.seats[mark] = None,
                Outcome::Playing => self.outcome = Outcome::Forfeit(1 - mark),
                _ => {}
            }
            self.dirty = true;
        }
    }

    fn input(&mut self, player: PlayerId, _seq: u32, payload: &[u8]) -> Result<(), Refusal> {
        let mark = self
            .mark_of(player)
            .ok_or_else(|| Refusal::new("not seated"))?;
        if self.outcome != Outcome::Playing {
            return Err(Refusal::new("the match is not in play"));
        }
        if mark != self.turn {
            return Err(Refusal::new("not your turn"));
        }
        let cell = Reader::new(payload)
            .read_u32()
            .ok()
            .filter(|c| *c < 9)
            .ok_or_else(|| Refusal::new("input must be a cell index 0..=8"))?
            as usize;
        if self.board[cell].is_some() {
            return Err(Refusal::new("cell taken"));
        }
        self.board[cell] = Some(mark);
        self.turn = 1 - self.turn;
        self.settle();
        self.dirty = true;
        Ok(())
    }

    fn tick(&mut self, tick: &mut Tick<'_>) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let board: String = self
            .board
            .iter()
            .map(|c| match c {
                Some(0) => 'X',
                Some(_) => 'O',
                None => '.',
            })
            .collect();
        let turn = match self.outcome {
            Outcome::Playing => self.seats[self.turn].unwrap_or(0),
            _ => 0,
        };
        // For spectators: players get their own view instead.
        let out = tick.room_state();
        msgpack::write_map_len(out, 3);
        msgpack::write_str(out, "board");
        msgpack::write_str(out, &board);
        msgpack::write_str(out, "turn");
        msgpack::write_uint(out, turn.into());
        msgpack::write_str(out, "result");
        msgpack::write_str(out, self.result_name());
        for (mark, seat) in self.seats.iter().enumerate() {
            let Some(player) = *seat else { continue };
            let out = tick.player_state(player);
            msgpack::write_map_len(out, 4);
            msgpack::write_str(out, "you");
            msgpack::write_str(out, if mark == 0 { "X" } else { "O" });
            msgpack::write_str(out, "board");
            msgpack::write_str(out, &board);
            msgpack::write_str(out, "turn");
            msgpack::write_uint(out, turn.into());
            msgpack::write_str(out, "result");
            msgpack::write_str(out, self.result_name());
        }
    }

    fn is_over(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Won(_) | Outcome::Draw | Outcome::Forfeit(_)
        )
    }

    /// `{"outcome": "x_won"|"o_won"|"draw"|"forfeit"|..., "winner": player id or null,
    /// "x": player id or null, "o": player id or null, "moves": cells played}`.
    fn result(&self) -> Option<serde_json::Value> {
        let winner = match self.outcome {
            Outcome::Won(mark) | Outcome::Forfeit(mark) => self.seats[mark],
            _ => None,
        };
        Some(serde_json::json!({
            "outcome": self.result_name(),
            "winner": winner,
            "x": self.seats[0],
            "o": self.seats[1],
            "moves": self.board.iter().filter(|c| c.is_some()).count(),
        }))
    }

    fn state_hash(&self) -> Option<u64> {
        let mut h = StateHasher::new();
        for s in self.seats {
            h.u64(s.map_or(0, u64::from));
        }
        for c in self.board {
            h.u64(c.map_or(9, |m| m as u64));
        }
        let outcome = match self.outcome {
            Outcome::Waiting => 0,
            Outcome::Playing => 1,
            Outcome::Won(m) => 2 + m as u64,
            Outcome::Draw => 4,
            Outcome::Forfeit(m) => 5 + m as u64,
        };
        h.u64(self.turn as u64)
            .u64(outcome)
            .u64(u64::from(self.dirty));
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

    fn cell(i: u64) -> Vec<u8> {
        let mut v = Vec::new();
        msgpack::write_uint(&mut v, i);
        v
    }

    fn views(g: &mut TicTacToe) -> Vec<(PlayerId, Vec<u8>)> {
        let (mut room, mut views) = (Vec::new(), Vec::new());
        g.tick(&mut Tick::new(
            1,
            Duration::from_millis(50),
            &mut room,
            &mut views,
        ));
        assert!(
            room.is_empty() == views.is_empty(),
            "a room state for spectators whenever players get views"
        );
        views
    }

    #[test]
    fn x_wins_a_row_and_the_game_ends() {
        let mut g = TicTacToe::new();
        g.join(1).unwrap();
        g.join(2).unwrap();
        assert_eq!(views(&mut g).len(), 2);
        assert!(views(&mut g).is_empty(), "no change, no state");
        assert!(g.input(2, 1, &cell(0)).is_err(), "O cannot move first");
        for (p, c) in [(1, 0), (2, 3), (1, 1), (2, 4)] {
            g.input(p, 1, &cell(c)).unwrap();
        }
        assert!(g.input(1, 1, &cell(3)).is_err(), "cell taken");
        assert!(!g.is_over());
        g.input(1, 1, &cell(2)).unwrap();
        assert!(g.is_over());
        let v = views(&mut g);
        assert!(v.iter().all(|(_, s)| s.windows(5).any(|w| w == b"x_won")));
        let r = g.result().unwrap();
        assert_eq!(
            r,
            serde_json::json!({"outcome": "x_won", "winner": 1, "x": 1, "o": 2, "moves": 5})
        );
    }

    #[test]
    fn leaving_mid_game_forfeits() {
        let mut g = TicTacToe::new();
        g.join(1).unwrap();
        g.join(2).unwrap();
        g.leave(1);
        assert!(g.is_over());
        assert!(g.join(3).is_err());
        let r = g.result().unwrap();
        assert_eq!(
            (r["outcome"].as_str(), r["winner"].as_u64()),
            (Some("forfeit"), Some(2))
        );
    }

    #[test]
    fn the_second_player_locks_the_room() {
        let mut g = TicTacToe::new();
        let mut room = rally_game::RoomControl::new();
        g.join_with(1, &mut JoinContext::new(0, 0, &mut room))
            .unwrap();
        assert!(room.is_empty(), "one player: still open");
        g.join_with(2, &mut JoinContext::new(0, 1, &mut room))
            .unwrap();
        assert_eq!(room.take_locked(), Some(true));
        let metadata = room.take_metadata().unwrap();
        assert_eq!(
            rally_game::to_json(&metadata),
            serde_json::json!({"status": "playing"})
        );
    }
}
