//! The matchmaking queue (play floor): players and parties wait here, by room kind, filter
//! values and rating, until a pass groups them into a match, whose room the commands
//! floor (`command::queue`) opens and seats.
//!
//! `queue` and `leave_queue` (commands) and a session's end change the tickets under one
//! short lock; the matching is done by [`MatchQueue::pass`], which the commands' queue
//! task calls every [`PASS_EVERY`] (not per message), so a burst of `queue` requests
//! costs a map insert each. A pass returns the tickets that waited their kind's timeout
//! (answered with `MATCH_TIMEOUT`) and the matches, which the commands floor seats.
//!
//! In cluster mode the tickets wait on the cluster's queue leader instead; this queue
//! then keeps only its own players as remote waiters ([`MatchQueue::hold_remote`]), so
//! `contains`, `leave_queue` and a disconnect work the same, and tells the cluster who
//! left ([`MatchQueue::take_cancels`]).
//!
//! A session learns its new seat from [`MatchQueue::take_seat`] when its outbox signals it
//! (`SessionCtl::seat_ready`): the seating task cannot reach into the session's task.
//!
//! # Layout
//! - `pool`: the sans-IO state machine: tickets, pools, the pass that forms matches.
//! - this file: the queue the server shares: tickets, passes, seats handed to sessions.

mod pool;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rally_game::PlayerId;
use rally_protocol::ErrorCode;

use crate::error::ClientError;
use crate::games::{KindRules, QueueRules};
use crate::metrics::{ErrorKind, Metrics, QueueMeter};
use crate::outbox::SessionLink;
use crate::room_handle::{Control, Membership, RoomHandle};

pub(crate) use pool::{Limits, MatchRules, PoolKey, Refusal, Tickets};

/// How often the queue looks for matches and timeouts.
pub(crate) const PASS_EVERY: Duration = Duration::from_millis(250);
/// The queue's bounds: players waiting per kind and in all, neighbours looked at per pass.
pub(crate) const LIMITS: Limits = Limits {
    max_per_kind: 10_000,
    max_total: 50_000,
    scan_per_pass: 50_000,
};

/// A queued player: how to reach them, and the seat they leave when matched.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) link: SessionLink,
    /// Their account, for the room's one-seat-per-account rule.
    pub(crate) account: Option<u64>,
    /// The room they sit in now (a party's, or a solo player's lobby), left at the match.
    pub(crate) seat: Option<(RoomHandle, PlayerId)>,
}

/// A match to seat: its room's kind and options, and its players with their teams.
#[derive(Debug)]
pub(crate) struct Seating {
    pub(crate) kind: Arc<str>,
    /// The first ticket's room options (a MessagePack map or nil, as sent).
    pub(crate) options: Bytes,
    /// Every player, a party's together, with its team (0: the kind has no teams).
    pub(crate) players: Vec<(Waiter, u32)>,
}

/// What one pass found.
#[derive(Debug, Default)]
pub(crate) struct Pass {
    /// Players whose ticket timed out, with the error to send them.
    pub(crate) timed_out: Vec<(SessionLink, ClientError)>,
    pub(crate) matches: Vec<Seating>,
}

/// A player of this node whose ticket waits in the cluster's queue, on the queue leader
/// (cluster mode, `cluster::queue`): how to reach them when the leader answers.
#[derive(Debug)]
pub(crate) struct RemoteWaiter {
    pub(crate) link: SessionLink,
    pub(crate) account: Option<u64>,
    /// The room they sit in now, left at the match.
    pub(crate) seat: Option<(RoomHandle, PlayerId)>,
    /// Becomes true once the player has its `ok`: a match answered sooner waits for it,
    /// so the `ok` always comes first.
    pub(crate) ok_sent: tokio::sync::watch::Receiver<bool>,
    /// The leader holding its ticket; `None` while the `queue` request is on its way.
    pub(crate) leader: Option<String>,
}

/// Sessions taken out of the cluster's queue here (`leave_queue`, disconnect), for the
/// cluster to tell the leader; bounded, a full channel drops the news (the leader's match
/// then finds nobody here, and its seat ticket expires).
const CANCELS: usize = 1024;

/// The queue the server shares: the tickets, and the seats matched players have not yet
/// picked up.
pub(crate) struct MatchQueue {
    /// Never held across `.await`.
    tickets: Mutex<Tickets<Waiter, Bytes>>,
    /// Cluster mode: this node's players waiting on the queue leader, by session.
    remote: Mutex<HashMap<u64, RemoteWaiter>>,
    /// Where `leave_queue` and a disconnect of a remote waiter are told.
    cancels: tokio::sync::mpsc::Sender<u64>,
    /// The other end, taken by the cluster's queue task.
    cancels_rx: Mutex<Option<tokio::sync::mpsc::Receiver<u64>>>,
    /// New memberships by session id, until the session takes them.
    placed: Mutex<HashMap<u64, Membership>>,
    /// Waiting players and wait times by kind.
    meters: HashMap<Arc<str>, QueueMeter>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for MatchQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatchQueue")
            .field("waiting", &self.tickets().len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is a few map operations that leave the maps consistent, so a
    // poisoned lock is still safe to use.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MatchQueue {
    /// A queue for the room `kinds` the server offers, bounded by `limits`.
    pub(crate) fn new(kinds: &[String], limits: Limits, metrics: Arc<Metrics>) -> Self {
        let meters = kinds
            .iter()
            .map(|k| (Arc::from(k.as_str()), metrics.queue_meter(k)))
            .collect();
        let (cancels, cancels_rx) = tokio::sync::mpsc::channel(CANCELS);
        MatchQueue {
            tickets: Mutex::new(Tickets::new(limits)),
            remote: Mutex::new(HashMap::new()),
            cancels,
            cancels_rx: Mutex::new(Some(cancels_rx)),
            placed: Mutex::new(HashMap::new()),
            meters,
            metrics,
        }
    }

    fn tickets(&self) -> MutexGuard<'_, Tickets<Waiter, Bytes>> {
        lock(&self.tickets)
    }

    fn count(&self, kind: &str, waiting: usize) {
        if let Some(m) = self.meters.get(kind) {
            m.waiting(waiting);
        }
    }

    /// Queues one player or a party (every member of `members`), with one rating, and
    /// calls `queued` while the ticket is queued and before any pass can match it (the
    /// `ok` goes out there, so it precedes the match's `joined`).
    pub(crate) fn enqueue(
        &self,
        pool: PoolKey,
        rules: &MatchRules,
        members: Vec<(u64, Waiter)>,
        rating: f64,
        options: Bytes,
        queued: impl FnOnce(),
    ) -> Result<(), ClientError> {
        let now = tokio::time::Instant::now().into_std();
        let kind = pool.kind.clone();
        let mut tickets = self.tickets();
        let result = tickets.enqueue(pool, rules, members, rating, options, now);
        if result.is_ok() {
            queued();
        }
        let waiting = tickets.waiting_for(&kind);
        drop(tickets);
        self.count(&kind, waiting);
        result.map(|_| ()).map_err(refused)
    }

    /// Cluster mode: keeps `session` as waiting on the queue leader; the `ok_sent`
    /// receiver in `waiter` is released once its `ok` went out.
    pub(crate) fn hold_remote(&self, session: u64, waiter: RemoteWaiter) {
        lock(&self.remote).insert(session, waiter);
    }

    /// Cluster mode: takes `session` out of the remote waiters (its match or its end came).
    pub(crate) fn take_remote(&self, session: u64) -> Option<RemoteWaiter> {
        lock(&self.remote).remove(&session)
    }

    /// Cluster mode: the remote waiters whose tickets another leader than `leader` held
    /// (the queue leader changed to `leader`: those tickets are gone). Those whose
    /// request is on its way stay: [`accepted_remote`](Self::accepted_remote) decides.
    pub(crate) fn take_remote_not_on(&self, leader: Option<&str>) -> Vec<(u64, RemoteWaiter)> {
        lock(&self.remote)
            .extract_if(|_, w| w.leader.is_some() && w.leader.as_deref() != leader)
            .collect()
    }

    /// Cluster mode: `sessions`' tickets were accepted by `leader`. They wait on it if it
    /// still leads (`leads`, asked under the waiters' lock, so a change of leader either
    /// comes before, and they are taken out here, or after, and its
    /// [`take_remote_not_on`](Self::take_remote_not_on) sees them). Whether they wait.
    pub(crate) fn accepted_remote(
        &self,
        sessions: &[u64],
        leader: &str,
        leads: impl FnOnce() -> bool,
    ) -> bool {
        let mut remote = lock(&self.remote);
        let still = leads();
        for s in sessions {
            if still {
                if let Some(w) = remote.get_mut(s) {
                    w.leader = Some(leader.to_owned());
                }
            } else {
                remote.remove(s);
            }
        }
        still
    }

    /// Cluster mode: the channel of sessions that left the cluster's queue here; the
    /// first caller gets it.
    pub(crate) fn take_cancels(&self) -> Option<tokio::sync::mpsc::Receiver<u64>> {
        lock(&self.cancels_rx).take()
    }

    /// Takes a remote waiter out and tells the cluster; whether it was one.
    fn cancel_remote(&self, session: u64) -> bool {
        let was = lock(&self.remote).remove(&session).is_some();
        if was && self.cancels.try_send(session).is_err() {
            tracing::warn!(
                session,
                "too many queue cancellations at once; one is dropped"
            );
        }
        was
    }

    /// Whether nobody waits in any kind's queue (a pass would find nothing to do).
    pub(crate) fn is_empty(&self) -> bool {
        self.tickets().len() == 0
    }

    /// Whether `session` waits in the queue (here, or on the cluster's queue leader).
    pub(crate) fn contains(&self, session: u64) -> bool {
        self.tickets().contains(session) || lock(&self.remote).contains_key(&session)
    }

    /// Takes `session` out of the queue (`leave_queue`); the rest of its party waits on.
    pub(crate) fn leave(&self, session: u64) -> Result<(), ClientError> {
        if self.cancel_remote(session) {
            return Ok(());
        }
        let mut tickets = self.tickets();
        match tickets.remove_member(session) {
            Some((kind, _)) => {
                let waiting = tickets.waiting_for(&kind);
                drop(tickets);
                self.count(&kind, waiting);
                Ok(())
            }
            None => Err(ClientError::new(
                ErrorCode::NotInQueue,
                "not in a matchmaking queue",
            )),
        }
    }

    /// The session ended: it leaves the queue, and a seat a match gave it that it did not
    /// pick up yet is returned for the session to leave.
    pub(crate) fn forget(&self, session: u64) -> Option<Membership> {
        let _ = self.leave(session);
        lock(&self.placed).remove(&session)
    }

    /// The seat a match gave `session`, if one waits for it.
    pub(crate) fn take_seat(&self, session: u64) -> Option<Membership> {
        lock(&self.placed).remove(&session)
    }

    /// One pass at the current time: the tickets that timed out and the matches found,
    /// with the queue's figures brought up to date.
    pub(crate) fn pass(&self) -> Pass {
        let now = tokio::time::Instant::now().into_std();
        let (outcome, counts) = {
            let mut tickets = self.tickets();
            let outcome = tickets.pass(now);
            let counts: Vec<(Arc<str>, usize)> = self
                .meters
                .keys()
                .map(|k| (k.clone(), tickets.waiting_for(k)))
                .collect();
            (outcome, counts)
        };
        for (kind, n) in counts {
            self.count(&kind, n);
        }
        let mut pass = Pass::default();
        for t in outcome.timed_out {
            if let Some(m) = self.meters.get(&t.kind) {
                m.timed_out(t.waited);
            }
            for (_, w) in t.members {
                let e = ClientError::new(
                    ErrorCode::MatchTimeout,
                    format!(
                        "no match found within {} s; queue again to keep waiting",
                        t.waited.as_secs()
                    ),
                );
                self.metrics.stats.count_error(ErrorKind::Command, e.code);
                pass.timed_out.push((w.link, e));
            }
        }
        for m in outcome.matches {
            let meter = self.meters.get(&m.pool.kind);
            let options = m
                .tickets
                .first()
                .map(|t| t.payload.clone())
                .unwrap_or_default();
            let mut players = Vec::new();
            for t in m.tickets {
                if let Some(meter) = meter {
                    meter.matched(t.waited);
                }
                players.extend(t.members.into_iter().map(|(_, w)| (w, t.team)));
            }
            pass.matches.push(Seating {
                kind: m.pool.kind,
                options,
                players,
            });
        }
        pass
    }

    /// Hands a new seat to its session, unless the session ended meanwhile: then the seat
    /// is given back at once.
    pub(crate) fn place(&self, link: &SessionLink, membership: Membership) {
        let mut placed = lock(&self.placed);
        // Checked under the lock `forget` takes after the session's end is recorded: the
        // seat is either picked up by `forget` or never stored.
        if link.ctl.is_ended() {
            drop(placed);
            let _ = membership.room.control.try_send(Control::Leave {
                player: membership.player_id,
                session: link.session_id,
                reply: None,
            });
            return;
        }
        placed.insert(link.session_id, membership);
        drop(placed);
        link.ctl.seat_ready();
    }
}

/// A refused ticket as the client hears it.
pub(crate) fn refused(r: Refusal) -> ClientError {
    let code = match r {
        Refusal::AlreadyQueued(_) => ErrorCode::AlreadyQueued,
        Refusal::Full => ErrorCode::QueueFull,
        Refusal::PartyTooBig { .. } | Refusal::BadRating | Refusal::Empty => {
            ErrorCode::InvalidArgument
        }
    };
    ClientError::new(code, r.to_string())
}

impl MatchRules {
    /// A kind's queue settings as the queue uses them. A match holds the queue's
    /// `match_size` (else the kind's minimum players) within the room's seats, rounded
    /// down to fill its teams evenly; tolerances that are not finite and positive count
    /// as 0.
    pub(crate) fn of(kind: &KindRules, q: &QueueRules) -> Self {
        let max = kind.max().max(1);
        let teams = usize::try_from(kind.team_count()).unwrap_or(1).max(1);
        let wanted = q.match_size.unwrap_or(kind.min()).clamp(1, max);
        let players = if teams > 1 && wanted >= teams {
            wanted - wanted % teams
        } else {
            wanted
        };
        let sane = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
        MatchRules {
            players,
            teams: if players >= teams { teams } else { 1 },
            base_tolerance: sane(q.tolerance),
            widen_per_sec: sane(q.widen_per_second),
            max_tolerance: sane(q.max_tolerance).max(sane(q.tolerance)),
            timeout: q.timeout,
        }
    }
}
