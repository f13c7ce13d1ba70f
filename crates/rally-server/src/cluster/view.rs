//! What a node knows of the cluster: the membership and room directory entries it has
//! seen, when each was last written, and the choice of where a new player goes. No IO:
//! the watchers feed it, `join` asks it, and its tests run without NATS.
//!
//! An entry is believed for one TTL after the owner last wrote it (the KV bucket forgets
//! it after the same TTL, but a watcher is not told of an expiry, so the view expires its
//! copies itself). A room is listed only while its node is alive too.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::flight::{Flight, Granted};

/// A node's membership entry (key: its node id), rewritten every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeEntry {
    pub(crate) node: String,
    /// Where players connect over raw TCP, `host:port`.
    pub(crate) tcp: String,
    /// Where players connect over WebSocket, `host:port` (path `/ws`).
    pub(crate) ws: String,
    /// Seats taken or reserved in its rooms.
    pub(crate) players: u32,
    /// Its open rooms.
    pub(crate) rooms: u32,
    /// Draining: no new rooms or seats go there.
    pub(crate) draining: bool,
}

/// A room's directory entry (key: `<node>.<room id>`), written by its node.
///
/// The fields after `max_players` are the rooms-and-matchmaking issue's (14): what a
/// listing shows and what join by code, join-or-create with options and listing
/// filters look for on other nodes. Readers treat a missing one as "none" (an entry
/// written by an older node).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RoomEntry {
    pub(crate) room_id: u64,
    pub(crate) kind: String,
    pub(crate) node: String,
    pub(crate) players: u32,
    pub(crate) max_players: u32,
    /// The share code (private rooms too: they are joinable by code, never listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<String>,
    /// The creation options, MessagePack as the creator sent them (hex in the JSON):
    /// raw, so other nodes match filters exactly as the owner would.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "hex")]
    pub(crate) options: Vec<u8>,
    /// What the game published for listings, one MessagePack value (hex); empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "hex")]
    pub(crate) metadata: Vec<u8>,
    #[serde(default)]
    pub(crate) private: bool,
    #[serde(default)]
    pub(crate) locked: bool,
    /// When the room opened, Unix milliseconds: listings are oldest first across nodes.
    #[serde(default)]
    pub(crate) opened_ms: u64,
}

/// Bytes as a lower-case hex string in the directory's JSON (half the size of a JSON
/// array of numbers, and no new dependency for base64).
pub(super) mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            text.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            text.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        s.serialize_str(&text)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        text.as_bytes()
            .chunks(2)
            .map(|pair| match pair {
                [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
                _ => None,
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| serde::de::Error::custom("not a hex string"))
    }
}

impl RoomEntry {
    /// The directory key of this room.
    pub(crate) fn key(&self) -> String {
        room_key(&self.node, self.room_id)
    }

    /// Whether a join-or-create of `kind` may be sent here: public, open, a seat free, and
    /// its options matching (`fits`, the caller's test on the kind's filter keys).
    fn has_seat_for(&self, kind: &str, fits: &dyn Fn(&RoomEntry) -> bool) -> bool {
        self.kind == kind
            && self.players < self.max_players
            && !self.private
            && !self.locked
            && fits(self)
    }
}

/// The directory key of room `room_id` on `node` (node ids have no `.`).
pub(crate) fn room_key(node: &str, room_id: u64) -> String {
    format!("{node}.{room_id}")
}

/// What a placement looks for.
#[derive(Clone, Copy)]
pub(crate) enum Seek<'a> {
    /// A seat in an open public room of the kind whose options pass this test (the
    /// kind's filter keys), else a new room (`join`, `join_or_create`).
    Seat(&'a (dyn Fn(&RoomEntry) -> bool + Sync)),
    /// A new room (`create`).
    NewRoom,
}

/// Where a player joining a kind goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Here.
    Local,
    /// On that node (a room of the kind has a seat there, or it is the least loaded).
    Remote(NodeEntry),
}

/// The entries seen, each with when it was written.
#[derive(Debug)]
pub(crate) struct View {
    /// How long an entry is believed after it was written.
    ttl: Duration,
    nodes: HashMap<String, (NodeEntry, Instant)>,
    rooms: HashMap<String, (RoomEntry, Instant)>,
    /// The reservations asked of each node, to count the players on their way there
    /// that its figures do not include yet.
    inflight: HashMap<String, Flight>,
}

/// An owner's answer to a reservation: the seat's room, the node's load, its count.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) room: RoomEntry,
    pub(crate) node_players: u32,
    pub(crate) node_rooms: u32,
    pub(crate) granted: Granted,
}

/// Keeps `entry` under `key`, written at `at`, unless what is there was written later:
/// the view never goes back in time (a replayed older entry after a reconnect).
fn put_newer<T>(map: &mut HashMap<String, (T, Instant)>, key: String, entry: T, at: Instant) {
    if map.get(&key).is_none_or(|(_, seen)| *seen <= at) {
        map.insert(key, (entry, at));
    }
}

impl View {
    /// An empty view whose entries live `ttl`.
    pub(crate) fn new(ttl: Duration) -> View {
        View {
            ttl,
            nodes: HashMap::new(),
            rooms: HashMap::new(),
            inflight: HashMap::new(),
        }
    }

    /// Whether an entry written at `at` is still believed: readers check it themselves,
    /// so a view nobody prunes (NATS down, the heartbeat stuck in a write) still forgets.
    fn fresh(&self, at: Instant) -> bool {
        at.elapsed() < self.ttl
    }

    /// A live node's entry.
    fn live(&self, node: &str) -> Option<&NodeEntry> {
        self.nodes
            .get(node)
            .filter(|(_, at)| self.fresh(*at))
            .map(|(n, _)| n)
    }

    /// Records a node's entry written at `at`.
    pub(crate) fn put_node(&mut self, entry: NodeEntry, at: Instant) {
        put_newer(&mut self.nodes, entry.node.clone(), entry, at);
    }

    /// Forgets a node (it left, or its entry was deleted) and its rooms.
    pub(crate) fn remove_node(&mut self, node: &str) {
        self.nodes.remove(node);
        self.rooms.retain(|_, (r, _)| r.node != node);
    }

    /// Records a room's entry written at `at`.
    pub(crate) fn put_room(&mut self, entry: RoomEntry, at: Instant) {
        put_newer(&mut self.rooms, entry.key(), entry, at);
    }

    /// Forgets a room by its directory key.
    pub(crate) fn remove_room(&mut self, key: &str) {
        self.rooms.remove(key);
    }

    /// Drops what is older than the TTL at `now`: dead nodes and rooms nobody rewrote.
    pub(crate) fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < ttl;
        self.nodes.retain(|_, (_, at)| fresh(at));
        let nodes = &self.nodes;
        self.rooms
            .retain(|_, (r, at)| fresh(at) && nodes.contains_key(&r.node));
    }

    /// Live nodes, by id.
    pub(crate) fn nodes(&self) -> Vec<NodeEntry> {
        let mut v: Vec<NodeEntry> = self
            .nodes
            .values()
            .filter(|(_, at)| self.fresh(*at))
            .map(|(n, _)| n.clone())
            .collect();
        v.sort_by(|a, b| a.node.cmp(&b.node));
        v
    }

    /// Rooms on live nodes, by node then room id.
    pub(crate) fn rooms(&self) -> Vec<RoomEntry> {
        let mut v: Vec<RoomEntry> = self
            .rooms
            .values()
            .filter(|(r, at)| self.fresh(*at) && self.live(&r.node).is_some())
            .map(|(r, _)| r.clone())
            .collect();
        v.sort_by(|a, b| (&a.node, a.room_id).cmp(&(&b.node, b.room_id)));
        v
    }

    /// Players sent to `node` that its figures do not include yet.
    fn in_flight(&self, node: &str) -> u32 {
        self.inflight.get(node).map_or(0, Flight::unseen)
    }

    /// Free seats for `kind` in `node`'s rooms that `fits`, less the players on their
    /// way there.
    fn free_seats(&self, node: &str, kind: &str, fits: &dyn Fn(&RoomEntry) -> bool) -> u32 {
        let free: u32 = self
            .rooms
            .values()
            .filter(|(r, at)| r.node == node && self.fresh(*at) && r.has_seat_for(kind, fits))
            .map(|(r, _)| r.max_players - r.players)
            .sum();
        free.saturating_sub(self.in_flight(node))
    }

    /// Where a player asking for `kind` on node `me` goes (`local` is its own entry, with
    /// its live load; the caller found no open seat here). For [`Seek::Seat`], first a
    /// node with free seats in rooms of the kind that fit (the one with the fewest, so
    /// rooms fill and matches start); then, and for [`Seek::NewRoom`] at once, the
    /// least-loaded node taking new rooms (players, then rooms; `me` on a tie, as no
    /// redirect is cheapest; then id; `me` left out while it drains). Players placed and
    /// not yet answered count on their node, so joins placed at once spread rather than
    /// all pick the same node.
    pub(crate) fn place(&self, kind: &str, seek: Seek<'_>, local: &NodeEntry) -> Option<Placement> {
        let others: Vec<&NodeEntry> = self
            .nodes
            .values()
            .filter(|(n, at)| self.fresh(*at) && n.node != local.node && !n.draining)
            .map(|(n, _)| n)
            .collect();
        if let Seek::Seat(fits) = seek {
            let with_seat = others
                .iter()
                .map(|n| (self.free_seats(&n.node, kind, fits), *n))
                .filter(|(free, _)| *free > 0)
                .min_by(|(fa, a), (fb, b)| (fa, &a.node).cmp(&(fb, &b.node)));
            if let Some((_, n)) = with_seat {
                return Some(Placement::Remote(n.clone()));
            }
        }
        let load = |n: &NodeEntry| {
            let extra = if n.node == local.node {
                0
            } else {
                self.in_flight(&n.node)
            };
            (
                n.players.saturating_add(extra),
                n.rooms,
                n.node != local.node,
            )
        };
        let mut candidates = others;
        if !local.draining {
            candidates.push(local);
        }
        let least = candidates
            .into_iter()
            .min_by(|a, b| (load(a), &a.node).cmp(&(load(b), &b.node)))?;
        Some(if least.node == local.node {
            Placement::Local
        } else {
            Placement::Remote(least.clone())
        })
    }

    /// [`place`](Self::place), counting a player on its way to the node chosen elsewhere
    /// until [`settle`](Self::settle) says how its reservation went.
    pub(crate) fn place_and_count(
        &mut self,
        kind: &str,
        seek: Seek<'_>,
        local: &NodeEntry,
    ) -> Option<Placement> {
        let placed = self.place(kind, seek, local);
        if let Some(Placement::Remote(n)) = &placed {
            self.count_on_the_way(&n.node);
        }
        placed
    }

    /// Counts a player on its way to `node` until [`settle`](Self::settle).
    pub(crate) fn count_on_the_way(&mut self, node: &str) {
        self.inflight.entry(node.to_owned()).or_default().sent += 1;
    }

    /// A live node's entry, by id.
    pub(crate) fn node(&self, node: &str) -> Option<NodeEntry> {
        self.live(node).cloned()
    }

    /// The first room on a live node other than `except` that `which` picks (join by id
    /// or code: the room's owner).
    pub(crate) fn find_room(
        &self,
        except: &str,
        which: impl Fn(&RoomEntry) -> bool,
    ) -> Option<RoomEntry> {
        self.rooms
            .values()
            .filter(|(r, at)| {
                r.node != except && self.fresh(*at) && self.live(&r.node).is_some() && which(r)
            })
            .map(|(r, _)| r.clone())
            .next()
    }

    /// The public rooms of `kind` on live nodes other than `except`, oldest first (then
    /// by node and id), at most `cap` of them: what a listing shows besides its own.
    pub(crate) fn listed(&self, kind: &str, except: &str, cap: usize) -> Vec<RoomEntry> {
        let mut v: Vec<RoomEntry> = self
            .rooms
            .values()
            .filter(|(r, at)| {
                r.kind == kind
                    && !r.private
                    && r.node != except
                    && self.fresh(*at)
                    && self.live(&r.node).is_some()
            })
            .map(|(r, _)| r.clone())
            .collect();
        v.sort_by(|a, b| (a.opened_ms, &a.node, a.room_id).cmp(&(b.opened_ms, &b.node, b.room_id)));
        v.truncate(cap);
        v
    }

    /// A reservation on `node` answered (`Some`: the seat's room and the node's load,
    /// as the owner said them) or failed (`None`): the player no longer counts as on its
    /// way, and the owner's figures replace older ones (a heartbeat written before them
    /// and delivered after is then ignored).
    pub(crate) fn settle(&mut self, node: &str, answer: Option<Answer>) {
        if let Some(f) = self.inflight.get_mut(node) {
            f.answer(answer.as_ref().map(|a| a.granted));
        }
        let Some(Answer {
            room,
            node_players: players,
            node_rooms: rooms,
            ..
        }) = answer
        else {
            return;
        };
        // Answers may arrive out of order (the 12th seat's after the 15th's): a count never
        // goes down here; the owner's next heartbeat, written after, sets it exactly.
        let at = Instant::now();
        if let Some((n, seen)) = self.nodes.get_mut(node) {
            n.players = n.players.max(players);
            n.rooms = n.rooms.max(rooms);
            *seen = (*seen).max(at);
        }
        let key = room.key();
        match self.rooms.get_mut(&key) {
            Some((known, seen)) => {
                known.players = known.players.max(room.players);
                *seen = (*seen).max(at);
            }
            None => {
                self.rooms.insert(key, (room, at));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, players: u32, rooms: u32) -> NodeEntry {
        NodeEntry {
            node: id.into(),
            tcp: format!("{id}:7000"),
            ws: format!("{id}:8080"),
            players,
            rooms,
            draining: false,
        }
    }

    fn room(node: &str, id: u64, players: u32) -> RoomEntry {
        RoomEntry {
            room_id: id,
            kind: "arena".into(),
            node: node.into(),
            players,
            max_players: 16,
            code: None,
            options: Vec::new(),
            metadata: Vec::new(),
            private: false,
            locked: false,
            opened_ms: id,
        }
    }

    fn any(_: &RoomEntry) -> bool {
        true
    }

    const ANY: Seek<'static> = Seek::Seat(&any);

    #[test]
    fn a_free_seat_elsewhere_comes_first_then_the_least_loaded_node() {
        let now = Instant::now();
        let mut v = View::new(Duration::from_secs(3));
        let a = node("a", 16, 1);
        v.put_node(a.clone(), now);
        v.put_node(node("b", 0, 0), now);
        v.put_node(node("c", 0, 0), now);
        assert_eq!(
            v.place("arena", ANY, &a),
            Some(Placement::Remote(node("b", 0, 0)))
        );
        v.put_node(node("b", 3, 1), now);
        v.put_room(room("b", 9, 3), now);
        assert_eq!(
            v.place("arena", ANY, &a),
            Some(Placement::Remote(node("b", 3, 1)))
        );
        // Full, private or locked rooms do not count; then c is the least loaded.
        v.put_room(room("b", 9, 16), now);
        let mut private = room("c", 4, 1);
        private.private = true;
        v.put_room(private, now);
        v.put_node(node("b", 16, 1), now);
        assert_eq!(
            v.place("arena", ANY, &a),
            Some(Placement::Remote(node("c", 0, 0)))
        );
        assert_eq!(
            v.place("arena", ANY, &node("a", 0, 0)),
            Some(Placement::Local)
        );
    }

    fn answer(room: RoomEntry, players: u32, rooms: u32, epoch: u64, granted: u64) -> Answer {
        Answer {
            room,
            node_players: players,
            node_rooms: rooms,
            granted: Granted { epoch, granted },
        }
    }

    #[test]
    fn concurrent_placements_are_counted_and_spread() {
        let now = Instant::now();
        let mut v = View::new(Duration::from_secs(3));
        let a = node("a", 16, 1);
        v.put_node(a.clone(), now);
        v.put_node(node("b", 0, 0), now);
        v.put_node(node("c", 0, 0), now);
        let mut to = std::collections::HashMap::new();
        for _ in 0..32 {
            if let Some(Placement::Remote(n)) = v.place_and_count("arena", ANY, &a) {
                *to.entry(n.node).or_insert(0) += 1;
            }
        }
        assert_eq!(to.get("b"), Some(&16), "{to:?}");
        assert_eq!(to.get("c"), Some(&16), "{to:?}");
        // b answers its first: the room with its first seat, b's load 1, one grant.
        v.settle("b", Some(answer(room("b", 1, 1), 1, 1, 7, 1)));
        v.settle("b", None);
        assert_eq!(v.in_flight("b"), 14);
        // A heartbeat written before that answer, delivered after, changes nothing; nor
        // does an older answer arriving late.
        v.put_node(node("b", 0, 0), now);
        assert_eq!(v.live("b").map(|n| n.players), Some(1));
        v.settle("b", Some(answer(room("b", 1, 9), 9, 1, 7, 9)));
        v.settle("b", Some(answer(room("b", 1, 5), 5, 1, 7, 5)));
        assert_eq!(v.rooms()[0].players, 9);
        assert_eq!(v.live("b").map(|n| n.players), Some(9));
        // Asked 16, one refused, 9 granted as of the owner's latest answer: 6 more on
        // their way that its figures do not hold yet.
        assert_eq!(v.in_flight("b"), 6);
    }

    #[test]
    fn an_answer_holding_other_grants_does_not_count_them_twice() {
        // a is full; eight joins go to b at once, and b's first answer already holds six
        // of them. The room has 8 seats taken, not 6 + 7 on the way: eight more players
        // fit, and the ninth is the one that opens a room (here, on a tie).
        let now = Instant::now();
        let mut v = View::new(Duration::from_secs(3));
        let a = node("a", 16, 1);
        v.put_node(a.clone(), now);
        v.put_node(node("b", 0, 0), now);
        for _ in 0..8 {
            assert_eq!(
                v.place_and_count("arena", ANY, &a),
                Some(Placement::Remote(node("b", 0, 0)))
            );
        }
        v.settle("b", Some(answer(room("b", 1, 6), 6, 1, 7, 6)));
        assert_eq!(v.in_flight("b"), 2);
        let mut more = 0;
        while let Some(Placement::Remote(_)) = v.place_and_count("arena", ANY, &a) {
            more += 1;
            assert!(more <= 16, "b's room cannot take 16 more");
        }
        assert_eq!(more, 8, "the room's 8 free seats are filled, no fewer");
        // The rest of the answers, in any order; then nothing is on its way.
        for granted in [16, 8, 7, 9, 10, 11, 12, 13, 14, 15, 1, 2, 3, 4, 5] {
            v.settle(
                "b",
                Some(answer(room("b", 1, granted as u32), 16, 1, 7, granted)),
            );
        }
        assert_eq!(
            v.inflight.get("b").map(|f| (f.sent, f.answered)),
            Some((16, 16))
        );
        assert_eq!(v.in_flight("b"), 0);
    }

    #[test]
    fn draining_nodes_take_nothing_and_a_lone_draining_node_has_nowhere() {
        let now = Instant::now();
        let mut v = View::new(Duration::from_secs(3));
        let mut a = node("a", 0, 0);
        a.draining = true;
        let mut b = node("b", 0, 0);
        b.draining = true;
        v.put_node(b, now);
        v.put_room(room("b", 1, 1), now);
        assert_eq!(v.place("arena", ANY, &a), None);
        v.put_node(node("c", 40, 3), now);
        assert_eq!(
            v.place("arena", ANY, &a),
            Some(Placement::Remote(node("c", 40, 3)))
        );
    }

    #[test]
    fn dead_nodes_and_their_rooms_are_forgotten_after_the_ttl() {
        let t0 = Instant::now();
        let mut v = View::new(Duration::from_secs(3));
        v.put_node(node("a", 1, 1), t0);
        v.put_node(node("b", 1, 1), t0);
        v.put_room(room("b", 1, 1), t0);
        v.put_node(node("a", 1, 1), t0 + Duration::from_secs(2));
        v.expire(t0 + Duration::from_secs(2));
        assert_eq!(v.rooms().len(), 1);
        v.expire(t0 + Duration::from_secs(3));
        assert_eq!(v.nodes(), vec![node("a", 1, 1)]);
        assert!(v.rooms().is_empty());
        // An older write arriving late does not bring a node back in time.
        v.put_node(node("a", 9, 9), t0);
        assert_eq!(v.live("a").map(|n| n.players), Some(1));
    }

    #[test]
    fn entries_written_before_issue_14_fields_still_read() {
        let old = r#"{"room_id":1,"kind":"arena","node":"a","players":2,"max_players":16}"#;
        let r: RoomEntry = serde_json::from_str(old).unwrap();
        assert_eq!(r.code, None);
        assert!(!r.private && !r.locked);
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("code"), "{text}");
    }

    #[test]
    fn options_and_metadata_travel_as_hex_and_bad_hex_is_refused() {
        let mut r = room("a", 1, 2);
        r.options = vec![
            0x81, 0xa4, b'm', b'o', b'd', b'e', 0xa5, b's', b'p', b'e', b'e', b'd',
        ];
        r.metadata = vec![0xc0];
        let text = serde_json::to_string(&r).unwrap();
        assert!(
            text.contains(r#""options":"81a46d6f6465a57370656564""#),
            "{text}"
        );
        assert!(text.contains(r#""metadata":"c0""#), "{text}");
        assert_eq!(serde_json::from_str::<RoomEntry>(&text).unwrap(), r);
        for bad in ["\"abc\"", "\"zz\"", "12"] {
            let text = format!(
                r#"{{"room_id":1,"kind":"arena","node":"a","players":2,"max_players":16,"options":{bad}}}"#
            );
            assert!(serde_json::from_str::<RoomEntry>(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_seat_must_fit_the_filter_a_new_room_ignores_seats_and_ties_stay_here() {
        let now = Instant::now();
        let mut v = View::new(Duration::from_secs(3));
        let a = node("a", 2, 1);
        v.put_node(a.clone(), now);
        v.put_node(node("b", 2, 1), now);
        v.put_node(node("c", 1, 1), now);
        let mut speed = room("b", 7, 1);
        speed.options = vec![1];
        v.put_room(speed, now);
        let speed_only = |r: &RoomEntry| r.options == [1];
        let classic = |r: &RoomEntry| r.options.is_empty();
        assert_eq!(
            v.place("arena", Seek::Seat(&speed_only), &a),
            Some(Placement::Remote(node("b", 2, 1)))
        );
        // No classic room has a seat: the least-loaded node, c; a new room too.
        assert_eq!(
            v.place("arena", Seek::Seat(&classic), &a),
            Some(Placement::Remote(node("c", 1, 1)))
        );
        assert_eq!(
            v.place("arena", Seek::NewRoom, &a),
            Some(Placement::Remote(node("c", 1, 1)))
        );
        // As loaded as the least-loaded other node: it stays here.
        assert_eq!(
            v.place("arena", Seek::NewRoom, &node("a", 1, 1)),
            Some(Placement::Local)
        );
    }

    #[test]
    fn rooms_are_found_by_id_or_code_and_listed_public_oldest_first() {
        let now = Instant::now();
        let mut v = View::new(Duration::from_secs(3));
        v.put_node(node("a", 0, 0), now);
        v.put_node(node("b", 0, 0), now);
        let mut hidden = room("b", 5, 1);
        hidden.private = true;
        hidden.code = Some("ABCDEF".into());
        v.put_room(hidden, now);
        v.put_room(room("b", 9, 1), now);
        v.put_room(room("a", 3, 1), now);
        v.put_room(room("b", 4, 1), now);
        let by_code = v.find_room("a", |r| r.code.as_deref() == Some("ABCDEF"));
        assert_eq!(
            by_code.map(|r| r.room_id),
            Some(5),
            "private rooms are found by code"
        );
        assert_eq!(
            v.find_room("b", |r| r.room_id == 9),
            None,
            "not on the asking node"
        );
        let listed: Vec<u64> = v
            .listed("arena", "a", 10)
            .iter()
            .map(|r| r.room_id)
            .collect();
        assert_eq!(listed, [4, 9], "public, other nodes', oldest first");
        assert_eq!(v.listed("arena", "a", 1).len(), 1);
        assert!(v.listed("tictactoe", "a", 10).is_empty());
    }
}
