//! `rally bench-worker sdk-players`: arena players on the Rust SDK
//! ([`rally_client::Client`]), the load of the cluster scenario. Unlike `rally bots` (the
//! SDK's low-level `Connection`), the full client follows a cluster `redirect` inside
//! `join`, so a player sent to a node whose rooms are full lands on another node and
//! plays there. Each player sends an arena input every 50 ms and times it to the first
//! state that applied it (`last_seq >= seq`), as the bots do; the report is the bots'
//! JSON (`connected`, `errors`, `errors_by_kind`, `latency_ms`, `join_ms`), so
//! [`crate::suite::BotsReport`] reads it. Players connect from consecutive loopback
//! addresses from a base ([`SourceIps`]), as the bots do, so the server's per-address
//! limits see an honest load.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use hdrhistogram::Histogram;
use rally_bots::source::SourceIps;
use rally_client::{Client, Config, Event};
use rally_protocol::Transport;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout, Instant};

/// Inputs per player: one every 50 ms (the arena scenario).
const INPUT_EVERY: Duration = Duration::from_millis(50);
/// The bound on connecting and on joining (a redirect included).
const STEP_LIMIT: Duration = Duration::from_secs(10);
/// Latencies above this are clamped (a minute, in microseconds).
const MAX_US: u64 = 60_000_000;

/// What one player saw.
struct Outcome {
    joined: bool,
    join_us: Option<u64>,
    latency: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

impl Outcome {
    fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_owned()).or_insert(0) += 1;
    }
}

fn histogram() -> Histogram<u64> {
    // Bounds 1 us..60 s at 3 significant digits: valid constants, so this cannot fail.
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

/// `[dx, dy]` as MessagePack (two float 32s).
fn input(dx: f32, dy: f32) -> Vec<u8> {
    let mut v = vec![0x92, 0xca];
    v.extend_from_slice(&dx.to_be_bytes());
    v.push(0xca);
    v.extend_from_slice(&dy.to_be_bytes());
    v
}

/// What a load process runs.
#[derive(Debug, Clone)]
pub struct Load {
    /// The node players are sent to.
    pub addr: SocketAddr,
    /// TCP or WebSocket.
    pub transport: Transport,
    /// Players.
    pub players: usize,
    /// Players started a second.
    pub ramp: u32,
    /// From the first start to the end.
    pub duration: Duration,
    /// After a player's join, before its latencies count.
    pub warmup: Duration,
    /// The first source address (`None`: the system's choice).
    pub source_base: Option<std::net::Ipv4Addr>,
}

/// Runs `load` and writes the report to `json_path`.
pub async fn run(load: &Load, json_path: &Path) -> anyhow::Result<()> {
    let end = Instant::now() + load.duration;
    let gap = Duration::from_secs(1) / load.ramp.max(1);
    let sources = match load.source_base {
        Some(base) => Some(
            SourceIps::new(
                base,
                SourceIps::needed(load.players as u64, u64::from(load.ramp)),
            )
            .map_err(|e| anyhow::anyhow!("--source-base: {e}"))?,
        ),
        None => None,
    };
    let mut tasks = JoinSet::new();
    for i in 0..load.players {
        let mut config = Config::new(load.addr.to_string()).transport(load.transport);
        if let Some(s) = &sources {
            config = config.source_ip(s.nth(i as u64));
        }
        tasks.spawn(player(config, end, load.warmup, i));
        sleep(gap).await;
    }
    let (mut connected, mut latency, mut joins) = (0u64, histogram(), histogram());
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let Ok(o) = done else {
            *errors.entry("player task panicked".into()).or_insert(0) += 1;
            continue;
        };
        connected += u64::from(o.joined);
        if let Some(us) = o.join_us {
            joins.saturating_record(us);
        }
        latency
            .add(&o.latency)
            .context("merging latency histograms")?;
        for (k, n) in o.errors {
            *errors.entry(k).or_insert(0) += n;
        }
    }
    let ms = |h: &Histogram<u64>, q: f64| {
        if h.is_empty() {
            f64::NAN
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let report = json!({
        "connected": connected,
        "errors": errors.values().sum::<u64>(),
        "errors_by_kind": errors,
        "latency_ms": {"p50": ms(&latency, 0.5), "p99": ms(&latency, 0.99), "samples": latency.len()},
        "join_ms": {"p50": ms(&joins, 0.5), "p99": ms(&joins, 0.99)},
    });
    std::fs::write(json_path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    Ok(())
}

/// One player: connect, join (following a redirect), play until `end`.
async fn player(config: Config, end: Instant, warmup: Duration, id: usize) -> Outcome {
    let mut out = Outcome {
        joined: false,
        join_us: None,
        latency: histogram(),
        errors: BTreeMap::new(),
    };
    let (client, mut events) = match timeout(STEP_LIMIT, Client::connect(config)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            out.error(&format!("connect: {}", kind(&e)));
            return out;
        }
        Err(_) => {
            out.error("connect: timeout");
            return out;
        }
    };
    let joining = Instant::now();
    match timeout(STEP_LIMIT, client.join("arena")).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            out.error(&format!("join: {}", kind(&e)));
            client.close().await;
            return out;
        }
        Err(_) => {
            out.error("join: timeout");
            client.close().await;
            return out;
        }
    }
    out.joined = true;
    out.join_us = Some(joining.elapsed().as_micros() as u64);
    let warm = Instant::now() + warmup;
    // Spread the players' inputs over the interval, as players' clocks are.
    let phase = INPUT_EVERY.mul_f64((id % 50) as f64 / 50.0);
    let mut every = tokio::time::interval_at(Instant::now() + phase, INPUT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let payload = input(if id.is_multiple_of(2) { 1.0 } else { -1.0 }, 0.5);
    let mut sent: VecDeque<(u32, Instant)> = VecDeque::new();
    let mut seq = 0u32;
    loop {
        tokio::select! {
            () = sleep_until(end) => break,
            _ = every.tick() => {
                seq += 1;
                match client.send_input(seq, &payload) {
                    Ok(()) => sent.push_back((seq, Instant::now())),
                    Err(e) => out.error(&format!("input: {}", kind(&e))),
                }
            }
            e = events.next() => match e {
                Some(Event::State(s)) => {
                    let now = Instant::now();
                    while let Some(&(k, at)) = sent.front() {
                        if k > s.last_seq {
                            break;
                        }
                        sent.pop_front();
                        if at >= warm {
                            out.latency.saturating_record((now - at).as_micros() as u64);
                        }
                    }
                }
                Some(Event::Error(e)) => out.error(&format!("server: {}", kind(&e))),
                Some(Event::Disconnected(_)) => out.error("disconnected"),
                Some(Event::RoomClosed { .. }) => out.error("room closed"),
                Some(Event::Closed(_)) | None => {
                    out.error("closed");
                    return out;
                }
                Some(_) => {}
            }
        }
    }
    client.close().await;
    out
}

/// A short, stable name for an error, for counting.
fn kind(e: &rally_client::Error) -> String {
    match e.code() {
        Some(code) => format!("{code:?}"),
        None => match e {
            rally_client::Error::Timeout(_) => "timeout".into(),
            rally_client::Error::Io(_) => "io".into(),
            _ => "other".into(),
        },
    }
}
