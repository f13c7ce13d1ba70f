//! The requests a client makes, each written once: the message it sends (from a fresh
//! request id) and the reply it wants. [`Client`](crate::Client) and
//! [`Connection`](crate::Connection) differ only in how they send one and wait for its
//! reply (a shared buffer and a waiting channel, or the caller's own reads); their
//! `login`, `join`, `leave` and `chat` methods hand one of these to that.

use rally_protocol::ClientMessage;

use crate::client::Room;
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
    ClaimSeat {
        ticket: &'m str,
    },
    Leave,
    Chat {
        text: &'m str,
    },
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
            What::ClaimSeat { ticket } => ClientMessage::ClaimSeat { req, ticket },
            What::Leave => ClientMessage::Leave { req },
            What::Chat { text } => ClientMessage::Chat { req, text },
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

/// `join` (join-or-create a room of `kind`), answered by `joined`.
pub(crate) fn join(kind: &str) -> Ask<'_, Room> {
    Ask {
        what: What::Join { kind },
        answer: |r| match r {
            Reply::Joined(room) => Some(room),
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

/// `join`, answered by `joined`, or in a cluster by `redirect`.
pub(crate) fn join_or_redirect(kind: &str) -> Ask<'_, Seated> {
    Ask {
        what: What::Join { kind },
        answer: |r| match r {
            Reply::Joined(room) => Some(Seated::Here(room)),
            Reply::Redirect(to) => Some(Seated::Elsewhere(to)),
            _ => None,
        },
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
        };
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
