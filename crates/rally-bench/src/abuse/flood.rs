//! `rally abuse flood`: clients that send more than any honest client would.
//!
//! - **messages**: each connection completes `hello` (and joins a room, by default),
//!   then writes inputs and pings, three to one, as fast as the socket takes them, while
//!   counting what comes back. A server with per-connection rate limits answers
//!   `RATE_LIMITED` and, when the flood goes on, closes the connection; the attacker
//!   then reconnects and starts over, as a real one would.
//! - **connect**: each task opens a connection, says `hello`, reads the first answer
//!   (`welcome`, or a refusal), resets the connection and starts over, as fast as it can:
//!   a connection-rate flood from one host.
//!
//! What the server did is counted by how each flooding session ended (`ending:*`), how
//! connections that never got to flood were refused (`door:*`: at connect, `hello` or
//! `join`), what the server sent (`received:*`), and how long a flood lasted before the
//! server cut it (`cut_after`) and before its first `RATE_LIMITED`
//! (`first_rate_limited`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rally_bots::SourceIps;
use rally_protocol::{ClientMessage, ErrorCode, ServerMessage};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout, Instant};

use super::tally::Tally;
use super::wire::{io_kind, push, said_key, Conn, Inbox, Said, Target, Verdict};

/// An arena input, `[1.0, 0.0]` as MessagePack (two float 32).
const INPUT: [u8; 11] = [0x92, 0xca, 0x3f, 0x80, 0, 0, 0xca, 0, 0, 0, 0];
/// Bounds each step before the flood proper: connect, handshake, join.
const STEP_LIMIT: Duration = Duration::from_secs(5);
/// After a write fails, how long to keep reading for the server's last words.
const LAST_WORDS: Duration = Duration::from_secs(2);
/// Pause after a connection that went nowhere, so a refusing server is not spun on.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Which flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Messages as fast as the socket allows, on established sessions.
    Messages,
    /// New connections as fast as possible.
    Connect,
}

impl Mode {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Messages => "messages",
            Mode::Connect => "connect",
        }
    }
}

/// One flood.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to.
    pub target: Target,
    /// Connections (messages) or concurrent connecting tasks (connect).
    pub conns: u32,
    /// How long the attack lasts.
    pub duration: Duration,
    /// Connection `i` is made from the `i`-th address (round-robin); `None`: the
    /// system's choice.
    pub sources: Option<SourceIps>,
    /// Which flood.
    pub mode: Mode,
    /// The room kind to join before flooding (messages mode); `None` floods from the
    /// lobby (inputs are then refused with `NOT_IN_ROOM`, pings still answered).
    pub join: Option<String>,
    /// Messages per write.
    pub batch: usize,
}

/// Runs the flood and returns what it saw, as JSON.
pub async fn run(opts: Options) -> Value {
    let opts = Arc::new(opts);
    let tally = Arc::new(Tally::default());
    let begin = Instant::now();
    let deadline = begin + opts.duration;
    let mut tasks = JoinSet::new();
    for i in 0..opts.conns {
        let (opts, tally) = (opts.clone(), tally.clone());
        tasks.spawn(async move {
            match opts.mode {
                Mode::Messages => messages(i, &opts, &tally, begin, deadline).await,
                Mode::Connect => connects(i, &opts, &tally, deadline).await,
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let secs = begin.elapsed().as_secs_f64();
    let attempts = tally.get("attempts");
    json!({
        "attack": "flood",
        "mode": opts.mode.name(),
        "transports": opts.target.transports().iter().map(|t| t.name()).collect::<Vec<_>>(),
        "conns": opts.conns,
        "source_ips": opts.sources.map_or(0, |s| s.count()),
        "duration_secs": secs,
        "attempts": attempts,
        "attempts_per_sec": attempts as f64 / secs.max(1e-9),
        "welcomed": tally.get("welcomed"),
        "messages_sent": tally.get("sent:messages"),
        "messages_per_sec": tally.get("sent:messages") as f64 / secs.max(1e-9),
        "sessions_flooded": tally.get("flooded"),
        "endings": tally.with_prefix("ending:"),
        "refused_at_door": tally.with_prefix("door:"),
        "received": tally.with_prefix("received:"),
        "tally": tally.to_json(),
    })
}

/// Connection task `i` of the messages flood: session after session until the deadline.
async fn messages(i: u32, opts: &Options, tally: &Tally, begin: Instant, deadline: Instant) {
    let source = opts.sources.map(|s| s.nth(u64::from(i)));
    let mut round = 0u64;
    while Instant::now() < deadline {
        round += 1;
        let Some(mut conn) = establish(i, round, opts, source, tally, deadline).await else {
            sleep(RETRY_PAUSE).await;
            continue;
        };
        if let Some(kind) = &opts.join {
            if !join(&mut conn, kind, tally).await {
                sleep(RETRY_PAUSE).await;
                continue;
            }
        }
        flood(conn, opts, tally, begin, deadline).await;
    }
}

/// Connects and completes the handshake, counting what went wrong if it did not.
async fn establish(
    i: u32,
    round: u64,
    opts: &Options,
    source: Option<IpAddr>,
    tally: &Tally,
    deadline: Instant,
) -> Option<Conn> {
    let (transport, addr) = opts.target.pick(u64::from(i))?;
    tally.one("attempts");
    let limit = STEP_LIMIT.min(deadline.saturating_duration_since(Instant::now()));
    let mut conn = match timeout(limit, Conn::open(transport, addr, source)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tally.one(format!("door:connect:{}", io_kind(&e)));
            return None;
        }
        Err(_) if Instant::now() >= deadline => return None,
        Err(_) => {
            tally.one("door:connect:timeout");
            return None;
        }
    };
    let name = format!("flood-{i}-{round}");
    let welcomed = conn.handshake(&name, limit).await;
    for (k, n) in std::mem::take(&mut conn.heard) {
        tally.add(format!("received:{k}"), n);
    }
    match welcomed {
        Ok(true) => {
            tally.one("welcomed");
            Some(conn)
        }
        Ok(false) => {
            tally.one(format!("door:{}", conn.verdict.ending(&Ok(0))));
            None
        }
        // Cut short by the end of the attack, not by the server.
        Err(_) if Instant::now() >= deadline => None,
        Err(e) => {
            tally.one(format!("door:handshake:{}", io_kind(&e)));
            None
        }
    }
}

/// Joins a room of `kind`; false (counted) if that did not work.
async fn join(conn: &mut Conn, kind: &str, tally: &Tally) -> bool {
    let mut out = Vec::new();
    push(
        conn.transport,
        &ClientMessage::Join { req: 1, kind },
        &mut out,
    );
    if let Err(e) = conn.stream.write_all(&out).await {
        tally.one(format!("door:join:{}", io_kind(&e)));
        return false;
    }
    let outcome = conn
        .read_until(STEP_LIMIT, |s| match s {
            Said::Msg(ServerMessage::Joined { req: 1, .. }) => Some(Ok(())),
            Said::Msg(ServerMessage::Error { req: 1, code, .. }) => Some(Err(*code)),
            _ => None,
        })
        .await;
    for (k, n) in std::mem::take(&mut conn.heard) {
        tally.add(format!("received:{k}"), n);
    }
    match outcome {
        Ok(Some(Ok(()))) => {
            tally.one("joined");
            true
        }
        Ok(Some(Err(code))) => {
            tally.one(format!("join_refused:{}", code.name()));
            // Flooding from the lobby still tests the limits.
            true
        }
        Ok(None) => {
            tally.one(format!("door:{}", conn.verdict.ending(&Ok(0))));
            false
        }
        Err(Some(e)) => {
            tally.one(format!("door:join:{}", io_kind(&e)));
            false
        }
        Err(None) => {
            tally.one("door:join:timeout");
            false
        }
    }
}

/// Floods one established session until the server cuts it or the deadline passes.
async fn flood(conn: Conn, opts: &Options, tally: &Tally, begin: Instant, deadline: Instant) {
    let Conn {
        stream,
        transport,
        inbox,
        verdict,
        ..
    } = conn;
    let (mut rd, mut wr) = stream.into_split();
    let started = Instant::now();
    // The reader counts what the server says, locally (merged at the end: a flood of
    // replies must not contend on a lock), and notes when the first RATE_LIMITED came.
    let reader = async move {
        let (mut inbox, mut verdict): (Inbox, Verdict) = (inbox, verdict);
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        let mut first_limited = None;
        let mut chunk = vec![0u8; 16 * 1024];
        let end = loop {
            while let Some(said) = inbox.next() {
                verdict.note(&said);
                if first_limited.is_none()
                    && matches!(
                        said,
                        Said::Msg(ServerMessage::Error {
                            code: ErrorCode::RateLimited,
                            ..
                        })
                    )
                {
                    first_limited = Some(started.elapsed());
                }
                *seen.entry(said_key(&said)).or_insert(0) += 1;
            }
            match rd.read(&mut chunk).await {
                Ok(0) => break Ok(0),
                Ok(n) => inbox.extend(&chunk[..n]),
                Err(e) => break Err(e),
            }
        };
        (verdict, end, seen, first_limited)
    };
    let mut reader = std::pin::pin!(reader);
    let mut batch = Vec::with_capacity(opts.batch * 24);
    let (mut seq, mut nonce, mut sent, mut bytes) = (0u32, 0u64, 0u64, 0u64);
    let stop = tokio::time::sleep_until(deadline);
    tokio::pin!(stop);
    // Writes until the server closes (the reader ends), a write fails, or time is up.
    tally.one("flooded");
    let ended = loop {
        batch.clear();
        for k in 0..opts.batch {
            if k % 4 == 3 {
                nonce += 1;
                push(transport, &ClientMessage::Ping { nonce }, &mut batch);
            } else {
                seq = seq.wrapping_add(1);
                push(
                    transport,
                    &ClientMessage::Input {
                        seq,
                        payload: &INPUT,
                    },
                    &mut batch,
                );
            }
        }
        tokio::select! {
            r = &mut reader => break Some(r),
            _ = &mut stop => break None,
            w = wr.write_all(&batch) => match w {
                Ok(()) => {
                    sent += opts.batch as u64;
                    bytes += batch.len() as u64;
                }
                // The server is closing: its last words are still to be read.
                Err(_) => break timeout(LAST_WORDS, &mut reader).await.ok(),
            },
        }
    };
    tally.add("sent:messages", sent);
    tally.add("sent:bytes", bytes);
    match ended {
        Some((verdict, end, seen, first_limited)) => {
            for (k, n) in seen {
                tally.add(format!("received:{k}"), n);
            }
            if let Some(d) = first_limited {
                tally.time("first_rate_limited", d);
            }
            tally.one(format!("ending:{}", verdict.ending(&end)));
            tally.time("cut_after", started.elapsed());
            tally.time("cut_at", begin.elapsed());
        }
        None if Instant::now() >= deadline => tally.one("ending:held_to_end"),
        None => tally.one("ending:write_failed"),
    }
}

/// Connecting task `i` of the connect flood: open, `hello`, first answer, reset, again.
async fn connects(i: u32, opts: &Options, tally: &Tally, deadline: Instant) {
    let source = opts.sources.map(|s| s.nth(u64::from(i)));
    let mut round = 0u64;
    while Instant::now() < deadline {
        round += 1;
        let conn = establish(i, round, opts, source, tally, deadline).await;
        match conn {
            // A reset, not a FIN: no TIME_WAIT left on this side, so one address can
            // keep opening connections for as long as the attack lasts.
            Some(conn) => {
                let _ = conn.stream.set_zero_linger();
            }
            None => sleep(Duration::from_millis(1)).await,
        }
    }
}
