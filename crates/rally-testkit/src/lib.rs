//! Test support shared by the workspace's integration tests: a real Rally server on
//! 127.0.0.1 port 0 with the bundled games, started in the test's runtime and stopped by
//! the test, and a bounded wait on a condition.
//!
//! # Layout
//! - [`local_config`]: the default config with every listener on 127.0.0.1 port 0.
//! - [`games`]: arena and tictactoe, as `rally serve` offers them.
//! - [`TestServer`]: a running server, its addresses and its live view.
//! - [`eventually`]: waits, bounded, until a condition holds.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

use rally_server::{Config, Games, Server, ServerBuilder, ServerHandle, ShutdownReport};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long [`TestServer::shutdown`] waits for the drain.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);

/// The default config with the TCP, WebSocket and admin listeners on 127.0.0.1 port 0.
pub fn local_config() -> Config {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    Config {
        tcp: local,
        http: local,
        admin: local,
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

    /// Starts a server from a configured builder.
    pub async fn start_with(builder: ServerBuilder) -> TestServer {
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
