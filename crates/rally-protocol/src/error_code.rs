//! The error codes a server sends in an `error` message.
//!
//! Codes are numbers on the wire so that every language can switch on them; the names
//! are for people and logs. A client that meets a number it does not know treats it as a
//! generic error: new codes may be added without a new protocol version.

macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])* $name:ident = $num:literal, $fatal:literal, $wire:literal; )*) => {
        /// An error code, as sent in the `code` field of an `error` message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* $name, )*
        }

        impl ErrorCode {
            /// Every code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The number sent on the wire.
            pub fn as_u16(self) -> u16 {
                match self { $(ErrorCode::$name => $num,)* }
            }

            /// The code for a wire number, if it is one this version knows.
            pub fn from_u16(n: u16) -> Option<ErrorCode> {
                match n { $($num => Some(ErrorCode::$name),)* _ => None }
            }

            /// The upper-case name used in docs and logs, e.g. `SERVER_FULL`.
            pub fn name(self) -> &'static str {
                match self { $(ErrorCode::$name => $wire,)* }
            }

            /// Whether the server closes the connection after sending this code unprompted
            /// (with request id 0). An error that replies to a request never closes it.
            pub fn is_fatal(self) -> bool {
                match self { $(ErrorCode::$name => $fatal,)* }
            }
        }
    };
}

error_codes! {
    /// A message could not be decoded, has an unknown type, or came at the wrong time
    /// (anything but `hello` before the handshake, a second `hello`).
    BadMessage = 1, true, "BAD_MESSAGE";
    /// A message is larger than the server's `max_message_bytes`.
    MessageTooLarge = 2, true, "MESSAGE_TOO_LARGE";
    /// The `hello` asked for a protocol version this server does not speak.
    UnsupportedVersion = 3, true, "UNSUPPORTED_VERSION";
    /// The server is at its `concurrency_limit`; try later or another server.
    ServerFull = 10, true, "SERVER_FULL";
    /// A wait ran past `timeout_ms`: no handshake, nothing received, a write that did
    /// not drain (all fatal), or a command that did not complete (sent with its request id;
    /// the connection stays open).
    Timeout = 11, true, "TIMEOUT";
    /// The client did not read its messages fast enough and its outbound queue filled.
    SlowConsumer = 12, true, "SLOW_CONSUMER";
    /// The server is shutting down and takes no new rooms or players.
    ServerShutdown = 13, true, "SERVER_SHUTDOWN";
    /// An operator removed the player (admin API); its seat is freed, not held.
    Kicked = 14, true, "KICKED";
    /// The server is draining (admin API): it takes no new players (a `hello` without a
    /// resume token) and no new joins; players already in rooms play on.
    Draining = 15, true, "DRAINING";
    /// An input, `leave` or chat was sent while not in a room.
    NotInRoom = 20, false, "NOT_IN_ROOM";
    /// Every room of that kind is full and no new one may be opened.
    RoomFull = 21, false, "ROOM_FULL";
    /// No game is registered under the room kind asked for.
    UnknownRoomKind = 22, false, "UNKNOWN_ROOM_KIND";
    /// A `join` was sent while already in a room; `leave` first.
    AlreadyInRoom = 23, false, "ALREADY_IN_ROOM";
    /// A field has a value outside what the server accepts (e.g. an empty or over-long chat).
    InvalidArgument = 24, false, "INVALID_ARGUMENT";
    /// The game refused an input (its payload did not make sense to the game).
    InputRejected = 25, false, "INPUT_REJECTED";
    /// The room's input queue was full and the input was dropped.
    RoomBusy = 26, false, "ROOM_BUSY";
    /// Too many commands are waiting for a reply on this connection.
    RateLimited = 27, false, "RATE_LIMITED";
    /// The `hello` carried a resume token that is unknown or whose seat has expired;
    /// the session is a fresh one, in no room.
    ResumeFailed = 28, false, "RESUME_FAILED";
    /// An operator closed the player's room (admin API); `room_closed` follows.
    RoomClosed = 29, false, "ROOM_CLOSED";
    /// A bug or an unexpected failure inside the server.
    Internal = 30, false, "INTERNAL";
    /// A versioned write named a version that is not the entry's current one (someone
    /// else wrote first, or the entry does or does not exist); the message says the
    /// current version.
    Conflict = 31, false, "CONFLICT";
    /// The player may not do this to that data (e.g. read another player's private key).
    Forbidden = 32, false, "FORBIDDEN";
    /// The thing asked for does not exist (e.g. the profile of an unknown account).
    NotFound = 33, false, "NOT_FOUND";
    /// The database (or the auth webhook) cannot be reached just now; realtime play goes
    /// on. Retry later.
    Unavailable = 34, false, "UNAVAILABLE";
    /// Not logged in, a session token that is forged, altered or expired, or a refused
    /// login.
    Unauthorized = 35, false, "UNAUTHORIZED";
    /// No live room has that id or code (it never existed, or it has ended), revision 2.
    NoSuchRoom = 36, false, "NO_SUCH_ROOM";
    /// The room is locked by its game (e.g. the match started) and takes no joins.
    RoomLocked = 37, false, "ROOM_LOCKED";
    /// The room options or listing filter are not a MessagePack map within the server's
    /// bounds (entries, depth, key length), or the game refused them (its reason follows).
    BadOptions = 38, false, "BAD_OPTIONS";
    /// The game refused the join; the message is the game's reason.
    JoinRefused = 39, false, "JOIN_REFUSED";
    /// A matchmaking queue found no match in time (sent with request id 0).
    MatchTimeout = 40, false, "MATCH_TIMEOUT";
    /// `leave_queue` was sent while not in a matchmaking queue.
    NotInQueue = 41, false, "NOT_IN_QUEUE";
    /// `queue` was sent while already in a matchmaking queue.
    AlreadyQueued = 42, false, "ALREADY_QUEUED";
    /// The matchmaking queue is at its bound (per kind or in all); retry later.
    QueueFull = 43, false, "QUEUE_FULL";
    /// `spectate` or `spectate_recording` named no open room, no room with that code, or
    /// no recording (or recording is off).
    NoSuchMatch = 46, false, "NO_SUCH_MATCH";
    /// The room has as many spectators as it takes.
    SpectatorsFull = 47, false, "SPECTATORS_FULL";
    /// `stop_spectating` while watching nothing.
    NotSpectating = 48, false, "NOT_SPECTATING";
    /// Revision 4: a seat ticket that is not one: malformed, forged, altered, signed with
    /// another cluster's secret, or issued to another account.
    TicketInvalid = 50, false, "TICKET_INVALID";
    /// Revision 4: a genuine seat ticket past its expiry (the seat was given back).
    TicketExpired = 51, false, "TICKET_EXPIRED";
    /// Revision 4: a seat ticket already claimed (tickets are single-use), or whose seat
    /// this node no longer holds (e.g. it restarted).
    TicketUsed = 52, false, "TICKET_USED";
    /// Revision 4: a seat ticket for a seat on another node; connect to the node the
    /// `redirect` named.
    TicketWrongNode = 53, false, "TICKET_WRONG_NODE";
    /// Revision 4: the cluster could not place the player: the node chosen did not answer
    /// a seat reservation within its retries, and this node could not take it either.
    ClusterUnavailable = 54, false, "CLUSTER_UNAVAILABLE";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &c in ErrorCode::ALL {
            assert!(seen.insert(c.as_u16()), "duplicate number for {c}");
            assert_eq!(ErrorCode::from_u16(c.as_u16()), Some(c));
        }
        assert_eq!(ErrorCode::from_u16(9999), None);
    }
}
