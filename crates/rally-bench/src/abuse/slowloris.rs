//! `rally abuse slowloris`: many sockets opened at once that never finish the handshake.
//!
//! Each socket connects (from its source address: spread over many, so the server's
//! per-address limit alone cannot stop them) and then either says nothing (`silent`) or
//! drips its opening bytes, one every `drip` (`drip`): over TCP the `hello` frame, over
//! WebSocket the HTTP upgrade request and then the `hello` frame, as the classic
//! slowloris does with HTTP headers. A server with a handshake timeout closes them; the
//! attacker reopens each a moment later (by default a second) to keep the pressure on.
//!
//! Counted: how each socket ended (`ending:*`), how long the server let it hang
//! (`held`), how many were open at once (sampled every 100 ms), and how many got as far
//! as `welcome` (`completed`: a drip that finished before the server lost patience).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rally_bots::source::connect_from;
use rally_bots::SourceIps;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use super::tally::Tally;
use super::wire::{
    hello_body, io_kind, push_body, said_key, upgrade_request, Inbox, Said, Target, Transport,
    Verdict,
};

/// Bounds one connect.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);
/// How often the number of open sockets is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// What each socket sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Its opening bytes, one every `drip`.
    Drip,
    /// Nothing at all.
    Silent,
}

impl Mode {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Drip => "drip",
            Mode::Silent => "silent",
        }
    }
}

/// One slowloris attack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to.
    pub target: Target,
    /// Sockets held at once.
    pub conns: u32,
    /// How long the attack lasts.
    pub duration: Duration,
    /// Socket `i` connects from the `i`-th address (round-robin).
    pub sources: Option<SourceIps>,
    /// What each socket sends.
    pub mode: Mode,
    /// The pause between two bytes (drip mode).
    pub drip: Duration,
    /// Whether a socket the server closed is opened again, and after how long (the
    /// classic tool reopens dead sockets on its next round; reopening a refused one in a
    /// tight loop would be a connection flood, another attack).
    pub reconnect: Option<Duration>,
}

/// Runs the attack and returns what it saw, as JSON.
pub async fn run(opts: Options) -> Value {
    let opts = Arc::new(opts);
    let tally = Arc::new(Tally::default());
    let open = Arc::new(AtomicU64::new(0));
    let begin = Instant::now();
    let deadline = begin + opts.duration;
    let mut tasks = JoinSet::new();
    for i in 0..opts.conns {
        let (opts, tally, open) = (opts.clone(), tally.clone(), open.clone());
        tasks.spawn(async move { socket(i, &opts, &tally, &open, deadline).await });
    }
    // Sockets open at once, sampled until the deadline.
    let (mut max_open, mut sum, mut samples) = (0u64, 0u64, 0u64);
    let mut first_all_open = None;
    let mut ticker = tokio::time::interval(SAMPLE_EVERY);
    while Instant::now() < deadline {
        ticker.tick().await;
        let now = open.load(Ordering::Relaxed);
        max_open = max_open.max(now);
        sum += now;
        samples += 1;
        if first_all_open.is_none() && now >= u64::from(opts.conns) {
            first_all_open = Some(begin.elapsed().as_secs_f64());
        }
    }
    while tasks.join_next().await.is_some() {}
    let secs = begin.elapsed().as_secs_f64();
    json!({
        "attack": "slowloris",
        "mode": opts.mode.name(),
        "transports": opts.target.transports().iter().map(|t| t.name()).collect::<Vec<_>>(),
        "conns": opts.conns,
        "source_ips": opts.sources.map_or(0, |s| s.count()),
        "drip_ms": opts.drip.as_millis() as u64,
        "reconnect_ms": opts.reconnect.map(|d| d.as_millis() as u64),
        "duration_secs": secs,
        "attempts": tally.get("attempts"),
        "established": tally.get("established"),
        "completed": tally.get("completed"),
        "open_max": max_open,
        "open_mean": if samples == 0 { 0.0 } else { sum as f64 / samples as f64 },
        "all_open_after_secs": first_all_open,
        "endings": tally.with_prefix("ending:"),
        "received": tally.with_prefix("received:"),
        "tally": tally.to_json(),
    })
}

/// Socket `i`: connect, hang, count how it ended; again if reconnecting.
async fn socket(i: u32, opts: &Options, tally: &Tally, open: &AtomicU64, deadline: Instant) {
    let Some((transport, addr)) = opts.target.pick(u64::from(i)) else {
        return;
    };
    let source = opts.sources.map(|s| s.nth(u64::from(i)));
    // What a real client would send at once, sent a byte at a time.
    let mut opening = Vec::new();
    if transport == Transport::WebSocket {
        opening.extend_from_slice(&upgrade_request(addr));
    }
    push_body(
        transport,
        &hello_body(&format!("slowloris-{i}")),
        &mut opening,
    );
    loop {
        if Instant::now() >= deadline {
            return;
        }
        tally.one("attempts");
        let limit = CONNECT_LIMIT.min(deadline.saturating_duration_since(Instant::now()));
        let mut stream = match timeout(limit, connect_from(addr, source)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tally.one(format!("ending:connect:{}", io_kind(&e)));
                sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(_) => {
                tally.one("ending:connect:timeout");
                continue;
            }
        };
        tally.one("established");
        open.fetch_add(1, Ordering::Relaxed);
        let since = Instant::now();
        let mut inbox = Inbox::new(transport);
        let mut verdict = Verdict::default();
        let mut sent = 0;
        let mut next_byte = since + opts.drip;
        let end = loop {
            let dripping = opts.mode == Mode::Drip && sent < opening.len();
            tokio::select! {
                _ = sleep_until(deadline) => break None,
                _ = sleep_until(next_byte), if dripping => {
                    if let Err(e) = stream.write_all(&opening[sent..=sent]).await {
                        break Some(Err(e));
                    }
                    sent += 1;
                    next_byte += opts.drip;
                }
                r = inbox.read(&mut stream) => match r {
                    Ok(0) => break Some(Ok(0)),
                    Ok(_) => {
                        while let Some(said) = inbox.next() {
                            verdict.note(&said);
                            tally.one(format!("received:{}", said_key(&said)));
                            if matches!(said, Said::Msg(rally_protocol::ServerMessage::Welcome { .. })) {
                                tally.one("completed");
                            }
                        }
                    }
                    Err(e) => break Some(Err(e)),
                },
            }
        };
        open.fetch_sub(1, Ordering::Relaxed);
        match end {
            None => {
                tally.one("ending:held_to_end");
                return;
            }
            Some(end) => {
                tally.one(format!("ending:{}", verdict.ending(&end)));
                tally.time("held", since.elapsed());
            }
        }
        match opts.reconnect {
            Some(pause) => sleep(pause).await,
            None => return,
        }
    }
}
