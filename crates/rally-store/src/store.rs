//! The [`Store`] handle: opening, migrating, the bound every call runs under, and closing.
//!
//! Every public operation goes through [`Store::call`], which
//! - refuses calls once [`Store::close`] has begun, and counts the ones in flight so that
//!   `close` can wait for them (a write acknowledged to a player is never cut off by shutdown);
//! - bounds the whole call (waiting for a connection, every statement, the commit) by the
//!   configured timeout, on top of the pool's acquire timeout and the backend's own
//!   statement or busy timeout, so no call hangs when the database does;
//! - fails fast while the database is unreachable: once a call has failed with no
//!   connection left in the pool, only one call at a time (the probe) waits for the database
//!   (up to the timeout, reconnecting as soon as it is back), and the others fail at once
//!   with [`StoreError::Unavailable`] instead of each waiting out the timeout. The first call
//!   that gets an answer from the database ends that mode.
//!
//! A write returns `Ok` only after its commit returned: on SQLite with `synchronous=FULL`
//! that means the WAL was fsynced; on PostgreSQL, the commit's WAL record was flushed (with
//! the server's default `synchronous_commit=on`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::backend::{self, on_pool, Backend, Pool};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::migrations;

/// More calls than can ever be in flight at once; `close` waits for all of these permits.
const MAX_IN_FLIGHT: u32 = 1 << 24;

/// A handle on the database: accounts, profiles, stats, the key-value store, matches.
///
/// Cheap to clone; clones share one connection pool. Every call is bounded by
/// [`StoreConfig::timeout`]; see [`StoreError`] for what a failure means.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    backend: Backend,
    /// The configuration the store was opened with (limits and the timeout).
    config: StoreConfig,
    /// One permit per call in flight; `close` takes them all to wait for those calls.
    in_flight: Semaphore,
    /// Set when `close` begins, so later calls are refused with a clear error.
    closing: AtomicBool,
    /// Set when a call failed as unavailable with no connection in the pool (the database
    /// cannot be reached); cleared by the first call the database answers.
    unreachable: AtomicBool,
    /// Held by the one call that may wait for an unreachable database.
    probing: AtomicBool,
    /// SQLite's single writer, queued in this process: one permit.
    sqlite_writer: Semaphore,
}

/// The right to be the call that checks whether an unreachable database is back; given
/// up when dropped.
struct Probe<'a>(&'a AtomicBool);

impl<'a> Probe<'a> {
    fn take(flag: &'a AtomicBool) -> Option<Probe<'a>> {
        // `then`, not `then_some`: a Probe built for nothing would release the flag when
        // dropped.
        (!flag.swap(true, Ordering::AcqRel)).then(|| Probe(flag))
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Shows the backend and the configuration (password hidden), not the pool's connect
/// options, which hold the password in clear.
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .field("config", &self.inner.config)
            .field("closing", &self.inner.closing.load(Ordering::Relaxed))
            .field(
                "unreachable",
                &self.inner.unreachable.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl Store {
    /// Opens `database_url` with default settings and applies pending migrations.
    pub async fn open(database_url: &str) -> Result<Store, StoreError> {
        Store::open_with(StoreConfig::new(database_url)).await
    }

    /// Opens the configured database and applies pending migrations.
    pub async fn open_with(config: StoreConfig) -> Result<Store, StoreError> {
        let store = Store::connect(config).await?;
        if let Err(e) = store.migrate().await {
            store.close().await;
            return Err(e);
        }
        Ok(store)
    }

    /// Opens the configured database without migrating it (see [`Store::migrate`]).
    ///
    /// A SQLite file is created if missing and checked (directory, writability, WAL) here;
    /// a PostgreSQL server is first contacted by the first call.
    pub async fn connect(config: StoreConfig) -> Result<Store, StoreError> {
        let backend = Backend::of_url(&config.database_url)?;
        let pool = backend::open(&config).await?;
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                backend,
                config,
                in_flight: Semaphore::new(MAX_IN_FLIGHT as usize),
                closing: AtomicBool::new(false),
                unreachable: AtomicBool::new(false),
                probing: AtomicBool::new(false),
                sqlite_writer: Semaphore::new(1),
            }),
        })
    }

    /// Applies the migrations the database has not had yet; a no-op when it is up to date.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.call(migrations::run(&self.inner.pool)).await
    }

    /// Which backend this store runs on.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// False from the moment a call found the database unreachable until a call gets an
    /// answer again (see the module docs). A caller with its own probe (the server pings
    /// every second) can use it to fail at once instead of making a call that would wait.
    pub fn is_reachable(&self) -> bool {
        !self.inner.unreachable.load(Ordering::Acquire)
    }

    /// Checks that the database answers (for a readiness probe).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(async {
            on_pool!(&self.inner.pool, |pool| {
                sqlx::query("SELECT 1").execute(pool).await?;
            });
            Ok(())
        })
        .await
    }

    /// Stops taking calls, waits for the calls in flight to finish (each is bounded by the
    /// timeout), then closes every connection. For SQLite this also checkpoints the WAL
    /// into the database file. Calling it again is harmless.
    pub async fn close(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        // Every call holds one permit; holding them all means none is running. Err means
        // an earlier close already drained and closed the semaphore.
        if let Ok(all) = self.inner.in_flight.acquire_many(MAX_IN_FLIGHT).await {
            all.forget();
            self.inner.in_flight.close();
        }
        on_pool!(&self.inner.pool, |pool| pool.close().await);
        tracing::debug!(backend = ?self.inner.backend, "store closed");
    }

    /// Runs one store operation under the store's rules: refused after `close`, counted
    /// while in flight, bounded by the timeout.
    pub(crate) async fn call<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(StoreError::other("the store is closed"));
        }
        let _permit = self
            .inner
            .in_flight
            .try_acquire()
            .map_err(|_| StoreError::other("the store is closed"))?;
        let _probe = if self.inner.unreachable.load(Ordering::Acquire) {
            Some(Probe::take(&self.inner.probing).ok_or_else(|| {
                StoreError::unavailable(
                    "the database is unreachable (another call is checking whether it is back)",
                )
            })?)
        } else {
            None
        };
        let timeout = self.inner.config.timeout;
        let result = match tokio::time::timeout(timeout, op).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::unavailable(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
        };
        match &result {
            // No connection left (every pooled one failed its check and no new one could be
            // opened): the database is unreachable, not merely slow or busy.
            Err(e) if e.is_transient() => {
                let connections = on_pool!(&self.inner.pool, |pool| pool.size());
                if connections == 0 && !self.inner.unreachable.swap(true, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "database unreachable; failing fast until it answers");
                }
            }
            _ => {
                if self.inner.unreachable.swap(false, Ordering::AcqRel) {
                    tracing::info!("database reachable again");
                }
            }
        }
        result
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Waits for this process's turn to write to SQLite. SQLite lets one writer in at a
    /// time and makes the others poll (sleeping up to 100 ms between tries); queueing them
    /// here, first come first served, keeps the polling for writers in other processes.
    /// The wait is part of the call, so bounded by its timeout.
    pub(crate) async fn sqlite_write_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed, so this is always Some.
        self.inner.sqlite_writer.acquire().await.ok()
    }
}

/// Applies pending migrations to `database_url` and closes it: what `rally migrate` does.
pub async fn migrate(database_url: &str) -> Result<(), StoreError> {
    let store = Store::connect(StoreConfig::new(database_url)).await?;
    let result = store.migrate().await;
    store.close().await;
    result
}
