//! `rally bench` (the suite) and `rally bench-worker` (the processes it starts: hidden).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};

use rally_bots::source::{SourceIps, HONEST_BASE};

use crate::abuse::suite::Abuse;
use crate::child::Placement;
use crate::procfs::Machine;
use crate::report::{utc_now, Results};
use crate::suite::{self, Options, Peer, ReqResp, Search};
use crate::workers::{self, Target};

/// Where the Colyseus peer's script is, relative to the repository's root.
const COLYSEUS_SCRIPT: &str = "../shared/peers/colyseus/run.sh";
/// The script that installs the pinned nats-server, relative to the repository's root.
const NATS_SCRIPT: &str = "scripts/nats.sh";

/// The `bench` subcommand.
pub fn command() -> Command {
    Command::new("bench")
        .about("Run the benchmark suite side by side (Rally, two hand-written reference designs, an echo server, Colyseus) and write docs/BENCHMARKS.md and docs/benchmarks.json")
        .arg(
            Arg::new("out")
                .long("out")
                .value_name("DIR")
                .default_value("docs")
                .value_parser(value_parser!(PathBuf))
                .help("Directory for BENCHMARKS.md and benchmarks.json"),
        )
        .arg(
            Arg::new("quick")
                .long("quick")
                .action(ArgAction::SetTrue)
                .help("A small, fast run that exercises every scenario (a smoke test, not a benchmark); Colyseus only when --colyseus names its script"),
        )
        .arg(
            Arg::new("no-pin")
                .long("no-pin")
                .action(ArgAction::SetTrue)
                .help("Do not pin servers and load generators to separate CPUs"),
        )
        .arg(
            Arg::new("colyseus")
                .long("colyseus")
                .value_name("SCRIPT")
                .value_parser(value_parser!(PathBuf))
                .help(format!("The Colyseus peer's run.sh [default: {COLYSEUS_SCRIPT} if it exists]")),
        )
        .arg(
            Arg::new("colyseus-players")
                .long("colyseus-players")
                .value_name("N,N,...")
                .value_delimiter(',')
                .value_parser(value_parser!(u32).range(1..=10_000))
                .help("Player counts of the Colyseus peer [default: 500,1000]"),
        )
        .arg(
            Arg::new("no-colyseus")
                .long("no-colyseus")
                .action(ArgAction::SetTrue)
                .help("Skip the Colyseus peer"),
        )
        .arg(
            Arg::new("no-search")
                .long("no-search")
                .action(ArgAction::SetTrue)
                .help("Skip the highest-count search"),
        )
        .arg(
            Arg::new("abuse")
                .long("abuse")
                .action(ArgAction::SetTrue)
                .help("Run the abuse scenario (flood, slowloris, garbage beside honest bots); on by default, except with --quick"),
        )
        .arg(
            Arg::new("no-abuse")
                .long("no-abuse")
                .action(ArgAction::SetTrue)
                .conflicts_with("abuse")
                .help("Skip the abuse scenario"),
        )
        .arg(
            Arg::new("abuse-only")
                .long("abuse-only")
                .action(ArgAction::SetTrue)
                .conflicts_with("no-abuse")
                .help("Run the abuse scenario and nothing else"),
        )
        .arg(
            Arg::new("server-arg")
                .long("server-arg")
                .value_name("FLAG")
                .action(ArgAction::Append)
                .allow_hyphen_values(true)
                .help("A flag for every `rally serve` the suite starts, e.g. --server-arg=--input-rate=40 (repeat for more)"),
        )
        .arg(
            Arg::new("players")
                .long("players")
                .value_name("N,N,...")
                .value_delimiter(',')
                .value_parser(value_parser!(u32).range(1..=10_000))
                .help("Player counts of the arena scenario [default: 1000,3000; 40 with --quick]"),
        )
        .arg(
            Arg::new("no-reference")
                .long("no-reference")
                .action(ArgAction::SetTrue)
                .help("Skip the reference designs, tasks and poll (their arena runs and their search)"),
        )
        .arg(
            Arg::new("cluster")
                .long("cluster")
                .action(ArgAction::SetTrue)
                .help("Also run the cluster scenario: nats-server and three rally serve nodes, join latency local vs redirected, players spread over the nodes (off by default: it needs nats-server)"),
        )
        .arg(
            Arg::new("cluster-only")
                .long("cluster-only")
                .action(ArgAction::SetTrue)
                .conflicts_with_all(["abuse-only", "abuse"])
                .help("Run the cluster scenario and nothing else; the report's other sections are kept"),
        )
        .arg(
            Arg::new("cluster-players")
                .long("cluster-players")
                .value_name("N,N,...")
                .value_delimiter(',')
                .value_parser(value_parser!(u32).range(3..=10_000))
                .help("Player counts of the cluster scenario, spread over its nodes [default: 600,1200; 96 with --quick]"),
        )
        .arg(
            Arg::new("cluster-joins")
                .long("cluster-joins")
                .value_name("N")
                .value_parser(value_parser!(u32).range(0..=10_000))
                .help("Joins timed of each kind, local and redirected [default: 200; 20 with --quick]"),
        )
        .arg(
            Arg::new("nats-server")
                .long("nats-server")
                .value_name("PATH")
                .value_parser(value_parser!(PathBuf))
                .help(format!("The nats-server binary of the cluster scenario [default: $RALLY_NATS_SERVER, else what `{NATS_SCRIPT} bin` installs]")),
        )
}

/// The hidden `bench-worker` subcommand: the processes `rally bench` starts.
pub fn worker_command() -> Command {
    let addr = |name: &'static str| {
        Arg::new(name)
            .long(name)
            .value_name("HOST:PORT")
            .required(true)
            .value_parser(value_parser!(SocketAddr))
    };
    let count = |name: &'static str, help: &'static str| {
        Arg::new(name)
            .long(name)
            .value_name("N")
            .required(true)
            .value_parser(value_parser!(u64).range(1..=100_000))
            .help(help)
    };
    let sources = || {
        Arg::new("source-ips")
            .long("source-ips")
            .value_name("N|auto")
            .default_value("auto")
            .value_parser(|s: &str| -> Result<Option<u32>, String> {
                if s == "auto" {
                    return Ok(None);
                }
                s.parse().map(Some).map_err(|_| "expected a number or auto".to_owned())
            })
            .help("Connect from N addresses of 127.0.0.0/8 from 127.1.0.1 (0: the system's choice; auto: at most 32 connections each, on a loopback server)")
    };
    Command::new("bench-worker")
        .about("A process of `rally bench`: reference servers and load generators")
        .hide(true)
        .subcommand_required(true)
        .subcommand(
            Command::new("tasks-arena")
                .about("The \"tasks\" reference arena server: a reader task per connection, the room writes")
                .arg(addr("tcp"))
                .arg(addr("ws")),
        )
        .subcommand(
            Command::new("poll-arena")
                .about("The \"poll\" reference arena server: the room reads and writes its sockets")
                .arg(addr("tcp"))
                .arg(addr("ws")),
        )
        .subcommand(
            Command::new("echo")
                .about("A minimal tokio echo server")
                .arg(addr("addr")),
        )
        .subcommand(
            Command::new("reqresp")
                .about("Request/response load: 64-byte messages, one in flight per connection")
                .arg(addr("addr"))
                .arg(
                    Arg::new("target")
                        .long("target")
                        .required(true)
                        .value_parser(["rally", "echo"]),
                )
                .arg(count("conns", "connections"))
                .arg(count("warmup-secs", "seconds before counting"))
                .arg(count("secs", "seconds counted"))
                .arg(sources()),
        )
        .subcommand(
            Command::new("sdk-players")
                .about("Arena players on the Rust SDK, which follows cluster redirects")
                .arg(addr("addr"))
                .arg(
                    Arg::new("transport")
                        .long("transport")
                        .default_value("tcp")
                        .value_parser(["tcp", "ws"]),
                )
                .arg(count("players", "players"))
                .arg(count("ramp", "players started a second"))
                .arg(count("secs", "seconds from the first start to the end"))
                .arg(count("warmup-ms", "milliseconds after a player's join before its latencies count"))
                .arg(
                    Arg::new("source-base")
                        .long("source-base")
                        .value_name("IPV4")
                        .value_parser(value_parser!(std::net::Ipv4Addr))
                        .help("Connect from consecutive addresses from this one (enough for the players and the ramp); default: the system's choice"),
                )
                .arg(
                    Arg::new("json")
                        .long("json")
                        .value_name("FILE")
                        .required(true)
                        .value_parser(value_parser!(PathBuf)),
                ),
        )
        .subcommand(
            Command::new("idle")
                .about("Open connections past Rally's handshake and hold them idle")
                .arg(addr("addr"))
                .arg(count("conns", "connections"))
                .arg(count("hold-secs", "seconds to hold them"))
                .arg(sources()),
        )
}

/// Runs `rally bench-worker`.
pub async fn run_worker(m: &ArgMatches) -> anyhow::Result<ExitCode> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let addr = |m: &ArgMatches, name: &str| -> anyhow::Result<SocketAddr> {
        m.get_one::<SocketAddr>(name)
            .copied()
            .with_context(|| format!("--{name} is required"))
    };
    let num = |m: &ArgMatches, name: &str| m.get_one::<u64>(name).copied().unwrap_or(1);
    // `--source-ips`: the count asked for, or enough for the connections (`conns_arg`)
    // when the server is on loopback.
    let sources = |m: &ArgMatches, conns_arg: &str| -> anyhow::Result<Option<SourceIps>> {
        // IPv4 loopback only: an IPv6 server cannot be reached from 127.0.0.0/8.
        let loopback =
            matches!(addr(m, "addr")?.ip(), std::net::IpAddr::V4(ip) if ip.is_loopback());
        let count = match m.get_one::<Option<u32>>("source-ips").copied().flatten() {
            Some(n) => n,
            None if loopback => SourceIps::needed(num(m, conns_arg), 0),
            None => 0,
        };
        if count == 0 {
            return Ok(None);
        }
        SourceIps::new(HONEST_BASE, count)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--source-ips: {e}"))
    };
    match m.subcommand() {
        Some(("tasks-arena", m)) => workers::tasks_arena(addr(m, "tcp")?, addr(m, "ws")?).await?,
        Some(("poll-arena", m)) => workers::poll_arena(addr(m, "tcp")?, addr(m, "ws")?).await?,
        Some(("echo", m)) => workers::echo(addr(m, "addr")?).await?,
        Some(("reqresp", m)) => {
            let target = match m.get_one::<String>("target").map(String::as_str) {
                Some("rally") => Target::Rally,
                _ => Target::Echo,
            };
            workers::reqresp(
                addr(m, "addr")?,
                sources(m, "conns")?,
                target,
                num(m, "conns") as usize,
                Duration::from_secs(num(m, "warmup-secs")),
                Duration::from_secs(num(m, "secs")),
            )
            .await?;
        }
        Some(("sdk-players", m)) => {
            let transport = match m.get_one::<String>("transport").map(String::as_str) {
                Some("ws") => rally_protocol::Transport::WebSocket,
                _ => rally_protocol::Transport::Tcp,
            };
            let json = m.get_one::<PathBuf>("json").context("--json is required")?;
            let load = crate::sdk_players::Load {
                addr: addr(m, "addr")?,
                transport,
                players: num(m, "players") as usize,
                ramp: u32::try_from(num(m, "ramp")).unwrap_or(u32::MAX),
                duration: Duration::from_secs(num(m, "secs")),
                warmup: Duration::from_millis(num(m, "warmup-ms")),
                source_base: m.get_one::<std::net::Ipv4Addr>("source-base").copied(),
            };
            crate::sdk_players::run(&load, json).await?;
        }
        Some(("idle", m)) => {
            workers::idle(
                addr(m, "addr")?,
                sources(m, "conns")?,
                num(m, "conns") as usize,
                Duration::from_secs(num(m, "hold-secs")),
            )
            .await?;
        }
        _ => return Ok(ExitCode::FAILURE),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `rally bench`.
pub async fn run(m: &ArgMatches) -> anyhow::Result<ExitCode> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let quick = m.get_flag("quick");
    let out_dir = m
        .get_one::<PathBuf>("out")
        .cloned()
        .unwrap_or_else(|| PathBuf::from("docs"));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let scratch = std::env::temp_dir().join(format!("rally-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let only_abuse = m.get_flag("abuse-only");
    let only_cluster = m.get_flag("cluster-only");
    let cluster = if only_cluster || m.get_flag("cluster") {
        Some(crate::cluster::Plan {
            nats_server: nats_server(m)?,
            nodes: 3,
            joins: m
                .get_one::<u32>("cluster-joins")
                .copied()
                .unwrap_or(if quick { 20 } else { 200 }),
            players: match m.get_many::<u32>("cluster-players") {
                Some(counts) => counts.copied().collect(),
                None if quick => vec![96],
                None => vec![600, 1200],
            },
        })
    } else {
        None
    };
    // A quick run skips Colyseus unless its script is named (a smoke test of that step).
    let colyseus = if m.get_flag("no-colyseus")
        || only_abuse
        || only_cluster
        || (quick && m.get_one::<PathBuf>("colyseus").is_none())
    {
        None
    } else {
        let script = m
            .get_one::<PathBuf>("colyseus")
            .cloned()
            .unwrap_or_else(|| PathBuf::from(COLYSEUS_SCRIPT));
        if script.is_file() && crate::child::which("node").is_some() {
            let counts = match m.get_many::<u32>("colyseus-players") {
                Some(c) => c.copied().collect(),
                None => vec![500, 1000],
            };
            Some((script, counts))
        } else {
            eprintln!(
                "bench: skipping Colyseus: {} not found or node not installed",
                script.display()
            );
            None
        }
    };
    let opts = Options {
        exe: std::env::current_exe().context("finding this binary")?,
        players: match m.get_many::<u32>("players") {
            Some(counts) => counts.copied().collect(),
            None if quick => vec![40],
            None => vec![1000, 3000],
        },
        transports: vec!["tcp", "ws"],
        ramp: if quick { 200 } else { 1000 },
        settle: Duration::from_secs(if quick { 1 } else { 3 }),
        window: Duration::from_secs(if quick { 3 } else { 15 }),
        reference: !m.get_flag("no-reference"),
        search: (!m.get_flag("no-search")).then_some({
            if quick {
                Search {
                    transport: "ws",
                    from: 48,
                    step: 16,
                    max: 64,
                }
            } else {
                Search {
                    transport: "ws",
                    from: 3400,
                    step: 400,
                    max: 10_000,
                }
            }
        }),
        idle: Some(if quick { 200 } else { 10_000 }),
        reqresp: Some(if quick {
            ReqResp {
                conns: 50,
                secs: 2,
                rounds: 1,
            }
        } else {
            ReqResp {
                conns: 1000,
                secs: 10,
                rounds: 3,
            }
        }),
        colyseus,
        placement: Placement::new(!m.get_flag("no-pin")),
        p99_bound_ms: 60.0,
        scratch: scratch.clone(),
        server_args: m
            .get_many::<String>("server-arg")
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
        cluster,
        abuse: (only_abuse
            || m.get_flag("abuse")
            || !(quick || only_cluster || m.get_flag("no-abuse")))
        .then(|| if quick { Abuse::quick() } else { Abuse::full() }),
    };
    let opts = if only_abuse || only_cluster {
        Options {
            players: Vec::new(),
            search: None,
            idle: None,
            reqresp: None,
            ..opts
        }
    } else {
        opts
    };
    eprintln!("bench: {}", opts.placement.describe());

    let mut arena = Vec::new();
    for &players in &opts.players {
        for &transport in &opts.transports {
            arena.push(suite::arena(&opts, Peer::Rally, transport, players).await);
            if opts.reference {
                for peer in Peer::REFERENCES {
                    arena.push(suite::arena(&opts, peer, transport, players).await);
                }
            }
        }
    }
    let search = match &opts.search {
        Some(s) => {
            let mut peers = vec![Peer::Rally];
            if opts.reference {
                peers.extend(Peer::REFERENCES);
            }
            suite::search(&opts, s, &peers).await
        }
        None => Vec::new(),
    };
    let idle = match opts.idle {
        Some(n) => Some(suite::idle(&opts, n).await),
        None => None,
    };
    let reqresp = match &opts.reqresp {
        Some(rr) => Some(suite::reqresp(&opts, rr).await),
        None => None,
    };
    let (mut colyseus_rows, mut rally_at_colyseus) = (Vec::new(), Vec::new());
    if let Some((script, counts)) = &opts.colyseus {
        colyseus_rows = suite::colyseus(script, counts).await;
        for &n in counts {
            if !arena
                .iter()
                .any(|r| r.peer == "rally" && r.transport == "ws" && r.players == n)
            {
                rally_at_colyseus.push(suite::arena(&opts, Peer::Rally, "ws", n).await);
            }
        }
    }

    let abuse = match &opts.abuse {
        Some(a) => crate::abuse::suite::run(&opts, a).await,
        None => Vec::new(),
    };
    let cluster = match &opts.cluster {
        Some(plan) => Some(crate::cluster::run(&opts, plan).await),
        None => None,
    };

    let mut results = Results {
        command: command_line(),
        date: utc_now(),
        commit: git_commit(),
        machine: Machine::read(),
        placement: opts.placement.describe().to_owned(),
        p99_bound_ms: opts.p99_bound_ms,
        arena,
        search,
        idle,
        reqresp,
        colyseus: colyseus_rows,
        rally_at_colyseus,
        abuse: opts.abuse.clone().map(|a| (a, abuse)),
        cluster,
        earlier_targets: Vec::new(),
        kept_note: None,
    };
    write_report(&mut results, &out_dir)?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(ExitCode::SUCCESS)
}

/// Writes `BENCHMARKS.md` and `benchmarks.json` into `out_dir`, keeping what an earlier
/// run wrote there and this one did not measure ([`crate::merge`]).
fn write_report(results: &mut Results, out_dir: &std::path::Path) -> anyhow::Result<()> {
    let md = out_dir.join("BENCHMARKS.md");
    let json = out_dir.join("benchmarks.json");
    let old_md = std::fs::read_to_string(&md).unwrap_or_default();
    let old_json: serde_json::Value = std::fs::read(&json)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    let fresh = results.json();
    let merged = crate::merge::json(&old_json, fresh.clone());
    // The targets kept are the merged list's tail, after this run's own.
    let own = fresh["targets"].as_array().map_or(0, Vec::len);
    results.earlier_targets = merged["targets"]
        .as_array()
        .map(|t| t.iter().skip(own).cloned().collect())
        .unwrap_or_default();
    let (_, kept) = crate::merge::markdown(&old_md, &results.markdown());
    results.kept_note = crate::merge::kept_note(&kept);
    let (text, _) = crate::merge::markdown(&old_md, &results.markdown());
    std::fs::write(&md, text).with_context(|| format!("writing {}", md.display()))?;
    std::fs::write(&json, serde_json::to_string_pretty(&merged)?)
        .with_context(|| format!("writing {}", json.display()))?;
    eprintln!("bench: wrote {} and {}", md.display(), json.display());
    Ok(())
}

/// The cluster scenario's nats-server: `--nats-server`, `$RALLY_NATS_SERVER`, or the
/// pinned one `scripts/nats.sh bin` installs (run from the repository's root).
fn nats_server(m: &ArgMatches) -> anyhow::Result<PathBuf> {
    if let Some(p) = m.get_one::<PathBuf>("nats-server") {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os("RALLY_NATS_SERVER").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let out = std::process::Command::new("bash")
        .args([NATS_SCRIPT, "bin"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {NATS_SCRIPT} bin (run rally bench from the repository's root, or pass --nats-server)"))?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || path.is_empty() {
        anyhow::bail!(
            "{NATS_SCRIPT} bin failed ({}): pass --nats-server",
            out.status
        );
    }
    Ok(PathBuf::from(path))
}

/// How this run was started, as a reader would type it.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo run --release -p rally -- {}", args.join(" "))
}

/// The commit of the working tree, if this runs in a git checkout.
fn git_commit() -> String {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let mut c = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            let dirty = std::process::Command::new("git")
                .args(["status", "--porcelain", "--untracked-files=no"])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty());
            if dirty {
                c.push_str(" (with uncommitted changes)");
            }
            c
        }
        _ => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_flags_pass_through_and_abuse_flags_exclude_each_other() {
        let m = command()
            .try_get_matches_from([
                "bench",
                "--abuse-only",
                "--server-arg=--input-rate=40",
                "--server-arg",
                "--command-rate=20",
            ])
            .expect("valid");
        let args: Vec<&String> = m.get_many::<String>("server-arg").expect("given").collect();
        assert_eq!(args, ["--input-rate=40", "--command-rate=20"]);
        assert!(m.get_flag("abuse-only"));
        for clash in [["--abuse", "--no-abuse"], ["--abuse-only", "--no-abuse"]] {
            let e = command()
                .try_get_matches_from(std::iter::once("bench").chain(clash))
                .expect_err("conflicting");
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn workers_take_their_source_addresses() {
        let m = worker_command()
            .try_get_matches_from([
                "bench-worker",
                "idle",
                "--addr",
                "127.0.0.1:1",
                "--conns",
                "100",
                "--hold-secs",
                "1",
                "--source-ips",
                "5",
            ])
            .expect("valid");
        let (_, idle) = m.subcommand().expect("idle");
        assert_eq!(idle.get_one::<Option<u32>>("source-ips"), Some(&Some(5)));
        let m = worker_command()
            .try_get_matches_from([
                "bench-worker",
                "idle",
                "--addr",
                "127.0.0.1:1",
                "--conns",
                "100",
                "--hold-secs",
                "1",
            ])
            .expect("valid");
        let (_, idle) = m.subcommand().expect("idle");
        assert_eq!(
            idle.get_one::<Option<u32>>("source-ips"),
            Some(&None),
            "auto"
        );
    }
}
