//! Join-or-create matchmaking by room kind, and the seat count that decides when a room
//! is empty.
//!
//! A join first reserves a seat here, under one short lock: in the oldest room of the
//! kind with a free seat, or in a new room. The seat count only drops when a seat is
//! released, and the room is removed and told to end in the same critical section that
//! drops it to zero, so a join can never land in a room that is closing.
//!
//! Play floor: it imports the room handle and knows nothing of the room task; whoever
//! reserves hands it the function that opens a room.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rally_game::CloseReason;
use rally_protocol::ErrorCode;

use crate::error::CommandError;
use crate::room_handle::{Reservation, RoomHandle, SeatRelease};

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
    /// Set by the admin API's drain: no new players or joins, rooms play on.
    draining: AtomicBool,
}

impl SeatRelease for Matchmaker {
    fn release(&self, room_id: u64) {
        Matchmaker::release(self, room_id);
    }
}

impl Matchmaker {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Critical sections leave the map consistent at every step, so a poisoned lock
        // (a panic elsewhere while holding it) is still safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the admin API asked the server to drain.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Starts draining; returns false if it already was.
    pub(crate) fn start_draining(&self) -> bool {
        !self.draining.swap(true, Ordering::AcqRel)
    }

    /// Reserves a seat in a room of `kind`, calling `open_room` (with the new room's id) to
    /// start a room if every one is full.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        kind: &str,
        open_room: impl FnOnce(u64) -> RoomHandle,
    ) -> Result<(RoomHandle, Reservation), CommandError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(CommandError::new(
                ErrorCode::ServerShutdown,
                "the server is shutting down",
            ));
        }
        if self.is_draining() {
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
                let handle = open_room(id);
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
        let seats: Arc<dyn SeatRelease> = self.clone();
        let reservation = Reservation::new(seats, handle.id);
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

    /// Whether a room of `kind` has a seat neither taken nor reserved (cluster mode: a
    /// join then stays on this node).
    pub(crate) fn has_open_seat(&self, kind: &str) -> bool {
        self.lock().rooms.values().any(|e| {
            &*e.handle.kind == kind
                && e.seats < e.handle.max_players
                && !e.handle.token.is_cancelled()
        })
    }

    /// Seats taken or reserved in every open room (cluster mode: this node's load).
    pub(crate) fn seats(&self) -> usize {
        self.lock().rooms.values().map(|e| e.seats).sum()
    }

    /// Seats taken or reserved in room `room_id`, if it is open.
    pub(crate) fn seats_in(&self, room_id: u64) -> Option<usize> {
        self.lock().rooms.get(&room_id).map(|e| e.seats)
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize};
    use std::sync::OnceLock;

    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::room_handle::RoomInfo;

    /// A room handle with nobody behind it: the matchmaker only counts seats.
    fn handle(id: u64, kind: &str, max_players: usize) -> RoomHandle {
        RoomHandle {
            id,
            kind: Arc::from(kind),
            max_players,
            control: mpsc::channel(1).0,
            inputs: mpsc::channel(1).0,
            token: CancellationToken::new(),
            reason: Arc::default(),
            info: Arc::new(RoomInfo {
                opened: std::time::Instant::now(),
                tick: AtomicU64::new(0),
                tick_micros: AtomicU64::new(0),
                players: AtomicUsize::new(0),
                close_note: OnceLock::new(),
            }),
        }
    }

    #[test]
    fn seats_fill_the_oldest_room_then_open_another() {
        let mm = Arc::new(Matchmaker::default());
        let (a, ra) = mm.reserve("duel", |id| handle(id, "duel", 2)).unwrap();
        let (b, rb) = mm
            .reserve("duel", |_| unreachable!("room 1 has a seat"))
            .unwrap();
        assert_eq!(a.id, b.id);
        let (c, rc) = mm.reserve("duel", |id| handle(id, "duel", 2)).unwrap();
        assert_ne!(c.id, a.id);
        assert_eq!(mm.room_count(), 2);
        for r in [ra, rb, rc] {
            r.keep();
        }
    }

    #[test]
    fn a_reservation_dropped_unused_gives_its_seat_back_and_empties_the_room() {
        let mm = Arc::new(Matchmaker::default());
        let (room, reservation) = mm.reserve("duel", |id| handle(id, "duel", 2)).unwrap();
        drop(reservation);
        assert_eq!(mm.room_count(), 0);
        assert!(room.token.is_cancelled());
        assert_eq!(room.reason.get(), Some(&CloseReason::Empty));
    }

    #[test]
    fn a_kept_seat_stays_until_released() {
        let mm = Arc::new(Matchmaker::default());
        let (room, reservation) = mm.reserve("duel", |id| handle(id, "duel", 2)).unwrap();
        reservation.keep();
        assert_eq!(mm.room_count(), 1);
        mm.release(room.id);
        assert_eq!(mm.room_count(), 0);
    }

    #[test]
    fn draining_and_closing_refuse_new_seats() {
        let mm = Arc::new(Matchmaker::default());
        assert!(mm.start_draining());
        assert!(!mm.start_draining());
        let e = mm.reserve("duel", |id| handle(id, "duel", 2)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Draining);
        mm.close();
        let e = mm.reserve("duel", |id| handle(id, "duel", 2)).unwrap_err();
        assert_eq!(e.code, ErrorCode::ServerShutdown);
    }
}
