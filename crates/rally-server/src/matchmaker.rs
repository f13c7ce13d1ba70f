//! The room registry: every live room by id and by share code, the indexes that find a
//! room to join or list without walking them all, seat counts, and the drain switch.
//!
//! A join first reserves a seat here, under one short lock: in the oldest open public
//! room of its kind whose options match on the kind's filter keys (`join_or_create`), in
//! the room an id or a code names, or in a new room. The seat count only drops when a
//! seat is released, and the room is removed and told to end in the same critical
//! section that drops it to zero, so a join can never land in a room that is closing.
//!
//! Room ids are random below 2^53 and codes are 6 random characters without look-alikes,
//! so neither tells anything about other rooms; a code is forgotten when its room ends.
//!
//! Play floor: it imports the room handle and knows nothing of the room task; whoever
//! reserves hands it the function that opens a room.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rally_game::{CloseReason, RoomOptions};
use rally_protocol::{ErrorCode, RoomListing};

use crate::error::CommandError;
use crate::room_handle::{Reservation, RoomHandle, SeatRelease};

/// The characters of a share code: upper-case letters and digits without the ones people
/// confuse (0/O, 1/I/L), 31 in all.
pub(crate) const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters in a share code: 31^6, about 887 million codes.
pub(crate) const CODE_LEN: usize = 6;
/// Room ids stay below this, so JavaScript clients hold them exactly.
const ID_LIMIT: u64 = 1 << 53;
/// Largest page of a listing.
pub(crate) const MAX_LIST_LIMIT: usize = 50;
/// Most rooms one listing looks at: with a filter, the rooms of the kind are checked one
/// by one, and this bounds that walk (and the time the registry is locked for it).
pub(crate) const MAX_LIST_SCAN: usize = 10_000;

/// Where `join_or_create` looks: a kind and the canonical values of its filter keys.
pub(crate) type FilterKey = (Arc<str>, Vec<u8>);

#[derive(Debug)]
struct Entry {
    handle: RoomHandle,
    /// Seats taken or reserved.
    seats: usize,
    /// Opening order: the indexes sort by it, so the oldest room comes first.
    seq: u64,
    /// Whether the game locked the room: no seats are reserved in it.
    locked: bool,
    /// Its key in `joinable` (public rooms only).
    filter: Option<FilterKey>,
}

impl Entry {
    fn joinable(&self) -> bool {
        self.filter.is_some()
            && !self.locked
            && self.seats < self.handle.max_players
            && !self.handle.token.is_cancelled()
    }
}

#[derive(Debug, Default)]
struct Inner {
    rooms: HashMap<u64, Entry>,
    /// Live rooms by share code.
    codes: HashMap<Arc<str>, u64>,
    /// Public rooms with a free seat, not locked, by kind and filter values, oldest
    /// first: `join_or_create` takes the first.
    joinable: HashMap<FilterKey, BTreeMap<u64, u64>>,
    /// Public rooms by kind, oldest first: what listings walk.
    public: HashMap<Arc<str>, BTreeMap<u64, u64>>,
    next_seq: u64,
    /// Set at shutdown: no new seats.
    closed: bool,
}

impl Inner {
    /// Puts `id` in or takes it out of the joinable index, after a change of seats or lock.
    fn refresh(&mut self, id: u64) {
        let Some(e) = self.rooms.get(&id) else { return };
        let Some(key) = e.filter.clone() else { return };
        let (seq, joinable) = (e.seq, e.joinable());
        if joinable {
            self.joinable.entry(key).or_default().insert(seq, id);
        } else if let Some(set) = self.joinable.get_mut(&key) {
            set.remove(&seq);
            if set.is_empty() {
                self.joinable.remove(&key);
            }
        }
    }

    /// Forgets a room: its code, its index entries.
    fn forget(&mut self, id: u64) -> Option<Entry> {
        let e = self.rooms.remove(&id)?;
        self.codes.remove(&e.handle.code);
        if let Some(key) = &e.filter {
            if let Some(set) = self.joinable.get_mut(key) {
                set.remove(&e.seq);
                if set.is_empty() {
                    self.joinable.remove(key);
                }
            }
            if let Some(set) = self.public.get_mut(&e.handle.kind) {
                set.remove(&e.seq);
                if set.is_empty() {
                    self.public.remove(&e.handle.kind);
                }
            }
        }
        Some(e)
    }

    /// Takes one seat in `id`, which the caller found live.
    fn take_seat(&mut self, id: u64) -> Option<RoomHandle> {
        let e = self.rooms.get_mut(&id)?;
        e.seats += 1;
        let handle = e.handle.clone();
        self.refresh(id);
        Some(handle)
    }

    /// A fresh random id below 2^53 that no live room has.
    fn new_id(&self) -> Result<u64, CommandError> {
        // A collision among 2^53 ids is all but impossible; a few tries settle it.
        for _ in 0..8 {
            let id = random_u64()? % ID_LIMIT;
            if id != 0 && !self.rooms.contains_key(&id) {
                return Ok(id);
            }
        }
        Err(no_randomness())
    }

    /// A fresh random code no live room has.
    fn new_code(&self) -> Result<Arc<str>, CommandError> {
        // With 887 million codes a collision is rare even with thousands of rooms.
        for _ in 0..16 {
            let code = random_code()?;
            if !self.codes.contains_key(code.as_str()) {
                return Ok(Arc::from(code));
            }
        }
        Err(no_randomness())
    }
}

fn no_randomness() -> CommandError {
    CommandError::new(ErrorCode::Internal, "could not pick a room id; try again")
}

/// Eight bytes from the operating system's random source.
fn random_u64() -> Result<u64, CommandError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|_| no_randomness())?;
    Ok(u64::from_le_bytes(bytes))
}

/// Six characters drawn uniformly from [`CODE_ALPHABET`].
fn random_code() -> Result<String, CommandError> {
    let mut code = String::with_capacity(CODE_LEN);
    // Bytes at or above 248 (8 * 31) are thrown away, so every character is equally likely.
    let limit = (256 / CODE_ALPHABET.len() * CODE_ALPHABET.len()) as u8;
    while code.len() < CODE_LEN {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|_| no_randomness())?;
        for b in bytes {
            if b < limit && code.len() < CODE_LEN {
                code.push(char::from(
                    CODE_ALPHABET[usize::from(b) % CODE_ALPHABET.len()],
                ));
            }
        }
    }
    Ok(code)
}

/// A code as typed, upper-cased; `None` when it cannot be a code at all.
pub(crate) fn normalize_code(code: &str) -> Option<String> {
    let code = code.trim().to_ascii_uppercase();
    (code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(code)
}

/// What a new room is opened with.
#[derive(Debug, Clone)]
pub(crate) struct NewRoom {
    pub(crate) kind: Arc<str>,
    pub(crate) private: bool,
    /// Whether an open room under `filter` is joined instead of opening one
    /// (`join_or_create`); `create` always opens.
    pub(crate) reuse: bool,
    /// Its `join_or_create` key (ignored for a private room).
    pub(crate) filter: FilterKey,
}

/// The live rooms and their seat counts.
#[derive(Debug, Default)]
pub(crate) struct Matchmaker {
    /// Never held across `.await`: every critical section is a few map operations (a
    /// listing with a filter walks at most [`MAX_LIST_SCAN`] rooms).
    inner: Mutex<Inner>,
    /// Set by the admin API's drain: no new players or joins, rooms play on.
    draining: AtomicBool,
}

impl SeatRelease for Matchmaker {
    fn release(&self, room_id: u64) {
        Matchmaker::release(self, room_id);
    }
}

fn no_such_room() -> CommandError {
    CommandError::new(ErrorCode::NoSuchRoom, "no open room has that id or code")
}

impl Matchmaker {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Critical sections leave the maps consistent at every step, so a poisoned lock
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

    /// Refuses seats while closed (shutdown) or draining.
    fn check_open(&self, inner: &Inner) -> Result<(), CommandError> {
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
        Ok(())
    }

    fn reservation(self: &Arc<Self>, room: &RoomHandle) -> Reservation {
        let seats: Arc<dyn SeatRelease> = self.clone();
        Reservation::new(seats, room.id)
    }

    /// Reserves a seat in the oldest joinable room under `filter`; `None` if there is none.
    pub(crate) fn reserve_open(
        self: &Arc<Self>,
        filter: &FilterKey,
    ) -> Result<Option<(RoomHandle, Reservation)>, CommandError> {
        let mut inner = self.lock();
        self.check_open(&inner)?;
        let Some(id) = inner
            .joinable
            .get(filter)
            .and_then(|set| set.values().next().copied())
        else {
            return Ok(None);
        };
        let Some(handle) = inner.take_seat(id) else {
            return Ok(None);
        };
        drop(inner);
        let reservation = self.reservation(&handle);
        Ok(Some((handle, reservation)))
    }

    /// Reserves a seat in the oldest joinable room under `room.filter`, or, if there is
    /// none, opens a room with `open_room` (given the new room's id and code) and reserves
    /// its first seat. The check and the opening are one critical section, so two joins
    /// at once fill one room rather than open two. Without `room.reuse` (or for a private
    /// room) it always opens.
    pub(crate) fn reserve_or_open(
        self: &Arc<Self>,
        room: NewRoom,
        open_room: impl FnOnce(u64, Arc<str>) -> RoomHandle,
    ) -> Result<(RoomHandle, Reservation), CommandError> {
        let mut inner = self.lock();
        self.check_open(&inner)?;
        if room.reuse && !room.private {
            let open = inner
                .joinable
                .get(&room.filter)
                .and_then(|set| set.values().next().copied());
            if let Some(handle) = open.and_then(|id| inner.take_seat(id)) {
                drop(inner);
                let reservation = self.reservation(&handle);
                return Ok((handle, reservation));
            }
        }
        let (id, code) = (inner.new_id()?, inner.new_code()?);
        let handle = open_room(id, code.clone());
        inner.next_seq += 1;
        let seq = inner.next_seq;
        let filter = (!room.private).then_some(room.filter);
        if filter.is_some() {
            inner
                .public
                .entry(room.kind.clone())
                .or_default()
                .insert(seq, id);
        }
        inner.codes.insert(code, id);
        inner.rooms.insert(
            id,
            Entry {
                handle: handle.clone(),
                seats: 1,
                seq,
                locked: false,
                filter,
            },
        );
        inner.refresh(id);
        drop(inner);
        let reservation = self.reservation(&handle);
        Ok((handle, reservation))
    }

    /// Reserves a seat in the room with this id.
    pub(crate) fn reserve_id(
        self: &Arc<Self>,
        room_id: u64,
    ) -> Result<(RoomHandle, Reservation), CommandError> {
        let mut inner = self.lock();
        self.check_open(&inner)?;
        let e = inner.rooms.get(&room_id).ok_or_else(no_such_room)?;
        if e.handle.token.is_cancelled() {
            return Err(no_such_room());
        }
        if e.locked {
            return Err(CommandError::new(
                ErrorCode::RoomLocked,
                "the room is locked and takes no joins",
            ));
        }
        if e.seats >= e.handle.max_players {
            return Err(CommandError::new(
                ErrorCode::RoomFull,
                format!("the room is full ({} seats)", e.handle.max_players),
            ));
        }
        let handle = inner.take_seat(room_id).ok_or_else(no_such_room)?;
        drop(inner);
        let reservation = self.reservation(&handle);
        Ok((handle, reservation))
    }

    /// The id of the live room with this code (as typed: case does not matter).
    pub(crate) fn find_code(&self, code: &str) -> Result<u64, CommandError> {
        let code = normalize_code(code).ok_or_else(no_such_room)?;
        self.lock()
            .codes
            .get(code.as_str())
            .copied()
            .ok_or_else(no_such_room)
    }

    /// Records the game's lock; a locked room leaves the joinable index.
    pub(crate) fn set_locked(&self, room_id: u64, locked: bool) {
        let mut inner = self.lock();
        if let Some(e) = inner.rooms.get_mut(&room_id) {
            e.locked = locked;
            e.handle.info.locked.store(locked, Ordering::Relaxed);
            inner.refresh(room_id);
        }
    }

    /// A page of the public rooms of `kind` whose options match `filter`, oldest first,
    /// with how many match in all (counted over at most [`MAX_LIST_SCAN`] rooms).
    pub(crate) fn list(
        &self,
        kind: &str,
        filter: &RoomOptions,
        offset: usize,
        limit: usize,
    ) -> (usize, Vec<RoomListing>) {
        self.scan(kind, filter, offset, limit.min(MAX_LIST_LIMIT))
    }

    /// [`list`](Self::list) with a page of up to `limit` (at most [`MAX_LIST_SCAN`]): a
    /// cluster listing takes this node's first `offset + limit` rooms to merge with the
    /// other nodes'.
    pub(crate) fn scan(
        &self,
        kind: &str,
        filter: &RoomOptions,
        offset: usize,
        limit: usize,
    ) -> (usize, Vec<RoomListing>) {
        let limit = limit.min(MAX_LIST_SCAN);
        let inner = self.lock();
        let Some(set) = inner.public.get(kind) else {
            return (0, Vec::new());
        };
        let filter = filter.to_filter();
        let mut scratch = Vec::new();
        let mut total = 0;
        let mut page = Vec::with_capacity(limit.min(set.len()));
        for id in set.values().take(MAX_LIST_SCAN) {
            let Some(e) = inner.rooms.get(id) else {
                continue;
            };
            if e.handle.token.is_cancelled() || !filter.matches(&e.handle.options, &mut scratch) {
                continue;
            }
            if total >= offset && page.len() < limit {
                page.push(listing(e));
            }
            total += 1;
            // Without a filter every room matches: the total is the index's size and
            // nothing past the page needs a look.
            if filter.is_empty() && page.len() == limit && total > offset {
                total = set.len();
                break;
            }
        }
        (total, page)
    }

    /// Gives a seat back; the room ends when its last seat is given back.
    pub(crate) fn release(&self, room_id: u64) {
        let mut inner = self.lock();
        let Some(entry) = inner.rooms.get_mut(&room_id) else {
            return;
        };
        entry.seats = entry.seats.saturating_sub(1);
        if entry.seats == 0 {
            if let Some(entry) = inner.forget(room_id) {
                entry.handle.close(CloseReason::Empty);
            }
        } else {
            inner.refresh(room_id);
        }
    }

    /// Forgets a room that ended by itself.
    pub(crate) fn remove(&self, room_id: u64) {
        self.lock().forget(room_id);
    }

    /// Refuses new seats from now on (shutdown).
    pub(crate) fn close(&self) {
        self.lock().closed = true;
    }

    /// Whether a public room under `filter` (a kind and its filter values) has a seat
    /// neither taken nor reserved and is not locked (cluster mode: a join-or-create then
    /// stays on this node). The joinable index holds exactly those rooms.
    pub(crate) fn has_open_seat_in(&self, filter: &FilterKey) -> bool {
        self.lock()
            .joinable
            .get(filter)
            .is_some_and(|set| !set.is_empty())
    }

    /// Seats taken or reserved in every live room (cluster mode: this node's load).
    pub(crate) fn seats(&self) -> usize {
        self.lock().rooms.values().map(|e| e.seats).sum()
    }

    /// Seats taken or reserved in room `room_id`, if it is live.
    pub(crate) fn seats_in(&self, room_id: u64) -> Option<usize> {
        self.lock().rooms.get(&room_id).map(|e| e.seats)
    }

    /// Live rooms now.
    pub(crate) fn room_count(&self) -> usize {
        self.lock().rooms.len()
    }

    /// Every live room, oldest first.
    pub(crate) fn rooms(&self) -> Vec<RoomHandle> {
        let inner = self.lock();
        let mut rooms: Vec<(u64, RoomHandle)> = inner
            .rooms
            .values()
            .map(|e| (e.seq, e.handle.clone()))
            .collect();
        drop(inner);
        rooms.sort_unstable_by_key(|(seq, _)| *seq);
        rooms.into_iter().map(|(_, h)| h).collect()
    }

    /// A live room by id.
    pub(crate) fn get(&self, room_id: u64) -> Option<RoomHandle> {
        self.lock().rooms.get(&room_id).map(|e| e.handle.clone())
    }
}

fn listing(e: &Entry) -> RoomListing {
    let info = &e.handle.info;
    RoomListing {
        room_id: e.handle.id,
        kind: e.handle.kind.to_string(),
        code: e.handle.code.to_string(),
        players: u32::try_from(e.seats).unwrap_or(u32::MAX),
        max_players: u32::try_from(e.handle.max_players).unwrap_or(u32::MAX),
        metadata: info.metadata(),
        age_ms: u64::try_from(info.opened.elapsed().as_millis()).unwrap_or(u64::MAX),
        locked: e.locked,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::room_handle::{ControlSender, InputQueue, RoomInfo, RoomParts};

    /// A room handle with nobody behind it: the matchmaker only counts seats.
    fn handle(id: u64, code: Arc<str>, kind: &str, max_players: usize) -> RoomHandle {
        RoomHandle::new(RoomParts {
            id,
            kind: Arc::from(kind),
            code,
            private: false,
            options: Arc::default(),
            max_players,
            control: ControlSender::channel(1).0,
            inputs: InputQueue::new(0),
            token: CancellationToken::new(),
            reason: Arc::default(),
            info: Arc::new(RoomInfo::new()),
        })
    }

    fn new_room(kind: &str, filter: &[u8], private: bool) -> NewRoom {
        NewRoom {
            kind: Arc::from(kind),
            private,
            reuse: true,
            filter: (Arc::from(kind), filter.to_vec()),
        }
    }

    fn reserve(mm: &Arc<Matchmaker>, kind: &str, max: usize) -> (RoomHandle, Reservation) {
        mm.reserve_or_open(new_room(kind, b"", false), |id, code| {
            handle(id, code, kind, max)
        })
        .unwrap()
    }

    #[test]
    fn seats_fill_the_oldest_room_then_open_another() {
        let mm = Arc::new(Matchmaker::default());
        let (a, ra) = reserve(&mm, "duel", 2);
        let (b, rb) = mm
            .reserve_or_open(new_room("duel", b"", false), |_, _| {
                unreachable!("room 1 has a seat")
            })
            .unwrap();
        assert_eq!(a.id, b.id);
        let (c, rc) = reserve(&mm, "duel", 2);
        assert_ne!(c.id, a.id);
        assert_eq!(mm.room_count(), 2);
        assert_eq!(mm.rooms()[0].id, a.id, "oldest first");
        for r in [ra, rb, rc] {
            r.keep();
        }
    }

    #[test]
    fn a_reservation_dropped_unused_gives_its_seat_back_and_empties_the_room() {
        let mm = Arc::new(Matchmaker::default());
        let (room, reservation) = reserve(&mm, "duel", 2);
        drop(reservation);
        assert_eq!(mm.room_count(), 0);
        assert!(room.token.is_cancelled());
        assert_eq!(room.reason.get(), Some(&CloseReason::Empty));
        let e = mm.find_code(&room.code).unwrap_err();
        assert_eq!(e.code, ErrorCode::NoSuchRoom, "the code died with its room");
        let e = mm.reserve_id(room.id).unwrap_err();
        assert_eq!(e.code, ErrorCode::NoSuchRoom);
    }

    #[test]
    fn a_kept_seat_stays_until_released() {
        let mm = Arc::new(Matchmaker::default());
        let (room, reservation) = reserve(&mm, "duel", 2);
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
        let open = |mm: &Arc<Matchmaker>| {
            mm.reserve_or_open(new_room("duel", b"", false), |id, code| {
                handle(id, code, "duel", 2)
            })
            .unwrap_err()
        };
        assert_eq!(open(&mm).code, ErrorCode::Draining);
        mm.close();
        assert_eq!(open(&mm).code, ErrorCode::ServerShutdown);
    }

    #[test]
    fn private_rooms_are_reached_by_id_or_code_only() {
        let mm = Arc::new(Matchmaker::default());
        let (private, r1) = mm
            .reserve_or_open(new_room("duel", b"", true), |id, code| {
                handle(id, code, "duel", 2)
            })
            .unwrap();
        r1.keep();
        assert!(mm
            .reserve_open(&(Arc::from("duel"), vec![]))
            .unwrap()
            .is_none());
        assert_eq!(mm.list("duel", &RoomOptions::empty(), 0, 50).0, 0);
        assert_eq!(
            mm.find_code(&private.code.to_lowercase()).unwrap(),
            private.id
        );
        let (same, r2) = mm.reserve_id(private.id).unwrap();
        assert_eq!(same.id, private.id);
        r2.keep();
        assert_eq!(
            mm.reserve_id(private.id).unwrap_err().code,
            ErrorCode::RoomFull
        );
    }

    #[test]
    fn filters_keep_rooms_apart_and_locks_keep_joins_out() {
        let mm = Arc::new(Matchmaker::default());
        let (speed, r1) = mm
            .reserve_or_open(new_room("arena", b"speed", false), |id, code| {
                handle(id, code, "arena", 4)
            })
            .unwrap();
        let (classic, r2) = mm
            .reserve_or_open(new_room("arena", b"classic", false), |id, code| {
                handle(id, code, "arena", 4)
            })
            .unwrap();
        assert_ne!(speed.id, classic.id);
        let (again, r3) = mm
            .reserve_open(&(Arc::from("arena"), b"speed".to_vec()))
            .unwrap()
            .unwrap();
        assert_eq!(again.id, speed.id);
        mm.set_locked(speed.id, true);
        assert!(mm
            .reserve_open(&(Arc::from("arena"), b"speed".to_vec()))
            .unwrap()
            .is_none());
        assert_eq!(
            mm.reserve_id(speed.id).unwrap_err().code,
            ErrorCode::RoomLocked
        );
        let (_, page) = mm.list("arena", &RoomOptions::empty(), 0, 50);
        assert_eq!(page.len(), 2, "locked rooms are listed, marked locked");
        assert!(page.iter().any(|l| l.room_id == speed.id && l.locked));
        mm.set_locked(speed.id, false);
        assert!(mm.reserve_id(speed.id).is_ok());
        for r in [r1, r2, r3] {
            r.keep();
        }
    }

    #[test]
    fn ids_and_codes_are_random_and_distinct() {
        let mm = Arc::new(Matchmaker::default());
        let mut ids = HashSet::new();
        let mut codes = HashSet::new();
        let mut held = Vec::new();
        for _ in 0..500 {
            let (room, r) = mm
                .reserve_or_open(new_room("solo", b"", false), |id, code| {
                    handle(id, code, "solo", 1)
                })
                .unwrap();
            assert!(room.id > 0 && room.id < ID_LIMIT);
            assert!(normalize_code(&room.code).is_some());
            ids.insert(room.id);
            codes.insert(room.code.clone());
            held.push(r);
        }
        assert_eq!((ids.len(), codes.len()), (500, 500));
        // Consecutive rooms are not numbered in order.
        let order: Vec<u64> = mm.rooms().iter().map(|r| r.id).collect();
        let rising = order.windows(2).filter(|w| w[1] == w[0] + 1).count();
        assert!(rising < 5, "{rising} consecutive ids");
    }

    #[test]
    fn listing_pages_are_capped_and_counted() {
        let mm = Arc::new(Matchmaker::default());
        let mut held = Vec::new();
        for _ in 0..120 {
            held.push(reserve(&mm, "solo", 1).1);
        }
        let (total, page) = mm.list("solo", &RoomOptions::empty(), 0, 1000);
        assert_eq!((total, page.len()), (120, MAX_LIST_LIMIT));
        let (total, page) = mm.list("solo", &RoomOptions::empty(), 100, 50);
        assert_eq!((total, page.len()), (120, 20));
        let (total, page) = mm.list("solo", &RoomOptions::empty(), 500, 50);
        assert_eq!((total, page.len()), (120, 0));
        assert_eq!(mm.list("other", &RoomOptions::empty(), 0, 50).0, 0);
    }
}
