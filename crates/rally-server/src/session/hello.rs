//! The handshake (session floor): the first message must be `hello`; it may log the
//! session in with a session token and ask to resume a seat.

use rally_protocol::{
    ClientMessage, ErrorCode, ServerMessage, PROTOCOL_REVISION, PROTOCOL_VERSION,
};

use super::{Core, MAX_CLIENT_NAME};
use crate::accounts::{self, SessionAccount};
use crate::command::Command;
use crate::directory::SessionRecord;
use crate::metrics::ErrorKind;
use crate::outbox::{Ending, Outbound, ResumeToken};

impl Core {
    pub(super) fn on_hello(&mut self, msg: ClientMessage<'_>) -> Result<(), Ending> {
        let ClientMessage::Hello {
            version,
            client,
            resume,
            token,
        } = msg
        else {
            return Err(Ending::fault(
                ErrorCode::BadMessage,
                "the first message must be hello",
            ));
        };
        if version != PROTOCOL_VERSION {
            return Err(Ending::fault(
                ErrorCode::UnsupportedVersion,
                format!("protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"),
            ));
        }
        if client.len() > MAX_CLIENT_NAME {
            return Err(Ending::fault(
                ErrorCode::BadMessage,
                format!("client name longer than {MAX_CLIENT_NAME} bytes"),
            ));
        }
        if resume.is_none() && self.env.matchmaker.is_draining() {
            // A player coming back to its seat may; a new player goes elsewhere.
            return Err(Ending::fault(
                ErrorCode::Draining,
                "the server is draining and takes no new players; connect to another server",
            ));
        }
        // The session token is checked here, without the database: a valid one logs the
        // session in before anything else it sends is handled.
        let verified = token.map(|t| self.env.auth.verify(t));
        let account = match verified {
            Some(Ok(id)) => Some(id),
            _ => None,
        };
        let c = &self.env.config;
        let session_id = self.link.session_id;
        self.link
            .send_in_task(Outbound::Msg(ServerMessage::Welcome {
                version: PROTOCOL_VERSION,
                session_id,
                tick_hz: c.tick_hz,
                max_message_bytes: c.max_message_bytes,
                timeout_ms: c.timeout_ms as u32,
                queue_capacity: c.queue_capacity,
                resume_token: self
                    .link
                    .resume_token()
                    .map(ResumeToken::to_hex)
                    .unwrap_or_default(),
                reconnect_grace_ms: c.reconnect_grace_ms as u32,
                account_id: account.unwrap_or(0),
                revision: PROTOCOL_REVISION,
            }));
        if let Some(Err(e)) = verified {
            // Not fatal: the client may log in instead.
            self.error(
                ErrorKind::Session,
                ErrorCode::Unauthorized,
                format!("{e}; log in again"),
                0,
            );
        }
        if let Some(id) = account {
            self.account = Some(SessionAccount {
                id,
                since: std::time::Instant::now(),
            });
            // The display name, loaded ahead of the client's own requests.
            self.queue.push_back((0, Command::Restore));
        }
        if let Some(token) = resume {
            // Runs like a request with id 0: `joined` (req 0) or RESUME_FAILED follows.
            self.queue.push_back((
                0,
                Command::Resume {
                    token: token.to_owned(),
                },
            ));
        }
        let name = match account {
            Some(id) => accounts::default_name(id),
            None if client.trim().is_empty() => format!("player-{session_id}"),
            None => client.to_owned(),
        };
        self.env.directory.insert(SessionRecord {
            session_id,
            name,
            account_id: account,
            transport: self.transport,
            peer: self.peer,
            since: std::time::Instant::now(),
        });
        self.handshaken = true;
        Ok(())
    }
}
