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
//! - [`db`]: [`TestDb`], a fresh SQLite file, or a fresh schema of the PostgreSQL named by
//!   `RALLY_TEST_POSTGRES_URL` (`scripts/postgres.sh`), per test; the one copy of the
//!   test-database harness, used by `rally-store`'s tests too.
//! - [`nats`]: [`NatsServer`], a nats-server with JetStream of a test's own (the binary
//!   `scripts/nats.sh` installs), for the cluster tests.
//! - [`eventually`]: waits, bounded, until a condition holds.
//!
//! Everything but [`db`] and [`eventually`] needs the `server` feature (on by default):
//! `rally-store` dev-depends on this crate with it off, since the server depends on the store.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod db;
pub mod nats;
#[cfg(feature = "server")]
mod server;

pub use db::{postgres_url, skip, unique_name, TestDb, PG_CTL, POSTGRES_URL, REQUIRE_POSTGRES};
pub use nats::{skip_nats, NatsServer};
#[cfg(feature = "server")]
pub use server::{games, local_config, TestServer};

use std::time::Duration;

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
