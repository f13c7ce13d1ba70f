//! `list_rooms`: a page of the open public rooms of a kind that match a filter.
//!
//! Commands floor.

use std::sync::Arc;

use rally_protocol::{ErrorCode, Listings, ServerMessage};

use super::{join, CommandError};
use crate::room::RoomEnv;

/// Answers with `rooms`: the page (capped by the matchmaker) and the total.
pub(super) fn list_rooms(
    rooms: &Arc<RoomEnv>,
    req: u32,
    kind: &str,
    filter: &[u8],
    offset: u32,
    limit: u32,
) -> Result<ServerMessage, CommandError> {
    if rooms.games.get(kind).is_none() {
        return Err(CommandError::new(
            ErrorCode::UnknownRoomKind,
            format!("no room kind {kind:?}"),
        ));
    }
    let filter = join::options(filter)?;
    let (total, page) = rooms
        .matchmaker
        .list(kind, &filter, offset as usize, limit as usize);
    Ok(ServerMessage::Rooms {
        req,
        total: u32::try_from(total).unwrap_or(u32::MAX),
        rooms: Listings::new(&page),
    })
}
