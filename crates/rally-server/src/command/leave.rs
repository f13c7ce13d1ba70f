//! `leave`: give up the seat in the current room.
//!
//! Commands floor.

use tokio::sync::oneshot;

use super::{room_gone, CommandError, Outcome};
use crate::outbox::SessionLink;
use crate::room_handle::{Control, Membership};

/// Asks the room to free the seat and waits for it (or for the room to end).
pub(super) async fn leave(
    membership: Option<Membership>,
    link: &SessionLink,
) -> Result<Outcome, CommandError> {
    let m = membership.ok_or_else(room_gone)?;
    let (reply, answer) = oneshot::channel();
    let room_id = m.room.id;
    m.room
        .control
        .send(Control::Leave {
            player: m.player_id,
            session: link.session_id,
            reply: Some(reply),
        })
        .await
        .map_err(|_| room_gone())?;
    // The room closing before it answers leaves the player out all the same.
    let _ = answer.await;
    Ok(Outcome::Left { room_id })
}
