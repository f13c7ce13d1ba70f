//! Rally's server: the tokio shell around the sans-IO protocol crate.
//!
//! A [`Server`] is configured from a [`Config`] and the [`Games`] it offers, binds its
//! listeners, and runs until a shutdown future completes, then drains. Data flows one way:
//! socket -> session read loop -> room input queue -> tick -> each player's outbound
//! queue -> session write loop -> socket.
//!
//! # Layout
//! - [`config`]: parameters, ranges, defaults; file, environment and flags.
//! - `server`: shared state, start-up, and graceful shutdown (the cancellation tree).
//! - `listener`: accept loops, the connection limit, accept-error backoff.
//! - `transport`: raw TCP and WebSocket framing over one socket type.
//! - [`connection`]: what a session needs of a socket and an accept loop of a listener;
//!   tokio's TCP implements both, a network simulator's can too.
//! - `session`: one connection's read and write loops and their bounds.
//! - [`command`]: the command pipeline and its three concurrent checks.
//! - `matchmaker`: join-or-create by room kind, seat counts.
//! - `room`: the room task that owns a game and ticks it.
//! - `resume`: resume tokens, so a dropped player takes its seat back.
//! - `games`: the registry of room kinds.
//! - [`directory`]: connected sessions.
//! - `admin`: the admin listener: `/healthz`, `/readyz`, `/metrics`, and the admin API
//!   (`/admin/*`, bearer token) in `admin::api`.
//! - `metrics`: the metrics registry, the hot-path counters, and the scrape.
//! - `heartbeat`: event loop lag, runtime busy ratio, metrics upkeep.
//! - `readiness`: what `/readyz` reports, and the [`Dependency`] hook.
//! - [`logging`]: the pretty and JSON log formats.
//! - `accounts`: logins (device, custom webhook), session tokens in `hello`, profiles.
//! - `player_data`: the key-value requests (`get_data`, `put_data`, `delete_data`).
//! - `storage`: the database: opening it, retried and timed calls, background writes
//!   flushed at shutdown, the readiness probe.
//! - `web`: the browser pages embedded in the binary (demo at `/`, dashboard files).
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod accounts;
mod admin;
pub mod command;
pub mod config;
pub mod connection;
pub mod directory;
mod games;
mod heartbeat;
mod limits;
mod listener;
pub mod logging;
mod matchmaker;
mod metrics;
mod player_data;
mod readiness;
mod resume;
mod room;
mod server;
mod session;
mod storage;
mod transport;
mod web;

pub use command::{BoxFuture, Command, CommandChecks, CommandContext, CommandError, PlayerData};
pub use config::{Config, DatabaseUrl, Environment, LogFormat, Sources};
pub use games::Games;
pub use metrics::DbCallMetric;
pub use rally_game as game;
pub use rally_protocol as protocol;
pub use rally_store as store;
pub use readiness::Dependency;
pub use server::{
    BindError, SeatInfo, Server, ServerBuilder, ServerHandle, ShutdownReport, StartError,
};
pub use storage::{migrate, open_store, store_config};
pub use transport::Transport;
