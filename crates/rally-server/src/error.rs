//! The one `{code, message}` error a client is told (infra floor).
//!
//! A command's failure, a session's fatal fault, a refusal at the door and a room's
//! complaint are all this pair; each becomes a protocol `error` message with
//! [`ClientError::into_message`].

use rally_protocol::{ErrorCode, ServerMessage};

/// An error for a client: the code it acts on and the explanation it shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ClientError {
    /// The error code sent to the client.
    pub code: ErrorCode,
    /// The human-readable explanation sent with it.
    pub message: String,
    /// For `CONFLICT`: the entry's current version (0: none), sent as its own field
    /// (protocol section 9), so a client need not parse it out of the message.
    pub current_version: Option<u64>,
}

/// The name commands (and the command-check API) use for a [`ClientError`].
pub type CommandError = ClientError;

impl ClientError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ClientError {
            code,
            message: message.into(),
            current_version: None,
        }
    }

    /// The protocol `error` message that tells the client, answering request `req` (0:
    /// no request).
    pub fn into_message(self, req: u32) -> ServerMessage {
        match self.current_version {
            Some(current_version) if self.code == ErrorCode::Conflict => ServerMessage::Conflict {
                message: self.message,
                req,
                current_version,
            },
            _ => ServerMessage::Error {
                code: self.code,
                message: self.message,
                req,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_becomes_the_protocol_error_for_its_request() {
        let e = ClientError::new(ErrorCode::NotInRoom, "not in a room");
        assert_eq!(
            e.to_string(),
            format!("{}: not in a room", ErrorCode::NotInRoom)
        );
        assert_eq!(
            e.into_message(7),
            ServerMessage::Error {
                code: ErrorCode::NotInRoom,
                message: "not in a room".into(),
                req: 7,
            }
        );
    }
}
