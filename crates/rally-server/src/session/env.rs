//! What every session is given (session floor): the handles a connection's task uses,
//! one per server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::accounts::Auth;
use crate::command::CommandEnv;
use crate::config::Config;
use crate::directory::Directory;
use crate::matchmaker::Matchmaker;
use crate::metrics::Metrics;
use crate::outbox::LiveSessions;
use crate::queue::MatchQueue;
use crate::storage::Storage;

/// The handles sessions share.
#[derive(Debug)]
pub(crate) struct SessionEnv {
    /// Bounds, rates and what `welcome` announces.
    pub(crate) config: Arc<Config>,
    /// The registry and hot counters (traffic, errors, rate limits).
    pub(crate) metrics: Arc<Metrics>,
    /// Every running session, so shutdown and the admin API reach each one.
    pub(crate) sessions: Arc<LiveSessions>,
    /// Handshaken sessions, with their names and accounts.
    pub(crate) directory: Arc<Directory>,
    /// Session tokens in `hello`, and whether playing needs a login.
    pub(crate) auth: Arc<Auth>,
    /// Where an account's play time goes when its session ends; `None` without a database.
    pub(crate) storage: Option<Arc<Storage>>,
    /// Asked whether the server is draining (no new players).
    pub(crate) matchmaker: Arc<Matchmaker>,
    /// The matchmaking queue: a session's end takes it out, a match's seat is picked up.
    pub(crate) queue: Arc<MatchQueue>,
    /// Cancelled when shutdown begins.
    pub(crate) shutdown: CancellationToken,
    /// What the session's requests run with.
    pub(crate) commands: Arc<CommandEnv>,
    /// The last session id given (ids start at 1).
    pub(crate) next_session: AtomicU64,
}

impl SessionEnv {
    /// A new session id.
    pub(crate) fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed) + 1
    }
}
