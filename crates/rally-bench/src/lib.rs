//! `rally bench`: Rally's benchmark suite, run side by side with references in one
//! invocation, writing `docs/BENCHMARKS.md` and `docs/benchmarks.json`.
//!
//! Every server and load generator is a separate process (a copy of the `rally` binary,
//! or the Colyseus peer's script), so that its CPU time and memory can be read from
//! `/proc` on its own; servers and load run on separate CPUs (`taskset`) when possible.
//!
//! # Layout
//! - [`suite`]: the scenarios: arena-16 @ 20 Hz, the highest-count search, idle
//!   connections, request/response, and the Colyseus peer.
//! - [`designs`]: the reference arena servers; [`workers`]: the echo server and the load
//!   generators, all run through the hidden `rally bench-worker` subcommand.
//! - [`abuse`]: abusive clients (the hidden `rally abuse` subcommand) and the abuse
//!   scenario: honest players' latency and join time under flood, slowloris and garbage.
//! - [`cluster`]: three nodes over NATS: join latency local vs redirected, players
//!   spread over the nodes; [`sdk_players`]: its load, arena players on the Rust SDK.
//! - [`report`]: the markdown and JSON; [`merge`]: a partial run updates only its own
//!   sections of them; [`procfs`]: `/proc`; [`child`]: processes.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod abuse;
pub mod child;
pub mod cli;
pub mod cluster;
pub mod designs;
pub mod merge;
pub mod procfs;
pub mod report;
pub mod sdk_players;
pub mod suite;
pub mod workers;
