//! The directory of connected sessions: who is connected, over what, since when.
//!
//! Commands load a player's data from here (it is the per-session cache of the player's
//! account and display name: no command reads them from the database); the admin API
//! lists it. Entries are added when a handshake completes, replaced when the session logs
//! in or renames itself, and removed when the session ends.
//!
//! Infra floor: imports the wire's `Transport` enum only.

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
    /// The display name: the account's once logged in, else the client's name from `hello`.
    pub name: String,
    /// The account the session is logged in as, if any.
    pub account_id: Option<u64>,
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

    /// Records a session's (new) account and display name.
    pub(crate) fn set_account(&self, session_id: u64, account_id: Option<u64>, name: String) {
        let mut sessions = self.lock();
        if let Some(r) = sessions.get_mut(&session_id) {
            let mut record = SessionRecord::clone(r);
            record.account_id = account_id;
            record.name = name;
            *r = Arc::new(record);
        }
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
