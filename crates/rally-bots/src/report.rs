//! [`Report`]: what a run measured, as a summary table and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde_json::json;

use crate::config::Transport;
use crate::swarm::ms;

/// Latency percentiles, in milliseconds (0 when nothing was recorded).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    /// How many latencies were recorded.
    pub samples: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            samples: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// One second of the run, for the progress line and the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Second {
    /// Seconds since the start when this was sampled.
    pub elapsed_secs: f64,
    /// States received during this second.
    pub states: u64,
    /// Latencies recorded during this second.
    pub window: Latency,
    /// The 99th percentile of every latency recorded so far, in milliseconds.
    pub p99_so_far_ms: f64,
}

/// One interval of a run (`rally bots --report-every`): what happened in it alone, so a
/// long run's drift shows. Printed as one JSON line.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// Seconds since the start at the end of the interval.
    pub elapsed_secs: f64,
    /// The interval's length in seconds (the last one may be shorter).
    pub secs: f64,
    /// Bots in a room at its end.
    pub active: u64,
    /// Bots that joined a room since the start.
    pub connected: u64,
    /// Errors counted in the interval.
    pub errors: u64,
    /// Errors counted since the start.
    pub errors_total: u64,
    /// Inputs sent in the interval.
    pub inputs: u64,
    /// States received in the interval.
    pub states: u64,
    /// Latencies recorded in the interval.
    pub latency: Latency,
}

impl Interval {
    /// The interval as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "elapsed_secs": self.elapsed_secs,
            "interval_secs": self.secs,
            "active": self.active,
            "connected": self.connected,
            "errors": self.errors,
            "errors_total": self.errors_total,
            "inputs": self.inputs,
            "states": self.states,
            "latency_ms": latency_json(&self.latency),
        })
    }
}

fn latency_json(l: &Latency) -> serde_json::Value {
    json!({
        "samples": l.samples,
        "p50": l.p50,
        "p90": l.p90,
        "p99": l.p99,
        "max": l.max,
    })
}

/// What one swarm run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Bots started.
    pub bots: u32,
    /// The transport they used.
    pub transport: Transport,
    /// From the first bot's start to the end of the duration, in seconds.
    pub duration_secs: f64,
    /// Bots that connected and joined a room.
    pub connected: u64,
    /// Errors of every kind.
    pub errors: u64,
    /// Errors by kind: `connect:<kind>`, `join:<kind>`, `server:<CODE>`, `disconnect`, ...
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Input-to-state latency over the whole run, after each bot's warm-up.
    pub latency: Latency,
    /// Join time: from the start of a bot's connect to `joined` (login included when
    /// the server requires one), one sample per bot that joined.
    pub join: Latency,
    /// Source addresses the bots connected from (0: the system's choice).
    pub source_ips: u32,
    /// Cluster `redirect`s the bots followed to the node of their seat.
    pub redirects: u64,
    /// Inputs sent.
    pub inputs_sent: u64,
    /// States received.
    pub states_received: u64,
    /// Inputs sent per second of the run.
    pub inputs_per_sec: f64,
    /// States received per second of the run.
    pub states_per_sec: f64,
    /// Once a second.
    pub timeline: Vec<Second>,
}

impl Report {
    /// The report as JSON (the `--json` file).
    pub fn to_json(&self) -> serde_json::Value {
        let timeline: Vec<_> = self
            .timeline
            .iter()
            .map(|s| {
                json!({
                    "elapsed_secs": s.elapsed_secs,
                    "states": s.states,
                    "p50": s.window.p50,
                    "p99": s.window.p99,
                })
            })
            .collect();
        json!({
            "bots": self.bots,
            "transport": self.transport.name(),
            "duration_secs": self.duration_secs,
            "connected": self.connected,
            "errors": self.errors,
            "errors_by_kind": self.errors_by_kind,
            "latency_ms": latency_json(&self.latency),
            "join_ms": latency_json(&self.join),
            "source_ips": self.source_ips,
            "redirects": self.redirects,
            "inputs_sent": self.inputs_sent,
            "states_received": self.states_received,
            "inputs_per_sec": self.inputs_per_sec,
            "states_per_sec": self.states_per_sec,
            "timeline": timeline,
        })
    }

    /// Writes [`Report::to_json`] to `path`, pretty-printed.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(&self.to_json())?;
        text.push('\n');
        std::fs::write(path, text)
    }

    /// Writes the SVG latency chart (p50 and p99 of each second) to `path`.
    pub fn write_chart(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, crate::chart::svg(self)?)?;
        Ok(())
    }

    /// The summary table printed at the end of `rally bots`.
    pub fn summary_table(&self) -> String {
        let mut t = String::new();
        let mut row = |k: &str, v: String| {
            // Writing to a String cannot fail.
            let _ = writeln!(t, "{k:<16} {v}");
        };
        row(
            "bots",
            format!(
                "{} over {} for {:.1} s",
                self.bots, self.transport, self.duration_secs
            ),
        );
        row("connected", self.connected.to_string());
        if self.source_ips > 0 {
            row("source ips", self.source_ips.to_string());
        }
        if self.redirects > 0 {
            row("redirects", self.redirects.to_string());
        }
        row("errors", self.errors.to_string());
        for (kind, n) in &self.errors_by_kind {
            row(&format!("  {kind}"), n.to_string());
        }
        let l = &self.latency;
        row("latency p50", format!("{:.2} ms", l.p50));
        row("latency p90", format!("{:.2} ms", l.p90));
        row("latency p99", format!("{:.2} ms", l.p99));
        row("latency max", format!("{:.2} ms", l.max));
        row("samples", l.samples.to_string());
        row(
            "join p50/p99",
            format!("{:.2} / {:.2} ms", self.join.p50, self.join.p99),
        );
        row(
            "inputs/s",
            format!("{:.0} ({} sent)", self.inputs_per_sec, self.inputs_sent),
        );
        row(
            "states/s",
            format!(
                "{:.0} ({} received)",
                self.states_per_sec, self.states_received
            ),
        );
        t
    }
}
