//! Join-or-create matchmaking by room kind, and the seat count that decides when a room
//! is empty.
//!
//! A join first reserves a seat here, under one short lock: in the oldest room of the
//! kind with a free seat, or in a new room. The seat count only drops when a seat is
//! released, and the room is removed and told to end in the same critical section that
//! drops it to zero, so a join can never land in a room that is closing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rally_game::CloseReason;
use rally_protocol::ErrorCode;

use crate::command::CommandError;
use crate::room::{self, RoomHandle};
use crate::server::Shared;

#[derive(Debug)]
struct Entry {
    handle: RoomHandle,
    /// Seats taken or reserved.
    seats: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// Open rooms by id; ids grow, so iteration finds the oldest room first.
    rooms: BTreeMap<u64, Entry>,
    next_id: u64,
    /// Set at shutdown: no new seats.
    closed: bool,
}

/// The open rooms and their seat counts.
#[derive(Debug, Default)]
pub(crate) struct Matchmaker {
    /// Never held across `.await`: every critical section is a few map operations.
    inner: Mutex<Inner>,
}

/// A seat held in a room until the room seats the player ([`Reservation::keep`]);
/// dropped unused, it frees the seat.
#[derive(Debug)]
pub(crate) struct Reservation {
    shared: Arc<Shared>,
    room_id: u64,
    armed: bool,
}

impl Reservation {
    /// The player was seated: the seat now belongs to them and is freed when they leave.
    pub(crate) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.armed {
            self.shared.matchmaker.release(self.room_id);
        }
    }
}

impl Matchmaker {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Critical sections leave the map consistent at every step, so a poisoned lock
        // (a panic elsewhere while holding it) is still safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves a seat in a room of `kind`, opening a room if every one is full.
    pub(crate) fn reserve(
        &self,
        shared: &Arc<Shared>,
        kind: &str,
    ) -> Result<(RoomHandle, Reservation), CommandError> {
        let spec = shared.games.get(kind).ok_or_else(|| {
            CommandError::new(ErrorCode::UnknownRoomKind, format!("no room kind {kind:?}"))
        })?;
        let mut inner = self.lock();
        if inner.closed {
            return Err(CommandError::new(
                ErrorCode::ServerShutdown,
                "the server is shutting down",
            ));
        }
        if shared.is_draining() {
            return Err(CommandError::new(
                ErrorCode::Draining,
                "the server is draining and takes no new joins; connect to another server",
            ));
        }
        let open = inner.rooms.values_mut().find(|e| {
            &*e.handle.kind == kind
                && e.seats < e.handle.max_players
                && !e.handle.token.is_cancelled()
        });
        let handle = match open {
            Some(entry) => {
                entry.seats += 1;
                entry.handle.clone()
            }
            None => {
                inner.next_id += 1;
                let id = inner.next_id;
                let handle = room::spawn(shared, id, kind, spec);
                inner.rooms.insert(
                    id,
                    Entry {
                        handle: handle.clone(),
                        seats: 1,
                    },
                );
                handle
            }
        };
        let reservation = Reservation {
            shared: shared.clone(),
            room_id: handle.id,
            armed: true,
        };
        Ok((handle, reservation))
    }

    /// Gives a seat back; the room ends when its last seat is given back.
    pub(crate) fn release(&self, room_id: u64) {
        let mut inner = self.lock();
        let Some(entry) = inner.rooms.get_mut(&room_id) else {
            return;
        };
        entry.seats = entry.seats.saturating_sub(1);
        if entry.seats == 0 {
            if let Some(entry) = inner.rooms.remove(&room_id) {
                entry.handle.close(CloseReason::Empty);
            }
        }
    }

    /// Forgets a room that ended by itself.
    pub(crate) fn remove(&self, room_id: u64) {
        self.lock().rooms.remove(&room_id);
    }

    /// Refuses new seats from now on (shutdown).
    pub(crate) fn close(&self) {
        self.lock().closed = true;
    }

    /// Open rooms now.
    pub(crate) fn room_count(&self) -> usize {
        self.lock().rooms.len()
    }

    /// Every open room, oldest first.
    pub(crate) fn rooms(&self) -> Vec<RoomHandle> {
        self.lock()
            .rooms
            .values()
            .map(|e| e.handle.clone())
            .collect()
    }

    /// An open room by id.
    pub(crate) fn get(&self, room_id: u64) -> Option<RoomHandle> {
        self.lock().rooms.get(&room_id).map(|e| e.handle.clone())
    }
}
