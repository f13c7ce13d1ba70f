//! `list_rooms`: a page of the open public rooms of a kind that match a filter; in
//! cluster mode every live node's (`Cluster::list`), else this node's.
//!
//! Commands floor.

use std::sync::Arc;

use rally_protocol::{ErrorCode, Listings, ServerMessage};

use super::{join, CommandError};
use crate::cluster::Cluster;
use crate::room::RoomEnv;

/// Answers with `rooms`: the page (capped by the matchmaker) and the total.
pub(super) fn list_rooms(
    rooms: &Arc<RoomEnv>,
    cluster: Option<&Cluster>,
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
    let (offset, limit) = (offset as usize, limit as usize);
    let (total, page) = match cluster {
        Some(cluster) => cluster.list(rooms, kind, &filter, offset, limit),
        None => rooms.matchmaker.list(kind, &filter, offset, limit),
    };
    Ok(ServerMessage::Rooms {
        req,
        total: u32::try_from(total).unwrap_or(u32::MAX),
        rooms: Listings::new(&page),
    })
}
