//! The directory of connected sessions: who is connected, over what, since when.
//!
//! Commands load a player's data from here (it is the per-session cache of the player's
//! account and display name: no command reads them from the database); the admin API
//! lists it. Entries are added when a handshake completes, replaced when the session logs
//! in or renames itself, and removed when the session ends.
//!
//! Kept with each session's handle in the live-session registry
//! ([`LiveSessions`]), not in a map of its own: one registry entry per connection
//! instead of two, and no record allocated apart from it (about 75 bytes less per
//! connection).
//!
//! Infra floor: imports the session registry and the wire's `Transport` enum.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::outbox::{LiveSessions, Profile};
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

/// Connected, handshaken sessions by id: a view of the live-session registry.
#[derive(Debug)]
pub struct Directory {
    sessions: Arc<LiveSessions>,
}

impl Directory {
    /// The directory of the sessions in `sessions`.
    pub(crate) fn new(sessions: Arc<LiveSessions>) -> Self {
        Directory { sessions }
    }

    /// Lists a session that completed its handshake (it is in the registry already).
    pub(crate) fn insert(&self, record: SessionRecord) {
        let since = Instant::now().saturating_duration_since(record.since);
        let profile = Profile {
            name: record.name.into_boxed_str(),
            account_id: record.account_id,
            peer: record.peer,
            since_ms: self
                .sessions
                .now_ms()
                .saturating_sub(since.as_millis() as u64),
            transport: record.transport,
        };
        self.sessions.set_profile(record.session_id, profile);
    }

    /// Records a session's (new) account and display name.
    pub(crate) fn set_account(&self, session_id: u64, account_id: Option<u64>, name: String) {
        self.sessions.update_profile(session_id, |p| {
            p.account_id = account_id;
            p.name = name.into_boxed_str();
        });
    }

    fn record(&self, session_id: u64, p: Profile) -> Arc<SessionRecord> {
        let age = self.sessions.now_ms().saturating_sub(p.since_ms);
        let now = Instant::now();
        Arc::new(SessionRecord {
            session_id,
            name: p.name.into_string(),
            account_id: p.account_id,
            transport: p.transport,
            peer: p.peer,
            since: now
                .checked_sub(std::time::Duration::from_millis(age))
                .unwrap_or(now),
        })
    }

    /// The record of a connected session.
    pub fn get(&self, session_id: u64) -> Option<Arc<SessionRecord>> {
        let profile = self.sessions.profile(session_id)?;
        Some(self.record(session_id, profile))
    }

    /// Every connected session, in no particular order.
    pub fn snapshot(&self) -> Vec<Arc<SessionRecord>> {
        self.sessions
            .profiles()
            .into_iter()
            .map(|(id, p)| self.record(id, p))
            .collect()
    }

    /// How many sessions are connected and handshaken.
    pub fn len(&self) -> usize {
        self.sessions.listed()
    }

    /// Whether no session is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::SessionCtl;

    fn record(session_id: u64, name: &str) -> SessionRecord {
        SessionRecord {
            session_id,
            name: name.to_owned(),
            account_id: None,
            transport: Transport::Tcp,
            peer: "127.0.0.1:4000".parse().expect("an address"),
            since: Instant::now(),
        }
    }

    #[test]
    fn lists_handshaken_live_sessions_with_their_account_and_forgets_them_at_the_end() {
        let sessions = Arc::new(LiveSessions::default());
        let directory = Directory::new(sessions.clone());
        for id in [1, 2, 3] {
            sessions.insert(id, Arc::new(SessionCtl::new(1)));
        }
        directory.insert(record(1, "ana"));
        directory.insert(record(2, "bo"));
        // Not in the registry (it ended before its hello was handled): not listed.
        directory.insert(record(9, "gone"));
        assert_eq!(directory.len(), 2);
        // A second hello's record replaces the first and is counted once.
        directory.insert(record(2, "bo"));
        assert_eq!(directory.len(), 2);
        assert!(directory.get(3).is_none(), "not handshaken: not listed");
        directory.set_account(2, Some(77), "account-77".to_owned());
        let two = directory.get(2).expect("listed");
        assert_eq!(
            (two.name.as_str(), two.account_id),
            ("account-77", Some(77))
        );
        assert_eq!(two.peer.port(), 4000);
        assert!(two.since.elapsed() < std::time::Duration::from_secs(5));
        let mut ids: Vec<u64> = directory.snapshot().iter().map(|r| r.session_id).collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2]);
        // The session's end takes its entry, and its listing, away.
        sessions.remove(1);
        assert_eq!(directory.len(), 1);
        assert!(directory.get(1).is_none());
        assert_eq!(directory.snapshot().len(), 1);
    }
}
