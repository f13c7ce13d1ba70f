//! The cluster scenario (`rally bench --cluster`, `docs/cluster.md`): a nats-server with
//! JetStream and three release `rally serve` nodes on loopback, each with its own SQLite
//! (player data is not exercised), all pinned like the single-node servers.
//!
//! - **Join latency, local vs redirected**: one player sits in a room on node n1; then,
//!   alternately, a fresh Rust SDK client joins through n1 (a free seat there: local) and
//!   one joins through n2 (no room there, so n2 reserves a seat on n1 over NATS and
//!   answers `redirect`, which the SDK follows: a new connection to n1, `hello`,
//!   `claim_seat`). Each join is timed from `join` to the room; connecting first is not.
//!   Each player then leaves, so the seats stay free.
//! - **Players served by three nodes**: arena players spread evenly by address over the
//!   nodes (one load process per node, `bench-worker sdk-players`, on the Rust SDK, which
//!   follows the redirects a node answers when its rooms are full and another's are not);
//!   each node's CPU, RSS and players at the end of the window, and each load process's
//!   input-to-state p50/p99.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use rally_bots::source::{SourceIps, HONEST_BASE};
use rally_client::{Client, Config};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::{sleep, timeout, Instant};

use crate::child::{free_addr, Proc};
use crate::procfs::{rss_bytes, CpuMeter};
use crate::suite::{metric, BotsReport, Options, Peer, Server, LOAD_CPU, SERVER_CPU};

/// The admin token the scenario gives its nodes (loopback only, for `/admin/cluster`).
const ADMIN_TOKEN: &str = "bench-cluster-admin-token-0123";
/// The bound on one client step (connect, join, leave) and on the cluster forming.
const STEP_LIMIT: Duration = Duration::from_secs(10);

/// What the cluster scenario runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The nats-server binary (`scripts/nats.sh bin`).
    pub nats_server: PathBuf,
    /// Nodes started (node ids n1, n2, ...).
    pub nodes: usize,
    /// Joins timed of each kind (local, redirected).
    pub joins: u32,
    /// Player counts of the "players served" runs, spread evenly over the nodes.
    pub players: Vec<u32>,
}

/// Join latency, local vs redirected.
#[derive(Debug, Clone, Default)]
pub struct Joins {
    /// Local joins' times, ms.
    pub local_ms: Vec<f64>,
    /// Redirected joins' times, ms.
    pub redirected_ms: Vec<f64>,
    /// Redirects counted by the node of the local joins (0 when they all stayed local).
    pub local_redirects: f64,
    /// Redirects counted by the node of the redirected joins.
    pub redirects: f64,
}

/// One node under the players run.
#[derive(Debug, Clone, Default)]
pub struct NodeLoad {
    /// Its node id.
    pub node: String,
    /// Players sent to its address.
    pub sent: u32,
    /// Of those, players that joined a room (here or where it redirected them).
    pub joined: u64,
    /// Errors its load process counted.
    pub errors: u64,
    /// The kinds of errors, if any.
    pub errors_by_kind: String,
    /// Players seated on this node at the end of the window (`rally_players`).
    pub seated: f64,
    /// Server CPU-seconds per second over the window.
    pub cores: f64,
    /// Server RSS at the end of the window, bytes.
    pub rss: u64,
    /// Input-to-state latency of the players sent to it, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// One "players served" run.
#[derive(Debug, Clone, Default)]
pub struct PlayersRun {
    /// Players in all.
    pub players: u32,
    /// Each node.
    pub nodes: Vec<NodeLoad>,
    /// The load processes' CPU, summed, cores.
    pub load_cores: f64,
    /// Redirects the nodes answered during the run.
    pub redirects: f64,
    /// Why it did not complete, if it did not.
    pub failure: Option<String>,
}

impl PlayersRun {
    /// Every player joined, no error, every node's p99 within `bound`.
    pub fn passes(&self, bound: f64) -> bool {
        self.failure.is_none()
            && self.nodes.iter().map(|n| n.joined).sum::<u64>() == u64::from(self.players)
            && self
                .nodes
                .iter()
                .all(|n| n.errors == 0 && n.p99_ms <= bound)
    }
}

/// What the scenario measured.
#[derive(Debug, Clone, Default)]
pub struct ClusterResult {
    /// `nats-server --version`.
    pub nats_version: String,
    /// Nodes.
    pub nodes: usize,
    /// Join latency, if measured.
    pub joins: Option<Joins>,
    /// The players runs.
    pub players: Vec<PlayersRun>,
    /// Why the scenario stopped early, if it did.
    pub failure: Option<String>,
    /// `/proc/loadavg` when the scenario started: how busy the shared machine was.
    pub loadavg: String,
}

/// The value at quantile `q` of `xs` (nearest rank), or NaN when empty.
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Runs the scenario: starts nats-server and the nodes, measures, stops them.
pub async fn run(opts: &Options, plan: &Plan) -> ClusterResult {
    let mut result = ClusterResult {
        nats_version: nats_version(&plan.nats_server),
        nodes: plan.nodes,
        loadavg: std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        ..ClusterResult::default()
    };
    eprintln!(
        "bench: cluster: {} nodes over {}",
        plan.nodes, result.nats_version
    );
    if let Err(e) = run_into(opts, plan, &mut result).await {
        eprintln!("bench:   cluster failed: {e:#}");
        result.failure = Some(format!("{e:#}"));
    }
    result
}

fn nats_version(bin: &std::path::Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "nats-server (version unknown)".to_owned())
}

async fn run_into(opts: &Options, plan: &Plan, result: &mut ClusterResult) -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let nats_addr = free_addr()?;
    let args: Vec<String> = [
        "-a",
        "127.0.0.1",
        "-p",
        &nats_addr.port().to_string(),
        "-js",
        "-sd",
        &store.path().display().to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    let mut cmd = opts.placement.command(SERVER_CPU, &plan.nats_server, &args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut nats = Proc::spawn("nats-server", cmd)?;
    nats.wait_listening(nats_addr, STEP_LIMIT).await?;
    let url = format!("nats://{nats_addr}");
    let mut nodes = Vec::new();
    for i in 1..=plan.nodes {
        let id = format!("n{i}");
        let extra = [
            "--cluster-nats-url",
            &url,
            "--node-id",
            &id,
            "--admin-token",
            ADMIN_TOKEN,
        ];
        nodes.push((id.clone(), Server::start(opts, Peer::Rally, &extra).await?));
    }
    let outcome = measure(opts, plan, &nodes, result).await;
    for (_, node) in nodes {
        node.stop().await?;
    }
    let _ = nats.terminate(STEP_LIMIT).await;
    outcome
}

async fn measure(
    opts: &Options,
    plan: &Plan,
    nodes: &[(String, Server)],
    result: &mut ClusterResult,
) -> anyhow::Result<()> {
    let expected = nodes.len() as f64;
    for (id, node) in nodes {
        let admin = admin(node)?;
        let started = Instant::now();
        while metric(admin, "rally_cluster_nodes_alive").await.ok() != Some(expected) {
            if started.elapsed() > STEP_LIMIT {
                bail!("node {id} did not see all {expected} nodes within {STEP_LIMIT:?}");
            }
            sleep(Duration::from_millis(100)).await;
        }
    }
    if plan.joins > 0 && nodes.len() >= 2 {
        eprintln!(
            "bench: cluster join latency, {} local and {0} redirected",
            plan.joins
        );
        let joins = join_latency(&nodes[0], &nodes[1], plan.joins).await?;
        eprintln!(
            "bench:   local p50 {:.2} p99 {:.2} ms; redirected p50 {:.2} p99 {:.2} ms; redirects counted {} (local node {})",
            quantile(&joins.local_ms, 0.5),
            quantile(&joins.local_ms, 0.99),
            quantile(&joins.redirected_ms, 0.5),
            quantile(&joins.redirected_ms, 0.99),
            joins.redirects,
            joins.local_redirects
        );
        result.joins = Some(joins);
    }
    for &players in &plan.players {
        eprintln!(
            "bench: cluster players {players} over {} nodes",
            nodes.len()
        );
        let mut run = PlayersRun {
            players,
            ..PlayersRun::default()
        };
        if let Err(e) = players_into(opts, nodes, players, &mut run).await {
            eprintln!("bench:   failed: {e:#}");
            run.failure = Some(format!("{e:#}"));
        } else {
            for n in &run.nodes {
                eprintln!(
                    "bench:   {}: sent {} joined {} errors {} seated {} cpu {:.3} p50 {:.1} p99 {:.1} ms",
                    n.node, n.sent, n.joined, n.errors, n.seated, n.cores, n.p50_ms, n.p99_ms
                );
            }
        }
        result.players.push(run);
        // Let the rooms of the run end before the next one.
        sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}

fn admin(node: &Server) -> anyhow::Result<SocketAddr> {
    node.admin.context("a Rally node has an admin listener")
}

/// Times `joins` local joins through `owner` and as many redirected ones through `other`,
/// alternately, with a player sitting in a room on `owner` throughout.
async fn join_latency(
    (owner_id, owner): &(String, Server),
    (_, other): &(String, Server),
    joins: u32,
) -> anyhow::Result<Joins> {
    let (anchor, _anchor_events) = timeout(
        STEP_LIMIT,
        Client::connect(Config::new(owner.tcp.to_string())),
    )
    .await
    .context("connecting the anchor player")??;
    let room = timeout(STEP_LIMIT, anchor.join("arena"))
        .await
        .context("the anchor's join")??;
    // The other node must know the room (its directory heartbeat) to redirect there.
    let started = Instant::now();
    while !lists_room(admin(other)?, owner_id, room.room_id).await {
        if started.elapsed() > STEP_LIMIT {
            bail!(
                "node {owner_id}'s room {} not in the other node's directory",
                room.room_id
            );
        }
        sleep(Duration::from_millis(100)).await;
    }
    let redirects = |node: &Server| {
        let admin = node.admin;
        async move {
            match admin {
                Some(a) => metric(a, "rally_cluster_redirects_total")
                    .await
                    .unwrap_or(0.0),
                None => 0.0,
            }
        }
    };
    let (owner_before, other_before) = (redirects(owner).await, redirects(other).await);
    let mut out = Joins::default();
    // Sequential joins, a connection each (two for a redirected one): spread over 64
    // addresses, each opens a few a second, under the server's per-address rate.
    let from = SourceIps::new(source_block(0), 64).map_err(anyhow::Error::msg)?;
    for i in 0..u64::from(joins) {
        out.local_ms.push(
            timed_join(owner.tcp, from.nth(2 * i))
                .await
                .context("a local join")?,
        );
        out.redirected_ms.push(
            timed_join(other.tcp, from.nth(2 * i + 1))
                .await
                .context("a redirected join")?,
        );
    }
    out.local_redirects = redirects(owner).await - owner_before;
    out.redirects = redirects(other).await - other_before;
    anchor.close().await;
    Ok(out)
}

/// Block `k` of 256 loopback addresses from [`HONEST_BASE`]: block 0 for the join-latency
/// clients, block 1 + i for load process i, so no two share an address.
fn source_block(k: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(u32::from(HONEST_BASE) + 256 * k as u32)
}

/// Connects to `addr` from `from`, then times `join("arena")`; leaves and closes.
/// Milliseconds.
async fn timed_join(addr: SocketAddr, from: std::net::IpAddr) -> anyhow::Result<f64> {
    let config = Config::new(addr.to_string()).source_ip(from);
    let (client, _events) = timeout(STEP_LIMIT, Client::connect(config))
        .await
        .context("connect timed out")??;
    let started = Instant::now();
    timeout(STEP_LIMIT, client.join("arena"))
        .await
        .context("join timed out")??;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    // Leaving (not just closing) gives the seat back at once instead of holding it for a
    // resume, so the room keeps free seats for the next joins.
    timeout(STEP_LIMIT, client.leave())
        .await
        .context("leave timed out")??;
    client.close().await;
    Ok(ms)
}

/// Whether `admin`'s `/admin/cluster` lists room `room_id` on node `owner`.
async fn lists_room(admin: SocketAddr, owner: &str, room_id: u64) -> bool {
    let Ok(body) = admin_get(admin, "/admin/cluster").await else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return false;
    };
    v["nodes"].as_array().into_iter().flatten().any(|n| {
        n["node"] == owner
            && n["room_list"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["room_id"].as_u64() == Some(room_id))
    })
}

/// `GET path` on the admin listener with the scenario's token; the body of a 200.
async fn admin_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    timeout(Duration::from_secs(5), async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let req = format!(
            "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
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

/// One players run: `players` spread evenly by address over `nodes`.
async fn players_into(
    opts: &Options,
    nodes: &[(String, Server)],
    players: u32,
    run: &mut PlayersRun,
) -> anyhow::Result<()> {
    let n = nodes.len() as u32;
    let ramp_each = (opts.ramp / n).max(1);
    let most = players.div_ceil(n);
    let measure_at = Duration::from_secs(most.div_ceil(ramp_each).into()) + opts.settle;
    let duration = measure_at + opts.window + Duration::from_secs(2);
    let mut redirects_before = 0.0;
    for (_, node) in nodes {
        redirects_before += metric(admin(node)?, "rally_cluster_redirects_total")
            .await
            .unwrap_or(0.0);
    }
    let mut load = Vec::new();
    for (i, (id, node)) in nodes.iter().enumerate() {
        // The first nodes take the remainder.
        let sent = players / n + u32::from((i as u32) < players % n);
        let json = opts.scratch.join(format!("cluster-{players}-{id}.json"));
        let _ = std::fs::remove_file(&json);
        let args: Vec<String> = vec![
            "bench-worker".into(),
            "sdk-players".into(),
            "--addr".into(),
            node.tcp.to_string(),
            "--transport".into(),
            "tcp".into(),
            "--players".into(),
            sent.max(1).to_string(),
            "--ramp".into(),
            ramp_each.to_string(),
            "--secs".into(),
            duration.as_secs().to_string(),
            "--warmup-ms".into(),
            opts.settle.as_millis().max(1).to_string(),
            "--json".into(),
            json.display().to_string(),
            // A block of 256 loopback addresses per load process (enough for 8,000
            // players at 32 each), above the join-latency clients' block.
            "--source-base".into(),
            source_block(i + 1).to_string(),
        ];
        let mut cmd = opts.placement.command(LOAD_CPU, &opts.exe, &args);
        cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
        let proc = Proc::spawn(format!("sdk players for {id}"), cmd)?;
        load.push((id.clone(), sent, json, proc));
    }
    sleep(measure_at).await;
    let node_cpu: Vec<CpuMeter> = nodes
        .iter()
        .map(|(_, s)| CpuMeter::start(s.proc.pid))
        .collect::<anyhow::Result<_>>()?;
    let load_cpu: Vec<CpuMeter> = load
        .iter()
        .map(|(_, _, _, p)| CpuMeter::start(p.pid))
        .collect::<anyhow::Result<_>>()?;
    sleep(opts.window).await;
    for ((id, node), cpu) in nodes.iter().zip(&node_cpu) {
        run.nodes.push(NodeLoad {
            node: id.clone(),
            cores: cpu.cores()?,
            rss: rss_bytes(node.proc.pid)?,
            seated: metric(admin(node)?, "rally_players")
                .await
                .unwrap_or(f64::NAN),
            ..NodeLoad::default()
        });
    }
    for cpu in &load_cpu {
        run.load_cores += cpu.cores()?;
    }
    let mut redirects_after = 0.0;
    for (_, node) in nodes {
        redirects_after += metric(admin(node)?, "rally_cluster_redirects_total")
            .await
            .unwrap_or(0.0);
    }
    run.redirects = redirects_after - redirects_before;
    for ((_, sent, json, mut proc), row) in load.into_iter().zip(run.nodes.iter_mut()) {
        let status = proc.wait(duration + Duration::from_secs(60)).await?;
        if !status.success() {
            bail!("{} exited with {status}", proc.name);
        }
        let report = BotsReport::read(&json)?;
        row.sent = sent;
        row.joined = report.connected;
        row.errors = report.errors;
        row.errors_by_kind = report.errors_by_kind;
        row.p50_ms = report.p50_ms;
        row.p99_ms = report.p99_ms;
    }
    Ok(())
}

fn f(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "-".to_owned()
    }
}

/// The markdown section. `run` names the run it came from (command, date, commit): the
/// section is kept verbatim by later runs that do not measure it, so it says so itself.
pub fn markdown(out: &mut String, r: &ClusterResult, p99_bound_ms: f64, run: &str) {
    let _ = writeln!(
        out,
        "\n## Cluster: {} nodes over NATS on this machine\n\n\
         `{}` with JetStream and {0} release `rally serve` nodes (n1, n2, ...) on loopback, each with its own SQLite \
         (player data is not exercised here), `auth_required=false` as above; the nodes and nats-server share the \
         server CPU, the load processes the load CPU, when pinned. Single node vs cluster is not the point on one \
         machine (three nodes share the same core); what is measured is what a redirect costs at join, and that \
         players spread over three nodes play within the bound (`docs/cluster.md`). Load average of the machine \
         when the scenario started (1, 5, 15 min): {}.\n\n{run}\n",
        r.nodes, r.nats_version, r.loadavg
    );
    if let Some(why) = &r.failure {
        let _ = writeln!(out, "The scenario failed: {why}\n");
    }
    if let Some(j) = &r.joins {
        let _ = writeln!(
            out,
            "**Join latency.** A player sits in a room on n1. Then, alternately, a fresh Rust SDK client joins through \
             n1 (a free seat there: local) and one joins through n2 (no room there: n2 reserves a seat on n1 over NATS \
             request/reply and answers `redirect`; the SDK connects to n1, says `hello` and claims the seat with \
             `claim_seat`), {} of each. Timed from `join` to the room (connecting first is not counted); each player \
             then leaves. Redirects counted by `rally_cluster_redirects_total`: n2 {}, n1 {}.\n",
            j.local_ms.len(),
            j.redirects,
            j.local_redirects
        );
        out.push_str("| join | joins | p50 (ms) | p99 (ms) | max (ms) |\n|---|---|---|---|---|\n");
        for (name, v) in [
            ("local (through n1)", &j.local_ms),
            ("redirected (through n2, seat on n1)", &j.redirected_ms),
        ] {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} |",
                v.len(),
                f(quantile(v, 0.5), 2),
                f(quantile(v, 0.99), 2),
                f(quantile(v, 1.0), 2)
            );
        }
        let _ = writeln!(
            out,
            "\nThe redirect's cost: **+{} ms** at p50, **+{} ms** at p99, once per join; play after it runs on a \
             direct connection to the node that holds the room.\n",
            f(quantile(&j.redirected_ms, 0.5) - quantile(&j.local_ms, 0.5), 2),
            f(quantile(&j.redirected_ms, 0.99) - quantile(&j.local_ms, 0.99), 2)
        );
    }
    if !r.players.is_empty() {
        let _ = writeln!(
            out,
            "**Players served by {} nodes.** Arena-16 @ 20 Hz players on the Rust SDK over TCP \
             (`rally bench-worker sdk-players`: the full client, which follows redirects), spread evenly by address: \
             one load process per node sends its share to that node's address. A node whose rooms are full while \
             another's have seats redirects the joiner there, so a player may play on another node than the one it \
             was sent to (\"seated\" is the node's `rally_players` at the end of the window). Latency is per load \
             process (the players sent to that node); CPU is each node's over the window. A run passes when every \
             player joined, no error was counted and every node's p99 <= {p99_bound_ms} ms. The full SDK client costs \
             more CPU per player than `rally bots` (a driver task and an event queue per client), and the three load \
             processes share one CPU: the counts stay below the single-node arena's, and at higher ones the load \
             processes' own latency shows first (compare the nodes' CPU with the load processes' below).\n",
            r.nodes
        );
        out.push_str("| players | node | sent to it | joined | errors | seated at the end | server CPU (cores) | RSS (MiB) | p50 (ms) | p99 (ms) |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for run in &r.players {
            if let Some(why) = &run.failure {
                let _ = writeln!(
                    out,
                    "| {} | run failed: {} |||||||||",
                    run.players,
                    why.replace('|', "/").replace('\n', " ")
                );
                continue;
            }
            for n in &run.nodes {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {}{} | {} | {} | {} | {} | {} |",
                    run.players,
                    n.node,
                    n.sent,
                    n.joined,
                    n.errors,
                    if n.errors_by_kind.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", n.errors_by_kind)
                    },
                    f(n.seated, 0),
                    f(n.cores, 3),
                    f(n.rss as f64 / (1024.0 * 1024.0), 1),
                    f(n.p50_ms, 1),
                    f(n.p99_ms, 1),
                );
            }
            let cores: f64 = run.nodes.iter().map(|n| n.cores).sum();
            let _ = writeln!(
                out,
                "| {} | **all** | {} | {} | {} | {} | **{}** | | | **{}** (worst node) |",
                run.players,
                run.nodes.iter().map(|n| n.sent).sum::<u32>(),
                run.nodes.iter().map(|n| n.joined).sum::<u64>(),
                run.nodes.iter().map(|n| n.errors).sum::<u64>(),
                f(run.nodes.iter().map(|n| n.seated).sum(), 0),
                f(cores, 3),
                f(run.nodes.iter().map(|n| n.p99_ms).fold(0.0, f64::max), 1),
            );
        }
        out.push('\n');
        for run in r.players.iter().filter(|r| r.failure.is_none()) {
            let _ = writeln!(
                out,
                "- {} players: {} redirects during the run; load processes {} cores in all.",
                run.players,
                run.redirects,
                f(run.load_cores, 3)
            );
        }
    }
}

/// The JSON figures.
pub fn json(r: &ClusterResult) -> Value {
    json!({
        "nats_version": r.nats_version,
        "loadavg": r.loadavg,
        "nodes": r.nodes,
        "failure": r.failure,
        "joins": r.joins.as_ref().map(|j| json!({
            "local": {"count": j.local_ms.len(), "p50_ms": quantile(&j.local_ms, 0.5), "p99_ms": quantile(&j.local_ms, 0.99), "max_ms": quantile(&j.local_ms, 1.0)},
            "redirected": {"count": j.redirected_ms.len(), "p50_ms": quantile(&j.redirected_ms, 0.5), "p99_ms": quantile(&j.redirected_ms, 0.99), "max_ms": quantile(&j.redirected_ms, 1.0)},
            "redirects_counted": j.redirects,
            "redirects_counted_on_local_node": j.local_redirects,
        })),
        "players": r.players.iter().map(|run| json!({
            "players": run.players,
            "redirects": run.redirects,
            "load_cores": run.load_cores,
            "failure": run.failure,
            "nodes": run.nodes.iter().map(|n| json!({
                "node": n.node, "sent": n.sent, "joined": n.joined, "errors": n.errors,
                "errors_by_kind": n.errors_by_kind, "seated": n.seated, "server_cores": n.cores,
                "rss_bytes": n.rss, "p50_ms": n.p50_ms, "p99_ms": n.p99_ms,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 100.0);
        assert_eq!(quantile(&v, 0.99), 198.0);
        assert_eq!(quantile(&v, 1.0), 200.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn a_run_passes_only_when_every_player_joined_without_error_within_the_bound() {
        let node = |joined, errors, p99_ms| NodeLoad {
            joined,
            errors,
            p99_ms,
            ..NodeLoad::default()
        };
        let mut run = PlayersRun {
            players: 30,
            nodes: vec![node(10, 0, 20.0), node(10, 0, 30.0), node(10, 0, 40.0)],
            ..PlayersRun::default()
        };
        assert!(run.passes(60.0));
        run.nodes[2] = node(10, 0, 61.0);
        assert!(!run.passes(60.0));
        run.nodes[2] = node(9, 0, 40.0);
        assert!(!run.passes(60.0));
        run.nodes[2] = node(10, 1, 40.0);
        assert!(!run.passes(60.0));
    }
}
