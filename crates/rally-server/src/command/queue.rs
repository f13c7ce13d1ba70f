//! `queue` and `leave_queue`, and the matchmaking passes that seat matched players
//! (commands floor: seating a match is the `create` and `join` commands' work, done for
//! players who are waiting rather than asking).
//!
//! `queue` checks the kind and its rating queue, gathers the ticket's players (the sender,
//! or with `party` every connected player of the sender's room) and queues them; the `ok`
//! is pushed to the sender while the ticket is queued, so it always precedes the match.
//! [`run`] is the task that makes a pass every `queue::PASS_EVERY`: it answers timed-out
//! tickets with `MATCH_TIMEOUT` and seats each match from a task of its own.
//!
//! In cluster mode the ticket goes to the cluster's queue leader instead
//! (`cluster::Cluster::enqueue`) and the players wait here as remote waiters; [`hear`]
//! carries out the leader's news: a match seated here, or a `redirect` (req 0) to the
//! node holding the seats, or the ticket's end.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rally_protocol::{ErrorCode, ServerMessage};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use rally_game::PlayerId;

use super::join::{options, seat};
use super::{CommandContext, CommandEnv, CommandError, Outcome};
use crate::cluster::{Cluster, QueueNews};
use crate::outbox::{Outbound, SessionLink};
use crate::queue::{
    MatchQueue, MatchRules, Pass, PoolKey, RemoteWaiter, Seating, Waiter, PASS_EVERY,
};
use crate::room::{self, RoomEnv};
use crate::room_handle::{Control, Membership, PartyMember, Reservation, RoomHandle};

/// The longest a seating waits on a room (to free the old seat, to be seated).
const SEAT_WAIT: Duration = Duration::from_secs(5);

/// What a `queue` request asks.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct QueueRequest {
    pub(super) kind: String,
    /// The room options as sent (a MessagePack map or nil).
    pub(super) options: Bytes,
    pub(super) rating: f64,
    pub(super) party: bool,
}

/// Queues the sender (or its room's party); the `ok` goes out as the ticket is queued.
pub(super) async fn queue(
    env: &CommandEnv,
    req: u32,
    q: QueueRequest,
    ctx: &CommandContext,
    link: SessionLink,
    membership: Option<Membership>,
) -> Result<Outcome, CommandError> {
    let rooms = &env.rooms;
    let rules = rooms.games.rules(&q.kind).ok_or_else(|| {
        CommandError::new(
            ErrorCode::UnknownRoomKind,
            format!("no room kind {:?}", q.kind),
        )
    })?;
    let Some(queue_rules) = rules.queue_rules() else {
        return Err(CommandError::new(
            ErrorCode::InvalidArgument,
            format!("room kind {:?} has no matchmaking queue", q.kind),
        ));
    };
    if rooms.matchmaker.is_draining() {
        return Err(CommandError::new(
            ErrorCode::Draining,
            "the server is draining and takes no new joins; connect to another server",
        ));
    }
    let parsed = options(&q.options)?;
    let (_, filter) = room::filter_key(&q.kind, rules, &parsed);
    let match_rules = MatchRules::of(rules, queue_rules);
    let members = if q.party {
        let Some(m) = membership else {
            return Err(CommandError::new(
                ErrorCode::NotInRoom,
                "a party queues from the room its players share; join one first",
            ));
        };
        party(&m).await?
    } else {
        let waiter = Waiter {
            link: link.clone(),
            account: ctx.account,
            seat: membership.map(|m| (m.room, m.player_id)),
        };
        vec![(ctx.session_id, waiter)]
    };
    if let Some(cluster) = env.cluster.as_deref() {
        return queue_on_leader(env, cluster, req, &q, members, &link).await;
    }
    let pool = PoolKey {
        kind: Arc::from(q.kind.as_str()),
        filter,
    };
    env.queue
        .enqueue(pool, &match_rules, members, q.rating, q.options, || {
            link.send(Outbound::Msg(ServerMessage::Ok { req }));
        })?;
    Ok(Outcome::Done)
}

/// Cluster mode: the ticket goes to the queue leader, the players wait here as remote
/// waiters; the `ok` goes out once the leader has the ticket (a match it answers sooner
/// waits for it, see [`hear`]).
async fn queue_on_leader(
    env: &CommandEnv,
    cluster: &Cluster,
    req: u32,
    q: &QueueRequest,
    members: Vec<(u64, Waiter)>,
    link: &SessionLink,
) -> Result<Outcome, CommandError> {
    if let Some((s, _)) = members.iter().find(|(s, _)| env.queue.contains(*s)) {
        return Err(CommandError::new(
            ErrorCode::AlreadyQueued,
            format!("player {s} is already in the queue"),
        ));
    }
    let (ok_sent, ok_rx) = watch::channel(false);
    let ids: Vec<(u64, u64)> = members
        .iter()
        .map(|(s, w)| (*s, w.account.unwrap_or(0)))
        .collect();
    for (s, w) in members {
        let waiter = RemoteWaiter {
            link: w.link,
            account: w.account,
            seat: w.seat,
            ok_sent: ok_rx.clone(),
            leader: None,
        };
        env.queue.hold_remote(s, waiter);
    }
    let sessions: Vec<u64> = ids.iter().map(|(s, _)| *s).collect();
    match cluster.enqueue(&q.kind, &q.options, q.rating, ids).await {
        Ok(leader) => {
            let leads = || cluster.queue_leader().as_deref() == Some(leader.as_str());
            if !env.queue.accepted_remote(&sessions, &leader, leads) {
                // The leader changed as it took the ticket: the ticket went with it.
                return Err(CommandError::new(
                    ErrorCode::ClusterUnavailable,
                    "the cluster's matchmaker moved to another node; queue again",
                ));
            }
            link.send(Outbound::Msg(ServerMessage::Ok { req }));
            let _ = ok_sent.send(true);
            Ok(Outcome::Done)
        }
        Err(e) => {
            for s in sessions {
                env.queue.take_remote(s);
            }
            Err(e)
        }
    }
}

/// The connected players of `m`'s room, each with its seat there.
async fn party(m: &Membership) -> Result<Vec<(u64, Waiter)>, CommandError> {
    let (reply, answer) = oneshot::channel();
    let gone = || CommandError::new(ErrorCode::NotInRoom, "the room has closed");
    m.room
        .control
        .send(Control::Party { reply })
        .await
        .map_err(|_| gone())?;
    let players: Vec<PartyMember> = answer.await.map_err(|_| gone())?;
    Ok(players
        .into_iter()
        .map(|p| {
            let waiter = Waiter {
                link: p.link,
                account: p.account,
                seat: Some((m.room.clone(), p.player_id)),
            };
            (waiter.link.session_id, waiter)
        })
        .collect())
}

/// `leave_queue`.
pub(super) fn leave_queue(
    env: &CommandEnv,
    req: u32,
    session: u64,
) -> Result<Outcome, CommandError> {
    env.queue.leave(session)?;
    Ok(Outcome::Reply(ServerMessage::Ok { req }))
}

/// Makes a pass every `PASS_EVERY` until `stop` is cancelled; each match is seated by a
/// task of its own in `tracker`.
pub(crate) async fn run(env: Arc<CommandEnv>, tracker: TaskTracker, stop: CancellationToken) {
    if let Some(cluster) = env.cluster.clone() {
        cluster.start_queue(env.rooms.clone(), env.queue.clone(), &tracker, stop.clone());
        if let Some(news) = cluster.take_queue_news() {
            tracker.spawn(hear(env.clone(), news, tracker.clone(), stop.clone()));
        }
    }
    let mut every = tokio::time::interval(PASS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        // Nobody waits: no pass, and no blocking-pool thread woken four times a second
        // (which would also make the network simulation's runs depend on real threads).
        if env.queue.is_empty() {
            continue;
        }
        // Off the async workers: a pass over a full kind is milliseconds of CPU (10,000
        // tickets: 2.5 ms finding nothing, 59 ms matching 5,000 pairs, debug build).
        let queue = env.queue.clone();
        let Ok(Pass { timed_out, matches }) =
            tokio::task::spawn_blocking(move || queue.pass()).await
        else {
            // The pass panicked: the tickets it held are lost, the queue goes on.
            tracing::error!("a matchmaking pass panicked");
            continue;
        };
        for (link, error) in timed_out {
            link.send(Outbound::Msg(error.into_message(0)));
        }
        for m in matches {
            let rooms = env.rooms.clone();
            let queue = env.queue.clone();
            tracker.spawn(async move { seat_match(&rooms, &queue, m).await });
        }
    }
}

/// Opens a match's private room and seats its players in turn, each on its team: out of
/// the room it sits in (`left`, req 0), into the new one (`joined`, req 0).
async fn seat_match(rooms: &Arc<RoomEnv>, queue: &MatchQueue, m: Seating) {
    let (handle, reservations) = match open(rooms, &m) {
        Ok(r) => r,
        Err(e) => {
            // The room could not open (draining, shutting down, the game refused the
            // options): every player is told, and none of them is queued any more.
            for (w, _) in m.players {
                w.link.send(Outbound::Msg(e.clone().into_message(0)));
            }
            return;
        }
    };
    for ((w, team), reservation) in m.players.into_iter().zip(reservations) {
        if let Some((old, player)) = &w.seat {
            leave_old(&w.link, old, *player).await;
        }
        let team = (team != 0).then_some(team);
        let seating = seat(
            handle.clone(),
            reservation,
            0,
            w.account,
            w.link.clone(),
            team,
        );
        let seated = tokio::time::timeout(SEAT_WAIT, seating)
            .await
            .unwrap_or_else(|_| {
                Err(CommandError::new(
                    ErrorCode::Timeout,
                    "the match's room did not seat the player in time; queue again",
                ))
            });
        match seated {
            Ok(membership) => queue.place(&w.link, membership),
            Err(e) => {
                w.link.send(Outbound::Msg(e.into_message(0)));
            }
        }
    }
}

/// Opens the match's private room and reserves a seat for every player at once, before
/// anyone sits: a game that locks its room when it starts cannot shut the last ones out.
fn open(rooms: &Arc<RoomEnv>, m: &Seating) -> Result<(RoomHandle, Vec<Reservation>), CommandError> {
    let (handle, first) = room::create(rooms, &m.kind, options(&m.options)?, true)?;
    let mut reservations = vec![first];
    for _ in 1..m.players.len() {
        // Dropped on an error, the reservations free their seats and the room ends.
        reservations.push(room::reserve_id(rooms, handle.id)?.1);
    }
    Ok((handle, reservations))
}

/// Frees a matched player's seat in the room it sat in and tells it (`left`, req 0).
async fn leave_old(link: &SessionLink, old: &RoomHandle, player: PlayerId) {
    let (reply, done) = oneshot::channel();
    let leave = Control::Leave {
        player,
        session: link.session_id,
        reply: Some(reply),
    };
    // The old room may have ended meanwhile: the player is out of it either way.
    let _ = tokio::time::timeout(SEAT_WAIT, async {
        old.control.send(leave).await.ok()?;
        done.await.ok()
    })
    .await;
    link.send(Outbound::Msg(ServerMessage::Left {
        req: 0,
        room_id: old.id,
    }));
}

/// Cluster mode: the leader's news for this node's queued players. A match is seated
/// here when its room is here (`joined`, req 0), else answered with `redirect` (req 0);
/// an end (timeout, a room that could not open) with its error (req 0).
async fn hear(
    env: Arc<CommandEnv>,
    mut news: mpsc::Receiver<QueueNews>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let moved = || async {
        match &env.cluster {
            Some(c) => c.queue_leader_moved().await,
            None => std::future::pending().await,
        }
    };
    loop {
        let item = tokio::select! {
            () = stop.cancelled() => return,
            () = moved() => {
                // The leader now: after two changes in a row, tickets the newest took stay.
                let leader = env.cluster.as_ref().and_then(|c| c.queue_leader());
                for (_, w) in env.queue.take_remote_not_on(leader.as_deref()) {
                    let e = CommandError::new(
                        ErrorCode::MatchTimeout,
                        "the cluster's matchmaker moved to another node; queue again",
                    );
                    w.link.send(Outbound::Msg(e.into_message(0)));
                }
                continue;
            }
            n = news.recv() => match n { Some(n) => n, None => return },
        };
        match item {
            QueueNews::Ended {
                session,
                code,
                message,
            } => {
                if let Some(w) = env.queue.take_remote(session) {
                    tracker.spawn(async move {
                        ok_first(&w).await;
                        let code = ErrorCode::from_u16(code).unwrap_or(ErrorCode::MatchTimeout);
                        let e = CommandError::new(code, message);
                        w.link.send(Outbound::Msg(e.into_message(0)));
                    });
                }
            }
            QueueNews::Matched {
                session,
                node,
                tcp,
                ws,
                ticket,
                room_id,
            } => {
                // Not here any more (left the queue, disconnected): the seat's ticket
                // expires and the owner gives the seat back.
                let Some(w) = env.queue.take_remote(session) else {
                    continue;
                };
                let env = env.clone();
                tracker.spawn(async move {
                    ok_first(&w).await;
                    if let Some((old, player)) = &w.seat {
                        leave_old(&w.link, old, *player).await;
                    }
                    let here = env.cluster.as_deref().filter(|c| c.node_id() == node);
                    match here {
                        Some(cluster) => seat_claimed(&env, cluster, &w, &ticket).await,
                        None => {
                            w.link.send(Outbound::Msg(ServerMessage::Redirect {
                                req: 0,
                                node,
                                tcp,
                                ws,
                                ticket,
                                room_id,
                            }));
                        }
                    }
                });
            }
        }
    }
}

/// Waits (bounded) until the waiter's `ok` went out, so it precedes the match.
async fn ok_first(w: &RemoteWaiter) {
    let mut ok = w.ok_sent.clone();
    let _ = tokio::time::timeout(SEAT_WAIT, ok.wait_for(|sent| *sent)).await;
}

/// Seats a matched player whose seat is on this node, as a local match does.
async fn seat_claimed(env: &CommandEnv, cluster: &Cluster, w: &RemoteWaiter, ticket: &str) {
    let seated = match cluster.claim(ticket, w.account) {
        Ok((room, reservation, team)) => {
            let seating = seat(room, reservation, 0, w.account, w.link.clone(), team);
            tokio::time::timeout(SEAT_WAIT, seating)
                .await
                .unwrap_or_else(|_| {
                    Err(CommandError::new(
                        ErrorCode::Timeout,
                        "the match's room did not seat the player in time; queue again",
                    ))
                })
        }
        Err(e) => Err(e),
    };
    match seated {
        Ok(membership) => env.queue.place(&w.link, membership),
        Err(e) => {
            w.link.send(Outbound::Msg(e.into_message(0)));
        }
    }
}
