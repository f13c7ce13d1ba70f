//! Rally's storage layer: accounts, profiles, per-account stats, a per-player key-value
//! store and match results, on an embedded SQLite file (the default, `sqlite://rally.db`)
//! or on PostgreSQL (`postgres://...`), behind one async API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rally_store::StoreError> {
//! use rally_store::Store;
//! use serde_json::json;
//!
//! let store = Store::open("sqlite://rally.db").await?; // created and migrated if needed
//! let me = store.device_login("6f1c2a4e-9d0b-4c55-8a1e-3b7d2f9e0c11").await?;
//! let v1 = store.kv_put(me.id, "save", &json!({"level": 3}), None, false).await?;
//! let v2 = store.kv_put(me.id, "save", &json!({"level": 4}), Some(v1), false).await?;
//! assert_eq!(v2, v1 + 1);
//! store.close().await; // waits for calls in flight
//! # Ok(())
//! # }
//! ```
//!
//! # Guarantees
//! - **Durable acknowledgements.** A write returns `Ok` only after its commit: SQLite runs
//!   in WAL mode with `synchronous=FULL` (the WAL is fsynced at every commit), PostgreSQL
//!   with its default `synchronous_commit`.
//! - **Bounded calls.** Every call finishes within [`StoreConfig::timeout`]: the pool's
//!   acquire timeout, PostgreSQL's `statement_timeout`, SQLite's busy timeout and a timer
//!   around the whole call. An unreachable database is [`StoreError::Unavailable`], which
//!   [`StoreError::is_transient`] tells the retry policy to retry.
//! - **Self-healing, failing fast meanwhile.** Connections are checked before use and
//!   reopened as needed, so after a database restart the next call succeeds without
//!   reopening the store. While the database is unreachable, one call at a time waits for
//!   it (up to the timeout) and the others fail at once.
//! - **Atomic writes.** Versioned key-value writes are single conditional statements; logins
//!   and match results are transactions.
//! - **One schema history.** Versioned migrations are embedded and applied by
//!   [`Store::open`] (or [`migrate`], for `rally migrate`).
//!
//! # Features
//! - `tls`: TLS to PostgreSQL (`?sslmode=require` and stricter) with rustls (ring, webpki
//!   roots). Off by default to keep the build small; without it a URL that requires TLS
//!   fails with a clear, non-transient error.
//!
//! # Layout
//! - [`config`]: [`StoreConfig`], what a store is opened with, and the defaults.
//! - [`error`]: [`StoreError`], and how driver errors are sorted into it.
//! - `backend`: choosing SQLite or PostgreSQL from the URL, their pool settings, and why
//!   the two pools sit behind an enum rather than sqlx's `Any`.
//! - `migrations`: the embedded per-backend migrations.
//! - `store`: the [`Store`] handle: open, migrate, the per-call bound, close.
//! - `model`: the values handed out ([`Account`], [`Stats`], [`KvEntry`], [`MatchRecord`]).
//! - `validate`: argument checks, run before any database work.
//! - `accounts`: device and custom login (find or create), profile.
//! - `stats`: sessions, play time, games played.
//! - `kv`: the versioned key-value store and its read permission.
//! - `matches`: recording match results and reading a player's recent ones.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod accounts;
mod backend;
pub mod config;
pub mod error;
mod kv;
mod matches;
mod migrations;
mod model;
mod stats;
mod store;
mod validate;

pub use backend::Backend;
pub use config::{redacted_url, StoreConfig, DEFAULT_DATABASE_URL};
pub use error::StoreError;
pub use matches::MAX_RECENT_MATCHES;
pub use model::{Account, AccountId, KvEntry, MatchId, MatchRecord, Stats};
pub use store::{migrate, Store};
