//! What a store is opened with. The server fills this from its own config (`database_url`,
//! `timeout_ms`); the defaults here are the ones a bare `rally serve` gets.

use std::time::Duration;

/// The database a store opens when nothing else is configured: `rally.db` in the working
/// directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://rally.db";

/// How to open a [`Store`](crate::Store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `sqlite://PATH` (relative to the working directory; `sqlite:///abs/path` for an
    /// absolute one) or `postgres://` / `postgresql://` URL.
    pub database_url: String,
    /// The bound on every call, as a whole and on waiting for a connection. Each statement
    /// gets three quarters of it (PostgreSQL's `statement_timeout`, SQLite's busy timeout),
    /// so the database itself refuses a stuck statement before the call is cut off. A call
    /// that runs out of it fails with [`StoreError::Unavailable`](crate::StoreError::Unavailable).
    pub timeout: Duration,
    /// Connections kept at most. SQLite serializes writers anyway; this is for readers and
    /// for PostgreSQL.
    pub max_connections: u32,
    /// The largest key-value value accepted, in bytes of its JSON text.
    pub max_value_bytes: usize,
    /// The largest match result accepted, in bytes of its JSON text.
    pub max_result_bytes: usize,
}

impl StoreConfig {
    /// Defaults for everything but the URL.
    pub fn new(database_url: impl Into<String>) -> Self {
        StoreConfig {
            database_url: database_url.into(),
            timeout: Duration::from_secs(5),
            max_connections: 8,
            max_value_bytes: 16 * 1024,
            max_result_bytes: 64 * 1024,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::new(DEFAULT_DATABASE_URL)
    }
}
