//! One message from the client (session floor): its rate limit, then what it does —
//! a ping answered, an input queued for the room, a request queued for the command
//! runner. Non-fatal errors go back to the client from here.

use rally_protocol::{ClientMessage, ErrorCode, ServerMessage};

use super::{Core, MAX_COMMANDS_IN_FLIGHT};
use crate::command::{Command, Rating};
use crate::error::ClientError;
use crate::limits::{Budget, Verdict};
use crate::metrics::{ErrorKind, Limit};
use crate::outbox::{Ending, Outbound};
use crate::room_handle::{InputMsg, InputPayload, PushError};

impl Core {
    /// Sends a non-fatal error (fatal ones are the writer's farewell).
    pub(super) fn error(
        &self,
        kind: ErrorKind,
        code: ErrorCode,
        message: impl Into<String>,
        req: u32,
    ) {
        self.client_error(kind, ClientError::new(code, message), req);
    }

    /// Counts and logs an error, then tells the client (with its fields: a `CONFLICT`
    /// carries the current version).
    pub(super) fn client_error(&self, kind: ErrorKind, e: ClientError, req: u32) {
        self.env.metrics.stats.count_error(kind, e.code);
        tracing::debug!(session_id = self.link.session_id, code = e.code.name(), req, detail = %e.message, "error to client");
        self.link.send_in_task(Outbound::Msg(e.into_message(req)));
    }

    pub(super) fn on_message(&mut self, body: &[u8]) -> Result<(), Ending> {
        let msg = ClientMessage::decode(body)
            .map_err(|e| Ending::fault(ErrorCode::BadMessage, e.to_string()))?;
        self.messages = self.messages.wrapping_add(1);
        if !self.handshaken {
            return self.on_hello(msg);
        }
        let budget = match &msg {
            ClientMessage::Input { .. } => Budget::Input,
            _ => Budget::Command,
        };
        if !self.allow(budget, msg.req().unwrap_or(0), msg.name())? {
            return Ok(());
        }
        match msg {
            ClientMessage::Hello { .. } => {
                Err(Ending::fault(ErrorCode::BadMessage, "hello sent twice"))
            }
            ClientMessage::Ping { nonce } => {
                self.link
                    .send_in_task(Outbound::Msg(ServerMessage::Pong { nonce }));
                Ok(())
            }
            ClientMessage::Input { seq, payload } => {
                self.on_input(seq, payload);
                Ok(())
            }
            ClientMessage::Join { req, kind } => self.enqueue(
                req,
                Command::Join {
                    kind: kind.to_owned(),
                },
            ),
            ClientMessage::ClaimSeat { req, ticket } => self.enqueue(
                req,
                Command::ClaimSeat {
                    ticket: ticket.to_owned(),
                },
            ),
            ClientMessage::Leave { req } => self.enqueue(req, Command::Leave),
            ClientMessage::Chat { req, text } => self.enqueue(
                req,
                Command::Chat {
                    text: text.to_owned(),
                },
            ),
            ClientMessage::Login {
                req,
                provider,
                credential,
            } => self.enqueue(
                req,
                Command::Login {
                    provider: provider.to_owned(),
                    credential: credential.to_owned(),
                },
            ),
            ClientMessage::GetData { req, owner, key } => self.enqueue(
                req,
                Command::GetData {
                    owner,
                    key: key.to_owned(),
                },
            ),
            ClientMessage::PutData {
                req,
                key,
                value,
                expected_version,
                public,
            } => self.enqueue(
                req,
                Command::PutData {
                    key: key.to_owned(),
                    value: value.to_owned(),
                    expected_version,
                    public,
                },
            ),
            ClientMessage::DeleteData {
                req,
                key,
                expected_version,
            } => self.enqueue(
                req,
                Command::DeleteData {
                    key: key.to_owned(),
                    expected_version,
                },
            ),
            ClientMessage::GetProfile { req, account_id } => {
                self.enqueue(req, Command::GetProfile { account_id })
            }
            ClientMessage::SetName { req, name } => self.enqueue(
                req,
                Command::SetName {
                    name: name.to_owned(),
                },
            ),
            ClientMessage::Create {
                req,
                kind,
                options,
                private,
            } => self.enqueue(
                req,
                Command::Create {
                    kind: kind.to_owned(),
                    options: options.to_vec(),
                    private,
                },
            ),
            ClientMessage::JoinOrCreate { req, kind, options } => self.enqueue(
                req,
                Command::JoinOrCreate {
                    kind: kind.to_owned(),
                    options: options.to_vec(),
                },
            ),
            ClientMessage::JoinById { req, room_id } => {
                self.enqueue(req, Command::JoinById { room_id })
            }
            ClientMessage::JoinByCode { req, code } => self.enqueue(
                req,
                Command::JoinByCode {
                    code: code.to_owned(),
                },
            ),
            ClientMessage::Queue {
                req,
                kind,
                options,
                rating,
                party,
            } => self.enqueue(
                req,
                Command::Queue {
                    kind: kind.to_owned(),
                    options: options.to_vec(),
                    rating: Rating(rating),
                    party,
                },
            ),
            ClientMessage::LeaveQueue { req } => self.enqueue(req, Command::LeaveQueue),
            ClientMessage::ListRooms {
                req,
                kind,
                filter,
                offset,
                limit,
            } => self.enqueue(
                req,
                Command::ListRooms {
                    kind: kind.to_owned(),
                    filter: filter.to_vec(),
                    offset,
                    limit,
                },
            ),
            ClientMessage::Spectate { req, room_id, code } => self.enqueue(
                req,
                Command::Spectate {
                    room_id,
                    code: code.to_owned(),
                },
            ),
            ClientMessage::SpectateRecording { req, file } => self.enqueue(
                req,
                Command::SpectateRecording {
                    file: file.to_owned(),
                },
            ),
            ClientMessage::StopSpectating { req } => self.enqueue(req, Command::StopSpectating),
        }
    }

    /// Counts one message against its rate limit: `Ok(true)` to handle it, `Ok(false)`
    /// when it is refused (a request is answered `RATE_LIMITED`; an input or a ping is
    /// dropped, and the client told so at most once a second), `Err` to close the
    /// connection because it keeps going over.
    pub(super) fn allow(&mut self, budget: Budget, req: u32, what: &str) -> Result<bool, Ending> {
        let verdict = self.limits.check(budget, self.env.sessions.clock());
        if verdict == Verdict::Allow {
            return Ok(true);
        }
        let stats = &self.env.metrics.stats;
        let (limit, key) = match budget {
            Budget::Input => (Limit::Input, "input_rate"),
            Budget::Command => (Limit::Command, "command_rate"),
        };
        stats.count_rate_limited(limit);
        let rate = self.limits.rate(budget);
        match verdict {
            Verdict::Allow => Ok(true),
            Verdict::Refuse { warn } => {
                if req != 0 || warn {
                    self.error(
                        ErrorKind::Session,
                        ErrorCode::RateLimited,
                        format!("{what} refused: over {rate} per second ({key})"),
                        req,
                    );
                }
                Ok(false)
            }
            Verdict::Close => {
                stats.count_rate_limited(Limit::Closed);
                Err(Ending::fault(
                    ErrorCode::RateLimited,
                    format!("closed: kept sending past {rate} per second ({key})"),
                ))
            }
        }
    }

    fn on_input(&mut self, seq: u32, payload: &[u8]) {
        if self.account.is_none() && self.env.auth.required {
            self.error(
                ErrorKind::Session,
                ErrorCode::Unauthorized,
                "input sent while not logged in",
                0,
            );
            return;
        }
        // No liveness check here: a closed room's input queue reports itself closed.
        let Some(m) = self.membership.as_deref() else {
            self.error(
                ErrorKind::Session,
                ErrorCode::NotInRoom,
                "input sent while not in a room",
                0,
            );
            return;
        };
        let input = InputMsg {
            session: self.link.session_id,
            player: m.player_id,
            seq,
            payload: InputPayload::new(payload),
        };
        match m.room.inputs.push(input) {
            Ok(()) => {}
            Err(PushError::Full) => self.error(
                ErrorKind::Session,
                ErrorCode::RoomBusy,
                "the room's input queue is full; input dropped",
                0,
            ),
            Err(PushError::Closed) => {
                self.membership = None;
                self.error(
                    ErrorKind::Session,
                    ErrorCode::NotInRoom,
                    "the room has closed",
                    0,
                );
            }
        }
    }

    fn enqueue(&mut self, req: u32, cmd: Command) -> Result<(), Ending> {
        if req == 0 {
            return Err(Ending::fault(
                ErrorCode::BadMessage,
                "request id must not be 0",
            ));
        }
        if self.queue.len() + usize::from(self.running) >= MAX_COMMANDS_IN_FLIGHT {
            self.error(
                ErrorKind::Session,
                ErrorCode::RateLimited,
                format!("{MAX_COMMANDS_IN_FLIGHT} requests already wait for replies"),
                req,
            );
            return Ok(());
        }
        self.queue.push_back((req, cmd));
        Ok(())
    }
}
