//! What one thing the server sent means to a client: the single place that reads a
//! decoded server message. The [`Connection`](crate::Connection) (which the
//! [`Client`](crate::Client)'s task drives too) classifies each unit with [`said`] and
//! follows the current room with [`follow_room`]; what to do with a [`Said`] (resolve a
//! waiting request, emit an event, return it to the caller) is decided from there.

use std::time::Duration;

use rally_protocol::{ErrorCode, ServerMessage};

use crate::client::Room;
use crate::error::Error;
use crate::events::{ChatLine, SpectatorState};
use crate::shared::Reply;
use crate::wire::Incoming;

/// One decoded unit, classified.
#[derive(Debug)]
pub(crate) enum Said {
    /// The reply to request `req` (never 0).
    Reply {
        /// The request's id.
        req: u32,
        /// What it got.
        reply: Result<Reply, Error>,
    },
    /// A `joined` that answers no request: the server gave this client its seat back,
    /// or (while queued) the matchmaking queue seated it in its match.
    Resumed(Room),
    /// A `left` that answers no request: the server moved this client out of its room,
    /// a party going to its match (the match's `joined` follows).
    MovedOut(u64),
    /// A `pong` for `nonce`.
    Pong(u64),
    /// A room state that the fast path (`wire::peek_state`) did not take: the
    /// connection lends well-formed states from its read buffer before classifying, so
    /// this one was not, and is a broken protocol.
    State,
    /// A chat line.
    Chat(ChatLine),
    /// A state of the watched room or recording.
    SpectatorState(SpectatorState),
    /// The server closed the room.
    RoomClosed {
        /// The room.
        room_id: u64,
        /// Why, for a human.
        reason: String,
    },
    /// The server is shutting down and asks the client to close.
    Shutdown {
        /// Why, for a human.
        reason: String,
        /// When to come back.
        reconnect_after: Duration,
    },
    /// An unprompted `error` that leaves the connection up.
    Error(Error),
    /// An unprompted `error` whose code this SDK does not know: fatal exactly when the
    /// server closes right after it (`docs/protocol.md` section 9).
    UnknownError(Error),
    /// `RESUME_FAILED`: the seat the client asked back is gone.
    ResumeFailed(Error),
    /// `TIMEOUT` or `SLOW_CONSUMER`: the server counts the connection as dropped and
    /// holds the seat (section 11a).
    Dropped(Error),
    /// Any other fatal error: the server closes after it.
    Fatal(Error),
    /// Nothing to act on: a type from a newer revision.
    Nothing,
    /// A message understood and ignored: a second `welcome`, a player-data reply this
    /// SDK does not ask for.
    Ignored,
}

impl Said {
    /// Whether this is a server message the client understood, which clears a pending
    /// unknown error (it was not followed by a close).
    pub(crate) fn is_message(&self) -> bool {
        !matches!(self, Said::UnknownError(_) | Said::Nothing)
    }
}

/// Classifies one decoded message body. WebSocket control frames (pings, closes) are the
/// connection's business and never reach here; were one passed, it would mean nothing.
pub(crate) fn said(incoming: Incoming) -> Said {
    let msg = match incoming {
        Incoming::Msg(msg) => msg,
        Incoming::UnknownError { code, message, req } => {
            let e = Error::UnknownServerError { code, message };
            return if req != 0 {
                Said::Reply { req, reply: Err(e) }
            } else {
                Said::UnknownError(e)
            };
        }
        Incoming::Ping | Incoming::Close | Incoming::Nothing => return Said::Nothing,
    };
    let reply = |req, reply| Said::Reply {
        req,
        reply: Ok(reply),
    };
    match msg {
        ServerMessage::State { .. } => Said::State,
        ServerMessage::ChatLine {
            room_id,
            player_id,
            name,
            text,
        } => Said::Chat(ChatLine {
            room_id,
            player_id,
            name,
            text,
        }),
        ServerMessage::Pong { nonce } => Said::Pong(nonce),
        ServerMessage::Joined {
            req,
            room_id,
            player_id,
            kind,
            max_players,
            code,
            team,
        } => {
            let room = Room {
                room_id,
                player_id,
                kind,
                max_players,
                code,
                team,
            };
            if req == 0 {
                // Only a resume answers a request nobody made.
                Said::Resumed(room)
            } else {
                reply(req, Reply::Joined(room))
            }
        }
        ServerMessage::Left { req: 0, room_id } => Said::MovedOut(room_id),
        ServerMessage::Left { req, room_id } => reply(req, Reply::Left(room_id)),
        ServerMessage::Ok { req } => reply(req, Reply::Ok),
        ServerMessage::Conflict { message, req, .. } => Said::Reply {
            req,
            reply: Err(Error::Server {
                code: ErrorCode::Conflict,
                message,
            }),
        },
        ServerMessage::Error { code, message, req } => {
            let e = Error::Server { code, message };
            if req != 0 {
                Said::Reply { req, reply: Err(e) }
            } else if code == ErrorCode::ResumeFailed {
                Said::ResumeFailed(e)
            } else if matches!(code, ErrorCode::Timeout | ErrorCode::SlowConsumer) {
                Said::Dropped(e)
            } else if code.is_fatal() {
                Said::Fatal(e)
            } else {
                Said::Error(e)
            }
        }
        ServerMessage::RoomClosed { room_id, reason } => Said::RoomClosed { room_id, reason },
        ServerMessage::Shutdown {
            reason,
            reconnect_after_ms,
        } => Said::Shutdown {
            reason,
            reconnect_after: Duration::from_millis(reconnect_after_ms.into()),
        },
        ServerMessage::Session {
            req,
            account_id,
            token,
            expires_at_ms,
            display_name,
        } => reply(
            req,
            Reply::Session(crate::Session {
                account_id,
                token: token.into(),
                expires_at_ms,
                display_name,
            }),
        ),
        ServerMessage::Rooms { req, total, rooms } => reply(
            req,
            Reply::Rooms(crate::client::RoomPage {
                total,
                rooms: rooms.iter().map(Into::into).collect(),
            }),
        ),
        ServerMessage::Spectating {
            req,
            room_id,
            kind,
            tick_hz,
        } => reply(
            req,
            Reply::Spectating(crate::client::Spectating {
                room_id,
                kind,
                tick_hz,
            }),
        ),
        ServerMessage::SpectatorState {
            room_id,
            tick,
            payload,
        } => Said::SpectatorState(SpectatorState {
            room_id,
            tick,
            payload,
        }),
        ServerMessage::Redirect {
            req,
            tcp,
            ws,
            ticket,
            ..
        } => reply(
            req,
            Reply::Redirect(crate::shared::Redirect {
                tcp,
                ws,
                ticket: rally_protocol::Redacted::new(ticket),
            }),
        ),
        // A second welcome means nothing; ignore it rather than guess.
        ServerMessage::Welcome { .. } => Said::Ignored,
        // Replies to player-data requests, which this SDK does not send yet.
        ServerMessage::Data { .. }
        | ServerMessage::Written { .. }
        | ServerMessage::Profile { .. } => Said::Ignored,
    }
}

/// Keeps `room` (the room the client is in) in step with what the server said: a join or
/// a resume enters one, a `left` or a `room_closed` for it leaves it, and a failed
/// resume leaves whatever room was asked back.
pub(crate) fn follow_room(room: &mut Option<Room>, said: &Said) {
    let gone = match said {
        Said::Reply {
            reply: Ok(Reply::Joined(r)),
            ..
        }
        | Said::Resumed(r) => {
            *room = Some(r.clone());
            return;
        }
        Said::Reply {
            reply: Ok(Reply::Left(room_id)),
            ..
        }
        | Said::RoomClosed { room_id, .. }
        | Said::MovedOut(room_id) => *room_id,
        // The seat asked back after a reconnection is gone, and the room with it.
        Said::ResumeFailed(_) => {
            *room = None;
            return;
        }
        _ => return,
    };
    if room.as_ref().is_some_and(|r| r.room_id == gone) {
        *room = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: ErrorCode, req: u32) -> Said {
        said(Incoming::Msg(ServerMessage::Error {
            code,
            message: "m".into(),
            req,
        }))
    }

    #[test]
    fn errors_are_told_apart_by_request_and_code() {
        assert!(matches!(
            error(ErrorCode::NotInRoom, 4),
            Said::Reply {
                req: 4,
                reply: Err(_)
            }
        ));
        assert!(matches!(
            error(ErrorCode::ResumeFailed, 0),
            Said::ResumeFailed(_)
        ));
        assert!(matches!(
            error(ErrorCode::SlowConsumer, 0),
            Said::Dropped(_)
        ));
        assert!(matches!(error(ErrorCode::ServerFull, 0), Said::Fatal(_)));
        assert!(matches!(error(ErrorCode::NotInRoom, 0), Said::Error(_)));
        let unknown = said(Incoming::UnknownError {
            code: 999,
            message: "?".into(),
            req: 0,
        });
        assert!(matches!(unknown, Said::UnknownError(_)) && !unknown.is_message());
    }

    #[test]
    fn the_room_follows_joins_leaves_and_closes() {
        let joined = |req| {
            said(Incoming::Msg(ServerMessage::Joined {
                req,
                room_id: 7,
                player_id: 1,
                kind: "arena".into(),
                max_players: 16,
                code: "K7WQ3M".into(),
                team: 0,
            }))
        };
        let mut room = None;
        follow_room(&mut room, &joined(3));
        assert_eq!(room.as_ref().map(|r| r.room_id), Some(7));
        let other = Said::RoomClosed {
            room_id: 8,
            reason: "x".into(),
        };
        follow_room(&mut room, &other);
        assert!(room.is_some(), "another room's close leaves this one");
        follow_room(
            &mut room,
            &said(Incoming::Msg(ServerMessage::Left { req: 4, room_id: 7 })),
        );
        assert!(room.is_none());
        let resumed = joined(0);
        assert!(matches!(resumed, Said::Resumed(_)));
        follow_room(&mut room, &resumed);
        assert!(room.is_some());
        follow_room(&mut room, &error(ErrorCode::ResumeFailed, 0));
        assert!(room.is_none(), "a failed resume leaves the room asked back");
    }
}
