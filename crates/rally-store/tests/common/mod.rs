//! The test databases the suite runs on: a SQLite file in a fresh temporary directory, and,
//! when `RALLY_TEST_POSTGRES_URL` is set (scripts/postgres.sh prints it), a fresh schema of
//! that PostgreSQL database per test, so tests running at once never see each other's rows.
//!
//! Without the variable the PostgreSQL variants pass after saying they were skipped, unless
//! `RALLY_REQUIRE_POSTGRES=1` (CI), which makes them fail instead.
#![allow(dead_code)] // each test binary uses a different part of this

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use rally_store::{Store, StoreConfig};
use sqlx::Connection;

pub const POSTGRES_URL: &str = "RALLY_TEST_POSTGRES_URL";
pub const REQUIRE_POSTGRES: &str = "RALLY_REQUIRE_POSTGRES";
pub const PG_CTL: &str = "RALLY_TEST_PG_CTL";

/// One test's database.
pub struct TestDb {
    /// The URL a store opens.
    pub url: String,
    /// The SQLite file, for the file-level checks.
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

    /// A fresh schema in the test PostgreSQL database, or `None` (after saying so) when
    /// none is configured.
    pub async fn postgres() -> Option<TestDb> {
        let Some(base) = postgres_url() else {
            skip("PostgreSQL tests");
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

    /// The default configuration for this database, with a timeout short enough that a
    /// hang fails the test quickly.
    pub fn config(&self) -> StoreConfig {
        let mut config = StoreConfig::new(self.url.clone());
        config.timeout = std::time::Duration::from_secs(10);
        config
    }

    /// Opens (and migrates) a store on this database.
    pub async fn open(&self) -> Store {
        Store::open_with(self.config())
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
}

/// The test server's URL, if one is configured.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_URL).ok().filter(|u| !u.is_empty())
}

/// Says (once per test binary, past the test harness's output capture) that PostgreSQL
/// tests are skipped, or fails when CI requires them.
pub fn skip(what: &str) {
    if std::env::var(REQUIRE_POSTGRES).is_ok_and(|v| v == "1") {
        panic!(
            "{what}: {REQUIRE_POSTGRES}=1 but {POSTGRES_URL} or {PG_CTL} is not set (eval \"$(scripts/postgres.sh)\")"
        );
    }
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "{what} skipped: set {POSTGRES_URL} (scripts/postgres.sh)"
        );
    });
}

/// A name no other test, in this process or another, is using.
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

/// A transaction on its own connection that keeps every other writer of the `kv` table
/// waiting until it is released: SQLite's write lock, or a PostgreSQL table lock.
pub enum Blocker {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl TestDb {
    /// Blocks writers of `kv` (the store must have been opened, so the schema exists).
    pub async fn block_kv_writes(&self) -> Blocker {
        if let Some(path) = &self.sqlite_path {
            use sqlx::ConnectOptions;
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
