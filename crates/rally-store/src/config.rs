//! What a store is opened with. The server fills this from its own config (`database_url`,
//! `timeout_ms`); the defaults here are the ones a bare `rally serve` gets.

use std::fmt;
use std::time::Duration;

/// The database a store opens when nothing else is configured: `rally.db` in the working
/// directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://rally.db";

/// How to open a [`Store`](crate::Store). Its `Debug` output hides the URL's password.
#[derive(Clone, PartialEq, Eq)]
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

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("database_url", &redacted_url(&self.database_url))
            .field("timeout", &self.timeout)
            .field("max_connections", &self.max_connections)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("max_result_bytes", &self.max_result_bytes)
            .finish()
    }
}

/// `url` with the password (if any) replaced by `***`, for logs.
pub fn redacted_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
        .map_or(url.len(), |i| scheme_end + i);
    let authority = &url[scheme_end..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &authority[..colon],
            &url[scheme_end + at..]
        ),
        _ => url.to_string(),
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::new(DEFAULT_DATABASE_URL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redacted_url("postgres://rally:s3cret@db:5432/rally?sslmode=require"),
            "postgres://rally:***@db:5432/rally?sslmode=require"
        );
        assert_eq!(
            redacted_url("postgres://rally@db/rally"),
            "postgres://rally@db/rally"
        );
        assert_eq!(redacted_url("sqlite://rally.db"), "sqlite://rally.db");
        let config = StoreConfig::new("postgresql://u:p%40ss@h/db");
        let shown = format!("{config:?}");
        assert!(!shown.contains("p%40ss"), "{shown}");
    }
}
