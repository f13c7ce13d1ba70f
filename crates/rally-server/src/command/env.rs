//! What the commands are given (commands floor): the checks and the handles the
//! commands use, one per server, shared by every session.

use std::sync::Arc;

use super::CommandChecks;
use crate::accounts::Auth;
use crate::cluster::Cluster;
use crate::directory::Directory;
use crate::queue::MatchQueue;
use crate::room::RoomEnv;
use crate::storage::Storage;

/// The handles commands use.
pub(crate) struct CommandEnv {
    /// The three checks every command passes.
    pub(crate) checks: Arc<dyn CommandChecks>,
    /// Rooms: the matchmaker, resume tokens and room kinds (`join`, `resume`).
    pub(crate) rooms: Arc<RoomEnv>,
    /// Session tokens and the login webhook (`login`).
    pub(crate) auth: Arc<Auth>,
    /// The database; `None` for a server built without one.
    pub(crate) storage: Option<Arc<Storage>>,
    /// Connected sessions, where a new display name is cached (`set_name`).
    pub(crate) directory: Arc<Directory>,
    /// The matchmaking queue (`queue`, `leave_queue`; joins are refused while queued).
    pub(crate) queue: Arc<MatchQueue>,
    /// Cluster mode: where a `join` goes, and the seats `claim_seat` takes.
    pub(crate) cluster: Option<Arc<Cluster>>,
}

impl std::fmt::Debug for CommandEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The checks are a trait object without `Debug`.
        f.debug_struct("CommandEnv")
            .field("rooms", &self.rooms)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}
