//! The matchmaking queue (play floor): players and parties wait here, by room kind, filter
//! values and rating, until a pass groups them into a match; the match's room is opened
//! and every player seated in it.
//!
//! `queue` and `leave_queue` (commands) and a session's end change the tickets under one
//! short lock; the work is done by [`run`], a task that wakes every [`PASS_EVERY`] (not
//! per message), so a burst of `queue` requests costs a map insert each. A pass answers
//! the tickets that waited their kind's timeout with `MATCH_TIMEOUT` and hands each match
//! to a seating task (tracked like every task), which opens a private room of the kind
//! with the first ticket's options, moves each player out of the room it sits in (`left`,
//! req 0), and seats it (`joined`, req 0, with its team).
//!
//! A session learns its new seat from [`MatchQueue::take_seat`] when its outbox signals it
//! (`SessionCtl::seat_ready`): the seating task cannot reach into the session's task.
//!
//! # Layout
//! - `pool`: the sans-IO state machine: tickets, pools, the pass that forms matches.
//! - this file: the queue the server shares, the pass task and the seating.

mod pool;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rally_game::PlayerId;
use rally_protocol::{ErrorCode, ServerMessage};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::ClientError;
use crate::metrics::{ErrorKind, Metrics, QueueMeter};
use crate::outbox::{Outbound, SessionLink};
use crate::room_handle::{Control, Membership, Reservation, RoomHandle};

pub(crate) use pool::{Limits, PoolKey, QueueRules, Refusal};
use pool::{Match, Tickets};

/// How often the queue looks for matches and timeouts.
pub(crate) const PASS_EVERY: Duration = Duration::from_millis(250);
/// The queue's bounds: players waiting per kind and in all, neighbours looked at per pass.
pub(crate) const LIMITS: Limits = Limits {
    max_per_kind: 10_000,
    max_total: 50_000,
    scan_per_pass: 50_000,
};
/// The longest one seating waits for a room (to leave the old one, to seat a player).
const SEAT_WAIT: Duration = Duration::from_secs(5);

/// A queued player: how to reach them, and the seat they leave when matched.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) link: SessionLink,
    /// Their account, for the room's one-seat-per-account rule.
    pub(crate) account: Option<u64>,
    /// The room they sit in now (a party's, or a solo player's lobby), left at the match.
    pub(crate) seat: Option<(RoomHandle, PlayerId)>,
}

/// Opens a match's room. The room task lives above the queue, so the server hands the
/// queue this instead of the queue importing it.
pub(crate) trait MatchRooms: Send + Sync + 'static {
    /// Opens a private room of `kind` with `options` (a MessagePack map, raw) and reserves
    /// `seats` seats in it.
    fn open(
        &self,
        kind: &str,
        options: &[u8],
        seats: usize,
    ) -> Result<(RoomHandle, Vec<Reservation>), ClientError>;
}

/// The queue the server shares: the tickets, and the seats matched players have not yet
/// picked up.
pub(crate) struct MatchQueue {
    /// Never held across `.await`.
    tickets: Mutex<Tickets<Waiter, Bytes>>,
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
        MatchQueue {
            tickets: Mutex::new(Tickets::new(limits)),
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

    /// Queues one player or a party (every member of `members`), with one rating.
    pub(crate) fn enqueue(
        &self,
        pool: PoolKey,
        rules: &QueueRules,
        members: Vec<(u64, Waiter)>,
        rating: f64,
        options: Bytes,
    ) -> Result<(), ClientError> {
        let now = tokio::time::Instant::now().into_std();
        let kind = pool.kind.clone();
        let mut tickets = self.tickets();
        let queued = tickets.enqueue(pool, rules, members, rating, options, now);
        let waiting = tickets.waiting_for(&kind);
        drop(tickets);
        self.count(&kind, waiting);
        queued.map(|_| ()).map_err(|r| {
            let code = match r {
                Refusal::AlreadyQueued(_) => ErrorCode::AlreadyQueued,
                Refusal::Full => ErrorCode::QueueFull,
                Refusal::PartyTooBig { .. } | Refusal::BadRating | Refusal::Empty => {
                    ErrorCode::InvalidArgument
                }
            };
            ClientError::new(code, r.to_string())
        })
    }

    /// Whether `session` waits in the queue.
    pub(crate) fn contains(&self, session: u64) -> bool {
        self.tickets().contains(session)
    }

    /// Takes `session` out of the queue (`leave_queue`); the rest of its party waits on.
    pub(crate) fn leave(&self, session: u64) -> Result<(), ClientError> {
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

    /// Hands a new seat to its session, unless the session ended meanwhile: then the seat
    /// is given back at once.
    fn place(&self, link: &SessionLink, membership: Membership) {
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

/// Runs the queue's passes every [`PASS_EVERY`] until `stop` is cancelled; each match is
/// seated by a task of its own in `tracker`.
pub(crate) async fn run(
    queue: Arc<MatchQueue>,
    rooms: Arc<dyn MatchRooms>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(PASS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let now = tokio::time::Instant::now().into_std();
        let (outcome, counts) = {
            let mut tickets = queue.tickets();
            let outcome = tickets.pass(now);
            let counts: Vec<(Arc<str>, usize)> = queue
                .meters
                .keys()
                .map(|k| (k.clone(), tickets.waiting_for(k)))
                .collect();
            (outcome, counts)
        };
        for (kind, n) in counts {
            queue.count(&kind, n);
        }
        for t in outcome.timed_out {
            if let Some(m) = queue.meters.get(&t.kind) {
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
                queue.metrics.stats.count_error(ErrorKind::Command, e.code);
                w.link.send(Outbound::Msg(e.into_message(0)));
            }
        }
        for m in outcome.matches {
            if let Some(meter) = queue.meters.get(&m.pool.kind) {
                for t in &m.tickets {
                    meter.matched(t.waited);
                }
            }
            let (queue, rooms) = (queue.clone(), rooms.clone());
            tracker.spawn(async move { seat(&queue, &*rooms, m).await });
        }
    }
}

/// Opens a match's room and seats its players, each on its ticket's team.
async fn seat(queue: &MatchQueue, rooms: &dyn MatchRooms, m: Match<Waiter, Bytes>) {
    let players: usize = m.tickets.iter().map(|t| t.members.len()).sum();
    let options = m
        .tickets
        .first()
        .map(|t| t.payload.clone())
        .unwrap_or_default();
    let (room, reservations) = match rooms.open(&m.pool.kind, &options, players) {
        Ok(r) => r,
        Err(e) => {
            // The room could not open (draining, shutting down): everyone is told, and
            // nobody is queued any more.
            for t in m.tickets {
                for (_, w) in t.members {
                    w.link.send(Outbound::Msg(e.clone().into_message(0)));
                }
            }
            return;
        }
    };
    let mut reservations = reservations.into_iter();
    for t in m.tickets {
        for (_, w) in t.members {
            let Some(reservation) = reservations.next() else {
                return;
            };
            if let Some((old, player)) = &w.seat {
                leave_old(&w.link, old, *player).await;
            }
            seat_one(queue, &room, w, reservation, t.team).await;
        }
    }
}

/// Frees a matched player's seat in the room it sat in, and tells it (`left`, req 0).
async fn leave_old(link: &SessionLink, old: &RoomHandle, player: PlayerId) {
    let (reply, done) = oneshot::channel();
    let leave = Control::Leave {
        player,
        session: link.session_id,
        reply: Some(reply),
    };
    let left = tokio::time::timeout(SEAT_WAIT, async {
        old.control.send(leave).await.ok()?;
        done.await.ok()
    })
    .await;
    // The old room may have ended meanwhile; the player is out of it either way.
    let _ = left;
    link.send(Outbound::Msg(ServerMessage::Left {
        req: 0,
        room_id: old.id,
    }));
}

/// Seats one matched player; the room sends its `joined` (req 0).
async fn seat_one(
    queue: &MatchQueue,
    room: &RoomHandle,
    w: Waiter,
    reservation: Reservation,
    team: u32,
) {
    let (reply, answer) = oneshot::channel();
    let held = room.token.child_token();
    let join = Control::Join {
        link: w.link.clone(),
        req: 0,
        reservation,
        account: w.account,
        held: held.clone(),
        reply,
    };
    let _ = team;
    let seated = tokio::time::timeout(SEAT_WAIT, async {
        room.control.send(join).await.ok()?;
        answer.await.ok()
    })
    .await;
    match seated {
        Ok(Some(Ok(player_id))) => queue.place(
            &w.link,
            Membership {
                room: room.clone(),
                player_id,
                held,
            },
        ),
        Ok(Some(Err(refusal))) => {
            let e = ClientError::new(ErrorCode::JoinRefused, refusal.0);
            w.link.send(Outbound::Msg(e.into_message(0)));
        }
        _ => {
            let e = ClientError::new(
                ErrorCode::RoomClosed,
                "the match's room closed before the player was seated; queue again",
            );
            w.link.send(Outbound::Msg(e.into_message(0)));
        }
    }
}
