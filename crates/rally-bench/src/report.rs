//! The report: `BENCHMARKS.md` (tables, the command, the machine, the targets) and the
//! same figures as JSON.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::abuse::suite::{self as abuse, Abuse, AbuseRow};
use crate::procfs::Machine;
use crate::suite::{median, ArenaRow, IdleRow, ReqRespRow};

/// Everything one `rally bench` run measured.
#[derive(Debug, Clone)]
pub struct Results {
    /// The command line that produced it.
    pub command: String,
    /// UTC date and time of the run.
    pub date: String,
    /// The git commit, if known.
    pub commit: String,
    /// The machine.
    pub machine: Machine,
    /// Where processes ran.
    pub placement: String,
    /// The p99 bound, ms.
    pub p99_bound_ms: f64,
    /// Arena runs, Rally and the reference designs.
    pub arena: Vec<ArenaRow>,
    /// The highest-count search, Rally's runs and the reference's.
    pub search: Vec<ArenaRow>,
    /// The idle run.
    pub idle: Option<IdleRow>,
    /// Request/response.
    pub reqresp: Option<ReqRespRow>,
    /// Colyseus, and Rally at the same counts over WebSocket.
    pub colyseus: Vec<ArenaRow>,
    /// Rally at Colyseus's counts (WebSocket).
    pub rally_at_colyseus: Vec<ArenaRow>,
    /// The abuse scenario, if it ran: its size and its cases.
    pub abuse: Option<(Abuse, Vec<AbuseRow>)>,
    /// The cluster scenario, if it ran.
    pub cluster: Option<crate::cluster::ClusterResult>,
    /// Targets an earlier run measured and this one did not (from the previous
    /// `benchmarks.json`, see [`crate::merge`]): listed after this run's, marked as such.
    pub earlier_targets: Vec<Value>,
    /// The preamble's line naming the sections kept from earlier runs, if any.
    pub kept_note: Option<String>,
}

fn f(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "-".to_owned()
    }
}

fn kb(bytes: f64) -> String {
    f(bytes / 1024.0, 2)
}

fn mb(bytes: u64) -> String {
    f(bytes as f64 / (1024.0 * 1024.0), 1)
}

fn arena_table(out: &mut String, rows: &[ArenaRow]) {
    out.push_str("| server | transport | players | joined | errors | server CPU (cores) | per 1,000 players | bots CPU | RSS empty (MiB) | RSS loaded (MiB) | RSS per player (KiB) | p50 (ms) | p99 (ms) | missed ticks |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        if let Some(why) = &r.failure {
            let _ = writeln!(
                out,
                "| {} | {} | {} | run failed: {} |||||||||||",
                r.peer,
                r.transport,
                r.players,
                why.replace('|', "/").replace('\n', " ")
            );
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.peer,
            r.transport,
            r.players,
            r.connected,
            r.errors,
            if r.errors_by_kind.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.errors_by_kind)
            },
            f(r.server_cores, 3),
            f(r.cores_per_1000(), 3),
            f(r.bots_cores, 3),
            mb(r.rss_empty),
            mb(r.rss_loaded),
            kb(r.rss_per_player()),
            f(r.p50_ms, 1),
            f(r.p99_ms, 1),
            r.missed_ticks.map_or("-".to_owned(), |m| m.to_string()),
        );
    }
}

fn row_json(r: &ArenaRow) -> Value {
    json!({
        "server": r.peer,
        "transport": r.transport,
        "players": r.players,
        "connected": r.connected,
        "errors": r.errors,
        "errors_by_kind": r.errors_by_kind,
        "server_cores": r.server_cores,
        "server_cores_per_1000": r.cores_per_1000(),
        "bots_cores": r.bots_cores,
        "rss_empty_bytes": r.rss_empty,
        "rss_loaded_bytes": r.rss_loaded,
        "rss_per_player_bytes": r.rss_per_player(),
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "missed_ticks": r.missed_ticks,
        "failure": r.failure,
    })
}

/// The highest count that passed, among `rows` of `peer`.
fn highest(rows: &[ArenaRow], peer: &str, bound: f64) -> Option<u32> {
    rows.iter()
        .filter(|r| r.peer == peer && r.passes(bound))
        .map(|r| r.players)
        .max()
}

/// The reference design that served the most players within the bound, and how many.
fn best_highest(rows: &[ArenaRow], bound: f64) -> Option<(&'static str, u32)> {
    ["tasks", "poll"]
        .into_iter()
        .filter_map(|p| highest(rows, p, bound).map(|h| (p, h)))
        .max_by_key(|(_, h)| *h)
}

/// One target: what it asks, what was measured, whether it is met.
struct Target {
    what: String,
    measured: String,
    met: Option<bool>,
}

impl Results {
    fn find(&self, peer: &str, transport: &str, players: u32) -> Option<&ArenaRow> {
        self.arena.iter().chain(&self.search).find(|r| {
            r.peer == peer
                && r.transport == transport
                && r.players == players
                && r.failure.is_none()
        })
    }

    /// The reference design's row with the least CPU per player at this load.
    fn best_reference(&self, transport: &str, players: u32) -> Option<&ArenaRow> {
        ["tasks", "poll"]
            .iter()
            .filter_map(|p| self.find(p, transport, players))
            .min_by(|a, b| a.cores_per_1000().total_cmp(&b.cores_per_1000()))
    }

    fn targets(&self) -> Vec<Target> {
        let bound = self.p99_bound_ms;
        let mut t = Vec::new();
        let rally: Vec<&ArenaRow> = self.arena.iter().filter(|r| r.peer == "rally").collect();
        if !rally.is_empty() {
            let worst_p99 = rally.iter().map(|r| r.p99_ms).fold(0.0, f64::max);
            let errors: u64 = rally.iter().map(|r| r.errors).sum();
            let all_joined = rally
                .iter()
                .all(|r| r.failure.is_none() && r.connected == u64::from(r.players));
            t.push(Target {
                what: format!(
                    "arena runs ({}): zero errors, every bot joined, p99 <= {bound} ms",
                    rally
                        .iter()
                        .map(|r| format!("{} {}", r.transport, r.players))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                measured: format!(
                    "errors {errors}, all joined: {all_joined}, worst p99 {} ms",
                    f(worst_p99, 1)
                ),
                met: Some(errors == 0 && all_joined && worst_p99 <= bound),
            });
            let per1000: Vec<f64> = rally
                .iter()
                .filter(|r| r.failure.is_none())
                .map(|r| r.cores_per_1000())
                .collect();
            let worst = per1000.iter().copied().fold(0.0, f64::max);
            t.push(Target {
                what: "server CPU per 1,000 players <= 0.19 cores".into(),
                measured: format!(
                    "{} cores (worst run; median {})",
                    f(worst, 3),
                    f(median(&per1000), 3)
                ),
                met: Some(worst <= 0.19),
            });
            let rss: Vec<f64> = rally
                .iter()
                .filter(|r| r.failure.is_none())
                .map(|r| r.rss_per_player())
                .collect();
            let worst = rss.iter().copied().fold(0.0, f64::max);
            t.push(Target {
                what: "RSS <= 3 KiB per connected player beyond the empty server".into(),
                measured: format!("{} KiB (worst run)", kb(worst)),
                met: Some(worst <= 3072.0),
            });
            let (mut ratios, mut worst) = (Vec::new(), 0.0f64);
            for r in rally.iter().filter(|r| r.failure.is_none()) {
                if let Some(m) = self.find("tasks", &r.transport, r.players) {
                    let ratio = r.cores_per_1000() / m.cores_per_1000();
                    worst = worst.max(ratio);
                    let best = self
                        .best_reference(&r.transport, r.players)
                        .map(|b| {
                            format!(
                                ", {}x {}",
                                f(r.cores_per_1000() / b.cores_per_1000(), 2),
                                b.peer
                            )
                        })
                        .unwrap_or_default();
                    ratios.push(format!(
                        "{} {}: {}x{best}",
                        r.transport,
                        r.players,
                        f(ratio, 2)
                    ));
                }
            }
            if !ratios.is_empty() {
                t.push(Target {
                    what: "Rally's server CPU per 1,000 players <= 1.10x the tasks design's, same scenario, same run (and over the best reference)".into(),
                    measured: ratios.join("; "),
                    met: Some(worst <= 1.10),
                });
            }
        }
        if !self.search.is_empty() {
            let h = highest(&self.search, "rally", bound)
                .or_else(|| highest(&self.arena, "rally", bound));
            let m = best_highest(&self.search, bound);
            t.push(Target {
                what: format!("highest player count at p99 <= {bound} ms >= 95% of the best reference design's"),
                measured: format!(
                    "Rally {}{}",
                    h.map_or("none passed".to_owned(), |h| h.to_string()),
                    m.map_or(String::new(), |(p, m)| format!(" ({p}: {m})"))
                ),
                met: m.map(|(_, m)| h.is_some_and(|h| f64::from(h) >= 0.95 * f64::from(m))),
            });
        }
        if let Some(i) = self.idle.as_ref().filter(|i| i.failure.is_none()) {
            t.push(Target {
                what: format!(
                    "{} idle connected players in <= 30 MB of server RSS, all connected in <= 10 s",
                    i.conns
                ),
                measured: format!(
                    "{} MB ({} MiB), connected in {} s",
                    f(i.rss_loaded as f64 / 1e6, 1),
                    mb(i.rss_loaded),
                    f(i.connect_secs, 2)
                ),
                met: Some(
                    i.connected == u64::from(i.conns)
                        && i.rss_loaded as f64 <= 30e6
                        && i.connect_secs <= 10.0,
                ),
            });
        }
        if let Some(rr) = self
            .reqresp
            .as_ref()
            .filter(|r| !r.rally.is_empty() && !r.echo.is_empty())
        {
            t.push(Target {
                what: "request/response throughput >= 90% of the minimal tokio echo".into(),
                measured: format!("{}%", f(rr.ratio() * 100.0, 1)),
                met: Some(rr.ratio() >= 0.9),
            });
        }
        let pairs: Vec<(&ArenaRow, &ArenaRow)> = self
            .colyseus
            .iter()
            .filter(|c| c.failure.is_none())
            .filter_map(|c| {
                self.rally_at_colyseus
                    .iter()
                    .chain(&self.arena)
                    .find(|r| {
                        r.peer == "rally"
                            && r.transport == "ws"
                            && r.players == c.players
                            && r.failure.is_none()
                    })
                    .map(|r| (r, c))
            })
            .collect();
        if !pairs.is_empty() {
            let ratios: Vec<f64> = pairs
                .iter()
                .map(|(r, c)| r.cores_per_1000() / c.cores_per_1000())
                .collect();
            let worst = ratios.iter().copied().fold(0.0, f64::max);
            t.push(Target {
                what: format!(
                    "server CPU per 1,000 players <= 0.5x Colyseus {}'s, same session",
                    crate::suite::colyseus_version()
                ),
                measured: pairs
                    .iter()
                    .zip(&ratios)
                    .map(|((r, _), x)| format!("{} players: {}x", r.players, f(*x, 2)))
                    .collect::<Vec<_>>()
                    .join(", "),
                met: Some(worst <= 0.5),
            });
        }
        if let Some((_, rows)) = &self.abuse {
            if let Some(clean) = rows.iter().find(|r| r.case == "clean") {
                for r in rows.iter().filter(|r| r.case != "clean") {
                    let (pass, why) = abuse::verdict(r, clean);
                    t.push(Target {
                        what: format!(
                            "under {}: honest p99 within 2x of clean, honest errors = 0{}, server survives",
                            r.case,
                            if r.case == "slowloris" { ", join time within 2x" } else { "" }
                        ),
                        measured: if r.failure.is_some() {
                            "run failed".to_owned()
                        } else {
                            format!(
                                "p99 {} ms (clean {}), {} errors, join p99 {} ms (clean {}){}",
                                f(r.p99_ms, 1),
                                f(clean.p99_ms, 1),
                                r.errors,
                                f(r.join_p99_ms, 1),
                                f(clean.join_p99_ms, 1),
                                if pass { String::new() } else { format!(": {}", why.join("; ")) }
                            )
                        },
                        met: Some(pass),
                    });
                }
            }
        }
        if let Some(c) = &self.cluster {
            cluster_targets(&mut t, c, bound);
        }
        t
    }

    /// The report as markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(out, "# Rally benchmarks\n");
        let _ = writeln!(
            out,
            "Written by `rally bench` from one real run; every figure below was measured in that run, side by side.\n\
             Do not edit by hand: run the command again. Where the engine's cost goes (instruction counts, flame \
             graphs of Rally and the reference designs, what each optimisation bought): `docs/flame/README.md`.\n"
        );
        let _ = writeln!(out, "- **Command:** `{}`", self.command);
        let _ = writeln!(out, "- **Date (UTC):** {}", self.date);
        let _ = writeln!(out, "- **Commit:** {}", self.commit);
        let _ = writeln!(
            out,
            "- **Machine:** {}, {} CPUs, {:.1} GiB memory, Linux {}, open files {} soft / {} hard",
            m.cpu,
            m.cpus,
            m.memory as f64 / (1024.0 * 1024.0 * 1024.0),
            m.kernel,
            m.nofile.0,
            m.nofile.1
        );
        let _ = writeln!(out, "- **Placement:** {}", self.placement);
        if let Some(note) = &self.kept_note {
            let _ = writeln!(out, "{note}");
        }
        let _ = writeln!(
            out,
            "- **Method:** each run starts a fresh server process and a separate load process. CPU is the server's \
             user+system time from `/proc/<pid>/stat` over the measured window, divided by its wall time (1.0 = one core). \
             RSS per player is (RSS at the end of the window - RSS of the empty server) / players joined. Latency is the \
             bots' input-to-state latency (send of seq k to the first state with last_seq >= k), from an HDR histogram \
             over the whole run after each bot's warm-up. Rally is `rally serve` with its defaults (metrics, limits, \
             timeouts, a fresh SQLite database per run) except `auth_required=false`: the bots play without logging in, \
             so the figures are the realtime engine's, not a burst of first logins; only the listeners, \
             `concurrency_limit` 10000 and the database path are set besides. The machine is \
             shared and noisy: compare rows of one run, not runs of different days.\n"
        );

        out.push_str("## Targets\n\n| target | measured | met |\n|---|---|---|\n");
        for t in self.targets() {
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            };
            let _ = writeln!(out, "| {} | {} | {met} |", t.what, t.measured);
        }
        for t in &self.earlier_targets {
            let met = match t.get("met").and_then(Value::as_bool) {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            };
            let text = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let _ = writeln!(
                out,
                "| {} | {} (earlier run) | {met} |",
                text("target"),
                text("measured")
            );
        }

        if !self.arena.is_empty() {
            out.push_str("\n## Arena-16 @ 20 Hz\n\nRooms of 16, an input from every player every 50 ms, one state to every player per tick. \
            The references are the two fastest hand-written designs, speaking the same protocol with nothing else (no limits, \
            timeouts, resume, metrics or shutdown): `tasks`, a reader task per connection publishing its latest input to the room, \
            which writes one encoded state to each socket itself (`rally bench-worker tasks-arena`); `poll`, no task per \
            connection, the room reading and writing its own non-blocking sockets once per tick (`rally bench-worker poll-arena`).\n\n");
            arena_table(&mut out, &self.arena);
        }

        if !self.search.is_empty() {
            let bound = self.p99_bound_ms;
            let _ = writeln!(
                out,
                "\n## Highest player count at p99 <= {bound} ms\n\nBots and server on this one machine: past some count the bots' own CPU \
                 gives out, which caps Rally and the reference alike. A run passes when every bot joined, no error was counted and \
                 p99 <= {bound} ms. Each design's search steps up from the first count while it passes, or down until one \
                 passes; the designs take turns, one run each per round, so a machine whose speed drifts during the search (a \
                 shared VM's does) moves every design's figure alike.\n"
            );
            let h = highest(&self.search, "rally", bound);
            let refs: Vec<String> = ["tasks", "poll"]
                .iter()
                .map(|p| {
                    format!(
                        "{p}: **{}**",
                        highest(&self.search, p, bound)
                            .map_or("not run or none passed".to_owned(), |h| h.to_string())
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "Rally: **{}**; {}.\n",
                h.map_or("none passed".to_owned(), |h| h.to_string()),
                refs.join("; ")
            );
            arena_table(&mut out, &self.search);
        }

        if let Some(i) = &self.idle {
            out.push_str("\n## Idle connections\n\nEach connection completes Rally's handshake (`hello`, `welcome`) over TCP and then sends nothing.\n\n");
            match &i.failure {
                Some(why) => {
                    let _ = writeln!(out, "Run failed: {why}");
                }
                None => {
                    out.push_str("| connections | past the handshake | time to connect all (s) | server RSS empty (MiB) | server RSS with all (MiB) | per connection (KiB) | server CPU while idle (cores) |\n|---|---|---|---|---|---|---|\n");
                    let per =
                        i.rss_loaded.saturating_sub(i.rss_empty) as f64 / i.connected.max(1) as f64;
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} | {} |",
                        i.conns,
                        i.connected,
                        f(i.connect_secs, 2),
                        mb(i.rss_empty),
                        mb(i.rss_loaded),
                        kb(per),
                        f(i.idle_cores, 3)
                    );
                }
            }
        }

        if let Some(rr) = &self.reqresp {
            let _ = writeln!(
                out,
                "\n## Request/response\n\n{} TCP connections, each sending a 64-byte message and waiting for its reply before the next. \
                 Rally: a `ping` padded to 64 bytes with a trailing element (readers ignore elements past the fields they know), \
                 with `command_rate` raised to {} a second (the default, 10 a second per connection, pings included, would cap the figure by design), \
                 through a real session, answered by `pong`. Reference: a minimal tokio echo server (`rally bench-worker echo`: \
                 one task per connection, read, write back). Runs alternate; medians are compared.\n",
                rr.conns,
                crate::suite::REQRESP_COMMAND_RATE
            );
            out.push_str("| server | replies/s (each run) | median replies/s | server CPU (median cores) |\n|---|---|---|---|\n");
            let list = |v: &[f64]| v.iter().map(|x| f(*x, 0)).collect::<Vec<_>>().join(", ");
            let _ = writeln!(
                out,
                "| rally | {} | {} | {} |",
                list(&rr.rally),
                f(median(&rr.rally), 0),
                f(median(&rr.rally_cores), 3)
            );
            let _ = writeln!(
                out,
                "| echo | {} | {} | {} |",
                list(&rr.echo),
                f(median(&rr.echo), 0),
                f(median(&rr.echo_cores), 3)
            );
            let _ = writeln!(out, "\nRally / echo: **{}%**.", f(rr.ratio() * 100.0, 1));
            if let Some(why) = &rr.failure {
                let _ = writeln!(out, "\nA run failed: {why}");
            }
        }

        if !self.colyseus.is_empty() {
            let _ = writeln!(
                out,
                "\n## Colyseus {}, side by side\n\nThe same scenario on Colyseus (`../shared/peers/colyseus/run.sh` with \
                 `COLYSEUS_VERSION={0}`: Colyseus's WebSocket transport, its own JS client as bots, unpinned; its script measures \
                 CPU over the whole run, ramp included), and Rally over WebSocket at the same counts.\n",
                crate::suite::colyseus_version()
            );
            let mut rows: Vec<ArenaRow> = Vec::new();
            for c in &self.colyseus {
                rows.push(c.clone());
                if let Some(r) =
                    self.rally_at_colyseus.iter().chain(&self.arena).find(|r| {
                        r.peer == "rally" && r.transport == "ws" && r.players == c.players
                    })
                {
                    rows.push(r.clone());
                }
            }
            arena_table(&mut out, &rows);
        }

        if let Some((size, rows)) = &self.abuse {
            abuse::markdown(&mut out, size, rows);
        }
        if let Some(c) = &self.cluster {
            let run = format!(
                "- **Run:** `{}`, {} UTC, commit {}, pinned as the placement above says.",
                self.command, self.date, self.commit
            );
            crate::cluster::markdown(&mut out, c, self.p99_bound_ms, &run);
        }
        out
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let m = &self.machine;
        json!({
            "command": self.command,
            "date": self.date,
            "commit": self.commit,
            "machine": {
                "cpu": m.cpu, "cpus": m.cpus, "memory_bytes": m.memory, "kernel": m.kernel,
                "nofile_soft": m.nofile.0, "nofile_hard": m.nofile.1,
            },
            "placement": self.placement,
            "p99_bound_ms": self.p99_bound_ms,
            "arena": self.arena.iter().map(row_json).collect::<Vec<_>>(),
            "search": {
                "runs": self.search.iter().map(row_json).collect::<Vec<_>>(),
                "highest_rally": highest(&self.search, "rally", self.p99_bound_ms),
                "highest_tasks": highest(&self.search, "tasks", self.p99_bound_ms),
                "highest_poll": highest(&self.search, "poll", self.p99_bound_ms),
            },
            "idle": self.idle.as_ref().map(|i| json!({
                "connections": i.conns, "connected": i.connected, "connect_secs": i.connect_secs,
                "rss_empty_bytes": i.rss_empty, "rss_loaded_bytes": i.rss_loaded, "idle_cores": i.idle_cores,
                "failure": i.failure,
            })),
            "reqresp": self.reqresp.as_ref().map(|r| json!({
                "connections": r.conns, "message_bytes": crate::workers::MESSAGE_BYTES,
                "rally_replies_per_sec": r.rally, "echo_replies_per_sec": r.echo,
                "rally_server_cores": r.rally_cores, "echo_server_cores": r.echo_cores,
                "ratio": r.ratio(), "failure": r.failure,
            })),
            "colyseus": self.colyseus.iter().map(row_json).collect::<Vec<_>>(),
            "rally_at_colyseus_counts": self.rally_at_colyseus.iter().map(row_json).collect::<Vec<_>>(),
            "abuse": self.abuse.as_ref().map(|(_, rows)| abuse::json(rows)),
            "cluster": self.cluster.as_ref().map(crate::cluster::json),
            "targets": self.targets().iter().map(|t| json!({"target": t.what, "measured": t.measured, "met": t.met})).collect::<Vec<_>>(),
        })
    }
}

/// The cluster scenario's targets: play within the bound on every node; the redirect's
/// cost, measured (no bound is set for it).
fn cluster_targets(t: &mut Vec<Target>, c: &crate::cluster::ClusterResult, bound: f64) {
    use crate::cluster::quantile;
    for run in &c.players {
        let joined: u64 = run.nodes.iter().map(|n| n.joined).sum();
        let errors: u64 = run.nodes.iter().map(|n| n.errors).sum();
        let worst = run.nodes.iter().map(|n| n.p99_ms).fold(0.0, f64::max);
        t.push(Target {
            what: format!(
                "cluster, {} players spread over {} nodes: every player joined, zero errors, p99 <= {bound} ms on every node",
                run.players, c.nodes
            ),
            measured: match &run.failure {
                Some(_) => "run failed".to_owned(),
                None => format!(
                    "joined {joined} of {}, errors {errors}, worst node p99 {} ms",
                    run.players,
                    f(worst, 1)
                ),
            },
            met: Some(run.passes(bound)),
        });
    }
    if let Some(j) = &c.joins {
        t.push(Target {
            what: "cluster, the redirect's cost at join: redirected vs local join time (measured, no bound)".into(),
            measured: format!(
                "p50 {} vs {} ms, p99 {} vs {} ms ({} joins each)",
                f(quantile(&j.redirected_ms, 0.5), 2),
                f(quantile(&j.local_ms, 0.5), 2),
                f(quantile(&j.redirected_ms, 0.99), 2),
                f(quantile(&j.local_ms, 0.99), 2),
                j.local_ms.len()
            ),
            met: None,
        });
    }
}

/// Today's UTC date and time, `YYYY-MM-DD HH:MM`, from the system clock.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}
