//! The two backends: picking one from the URL, opening its pool with the settings that
//! make it durable and bounded, and running one body of code on whichever is open.
//!
//! # Why two pools behind an enum, not sqlx's `Any`
//!
//! `Any` erases the backend at run time, and with it what this crate needs from each one:
//! typed connect options (SQLite's `journal_mode`, `synchronous`, busy timeout; PostgreSQL's
//! `statement_timeout`, which `Any` could only smuggle through the URL or an `after_connect`
//! hook), native column types (JSONB on PostgreSQL; `Any` has no JSON type at all) and its
//! own transaction start (SQLite's `BEGIN IMMEDIATE`). An enum keeps all of that, and
//! [`on_pool!`] keeps the code single: each operation's body is written once and expanded
//! once per backend, so both compile from the same SQL text and each is type-checked
//! against its own driver. The SQL sticks to what both dialects share (`$1` placeholders,
//! which sqlx's SQLite driver binds by number, `ON CONFLICT`, `RETURNING`, `LIMIT`); only
//! the schema differs, in per-backend migrations (`migrations/sqlite`, `migrations/postgres`).
//! The cost is that each operation is compiled twice, which for a data layer this size is
//! small.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

use crate::config::StoreConfig;
use crate::error::StoreError;

/// Which database a [`Store`](crate::Store) runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend a `database_url` asks for, or why it asks for none.
    pub fn of_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::invalid(
                "database_url",
                "must start with sqlite://, postgres:// or postgresql://",
            ))
        }
    }
}

/// An open connection pool of either backend.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the open pool, whichever backend it is. The body is
/// expanded once per backend, so it must compile against both drivers.
macro_rules! on_pool {
    ($pool_enum:expr, |$pool:ident| $body:expr) => {
        match $pool_enum {
            $crate::backend::Pool::Sqlite($pool) => $body,
            $crate::backend::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// [`on_pool!`] for a body that writes. On SQLite it first waits for the store's write turn
/// (see `Store::sqlite_write_turn`), so the process's writers queue in order instead of
/// polling SQLite's lock. In a quick measurement on a 2-core machine, 16 tasks writing at
/// once went from about 700 to 1,300-2,200 commits per second (one task alone: 1,600-3,300).
macro_rules! on_pool_write {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store.pool() {
            $crate::backend::Pool::Sqlite($pool) => {
                let _turn = $store.sqlite_write_turn().await;
                $body
            }
            $crate::backend::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool_write;

/// Starting a transaction that will write, the way each backend wants it.
pub(crate) trait WritePool {
    /// The pool's database.
    type Db: sqlx::Database;

    /// Begins a write transaction. SQLite takes the write lock at once (`BEGIN IMMEDIATE`,
    /// waiting up to the busy timeout), so the transaction can never fail later with a
    /// stale read snapshot; PostgreSQL's row locks need nothing special.
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send;
}

impl WritePool for SqlitePool {
    type Db = sqlx::Sqlite;

    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send {
        begin_to_completion(self.clone(), |pool| async move {
            pool.begin_with("BEGIN IMMEDIATE").await
        })
    }
}

impl WritePool for PgPool {
    type Db = sqlx::Postgres;

    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send {
        begin_to_completion(self.clone(), |pool| async move { pool.begin().await })
    }
}

/// Runs a `BEGIN` in its own task, so that it always completes even when the caller is
/// cancelled (a call cut off by the store's timeout). A `BEGIN` cancelled in flight would
/// leave its connection inside a transaction that no `Transaction` value owns, and sqlx
/// would hand it back to the pool that way: every later `BEGIN` on it fails ("non-zero
/// transaction depth"), and on SQLite the orphaned `BEGIN IMMEDIATE` holds the write lock
/// for good, so every other writer times out. Completed in its task, the transaction is
/// then dropped if nobody waits for it, which rolls it back and frees the lock.
async fn begin_to_completion<P, Db, F, Fut>(
    pool: P,
    begin: F,
) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error>
where
    P: Send + 'static,
    Db: sqlx::Database,
    F: FnOnce(P) -> Fut,
    Fut: std::future::Future<Output = Result<sqlx::Transaction<'static, Db>, sqlx::Error>>
        + Send
        + 'static,
{
    match tokio::spawn(begin(pool)).await {
        Ok(result) => result,
        Err(e) => Err(sqlx::Error::Io(std::io::Error::other(format!(
            "the task beginning a transaction failed: {e}"
        )))),
    }
}

/// Opens the pool `config` names. SQLite's file is created (and checked) here; PostgreSQL
/// is connected lazily, by the first call (the migrations, when opened through
/// [`Store::open`](crate::Store::open)).
pub(crate) async fn open(config: &StoreConfig) -> Result<Pool, StoreError> {
    match Backend::of_url(&config.database_url)? {
        Backend::Sqlite => open_sqlite(config).await.map(Pool::Sqlite),
        Backend::Postgres => open_postgres(config).map(Pool::Postgres),
    }
}

async fn open_sqlite(config: &StoreConfig) -> Result<SqlitePool, StoreError> {
    let url = &config.database_url;
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err(StoreError::invalid(
            "database_url",
            "an in-memory SQLite database loses every write at exit; name a file",
        ));
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::invalid("database_url", e.to_string()))?
        .create_if_missing(true)
        // WAL: readers never block the writer. synchronous=FULL: a commit returns only after
        // the WAL is fsynced, so an acknowledged write survives a crash or power loss (NORMAL
        // would only survive a crash of the process).
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(statement_bound(config.timeout))
        .foreign_keys(true);
    check_sqlite_dir(options.get_filename())?;

    // One connection first, so a file that cannot be opened or written is a clear error
    // here rather than a pool timeout on the first call.
    let path = options.get_filename().display().to_string();
    let cannot_open = |e: sqlx::Error| {
        StoreError::invalid(
            "database_url",
            format!("cannot open the SQLite database {path}: {e}"),
        )
    };
    // Another process creating the same file at this moment would make the switch to WAL
    // fail with `database is locked`: take turns.
    let _setup = sqlite_setup_lock(options.get_filename()).await?;
    let mut conn = options.connect().await.map_err(cannot_open)?;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .map_err(cannot_open)?;
    // A write (the header's user_version, rewritten as it is), so a read-only file or
    // directory shows up now: SQLite opens those read-only without a word, and WAL needs
    // its -wal and -shm files beside the database.
    let user_version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut conn)
        .await
        .map_err(cannot_open)?;
    sqlx::query(&format!("PRAGMA user_version = {user_version}"))
        .execute(&mut conn)
        .await
        .map_err(cannot_open)?;
    conn.close().await.map_err(cannot_open)?;
    drop(_setup);
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::invalid(
            "database_url",
            format!("{path}: SQLite could not switch to WAL mode (journal_mode is {mode}); use a local file system"),
        ));
    }
    tracing::debug!(%path, "SQLite database open");

    Ok(SqlitePoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .acquire_timeout(config.timeout)
        .connect_lazy_with(options))
}

/// Refuses a database path whose directory is missing or not a directory, naming it.
fn check_sqlite_dir(file: &Path) -> Result<(), StoreError> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(StoreError::invalid(
            "database_url",
            format!(
                "{} is not a directory, so {} cannot be created in it",
                dir.display(),
                file.display()
            ),
        )),
        Err(e) => Err(StoreError::invalid(
            "database_url",
            format!(
                "directory {} of {}: {e} (Rally creates the file, not its directory)",
                dir.display(),
                file.display()
            ),
        )),
    }
}

fn open_postgres(config: &StoreConfig) -> Result<PgPool, StoreError> {
    let statement_ms = millis(statement_bound(config.timeout));
    let idle_ms = millis(config.timeout);
    let options = PgConnectOptions::from_str(&config.database_url)
        .map_err(|e| StoreError::invalid("database_url", e.to_string()))?
        .application_name("rally")
        // The server cancels a statement (or an abandoned transaction) that outlives the
        // call's bound, so a stuck query frees its locks and its connection by itself.
        .options([
            ("statement_timeout", statement_ms),
            ("idle_in_transaction_session_timeout", idle_ms),
        ]);
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .acquire_timeout(config.timeout)
        // A pooled connection is pinged before use: after a server restart the dead ones are
        // dropped and replaced instead of failing one call each.
        .test_before_acquire(true)
        .connect_lazy_with(options))
}

/// How long one statement may wait (on SQLite's write lock, or run on PostgreSQL): three
/// quarters of the call's timeout. The database then gives up by itself before the call's
/// own timer cuts the call off, so a call that failed this way has certainly not written;
/// only a call cut off by the timer (e.g. a server that stopped answering) leaves the
/// outcome of its last statement unknown.
pub(crate) fn statement_bound(timeout: Duration) -> Duration {
    (timeout * 3 / 4).max(Duration::from_millis(1))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// An exclusive lock on `<database>.lock`, held until the returned file drops (the kernel
/// releases it if the process dies): processes setting up one SQLite file take turns, for
/// its creation and switch to WAL (which SQLite refuses with `database is locked`, not
/// waiting, while another connection makes the same switch) and for its migrations. Not the database file itself: SQLite
/// locks that with POSIX record locks, which any other descriptor of the same file closing
/// in this process would release. Nothing for an in-memory database. The wait runs on a
/// blocking thread; the store's call bound limits it like any other call.
pub(crate) async fn sqlite_setup_lock(
    database: &std::path::Path,
) -> Result<Option<std::fs::File>, StoreError> {
    let name = database.as_os_str();
    if name.is_empty() || name == ":memory:" {
        return Ok(None);
    }
    let mut path = name.to_owned();
    path.push(".lock");
    let locked = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await;
    match locked {
        Ok(Ok(file)) => Ok(Some(file)),
        Ok(Err(e)) => Err(StoreError::Other {
            detail: format!("could not lock the database for its setup: {e}"),
        }),
        Err(e) => Err(StoreError::Other {
            detail: format!("the setup lock's thread failed: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::of_url("sqlite://rally.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::of_url("postgres://u:p@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::of_url("postgresql://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(matches!(
            Backend::of_url("mysql://h/db"),
            Err(StoreError::Invalid {
                field: "database_url",
                ..
            })
        ));
    }

    /// The durability settings are per connection, so they are checked on a pooled one.
    #[tokio::test]
    async fn sqlite_connections_are_durable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let mut config = StoreConfig::new(url);
        config.timeout = Duration::from_millis(1000);
        let Pool::Sqlite(pool) = open(&config).await.expect("open") else {
            panic!("not sqlite");
        };
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&pool)
            .await
            .expect("pragma");
        assert_eq!(sync, 2, "synchronous=FULL");
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&pool)
            .await
            .expect("pragma");
        assert_eq!(busy, 750, "three quarters of the call's timeout");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&pool)
            .await
            .expect("pragma");
        assert_eq!(fk, 1);
        pool.close().await;
    }
}
