//! `rally bench`'s abuse scenario: does an attacker hurt honest players?
//!
//! Each case starts a fresh Rally server (the suite's settings, nothing else changed),
//! starts its attacker process(es), and after a lead-in (so the attack is in full swing
//! when players arrive) a process of honest arena bots. Measured per case: the bots'
//! input-to-state latency, errors and join time (connect to `joined`), the server's CPU
//! over the bots' steady state and its largest RSS, what each attacker saw, and whether
//! a fresh client still gets in once the attack is over (the server survived) and the
//! server still drains and exits 0 on SIGTERM.
//!
//! The cases: `clean` (no attacker, the baseline), `flood` (a message flood and a
//! connection flood at once), `slowloris` and `garbage`. An attack case passes when every
//! honest bot joined with no error, honest p99 is within 2x of the clean run's (or
//! within [`FLOOR_MS`] of it, where 2x is less: at a few milliseconds 2x is noise),
//! the join time p99 is within the same bound under slowloris, and the server survived.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::time::sleep;

use crate::child::{which, Proc};
use crate::procfs::{rss_bytes, CpuMeter};
use crate::suite::{metric, missed_ticks, BotsReport, Options, Peer, Server, LOAD_CPU};

use super::cli::{FLOOD_BASE, GARBAGE_BASE, SLOWLORIS_BASE};
use super::{probe, Transport};

/// Where 2x of the clean figure is less than this, the bound is the clean figure plus
/// this instead (milliseconds).
pub const FLOOR_MS: f64 = 10.0;
/// The address the after-attack probe connects from: used by nobody else.
const PROBE_SOURCE: [u8; 4] = [127, 9, 0, 1];
/// Bounds the probe.
const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// How big the scenario is.
#[derive(Debug, Clone)]
pub struct Abuse {
    /// Honest bots per case.
    pub honest: u32,
    /// Their transport: "tcp" or "ws".
    pub transport: &'static str,
    /// Honest bots started per second.
    pub ramp: u32,
    /// How long the honest bots run, from the first one's start.
    pub secs: u64,
    /// How long the attack runs before the first honest bot starts.
    pub lead_in: Duration,
    /// Message-flood connections (from one address, within the per-address limit).
    pub flood_conns: u32,
    /// Connection-flood tasks (from one address).
    pub connect_conns: u32,
    /// Slowloris sockets, and the addresses they come from.
    pub slowloris: u32,
    /// See [`Abuse::slowloris`].
    pub slowloris_ips: u32,
    /// Garbage connections at once (from one address).
    pub garbage_conns: u32,
}

impl Abuse {
    /// The full scenario: 200 honest bots for 30 s per case; 50 flooding sessions and
    /// 16 connection-flood tasks; 1,000 slowloris sockets over 16 addresses; 16 garbage
    /// connections.
    pub fn full() -> Abuse {
        Abuse {
            honest: 200,
            transport: "tcp",
            ramp: 100,
            secs: 30,
            lead_in: Duration::from_secs(3),
            flood_conns: 50,
            connect_conns: 16,
            slowloris: 1000,
            slowloris_ips: 16,
            garbage_conns: 16,
        }
    }

    /// A small, fast version for `--quick`: it exercises every case, it measures little.
    pub fn quick() -> Abuse {
        Abuse {
            honest: 40,
            transport: "tcp",
            ramp: 100,
            secs: 5,
            lead_in: Duration::from_secs(1),
            flood_conns: 8,
            connect_conns: 4,
            slowloris: 200,
            slowloris_ips: 4,
            garbage_conns: 4,
        }
    }
}

/// The cases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// No attacker.
    Clean,
    /// A message flood and a connection flood.
    Flood,
    /// Slowloris.
    Slowloris,
    /// Garbage.
    Garbage,
}

impl Case {
    /// Every case.
    pub const ALL: [Case; 4] = [Case::Clean, Case::Flood, Case::Slowloris, Case::Garbage];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Case::Clean => "clean",
            Case::Flood => "flood",
            Case::Slowloris => "slowloris",
            Case::Garbage => "garbage",
        }
    }
}

/// One case's figures.
#[derive(Debug, Clone, Default)]
pub struct AbuseRow {
    /// The case's name.
    pub case: String,
    /// Honest bots started.
    pub honest: u32,
    /// Honest bots that joined.
    pub connected: u64,
    /// Errors the honest bots counted, and their kinds.
    pub errors: u64,
    /// See [`AbuseRow::errors`].
    pub errors_by_kind: String,
    /// Honest input-to-state latency, ms.
    pub p50_ms: f64,
    /// See [`AbuseRow::p50_ms`].
    pub p99_ms: f64,
    /// Honest join time (connect to `joined`), ms.
    pub join_p50_ms: f64,
    /// See [`AbuseRow::join_p50_ms`].
    pub join_p99_ms: f64,
    /// Server CPU over the honest bots' steady state, cores.
    pub server_cores: f64,
    /// Server RSS: empty, and the largest sampled during the case.
    pub rss_empty: u64,
    /// See [`AbuseRow::rss_empty`].
    pub rss_max: u64,
    /// Ticks the server skipped.
    pub missed_ticks: Option<u64>,
    /// `async_tasks_active` once the attack was over.
    pub tasks_after: Option<f64>,
    /// The after-attack probe: its time to `welcome` over TCP and WebSocket, or why it
    /// was refused.
    pub probe: Vec<(String, Result<f64, String>)>,
    /// Whether the server exited 0 on SIGTERM at the end.
    pub clean_exit: bool,
    /// Each attacker's JSON report.
    pub attackers: Vec<Value>,
    /// Why the case did not complete, if it did not.
    pub failure: Option<String>,
}

impl AbuseRow {
    /// Whether a fresh client got in over every transport after the attack, and the
    /// server exited cleanly.
    pub fn survived(&self) -> bool {
        self.clean_exit && !self.probe.is_empty() && self.probe.iter().all(|(_, r)| r.is_ok())
    }
}

/// `clean` figure's bound under attack: 2x, or `clean` + [`FLOOR_MS`] if that is more.
pub fn bound(clean: f64) -> f64 {
    (2.0 * clean).max(clean + FLOOR_MS)
}

/// `x <= limit`, and false when either is NaN (a figure that was not measured passes
/// nothing).
fn within(x: f64, limit: f64) -> bool {
    matches!(
        x.partial_cmp(&limit),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    )
}

/// Whether `row` (an attack case) meets the criteria against `clean`; and why not.
pub fn verdict(row: &AbuseRow, clean: &AbuseRow) -> (bool, Vec<String>) {
    let mut why = Vec::new();
    if let Some(f) = &row.failure {
        why.push(format!("run failed: {f}"));
    }
    if clean.failure.is_some() {
        why.push("no clean baseline".to_owned());
    }
    if row.connected != u64::from(row.honest) {
        why.push(format!(
            "{} of {} honest bots joined",
            row.connected, row.honest
        ));
    }
    if row.errors != 0 {
        why.push(format!("{} honest errors", row.errors));
    }
    if !within(row.p99_ms, bound(clean.p99_ms)) {
        why.push(format!(
            "honest p99 {:.1} ms > {:.1} ms",
            row.p99_ms,
            bound(clean.p99_ms)
        ));
    }
    if row.case == Case::Slowloris.name() && !within(row.join_p99_ms, bound(clean.join_p99_ms)) {
        why.push(format!(
            "join p99 {:.1} ms > {:.1} ms",
            row.join_p99_ms,
            bound(clean.join_p99_ms)
        ));
    }
    if !row.survived() {
        why.push("the server did not survive".to_owned());
    }
    (why.is_empty(), why)
}

/// Runs every case.
pub async fn run(opts: &Options, abuse: &Abuse) -> Vec<AbuseRow> {
    let mut rows = Vec::new();
    for case in Case::ALL {
        eprintln!(
            "bench: abuse {}: {} honest bots over {} for {} s",
            case.name(),
            abuse.honest,
            abuse.transport,
            abuse.secs
        );
        let mut row = AbuseRow {
            case: case.name().to_owned(),
            honest: abuse.honest,
            ..AbuseRow::default()
        };
        if let Err(e) = case_into(opts, abuse, case, &mut row).await {
            eprintln!("bench:   failed: {e:#}");
            row.failure = Some(format!("{e:#}"));
        } else {
            eprintln!(
                "bench:   joined {} errors {} p50 {:.1} p99 {:.1} ms, join p99 {:.1} ms, server {:.3} cores, RSS max {:.1} MB, survived {}",
                row.connected,
                row.errors,
                row.p50_ms,
                row.p99_ms,
                row.join_p99_ms,
                row.server_cores,
                row.rss_max as f64 / 1e6,
                row.survived()
            );
            for a in &row.attackers {
                eprintln!("bench:   attacker: {}", attacker_summary(a));
            }
        }
        rows.push(row);
    }
    rows
}

/// The attacker processes of `case`: their `rally abuse` arguments.
fn attackers(server: &Server, abuse: &Abuse, case: Case, secs: u64) -> Vec<Vec<String>> {
    let both = |attack: &str, conns: u32, ips: u32, base: std::net::Ipv4Addr| -> Vec<String> {
        vec![
            "abuse".into(),
            attack.into(),
            "--tcp".into(),
            server.tcp.to_string(),
            "--ws".into(),
            server.ws.to_string(),
            "--conns".into(),
            conns.to_string(),
            "--duration".into(),
            secs.to_string(),
            "--source-ips".into(),
            ips.to_string(),
            "--source-base".into(),
            base.to_string(),
        ]
    };
    let next = |ip: std::net::Ipv4Addr| std::net::Ipv4Addr::from(u32::from(ip) + 256);
    match case {
        Case::Clean => Vec::new(),
        Case::Flood => {
            let mut messages = both("flood", abuse.flood_conns, 1, FLOOD_BASE);
            messages.extend(["--mode".into(), "messages".into()]);
            // A host of its own: the connection flood is a second attacker.
            let mut connects = both("flood", abuse.connect_conns, 1, next(FLOOD_BASE));
            connects.extend(["--mode".into(), "connect".into()]);
            vec![messages, connects]
        }
        Case::Slowloris => vec![both(
            "slowloris",
            abuse.slowloris,
            abuse.slowloris_ips,
            SLOWLORIS_BASE,
        )],
        Case::Garbage => vec![both("garbage", abuse.garbage_conns, 1, GARBAGE_BASE)],
    }
}

async fn case_into(
    opts: &Options,
    abuse: &Abuse,
    case: Case,
    row: &mut AbuseRow,
) -> anyhow::Result<()> {
    let server = Server::start(opts, Peer::Rally, &[]).await?;
    sleep(Duration::from_secs(1)).await;
    row.rss_empty = rss_bytes(server.proc.pid)?;

    // The attack outlasts the honest bots by a little, so they never see it end.
    let attack_secs = abuse.lead_in.as_secs() + abuse.secs + 2;
    let nice = which("nice");
    let mut procs = Vec::new();
    for args in attackers(&server, abuse, case, attack_secs) {
        // Niced on the load CPU: the bots measure the server, so the attacker gets the
        // CPU they leave, not theirs (the server's CPU is all the attacker's to take).
        let mut cmd = match &nice {
            Some(nice) => {
                let mut a = vec![
                    "-n".to_owned(),
                    "10".to_owned(),
                    opts.exe.display().to_string(),
                ];
                a.extend(args);
                opts.placement.command(LOAD_CPU, nice, &a)
            }
            None => opts.placement.command(LOAD_CPU, &opts.exe, &args),
        };
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut p = Proc::spawn(format!("{} attacker", case.name()), cmd)?;
        let stdout = p.stdout().context("attacker stdout")?;
        procs.push((p, stdout));
    }
    sleep(abuse.lead_in).await;

    let json = opts
        .scratch
        .join(format!("abuse-bots-{}.json", case.name()));
    let _ = std::fs::remove_file(&json);
    let addr = if abuse.transport == "ws" {
        server.ws
    } else {
        server.tcp
    };
    let args: Vec<String> = vec![
        "bots".into(),
        "--addr".into(),
        addr.to_string(),
        "--transport".into(),
        abuse.transport.into(),
        "--bots".into(),
        abuse.honest.to_string(),
        "--duration".into(),
        abuse.secs.to_string(),
        "--ramp".into(),
        abuse.ramp.to_string(),
        "--json".into(),
        json.display().to_string(),
    ];
    let mut cmd = opts.placement.command(LOAD_CPU, &opts.exe, &args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut bots = Proc::spawn("honest bots", cmd)?;

    // The server's CPU over the bots' steady state (after the ramp and a second), its
    // RSS sampled every second of the case.
    let ramp = Duration::from_secs(u64::from(abuse.honest.div_ceil(abuse.ramp.max(1))) + 1);
    let mut rss_max = row.rss_empty;
    let mut waited = Duration::ZERO;
    let mut cpu = None;
    let steady_end = Duration::from_secs(abuse.secs.saturating_sub(1));
    while waited < steady_end {
        sleep(Duration::from_secs(1)).await;
        waited += Duration::from_secs(1);
        rss_max = rss_max.max(rss_bytes(server.proc.pid).unwrap_or(0));
        if waited == ramp.min(steady_end.saturating_sub(Duration::from_secs(1))) {
            cpu = Some(CpuMeter::start(server.proc.pid)?);
        }
    }
    row.server_cores = match cpu {
        Some(c) => c.cores()?,
        None => f64::NAN,
    };
    let status = bots.wait(Duration::from_secs(abuse.secs + 60)).await?;
    if !status.success() {
        bail!("the honest bots exited with {status}");
    }
    let report = BotsReport::read(&json)?;
    row.connected = report.connected;
    row.errors = report.errors;
    row.errors_by_kind = report.errors_by_kind;
    row.p50_ms = report.p50_ms;
    row.p99_ms = report.p99_ms;
    row.join_p50_ms = report.join_p50_ms;
    row.join_p99_ms = report.join_p99_ms;

    for (mut p, mut stdout) in procs {
        let mut out = String::new();
        tokio::time::timeout(
            Duration::from_secs(attack_secs + 60),
            stdout.read_to_string(&mut out),
        )
        .await
        .with_context(|| format!("{} did not finish", p.name))??;
        let status = p.wait(Duration::from_secs(30)).await?;
        if !status.success() {
            bail!("{} exited with {status}", p.name);
        }
        rss_max = rss_max.max(rss_bytes(server.proc.pid).unwrap_or(0));
        row.attackers.push(
            serde_json::from_str(out.trim())
                .with_context(|| format!("parsing {}'s report", p.name))?,
        );
    }
    row.rss_max = rss_max;

    // The attack is over: a fresh client must get in, over either transport.
    sleep(Duration::from_secs(1)).await;
    let source = Some(std::net::IpAddr::from(PROBE_SOURCE));
    for (transport, addr) in [
        (Transport::Tcp, server.tcp),
        (Transport::WebSocket, server.ws),
    ] {
        let r = probe(transport, addr, source, PROBE_LIMIT)
            .await
            .map(|d| d.as_secs_f64() * 1000.0);
        row.probe.push((transport.name().to_owned(), r));
    }
    if let Some(admin) = server.admin {
        row.missed_ticks = missed_ticks(admin).await.ok();
        row.tasks_after = metric(admin, "async_tasks_active").await.ok();
    }
    row.clean_exit = server.stop().await.is_ok();
    Ok(())
}

/// One line on what an attacker saw, for people.
pub fn attacker_summary(a: &Value) -> String {
    let top = |m: &Value| -> String {
        if m.as_object().is_none_or(|o| o.is_empty()) {
            return "none".to_owned();
        }
        let mut v: Vec<(String, u64)> = m
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.iter()
            .take(5)
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let secs = |v: &Value| v.as_f64().map_or("-".to_owned(), |s| format!("{s:.2} s"));
    let d = &a["tally"]["durations_secs"];
    match (a["attack"].as_str(), a["mode"].as_str()) {
        (Some("flood"), Some("messages")) => format!(
            "message flood, {} connections from {} address(es), {} sessions flooded: {:.0} messages/s written; RATE_LIMITED received {}, the first {} (median) into a session; sessions ended: {}, {} (median) into the flood; reconnections refused: {}",
            a["conns"],
            a["source_ips"],
            a["sessions_flooded"],
            a["messages_per_sec"].as_f64().unwrap_or(0.0),
            a["received"]["error:RATE_LIMITED"].as_u64().unwrap_or(0),
            secs(&d["first_rate_limited"]["p50"]),
            top(&a["endings"]),
            secs(&d["cut_after"]["p50"]),
            top(&a["refused_at_door"]),
        ),
        (Some("flood"), _) => format!(
            "connection flood, {} tasks from {} address(es): {:.0} connections/s tried, {} welcomed; refused: {}",
            a["conns"],
            a["source_ips"],
            a["attempts_per_sec"].as_f64().unwrap_or(0.0),
            a["welcomed"],
            top(&a["refused_at_door"]),
        ),
        (Some("slowloris"), _) => format!(
            "slowloris ({}), {} sockets from {} addresses: at most {} open at once (mean {:.0}); {} connections, {} completed the handshake; held {} (median), {} (max); endings: {}",
            a["mode"].as_str().unwrap_or("?"),
            a["conns"],
            a["source_ips"],
            a["open_max"],
            a["open_mean"].as_f64().unwrap_or(0.0),
            a["established"],
            a["completed"],
            secs(&d["held"]["p50"]),
            secs(&d["held"]["max"]),
            top(&a["endings"]),
        ),
        (Some("garbage"), _) => format!(
            "garbage, {} connections from {} address(es): {} cases ({:.0}/s); endings: {}",
            a["conns"],
            a["source_ips"],
            a["attempts"],
            a["attempts_per_sec"].as_f64().unwrap_or(0.0),
            top(&a["endings"]),
        ),
        _ => a.to_string(),
    }
}

/// The rows as JSON, with each attack case's verdict against the clean one.
pub fn json(rows: &[AbuseRow]) -> Value {
    let clean = rows.iter().find(|r| r.case == Case::Clean.name());
    Value::Array(
        rows.iter()
            .map(|r| {
                let verdict = match clean {
                    Some(c) if r.case != Case::Clean.name() => {
                        let (pass, why) = verdict(r, c);
                        json!({ "pass": pass, "why_not": why })
                    }
                    _ => Value::Null,
                };
                json!({
                    "case": r.case,
                    "honest": r.honest,
                    "connected": r.connected,
                    "errors": r.errors,
                    "errors_by_kind": r.errors_by_kind,
                    "p50_ms": r.p50_ms,
                    "p99_ms": r.p99_ms,
                    "join_p50_ms": r.join_p50_ms,
                    "join_p99_ms": r.join_p99_ms,
                    "server_cores": r.server_cores,
                    "rss_empty_bytes": r.rss_empty,
                    "rss_max_bytes": r.rss_max,
                    "missed_ticks": r.missed_ticks,
                    "tasks_after": r.tasks_after,
                    "probe_ms": r.probe.iter().map(|(t, p)| (t.clone(), match p {
                        Ok(ms) => json!(ms),
                        Err(why) => json!({ "refused": why }),
                    })).collect::<serde_json::Map<_, _>>(),
                    "clean_exit": r.clean_exit,
                    "survived": r.survived(),
                    "attackers": r.attackers,
                    "failure": r.failure,
                    "verdict": verdict,
                })
            })
            .collect(),
    )
}

/// The markdown section.
pub fn markdown(out: &mut String, abuse: &Abuse, rows: &[AbuseRow]) {
    use std::fmt::Write as _;
    let f = |x: f64, d: usize| {
        if x.is_finite() {
            format!("{x:.d$}")
        } else {
            "-".to_owned()
        }
    };
    let _ = writeln!(
        out,
        "\n## Abuse\n\nDoes an attacker hurt honest players? Each case is a fresh Rally server with the settings above, \
         {} honest arena bots over {} ({} started a second, {} s each case), and, from {} s before the first bot, \
         an attacker process (`rally abuse ...`, niced, on the load CPU) on both the TCP and WebSocket listeners, from \
         addresses of 127.0.0.0/8 of its own (the bots have theirs, at most 32 per address):\n\n\
         - **flood**: {} sessions from one address that join a room and send inputs and pings (3:1) as fast as the \
           socket takes them, reconnecting when cut off; beside them, {} tasks from another address that connect, \
           say `hello`, read the answer and reset, as fast as they can.\n\
         - **slowloris**: {} sockets opened at once over {} addresses, each dripping its handshake (the upgrade \
           request, then `hello`) a byte a second, each reopened a second after the server closes it.\n\
         - **garbage**: {} connections from one address sending a malformed case each (random bytes, length prefixes \
           claiming up to 4 GiB, empty frames, corrupted and misshapen MessagePack before and after `hello`, garbage \
           and oversized HTTP heads, unmasked frames, reserved opcodes, 2^62-byte WebSocket lengths, text frames), \
           reconnecting after each.\n\n\
         Join time is a bot's connect to `joined`. After each attack a fresh client from an unused address must get \
         `welcome` over TCP and WebSocket, and the server must drain and exit 0 on SIGTERM (\"survived\"). \
         **An attack case passes** when every honest bot joined with no error, honest p99 is within 2x of the clean \
         run's (or within {FLOOR_MS} ms of it where 2x is less), under slowloris the join time p99 is within the same \
         bound, and the server survived.\n",
        abuse.honest,
        abuse.transport,
        abuse.ramp,
        abuse.secs,
        abuse.lead_in.as_secs(),
        abuse.flood_conns,
        abuse.connect_conns,
        abuse.slowloris,
        abuse.slowloris_ips,
        abuse.garbage_conns,
    );
    out.push_str("| case | honest joined | honest errors | p50 (ms) | p99 (ms) | join p50 (ms) | join p99 (ms) | server CPU (cores) | RSS empty / max (MiB) | missed ticks | tasks after | survived | pass |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let clean = rows.iter().find(|r| r.case == Case::Clean.name());
    let mib = |b: u64| f(b as f64 / (1024.0 * 1024.0), 1);
    for r in rows {
        if let Some(why) = &r.failure {
            let _ = writeln!(
                out,
                "| {} | run failed: {} ||||||||||| **no** |",
                r.case,
                why.replace('|', "/").replace('\n', " ")
            );
            continue;
        }
        let pass = match clean {
            Some(c) if r.case != Case::Clean.name() => {
                let (pass, why) = verdict(r, c);
                if pass {
                    "yes".to_owned()
                } else {
                    format!("**no** ({})", why.join("; "))
                }
            }
            _ => "(baseline)".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} of {} | {}{} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} |",
            r.case,
            r.connected,
            r.honest,
            r.errors,
            if r.errors_by_kind.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.errors_by_kind)
            },
            f(r.p50_ms, 1),
            f(r.p99_ms, 1),
            f(r.join_p50_ms, 1),
            f(r.join_p99_ms, 1),
            f(r.server_cores, 3),
            mib(r.rss_empty),
            mib(r.rss_max),
            r.missed_ticks.map_or("-".to_owned(), |m| m.to_string()),
            r.tasks_after.map_or("-".to_owned(), |t| f(t, 0)),
            if r.survived() { "yes" } else { "**no**" },
            pass,
        );
    }
    out.push_str("\nWhat each attacker saw:\n\n");
    for r in rows.iter().filter(|r| !r.attackers.is_empty()) {
        for a in &r.attackers {
            let _ = writeln!(out, "- **{}**: {}", r.case, attacker_summary(a));
        }
    }
    for r in rows
        .iter()
        .filter(|r| r.probe.iter().any(|(_, p)| p.is_err()))
    {
        let refused: Vec<String> = r
            .probe
            .iter()
            .filter_map(|(t, p)| p.as_ref().err().map(|e| format!("{t}: {e}")))
            .collect();
        let _ = writeln!(
            out,
            "- **{}**: the fresh client after the attack was refused ({})",
            r.case,
            refused.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(case: Case, p99: f64, join_p99: f64) -> AbuseRow {
        AbuseRow {
            case: case.name().to_owned(),
            honest: 10,
            connected: 10,
            p99_ms: p99,
            join_p99_ms: join_p99,
            probe: vec![("tcp".into(), Ok(1.0)), ("ws".into(), Ok(1.0))],
            clean_exit: true,
            ..AbuseRow::default()
        }
    }

    #[test]
    fn the_bound_is_twice_the_clean_figure_with_a_floor() {
        assert_eq!(bound(50.0), 100.0);
        assert_eq!(bound(2.0), 12.0);
    }

    #[test]
    fn a_case_passes_only_within_the_bounds_and_alive() {
        let clean = row(Case::Clean, 50.0, 2.0);
        assert!(
            verdict(&row(Case::Flood, 99.0, 50.0), &clean).0,
            "join time counts under slowloris only"
        );
        let (pass, why) = verdict(&row(Case::Slowloris, 99.0, 13.0), &clean);
        assert!(!pass && why[0].contains("join p99"), "{why:?}");
        let mut r = row(Case::Garbage, 101.0, 2.0);
        r.errors = 1;
        r.probe[1].1 = Err("error:SERVER_FULL".into());
        let (pass, why) = verdict(&r, &clean);
        assert!(!pass);
        assert_eq!(why.len(), 3, "{why:?}");
        let mut nan = row(Case::Flood, f64::NAN, 1.0);
        nan.connected = 9;
        assert_eq!(verdict(&nan, &clean).1.len(), 2, "no latency is no pass");
    }

    #[test]
    fn summaries_name_what_the_attacker_saw() {
        let a = json!({
            "attack": "flood", "mode": "messages", "conns": 50, "source_ips": 1,
            "messages_per_sec": 120000.0,
            "received": {"error:RATE_LIMITED": 321},
            "endings": {"error:RATE_LIMITED": 48, "held_to_end": 2},
            "tally": {"durations_secs": {"cut_after": {"p50": 1.25}, "first_rate_limited": {"p50": 0.01}}},
        });
        let s = attacker_summary(&a);
        assert!(s.contains("RATE_LIMITED received 321"), "{s}");
        assert!(s.contains("error:RATE_LIMITED 48, held_to_end 2"), "{s}");
        assert!(s.contains("1.25 s"), "{s}");
        assert!(s.contains("reconnections refused: none"), "{s}");
    }
}
