//! Rally's wire protocol, with no IO: bytes go in as slices, decoded values come out,
//! and encoders append to caller-owned buffers. The tokio server and the client SDK are
//! thin drivers around this crate, and its tests need no sockets.
//!
//! # Layout
//! - [`msgpack`]: a small, allocation-free MessagePack reader and writer (the body encoding).
//! - [`message`]: every client (`message/client.rs`) and server (`message/server.rs`)
//!   message, with its encoder and decoder.
//! - [`error_code`]: the error codes a server sends, with their numbers and names.
//! - [`frame`]: length-prefixed framing for raw TCP.
//! - [`ws`]: WebSocket framing (RFC 6455) for the `/ws` endpoint.
//! - [`transport`]: [`Transport`], TCP or WebSocket, for every side.
//! - [`redact`]: [`Redacted`], the wrapper that keeps a secret out of `Debug` output.
//! - [`framing`]: one framer and one deframer per role (server, client) over either
//!   transport, on top of `frame` and `ws`.
//! - [`handshake`]: the HTTP/1.1 upgrade request that opens a WebSocket.
//! - `fuzzing` (hidden, feature `fuzzing`): the checks the fuzz targets in `fuzz/` and the
//!   corpus replay test share; not part of the API, and not built into the server.
//!
//! The protocol itself is specified in `docs/protocol.md`.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod error_code;
pub mod frame;
pub mod framing;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod handshake;
pub mod message;
pub mod msgpack;
pub mod redact;
pub mod transport;
pub mod ws;

pub use error_code::ErrorCode;
pub use message::{
    ClientMessage, DecodeError, Listings, RoomListing, ServerMessage, PROTOCOL_REVISION,
    PROTOCOL_VERSION,
};
pub use redact::Redacted;
pub use transport::Transport;
