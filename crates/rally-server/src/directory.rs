//! The directory of connected sessions: who is connected, over what, since when.
//!
//! Commands load a player's data from here; the admin API lists it. Entries are
//! added when a handshake completes and removed when the session ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::transport::Transport;

/// One connected, handshaken session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// The session id sent in `welcome`.
    pub session_id: u64,
    /// The client's name from `hello`, used as its display name.
    pub name: String,
    /// The transport it connected over.
    pub transport: Transport,
    /// Its address.
    pub peer: SocketAddr,
    /// When the handshake completed.
    pub since: Instant,
}

/// Connected sessions by id.
#[derive(Debug, Default)]
pub struct Directory {
    /// A plain mutex: every critical section is a map operation, never held across `.await`.
    sessions: Mutex<HashMap<u64, Arc<SessionRecord>>>,
}

impl Directory {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<SessionRecord>>> {
        // A panic while holding this lock cannot leave the map half-updated (single
        // insert/remove calls), so a poisoned lock is still safe to use.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, record: SessionRecord) {
        self.lock().insert(record.session_id, Arc::new(record));
    }

    pub(crate) fn remove(&self, session_id: u64) {
        self.lock().remove(&session_id);
    }

    /// The record of a connected session.
    pub fn get(&self, session_id: u64) -> Option<Arc<SessionRecord>> {
        self.lock().get(&session_id).cloned()
    }

    /// Every connected session, in no particular order.
    pub fn snapshot(&self) -> Vec<Arc<SessionRecord>> {
        self.lock().values().cloned().collect()
    }

    /// How many sessions are connected and handshaken.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
