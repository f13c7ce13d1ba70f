//! The matchmaking queue's state machine: waiting tickets grouped into matches by rating.
//!
//! Sans-IO like the protocol crate: no tokio, no sockets; time comes in as an `Instant`
//! argument and matches and timeouts come out of [`Tickets::pass`], so the unit tests drive
//! it with a virtual clock. The server's queue task (the parent module) calls `pass` on a
//! timer and carries out what it returns.
//!
//! A ticket is one player or one party, with a rating and the time it entered. Tickets wait
//! in a pool per room kind and filter values (players who asked for another `mode` never
//! meet), sorted by rating. A pass forms, around each ticket (the *seed*), the group of the
//! tickets nearest in rating within the seed's tolerance, which widens with the seed's
//! wait (`base + widen_per_sec * waited`, capped); it then takes the groups with the
//! smallest rating spread first, so close ratings are matched before far ones. A party is
//! one ticket, so it lands in one match, and on one team when the kind has teams.
//!
//! Bounded: a pool holds at most `max_per_kind` players of its kind, the queue
//! `max_total`; a pass looks at no more than `scan_per_pass` neighbours.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a room kind's queue groups players, declared with the kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MatchRules {
    /// Players in one match.
    pub(crate) players: usize,
    /// Teams in one match; 0 or 1: no teams. `players` divides evenly into them.
    pub(crate) teams: usize,
    /// The rating difference a ticket accepts as it enters.
    pub(crate) base_tolerance: f64,
    /// How much the tolerance grows per second waited.
    pub(crate) widen_per_sec: f64,
    /// The widest the tolerance gets.
    pub(crate) max_tolerance: f64,
    /// How long a ticket waits before it is answered with `MATCH_TIMEOUT`.
    pub(crate) timeout: Duration,
}

impl MatchRules {
    /// Team count as the match uses it: at least one.
    fn team_count(&self) -> usize {
        self.teams.max(1)
    }

    /// Seats per team.
    fn team_size(&self) -> usize {
        self.players / self.team_count()
    }

    /// The tolerance of a ticket that has waited `waited`.
    pub(crate) fn tolerance(&self, waited: Duration) -> f64 {
        (self.base_tolerance + self.widen_per_sec * waited.as_secs_f64()).min(self.max_tolerance)
    }
}

/// The queue's memory and work bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Players waiting for one room kind (all its pools).
    pub(crate) max_per_kind: usize,
    /// Players waiting in the whole queue.
    pub(crate) max_total: usize,
    /// Neighbour tickets one pass may look at, over all pools.
    pub(crate) scan_per_pass: usize,
}

/// Why a ticket was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// A member already waits in the queue.
    #[error("player {0} is already in the queue")]
    AlreadyQueued(u64),
    /// The kind's queue or the whole queue is at its bound.
    #[error("the matchmaking queue is full; try again later")]
    Full,
    /// The party does not fit one team (or one match).
    #[error("a party of {party} does not fit a team of {team}")]
    PartyTooBig { party: usize, team: usize },
    /// The rating is not a finite number.
    #[error("the rating must be a finite number")]
    BadRating,
    /// A ticket without players.
    #[error("a ticket needs at least one player")]
    Empty,
}

/// Which pool a ticket waits in: its room kind and the values of the kind's filter keys
/// (encoded by the caller; equal bytes, same pool).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PoolKey {
    pub(crate) kind: Arc<str>,
    pub(crate) filter: Vec<u8>,
}

/// A waiting ticket's identity.
pub(crate) type TicketId = u64;

/// A ticket as a pool keeps it, sorted by rating.
#[derive(Debug, Clone, Copy)]
struct Entry {
    rating: f64,
    id: TicketId,
    /// Players on the ticket (a party's size).
    size: usize,
    enqueued: Instant,
}

impl Entry {
    fn order(&self, other: &Entry) -> std::cmp::Ordering {
        self.rating
            .total_cmp(&other.rating)
            .then(self.id.cmp(&other.id))
    }
}

#[derive(Debug)]
struct Pool {
    rules: MatchRules,
    /// Sorted by rating, then ticket id.
    entries: Vec<Entry>,
}

impl Pool {
    fn position(&self, e: &Entry) -> Option<usize> {
        self.entries.binary_search_by(|x| x.order(e)).ok()
    }
}

/// A waiting ticket: its players (each a member id and what the caller keeps for it) and
/// what the caller keeps for the ticket (e.g. the room options).
#[derive(Debug)]
struct Waiting<M, T> {
    pool: PoolKey,
    entry: Entry,
    members: Vec<(u64, M)>,
    payload: T,
}

/// One ticket placed in a match.
#[derive(Debug)]
pub(crate) struct Placed<M, T> {
    /// Its players, in the order they entered.
    pub(crate) members: Vec<(u64, M)>,
    pub(crate) payload: T,
    /// 0 when the kind has no teams, else 1..=teams.
    pub(crate) team: u32,
    pub(crate) waited: Duration,
}

/// A match: tickets whose players fill one room.
#[derive(Debug)]
pub(crate) struct Match<M, T> {
    pub(crate) pool: PoolKey,
    /// Seed first, then by closeness of rating.
    pub(crate) tickets: Vec<Placed<M, T>>,
}

/// A ticket that waited its kind's whole timeout.
#[derive(Debug)]
pub(crate) struct TimedOut<M> {
    pub(crate) kind: Arc<str>,
    pub(crate) members: Vec<(u64, M)>,
    pub(crate) waited: Duration,
}

/// What a pass found.
#[derive(Debug)]
pub(crate) struct Outcome<M, T> {
    pub(crate) matches: Vec<Match<M, T>>,
    pub(crate) timed_out: Vec<TimedOut<M>>,
}

/// The waiting tickets of every kind.
#[derive(Debug)]
pub(crate) struct Tickets<M, T> {
    limits: Limits,
    pools: BTreeMap<PoolKey, Pool>,
    waiting: HashMap<TicketId, Waiting<M, T>>,
    /// Which ticket each queued player is on.
    by_member: HashMap<u64, TicketId>,
    /// Players waiting per kind.
    per_kind: HashMap<Arc<str>, usize>,
    next_id: TicketId,
}

impl<M, T> Tickets<M, T> {
    pub(crate) fn new(limits: Limits) -> Self {
        Tickets {
            limits,
            pools: BTreeMap::new(),
            waiting: HashMap::new(),
            by_member: HashMap::new(),
            per_kind: HashMap::new(),
            next_id: 0,
        }
    }

    /// Players waiting in the whole queue.
    pub(crate) fn len(&self) -> usize {
        self.by_member.len()
    }

    /// Players waiting for `kind`.
    pub(crate) fn waiting_for(&self, kind: &str) -> usize {
        self.per_kind.get(kind).copied().unwrap_or(0)
    }

    /// Whether `member` waits in the queue.
    pub(crate) fn contains(&self, member: u64) -> bool {
        self.by_member.contains_key(&member)
    }

    /// Queues a ticket: one player or a party, all with one rating, into `pool` with that
    /// kind's `rules`.
    pub(crate) fn enqueue(
        &mut self,
        pool: PoolKey,
        rules: &MatchRules,
        members: Vec<(u64, M)>,
        rating: f64,
        payload: T,
        now: Instant,
    ) -> Result<TicketId, Refusal> {
        if !rating.is_finite() {
            return Err(Refusal::BadRating);
        }
        if members.is_empty() {
            return Err(Refusal::Empty);
        }
        if let Some((id, _)) = members.iter().find(|(id, _)| self.contains(*id)) {
            return Err(Refusal::AlreadyQueued(*id));
        }
        let size = members.len();
        if size > rules.team_size() {
            return Err(Refusal::PartyTooBig {
                party: size,
                team: rules.team_size(),
            });
        }
        let kind_now = self.waiting_for(&pool.kind);
        if kind_now + size > self.limits.max_per_kind || self.len() + size > self.limits.max_total {
            return Err(Refusal::Full);
        }
        self.next_id += 1;
        let entry = Entry {
            rating,
            id: self.next_id,
            size,
            enqueued: now,
        };
        let p = self.pools.entry(pool.clone()).or_insert_with(|| Pool {
            rules: rules.clone(),
            entries: Vec::new(),
        });
        let at = p.entries.partition_point(|x| x.order(&entry).is_lt());
        p.entries.insert(at, entry);
        for (m, _) in &members {
            self.by_member.insert(*m, entry.id);
        }
        *self.per_kind.entry(pool.kind.clone()).or_default() += size;
        self.waiting.insert(
            entry.id,
            Waiting {
                pool,
                entry,
                members,
                payload,
            },
        );
        Ok(entry.id)
    }

    /// Takes one player out of the queue (they left it or disconnected); the rest of their
    /// party keeps waiting. Returns the kind they waited for and what was kept for them,
    /// `None` if they were not queued.
    pub(crate) fn remove_member(&mut self, member: u64) -> Option<(Arc<str>, M)> {
        let id = self.by_member.remove(&member)?;
        let w = self.waiting.get_mut(&id)?;
        let at = w.members.iter().position(|(m, _)| *m == member)?;
        let (_, data) = w.members.remove(at);
        let (pool, old) = (w.pool.clone(), w.entry);
        w.entry.size -= 1;
        let (new, empty) = (w.entry, w.members.is_empty());
        if let Some(n) = self.per_kind.get_mut(&pool.kind) {
            *n = n.saturating_sub(1);
        }
        if let Some(p) = self.pools.get_mut(&pool) {
            if let Some(at) = p.position(&old) {
                if empty {
                    p.entries.remove(at);
                } else {
                    p.entries[at] = new;
                }
            }
        }
        if empty {
            self.waiting.remove(&id);
            self.drop_pool_if_empty(&pool);
        }
        Some((pool.kind, data))
    }

    fn drop_pool_if_empty(&mut self, pool: &PoolKey) {
        if self.pools.get(pool).is_some_and(|p| p.entries.is_empty()) {
            self.pools.remove(pool);
        }
    }

    /// Takes a whole ticket out, forgetting its players.
    fn take(&mut self, id: TicketId) -> Option<Waiting<M, T>> {
        let w = self.waiting.remove(&id)?;
        for (m, _) in &w.members {
            self.by_member.remove(m);
        }
        if let Some(n) = self.per_kind.get_mut(&w.pool.kind) {
            *n = n.saturating_sub(w.members.len());
        }
        Some(w)
    }

    /// One pass at `now`: answers the tickets that waited their timeout, then groups the
    /// others into matches, closest ratings first.
    pub(crate) fn pass(&mut self, now: Instant) -> Outcome<M, T> {
        let mut out = Outcome {
            matches: Vec::new(),
            timed_out: Vec::new(),
        };
        self.expire(now, &mut out);
        let busy = self.pools.len().max(1);
        // Each pool gets its share of the pass's work, and always enough to fill a match
        // or two, so one crowded kind cannot starve the others.
        let keys: Vec<PoolKey> = self.pools.keys().cloned().collect();
        for key in keys {
            let Some(pool) = self.pools.get(&key) else {
                continue;
            };
            let budget = (self.limits.scan_per_pass / busy).max(4 * pool.rules.players);
            // Indexes into the pool as it is now: read every group's entries before any
            // leaves it.
            let groups: Vec<Vec<(Entry, u32)>> = match_pool(pool, now, budget)
                .into_iter()
                .map(|g| {
                    g.into_iter()
                        .map(|(at, team)| (pool.entries[at], team))
                        .collect()
                })
                .collect();
            if let Some(pool) = self.pools.get_mut(&key) {
                let gone: std::collections::HashSet<TicketId> =
                    groups.iter().flatten().map(|(e, _)| e.id).collect();
                pool.entries.retain(|e| !gone.contains(&e.id));
            }
            for group in groups {
                let tickets = group
                    .into_iter()
                    .filter_map(|(e, team)| {
                        let w = self.take(e.id)?;
                        Some(Placed {
                            members: w.members,
                            payload: w.payload,
                            team,
                            waited: now.saturating_duration_since(e.enqueued),
                        })
                    })
                    .collect();
                out.matches.push(Match {
                    pool: key.clone(),
                    tickets,
                });
            }
            self.drop_pool_if_empty(&key);
        }
        out
    }

    /// Moves the tickets past their timeout into `out`.
    fn expire(&mut self, now: Instant, out: &mut Outcome<M, T>) {
        let mut expired = Vec::new();
        for p in self.pools.values_mut() {
            let timeout = p.rules.timeout;
            p.entries.retain(|e| {
                let over = now.saturating_duration_since(e.enqueued) >= timeout;
                if over {
                    expired.push(e.id);
                }
                !over
            });
        }
        for id in expired {
            if let Some(w) = self.take(id) {
                out.timed_out.push(TimedOut {
                    kind: w.pool.kind.clone(),
                    members: w.members,
                    waited: now.saturating_duration_since(w.entry.enqueued),
                });
            }
        }
        self.pools.retain(|_, p| !p.entries.is_empty());
    }
}

/// A candidate match: indexes into a pool's entries with their teams, and its spread.
struct Candidate {
    spread: f64,
    /// When its oldest ticket entered: among equal spreads, the longest wait goes first.
    oldest: Instant,
    group: Vec<(usize, u32)>,
}

/// The matches one pool can make at `now`, looking at no more than `budget` neighbours:
/// disjoint groups of entry indexes, each with its tickets' teams.
fn match_pool(pool: &Pool, now: Instant, budget: usize) -> Vec<Vec<(usize, u32)>> {
    let n = pool.entries.len();
    let mut taken = vec![false; n];
    let mut budget = budget;
    let mut found = Vec::new();
    // Rounds: a seed whose best group overlapped a better one may still form another
    // group from what is left.
    loop {
        let mut candidates = Vec::new();
        for seed in 0..n {
            if budget == 0 {
                break;
            }
            if taken[seed] {
                continue;
            }
            if let Some(c) = group_around(pool, seed, &taken, now, &mut budget) {
                candidates.push(c);
            }
        }
        candidates.sort_by(|a, b| a.spread.total_cmp(&b.spread).then(a.oldest.cmp(&b.oldest)));
        let mut accepted = 0;
        for c in candidates {
            if c.group.iter().any(|(at, _)| taken[*at]) {
                continue;
            }
            for (at, _) in &c.group {
                taken[*at] = true;
            }
            found.push(c.group);
            accepted += 1;
        }
        if accepted == 0 || budget == 0 {
            return found;
        }
    }
}

/// The group formed around `seed`: the untaken tickets nearest its rating, within its
/// tolerance, that fill a match (and its teams) exactly.
fn group_around(
    pool: &Pool,
    seed: usize,
    taken: &[bool],
    now: Instant,
    budget: &mut usize,
) -> Option<Candidate> {
    let rules = &pool.rules;
    let e = &pool.entries;
    let s = e[seed];
    let tolerance = rules.tolerance(now.saturating_duration_since(s.enqueued));
    let mut sizes = vec![s.size];
    let mut group = vec![seed];
    let mut need = rules.players.checked_sub(s.size)?;
    let (mut lo, mut hi) = (seed.checked_sub(1), seed + 1);
    while need > 0 && *budget > 0 {
        let dist = |i: usize| (e[i].rating - s.rating).abs();
        let below = lo.filter(|&i| dist(i) <= tolerance);
        let above = (hi < e.len())
            .then_some(hi)
            .filter(|&i| dist(i) <= tolerance);
        let next = match (below, above) {
            (Some(b), Some(a)) => {
                if dist(b) <= dist(a) {
                    b
                } else {
                    a
                }
            }
            (Some(b), None) => b,
            (None, Some(a)) => a,
            (None, None) => break,
        };
        if next < seed {
            lo = next.checked_sub(1);
        } else {
            hi = next + 1;
        }
        *budget -= 1;
        if taken[next] || e[next].size > need {
            continue;
        }
        sizes.push(e[next].size);
        if assign_teams(&sizes, rules).is_none() {
            sizes.pop();
            continue;
        }
        group.push(next);
        need -= e[next].size;
    }
    if need > 0 {
        return None;
    }
    let teams = assign_teams(&sizes, rules)?;
    let (min, max) = group.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &i| {
        (lo.min(e[i].rating), hi.max(e[i].rating))
    });
    let oldest = group.iter().map(|&i| e[i].enqueued).min()?;
    Some(Candidate {
        spread: max - min,
        oldest,
        group: group.into_iter().zip(teams).collect(),
    })
}

/// Puts tickets of these sizes on teams so that no team overflows, a ticket whole on one
/// team: the largest first, each on the team with the most free seats (first fit
/// decreasing). Returns each ticket's team (0 without teams), or `None` if they do not fit.
fn assign_teams(sizes: &[usize], rules: &MatchRules) -> Option<Vec<u32>> {
    if rules.team_count() == 1 {
        return (sizes.iter().sum::<usize>() <= rules.players).then(|| vec![0; sizes.len()]);
    }
    let mut free = vec![rules.team_size(); rules.team_count()];
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|a, b| sizes[*b].cmp(&sizes[*a]).then(a.cmp(b)));
    let mut teams = vec![0; sizes.len()];
    for i in order {
        let (team, room) = free
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))?;
        if *room < sizes[i] {
            return None;
        }
        free[team] -= sizes[i];
        // Teams are numbered from 1; the count is a kind's small setting.
        teams[i] = u32::try_from(team + 1).ok()?;
    }
    Some(teams)
}

#[cfg(test)]
mod tests;
