//! `rally-bots`: a swarm of arena bots that play against a Rally server and measure
//! input-to-state latency (SPEC.md section 7, "arena-16 @ 20 Hz").
//!
//! Every bot is one tokio task owning one [`rally_client::Connection`]: it joins a room,
//! sends an input every 50 ms, and times each input until the first state that shows it
//! applied. The bots run on a single-threaded runtime of their own (`--threads`), so one
//! swarm process keeps to one core and leaves the others to the server under test. Latencies go into a few shared HDR histograms; the end result is a
//! [`Report`] that prints as a table, serialises as JSON and draws as an SVG chart.
//!
//! # Layout
//!
//! - `config`: [`BotsConfig`], what a run does, and its defaults.
//! - [`source`]: the local addresses bots connect from (`--source-ips`), so a server's
//!   per-address limits see many hosts, as they would in production.
//! - `cli`: the `rally bots` flags ([`cli::command`]) and their handling ([`cli::run`]).
//! - `bot`: one bot's life: connect, join, play, measure, close.
//! - `stats`: counters and histograms every bot writes to while the run goes on.
//! - `swarm`: [`run`]: ramps the bots up on their own runtime thread(s), shows progress,
//!   stops them, builds the report.
//! - `report`: [`Report`]: the summary table and the JSON; [`Interval`]: one line of
//!   `--report-every`.
//! - `chart`: the SVG latency chart.
#![warn(missing_docs, unreachable_pub)]

mod bot;
mod chart;
pub mod cli;
mod config;
mod report;
pub mod source;
mod stats;
mod swarm;

pub use config::{BotsConfig, Entry, Transport};
pub use report::{Interval, Latency, Report, Second};
pub use source::SourceIps;
pub use swarm::{run, run_with};
