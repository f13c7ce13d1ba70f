//! `chat`: say a line to everyone in the current room.
//!
//! Commands floor.

use rally_protocol::ErrorCode;
use tokio::sync::oneshot;

use super::{room_gone, CommandError, Outcome};
use crate::outbox::SessionLink;
use crate::room_handle::{Control, Membership};

/// Hands the line to the room, which says it if this session still holds the seat.
pub(super) async fn chat(
    membership: Option<Membership>,
    link: &SessionLink,
    name: String,
    text: String,
) -> Result<Outcome, CommandError> {
    let m = membership.ok_or_else(room_gone)?;
    let (reply, answer) = oneshot::channel();
    m.room
        .control
        .send(Control::Chat {
            player: m.player_id,
            session: link.session_id,
            name,
            text,
            reply,
        })
        .await
        .map_err(|_| room_gone())?;
    // Not said: the seat was resumed by another connection meanwhile.
    if !answer.await.map_err(|_| room_gone())? {
        return Err(CommandError::new(ErrorCode::NotInRoom, "not in a room"));
    }
    Ok(Outcome::Said)
}
