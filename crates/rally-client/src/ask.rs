//! The requests a client makes, each written once: the message it sends (from a fresh
//! request id) and the reply it wants. [`Client`](crate::Client) and
//! [`Connection`](crate::Connection) differ only in how they send one and wait for its
//! reply (a shared buffer and a waiting channel, or the caller's own reads); their
//! `login`, `join` (and the other four ways in), `list_rooms`, `queue`, `leave_queue`,
//! `leave` and `chat`
//! methods hand one of these to that.

use rally_protocol::ClientMessage;

use crate::client::{Room, RoomPage, Spectating};
use crate::connection::Session;
use crate::error::Error;
use crate::shared::Reply;

/// One request: what to send, and what answers it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask<'m, T> {
    what: What<'m>,
    /// Picks the reply's value out; `None` for a reply of the wrong kind.
    answer: fn(Reply) -> Option<T>,
}

/// The message of a request, before it has an id.
#[derive(Debug, Clone, Copy)]
enum What<'m> {
    Login {
        provider: &'m str,
        credential: &'m str,
    },
    Join {
        kind: &'m str,
    },
    Create {
        kind: &'m str,
        options: &'m [u8],
        private: bool,
    },
    JoinOrCreate {
        kind: &'m str,
        options: &'m [u8],
    },
    JoinById {
        room_id: u64,
    },
    JoinByCode {
        code: &'m str,
    },
    ListRooms {
        kind: &'m str,
        filter: &'m [u8],
        offset: u32,
        limit: u32,
    },
    Queue {
        kind: &'m str,
        options: &'m [u8],
        rating: f64,
        party: bool,
    },
    LeaveQueue,
    ClaimSeat {
        ticket: &'m str,
    },
    Leave,
    Chat {
        text: &'m str,
    },
    Spectate {
        room_id: u64,
    },
    SpectateRecording {
        file: &'m str,
    },
    StopSpectating,
}

impl<'m, T> Ask<'m, T> {
    /// The request's message with id `req` (each attempt of a retried request has its
    /// own).
    pub(crate) fn message(&self, req: u32) -> ClientMessage<'m> {
        match self.what {
            What::Login {
                provider,
                credential,
            } => ClientMessage::Login {
                req,
                provider,
                credential,
            },
            What::Join { kind } => ClientMessage::Join { req, kind },
            What::Create {
                kind,
                options,
                private,
            } => ClientMessage::Create {
                req,
                kind,
                options,
                private,
            },
            What::JoinOrCreate { kind, options } => {
                ClientMessage::JoinOrCreate { req, kind, options }
            }
            What::JoinById { room_id } => ClientMessage::JoinById { req, room_id },
            What::JoinByCode { code } => ClientMessage::JoinByCode { req, code },
            What::ListRooms {
                kind,
                filter,
                offset,
                limit,
            } => ClientMessage::ListRooms {
                req,
                kind,
                filter,
                offset,
                limit,
            },
            What::Queue {
                kind,
                options,
                rating,
                party,
            } => ClientMessage::Queue {
                req,
                kind,
                options,
                rating,
                party,
            },
            What::LeaveQueue => ClientMessage::LeaveQueue { req },
            What::ClaimSeat { ticket } => ClientMessage::ClaimSeat { req, ticket },
            What::Leave => ClientMessage::Leave { req },
            What::Chat { text } => ClientMessage::Chat { req, text },
            What::Spectate { room_id } => ClientMessage::Spectate {
                req,
                room_id,
                code: "",
            },
            What::SpectateRecording { file } => ClientMessage::SpectateRecording { req, file },
            What::StopSpectating => ClientMessage::StopSpectating { req },
        }
    }

    /// What the reply means to the caller. A reply of another kind to this request's id
    /// means the server broke the protocol.
    pub(crate) fn answer(&self, reply: Reply) -> Result<T, Error> {
        let text = format!("unexpected reply {reply:?}");
        (self.answer)(reply).ok_or(Error::Protocol(text))
    }
}

/// `login` (`docs/protocol.md` section 5a), answered by `session`.
pub(crate) fn login<'m>(provider: &'m str, credential: &'m str) -> Ask<'m, Session> {
    Ask {
        what: What::Login {
            provider,
            credential,
        },
        answer: |r| match r {
            Reply::Session(session) => Some(session),
            _ => None,
        },
    }
}

/// What every way into a room wants back: `joined`.
fn joined(r: Reply) -> Option<Room> {
    match r {
        Reply::Joined(room) => Some(room),
        _ => None,
    }
}

/// `join` (join-or-create a room of `kind`), answered by `joined`.
pub(crate) fn join(kind: &str) -> Ask<'_, Room> {
    Ask {
        what: What::Join { kind },
        answer: joined,
    }
}

/// `create` (a new room of `kind` with `options`, a MessagePack map), answered by
/// `joined`.
pub(crate) fn create<'m>(kind: &'m str, options: &'m [u8], private: bool) -> Ask<'m, Room> {
    Ask {
        what: What::Create {
            kind,
            options,
            private,
        },
        answer: joined,
    }
}

/// `join_or_create`, answered by `joined`.
pub(crate) fn join_or_create<'m>(kind: &'m str, options: &'m [u8]) -> Ask<'m, Room> {
    Ask {
        what: What::JoinOrCreate { kind, options },
        answer: joined,
    }
}

/// `join_by_id`, answered by `joined`.
pub(crate) fn join_by_id(room_id: u64) -> Ask<'static, Room> {
    Ask {
        what: What::JoinById { room_id },
        answer: joined,
    }
}

/// `join_by_code`, answered by `joined`.
pub(crate) fn join_by_code(code: &str) -> Ask<'_, Room> {
    Ask {
        what: What::JoinByCode { code },
        answer: joined,
    }
}

/// What `queue` and `leave_queue` want back: `ok`.
fn ok(r: Reply) -> Option<()> {
    matches!(r, Reply::Ok).then_some(())
}

/// `queue` (wait in the rating queue of `kind`), answered by `ok`; the match comes later
/// as a `joined` with request id 0.
pub(crate) fn queue<'m>(kind: &'m str, options: &'m [u8], rating: f64, party: bool) -> Ask<'m, ()> {
    Ask {
        what: What::Queue {
            kind,
            options,
            rating,
            party,
        },
        answer: ok,
    }
}

/// `leave_queue`, answered by `ok`.
pub(crate) fn leave_queue() -> Ask<'static, ()> {
    Ask {
        what: What::LeaveQueue,
        answer: ok,
    }
}

/// `list_rooms`, answered by `rooms`.
pub(crate) fn list_rooms<'m>(
    kind: &'m str,
    filter: &'m [u8],
    offset: u32,
    limit: u32,
) -> Ask<'m, RoomPage> {
    Ask {
        what: What::ListRooms {
            kind,
            filter,
            offset,
            limit,
        },
        answer: |r| match r {
            Reply::Rooms(page) => Some(page),
            _ => None,
        },
    }
}

/// What a `join` got: a seat here, or (cluster mode) a seat on another node.
#[derive(Debug)]
pub(crate) enum Seated {
    Here(Room),
    Elsewhere(crate::shared::Redirect),
}

fn seated(r: Reply) -> Option<Seated> {
    match r {
        Reply::Joined(room) => Some(Seated::Here(room)),
        Reply::Redirect(to) => Some(Seated::Elsewhere(to)),
        _ => None,
    }
}

/// `join`, answered by `joined`, or in a cluster by `redirect`.
pub(crate) fn join_or_redirect(kind: &str) -> Ask<'_, Seated> {
    or_redirect(join(kind))
}

/// A seating request (`join`, `create`, `join_or_create`, `join_by_id`,
/// `join_by_code`) that also takes a cluster's `redirect` for its answer.
pub(crate) fn or_redirect<'m>(seating: Ask<'m, Room>) -> Ask<'m, Seated> {
    Ask {
        what: seating.what,
        answer: seated,
    }
}

/// `claim_seat` (revision 4), answered by `joined`.
pub(crate) fn claim_seat(ticket: &str) -> Ask<'_, Room> {
    Ask {
        what: What::ClaimSeat { ticket },
        answer: |r| match r {
            Reply::Joined(room) => Some(room),
            _ => None,
        },
    }
}

/// `leave`, answered by `left` with the room's id.
pub(crate) fn leave() -> Ask<'static, u64> {
    Ask {
        what: What::Leave,
        answer: |r| match r {
            Reply::Left(room_id) => Some(room_id),
            _ => None,
        },
    }
}

/// `chat`, answered by `ok` (the line itself comes back to everyone in the room).
pub(crate) fn chat(text: &str) -> Ask<'_, ()> {
    Ask {
        what: What::Chat { text },
        answer: |r| matches!(r, Reply::Ok).then_some(()),
    }
}

/// `spectate` (watch a room), answered by `spectating`.
pub(crate) fn spectate(room_id: u64) -> Ask<'static, Spectating> {
    Ask {
        what: What::Spectate { room_id },
        answer: |r| match r {
            Reply::Spectating(s) => Some(s),
            _ => None,
        },
    }
}

/// `spectate_recording` (watch a finished match), answered by `spectating`.
pub(crate) fn spectate_recording(file: &str) -> Ask<'_, Spectating> {
    Ask {
        what: What::SpectateRecording { file },
        answer: |r| match r {
            Reply::Spectating(s) => Some(s),
            _ => None,
        },
    }
}

/// `stop_spectating`, answered by `ok`.
pub(crate) fn stop_spectating() -> Ask<'static, ()> {
    Ask {
        what: What::StopSpectating,
        answer: |r| matches!(r, Reply::Ok).then_some(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_takes_only_its_own_reply() {
        let join = join("arena");
        assert!(matches!(
            join.message(7),
            ClientMessage::Join {
                req: 7,
                kind: "arena"
            }
        ));
        let room = Room {
            room_id: 3,
            player_id: 1,
            kind: "arena".into(),
            max_players: 16,
            code: "K7WQ3M".into(),
            team: 0,
        };
        assert!(join_by_code("K7WQ3M")
            .answer(Reply::Joined(room.clone()))
            .is_ok());
        assert!(matches!(
            create("arena", &[0x80], true).message(4),
            ClientMessage::Create {
                req: 4,
                private: true,
                ..
            }
        ));
        let page = RoomPage {
            total: 0,
            rooms: Vec::new(),
        };
        assert!(list_rooms("arena", &[0x80], 0, 10)
            .answer(Reply::Rooms(page))
            .is_ok());
        assert!(join_by_id(3).answer(Reply::Ok).is_err());
        assert_eq!(join.answer(Reply::Joined(room.clone())).ok(), Some(room));
        assert!(matches!(join.answer(Reply::Ok), Err(Error::Protocol(_))));
        assert_eq!(leave().answer(Reply::Left(3)).ok(), Some(3));
        assert!(leave().answer(Reply::Pong).is_err());
        assert!(chat("hi").answer(Reply::Ok).is_ok());
        assert!(chat("hi").answer(Reply::Left(3)).is_err());
        assert!(matches!(
            login("device", "d-1234567").message(2),
            ClientMessage::Login {
                req: 2,
                provider: "device",
                credential: "d-1234567"
            }
        ));
    }
}
