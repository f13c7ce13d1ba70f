//! What every room task is given (play floor): the handles a room uses, and nothing of
//! the sessions or listeners above it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::games::Games;
use crate::matchmaker::Matchmaker;
use crate::metrics::Metrics;
use crate::recording::Recordings;
use crate::resume::ResumeTokens;
use crate::storage::Storage;

/// The handles rooms share: one per server, held by each room and by whoever opens rooms.
#[derive(Debug)]
pub(crate) struct RoomEnv {
    /// The room kinds and their games.
    pub(crate) games: Games,
    /// Seat counts; a room gives its seats back here and is forgotten here when it ends.
    pub(crate) matchmaker: Arc<Matchmaker>,
    /// Seats held for players who may come back, by resume token.
    pub(crate) resume: Arc<ResumeTokens>,
    /// The registry and hot counters (ticks, errors, missed ticks).
    pub(crate) metrics: Arc<Metrics>,
    /// Where match records go; `None` without a database.
    pub(crate) storage: Option<Arc<Storage>>,
    /// Where each match is recorded; `None` when recording is off.
    pub(crate) recordings: Option<Arc<Recordings>>,
    /// The server's task tracker: rooms run in it, so shutdown waits for them.
    pub(crate) tracker: TaskTracker,
    /// The server's shutdown token; each room's token is a child of it.
    pub(crate) shutdown: CancellationToken,
    /// `tick_hz` as a period.
    pub(crate) tick_period: Duration,
    /// `reconnect_grace_ms`: how long an away player's seat is held.
    pub(crate) reconnect_grace: Duration,
    /// What reading a lent socket needs (`outbox::Lend`): `max_message_bytes` for the
    /// decoder, `timeout_ms` to move the session's deadline by, and the live-session
    /// registry's epoch, which deadlines and the rate limits count from.
    pub(crate) max_message_bytes: usize,
    pub(crate) timeout: Duration,
    pub(crate) epoch: tokio::time::Instant,
}
