//! The server's side of the storage layer (crate `rally-store`): opening the database,
//! running each call under SPEC.md's retry policy and timing it, the writes nobody waits
//! for, and the probe that tells `/readyz` whether the database answers.
//!
//! - **Calls a player waits for** (logins, player data, profiles) run inside the request's
//!   command, so they are bounded by `timeout_ms`, and the reply is sent only after the
//!   store returned: an acknowledged write is committed. Each store call is bounded by a
//!   quarter of `timeout_ms`, and a call that finds the database unreachable is retried
//!   (3 attempts, 100 ms then 200 ms apart) as long as the retry starts within that same
//!   quarter: a refused or reset connection is tried again, a call that already waited its
//!   whole bound is not. So the whole fits in the request's bound and the player hears
//!   `UNAVAILABLE`, not `TIMEOUT`. Only the first call after the database goes away waits
//!   that long: once the store knows the database is unreachable, calls fail at once
//!   without touching it, and only the probe (below) checks whether it is back.
//! - **Writes nobody waits for** (a session's stats when it ends, a room's match record)
//!   are spawned here and tracked: at most [`WRITE_CONCURRENCY`] run at once, and
//!   shutdown waits for every one of them ([`Storage::flush`]) before closing the store.
//!   While the database is down they wait for it (up to [`WRITE_PATIENCE`]) instead of
//!   being dropped, unless the server is shutting down. Retrying a counter increment whose
//!   answer was lost may count it twice; not retrying would lose it more often.
//! - **The probe** pings the database every [`PROBE_EVERY`] and reports through the
//!   readiness hook, so `/readyz` says 503 while the database is unreachable and 200 again
//!   as soon as it answers; the store reconnects by itself.
//!
//! Infra floor: imports the config, the metrics, readiness and the error type.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rally_auth::RetryPolicy;
use rally_protocol::ErrorCode;
use rally_store::{Account, AccountId, KvEntry, Stats, Store, StoreConfig, StoreError};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::error::CommandError;
use crate::metrics::{DbCallMetric, Metrics, TaskKind, TaskMeter};
use crate::readiness::Dependency;

/// Background writes running at once; the others wait for a permit.
pub(crate) const WRITE_CONCURRENCY: usize = 8;
/// How often the readiness probe pings the database.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long a background write waits for an unreachable database to come back.
pub(crate) const WRITE_PATIENCE: Duration = Duration::from_secs(300);

/// The store configuration a server with `config` opens: its URL, and a quarter of
/// `timeout_ms` as the bound on every call (see the module docs).
pub fn store_config(config: &Config) -> StoreConfig {
    let mut store = StoreConfig::new(config.database_url.expose());
    store.timeout = call_bound(config);
    store
}

/// The bound on one store call: a quarter of `timeout_ms`, so that retries fit in one
/// request's bound.
fn call_bound(config: &Config) -> Duration {
    (config.timeout() / 4).max(Duration::from_millis(25))
}

/// Opens (creating a SQLite file if needed) and migrates the configured database.
pub async fn open_store(config: &Config) -> Result<Store, StoreError> {
    Store::open_with(store_config(config)).await
}

/// Applies pending migrations to the configured database without serving: `rally migrate`.
pub async fn migrate(config: &Config) -> Result<(), StoreError> {
    let store = Store::connect(store_config(config)).await?;
    let result = store.migrate().await;
    store.close().await;
    result
}

/// The error a player gets for a failed store call.
pub(crate) fn command_error(e: StoreError) -> CommandError {
    match e {
        StoreError::Unavailable { detail } => {
            tracing::debug!(%detail, "database unavailable");
            CommandError::new(
                ErrorCode::Unavailable,
                "the database is unavailable; try again later",
            )
        }
        e @ StoreError::Conflict { current } => CommandError {
            current_version: Some(current.unwrap_or(0)),
            ..CommandError::new(ErrorCode::Conflict, e.to_string())
        },
        StoreError::NotFound { what } => {
            CommandError::new(ErrorCode::NotFound, format!("no such {what}"))
        }
        e @ StoreError::Forbidden => CommandError::new(ErrorCode::Forbidden, e.to_string()),
        e @ StoreError::Invalid { .. } => {
            CommandError::new(ErrorCode::InvalidArgument, e.to_string())
        }
        StoreError::Other { detail } => {
            tracing::warn!(%detail, "storage error");
            CommandError::new(
                ErrorCode::Internal,
                "a storage error; see the server's logs",
            )
        }
    }
}

/// One duration series per operation, registered at start.
#[derive(Debug)]
struct Ops {
    login: DbCallMetric,
    account: DbCallMetric,
    stats: DbCallMetric,
    set_name: DbCallMetric,
    kv_get: DbCallMetric,
    kv_put: DbCallMetric,
    kv_delete: DbCallMetric,
    record_session: DbCallMetric,
    record_match: DbCallMetric,
    ping: DbCallMetric,
}

/// The open store and what the server runs around it. Cheap to share (`Arc`).
#[derive(Debug)]
pub(crate) struct Storage {
    store: Store,
    ops: Ops,
    /// Writes nobody waits for; [`Storage::flush`] waits for them.
    background: TaskTracker,
    /// [`WRITE_CONCURRENCY`] permits; never closed.
    permits: Arc<Semaphore>,
    writes: TaskMeter,
    probes: TaskMeter,
    /// No retry starts later than this after a call began: the call bound (a quarter of
    /// `timeout_ms`).
    retry_window: Duration,
    /// Cancelled when the flush at shutdown begins: background writes stop waiting for an
    /// unreachable database.
    flushing: CancellationToken,
    /// Set by the probe while its pings fail: the database is down, calls fail at once.
    /// (The store has its own such flag, but it cannot always tell "unreachable" from
    /// "busy" while another call is still trying to connect; the probe can.)
    down: AtomicBool,
}

impl Storage {
    pub(crate) fn new(store: Store, metrics: &Metrics, config: &Config) -> Storage {
        let op = |name: &str| metrics.db_call(name);
        Storage {
            store,
            ops: Ops {
                login: op("login"),
                account: op("account"),
                stats: op("stats"),
                set_name: op("set_name"),
                kv_get: op("kv_get"),
                kv_put: op("kv_put"),
                kv_delete: op("kv_delete"),
                record_session: op("record_session"),
                record_match: op("record_match"),
                ping: op("ping"),
            },
            background: TaskTracker::new(),
            permits: Arc::new(Semaphore::new(WRITE_CONCURRENCY)),
            writes: metrics.task_meter(TaskKind::Write),
            probes: metrics.task_meter(TaskKind::DbProbe),
            retry_window: call_bound(config),
            flushing: CancellationToken::new(),
            down: AtomicBool::new(false),
        }
    }

    /// Runs one store call, timed, retried while the database is unavailable (no retry
    /// starting past the retry window).
    async fn call<T, Fut>(
        &self,
        metric: &DbCallMetric,
        mut op: impl FnMut() -> Fut,
    ) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let deadline = tokio::time::Instant::now() + self.retry_window;
        RetryPolicy::SPEC
            .run(Some(deadline), StoreError::is_transient, |_| {
                // While the database is known to be down, fail at once: the probe, not a
                // player's request, is what waits to see whether it is back.
                let reachable = self.reachable();
                let call = reachable.then(|| metric.time(op()));
                async move {
                    match call {
                        Some(call) => call.await,
                        None => Err(StoreError::Unavailable {
                            detail: "the database is unreachable".into(),
                        }),
                    }
                }
            })
            .await
    }

    /// [`Storage::call`] for a background write: while the database is down, waits for it
    /// to come back (up to [`WRITE_PATIENCE`], and not past the start of the flush at
    /// shutdown) and tries again.
    async fn call_patiently<T, Fut>(
        &self,
        metric: &DbCallMetric,
        mut op: impl FnMut() -> Fut,
    ) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let give_up = tokio::time::Instant::now() + WRITE_PATIENCE;
        loop {
            match self.call(metric, &mut op).await {
                Err(e)
                    if e.is_transient()
                        && tokio::time::Instant::now() < give_up
                        && !self.flushing.is_cancelled() =>
                {
                    tokio::select! {
                        _ = self.back_up() => {}
                        _ = self.flushing.cancelled() => {}
                        _ = tokio::time::sleep_until(give_up) => {}
                    }
                }
                other => return other,
            }
        }
    }

    /// Whether calls may go to the database: neither the probe nor the store saw it down.
    fn reachable(&self) -> bool {
        !self.down.load(Ordering::Acquire) && self.store.is_reachable()
    }

    /// Completes once the database is believed reachable, at least a probe period from now.
    async fn back_up(&self) {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            if self.reachable() {
                return;
            }
        }
    }

    /// The account of a device id, created at its first login.
    pub(crate) async fn device_login(&self, device_id: &str) -> Result<Account, StoreError> {
        self.call(&self.ops.login, || self.store.device_login(device_id))
            .await
    }

    /// The account of an id the game's backend vouched for, created at its first login.
    pub(crate) async fn custom_login(&self, external_id: &str) -> Result<Account, StoreError> {
        self.call(&self.ops.login, || self.store.custom_login(external_id))
            .await
    }

    pub(crate) async fn account(&self, id: AccountId) -> Result<Account, StoreError> {
        self.call(&self.ops.account, || self.store.account(id))
            .await
    }

    pub(crate) async fn stats(&self, id: AccountId) -> Result<Stats, StoreError> {
        self.call(&self.ops.stats, || self.store.stats(id)).await
    }

    pub(crate) async fn set_display_name(
        &self,
        id: AccountId,
        name: &str,
    ) -> Result<(), StoreError> {
        self.call(&self.ops.set_name, || self.store.set_display_name(id, name))
            .await
    }

    /// `owner`'s entry as `reader` may see it.
    pub(crate) async fn kv_get_as(
        &self,
        reader: AccountId,
        owner: AccountId,
        key: &str,
    ) -> Result<Option<KvEntry>, StoreError> {
        self.call(&self.ops.kv_get, || {
            self.store.kv_get_as(reader, owner, key)
        })
        .await
    }

    /// A versioned write, retried while the database is unavailable. A retry that finds
    /// the version already moved on by one, with this very value, means the earlier
    /// attempt committed and only its answer was lost: that is a success, not a conflict.
    pub(crate) async fn kv_put(
        &self,
        owner: AccountId,
        key: &str,
        value: &serde_json::Value,
        expected: Option<u64>,
        public: bool,
    ) -> Result<u64, StoreError> {
        let mut attempts = 0;
        let result = self
            .call(&self.ops.kv_put, || {
                attempts += 1;
                self.store.kv_put(owner, key, value, expected, public)
            })
            .await;
        match result {
            Err(StoreError::Conflict { current: Some(v) })
                if attempts > 1 && Some(v) == expected.map_or(Some(1), |e| e.checked_add(1)) =>
            {
                match self.store.kv_get(owner, key).await {
                    Ok(Some(e))
                        if e.version == v && e.value == *value && e.public_read == public =>
                    {
                        Ok(v)
                    }
                    _ => Err(StoreError::Conflict { current: Some(v) }),
                }
            }
            other => other,
        }
    }

    /// A versioned delete; a retry that finds the entry gone means the earlier attempt
    /// deleted it.
    pub(crate) async fn kv_delete(
        &self,
        owner: AccountId,
        key: &str,
        expected: u64,
    ) -> Result<(), StoreError> {
        let mut attempts = 0;
        let result = self
            .call(&self.ops.kv_delete, || {
                attempts += 1;
                self.store.kv_delete(owner, key, expected)
            })
            .await;
        match result {
            Err(StoreError::Conflict { current: None }) if attempts > 1 => Ok(()),
            other => other,
        }
    }

    /// Counts a finished session of `play_ms`, in the background.
    pub(crate) fn record_session(self: &Arc<Self>, account: AccountId, play_ms: u64) {
        let this = self.clone();
        self.spawn_write(async move {
            let r = this.call_patiently(&this.ops.record_session, || {
                this.store.record_session(account, play_ms)
            })
            .await;
            if let Err(e) = r {
                tracing::warn!(account = %account, play_ms, error = %e, "a session's stats were not recorded");
            }
        });
    }

    /// Records a finished match (and a game played for each player), in the background.
    pub(crate) fn record_match(
        self: &Arc<Self>,
        kind: String,
        players: Vec<AccountId>,
        started_at: SystemTime,
        duration_ms: u64,
        result: serde_json::Value,
    ) {
        let this = self.clone();
        self.spawn_write(async move {
            let r = this.call_patiently(&this.ops.record_match, || {
                this.store
                    .record_match(&kind, &players, started_at, duration_ms, &result)
            })
            .await;
            match r {
                Ok(id) => tracing::debug!(match_id = %id, %kind, players = players.len(), "match recorded"),
                Err(e) => tracing::warn!(%kind, players = players.len(), error = %e, "a match was not recorded"),
            }
        });
    }

    fn spawn_write(&self, write: impl Future<Output = ()> + Send + 'static) {
        let permits = self.permits.clone();
        let meter = self.writes.clone();
        self.background.spawn(async move {
            // The semaphore is never closed, so a permit always comes.
            let _permit = permits.acquire_owned().await;
            let _task = meter.start();
            write.await;
        });
    }

    /// Background writes spawned and not finished.
    pub(crate) fn pending_writes(&self) -> usize {
        self.background.len()
    }

    /// Waits, up to `bound`, for every background write; returns how many were still
    /// running when it gave up (0: all flushed).
    pub(crate) async fn flush(&self, bound: Duration) -> usize {
        self.flushing.cancel();
        self.background.close();
        let done = tokio::time::timeout(bound, self.background.wait()).await;
        // Writes spawned later (a session forced closed after the grace) still run.
        self.background.reopen();
        match done {
            Ok(()) => 0,
            Err(_) => self.background.len(),
        }
    }

    /// Waits for the calls in flight and closes the database.
    pub(crate) async fn close(&self) {
        self.store.close().await;
    }

    /// Pings the database every [`PROBE_EVERY`] until `stop`, keeping `dependency` (and
    /// so `/readyz`) up to date. State changes are logged once each.
    pub(crate) async fn probe(self: Arc<Self>, dependency: Dependency, stop: CancellationToken) {
        let _task = self.probes.start();
        let mut healthy = true;
        let mut every = tokio::time::interval(PROBE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => {}
            }
            let result = tokio::select! {
                _ = stop.cancelled() => break,
                r = self.ops.ping.time(self.store.ping()) => r,
            };
            match result {
                Ok(()) if !healthy => {
                    healthy = true;
                    self.down.store(false, Ordering::Release);
                    dependency.healthy();
                    tracing::info!("database reachable again; ready");
                }
                Err(e) if e.is_transient() && healthy => {
                    healthy = false;
                    self.down.store(true, Ordering::Release);
                    dependency.unhealthy("unreachable");
                    tracing::warn!(error = %e, "database unreachable; not ready until it answers");
                }
                _ => {}
            }
        }
    }
}
