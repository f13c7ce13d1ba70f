//! The live-session registry ([`LiveSessions`]): every running session's handle, with
//! its directory profile once handshaken, the clock deadlines count from, and the sweep
//! that ends quiet sessions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rally_protocol::ErrorCode;

use super::{Ending, SessionCtl};
use crate::transport::Transport;

/// What the session directory (`directory.rs`) shows of a handshaken session. Kept in the
/// session's handle: one registry entry per connection rather than a second map and a
/// record allocated apart.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    pub(crate) name: Box<str>,
    pub(crate) account_id: Option<u64>,
    pub(crate) peer: std::net::SocketAddr,
    /// When the handshake completed: milliseconds since the registry's epoch.
    pub(crate) since_ms: u64,
    pub(crate) transport: Transport,
}

/// `at` in milliseconds since `epoch`, rounded up (a deadline is never earlier than asked).
pub(crate) fn millis_since(epoch: tokio::time::Instant, at: tokio::time::Instant) -> u64 {
    let since = at.saturating_duration_since(epoch);
    let ms = since.as_millis() + u128::from(!since.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX / 2)
}

/// Every running session, so shutdown can reach each one, and the sweep that ends those
/// whose client went quiet.
#[derive(Debug)]
pub(crate) struct LiveSessions {
    /// Never held across `.await`.
    inner: Mutex<HashMap<u64, Arc<SessionCtl>>>,
    /// What session deadlines count from.
    epoch: tokio::time::Instant,
    /// Sessions with a profile (handshaken), for the directory's count.
    listed: AtomicUsize,
}

impl Default for LiveSessions {
    fn default() -> Self {
        LiveSessions {
            inner: Mutex::new(HashMap::new()),
            epoch: tokio::time::Instant::now(),
            listed: AtomicUsize::new(0),
        }
    }
}

impl LiveSessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<SessionCtl>>> {
        // Each critical section is one map operation or a loop of atomic stores, so a
        // poisoned lock still holds a consistent map.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, id: u64, ctl: Arc<SessionCtl>) {
        self.lock().insert(id, ctl);
    }

    pub(crate) fn remove(&self, id: u64) {
        let removed = self.lock().remove(&id);
        if removed.is_some_and(|ctl| ctl.profile().is_some()) {
            self.listed.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Lists a live session in the directory (or replaces its listing).
    pub(crate) fn set_profile(&self, id: u64, profile: Profile) {
        if let Some(ctl) = self.lock().get(&id) {
            if ctl.profile().replace(profile).is_none() {
                self.listed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Changes a listed session's profile.
    pub(crate) fn update_profile(&self, id: u64, change: impl FnOnce(&mut Profile)) {
        if let Some(ctl) = self.lock().get(&id) {
            if let Some(profile) = ctl.profile().as_mut() {
                change(profile);
            }
        }
    }

    /// A listed session's profile.
    pub(crate) fn profile(&self, id: u64) -> Option<Profile> {
        self.lock().get(&id).and_then(|ctl| ctl.profile().clone())
    }

    /// Every listed session's profile, in no particular order.
    pub(crate) fn profiles(&self) -> Vec<(u64, Profile)> {
        self.lock()
            .iter()
            .filter_map(|(id, ctl)| Some((*id, ctl.profile().clone()?)))
            .collect()
    }

    /// How many sessions are listed.
    pub(crate) fn listed(&self) -> usize {
        self.listed.load(Ordering::Relaxed)
    }

    /// Now, in milliseconds since this registry's epoch.
    pub(crate) fn now_ms(&self) -> u64 {
        self.millis(tokio::time::Instant::now())
    }

    /// Tells every session the server is shutting down.
    pub(crate) fn drain_all(&self) {
        for ctl in self.lock().values() {
            ctl.drain();
        }
    }

    /// Ends every session now.
    pub(crate) fn end_all(&self) {
        for ctl in self.lock().values() {
            ctl.end(Ending::Forced);
        }
    }

    /// The time since this registry's epoch: the clock every session's rate limits read.
    pub(crate) fn clock(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.epoch)
    }

    /// What deadlines and the rate limits count from.
    pub(crate) fn epoch(&self) -> tokio::time::Instant {
        self.epoch
    }

    /// `at` in milliseconds since this registry's epoch, rounded up (a deadline is never
    /// earlier than asked).
    pub(crate) fn millis(&self, at: tokio::time::Instant) -> u64 {
        millis_since(self.epoch, at)
    }

    /// Ends, with `TIMEOUT`, every session whose deadline has passed; returns how many.
    pub(crate) fn expire(&self) -> usize {
        let now = self.millis(tokio::time::Instant::now());
        // Only atomic loads under the lock; the ends themselves just set and wake.
        self.lock().values().filter(|ctl| ctl.expire(now)).count()
    }

    /// Ends quiet sessions every `period` until `stop` is cancelled: a session times out
    /// at most `period` after its deadline.
    pub(crate) async fn sweep(
        self: Arc<Self>,
        period: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {
                    self.expire();
                }
            }
        }
    }

    /// Ends one session with `KICKED` (admin API); false if there is no such session.
    pub(crate) fn kick(&self, id: u64, message: String) -> bool {
        match self.lock().get(&id) {
            Some(ctl) => {
                ctl.end(Ending::fault(ErrorCode::Kicked, message));
                true
            }
            None => false,
        }
    }
}
