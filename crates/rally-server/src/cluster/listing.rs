//! `list_rooms` in cluster mode: this node's public rooms merged with the other nodes'
//! from the room directory, with the same filter, order (oldest first), page bound and
//! scan bound as a single node's listing.
//!
//! This node's rooms come from its registry (exact, live); the others' from their
//! directory entries, as fresh as their last heartbeat (a third of
//! `cluster_node_ttl_ms`): a room opened or filled since then shows a moment late.

use std::time::SystemTime;

use bytes::Bytes;
use rally_game::RoomOptions;
use rally_protocol::RoomListing;

use super::{unix_ms, Cluster, RoomEntry};
use crate::matchmaker::{MAX_LIST_LIMIT, MAX_LIST_SCAN};
use crate::room::RoomEnv;

impl Cluster {
    /// A page of the public rooms of `kind` matching `filter` on every live node, oldest
    /// first, and how many match in all (counted over at most [`MAX_LIST_SCAN`] rooms of
    /// this node and as many of the others').
    pub(crate) fn list(
        &self,
        rooms: &RoomEnv,
        kind: &str,
        filter: &RoomOptions,
        offset: usize,
        limit: usize,
    ) -> (usize, Vec<RoomListing>) {
        let limit = limit.min(MAX_LIST_LIMIT);
        // The merged page can only hold the first `offset + limit` of either side.
        let wanted = offset.saturating_add(limit).min(MAX_LIST_SCAN);
        let (here_total, here) = rooms.matchmaker.scan(kind, filter, 0, wanted);
        let entries = self.view().listed(kind, &self.node, MAX_LIST_SCAN);
        let now = unix_ms(SystemTime::now());
        let test = filter.to_filter();
        let mut scratch = Vec::new();
        let mut there_total = 0;
        let mut there = Vec::new();
        for e in entries {
            let matches = test.is_empty()
                || RoomOptions::parse(&e.options)
                    .is_ok_and(|options| test.matches(&options, &mut scratch));
            if !matches {
                continue;
            }
            there_total += 1;
            if there.len() < wanted {
                there.push(listing(&e, now));
            }
        }
        let page = merge_oldest_first(here, there)
            .skip(offset)
            .take(limit)
            .collect();
        (here_total + there_total, page)
    }
}

/// Two listings each oldest first, merged oldest first (a tie: this node's first).
fn merge_oldest_first(
    here: Vec<RoomListing>,
    there: Vec<RoomListing>,
) -> impl Iterator<Item = RoomListing> {
    let mut here = here.into_iter().peekable();
    let mut there = there.into_iter().peekable();
    std::iter::from_fn(move || match (here.peek(), there.peek()) {
        (Some(h), Some(t)) if t.age_ms > h.age_ms => there.next(),
        (Some(_), _) => here.next(),
        (None, _) => there.next(),
    })
}

/// Another node's room as a listing shows it.
fn listing(e: &RoomEntry, now_ms: u64) -> RoomListing {
    RoomListing {
        room_id: e.room_id,
        kind: e.kind.clone(),
        code: e.code.clone().unwrap_or_default(),
        players: e.players.min(e.max_players),
        max_players: e.max_players,
        metadata: Bytes::from(e.metadata.clone()),
        age_ms: now_ms.saturating_sub(e.opened_ms),
        locked: e.locked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(age_ms: u64, room_id: u64) -> RoomListing {
        RoomListing {
            room_id,
            kind: "arena".into(),
            code: String::new(),
            players: 1,
            max_players: 16,
            metadata: Bytes::new(),
            age_ms,
            locked: false,
        }
    }

    #[test]
    fn merged_listings_stay_oldest_first() {
        let here = vec![at(900, 1), at(500, 2), at(100, 3)];
        let there = vec![at(1000, 11), at(500, 12), at(50, 13)];
        let ids: Vec<u64> = merge_oldest_first(here, there).map(|l| l.room_id).collect();
        assert_eq!(ids, [11, 1, 2, 12, 3, 13]);
        let ids: Vec<u64> = merge_oldest_first(Vec::new(), vec![at(5, 7)])
            .map(|l| l.room_id)
            .collect();
        assert_eq!(ids, [7]);
    }

    #[test]
    fn a_listing_from_an_entry_shows_its_age_code_and_metadata() {
        let e = RoomEntry {
            room_id: 4,
            kind: "arena".into(),
            node: "b".into(),
            players: 20,
            max_players: 16,
            code: Some("ABCDEF".into()),
            options: Vec::new(),
            metadata: vec![0xc3],
            private: false,
            locked: true,
            opened_ms: 1_000,
        };
        let l = listing(&e, 3_500);
        assert_eq!(
            (l.age_ms, l.players, l.code.as_str()),
            (2_500, 16, "ABCDEF")
        );
        assert_eq!((&l.metadata[..], l.locked), (&[0xc3][..], true));
    }
}
