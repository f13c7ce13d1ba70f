//! Replaying a recording: a fresh game driven by the recorded calls, in the recorded
//! order, with the room's seed, checking each recorded state hash and the join answers
//! and the result the game gave.

use std::time::Duration;

use rally_game::{serde_json, Game, JoinContext, PlayerId, Rng, RoomControl, StateHasher, Tick};

use crate::encode::{CutReason, EndReason, Header};
use crate::reader::{ReadError, ReadErrorKind, Reader, Record};

/// The hash the server records after a tick: [`Game::state_hash`], or, for a game without
/// one, FNV-1a of the room state that tick wrote (empty when it wrote none).
pub fn state_hash(game: &dyn Game, room_state: &[u8]) -> u64 {
    game.state_hash()
        .unwrap_or_else(|| StateHasher::new().bytes(room_state).finish())
}

/// Where a replay stopped agreeing with its recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("diverged at tick {tick}: {what}")]
pub struct Divergence {
    /// The last tick run before the difference showed (0: before the first tick).
    pub tick: u64,
    /// What differed.
    pub what: String,
}

/// What one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A join, leave or input was applied.
    Applied,
    /// A tick ran: its states are in [`Replay::room_state`] and [`Replay::views`].
    Ticked(u64),
    /// A recorded hash matched.
    HashMatched(u64),
    /// The recording was cut short here.
    Cut(CutReason),
    /// The trailer: the game was shut down and its result matched.
    Ended(EndReason),
}

/// A game driven by a recording's records.
pub struct Replay {
    game: Box<dyn Game>,
    rng: Rng,
    tick: u64,
    /// Players seated now, as the room counted them for [`JoinContext::players`].
    players: usize,
    room_buf: Vec<u8>,
    views: Vec<(PlayerId, Vec<u8>)>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: the game is a trait object without `Debug`.
        f.debug_struct("Replay").field("tick", &self.tick).finish()
    }
}

impl Replay {
    /// A replay of the match `header` describes, on `game` (a fresh value of its kind).
    pub fn new(game: Box<dyn Game>, header: &Header) -> Self {
        Replay {
            game,
            rng: Rng::new(header.seed),
            tick: 0,
            players: 0,
            room_buf: Vec::new(),
            views: Vec::new(),
        }
    }

    /// The last tick run.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// The room state the last tick wrote (empty if none).
    pub fn room_state(&self) -> &[u8] {
        &self.room_buf
    }

    /// The per-player views the last tick wrote.
    pub fn views(&self) -> &[(PlayerId, Vec<u8>)] {
        &self.views
    }

    /// The game, e.g. to read its result.
    pub fn game(&self) -> &dyn Game {
        &*self.game
    }

    fn diverged(&self, what: String) -> Divergence {
        Divergence {
            tick: self.tick,
            what,
        }
    }

    /// Applies one record.
    pub fn apply(&mut self, record: &Record<'_>) -> Result<Step, Divergence> {
        match *record {
            Record::Join {
                player,
                team,
                accepted,
            } => {
                let mut control = RoomControl::new();
                let mut ctx = JoinContext::new(team, self.players, &mut control);
                let got = self.game.join_with(player, &mut ctx).is_ok();
                self.players += usize::from(got);
                if got != accepted {
                    return Err(self.diverged(format!(
                        "the game {} player {player}'s join, the recording says it {}",
                        if got { "accepted" } else { "refused" },
                        if accepted {
                            "accepted it"
                        } else {
                            "refused it"
                        },
                    )));
                }
            }
            Record::Start => self.game.start(&mut RoomControl::new()),
            Record::Leave { player } => {
                self.players = self.players.saturating_sub(1);
                self.game.leave(player);
            }
            Record::Input {
                player,
                seq,
                payload,
            } => {
                // Accepted or refused, the game saw it when it was recorded; a refusal
                // that should not be one shows up in the next hash.
                let _ = self.game.input(player, seq, payload);
            }
            Record::Tick { number, dt_nanos } => {
                if number != self.tick + 1 {
                    return Err(self.diverged(format!(
                        "the recording jumps from tick {} to tick {number}",
                        self.tick
                    )));
                }
                self.tick = number;
                self.room_buf.clear();
                self.views.clear();
                let tick = Tick::new(
                    number,
                    Duration::from_nanos(dt_nanos),
                    &mut self.room_buf,
                    &mut self.views,
                );
                self.game.tick(&mut tick.with_rng(&mut self.rng));
                return Ok(Step::Ticked(number));
            }
            Record::Hash { number, hash } => {
                if number != self.tick {
                    return Err(self.diverged(format!(
                        "a hash for tick {number} follows tick {}",
                        self.tick
                    )));
                }
                let got = state_hash(&*self.game, &self.room_buf);
                if got != hash {
                    return Err(self.diverged(format!(
                        "state hash {got:016x}, the recording has {hash:016x}"
                    )));
                }
                return Ok(Step::HashMatched(number));
            }
            Record::Cut { reason } => return Ok(Step::Cut(reason)),
            Record::End { reason, result, .. } => {
                self.game.shutdown(reason.into());
                let got = self.game.result().unwrap_or(serde_json::Value::Null);
                // Compared as values: key order in the text may differ between builds.
                let want: serde_json::Value =
                    serde_json::from_str(result).unwrap_or(serde_json::Value::Null);
                if got != want {
                    return Err(
                        self.diverged(format!("the result is {got}, the recording has {want}"))
                    );
                }
                return Ok(Step::Ended(reason));
            }
        }
        Ok(Step::Applied)
    }
}

/// What a whole-file check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The header.
    pub header: Header,
    /// Ticks replayed.
    pub ticks: u64,
    /// Recorded hashes that matched (all of them, when [`verify`] returns `Ok`).
    pub hashes: u64,
    /// How the file ends: `Ended` (complete), `Cut` (the server stopped recording it), or
    /// `None` when it just stops (a crash; see [`Report::truncated`]).
    pub ending: Option<Step>,
    /// Where the file ends inside a record (a crash or a copy cut short): everything
    /// before the offset was replayed.
    pub truncated: Option<ReadError>,
}

impl Report {
    /// Whether the file holds the whole match.
    pub fn complete(&self) -> bool {
        matches!(self.ending, Some(Step::Ended(_)))
    }
}

/// Why a file could not be verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The file is not a readable recording (or is corrupt past its header).
    #[error("unreadable recording: {0}")]
    Read(#[from] ReadError),
    /// No game for the recorded kind.
    #[error("no game for room kind {0:?}")]
    UnknownKind(String),
    /// The replay disagreed with the recording.
    #[error("{0}")]
    Diverged(#[from] Divergence),
}

/// Replays a whole file: `make` gives a fresh game for the header's kind, `each` sees the
/// replay after every step (to print states, or to pace them). A file that ends inside a
/// record is verified up to there and reported in [`Report::truncated`]; any other read
/// error is a [`VerifyError::Read`].
pub fn verify(
    bytes: &[u8],
    make: impl FnOnce(&Header) -> Option<Box<dyn Game>>,
    mut each: impl FnMut(&Replay, Step),
) -> Result<Report, VerifyError> {
    let (header, mut reader) = Reader::new(bytes)?;
    let game = make(&header).ok_or_else(|| VerifyError::UnknownKind(header.kind.clone()))?;
    let mut replay = Replay::new(game, &header);
    let mut report = Report {
        header,
        ticks: 0,
        hashes: 0,
        ending: None,
        truncated: None,
    };
    loop {
        let record = match reader.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) if e.kind == ReadErrorKind::Truncated => {
                report.truncated = Some(e);
                break;
            }
            Err(e) => return Err(e.into()),
        };
        let step = replay.apply(&record)?;
        match step {
            Step::Ticked(n) => report.ticks = n,
            Step::HashMatched(_) => report.hashes += 1,
            Step::Cut(_) | Step::Ended(_) => report.ending = Some(step),
            Step::Applied => {}
        }
        each(&replay, step);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode;

    /// Records a few arena ticks the way the server does, returning the file.
    fn record_arena(ticks: u64, seed: u64) -> Vec<u8> {
        let header = Header {
            room_id: 1,
            kind: "arena".into(),
            game_version: "test".into(),
            options: vec![0x80],
            seed,
            tick_hz: 20,
            hash_every: 2,
            started_unix_ms: 0,
        };
        let mut f = Vec::new();
        encode::header(&mut f, &header);
        let mut game = arena::Arena::new();
        let mut rng = Rng::new(seed);
        for p in 1..=3 {
            game.join(p).unwrap();
            encode::join(&mut f, p, 0, true);
        }
        let (mut room, mut views) = (Vec::new(), Vec::new());
        for n in 1..=ticks {
            let mut input = Vec::new();
            arena::encode_input(&mut input, rng.next_f32() * 2.0 - 1.0, 0.5);
            let p = (n % 3) as u32 + 1;
            game.input(p, n as u32, &input).unwrap();
            encode::input(&mut f, p, n as u32, &input);
            room.clear();
            views.clear();
            let tick = Tick::new(n, Duration::from_millis(50), &mut room, &mut views);
            game.tick(&mut tick.with_rng(&mut rng));
            encode::tick(&mut f, n, 50_000_000);
            if n % 2 == 0 {
                encode::hash(&mut f, n, state_hash(&game, &room));
            }
        }
        encode::end(&mut f, EndReason::Empty, ticks, 500, "null");
        f
    }

    fn make(h: &Header) -> Option<Box<dyn Game>> {
        (h.kind == "arena").then(|| Box::new(arena::Arena::new()) as Box<dyn Game>)
    }

    #[test]
    fn a_recorded_match_replays_with_every_hash_matching() {
        let f = record_arena(40, 9);
        let mut states = 0;
        let report = verify(&f, make, |r, s| {
            if matches!(s, Step::Ticked(_)) {
                assert!(!r.room_state().is_empty());
                states += 1;
            }
        })
        .unwrap();
        assert_eq!((report.ticks, report.hashes, states), (40, 20, 40));
        assert!(report.complete());
    }

    #[test]
    fn a_changed_input_is_found_at_its_tick() {
        let mut f = record_arena(40, 9);
        // The input payloads are [f32, 0.5]: flip a bit of the first float of a late input.
        let (_, mut r) = Reader::new(&f).unwrap();
        let mut at = None;
        let mut n = 0;
        while let Some(rec) = r.next_record().unwrap() {
            if let Record::Input { payload, .. } = rec {
                n += 1;
                if n == 31 {
                    at = Some(payload.as_ptr() as usize - f.as_ptr() as usize);
                }
            }
        }
        let at = at.unwrap();
        f[at + 3] ^= 0x40;
        let err = verify(&f, make, |_, _| {}).unwrap_err();
        let VerifyError::Diverged(d) = err else {
            panic!("{err:?}")
        };
        assert_eq!(d.tick, 32, "the first hash after tick 31's input: {d}");
    }

    #[test]
    fn another_seed_or_kind_is_refused_and_a_cut_file_replays_its_prefix() {
        let f = record_arena(10, 9);
        assert!(matches!(
            verify(&f, |_| None, |_, _| {}),
            Err(VerifyError::UnknownKind(k)) if k == "arena"
        ));
        let cut = &f[..f.len() - 3];
        let report = verify(cut, make, |_, _| {}).unwrap();
        assert_eq!(report.ticks, 10);
        assert!(!report.complete());
        assert!(report.truncated.is_some());
    }
}
