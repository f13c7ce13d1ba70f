//! Watching a finished match from its recording (play floor): the match replayed on a
//! fresh game of its kind (`rally_record::Replay`), its room states sent to one session
//! as `spectator_state`s at the recorded tick rate, then `room_closed`: the same stream a
//! live room's spectators get.

use std::time::Duration;

use bytes::Bytes;
use rally_game::Game;
use rally_protocol::ServerMessage;
use rally_record::{Header, Reader, Replay, Step};
use tokio_util::sync::CancellationToken;

use crate::outbox::{Outbound, SessionLink};

/// The largest recording a spectator may watch (read whole into memory).
pub(crate) const MAX_PLAYBACK_BYTES: u64 = 64 * 1024 * 1024;

/// Plays `bytes` (a recording whose header is `header`) to `link` until it ends, the
/// spectator stops watching (`watching` cancelled), or its session is gone.
pub(crate) async fn play(
    bytes: Vec<u8>,
    game: Box<dyn Game>,
    header: Header,
    link: SessionLink,
    watching: CancellationToken,
) {
    let Ok((_, mut reader)) = Reader::new(&bytes) else {
        return;
    };
    let mut replay = Replay::new(game, &header);
    let period = Duration::from_secs_f64(1.0 / f64::from(header.tick_hz.max(1)));
    let mut pace = tokio::time::interval(period);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason = loop {
        let record = match reader.next_record() {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => break "the recording ends here: the match was not finished",
        };
        match replay.apply(&record) {
            Ok(Step::Ticked(tick)) => {
                tokio::select! {
                    _ = watching.cancelled() => return,
                    _ = pace.tick() => {}
                }
                if replay.room_state().is_empty() {
                    continue;
                }
                let state = ServerMessage::SpectatorState {
                    room_id: header.room_id,
                    tick,
                    payload: Bytes::copy_from_slice(replay.room_state()),
                };
                if !link.send(Outbound::Msg(state)) {
                    return;
                }
            }
            Ok(Step::Ended(_)) => break "the recorded match ended",
            Ok(Step::Cut(_)) => break "the recording was cut here",
            Ok(_) => {}
            Err(_) => break "the recording no longer replays on this server's game",
        }
    };
    if !watching.is_cancelled() {
        link.send(Outbound::Msg(ServerMessage::RoomClosed {
            room_id: header.room_id,
            reason: reason.into(),
        }));
    }
}
