//! Test databases, for the storage crate's own tests and the server's: a SQLite file in a
//! fresh temporary directory, or a fresh schema of the PostgreSQL named by
//! [`POSTGRES_URL`] (`scripts/postgres.sh` prints it), per test, so tests running at once
//! never see each other's rows.
//!
//! This module needs only `rally-store`, so that crate's tests use it with the `server`
//! feature off (`rally-store` cannot depend on the server, which depends on it).
//!
//! Without [`POSTGRES_URL`] the PostgreSQL variants pass after printing one
//! `rally-testkit: skipped ...` line each (`scripts/test.sh` counts them), unless
//! [`REQUIRE_POSTGRES`]`=1` (CI), which makes them fail instead.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rally_store::{Store, StoreConfig};
use sqlx::Connection as _;

/// The variable naming the test PostgreSQL (`scripts/postgres.sh` prints it).
pub const POSTGRES_URL: &str = "RALLY_TEST_POSTGRES_URL";
/// Set to `1` (CI) to fail, rather than skip, PostgreSQL tests without [`POSTGRES_URL`].
pub const REQUIRE_POSTGRES: &str = "RALLY_REQUIRE_POSTGRES";
/// The command that stops (`... stop`) and starts (`... start`) the test PostgreSQL.
pub const PG_CTL: &str = "RALLY_TEST_PG_CTL";
/// What [`skip`] prints at the start of its line; `scripts/test.sh` counts these lines.
pub const SKIP_MARK: &str = "rally-testkit: skipped";

/// One test's database.
#[derive(Debug)]
pub struct TestDb {
    /// The URL a server or store opens (`database_url`).
    pub url: String,
    /// The SQLite file, for file-level checks; `None` on PostgreSQL.
    pub sqlite_path: Option<PathBuf>,
    /// Keeps the SQLite directory until the test ends.
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database and schema to drop at the end.
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A SQLite file (not yet created) in a new temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("rally.db");
        TestDb {
            url: format!("sqlite://{}", path.display()),
            sqlite_path: Some(path),
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A fresh schema of the test PostgreSQL, or `None` (after [`skip`]) when
    /// [`POSTGRES_URL`] is not set; with [`REQUIRE_POSTGRES`]`=1` that panics instead.
    pub async fn postgres() -> Option<TestDb> {
        let Some(base) = postgres_url() else {
            skip("a PostgreSQL test");
            return None;
        };
        let schema = unique_name("t");
        let mut admin = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("connecting to {POSTGRES_URL}={base}: {e}"));
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .expect("create the test schema");
        admin.close().await.expect("close");
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(TestDb {
            url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
            sqlite_path: None,
            _dir: None,
            postgres: Some((base, schema)),
        })
    }

    /// SQLite, and PostgreSQL when configured: the backends a storage test runs on.
    pub async fn both() -> Vec<TestDb> {
        let mut dbs = vec![TestDb::sqlite()];
        dbs.extend(TestDb::postgres().await);
        dbs
    }

    /// `sqlite` or `postgres`, for messages.
    pub fn backend(&self) -> &'static str {
        if self.postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// The store's default configuration for this database, with a timeout short enough
    /// that a hang fails the test quickly.
    pub fn store_config(&self) -> StoreConfig {
        let mut config = StoreConfig::new(self.url.clone());
        config.timeout = Duration::from_secs(10);
        config
    }

    /// Opens (and migrates) a store on this database with [`TestDb::store_config`].
    pub async fn open_store(&self) -> Store {
        Store::open_with(self.store_config())
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.url))
    }

    /// Drops the test's PostgreSQL schema (a SQLite directory goes with the value).
    pub async fn cleanup(self) {
        if let Some((base, schema)) = &self.postgres {
            let mut admin = sqlx::PgConnection::connect(base).await.expect("connect");
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut admin)
                .await
                .expect("drop the test schema");
            admin.close().await.expect("close");
        }
    }

    /// Blocks writers of `kv` until [`Blocker::release`] (the store must have been
    /// opened, so the schema exists).
    pub async fn block_kv_writes(&self) -> Blocker {
        if let Some(path) = &self.sqlite_path {
            use sqlx::ConnectOptions as _;
            let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .connect()
                .await
                .expect("blocker connection");
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .expect("take the write lock");
            Blocker::Sqlite(conn)
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url)
                .await
                .expect("blocker connection");
            sqlx::query("BEGIN")
                .execute(&mut conn)
                .await
                .expect("begin");
            sqlx::query("LOCK TABLE kv IN EXCLUSIVE MODE")
                .execute(&mut conn)
                .await
                .expect("lock kv");
            Blocker::Postgres(conn)
        }
    }
}

/// A transaction on its own connection that keeps every other writer of the `kv` table
/// waiting until it is released: SQLite's write lock, or a PostgreSQL table lock.
#[derive(Debug)]
pub enum Blocker {
    /// Holds SQLite's write lock (`BEGIN IMMEDIATE`).
    Sqlite(sqlx::SqliteConnection),
    /// Holds `LOCK TABLE kv IN EXCLUSIVE MODE`.
    Postgres(sqlx::PgConnection),
}

impl Blocker {
    /// Lets the waiting writers go.
    pub async fn release(self) {
        match self {
            Blocker::Sqlite(mut c) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut c)
                    .await
                    .expect("rollback");
                c.close().await.expect("close");
            }
            Blocker::Postgres(mut c) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut c)
                    .await
                    .expect("rollback");
                c.close().await.expect("close");
            }
        }
    }
}

/// The test PostgreSQL's URL, if one is configured.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_URL).ok().filter(|u| !u.is_empty())
}

/// Says that `what` is skipped for want of PostgreSQL, one line per call written past the
/// harness's output capture (so `scripts/test.sh` can count them), or panics when
/// [`REQUIRE_POSTGRES`]`=1`.
pub fn skip(what: &str) {
    if std::env::var(REQUIRE_POSTGRES).is_ok_and(|v| v == "1") {
        panic!(
            "{what}: {REQUIRE_POSTGRES}=1 but {POSTGRES_URL} or {PG_CTL} is not set (eval \"$(scripts/postgres.sh)\")"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "{SKIP_MARK} {what}: set {POSTGRES_URL} (scripts/postgres.sh)"
    );
}

/// A name no other test, in this process or another, is using (letters, digits, `_`).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A device id unique to this call.
pub fn device_id() -> String {
    unique_name("device")
}
