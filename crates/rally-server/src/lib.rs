//! Rally's server: the tokio shell around the sans-IO protocol crate.
//!
//! A [`Server`] is configured from a [`Config`] and the [`Games`] it offers, binds its
//! listeners, and runs until a shutdown future completes, then drains. Data flows one way:
//! socket -> session read loop -> room input queue -> tick -> each player's socket,
//! written by the room itself when it takes the state at once, else through the player's
//! outbound queue and its session's write loop.
//!
//! # Layout
//! Floors, top to bottom. A module imports only its own floor and those below it; within a
//! floor, imports run down the list. (`import_loops.py` finds no cycle.)
//!
//! **Server**
//! - `server`: the builder, start-up, and graceful shutdown (the cancellation tree).
//! - `handle`: the server's handles: the [`ServerHandle`] view, and what each kind of
//!   task is given of them.
//!
//! **Edge** (accepting)
//! - `admin`: the admin listener: `/healthz`, `/readyz`, `/metrics`, and the admin API
//!   (`/admin/*`, bearer token) in `admin::api`.
//! - `listener`: accept loops, the connection limit, accept-error backoff.
//!
//! **Session**
//! - `session`: one connection's task: read and write loops, hello, message dispatch and
//!   limits, the request queue (`session::env`: what each session is given).
//!
//! **Commands**
//! - [`command`]: the command pipeline and its three concurrent checks, a file per room
//!   command (`command::env`: what commands are given).
//! - `player_data`: the key-value requests (`get_data`, `put_data`, `delete_data`).
//! - `accounts`: logins (device, custom webhook), session tokens in `hello`, profiles.
//!
//! **Cluster** (cluster mode only: `cluster_nats_url` set)
//! - `cluster`: membership and the room directory in NATS key-value buckets, where a new
//!   player goes, seat reservations on other nodes and the seat tickets claimed here.
//!
//! **Play**
//! - `room`: the room task that owns a game and ticks it, a method per control message
//!   (`room::env`: what each room is given).
//! - `playback`: a finished match watched from its recording, as a spectator stream.
//! - `resume`: resume tokens, so a dropped player takes its seat back.
//! - `queue`: the matchmaking queue: tickets (players and parties) grouped into matches
//!   by rating within a tolerance that widens with waiting, on a timer.
//! - `matchmaker`: the room registry: rooms by id and share code, join-or-create by kind
//!   and filter keys, listings, seat counts, locks, the drain switch.
//! - `room_handle`: how others reach a room: its handle and messages, a membership, a
//!   seat reservation.
//! - `games`: the registry of room kinds (`Box<dyn Game>` factories of the room options)
//!   and their matchmaking rules ([`KindRules`]).
//!
//! **Infra**
//! - [`directory`]: connected sessions (a view of the live-session registry below).
//! - `outbox`: a session's bounded outbound queue, end reason and drain signal, the link
//!   rooms and commands hold to reach it, and the live-session registry (with each
//!   handshaken session's profile for the directory).
//! - `heartbeat`: event loop lag, runtime busy ratio, metrics upkeep.
//! - `storage`: the database: opening it, retried and timed calls, background writes
//!   flushed at shutdown, the readiness probe.
//! - `recording`: match recordings: the writer task per match (the tick never waits on
//!   the disk), retention, the listing.
//! - `metrics`: the hot-path counters, task meters, the registry and the scrape.
//! - `readiness`: what `/readyz` reports, and the [`Dependency`] hook.
//! - `limits`: rate limits per connection and per client address.
//! - [`logging`]: the pretty and JSON log formats.
//! - `error`: the one `{code, message}` error a client is told ([`ClientError`]).
//! - [`config`]: parameters, ranges, defaults; file, environment and flags.
//!
//! **Wire** (the socket side of the edge, below everything that reads or writes one)
//! - `transport`: raw TCP and WebSocket framing over one socket type.
//! - [`connection`]: what a session needs of a socket and an accept loop of a listener;
//!   tokio's TCP implements both, a network simulator's can too.
//! - `web`: the browser pages embedded in the binary (the demo at `/` and `/tictactoe` on
//!   the HTTP listener, the dashboard's files on the admin listener).
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod accounts;
mod admin;
mod cluster;
pub mod command;
pub mod config;
pub mod connection;
pub mod directory;
mod error;
mod games;
mod handle;
mod heartbeat;
mod limits;
mod listener;
pub mod logging;
mod matchmaker;
mod metrics;
mod outbox;
mod playback;
mod player_data;
mod queue;
mod readiness;
mod recording;
mod resume;
mod room;
mod room_handle;
mod server;
mod session;
mod storage;
mod transport;
mod web;

pub use cluster::ClusterError;
pub use command::{
    BoxFuture, Command, CommandChecks, CommandContext, CommandError, PlayerData, Rating,
};
pub use config::{Config, DatabaseUrl, Environment, LogFormat, Sources};
pub use error::ClientError;
pub use games::{Games, KindRules, QueueRules, MAX_FILTER_KEYS};
pub use handle::{SeatInfo, ServerHandle};
pub use metrics::DbCallMetric;
pub use rally_game as game;
pub use rally_protocol as protocol;
pub use rally_store as store;
pub use readiness::Dependency;
pub use server::{BindError, Server, ServerBuilder, ShutdownReport, StartError};
pub use storage::{migrate, open_store, store_config};
pub use transport::Transport;
