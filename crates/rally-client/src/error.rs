//! The SDK's error type, and which errors are worth retrying.

use std::io;
use std::sync::Arc;

use rally_protocol::ErrorCode;
use thiserror::Error;

/// Everything that can go wrong. Cheap to clone (an IO error is shared), so one failure
/// can be handed to every request it affects and to the events stream.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed: connection refused, reset, unreachable, ...
    #[error("network error: {0}")]
    Io(#[source] Arc<io::Error>),
    /// A wait ran past its bound; the text says which.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The server sent `error` with a code this SDK knows: refusing the handshake
    /// (`SERVER_FULL`, `UNSUPPORTED_VERSION`), answering a request (`ROOM_FULL`,
    /// `NOT_IN_ROOM`, ...), or unprompted (`INPUT_REJECTED`, `ROOM_BUSY`, ...).
    #[error("server error {code}: {message}")]
    Server {
        /// What went wrong.
        code: ErrorCode,
        /// The server's explanation, for people and logs.
        message: String,
    },
    /// The server sent `error` with a code newer than this SDK; treat it as a generic
    /// error (`docs/protocol.md` section 9).
    #[error("server error {code} (a code this SDK does not know): {message}")]
    UnknownServerError {
        /// The code's number.
        code: u16,
        /// The server's explanation.
        message: String,
    },
    /// The server said something that breaks the protocol: a failed WebSocket upgrade, a
    /// message that does not decode, an unexpected reply.
    #[error("bad response from the server: {0}")]
    Protocol(String),
    /// The server closed the connection (an orderly close, not a reset) before answering.
    #[error("the server closed the connection")]
    PeerClosed,
    /// The connection dropped while this was in flight, or an input was sent while the
    /// SDK is reconnecting. Retried like a connection reset.
    #[error("the connection to the server was lost")]
    ConnectionLost,
    /// The client was closed, or gave up reconnecting.
    #[error("the client is closed")]
    Closed,
    /// More than `max_outbound_bytes` are waiting to be written; the input was not sent.
    #[error("outbound buffer full: the network is not keeping up")]
    Backpressure,
    /// A message body is larger than the server's `max_message_bytes`; it was not sent
    /// (the server would close the connection for it).
    #[error("message of {len} bytes exceeds the server's limit of {max}")]
    TooLarge {
        /// The body's size.
        len: usize,
        /// The server's `max_message_bytes`.
        max: usize,
    },
    /// An input payload that is not exactly one MessagePack value.
    #[error("an input payload must be exactly one MessagePack value")]
    InvalidPayload,
    /// The [`Config`](crate::Config) cannot work; the text says why.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// Every server address failed; each with its own last error.
    #[error("all {} servers failed: {}", .0.len(), list(.0))]
    AllFailed(Vec<(String, Error)>),
}

fn list(failures: &[(String, Error)]) -> String {
    failures
        .iter()
        .map(|(addr, e)| format!("{addr}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// Whether the retry policy tries again after this error: only timeouts and
    /// connection resets (SPEC.md section 2). That is a local timeout, the server's
    /// `TIMEOUT`, an IO reset, abort or timeout, and a connection lost under a request.
    /// A refused connection, a server refusal such as `SERVER_FULL`, or a bad response is
    /// final.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout(_) | Error::ConnectionLost => true,
            Error::Server { code, .. } => *code == ErrorCode::Timeout,
            Error::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::TimedOut
            ),
            _ => false,
        }
    }

    /// The server's error code, if the server sent one this SDK knows.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_timeouts_and_resets_are_retryable() {
        let io = |k| Error::from(io::Error::from(k));
        assert!(Error::Timeout("x").is_retryable());
        assert!(Error::ConnectionLost.is_retryable());
        assert!(io(io::ErrorKind::ConnectionReset).is_retryable());
        assert!(io(io::ErrorKind::TimedOut).is_retryable());
        let server = |code| Error::Server {
            code,
            message: String::new(),
        };
        assert!(server(ErrorCode::Timeout).is_retryable());
        for e in [
            io(io::ErrorKind::ConnectionRefused),
            server(ErrorCode::ServerFull),
            server(ErrorCode::UnsupportedVersion),
            Error::Protocol("bad".into()),
            Error::PeerClosed,
            Error::Closed,
        ] {
            assert!(!e.is_retryable(), "{e}");
        }
    }

    #[test]
    fn all_failed_names_every_address() {
        let e = Error::AllFailed(vec![
            ("a:1".into(), Error::PeerClosed),
            ("b:2".into(), Error::Timeout("connect")),
        ]);
        let text = e.to_string();
        assert!(text.contains("all 2 servers failed"), "{text}");
        assert!(text.contains("a:1: the server closed"), "{text}");
        assert!(text.contains("b:2: timed out"), "{text}");
    }
}
