//! The one error type of the store, and how a driver error is sorted into it.
//!
//! Callers act on the kind, not the text: [`StoreError::Unavailable`] is retried (SPEC.md
//! section 2: timeouts and connection resets) and reported as "try again later", the rest
//! go back to the player as they are. The sorting lives here, once, for both backends.

use sqlx::error::ErrorKind;

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database did not serve the call in time: it is unreachable (connection refused,
    /// closed or reset), restarting, out of connections or disk I/O, busy past the busy
    /// timeout, or the call's timeout passed. Worth retrying; the store reconnects by itself.
    ///
    /// A write that fails this way may still have been committed (the answer was lost, not
    /// the write): a retried versioned write then reports [`StoreError::Conflict`].
    #[error("database unavailable: {detail}")]
    Unavailable {
        /// What the driver or the timeout said, for logs.
        detail: String,
    },
    /// A versioned write lost: the entry's version is not the one the caller expected.
    #[error("version conflict: the current version is {}", match current { Some(v) => v.to_string(), None => "none (no such entry)".to_string() })]
    Conflict {
        /// The entry's version when the write was refused; `None` when it does not exist.
        current: Option<u64>,
    },
    /// The thing named does not exist (an account, mostly).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `"account"`.
        what: &'static str,
    },
    /// The reader may not see this entry: it belongs to another player and is not public-read.
    #[error("forbidden: not the owner and the entry is not public-read")]
    Forbidden,
    /// An argument (or the database URL) was refused before touching the database.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The name of the argument or setting, e.g. `"device_id"` or `"database_url"`.
        field: &'static str,
        /// What is wrong with it, and what would be accepted.
        reason: String,
    },
    /// Anything else: a schema or migration problem, undecodable data, a closed store.
    /// Not worth retrying.
    #[error("storage error: {detail}")]
    Other {
        /// What went wrong, for logs.
        detail: String,
    },
}

impl StoreError {
    /// Whether the same call may succeed if tried again later (the retry policy's test).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn other(detail: impl Into<String>) -> Self {
        StoreError::Other {
            detail: detail.into(),
        }
    }

    pub(crate) fn unavailable(detail: impl Into<String>) -> Self {
        StoreError::Unavailable {
            detail: detail.into(),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(e) => StoreError::unavailable(format!("I/O: {e}")),
            // A certificate or TLS setup problem, or TLS asked of a build without it (see
            // the crate's `tls` feature): retrying will not fix it. (A connection reset
            // during the handshake is an I/O error.)
            sqlx::Error::Tls(e) => StoreError::other(format!("TLS: {e}")),
            // A broken stream (e.g. the server died mid-message) looks like this.
            sqlx::Error::Protocol(e) => StoreError::unavailable(format!("protocol: {e}")),
            sqlx::Error::PoolTimedOut => {
                StoreError::unavailable("no connection could be had before the timeout")
            }
            sqlx::Error::WorkerCrashed => StoreError::unavailable("the SQLite worker thread died"),
            sqlx::Error::PoolClosed => StoreError::other("the store is closed"),
            sqlx::Error::RowNotFound => StoreError::NotFound { what: "row" },
            sqlx::Error::Database(e) => from_database(e.as_ref()),
            sqlx::Error::Migrate(e) => match *e {
                sqlx::migrate::MigrateError::Execute(inner)
                | sqlx::migrate::MigrateError::ExecuteMigration(inner, _) => inner.into(),
                other => StoreError::other(format!("migrations: {other}")),
            },
            other => StoreError::other(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        sqlx::Error::Migrate(Box::new(error)).into()
    }
}

/// Sorts an error the database server (or SQLite) reported.
fn from_database(e: &dyn sqlx::error::DatabaseError) -> StoreError {
    if let ErrorKind::ForeignKeyViolation = e.kind() {
        // Every foreign key in the schema points at an account (match_players -> matches is
        // written in the same transaction as the match).
        return StoreError::NotFound { what: "account" };
    }
    let code = e.code().map(|c| c.into_owned()).unwrap_or_default();
    let transient = if e
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        // A SQLSTATE (often all digits, so told apart by type, not by shape).
        // 08: connection exception; 53: insufficient resources; 57P01-03: shutting down or
        // starting up; 57014: statement_timeout; 55P03: lock timeout; 40001/40P01:
        // serialization failure or deadlock.
        code.starts_with("08")
            || code.starts_with("53")
            || matches!(
                code.as_str(),
                "57P01" | "57P02" | "57P03" | "57014" | "55P03" | "40001" | "40P01"
            )
    } else {
        // SQLite: a numeric (extended) result code whose low byte is the primary code.
        // BUSY, LOCKED, IOERR, FULL, CANTOPEN, PROTOCOL.
        code.parse::<i32>()
            .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 10 | 13 | 14 | 15))
    };
    let detail = if code.is_empty() {
        e.message().to_string()
    } else {
        format!("{} (code {code})", e.message())
    };
    if transient {
        StoreError::Unavailable { detail }
    } else {
        StoreError::Other { detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_is_transient() {
        assert!(StoreError::unavailable("x").is_transient());
        assert!(!StoreError::Conflict { current: Some(1) }.is_transient());
        assert!(!StoreError::NotFound { what: "account" }.is_transient());
        assert!(!StoreError::Forbidden.is_transient());
        assert!(!StoreError::invalid("key", "empty").is_transient());
        assert!(!StoreError::other("x").is_transient());
    }

    #[test]
    fn driver_errors_sort_by_cause() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(StoreError::from(sqlx::Error::Io(refused)).is_transient());
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!StoreError::from(sqlx::Error::PoolClosed).is_transient());
    }

    #[test]
    fn messages_name_the_field_and_version() {
        let e = StoreError::invalid("device_id", "too short");
        assert_eq!(e.to_string(), "invalid device_id: too short");
        let e = StoreError::Conflict { current: Some(3) };
        assert_eq!(e.to_string(), "version conflict: the current version is 3");
        let e = StoreError::Conflict { current: None };
        assert!(e.to_string().contains("no such entry"));
    }
}
