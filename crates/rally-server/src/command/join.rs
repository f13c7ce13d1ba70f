//! `join`: take a seat in a room of a kind, opening one if every room is full; and
//! `claim_seat`, the same seat taken with a cluster seat ticket.
//!
//! In cluster mode a `join` on a node without a free seat of the kind may be answered by
//! a `redirect` to the node where the cluster reserved one (`cluster::Cluster::place`);
//! the player then sends that node `claim_seat`, which seats it like a join.
//!
//! Commands floor.

use std::sync::Arc;

use rally_protocol::ErrorCode;
use tokio::sync::oneshot;

use super::{CommandContext, CommandError, Outcome};
use crate::cluster::Cluster;
use crate::outbox::SessionLink;
use crate::room::{self, RoomEnv};
use crate::room_handle::{Control, Membership, Reservation, RoomHandle};

/// Reserves a seat (here, or on another node in cluster mode), then asks the room to seat
/// the player; the room sends `joined`. A seat on another node is answered by `redirect`.
pub(super) async fn join(
    rooms: &Arc<RoomEnv>,
    cluster: Option<&Cluster>,
    req: u32,
    kind: &str,
    ctx: &CommandContext,
    link: SessionLink,
) -> Result<Outcome, CommandError> {
    if let Some(cluster) = cluster {
        if let Some(redirect) = cluster.place(rooms, req, kind, ctx.account).await? {
            return Ok(Outcome::Reply(redirect));
        }
    }
    let (room, reservation) = room::reserve(rooms, kind)?;
    seat(room, reservation, req, ctx, link).await
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
    let (room, reservation) = cluster.claim(ticket, ctx.account)?;
    seat(room, reservation, req, ctx, link).await
}

/// Seats the player in `room` with the seat `reservation` holds.
async fn seat(
    room: RoomHandle,
    reservation: Reservation,
    req: u32,
    ctx: &CommandContext,
    link: SessionLink,
) -> Result<Outcome, CommandError> {
    let (reply, answer) = oneshot::channel();
    // The membership's token: the room cancels it when the seat is no longer ours.
    let held = room.token.child_token();
    room.control
        .send(Control::Join {
            link,
            req,
            reservation,
            account: ctx.account,
            held: held.clone(),
            reply,
        })
        .await
        .map_err(|_| CommandError::new(ErrorCode::RoomFull, "the room closed; try again"))?;
    match answer.await {
        Ok(Ok(player_id)) => Ok(Outcome::Joined(Membership {
            room,
            player_id,
            held,
        })),
        Ok(Err(refusal)) => Err(CommandError::new(ErrorCode::RoomFull, refusal.0)),
        Err(_) => Err(CommandError::new(
            ErrorCode::RoomFull,
            "the room closed; try again",
        )),
    }
}
