//! What one run saw, and the checks made on it.
//!
//! The players write what each connection received (its feed); the server's monitor
//! writes what it saw of the seats. Seat invariants are checked as the monitor looks
//! ([`Record::check_seats`]); the feed invariants once the run is over
//! ([`Record::check_feeds`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use rally_server::{SeatInfo, ServerHandle, ShutdownReport};

use crate::tally::Entry;
use crate::Params;

/// What one connection received, in order (only what the checks need).
#[derive(Debug)]
pub enum Item {
    /// The connection's seat changed: `joined`, `left` or `room_closed`.
    Moved,
    State {
        room: u64,
        tick: u64,
        entries: Vec<Entry>,
    },
    Line {
        room: u64,
        text: String,
    },
    /// The `ok` of one of this connection's chat lines.
    Said {
        text: String,
    },
}

#[derive(Debug)]
pub struct Feed {
    pub account: u64,
    pub items: Vec<Item>,
}

/// Counts, to show what a run exercised.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub connections: u64,
    pub joins: u64,
    pub drops: u64,
    pub resumed: u64,
    pub resume_failed: u64,
    pub silent_gave_up: u64,
    pub chats_sent: u64,
    pub chats_acked: u64,
    pub inputs_resent: u64,
    pub faults: u64,
    pub seat_checks: u64,
    /// Sessions the server ended as `TIMEOUT` (silent, or a write that would not drain).
    pub server_timeouts: u64,
    /// Sessions the server ended as `SLOW_CONSUMER`.
    pub slow_consumers: u64,
    /// Shutdowns in the middle of play on healthy links (which must drain), and drained ones.
    pub drains_expected: u64,
    pub drained: u64,
    /// Private rooms opened with `create`, and seats taken with `join_by_code`.
    pub created: u64,
    pub joined_by_code: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.connections += o.connections;
        self.joins += o.joins;
        self.drops += o.drops;
        self.resumed += o.resumed;
        self.resume_failed += o.resume_failed;
        self.silent_gave_up += o.silent_gave_up;
        self.chats_sent += o.chats_sent;
        self.chats_acked += o.chats_acked;
        self.inputs_resent += o.inputs_resent;
        self.faults += o.faults;
        self.seat_checks += o.seat_checks;
        self.server_timeouts += o.server_timeouts;
        self.slow_consumers += o.slow_consumers;
        self.drains_expected += o.drains_expected;
        self.drained += o.drained;
        self.created += o.created;
        self.joined_by_code += o.joined_by_code;
    }
}

#[derive(Default)]
pub struct Record {
    pub violations: Vec<String>,
    pub feeds: Vec<Feed>,
    /// Who was given each seat, as `joined` told them.
    pub granted: HashMap<(u64, u32), u64>,
    /// When each player's story ended.
    pub ends: Vec<Option<Duration>>,
    /// Players whose story has ended.
    pub done: usize,
    /// Network faults applied so far, per player.
    pub faults: Vec<u64>,
    pub max_latency: Duration,
    pub stats: Stats,
    pub handle: Option<ServerHandle>,
    /// The server's shutdown report, once it has shut down (the monitor stops then).
    pub report: Option<ShutdownReport>,
    /// Seats seen away, with when their grace ends.
    away_until: HashMap<(u64, u32), Duration>,
    /// Violations already reported, so a lasting one is reported once.
    reported: HashSet<String>,
    /// Share codes of the private rooms players created, with each room's id: what
    /// other players pick a code from, and where that code must lead.
    pub codes: Vec<(String, u64)>,
}

impl Record {
    pub fn new(players: usize, max_latency: Duration) -> Self {
        Record {
            ends: vec![None; players],
            faults: vec![0; players],
            max_latency,
            ..Record::default()
        }
    }

    pub fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// Reports `what` once, however many looks see it, under `key`.
    fn violation_once(&mut self, key: String, what: String) {
        if self.reported.insert(key) {
            self.violations.push(what);
        }
    }

    /// The seat invariants, on one look at every room's seats at `now`.
    pub fn check_seats(&mut self, seats: &[SeatInfo], now: Duration, p: &Params) {
        self.stats.seat_checks += 1;
        // No account and no session holds two seats in one room.
        let mut held: HashMap<(u64, u64), u32> = HashMap::new();
        let mut sessions: HashMap<u64, (u64, u32)> = HashMap::new();
        for s in seats {
            if let Some(a) = s.account_id {
                if let Some(other) = held.insert((s.room_id, a), s.player_id) {
                    self.violation_once(
                        format!("dup {} {a}", s.room_id),
                        format!(
                            "at {now:?}: account {a} holds two seats in room {}: players {other} and {}",
                            s.room_id, s.player_id
                        ),
                    );
                }
            }
            if let Some(sid) = s.session_id {
                if let Some(other) = sessions.insert(sid, (s.room_id, s.player_id)) {
                    self.violation_once(
                        format!("session {sid}"),
                        format!(
                            "at {now:?}: session {sid} holds two seats: {other:?} and {:?}",
                            (s.room_id, s.player_id)
                        ),
                    );
                }
            }
        }
        // An away seat is freed (or resumed) by the end of its grace: the room frees it at
        // its first tick past the grace. The grace runs from the drop the room heard of
        // last (a resume and a drop may both fall between two looks), which the seat's
        // `away_for` tells.
        let mut away_now = HashSet::new();
        for s in seats.iter().filter(|s| s.session_id.is_none()) {
            let key = (s.room_id, s.player_id);
            away_now.insert(key);
            let left = s.away_for.unwrap_or_default();
            if left > p.grace {
                self.violation_once(
                    format!("away_for {key:?}"),
                    format!("at {now:?}: seat {key:?} held for {left:?} more, over the grace"),
                );
            }
            let deadline = self.away_until.entry(key).or_insert(now + left);
            if !left.is_zero() {
                *deadline = now + left;
            }
            if now > *deadline + 2 * p.tick {
                let deadline = *deadline;
                self.violation_once(
                    format!("away {key:?}"),
                    format!(
                        "at {now:?}: seat {key:?} (account {:?}) still held, its grace over at {deadline:?}",
                        s.account_id
                    ),
                );
            }
        }
        self.away_until.retain(|k, _| away_now.contains(k));
        // A player whose story ended holds no seat once the server can have noticed
        // (`timeout_ms` at worst, for a connection that went silent) and the grace ran out.
        let after_end = p.timeout + p.grace + 2 * p.tick + 2 * p.monitor + 4 * self.max_latency;
        for s in seats {
            let Some(a) = s.account_id else { continue };
            let Some(Some(end)) = self.ends.get(a as usize - 1) else {
                continue;
            };
            if now > *end + after_end {
                self.violation_once(
                    format!("kept {a}"),
                    format!(
                        "at {now:?}: account {a} still holds seat {:?} (away: {}), {:?} after it left for good at {end:?}",
                        (s.room_id, s.player_id),
                        s.session_id.is_none(),
                        now - *end
                    ),
                );
            }
        }
    }

    /// A digest of every feed, for comparing two runs of one seed. Room ids are random
    /// (the operating system's, not the simulation's), so each is replaced by the order
    /// in which the feeds first name it: two runs that open the same rooms in the same
    /// order and play them the same way digest the same.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        // SipHash with fixed keys: the same on every run.
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new();
        let mut rooms: HashMap<u64, usize> = HashMap::new();
        let mut ordinal = |room: u64| {
            let next = rooms.len();
            *rooms.entry(room).or_insert(next)
        };
        for feed in &self.feeds {
            feed.account.hash(&mut h);
            for item in &feed.items {
                match item {
                    Item::Moved => "moved".hash(&mut h),
                    Item::State {
                        room,
                        tick,
                        entries,
                    } => format!("state {} {tick} {entries:?}", ordinal(*room)).hash(&mut h),
                    Item::Line { room, text } => {
                        format!("line {} {text:?}", ordinal(*room)).hash(&mut h)
                    }
                    Item::Said { text } => format!("said {text:?}").hash(&mut h),
                }
            }
        }
        h.finish()
    }

    /// The feed invariants, once the run is over.
    pub fn check_feeds(&mut self) {
        let mut found = Vec::new();
        // Every state of a room reports the same thing to everyone, no input reached
        // the game twice, and a player's last_seq never goes back.
        let mut by_tick: HashMap<u64, BTreeMap<u64, &Vec<Entry>>> = HashMap::new();
        for feed in &self.feeds {
            for item in &feed.items {
                let Item::State {
                    room,
                    tick,
                    entries,
                } = item
                else {
                    continue;
                };
                for e in entries.iter().filter(|e| e.duplicates > 0) {
                    found.push(format!(
                        "room {room} tick {tick}: the game got {} input(s) of player {} that it had applied already",
                        e.duplicates, e.id
                    ));
                }
                let ticks = by_tick.entry(*room).or_default();
                match ticks.get(tick) {
                    Some(seen) if *seen != entries => found.push(format!(
                        "room {room} tick {tick}: two players got different states: {seen:?} and {entries:?}"
                    )),
                    _ => {
                        ticks.insert(*tick, entries);
                    }
                }
            }
        }
        for (room, ticks) in &by_tick {
            let mut last: HashMap<u32, (u64, u32, u32)> = HashMap::new();
            for (tick, entries) in ticks {
                for e in entries.iter() {
                    if let Some((t, seq, applied)) = last.get(&e.id) {
                        if e.last_seq < *seq || e.applied < *applied {
                            found.push(format!(
                                "room {room}: player {} went back from last_seq {seq} (applied {applied}) at tick {t} to {} ({}) at tick {tick}",
                                e.id, e.last_seq, e.applied
                            ));
                        }
                    }
                    last.insert(e.id, (*tick, e.last_seq, e.applied));
                }
            }
        }
        // A room never seats one account twice: states list each seat, `joined` told
        // whose each one is.
        for (room, ticks) in &by_tick {
            for (tick, entries) in ticks {
                let mut owners = HashMap::new();
                for e in entries.iter() {
                    let Some(a) = self.granted.get(&(*room, e.id)) else {
                        continue;
                    };
                    if let Some(other) = owners.insert(*a, e.id) {
                        found.push(format!(
                            "room {room} tick {tick}: account {a} is players {other} and {} at once",
                            e.id
                        ));
                    }
                }
            }
        }
        found.extend(self.check_chat());
        // One report per kind of problem is plenty: the first few say it.
        found.truncate(20);
        self.violations.extend(found);
    }

    /// Chat, the acknowledged command: each line is applied once.
    fn check_chat(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut per_account: HashMap<u64, HashMap<&str, usize>> = HashMap::new();
        // Where each line was said: between which two ticks of which room.
        let mut said_after: HashMap<&str, (u64, u64)> = HashMap::new();
        for (n, feed) in self.feeds.iter().enumerate() {
            let mut seen = HashSet::new();
            // The last state of this seat, if nothing (join, leave) came since.
            let mut last_state: Option<(u64, u64)> = None;
            for item in &feed.items {
                match item {
                    Item::State { room, tick, .. } => last_state = Some((*room, *tick)),
                    Item::Moved => last_state = None,
                    Item::Line { room, text, .. } => {
                        if !seen.insert(text.as_str()) {
                            found.push(format!(
                                "connection {n} (account {}) got chat line {text:?} twice",
                                feed.account
                            ));
                        }
                        let first = per_account
                            .entry(feed.account)
                            .or_default()
                            .entry(text.as_str())
                            .or_insert(n);
                        if *first != n {
                            found.push(format!(
                                "account {} got chat line {text:?} on connection {first}, then again on connection {n}",
                                feed.account
                            ));
                        }
                        if let Some((r, t)) = last_state {
                            if r != *room {
                                found.push(format!(
                                    "connection {n}: chat line {text:?} of room {room} arrived while in room {r}"
                                ));
                            }
                            match said_after.get(text.as_str()) {
                                Some(&(r0, t0)) if (r0, t0) != (r, t) => found.push(format!(
                                    "chat line {text:?} came after tick {t0} of room {r0} for one player, after tick {t} of room {r} for another"
                                )),
                                _ => {
                                    said_after.insert(text.as_str(), (r, t));
                                }
                            }
                        }
                    }
                    Item::Said { text } => {
                        // The sayer gets its line before its `ok`.
                        if !seen.contains(text.as_str()) {
                            found.push(format!(
                                "connection {n} (account {}): chat {text:?} acknowledged without the line before it",
                                feed.account
                            ));
                        }
                    }
                }
            }
        }
        // Everyone seated in the room from the tick before a line to the tick after it,
        // on one connection, got the line exactly once, between those two states.
        for (n, feed) in self.feeds.iter().enumerate() {
            let mut window: Option<(u64, u64)> = None;
            let mut lines: Vec<&str> = Vec::new();
            for item in &feed.items {
                match item {
                    Item::State { room, tick, .. } => {
                        if let Some((r, t)) = window {
                            if r == *room && *tick == t + 1 {
                                for (text, _) in said_after.iter().filter(|(_, at)| **at == (r, t))
                                {
                                    let got = lines.iter().filter(|l| *l == text).count();
                                    if got != 1 {
                                        found.push(format!(
                                            "connection {n} (account {}) was in room {r} at ticks {t} and {} but got chat line {text:?} {got} times between them",
                                            feed.account,
                                            t + 1
                                        ));
                                    }
                                }
                            }
                        }
                        window = Some((*room, *tick));
                        lines.clear();
                    }
                    Item::Moved => {
                        window = None;
                        lines.clear();
                    }
                    Item::Line { text, .. } => lines.push(text),
                    Item::Said { .. } => {}
                }
            }
        }
        found
    }
}
