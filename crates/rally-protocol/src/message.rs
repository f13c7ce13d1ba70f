//! Every message of protocol version 1, with its encoder and decoder.
//!
//! A message body is one MessagePack array whose first element is the message type (a
//! small integer) and whose next elements are the fields, in the order given here and in
//! `docs/protocol.md`. A decoder ignores elements past the ones it knows, so a later minor
//! revision may append fields without breaking older peers.
//!
//! Client messages decode by borrowing from the received bytes (no allocation on the
//! server's hot path); server messages decode into owned values for clients.
//!
//! # Layout
//! - this file: the version, the type numbers ([`tag`]), [`DecodeError`] and the array
//!   framing every message shares.
//! - `client`: [`ClientMessage`], what clients send.
//! - `server`: [`ServerMessage`] and [`encode_state`], what the server sends.

use thiserror::Error;

use crate::msgpack::{ReadError, Reader};

mod client;
mod server;
#[cfg(test)]
mod tests;

pub use client::ClientMessage;
pub use server::{encode_state, Listings, RoomListing, ServerMessage};

/// The protocol version this crate speaks, sent in `hello` and `welcome`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The highest revision of version 1 this crate speaks, sent in `welcome` (its last
/// field). Revisions only add message types and append fields, so a peer of an older
/// revision keeps working; docs/protocol.md lists what each one added.
pub const PROTOCOL_REVISION: u32 = 4;

/// Message type numbers: clients send 1-31, servers 64-95.
pub mod tag {
    /// Client `hello`.
    pub const HELLO: u8 = 1;
    /// Client `join`.
    pub const JOIN: u8 = 2;
    /// Client `leave`.
    pub const LEAVE: u8 = 3;
    /// Client `input`.
    pub const INPUT: u8 = 4;
    /// Client `chat`.
    pub const CHAT: u8 = 5;
    /// Client `ping`.
    pub const PING: u8 = 6;
    /// Client `login`.
    pub const LOGIN: u8 = 7;
    /// Client `get_data`.
    pub const GET_DATA: u8 = 8;
    /// Client `put_data`.
    pub const PUT_DATA: u8 = 9;
    /// Client `delete_data`.
    pub const DELETE_DATA: u8 = 10;
    /// Client `get_profile`.
    pub const GET_PROFILE: u8 = 11;
    /// Client `set_name`.
    pub const SET_NAME: u8 = 12;
    /// Client `create` (revision 2).
    pub const CREATE: u8 = 13;
    /// Client `join_or_create` (revision 2).
    pub const JOIN_OR_CREATE: u8 = 14;
    /// Client `join_by_id` (revision 2).
    pub const JOIN_BY_ID: u8 = 15;
    /// Client `join_by_code` (revision 2).
    pub const JOIN_BY_CODE: u8 = 16;
    /// Client `list_rooms` (revision 2).
    pub const LIST_ROOMS: u8 = 17;
    /// Client `queue` (revision 2).
    pub const QUEUE: u8 = 18;
    /// Client `leave_queue` (revision 2).
    pub const LEAVE_QUEUE: u8 = 19;
    /// Client `spectate` (protocol revision 3).
    pub const SPECTATE: u8 = 20;
    /// Client `spectate_recording` (protocol revision 3).
    pub const SPECTATE_RECORDING: u8 = 21;
    /// Client `stop_spectating` (protocol revision 3).
    pub const STOP_SPECTATING: u8 = 22;
    /// Client `claim_seat` (revision 4: a seat ticket from a `redirect`).
    pub const CLAIM_SEAT: u8 = 23;
    /// Server `welcome`.
    pub const WELCOME: u8 = 64;
    /// Server `joined`.
    pub const JOINED: u8 = 65;
    /// Server `left`.
    pub const LEFT: u8 = 66;
    /// Server `state`.
    pub const STATE: u8 = 67;
    /// Server `chat` (a room's chat line).
    pub const CHAT_LINE: u8 = 68;
    /// Server `pong`.
    pub const PONG: u8 = 69;
    /// Server `ok` (a request succeeded with nothing more to say).
    pub const OK: u8 = 70;
    /// Server `error`.
    pub const ERROR: u8 = 71;
    /// Server `room_closed`.
    pub const ROOM_CLOSED: u8 = 72;
    /// Server `shutdown`.
    pub const SHUTDOWN: u8 = 73;
    /// Server `session` (the reply to `login`).
    pub const SESSION: u8 = 74;
    /// Server `data` (the reply to `get_data`).
    pub const DATA: u8 = 75;
    /// Server `written` (the reply to `put_data`).
    pub const WRITTEN: u8 = 76;
    /// Server `profile` (the reply to `get_profile`).
    pub const PROFILE: u8 = 77;
    /// Server `rooms` (the reply to `list_rooms`, revision 2).
    pub const ROOMS: u8 = 78;
    /// Server `spectating` (the reply to `spectate` and `spectate_recording`).
    pub const SPECTATING: u8 = 82;
    /// Server `spectator_state`.
    pub const SPECTATOR_STATE: u8 = 83;
    /// Server `redirect` (revision 4: the seat is on another node of the cluster).
    pub const REDIRECT: u8 = 84;
}

/// Why a message body could not be decoded. The server answers all of these with
/// `BAD_MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The MessagePack itself is malformed or has the wrong types.
    #[error("{0}")]
    Read(#[from] ReadError),
    /// The type number is not one this version knows.
    #[error("unknown message type {0}")]
    UnknownType(u64),
    /// The array has fewer elements than the message type needs.
    #[error("message type {tag} needs {need} elements, got {got}")]
    MissingFields {
        /// The message type.
        tag: u8,
        /// Elements it needs, type included.
        need: u32,
        /// Elements present.
        got: u32,
    },
    /// Bytes follow the message array.
    #[error("trailing bytes after the message")]
    Trailing,
    /// An error code number this version does not know (client side only).
    #[error("unknown error code {0}")]
    UnknownCode(u16),
}

/// What a `Debug` line shows in place of a secret.
const REDACTED: &str = "<redacted>";

fn redacted<T>(secret: &Option<T>) -> Option<&'static str> {
    secret.as_ref().map(|_| REDACTED)
}

fn expect(tag: u8, need: u32, got: u32) -> Result<(), DecodeError> {
    if got < need {
        Err(DecodeError::MissingFields { tag, need, got })
    } else {
        Ok(())
    }
}

/// Opens a message: reads the array header and the type, returns (type, element count).
fn open(r: &mut Reader<'_>) -> Result<(u64, u32), DecodeError> {
    let n = r.read_array_len()?;
    if n == 0 {
        return Err(DecodeError::MissingFields {
            tag: 0,
            need: 1,
            got: 0,
        });
    }
    Ok((r.read_u64()?, n))
}

/// Skips the elements past the `known` ones and checks that nothing follows the array.
fn close(r: &mut Reader<'_>, n: u32, known: u32) -> Result<(), DecodeError> {
    for _ in known..n {
        r.skip_value()?;
    }
    if r.remaining() != 0 {
        return Err(DecodeError::Trailing);
    }
    Ok(())
}
