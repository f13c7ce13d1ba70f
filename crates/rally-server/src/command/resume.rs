//! `resume` (sent inside `hello`): take back the seat a dropped connection held.
//!
//! Commands floor.

use rally_protocol::ErrorCode;
use tokio::sync::oneshot;

use super::{CommandContext, CommandError, Outcome};
use crate::outbox::{ResumeToken, SessionLink};
use crate::room::RoomEnv;
use crate::room_handle::{Control, Membership, SeatHold};

/// Finds the seat the token holds and asks its room to hand it over; the room sends
/// `joined` with request id 0.
pub(super) async fn resume(
    rooms: &RoomEnv,
    token: String,
    ctx: &CommandContext,
    link: SessionLink,
) -> Result<Outcome, CommandError> {
    let failed = || {
        CommandError::new(
            ErrorCode::ResumeFailed,
            "the resume token is unknown or its seat has expired; this is a new session",
        )
    };
    let token = ResumeToken::parse(&token).ok_or_else(failed)?;
    let (room, player_id, account) = rooms.resume.get(&token).ok_or_else(failed)?;
    // The seat is its account's: another account (or a session whose login did not
    // hold) cannot take it, whoever holds the token.
    if account != ctx.account {
        return Err(failed());
    }
    let (reply, answer) = oneshot::channel();
    let held = SeatHold::default();
    room.control
        .send(Control::Resume {
            player: player_id,
            token,
            link,
            held: held.clone(),
            reply,
        })
        .await
        .map_err(|_| failed())?;
    match answer.await {
        Ok(Ok(())) => Ok(Outcome::Joined(Membership {
            room,
            player_id,
            held,
        })),
        _ => Err(failed()),
    }
}
