//! Seats this node reserved for players another node is redirecting here, each under its
//! ticket's nonce until the player claims it or the ticket expires.
//!
//! A claim takes the seat out, so a ticket works once; an expired seat is dropped by the
//! sweep, which gives it back to the matchmaker (the reservation's drop does). Bounded:
//! at most [`MAX_PENDING`] seats wait at once, beyond which reservations are refused.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use rally_auth::ticket::NONCE_LEN;

use crate::room_handle::{Reservation, RoomHandle};

/// Seats waiting for their players at once, at most.
pub(crate) const MAX_PENDING: usize = 10_000;

/// One reserved seat.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) room: RoomHandle,
    /// Held until claimed; dropped (the seat given back) when it expires.
    pub(crate) reservation: Reservation,
    /// The team a queue match gave the seat (the claim seats the player on it).
    pub(crate) team: Option<u32>,
    /// The ticket's expiry on this node's clock.
    pub(crate) until: Instant,
}

/// The seats waiting, by nonce.
#[derive(Debug, Default)]
pub(crate) struct Seats {
    /// A plain mutex: map operations only, never held across `.await`.
    pending: Mutex<HashMap<[u8; NONCE_LEN], Pending>>,
}

impl Seats {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; NONCE_LEN], Pending>> {
        // Single map operations: a poisoned lock still holds a consistent map.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a seat under `nonce`; gives it back (`Err`, boxed: a seat is a room handle
    /// and a reservation) when too many wait already, so it is dropped outside the lock.
    pub(crate) fn hold(&self, nonce: [u8; NONCE_LEN], seat: Pending) -> Result<(), Box<Pending>> {
        let mut pending = self.lock();
        if pending.len() >= MAX_PENDING {
            return Err(Box::new(seat));
        }
        pending.insert(nonce, seat);
        Ok(())
    }

    /// Takes the seat of `nonce` out, once.
    pub(crate) fn claim(&self, nonce: &[u8; NONCE_LEN]) -> Option<Pending> {
        self.lock().remove(nonce)
    }

    /// Drops the seats whose tickets expired by `now` (their reservations give the seats
    /// back as they drop, outside the lock).
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        let expired: Vec<Pending> = {
            let mut pending = self.lock();
            let keys: Vec<[u8; NONCE_LEN]> = pending
                .iter()
                .filter(|(_, p)| p.until <= now)
                .map(|(k, _)| *k)
                .collect();
            keys.iter().filter_map(|k| pending.remove(k)).collect()
        };
        expired.len()
    }

    /// Seats waiting now.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
