//! Seats across nodes: the requester's side (where a joining player goes, the
//! reservation asked of another node with the retry policy), the owner's side (the
//! responder that reserves a seat under a fresh ticket), and the claim of a ticket.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use rally_auth::ticket::{self, Ticket, TicketError, TicketSigner};
use rally_auth::RetryPolicy;
use rally_game::RoomOptions;
use rally_protocol::{ErrorCode, ServerMessage};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::flight::Granted;
use super::seats::Pending;
use super::view::{Answer, Placement, Seek};
use super::{Cluster, NodeEntry, RoomEntry};
use crate::error::CommandError;
use crate::matchmaker::normalize_code;
use crate::room::{self, RoomEnv};
use crate::room_handle::{Reservation, RoomHandle};

/// A seat reservation asked of another node.
#[derive(Debug, Serialize, Deserialize)]
struct ReserveRequest {
    /// The room kind (empty for a room asked by id or code).
    kind: String,
    /// The account the seat is for (0: a guest).
    account: u64,
    /// The node asking.
    from: String,
    /// The asking node's process ([`Cluster::epoch`]); 0 from an older node.
    #[serde(default)]
    epoch: u64,
    /// A join the asker placed by its view and counts on its way here: the owner counts
    /// its grants (the answer's `granted`). A queue match's seats are not.
    #[serde(default)]
    placed: bool,
    /// Which seat; absent (a node before join by id/code went cluster-wide): a seat of
    /// `kind` with no options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    want: Option<Want>,
}

/// Which seat a reservation asks for: the owner runs the same registry call a local
/// join of that kind would, so refusals (full, locked, no such room, bad options) are
/// the ones a player connected there would get.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Want {
    /// `join_or_create`: an open room whose options match on the kind's filter keys,
    /// else a new one with these options (MessagePack; empty: none).
    Open {
        #[serde(default, with = "super::view::hex")]
        options: Vec<u8>,
    },
    /// `create`: a new room with these options.
    New {
        #[serde(default, with = "super::view::hex")]
        options: Vec<u8>,
        private: bool,
        /// The seat's team (a queue match), 0: none.
        #[serde(default)]
        team: u32,
    },
    /// `join_by_id`.
    Id {
        room_id: u64,
        /// The seat's team (a queue match), 0: none.
        #[serde(default)]
        team: u32,
    },
    /// `join_by_code`.
    Code { code: String },
}

impl Want {
    /// The team a queue match gives the seat, if any.
    fn team(&self) -> Option<u32> {
        match self {
            Want::New { team, .. } | Want::Id { team, .. } => (*team != 0).then_some(*team),
            Want::Open { .. } | Want::Code { .. } => None,
        }
    }
}

/// A room asked for by id or code (`join_by_id`, `join_by_code`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum RoomRef<'a> {
    Id(u64),
    Code(&'a str),
}

impl RoomRef<'_> {
    fn want(self) -> Want {
        match self {
            RoomRef::Id(room_id) => Want::Id { room_id, team: 0 },
            RoomRef::Code(code) => Want::Code {
                code: code.to_owned(),
            },
        }
    }

    /// Whether a directory entry is this room.
    fn is(self, r: &RoomEntry) -> bool {
        match self {
            RoomRef::Id(id) => r.room_id == id,
            RoomRef::Code(code) => match (normalize_code(code), &r.code) {
                (Some(code), Some(theirs)) => code == *theirs,
                _ => false,
            },
        }
    }
}

/// The registry call a local join of `want` makes.
fn reserve_want(
    rooms: &Arc<RoomEnv>,
    kind: &str,
    want: Want,
) -> Result<(RoomHandle, Reservation), CommandError> {
    match want {
        Want::Open { options } => {
            parse_options(&options).and_then(|options| room::join_or_create(rooms, kind, options))
        }
        Want::New {
            options, private, ..
        } => {
            parse_options(&options).and_then(|options| room::create(rooms, kind, options, private))
        }
        Want::Id { room_id, .. } => room::reserve_id(rooms, room_id),
        Want::Code { code } => room::reserve_code(rooms, &code),
    }
}

fn parse_options(bytes: &[u8]) -> Result<RoomOptions, CommandError> {
    RoomOptions::parse(bytes).map_err(|e| CommandError::new(ErrorCode::BadOptions, e.0))
}

/// The owner's answer.
#[derive(Debug, Serialize, Deserialize)]
enum ReserveReply {
    Seat {
        ticket: String,
        room: RoomEntry,
        node_players: u32,
        node_rooms: u32,
        /// This owner's process (0 from an older node, which does not count).
        #[serde(default)]
        epoch: u64,
        /// The asker's placed reservations granted here in all, this one included.
        #[serde(default)]
        granted: u64,
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
        self.each_message(subject, "seat reservations", &stop, |msg| {
            if let Some(reply_to) = msg.reply.clone() {
                let me = self.clone();
                let rooms = rooms.clone();
                tracker.spawn(async move {
                    let reply = me.reserve_here(&rooms, &msg.payload);
                    if let Ok(bytes) = serde_json::to_vec(&reply) {
                        let _ = me.client.publish(reply_to, Bytes::from(bytes)).await;
                    }
                });
            }
            std::future::ready(true)
        })
        .await;
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
        let want = ask.want.unwrap_or(Want::Open {
            options: Vec::new(),
        });
        let team = want.team();
        // Held from the seat to the figures: the count and the load in one answer agree
        // (another reservation of the asker's between them would count twice there).
        let mut granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        let (room, reservation) = match reserve_want(rooms, &ask.kind, want) {
            Ok(r) => r,
            Err(e) => return refuse(e),
        };
        match self.ticket_for(&room, reservation, ask.account, team) {
            Ok(ticket) => {
                tracing::debug!(room_id = room.id, from = %ask.from, "seat reserved for a redirected player");
                let count = if ask.placed {
                    let mine = granted.entry(ask.from).or_insert((ask.epoch, 0));
                    if mine.0 != ask.epoch {
                        // The asker restarted: its view starts from nothing too.
                        *mine = (ask.epoch, 0);
                    }
                    mine.1 += 1;
                    mine.1
                } else {
                    0
                };
                let me = self.own_entry(rooms);
                let entry = self.room_entry(rooms, &room);
                drop(granted);
                self.publish_now.notify_one();
                ReserveReply::Seat {
                    ticket,
                    room: entry,
                    node_players: me.players,
                    node_rooms: me.rooms,
                    epoch: self.epoch,
                    granted: count,
                }
            }
            Err(e) => refuse(e),
        }
    }

    /// Reserves the seat `want` here under a fresh ticket (the queue leader's match on
    /// its own node): the ticket and the room's id.
    pub(super) fn reserve_here_for(
        &self,
        rooms: &Arc<RoomEnv>,
        kind: &str,
        want: Want,
        account: u64,
    ) -> Result<(String, u64), CommandError> {
        let team = want.team();
        let (room, reservation) = reserve_want(rooms, kind, want)?;
        let ticket = self.ticket_for(&room, reservation, account, team)?;
        self.publish_now.notify_one();
        Ok((ticket, room.id))
    }

    /// Signs a ticket for a seat and holds the seat under its nonce.
    fn ticket_for(
        &self,
        room: &RoomHandle,
        reservation: Reservation,
        account: u64,
        team: Option<u32>,
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
            team,
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

    /// Where a player joining `kind` with `options` here (`join`, `join_or_create`) goes:
    /// `None` to join here, or the `redirect` (answering request `req`) to the node
    /// holding the seat reserved for it. Here when this node has an open room of the kind
    /// that matches on the kind's filter keys; else a node whose directory entries show
    /// one, else the least-loaded node. When the node asked fails (after its retries),
    /// here too unless this node drains.
    pub(crate) async fn place(
        &self,
        rooms: &RoomEnv,
        req: u32,
        kind: &str,
        options: &RoomOptions,
        account: Option<u64>,
    ) -> Result<Option<ServerMessage>, CommandError> {
        // An unknown kind: the local join says so.
        let Some(rules) = rooms.games.rules(kind) else {
            return Ok(None);
        };
        let me = self.own_entry(rooms);
        let filter = room::filter_key(kind, rules, options);
        if !me.draining && rooms.matchmaker.has_open_seat_in(&filter) {
            return Ok(None);
        }
        // Another node's room fits when its options give the same filter values.
        let fits = |r: &RoomEntry| {
            RoomOptions::parse(&r.options)
                .is_ok_and(|o| room::filter_key(kind, rules, &o).1 == filter.1)
        };
        let want = Want::Open {
            options: if options.is_empty() {
                Vec::new()
            } else {
                options.to_bytes()
            },
        };
        self.place_by(req, kind, Seek::Seat(&fits), want, &me, account)
            .await
    }

    /// Where a new room (`create`) goes: the least-loaded node that takes new rooms, this
    /// one on a tie. `None`: here.
    pub(crate) async fn place_new(
        &self,
        rooms: &RoomEnv,
        req: u32,
        kind: &str,
        options: &RoomOptions,
        private: bool,
        account: Option<u64>,
    ) -> Result<Option<ServerMessage>, CommandError> {
        if rooms.games.rules(kind).is_none() {
            return Ok(None);
        }
        let me = self.own_entry(rooms);
        let want = Want::New {
            options: if options.is_empty() {
                Vec::new()
            } else {
                options.to_bytes()
            },
            private,
            team: 0,
        };
        self.place_by(req, kind, Seek::NewRoom, want, &me, account)
            .await
    }

    /// Places by the view, and asks the owner when it is another node.
    async fn place_by(
        &self,
        req: u32,
        kind: &str,
        seek: Seek<'_>,
        want: Want,
        me: &NodeEntry,
        account: Option<u64>,
    ) -> Result<Option<ServerMessage>, CommandError> {
        // Chosen and counted under one lock, so concurrent joins see each other's picks.
        let placement = self.view().place_and_count(kind, seek, me);
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
        match self.ask_owner(&owner, req, kind, want, account).await {
            Ok(redirect) => Ok(Some(redirect)),
            // The player still gets a room: here.
            Err(_) if !me.draining => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Where the room a player asks for by id or code is, this node having none such:
    /// the `redirect` to its owner, which reserved the seat. The owner is the node whose
    /// directory entry names the room; a room opened since the owner's last heartbeat is
    /// not there yet, so without an entry every other live node is asked at once (the
    /// first seat wins). Refusals are the owner's (`ROOM_FULL`, `ROOM_LOCKED`, ...);
    /// nobody holding it is `NO_SUCH_ROOM`.
    pub(crate) async fn find(
        &self,
        req: u32,
        which: RoomRef<'_>,
        account: Option<u64>,
    ) -> Result<ServerMessage, CommandError> {
        let owners: Vec<(NodeEntry, String)> = {
            let mut view = self.view();
            let entry = view.find_room(&self.node, |r| which.is(r));
            let owners: Vec<(NodeEntry, String)> = match entry {
                Some(r) => view
                    .node(&r.node)
                    .map(|n| (n, r.kind))
                    .into_iter()
                    .collect(),
                None => view
                    .nodes()
                    .into_iter()
                    .filter(|n| n.node != self.node)
                    .map(|n| (n, String::new()))
                    .collect(),
            };
            for (n, _) in &owners {
                view.count_on_the_way(&n.node);
            }
            owners
        };
        let asks = owners
            .iter()
            .map(|(owner, kind)| self.ask_owner(owner, req, kind, which.want(), account));
        let answers = futures_util::future::join_all(asks).await;
        let mut refusal: Option<CommandError> = None;
        for answer in answers {
            match answer {
                Ok(redirect) => return Ok(redirect),
                // A node without the room (or one that cannot take joins while draining)
                // says nothing about it; the owner's refusal does.
                Err(e)
                    if matches!(
                        e.code,
                        ErrorCode::NoSuchRoom | ErrorCode::Draining | ErrorCode::ClusterUnavailable
                    ) => {}
                Err(e) => refusal = refusal.or(Some(e)),
            }
        }
        Err(refusal.unwrap_or_else(|| {
            CommandError::new(ErrorCode::NoSuchRoom, "no open room has that id or code")
        }))
    }

    /// Asks `owner` (counted on its way there by the caller) for the seat `want`, and
    /// turns the answer into the player's `redirect`.
    async fn ask_owner(
        &self,
        owner: &NodeEntry,
        req: u32,
        kind: &str,
        want: Want,
        account: Option<u64>,
    ) -> Result<ServerMessage, CommandError> {
        let started = Instant::now();
        let asked = self
            .reserve_on(owner, kind, want, account.unwrap_or(0), true)
            .await;
        self.metrics.reservation_seconds.record(started.elapsed());
        let (asked, answer) = match asked {
            Ok((ticket, answer)) => (Ok((ticket, answer.room.room_id)), Some(answer)),
            Err(e) => (Err(e), None),
        };
        self.view().settle(&owner.node, answer);
        match asked {
            Ok((ticket, room_id)) => {
                self.metrics.redirects.increment(1);
                Ok(ServerMessage::Redirect {
                    req,
                    node: owner.node.clone(),
                    tcp: owner.tcp.clone(),
                    ws: owner.ws.clone(),
                    ticket,
                    room_id,
                })
            }
            Err(e) => {
                // A refusal (no such room, full, ...) is an answer; a node that did not
                // give one is a failure.
                if e.code == ErrorCode::ClusterUnavailable {
                    self.metrics.reservation_failures.increment(1);
                    tracing::warn!(node = %owner.node, error = %e.message, "seat reservation on another node failed");
                }
                Err(e)
            }
        }
    }

    /// One request to `node` on `subject`, each attempt bounded by
    /// `cluster_request_timeout_ms` and retried per SPEC section 2 (timeouts only).
    pub(super) async fn request(
        &self,
        node: &str,
        subject: String,
        payload: Bytes,
    ) -> Result<Bytes, CommandError> {
        RetryPolicy::SPEC
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
                                format!("node {node}: {e}"),
                            )),
                            Ok(Ok(msg)) => Ok(msg.payload),
                        }
                    }
                },
            )
            .await
            .map_err(|e| {
                if e.code == ErrorCode::Timeout {
                    CommandError::new(
                        ErrorCode::ClusterUnavailable,
                        format!("node {node} did not answer"),
                    )
                } else {
                    e
                }
            })
    }

    /// Asks `owner` for a seat, retried per SPEC section 2 (timeouts only): the ticket
    /// and the owner's answer. `placed`: a join counted on its way by the view.
    pub(super) async fn reserve_on(
        &self,
        owner: &NodeEntry,
        kind: &str,
        want: Want,
        account: u64,
        placed: bool,
    ) -> Result<(String, Answer), CommandError> {
        let ask = ReserveRequest {
            kind: kind.to_owned(),
            account,
            from: self.node.clone(),
            epoch: self.epoch,
            placed,
            want: Some(want),
        };
        let payload = Bytes::from(serde_json::to_vec(&ask).unwrap_or_default());
        let subject = format!("rally.reserve.{}", owner.node);
        let answer = self.request(&owner.node, subject, payload).await?;
        match serde_json::from_slice::<ReserveReply>(&answer) {
            Ok(ReserveReply::Seat {
                ticket,
                room,
                node_players,
                node_rooms,
                epoch,
                granted,
            }) => Ok((
                ticket,
                Answer {
                    room,
                    node_players,
                    node_rooms,
                    granted: Granted { epoch, granted },
                },
            )),
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
    ) -> Result<(RoomHandle, Reservation, Option<u32>), CommandError> {
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
        Ok((pending.room, pending.reservation, pending.team))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_of_older_nodes_and_seats_without_a_team_still_read() {
        let old = r#"{"kind":"arena","account":0,"from":"a"}"#;
        let ask: ReserveRequest = serde_json::from_str(old).unwrap();
        assert_eq!(ask.want, None, "a plain join, as before");
        let by_id: Want = serde_json::from_str(r#"{"id":{"room_id":7}}"#).unwrap();
        assert_eq!(by_id.team(), None);
        let on_team = Want::New {
            options: vec![0x80],
            private: true,
            team: 2,
        };
        let text = serde_json::to_string(&on_team).unwrap();
        assert!(text.contains(r#""options":"80""#), "{text}");
        let back: Want = serde_json::from_str(&text).unwrap();
        assert_eq!((back.team(), back), (Some(2), on_team));
    }

    #[test]
    fn a_code_is_matched_as_typed_and_an_id_exactly() {
        let mut r = RoomEntry {
            room_id: 9,
            kind: "arena".into(),
            node: "b".into(),
            players: 1,
            max_players: 2,
            code: Some("ABCDEF".into()),
            options: Vec::new(),
            metadata: Vec::new(),
            private: true,
            locked: false,
            opened_ms: 0,
        };
        assert!(RoomRef::Code(" abcdef ").is(&r));
        assert!(!RoomRef::Code("ABCDEG").is(&r));
        assert!(!RoomRef::Code("not a code").is(&r));
        assert!(RoomRef::Id(9).is(&r) && !RoomRef::Id(8).is(&r));
        r.code = None;
        assert!(!RoomRef::Code("ABCDEF").is(&r));
    }
}
