//! A real Rally server for a test: bound on 127.0.0.1 port 0, run in the test's runtime,
//! stopped by the test; and [`TestDb`] pointed at by a server's config.

use std::net::SocketAddr;
use std::time::Duration;

use rally_server::{
    Config, Games, KindRules, QueueRules, Server, ServerBuilder, ServerHandle, ShutdownReport,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::TestDb;

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

/// Players in an arena match from the rating queue, as `rally serve` has it.
const ARENA_MATCH: usize = 4;

/// The games `rally serve` offers: arena and tictactoe, each with a rating queue.
pub fn games() -> Games {
    let mut g = Games::new();
    g.register_kind(
        arena::KIND,
        KindRules::new(arena::MAX_PLAYERS)
            .filter_keys(&[arena::MODE])
            .queue(QueueRules {
                match_size: Some(ARENA_MATCH),
                ..QueueRules::default()
            }),
        arena::Arena::from_options,
    );
    g.register_kind(
        tictactoe::KIND,
        KindRules::new(tictactoe::MAX_PLAYERS)
            .min_players(tictactoe::MAX_PLAYERS)
            .queue(QueueRules::default()),
        |_| Ok(tictactoe::TicTacToe::new()),
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

impl TestDb {
    /// `config` pointed at this database.
    pub fn config(&self, config: Config) -> Config {
        Config {
            database_url: rally_server::DatabaseUrl::new(self.url.clone()),
            ..config
        }
    }

    /// Opens (and migrates) a store on this database the way the server does, with
    /// `config`'s timeout.
    pub async fn open(&self, config: &Config) -> rally_store::Store {
        rally_server::open_store(&self.config(config.clone()))
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.url))
    }
}
