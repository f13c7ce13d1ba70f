//! `spectate` and `spectate_recording`: watch a room's states without a seat, or a
//! finished match from its recording, through the same `spectator_state` stream.
//!
//! Commands floor.

use rally_protocol::{ErrorCode, ServerMessage};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{CommandError, Outcome};
use crate::outbox::{Outbound, SessionLink};
use crate::playback::{self, MAX_PLAYBACK_BYTES};
use crate::recording::is_recording_name;
use crate::room::RoomEnv;
use crate::room_handle::{Control, Watching};

fn no_such(what: String) -> CommandError {
    CommandError::new(ErrorCode::NoSuchMatch, what)
}

/// Joins room `room_id`'s spectators (or, with a `code`, the room with that share code).
pub(super) async fn spectate(
    env: &RoomEnv,
    req: u32,
    room_id: u64,
    code: &str,
    link: SessionLink,
) -> Result<Outcome, CommandError> {
    let room_id = if code.is_empty() {
        room_id
    } else {
        env.matchmaker
            .find_code(code)
            .map_err(|_| no_such(format!("no open room with code {code:?}")))?
    };
    let room = env
        .matchmaker
        .get(room_id)
        .ok_or_else(|| no_such(format!("no open room {room_id}")))?;
    let watching = env.shutdown.child_token();
    let (reply, answer) = oneshot::channel();
    room.control
        .send(Control::Spectate {
            link,
            req,
            watching: watching.clone(),
            reply,
        })
        .await
        .map_err(|_| no_such(format!("room {room_id} has ended")))?;
    match answer.await {
        Ok(true) => Ok(Outcome::Spectating(Watching::new(watching))),
        Ok(false) => Err(CommandError::new(
            ErrorCode::SpectatorsFull,
            format!("room {room_id} has all the spectators it takes"),
        )),
        Err(_) => Err(no_such(format!("room {room_id} has ended"))),
    }
}

/// Plays recording `file` (a name from `recordings_dir`) to the session.
pub(super) async fn spectate_recording(
    env: &RoomEnv,
    req: u32,
    file: &str,
    link: SessionLink,
) -> Result<Outcome, CommandError> {
    let recordings = env
        .recordings
        .as_ref()
        .ok_or_else(|| no_such("recording is off on this server".to_owned()))?;
    if !is_recording_name(file) {
        return Err(no_such(format!("no recording {file:?}")));
    }
    let path = recordings.dir().join(file);
    let size = tokio::fs::metadata(&path)
        .await
        .map_err(|_| no_such(format!("no recording {file:?}")))?
        .len();
    if size > MAX_PLAYBACK_BYTES {
        return Err(CommandError::new(
            ErrorCode::InvalidArgument,
            format!("recording {file:?} is over {MAX_PLAYBACK_BYTES} bytes"),
        ));
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| no_such(format!("no recording {file:?}")))?;
    let (header, _) = rally_record::Reader::new(&bytes).map_err(|e| {
        CommandError::new(
            ErrorCode::InvalidArgument,
            format!("recording {file:?} is unreadable: {e}"),
        )
    })?;
    let game = env
        .games
        .make(&header.kind, &header.options)
        .ok_or_else(|| {
            no_such(format!(
                "no game for the recording's kind {:?}",
                header.kind
            ))
        })?;
    let room_id = header.room_id;
    link.send(Outbound::Msg(ServerMessage::Spectating {
        req,
        room_id,
        kind: header.kind.clone(),
        tick_hz: header.tick_hz,
    }));
    let watching: CancellationToken = env.shutdown.child_token();
    env.tracker
        .spawn(playback::play(bytes, game, header, link, watching.clone()));
    Ok(Outcome::Spectating(Watching::new(watching)))
}
