//! `join`, `create`, `join_or_create`, `join_by_id`, `join_by_code`: take a seat in a
//! room found (or opened) one of five ways; the seating itself is the same for all. And
//! `claim_seat`, the same seat taken with a cluster seat ticket.
//!
//! In cluster mode every way to join may be answered by a `redirect` to the node where
//! the cluster reserved the seat; the player then sends that node `claim_seat`, which
//! seats it like a join (docs/cluster.md):
//! - `join`/`join_or_create` without an open matching room here: a matching room on
//!   another node, else the least-loaded node (`Cluster::place`);
//! - `create`: the least-loaded node, this one on a tie (`Cluster::place_new`);
//! - `join_by_id`/`join_by_code` of a room this node does not have: its owner
//!   (`Cluster::find`).
//!
//! Commands floor.

use std::sync::Arc;

use rally_game::RoomOptions;
use rally_protocol::ErrorCode;
use tokio::sync::oneshot;

use super::{CommandContext, CommandError, Outcome};
use crate::cluster::{Cluster, RoomRef};
use crate::outbox::SessionLink;
use crate::room::{self, RoomEnv};
use crate::room_handle::{Control, Membership, Reservation, RoomHandle, SeatHold};

/// Which room a join asks for.
#[derive(Debug)]
pub(super) enum Target {
    /// An open public room of the kind matching these options, else a new one.
    Kind(String, RoomOptions),
    /// A new room: kind, options, private.
    New(String, RoomOptions, bool),
    /// The room with this id.
    Id(u64),
    /// The room with this code.
    Code(String),
}

/// The options as sent, or `BAD_OPTIONS`.
pub(super) fn options(bytes: &[u8]) -> Result<RoomOptions, CommandError> {
    RoomOptions::parse(bytes).map_err(|e| CommandError::new(ErrorCode::BadOptions, e.0))
}

impl Target {
    pub(super) fn kind(kind: String, options_bytes: &[u8]) -> Result<Self, CommandError> {
        Ok(Target::Kind(kind, options(options_bytes)?))
    }

    pub(super) fn new_room(
        kind: String,
        options_bytes: &[u8],
        private: bool,
    ) -> Result<Self, CommandError> {
        Ok(Target::New(kind, options(options_bytes)?, private))
    }
}

/// Reserves a seat in the target room (for a plain join in cluster mode, maybe on another
/// node), then asks the room to seat the player; the room sends `joined`. A seat on
/// another node is answered by `redirect`.
pub(super) async fn join(
    rooms: &Arc<RoomEnv>,
    cluster: Option<&Cluster>,
    req: u32,
    target: Target,
    ctx: &CommandContext,
    link: SessionLink,
) -> Result<Outcome, CommandError> {
    let (room, reservation) = match target {
        Target::Kind(kind, options) => {
            if let Some(cluster) = cluster {
                let placed = cluster.place(rooms, req, &kind, &options, ctx.account);
                if let Some(redirect) = placed.await? {
                    return Ok(Outcome::Reply(redirect));
                }
            }
            room::join_or_create(rooms, &kind, options)?
        }
        Target::New(kind, options, private) => {
            if let Some(cluster) = cluster {
                let placed = cluster.place_new(rooms, req, &kind, &options, private, ctx.account);
                if let Some(redirect) = placed.await? {
                    return Ok(Outcome::Reply(redirect));
                }
            }
            room::create(rooms, &kind, options, private)?
        }
        Target::Id(id) => match (room::reserve_id(rooms, id), cluster) {
            (Err(e), Some(cluster)) if elsewhere(&e) => {
                return find(cluster, req, RoomRef::Id(id), ctx, e).await;
            }
            (reserved, _) => reserved?,
        },
        Target::Code(code) => match (room::reserve_code(rooms, &code), cluster) {
            (Err(e), Some(cluster)) if elsewhere(&e) => {
                return find(cluster, req, RoomRef::Code(&code), ctx, e).await;
            }
            (reserved, _) => reserved?,
        },
    };
    seat(room, reservation, req, ctx.account, link, None)
        .await
        .map(Outcome::Joined)
}

/// Whether a join by id or code refused here may find its room on another node: this
/// node has no such room, or it drains (its players' joins go to the others).
fn elsewhere(e: &CommandError) -> bool {
    matches!(e.code, ErrorCode::NoSuchRoom | ErrorCode::Draining)
}

/// The room of a join by id or code on its owner; when no node has it, the refusal
/// this node gave (`here`: no such room, or draining).
async fn find(
    cluster: &Cluster,
    req: u32,
    which: RoomRef<'_>,
    ctx: &CommandContext,
    here: CommandError,
) -> Result<Outcome, CommandError> {
    match cluster.find(req, which, ctx.account).await {
        Ok(redirect) => Ok(Outcome::Reply(redirect)),
        Err(e) if e.code == ErrorCode::NoSuchRoom => Err(here),
        Err(e) => Err(e),
    }
}

/// Takes the seat a seat ticket reserved on this node.
pub(super) async fn claim(
    cluster: Option<&Cluster>,
    req: u32,
    ticket: &str,
    ctx: &CommandContext,
    link: SessionLink,
) -> Result<Outcome, CommandError> {
    let Some(cluster) = cluster else {
        return Err(CommandError::new(
            ErrorCode::TicketWrongNode,
            "this server is not part of a cluster",
        ));
    };
    let (room, reservation, team) = cluster.claim(ticket, ctx.account)?;
    seat(room, reservation, req, ctx.account, link, team)
        .await
        .map(Outcome::Joined)
}

/// Asks `room` to seat the player on the seat `reservation` holds (on `team`, if given
/// and the kind has it), answering request `req`; the room sends `joined` itself. The
/// rating queue seats its matched players through this too.
pub(crate) async fn seat(
    room: RoomHandle,
    reservation: Reservation,
    req: u32,
    account: Option<u64>,
    link: SessionLink,
    team: Option<u32>,
) -> Result<Membership, CommandError> {
    let (reply, answer) = oneshot::channel();
    // The membership's token: the room cancels it when the seat is no longer ours.
    let held = SeatHold::default();
    room.control
        .send(Control::Join {
            link,
            req,
            reservation,
            account,
            held: held.clone(),
            team,
            reply,
        })
        .await
        .map_err(|_| closed())?;
    match answer.await {
        Ok(Ok(player_id)) => Ok(Membership {
            room,
            player_id,
            held,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(closed()),
    }
}

/// The room ended between the reservation and the seating.
fn closed() -> CommandError {
    CommandError::new(ErrorCode::NoSuchRoom, "the room closed; try again")
}
