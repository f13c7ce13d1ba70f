//! The benchmark suite: each scenario starts its servers and load generators as separate
//! processes, measures them from `/proc`, and returns rows for the report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::{sleep, timeout};

use crate::child::{free_addr, Placement, Proc};
use crate::procfs::{rss_bytes, CpuMeter};

/// CPU for servers and for load generators, when pinned.
pub(crate) const SERVER_CPU: usize = 0;
pub(crate) const LOAD_CPU: usize = 1;
/// `command_rate` of the request/response scenario's Rally: its maximum, so the limit
/// never throttles what is being measured.
pub(crate) const REQRESP_COMMAND_RATE: &str = "100000";
/// How long a server gets to start listening.
pub(crate) const START_LIMIT: Duration = Duration::from_secs(20);
/// How long a server gets to stop after SIGTERM (Rally drains; nothing is connected by then).
pub(crate) const STOP_LIMIT: Duration = Duration::from_secs(40);

/// What the suite runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// This binary: servers and load generators are copies of it.
    pub exe: PathBuf,
    /// Player counts of the arena scenario.
    pub players: Vec<u32>,
    /// Transports of the arena scenario: "tcp", "ws".
    pub transports: Vec<&'static str>,
    /// Bots started per second.
    pub ramp: u32,
    /// Time after the last bot started before measuring.
    pub settle: Duration,
    /// The measured window.
    pub window: Duration,
    /// Whether to run the reference designs (tasks, poll) beside Rally.
    pub reference: bool,
    /// The highest-count search, if any.
    pub search: Option<Search>,
    /// Idle connections to hold (the `concurrency_limit` maximum is 10,000).
    pub idle: Option<u32>,
    /// The request/response comparison, if any.
    pub reqresp: Option<ReqResp>,
    /// The Colyseus peer: its `run.sh` and player counts.
    pub colyseus: Option<(PathBuf, Vec<u32>)>,
    /// Where each process runs.
    pub placement: Placement,
    /// The p99 bound of the scenario, in milliseconds.
    pub p99_bound_ms: f64,
    /// Where load generators write their files.
    pub scratch: PathBuf,
    /// Flags given to every `rally serve` after the suite's own (`--server-arg`), e.g.
    /// `--input-rate=40`: a run that changes a default says so in its command line.
    pub server_args: Vec<String>,
    /// The abuse scenario, if it runs.
    pub abuse: Option<crate::abuse::suite::Abuse>,
    /// The cluster scenario, if it runs.
    pub cluster: Option<crate::cluster::Plan>,
}

/// The highest-count search.
#[derive(Debug, Clone)]
pub struct Search {
    /// Transport searched.
    pub transport: &'static str,
    /// First count tried.
    pub from: u32,
    /// Step between counts.
    pub step: u32,
    /// Highest count tried.
    pub max: u32,
}

/// The request/response comparison.
#[derive(Debug, Clone)]
pub struct ReqResp {
    /// Connections.
    pub conns: u32,
    /// Measured seconds per run.
    pub secs: u64,
    /// Runs per target, alternating; the median is reported.
    pub rounds: u32,
}

/// The two arena servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// `rally serve`.
    Rally,
    /// The "tasks" reference design ([`crate::designs::tasks`]).
    Tasks,
    /// The "poll" reference design ([`crate::designs::poll`]).
    Poll,
}

impl Peer {
    /// The reference designs, run beside Rally.
    pub const REFERENCES: [Peer; 2] = [Peer::Tasks, Peer::Poll];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Rally => "rally",
            Peer::Tasks => "tasks",
            Peer::Poll => "poll",
        }
    }
}

/// One arena run.
#[derive(Debug, Clone, Default)]
pub struct ArenaRow {
    /// "rally", "tasks" or "poll" (or "colyseus" in the peer table).
    pub peer: String,
    /// "tcp" or "ws".
    pub transport: String,
    /// Bots started.
    pub players: u32,
    /// Bots that joined a room.
    pub connected: u64,
    /// Errors counted by the bots.
    pub errors: u64,
    /// The kinds of errors, if any.
    pub errors_by_kind: String,
    /// Server CPU-seconds per second over the window.
    pub server_cores: f64,
    /// Bots CPU-seconds per second over the window.
    pub bots_cores: f64,
    /// Server RSS with no player, bytes.
    pub rss_empty: u64,
    /// Server RSS at the end of the window, bytes.
    pub rss_loaded: u64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Ticks the server skipped (Rally only: from `/metrics`).
    pub missed_ticks: Option<u64>,
    /// Why the run did not complete, if it did not.
    pub failure: Option<String>,
}

impl ArenaRow {
    /// Server cores per 1,000 connected players.
    pub fn cores_per_1000(&self) -> f64 {
        if self.connected == 0 {
            return 0.0;
        }
        self.server_cores * 1000.0 / self.connected as f64
    }

    /// RSS per connected player beyond the empty server, bytes.
    pub fn rss_per_player(&self) -> f64 {
        if self.connected == 0 {
            return 0.0;
        }
        self.rss_loaded.saturating_sub(self.rss_empty) as f64 / self.connected as f64
    }

    /// Whether the run met the scenario: all joined, no error, p99 within the bound.
    pub fn passes(&self, p99_bound_ms: f64) -> bool {
        self.failure.is_none()
            && self.connected == u64::from(self.players)
            && self.errors == 0
            && self.p99_ms <= p99_bound_ms
    }
}

/// A server process and its addresses.
pub(crate) struct Server {
    peer: Peer,
    pub(crate) proc: Proc,
    pub(crate) tcp: SocketAddr,
    pub(crate) ws: SocketAddr,
    pub(crate) admin: Option<SocketAddr>,
    /// Rally's database directory, removed with the value.
    _data: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `peer`; Rally gets `opts.server_args` after its own flags, then `extra`.
    pub(crate) async fn start(
        opts: &Options,
        peer: Peer,
        extra: &[&str],
    ) -> anyhow::Result<Server> {
        let (tcp, ws, admin) = (free_addr()?, free_addr()?, free_addr()?);
        // Rally keeps accounts in a database: a throwaway one per run, not ./rally.db.
        let data = match peer {
            Peer::Rally => Some(tempfile::tempdir()?),
            Peer::Tasks | Peer::Poll => None,
        };
        let mut args: Vec<String> = match peer {
            Peer::Rally => vec![
                "serve".into(),
                "--tcp".into(),
                tcp.to_string(),
                "--http".into(),
                ws.to_string(),
                "--admin".into(),
                admin.to_string(),
                "--concurrency-limit".into(),
                "10000".into(),
                "--log-level".into(),
                "warn".into(),
                "--database-url".into(),
                format!(
                    "sqlite://{}",
                    data.as_ref()
                        .map(|d| d.path().join("rally.db"))
                        .unwrap_or_default()
                        .display()
                ),
                // The arena scenario measures the realtime engine; logins are left out:
                // thousands of first logins a second are a write burst SQLite with
                // synchronous=FULL cannot take (issue notes), which would time out
                // bots' logins rather than measure play.
                "--auth-required".into(),
                "false".into(),
            ],
            Peer::Tasks | Peer::Poll => vec![
                "bench-worker".into(),
                format!("{}-arena", peer.name()),
                "--tcp".into(),
                tcp.to_string(),
                "--ws".into(),
                ws.to_string(),
            ],
        };
        if peer == Peer::Rally {
            args.extend(opts.server_args.iter().cloned());
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut cmd = opts.placement.command(SERVER_CPU, &opts.exe, &args);
        cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
        let mut proc = Proc::spawn(format!("{} server", peer.name()), cmd)?;
        proc.wait_listening(tcp, START_LIMIT).await?;
        proc.wait_listening(ws, START_LIMIT).await?;
        Ok(Server {
            peer,
            proc,
            tcp,
            ws,
            admin: (peer == Peer::Rally).then_some(admin),
            _data: data,
        })
    }

    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        let status = self.proc.terminate(STOP_LIMIT).await?;
        // Rally drains and exits 0; the reference has no graceful shutdown and dies of
        // the signal, which is expected.
        if self.peer == Peer::Rally && !status.success() {
            bail!("{} exited with {status}", self.proc.name);
        }
        Ok(())
    }
}

/// Runs the arena scenario once.
pub async fn arena(opts: &Options, peer: Peer, transport: &str, players: u32) -> ArenaRow {
    let mut row = ArenaRow {
        peer: peer.name().to_owned(),
        transport: transport.to_owned(),
        players,
        ..ArenaRow::default()
    };
    eprintln!("bench: arena {} {transport} {players} players", peer.name());
    if let Err(e) = arena_into(opts, peer, transport, players, &mut row).await {
        eprintln!("bench:   failed: {e:#}");
        row.failure = Some(format!("{e:#}"));
    } else {
        eprintln!(
            "bench:   connected {} errors {} server {:.3} cores ({:.3}/1000) bots {:.3} cores, {:.2} KB/player, p50 {:.1} p99 {:.1} ms",
            row.connected,
            row.errors,
            row.server_cores,
            row.cores_per_1000(),
            row.bots_cores,
            row.rss_per_player() / 1000.0,
            row.p50_ms,
            row.p99_ms
        );
    }
    row
}

async fn arena_into(
    opts: &Options,
    peer: Peer,
    transport: &str,
    players: u32,
    row: &mut ArenaRow,
) -> anyhow::Result<()> {
    let server = Server::start(opts, peer, &[]).await?;
    // Let the process finish starting before reading its empty footprint.
    sleep(Duration::from_secs(1)).await;
    row.rss_empty = rss_bytes(server.proc.pid)?;
    let ramp_secs = players.div_ceil(opts.ramp.max(1));
    let measure_at = Duration::from_secs(ramp_secs.into()) + opts.settle;
    let duration = measure_at + opts.window + Duration::from_secs(2);
    let json = opts
        .scratch
        .join(format!("bots-{}-{transport}-{players}.json", peer.name()));
    let _ = std::fs::remove_file(&json);
    let addr = if transport == "ws" {
        server.ws
    } else {
        server.tcp
    };
    let args: Vec<String> = vec![
        "bots".into(),
        "--addr".into(),
        addr.to_string(),
        "--transport".into(),
        transport.into(),
        "--bots".into(),
        players.to_string(),
        "--duration".into(),
        duration.as_secs().to_string(),
        "--ramp".into(),
        opts.ramp.to_string(),
        "--json".into(),
        json.display().to_string(),
    ];
    let mut cmd = opts.placement.command(LOAD_CPU, &opts.exe, &args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut bots = Proc::spawn("bots", cmd)?;
    sleep(measure_at).await;
    let server_cpu = CpuMeter::start(server.proc.pid)?;
    let bots_cpu = CpuMeter::start(bots.pid)?;
    sleep(opts.window).await;
    row.server_cores = server_cpu.cores()?;
    row.bots_cores = bots_cpu.cores()?;
    row.rss_loaded = rss_bytes(server.proc.pid)?;
    let status = bots.wait(duration + Duration::from_secs(60)).await?;
    if !status.success() {
        bail!("bots exited with {status}");
    }
    let report = BotsReport::read(&json)?;
    row.connected = report.connected;
    row.errors = report.errors;
    row.errors_by_kind = report.errors_by_kind;
    row.p50_ms = report.p50_ms;
    row.p99_ms = report.p99_ms;
    if let Some(admin) = server.admin {
        row.missed_ticks = missed_ticks(admin).await.ok();
    }
    server.stop().await
}

/// Reads `rally_missed_ticks_total` from Rally's `/metrics`.
pub async fn missed_ticks(admin: SocketAddr) -> anyhow::Result<u64> {
    metric(admin, "rally_missed_ticks_total")
        .await
        .map(|v| v as u64)
}

/// Reads the metric `name` from Rally's `/metrics`: the sum over its label sets.
pub async fn metric(admin: SocketAddr, name: &str) -> anyhow::Result<f64> {
    let text = http_get(admin, "/metrics").await?;
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // The name itself, not a longer one it is the start of.
        if rest.starts_with([' ', '{']) {
            // `name value` or `name{labels} value`: the value is the last field.
            if let Some(v) = rest
                .split_whitespace()
                .last()
                .and_then(|v| v.parse::<f64>().ok())
            {
                *found.get_or_insert(0.0) += v;
            }
        }
    }
    found.with_context(|| format!("no {name} in /metrics"))
}

/// A plain HTTP/1.0 GET on loopback, returning the body.
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    timeout(Duration::from_secs(5), async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut text = String::new();
        s.read_to_string(&mut text).await?;
        let (head, body) = text.split_once("\r\n\r\n").context("no HTTP head")?;
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            bail!("GET {path}: {}", head.lines().next().unwrap_or(""));
        }
        Ok(body.to_owned())
    })
    .await
    .context("GET timed out")?
}

/// The highest-count search for each of `peers`: up from `from` while the scenario
/// passes, or down when the first count fails. The peers take turns, one run each per
/// round, so a machine that speeds up or slows down during the search (a shared VM
/// does) shifts every peer's figure alike instead of favouring whichever ran last.
/// Returns every run, grouped by peer in the order given, each peer's in the order run.
pub async fn search(opts: &Options, s: &Search, peers: &[Peer]) -> Vec<ArenaRow> {
    /// One peer's search: the count of its next run, its direction, whether it is done.
    struct Walk {
        peer: Peer,
        next: u32,
        up: Option<bool>,
        runs: Vec<ArenaRow>,
        done: bool,
    }
    let mut walks: Vec<Walk> = peers
        .iter()
        .map(|&peer| Walk {
            peer,
            next: s.from,
            up: None,
            runs: Vec::new(),
            done: false,
        })
        .collect();
    while walks.iter().any(|w| !w.done) {
        for w in walks.iter_mut().filter(|w| !w.done) {
            let row = arena(opts, w.peer, s.transport, w.next).await;
            let pass = row.passes(opts.p99_bound_ms);
            w.runs.push(row);
            let up = *w.up.get_or_insert(pass);
            // Up: stop at the first failure. Down: stop at the first success.
            let next = if up {
                w.next.saturating_add(s.step)
            } else {
                w.next.saturating_sub(s.step)
            };
            w.done =
                (w.runs.len() > 1 && pass != up) || next == 0 || next > s.max || w.runs.len() >= 12;
            w.next = next;
        }
    }
    walks.into_iter().flat_map(|w| w.runs).collect()
}

/// The idle scenario's figures.
#[derive(Debug, Clone, Default)]
pub struct IdleRow {
    /// Connections asked for.
    pub conns: u32,
    /// Connections past the handshake.
    pub connected: u64,
    /// Time to connect them all.
    pub connect_secs: f64,
    /// Server RSS empty and with every connection open.
    pub rss_empty: u64,
    /// Server RSS with every connection open.
    pub rss_loaded: u64,
    /// Server CPU while they idle.
    pub idle_cores: f64,
    /// Why it did not complete, if it did not.
    pub failure: Option<String>,
}

/// Holds `conns` idle connections on Rally past the handshake.
pub async fn idle(opts: &Options, conns: u32) -> IdleRow {
    eprintln!("bench: {conns} idle connections");
    let mut row = IdleRow {
        conns,
        ..IdleRow::default()
    };
    if let Err(e) = idle_into(opts, conns, &mut row).await {
        eprintln!("bench:   failed: {e:#}");
        row.failure = Some(format!("{e:#}"));
    } else {
        eprintln!(
            "bench:   {} connected in {:.2} s, RSS {:.1} MB (empty {:.1} MB), idle CPU {:.3} cores",
            row.connected,
            row.connect_secs,
            row.rss_loaded as f64 / 1e6,
            row.rss_empty as f64 / 1e6,
            row.idle_cores
        );
    }
    row
}

async fn idle_into(opts: &Options, conns: u32, row: &mut IdleRow) -> anyhow::Result<()> {
    // Idle players send nothing: a timeout longer than the hold keeps them.
    let server = Server::start(opts, Peer::Rally, &["--timeout-ms", "60000"]).await?;
    sleep(Duration::from_secs(1)).await;
    row.rss_empty = rss_bytes(server.proc.pid)?;
    let hold = opts.window + Duration::from_secs(3);
    let args: Vec<String> = vec![
        "bench-worker".into(),
        "idle".into(),
        "--addr".into(),
        server.tcp.to_string(),
        "--conns".into(),
        conns.to_string(),
        "--hold-secs".into(),
        hold.as_secs().to_string(),
    ];
    let mut cmd = opts.placement.command(LOAD_CPU, &opts.exe, &args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut load = Proc::spawn("idle load", cmd)?;
    let stdout = load.stdout().context("idle load stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = timeout(Duration::from_secs(120), lines.next_line())
        .await
        .context("idle connections not all open within 120 s")??
        .context("the idle load ended before connecting")?;
    let v: Value = serde_json::from_str(&line).context("idle load output")?;
    row.connected = v["connected"].as_u64().unwrap_or(0);
    row.connect_secs = v["connect_secs"].as_f64().unwrap_or(f64::NAN);
    sleep(Duration::from_secs(1)).await;
    let cpu = CpuMeter::start(server.proc.pid)?;
    sleep(opts.window).await;
    row.idle_cores = cpu.cores()?;
    row.rss_loaded = rss_bytes(server.proc.pid)?;
    load.wait(hold + Duration::from_secs(30)).await?;
    server.stop().await
}

/// The request/response figures.
#[derive(Debug, Clone, Default)]
pub struct ReqRespRow {
    /// Connections.
    pub conns: u32,
    /// Replies per second of each Rally run.
    pub rally: Vec<f64>,
    /// Replies per second of each echo run.
    pub echo: Vec<f64>,
    /// Server CPU of each Rally run.
    pub rally_cores: Vec<f64>,
    /// Server CPU of each echo run.
    pub echo_cores: Vec<f64>,
    /// Why it did not complete, if it did not.
    pub failure: Option<String>,
}

impl ReqRespRow {
    /// Median Rally rate over median echo rate.
    pub fn ratio(&self) -> f64 {
        median(&self.rally) / median(&self.echo)
    }
}

/// The median of `xs` (NaN when empty).
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Runs request/response against Rally and the echo server, alternating.
pub async fn reqresp(opts: &Options, rr: &ReqResp) -> ReqRespRow {
    let mut row = ReqRespRow {
        conns: rr.conns,
        ..ReqRespRow::default()
    };
    for round in 0..rr.rounds {
        // Alternate which goes first, so a drift in the machine's load hits both alike.
        let order = if round % 2 == 0 {
            ["rally", "echo"]
        } else {
            ["echo", "rally"]
        };
        for target in order {
            eprintln!(
                "bench: request/response {target}, {} connections, round {}",
                rr.conns,
                round + 1
            );
            match reqresp_once(opts, rr, target).await {
                Ok((rate, cores)) => {
                    eprintln!("bench:   {rate:.0} replies/s, server {cores:.3} cores");
                    let (rates, cpus) = if target == "rally" {
                        (&mut row.rally, &mut row.rally_cores)
                    } else {
                        (&mut row.echo, &mut row.echo_cores)
                    };
                    rates.push(rate);
                    cpus.push(cores);
                }
                Err(e) => {
                    eprintln!("bench:   failed: {e:#}");
                    row.failure = Some(format!("{target}: {e:#}"));
                }
            }
        }
    }
    row
}

async fn reqresp_once(opts: &Options, rr: &ReqResp, target: &str) -> anyhow::Result<(f64, f64)> {
    let (server, addr) = if target == "rally" {
        // The scenario measures how fast the engine answers; the default command_rate
        // (10 a second per connection, pings included) would cap it by design.
        let s = Server::start(opts, Peer::Rally, &["--command-rate", REQRESP_COMMAND_RATE]).await?;
        let addr = s.tcp;
        (Some(s), addr)
    } else {
        (None, free_addr()?)
    };
    let mut echo = None;
    if server.is_none() {
        let args: Vec<String> = vec![
            "bench-worker".into(),
            "echo".into(),
            "--addr".into(),
            addr.to_string(),
        ];
        let mut cmd = opts.placement.command(SERVER_CPU, &opts.exe, &args);
        cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
        let mut p = Proc::spawn("echo server", cmd)?;
        p.wait_listening(addr, START_LIMIT).await?;
        echo = Some(p);
    }
    let server_pid = server
        .as_ref()
        .map(|s| s.proc.pid)
        .or(echo.as_ref().map(|p| p.pid))
        .context("no server")?;
    let warmup = Duration::from_secs(2);
    let args: Vec<String> = vec![
        "bench-worker".into(),
        "reqresp".into(),
        "--addr".into(),
        addr.to_string(),
        "--target".into(),
        target.into(),
        "--conns".into(),
        rr.conns.to_string(),
        "--warmup-secs".into(),
        warmup.as_secs().to_string(),
        "--secs".into(),
        rr.secs.to_string(),
    ];
    let mut cmd = opts.placement.command(LOAD_CPU, &opts.exe, &args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut load = Proc::spawn("request/response load", cmd)?;
    let mut stdout = load.stdout().context("load stdout")?;
    // CPU is read over the measured part: after the connections and the warm-up.
    sleep(warmup + Duration::from_millis(500)).await;
    let cpu = CpuMeter::start(server_pid)?;
    sleep(Duration::from_secs(rr.secs.saturating_sub(1).max(1))).await;
    let cores = cpu.cores()?;
    let mut out = String::new();
    timeout(
        Duration::from_secs(rr.secs + 60),
        stdout.read_to_string(&mut out),
    )
    .await
    .context("request/response load did not finish")??;
    load.wait(Duration::from_secs(30)).await?;
    if let Some(s) = server {
        s.stop().await?;
    }
    if let Some(mut p) = echo {
        let _ = p.terminate(STOP_LIMIT).await;
    }
    let v: Value = serde_json::from_str(out.trim()).context("request/response load output")?;
    if v["failed_connections"].as_u64().unwrap_or(0) > 0 {
        bail!("{} connections failed", v["failed_connections"]);
    }
    Ok((v["replies_per_sec"].as_f64().unwrap_or(f64::NAN), cores))
}

/// Runs the Colyseus peer's script for `counts` and returns one row per count.
pub async fn colyseus(script: &Path, counts: &[u32]) -> Vec<ArenaRow> {
    eprintln!("bench: Colyseus peer ({}) at {counts:?}", script.display());
    match colyseus_rows(script, counts).await {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("bench:   failed: {e:#}");
            vec![ArenaRow {
                peer: "colyseus".into(),
                transport: "ws".into(),
                failure: Some(format!("{e:#}")),
                ..ArenaRow::default()
            }]
        }
    }
}

async fn colyseus_rows(script: &Path, counts: &[u32]) -> anyhow::Result<Vec<ArenaRow>> {
    let port = free_addr()?.port();
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(script)
        .args(counts.iter().map(u32::to_string))
        .env("PORT", port.to_string())
        .env("DUR", "20")
        .env("COLYSEUS_VERSION", colyseus_version())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Kept, not inherited: a failing script (npm --silent, a crashed node) says why
        // in the report as well as on the terminal.
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let limit = Duration::from_secs(600 + 40 * counts.len() as u64);
    let out = timeout(limit, cmd.output())
        .await
        .context("the Colyseus script did not finish")??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines() {
        eprintln!("bench:   colyseus: {line}");
    }
    if !out.status.success() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let tail: Vec<&str> = stderr
            .lines()
            .chain(stdout.lines())
            .filter(|l| !l.trim().is_empty())
            .collect();
        let tail = tail[tail.len().saturating_sub(5)..].join(" / ");
        bail!(
            "the Colyseus script ({}) exited with {}: {}",
            script.display(),
            out.status,
            if tail.is_empty() {
                "it printed nothing"
            } else {
                tail.as_str()
            }
        );
    }
    let mut rows = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let n = v["N"].as_u64().unwrap_or(0);
        let rss = v["server_rss_mb"].as_f64().unwrap_or(f64::NAN);
        let per = v["rss_per_player_kb"].as_f64().unwrap_or(f64::NAN);
        let rss_loaded = (rss * 1024.0 * 1024.0) as u64;
        rows.push(ArenaRow {
            peer: "colyseus".into(),
            transport: "ws".into(),
            players: n as u32,
            connected: v["joined"].as_u64().unwrap_or(0),
            errors: v["errors"].as_u64().unwrap_or(0),
            server_cores: v["server_cpu_cores"].as_f64().unwrap_or(f64::NAN),
            bots_cores: f64::NAN,
            rss_loaded,
            rss_empty: rss_loaded.saturating_sub((per * 1024.0 * n as f64) as u64),
            p50_ms: v["p50"].as_f64().unwrap_or(f64::NAN),
            p99_ms: v["p99"].as_f64().unwrap_or(f64::NAN),
            ..ArenaRow::default()
        });
    }
    if rows.is_empty() {
        bail!("the Colyseus script printed no result");
    }
    Ok(rows)
}

/// The Colyseus version the peer script runs: `COLYSEUS_VERSION` if set, else 0.16, the
/// version issue 12's target is stated against (the script's own default is newer).
pub fn colyseus_version() -> String {
    std::env::var("COLYSEUS_VERSION").unwrap_or_else(|_| "0.16".to_owned())
}

/// What a bench reads from a `rally bots --json` report.
pub(crate) struct BotsReport {
    pub(crate) connected: u64,
    pub(crate) errors: u64,
    /// `kind: count` pairs, comma-separated.
    pub(crate) errors_by_kind: String,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) join_p50_ms: f64,
    pub(crate) join_p99_ms: f64,
}

impl BotsReport {
    /// Reads the report the bots wrote to `path`; missing figures read as 0 or NaN.
    pub(crate) fn read(path: &std::path::Path) -> anyhow::Result<BotsReport> {
        let report: Value = serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing the bots' JSON in {}", path.display()))?;
        let ms = |section: &str, q: &str| report[section][q].as_f64().unwrap_or(f64::NAN);
        Ok(BotsReport {
            connected: report["connected"].as_u64().unwrap_or(0),
            errors: report["errors"].as_u64().unwrap_or(0),
            errors_by_kind: report["errors_by_kind"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            p50_ms: ms("latency_ms", "p50"),
            p99_ms: ms("latency_ms", "p99"),
            join_p50_ms: ms("join_ms", "p50"),
            join_p99_ms: ms("join_ms", "p99"),
        })
    }
}
