//! Test support shared by the workspace's integration tests: a real Rally server on
//! 127.0.0.1 port 0 with the bundled games, started in the test's runtime and stopped by
//! the test, test databases on both backends, and a bounded wait on a condition.
//!
//! # Layout
//! - [`local_config`]: the default config with every listener on 127.0.0.1 port 0 and
//!   logins not required (the development switch), so realtime tests need no accounts.
//! - [`games`]: arena and tictactoe, as `rally serve` offers them.
//! - [`TestServer`]: a running server, its addresses and its live view. Without a store
//!   given to its builder, it runs without a database.
//! - [`TestDb`]: a fresh SQLite file, or a fresh schema of the PostgreSQL named by
//!   `RALLY_TEST_POSTGRES_URL` (`scripts/postgres.sh`), per test.
//! - [`eventually`]: waits, bounded, until a condition holds.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rally_server::{Config, Games, Server, ServerBuilder, ServerHandle, ShutdownReport};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long [`TestServer::shutdown`] waits for the drain.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);

/// The default config with the TCP, WebSocket and admin listeners on 127.0.0.1 port 0,
/// and `auth_required = false` (a development switch) so that tests of the realtime path
/// play without logging in. Tests of accounts set it back to `true`.
pub fn local_config() -> Config {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    Config {
        tcp: local,
        http: local,
        admin: local,
        auth_required: false,
        ..Config::default()
    }
}

/// The games `rally serve` offers: arena and tictactoe.
pub fn games() -> Games {
    let mut g = Games::new();
    g.register(arena::KIND, arena::MAX_PLAYERS, arena::Arena::new);
    g.register(
        tictactoe::KIND,
        tictactoe::MAX_PLAYERS,
        tictactoe::TicTacToe::new,
    );
    g
}

/// A running server.
#[derive(Debug)]
pub struct TestServer {
    /// The raw TCP listener.
    pub tcp: SocketAddr,
    /// The WebSocket listener (path `/ws`).
    pub ws: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// A live view of the server.
    pub handle: ServerHandle,
    stop: Option<oneshot::Sender<()>>,
    /// The server's run task; it completes with the shutdown report.
    pub task: JoinHandle<ShutdownReport>,
}

impl TestServer {
    /// Starts a server with `config` and [`games`].
    pub async fn start(config: Config) -> TestServer {
        Self::start_with(Server::builder(config, games())).await
    }

    /// Starts a server from a configured builder. A builder given no store runs without
    /// a database (never `database_url`, which would be a file in the test's directory);
    /// give it one with [`ServerBuilder::store`] and [`TestDb::open`].
    pub async fn start_with(builder: ServerBuilder) -> TestServer {
        let builder = if builder.opens_database() {
            builder.without_store()
        } else {
            builder
        };
        let server = builder.bind().await.expect("bind the test server");
        let (tx, rx) = oneshot::channel::<()>();
        let (tcp, ws, admin, handle) = (
            server.tcp_addr(),
            server.ws_addr(),
            server.admin_addr(),
            server.handle(),
        );
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        TestServer {
            tcp,
            ws,
            admin,
            handle,
            stop: Some(tx),
            task,
        }
    }

    /// Starts the shutdown; [`TestServer::task`] completes when the drain is over.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Shuts down and waits (bounded) for the report.
    pub async fn shutdown(mut self) -> ShutdownReport {
        self.begin_shutdown();
        tokio::time::timeout(SHUTDOWN_LIMIT, self.task)
            .await
            .expect("the server drains in time")
            .expect("the server task does not panic")
    }
}

/// The variable naming the test PostgreSQL (`scripts/postgres.sh` prints it).
pub const POSTGRES_URL: &str = "RALLY_TEST_POSTGRES_URL";
/// Set to `1` (CI) to fail, rather than skip, PostgreSQL tests without [`POSTGRES_URL`].
pub const REQUIRE_POSTGRES: &str = "RALLY_REQUIRE_POSTGRES";
/// The command that stops (`... stop`) and starts (`... start`) the test PostgreSQL.
pub const PG_CTL: &str = "RALLY_TEST_PG_CTL";

/// One test's database: a SQLite file in a fresh temporary directory, or a fresh schema
/// of the test PostgreSQL database, so tests running at once never see each other's rows.
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

    /// A fresh schema of the test PostgreSQL, or `None` (after saying so once) when
    /// [`POSTGRES_URL`] is not set; with [`REQUIRE_POSTGRES`]`=1` that panics instead.
    pub async fn postgres() -> Option<TestDb> {
        let Some(base) = postgres_url() else {
            skip("PostgreSQL tests");
            return None;
        };
        use sqlx::Connection as _;
        let schema = unique_name("t");
        let mut admin = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("connecting to {POSTGRES_URL}: {e}"));
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

    /// `config` pointed at this database.
    pub fn config(&self, config: Config) -> Config {
        Config {
            database_url: rally_server::DatabaseUrl::new(self.url.clone()),
            ..config
        }
    }

    /// Opens (and migrates) a store on this database, with `config`'s timeout.
    pub async fn open(&self, config: &Config) -> rally_store::Store {
        rally_server::open_store(&self.config(config.clone()))
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.url))
    }

    /// Drops the test's PostgreSQL schema (a SQLite directory goes with the value).
    pub async fn cleanup(self) {
        if let Some((base, schema)) = &self.postgres {
            use sqlx::Connection as _;
            let mut admin = sqlx::PgConnection::connect(base).await.expect("connect");
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut admin)
                .await
                .expect("drop the test schema");
            admin.close().await.expect("close");
        }
    }
}

/// The test PostgreSQL's URL, if one is configured.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_URL).ok().filter(|u| !u.is_empty())
}

/// Says (once per test binary, past the harness's output capture) that `what` is
/// skipped for want of PostgreSQL, or panics when [`REQUIRE_POSTGRES`]`=1`.
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

/// Waits until `f` holds, checking every 10 ms for up to 10 s; panics naming `what`.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}
