//! What a game may say about its room to the world outside it: metadata for listings,
//! and whether the room takes new joins ([`RoomControl`]); and what a join is told
//! ([`JoinContext`]).

use rally_protocol::msgpack;

use crate::Refusal;

/// Largest metadata value, in bytes of MessagePack.
pub const MAX_METADATA_BYTES: usize = 1024;

/// Changes a game asks for, applied by the server after the call that made them
/// ([`crate::Game::tick`], [`crate::Game::join_with`], [`crate::Game::start`]).
/// Nothing changes unless the game asks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoomControl {
    /// New metadata (one MessagePack value), if the game set some.
    metadata: Option<Vec<u8>>,
    /// The new lock state, if the game changed it.
    locked: Option<bool>,
}

impl RoomControl {
    /// No changes.
    pub fn new() -> Self {
        RoomControl::default()
    }

    /// Publishes `value` (one MessagePack value, at most [`MAX_METADATA_BYTES`]) as the
    /// room's metadata, shown in `rooms` listings and the admin API (e.g. the map, or
    /// whether the match started). Refused when it is not one value or too large.
    pub fn set_metadata(&mut self, value: &[u8]) -> Result<(), Refusal> {
        if value.len() > MAX_METADATA_BYTES {
            return Err(Refusal::new(format!(
                "metadata is {} bytes; at most {MAX_METADATA_BYTES}",
                value.len()
            )));
        }
        if !msgpack::is_single_value(value) {
            return Err(Refusal::new("metadata must be one MessagePack value"));
        }
        self.metadata = Some(value.to_vec());
        Ok(())
    }

    /// Refuses new joins from now on (e.g. the match started); players in the room stay.
    pub fn lock(&mut self) {
        self.locked = Some(true);
    }

    /// Takes joins again.
    pub fn unlock(&mut self) {
        self.locked = Some(false);
    }

    /// The metadata set since the last take (for the server).
    pub fn take_metadata(&mut self) -> Option<Vec<u8>> {
        self.metadata.take()
    }

    /// The lock state set since the last take (for the server).
    pub fn take_locked(&mut self) -> Option<bool> {
        self.locked.take()
    }

    /// Whether the game asked for nothing.
    pub fn is_empty(&self) -> bool {
        self.metadata.is_none() && self.locked.is_none()
    }
}

/// What [`crate::Game::join_with`] is told about the seat being taken.
#[derive(Debug)]
pub struct JoinContext<'a> {
    team: u32,
    players: usize,
    room: &'a mut RoomControl,
}

impl<'a> JoinContext<'a> {
    /// A join onto `team` (0: the kind has no teams) of a room where `players` seats are
    /// taken already. The server makes these; tests of a game may too.
    pub fn new(team: u32, players: usize, room: &'a mut RoomControl) -> Self {
        JoinContext {
            team,
            players,
            room,
        }
    }

    /// The player's team, from 1; 0 when the room kind has no teams.
    pub fn team(&self) -> u32 {
        self.team
    }

    /// Seats taken before this one.
    pub fn players(&self) -> usize {
        self.players
    }

    /// Metadata and lock changes (e.g. lock the room when this join fills the match).
    pub fn room(&mut self) -> &mut RoomControl {
        self.room
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_one_bounded_value() {
        let mut c = RoomControl::new();
        assert!(c.is_empty());
        assert!(c.set_metadata(&[0x81, 0xa1, b'm', 0x01]).is_ok());
        assert!(c.set_metadata(&[0x81]).is_err(), "truncated");
        assert!(c.set_metadata(&[0x01, 0x02]).is_err(), "two values");
        let mut big = Vec::new();
        msgpack::write_str(&mut big, &"x".repeat(MAX_METADATA_BYTES));
        assert!(c.set_metadata(&big).is_err(), "too large");
        c.lock();
        assert_eq!(c.take_metadata(), Some(vec![0x81, 0xa1, b'm', 0x01]));
        assert_eq!(c.take_locked(), Some(true));
        assert!(c.is_empty());
    }
}
