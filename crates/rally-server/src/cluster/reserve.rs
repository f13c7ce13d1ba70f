//! Seats across nodes: the requester's side (where a joining player goes, the
//! reservation asked of another node with the retry policy), the owner's side (the
//! responder that reserves a seat under a fresh ticket), and the claim of a ticket.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use rally_auth::ticket::{self, Ticket, TicketError, TicketSigner};
use rally_auth::RetryPolicy;
use rally_protocol::{ErrorCode, ServerMessage};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::seats::Pending;
use super::view::Placement;
use super::{Cluster, NodeEntry, RoomEntry, RETRY_PAUSE};
use crate::error::CommandError;
use crate::room::{self, RoomEnv};
use crate::room_handle::{Reservation, RoomHandle};

/// A seat reservation asked of another node.
#[derive(Debug, Serialize, Deserialize)]
struct ReserveRequest {
    kind: String,
    /// The account the seat is for (0: a guest).
    account: u64,
    /// The node asking, for logs.
    from: String,
}

/// The owner's answer.
#[derive(Debug, Serialize, Deserialize)]
enum ReserveReply {
    Seat {
        ticket: String,
        room: RoomEntry,
        node_players: u32,
        node_rooms: u32,
    },
    Refused {
        code: u16,
        message: String,
    },
}

impl Cluster {
    /// Answers other nodes' seat reservations, each in its own tracked task.
    pub(super) async fn respond(
        self: Arc<Self>,
        rooms: Arc<RoomEnv>,
        tracker: TaskTracker,
        stop: CancellationToken,
    ) {
        let subject = format!("rally.reserve.{}", self.node);
        loop {
            let subscribed = tokio::select! {
                () = stop.cancelled() => return,
                s = self.client.subscribe(subject.clone()) => s,
            };
            let mut sub = match subscribed {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take seat reservations; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(RETRY_PAUSE) => continue,
                    }
                }
            };
            loop {
                let msg = tokio::select! {
                    () = stop.cancelled() => return,
                    m = sub.next() => m,
                };
                let Some(msg) = msg else { break };
                let Some(reply_to) = msg.reply.clone() else {
                    continue;
                };
                let me = self.clone();
                let rooms = rooms.clone();
                tracker.spawn(async move {
                    let reply = me.reserve_here(&rooms, &msg.payload);
                    if let Ok(bytes) = serde_json::to_vec(&reply) {
                        let _ = me.client.publish(reply_to, Bytes::from(bytes)).await;
                    }
                });
            }
        }
    }

    /// Reserves a seat here for another node's player, under a fresh ticket.
    fn reserve_here(&self, rooms: &Arc<RoomEnv>, payload: &[u8]) -> ReserveReply {
        let refuse = |e: CommandError| ReserveReply::Refused {
            code: e.code.as_u16(),
            message: e.message,
        };
        let Ok(ask) = serde_json::from_slice::<ReserveRequest>(payload) else {
            return refuse(CommandError::new(
                ErrorCode::Internal,
                "a malformed reservation",
            ));
        };
        if self.left.load(Ordering::Acquire) {
            return refuse(CommandError::new(
                ErrorCode::Draining,
                "this node left the cluster",
            ));
        }
        let (room, reservation) =
            match room::join_or_create(rooms, &ask.kind, rally_game::RoomOptions::empty()) {
                Ok(r) => r,
                Err(e) => return refuse(e),
            };
        match self.ticket_for(&room, reservation, ask.account) {
            Ok(ticket) => {
                tracing::debug!(room_id = room.id, from = %ask.from, "seat reserved for a redirected player");
                self.publish_now.notify_one();
                let me = self.own_entry(rooms);
                let entry = self.room_entry(rooms, &room);
                ReserveReply::Seat {
                    ticket,
                    room: entry,
                    node_players: me.players,
                    node_rooms: me.rooms,
                }
            }
            Err(e) => refuse(e),
        }
    }

    /// Signs a ticket for a seat and holds the seat under its nonce.
    fn ticket_for(
        &self,
        room: &RoomHandle,
        reservation: Reservation,
        account: u64,
    ) -> Result<String, CommandError> {
        let internal = |what: &str| CommandError::new(ErrorCode::Internal, what.to_owned());
        let nonce = ticket::nonce().map_err(|_| internal("no randomness for a seat ticket"))?;
        let t = Ticket {
            node: self.node.clone(),
            room_id: room.id,
            account_id: account,
            nonce,
            expires_at_ms: TicketSigner::expiry(SystemTime::now(), self.ticket_ttl),
        };
        let text = self
            .signer
            .sign(&t)
            .map_err(|_| internal("cannot sign a seat ticket"))?;
        let pending = Pending {
            room: room.clone(),
            reservation,
            until: Instant::now() + self.ticket_ttl,
        };
        self.seats.hold(nonce, pending).map_err(|_| {
            CommandError::new(
                ErrorCode::RoomFull,
                "too many seats wait for redirected players",
            )
        })?;
        Ok(text)
    }

    /// Where a player joining `kind` here goes: `None` to join here, or the `redirect`
    /// (answering request `req`) to the node holding the seat reserved for it. Here when
    /// this node has a free seat of the kind; when the node asked fails (after its
    /// retries), here too unless this node drains.
    pub(crate) async fn place(
        &self,
        rooms: &RoomEnv,
        req: u32,
        kind: &str,
        account: Option<u64>,
    ) -> Result<Option<ServerMessage>, CommandError> {
        let me = self.own_entry(rooms);
        if !me.draining && rooms.matchmaker.has_open_seat(kind) {
            return Ok(None);
        }
        // Chosen and counted under one lock, so concurrent joins see each other's picks.
        let placement = self.view().place_and_count(kind, &me);
        let owner = match placement {
            Some(Placement::Local) => return Ok(None),
            Some(Placement::Remote(owner)) => owner,
            None => {
                return Err(CommandError::new(
                    ErrorCode::ClusterUnavailable,
                    "every node of the cluster is draining; try again shortly",
                ))
            }
        };
        let started = Instant::now();
        let asked = self.reserve_on(&owner, kind, account.unwrap_or(0)).await;
        self.metrics.reservation_seconds.record(started.elapsed());
        self.view().settle(
            &owner.node,
            asked
                .as_ref()
                .ok()
                .map(|(_, room, players, rooms)| (room.clone(), *players, *rooms)),
        );
        match asked {
            Ok((ticket, room, _, _)) => {
                self.metrics.redirects.increment(1);
                Ok(Some(ServerMessage::Redirect {
                    req,
                    node: owner.node,
                    tcp: owner.tcp,
                    ws: owner.ws,
                    ticket,
                    room_id: room.room_id,
                }))
            }
            Err(e) => {
                self.metrics.reservation_failures.increment(1);
                tracing::warn!(node = %owner.node, error = %e.message, "seat reservation on another node failed");
                if me.draining {
                    Err(e)
                } else {
                    // The player still gets a room: here.
                    Ok(None)
                }
            }
        }
    }

    /// Asks `owner` for a seat, retried per SPEC section 2 (timeouts only).
    async fn reserve_on(
        &self,
        owner: &NodeEntry,
        kind: &str,
        account: u64,
    ) -> Result<(String, RoomEntry, u32, u32), CommandError> {
        let ask = ReserveRequest {
            kind: kind.to_owned(),
            account,
            from: self.node.clone(),
        };
        let payload = Bytes::from(serde_json::to_vec(&ask).unwrap_or_default());
        let subject = format!("rally.reserve.{}", owner.node);
        let timed_out = || {
            CommandError::new(
                ErrorCode::ClusterUnavailable,
                format!("node {} did not answer a seat reservation", owner.node),
            )
        };
        let answer = RetryPolicy::SPEC
            .run(
                None,
                |e: &CommandError| e.code == ErrorCode::Timeout,
                |_| {
                    let (subject, payload) = (subject.clone(), payload.clone());
                    async move {
                        match tokio::time::timeout(
                            self.request_timeout,
                            self.client.request(subject, payload),
                        )
                        .await
                        {
                            Err(_) => Err(CommandError::new(ErrorCode::Timeout, "")),
                            Ok(Err(e)) => Err(CommandError::new(
                                ErrorCode::ClusterUnavailable,
                                format!("node {}: {e}", owner.node),
                            )),
                            Ok(Ok(msg)) => Ok(msg.payload),
                        }
                    }
                },
            )
            .await
            .map_err(|e| {
                if e.code == ErrorCode::Timeout {
                    timed_out()
                } else {
                    e
                }
            })?;
        match serde_json::from_slice::<ReserveReply>(&answer) {
            Ok(ReserveReply::Seat {
                ticket,
                room,
                node_players,
                node_rooms,
            }) => Ok((ticket, room, node_players, node_rooms)),
            Ok(ReserveReply::Refused { code, message }) => Err(CommandError::new(
                ErrorCode::from_u16(code).unwrap_or(ErrorCode::ClusterUnavailable),
                format!("node {}: {message}", owner.node),
            )),
            Err(_) => Err(CommandError::new(
                ErrorCode::ClusterUnavailable,
                format!("node {} answered a reservation with nonsense", owner.node),
            )),
        }
    }

    /// Takes the seat a ticket reserved here, for the player logged in as `account`.
    pub(crate) fn claim(
        &self,
        text: &str,
        account: Option<u64>,
    ) -> Result<(RoomHandle, Reservation), CommandError> {
        let t = self
            .signer
            .verify(text, SystemTime::now())
            .map_err(|e| match e {
                TicketError::Expired => CommandError::new(
                    ErrorCode::TicketExpired,
                    "the seat ticket has expired; join again",
                ),
                _ => CommandError::new(ErrorCode::TicketInvalid, "not a valid seat ticket"),
            })?;
        if t.node != self.node {
            return Err(CommandError::new(
                ErrorCode::TicketWrongNode,
                format!("the seat is on node {}, this is {}", t.node, self.node),
            ));
        }
        if t.account_id != account.unwrap_or(0) {
            return Err(CommandError::new(
                ErrorCode::TicketInvalid,
                "the seat ticket was issued to another player",
            ));
        }
        let pending = self.seats.claim(&t.nonce).ok_or_else(|| {
            CommandError::new(
                ErrorCode::TicketUsed,
                "the seat ticket was already used (or this node no longer holds its seat)",
            )
        })?;
        Ok((pending.room, pending.reservation))
    }
}
