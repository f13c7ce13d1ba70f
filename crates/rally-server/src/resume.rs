//! Resume tokens: the secret that lets a player's next connection take back the seat a
//! dropped connection left.
//!
//! Every `welcome` carries the session's token (128 bits of a keyed hash of the session
//! id under a random per-process key: `SessionLink::resume_token`). While the session holds a
//! seat, the room registers the token here; when the seat is freed (leave, grace over,
//! room ended) or taken back by a new connection (which brings its own token), the room
//! removes it. A token is therefore only ever good for one seat, for as long as it is held.
//!
//! Play floor: imports the room handle, and the token type from the outbox below.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use rally_game::PlayerId;

use crate::outbox::ResumeToken;
use crate::room_handle::RoomHandle;

/// A held seat: its room, its player id there, and the account that holds it (`None`: a
/// guest, when logins are not required).
pub(crate) type Seat = (RoomHandle, PlayerId, Option<u64>);

/// Held seats by token. Its `Debug` shows how many, never the tokens.
#[derive(Default)]
pub(crate) struct ResumeTokens {
    /// Never held across `.await`: every critical section is one map operation.
    inner: Mutex<HashMap<ResumeToken, Seat>>,
}

impl std::fmt::Debug for ResumeTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeTokens")
            .field("held", &self.lock().len())
            .finish()
    }
}

impl ResumeTokens {
    fn lock(&self) -> MutexGuard<'_, HashMap<ResumeToken, Seat>> {
        // Single map operations cannot leave the map half-updated, so a poisoned lock
        // is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the seat `token` takes back: `player` in `room`, held by `account` (the
    /// seat's account; only a session of the same account may resume it).
    pub(crate) fn insert(
        &self,
        token: ResumeToken,
        room: RoomHandle,
        player: PlayerId,
        account: Option<u64>,
    ) {
        self.lock().insert(token, (room, player, account));
    }

    pub(crate) fn remove(&self, token: &ResumeToken) {
        self.lock().remove(token);
    }

    /// The seat a token holds, if any, with the seat's account.
    pub(crate) fn get(&self, token: &ResumeToken) -> Option<Seat> {
        self.lock().get(token).cloned()
    }
}
