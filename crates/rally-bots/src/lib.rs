//! `rally-bots`: a swarm of arena bots that play against a Rally server and measure
//! input-to-state latency (SPEC.md section 7, "arena-16 @ 20 Hz").
//!
//! Each bot enters through the SDK's [`rally_client::Connection`] (connect, login when
//! the server wants it, join, a cluster redirect followed), then plays on the bare
//! socket: an input every 50 ms, each timed until the first state that shows it applied.
//! Bots play in groups (`--group`, 32 by default): one task, one timer and one read
//! buffer drive a group's sockets, which is as little as the protocol allows per bot (one
//! write per input, one read per state, no wake-up of its own). The groups run on a
//! single-threaded runtime of their own (`--threads`), so one swarm process keeps to one
//! core and leaves the others to the server under test. Latencies go into a few shared
//! HDR histograms; the end result is a [`Report`] that prints as a table, serialises as
//! JSON and draws as an SVG chart.
//!
//! # Layout
//!
//! - `config`: [`BotsConfig`], what a run does, and its defaults.
//! - [`source`]: the local addresses bots connect from (`--source-ips`), so a server's
//!   per-address limits see many hosts, as they would in production.
//! - `cli`: the `rally bots` flags ([`cli::command`]) and their handling ([`cli::run`]).
//! - `entry`: one bot's way into a room: connect, login, join, redirect.
//! - `group`: one task driving a group of bots: entries, the timer, the shared buffer.
//! - `bot`: one bot at play: its inputs, its socket's bytes, its measurements, its goodbye.
//! - `stats`: counters and histograms the groups add to while the run goes on.
//! - `swarm`: [`run`]: starts the groups on their own runtime thread(s), shows progress,
//!   waits for their goodbyes, builds the report.
//! - `report`: [`Report`]: the summary table and the JSON; [`Interval`]: one line of
//!   `--report-every`.
//! - `chart`: the SVG latency chart.
#![warn(missing_docs, unreachable_pub)]

mod bot;
mod chart;
pub mod cli;
mod config;
mod entry;
mod group;
mod report;
pub mod source;
mod stats;
mod swarm;

pub use config::{BotsConfig, Entry, Transport};
pub use report::{Interval, Latency, Report, Second};
pub use source::SourceIps;
pub use swarm::{run, run_with};
