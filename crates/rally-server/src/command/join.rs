//! `join`: take a seat in a room of a kind, opening one if every room is full.
//!
//! Commands floor.

use std::sync::Arc;

use rally_protocol::ErrorCode;
use tokio::sync::oneshot;

use super::{CommandContext, CommandError, Outcome};
use crate::outbox::SessionLink;
use crate::room::{self, RoomEnv};
use crate::room_handle::{Control, Membership};

/// Reserves a seat, then asks the room to seat the player; the room sends `joined`.
pub(super) async fn join(
    rooms: &Arc<RoomEnv>,
    req: u32,
    kind: &str,
    ctx: &CommandContext,
    link: SessionLink,
) -> Result<Outcome, CommandError> {
    let (room, reservation) = room::reserve(rooms, kind)?;
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
