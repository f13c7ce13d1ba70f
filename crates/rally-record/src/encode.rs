//! The recording format (version 1) and its writer: one function per record, appending
//! to a `Vec<u8>`, so the room encodes a tick's records into one reused buffer.
//!
//! A file is `MAGIC`, a version byte, then records. A record is a tag byte, its body's
//! length as a LEB128 varint, and the body; integers in bodies are LEB128 varints except
//! the seed and hashes (8 bytes, little-endian), byte strings are a varint length and the
//! bytes. A reader skips a record whose tag it does not know, so version 1 can grow new
//! records; a change to an existing one takes a new version.

/// The first bytes of every recording.
pub const MAGIC: &[u8; 8] = b"RALLYREC";
/// The version this crate writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Record tags.
pub(crate) mod tag {
    pub(crate) const HEADER: u8 = 1;
    pub(crate) const JOIN: u8 = 2;
    pub(crate) const LEAVE: u8 = 3;
    pub(crate) const INPUT: u8 = 4;
    pub(crate) const TICK: u8 = 5;
    pub(crate) const HASH: u8 = 6;
    pub(crate) const CUT: u8 = 7;
    pub(crate) const END: u8 = 8;
    pub(crate) const START: u8 = 9;
}

/// What a match was: the first record of every file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The room's id on the server that played it.
    pub room_id: u64,
    /// The room kind (the game a replay must run).
    pub kind: String,
    /// [`rally_game::Game::version`] of the game that played it.
    pub game_version: String,
    /// The room's options, one MessagePack value (an empty map when the kind has none).
    pub options: Vec<u8>,
    /// The seed of the room's [`rally_game::Rng`].
    pub seed: u64,
    /// Ticks per second.
    pub tick_hz: u32,
    /// A state hash is recorded after every tick whose number is a multiple of this.
    pub hash_every: u32,
    /// When the room opened, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
}

/// Why a match ended, as its trailer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The last player left.
    Empty = 1,
    /// The game said it is over.
    GameOver = 2,
    /// The server shut down.
    ServerShutdown = 3,
    /// An operator closed the room.
    Closed = 4,
}

impl EndReason {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => EndReason::Empty,
            2 => EndReason::GameOver,
            3 => EndReason::ServerShutdown,
            4 => EndReason::Closed,
            _ => return None,
        })
    }

    /// The name used in listings and `--json` output.
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Empty => "empty",
            EndReason::GameOver => "game_over",
            EndReason::ServerShutdown => "server_shutdown",
            EndReason::Closed => "closed",
        }
    }
}

impl From<rally_game::CloseReason> for EndReason {
    fn from(r: rally_game::CloseReason) -> Self {
        match r {
            rally_game::CloseReason::Empty => EndReason::Empty,
            rally_game::CloseReason::GameOver => EndReason::GameOver,
            rally_game::CloseReason::ServerShutdown => EndReason::ServerShutdown,
            rally_game::CloseReason::Closed => EndReason::Closed,
        }
    }
}

impl From<EndReason> for rally_game::CloseReason {
    fn from(r: EndReason) -> Self {
        match r {
            EndReason::Empty => rally_game::CloseReason::Empty,
            EndReason::GameOver => rally_game::CloseReason::GameOver,
            EndReason::ServerShutdown => rally_game::CloseReason::ServerShutdown,
            EndReason::Closed => rally_game::CloseReason::Closed,
        }
    }
}

/// Why a recording was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutReason {
    /// The disk did not keep up: the room's buffer to the writer was full.
    BufferFull = 1,
    /// A write failed (a full disk, a file size limit, a read-only directory).
    WriteError = 2,
}

impl CutReason {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => CutReason::BufferFull,
            2 => CutReason::WriteError,
            _ => return None,
        })
    }

    /// The name used in metrics labels and messages.
    pub fn name(self) -> &'static str {
        match self {
            CutReason::BufferFull => "buffer_full",
            CutReason::WriteError => "write_error",
        }
    }
}

pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Writes one record: the tag, then the body, then its length is slipped in before the
/// body (the length is known only once the body is written; bodies are small).
fn record(out: &mut Vec<u8>, tag: u8, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let start = out.len();
    body(out);
    let len = out.len() - start;
    let mut prefix = [0u8; 10];
    let mut n = 0;
    let mut v = len as u64;
    while v >= 0x80 {
        prefix[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    prefix[n] = v as u8;
    n += 1;
    out.splice(start..start, prefix[..n].iter().copied());
}

/// The file's start: magic, version and the header record.
pub fn header(out: &mut Vec<u8>, h: &Header) {
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    record(out, tag::HEADER, |o| {
        varint(o, h.room_id);
        bytes(o, h.kind.as_bytes());
        bytes(o, h.game_version.as_bytes());
        bytes(o, &h.options);
        o.extend_from_slice(&h.seed.to_le_bytes());
        varint(o, h.tick_hz.into());
        varint(o, h.hash_every.into());
        varint(o, h.started_unix_ms);
    });
}

/// `Game::join_with(player, ..)` was called with `team` (0: the kind has no teams);
/// `accepted` is what it answered.
pub fn join(out: &mut Vec<u8>, player: u32, team: u32, accepted: bool) {
    record(out, tag::JOIN, |o| {
        varint(o, player.into());
        varint(o, team.into());
        o.push(u8::from(accepted));
    });
}

/// `Game::start` was called: the room reached the kind's minimum of players.
pub fn start(out: &mut Vec<u8>) {
    record(out, tag::START, |_| {});
}

/// `Game::leave(player)` was called.
pub fn leave(out: &mut Vec<u8>, player: u32) {
    record(out, tag::LEAVE, |o| varint(o, player.into()));
}

/// `Game::input(player, seq, payload)` was called (accepted or refused: the game saw it).
pub fn input(out: &mut Vec<u8>, player: u32, seq: u32, payload: &[u8]) {
    record(out, tag::INPUT, |o| {
        varint(o, player.into());
        varint(o, seq.into());
        bytes(o, payload);
    });
}

/// `Game::tick` ran as tick `number`, covering `dt_nanos`.
pub fn tick(out: &mut Vec<u8>, number: u64, dt_nanos: u64) {
    record(out, tag::TICK, |o| {
        varint(o, number);
        varint(o, dt_nanos);
    });
}

/// The state hash after tick `number`.
pub fn hash(out: &mut Vec<u8>, number: u64, hash: u64) {
    record(out, tag::HASH, |o| {
        varint(o, number);
        o.extend_from_slice(&hash.to_le_bytes());
    });
}

/// The recording stops here, cut short; nothing follows.
pub fn cut(out: &mut Vec<u8>, reason: CutReason) {
    record(out, tag::CUT, |o| o.push(reason as u8));
}

/// The trailer: why the match ended, its ticks, its duration and `Game::result` as JSON.
pub fn end(out: &mut Vec<u8>, reason: EndReason, ticks: u64, duration_ms: u64, result: &str) {
    record(out, tag::END, |o| {
        o.push(reason as u8);
        varint(o, ticks);
        varint(o, duration_ms);
        bytes(o, result.as_bytes());
    });
}
