//! `tally`: a game that checks the room feeds it each input once.
//!
//! Every player's inputs are counted, and the game notes any input whose seq is not
//! above the last one it applied for that player: the room must drop duplicates (and
//! inputs from a connection that lost its seat) before they reach the game. Its state,
//! the same for everyone, is `[[id, last_applied_seq, applied, duplicates], ...]` in
//! join order, so every client sees what the game saw.

use rally_server::game::msgpack::{self, Reader};
use rally_server::game::{Game, PlayerId, Refusal, Tick};

pub const KIND: &str = "tally";
/// Small rooms, so a handful of players fill several and joins open and close rooms.
pub const SEATS: usize = 3;

#[derive(Debug, Default)]
pub struct Tally {
    players: Vec<Player>,
}

#[derive(Debug)]
struct Player {
    id: PlayerId,
    last_seq: u32,
    applied: u32,
    duplicates: u32,
}

impl Game for Tally {
    fn join(&mut self, player: PlayerId) -> Result<(), Refusal> {
        self.players.push(Player {
            id: player,
            last_seq: 0,
            applied: 0,
            duplicates: 0,
        });
        Ok(())
    }

    fn leave(&mut self, player: PlayerId) {
        self.players.retain(|p| p.id != player);
    }

    fn input(&mut self, player: PlayerId, seq: u32, payload: &[u8]) -> Result<(), Refusal> {
        // The payload is the seq again: what the client meant to send with it.
        let echoed = Reader::new(payload)
            .read_u32()
            .map_err(|_| Refusal::new("the payload is the input's seq"))?;
        if echoed != seq {
            return Err(Refusal::new("the payload is the input's seq"));
        }
        let Some(p) = self.players.iter_mut().find(|p| p.id == player) else {
            return Err(Refusal::new("no such player"));
        };
        if seq <= p.last_seq {
            p.duplicates += 1;
        } else {
            p.last_seq = seq;
        }
        p.applied += 1;
        Ok(())
    }

    fn tick(&mut self, tick: &mut Tick<'_>) {
        let out = tick.room_state();
        msgpack::write_array_len(out, self.players.len() as u32);
        for p in &self.players {
            msgpack::write_array_len(out, 4);
            msgpack::write_uint(out, u64::from(p.id));
            msgpack::write_uint(out, u64::from(p.last_seq));
            msgpack::write_uint(out, u64::from(p.applied));
            msgpack::write_uint(out, u64::from(p.duplicates));
        }
    }
}

/// One entry of a tally state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub id: PlayerId,
    pub last_seq: u32,
    pub applied: u32,
    pub duplicates: u32,
}

/// Decodes a tally state payload.
pub fn decode(payload: &[u8]) -> Result<Vec<Entry>, String> {
    let mut r = Reader::new(payload);
    let err = |e| format!("bad tally state: {e:?}");
    let n = r.read_array_len().map_err(err)?;
    let mut entries = Vec::with_capacity(n as usize);
    for _ in 0..n {
        if r.read_array_len().map_err(err)? != 4 {
            return Err("bad tally entry".into());
        }
        entries.push(Entry {
            id: r.read_u32().map_err(err)?,
            last_seq: r.read_u32().map_err(err)?,
            applied: r.read_u32().map_err(err)?,
            duplicates: r.read_u32().map_err(err)?,
        });
    }
    Ok(entries)
}
