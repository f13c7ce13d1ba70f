//! `rally bots`: the flags ([`command`]), their checks ([`config`]) and the run
//! ([`run`]: progress on stderr, the summary table on stdout, the optional files).
//!
//! Flags are checked by clap, so a bad value is refused with a message naming the flag
//! and exit code 2 before anything starts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::builder::PossibleValuesParser;
use clap::{value_parser, Arg, ArgMatches, Command};

use crate::config::{
    BotsConfig, Entry, Transport, DEFAULT_BOTS, DEFAULT_DURATION_SECS, DEFAULT_GROUP, DEFAULT_RAMP,
    DEFAULT_ROOM_KIND, DEFAULT_SOURCE_BASE, DEFAULT_THREADS,
};
use crate::source::{is_loopback_target, SourceIps};

/// The `bots` subcommand and its flags.
pub fn command() -> Command {
    Command::new("bots")
        .about("Run a swarm of arena bots against a server and measure input-to-state latency")
        .arg(
            Arg::new("addr")
                .long("addr")
                .value_name("HOST:PORT")
                .required(true)
                .value_parser(host_port)
                .help("The server: its --tcp listener for tcp, its --http listener for ws"),
        )
        .arg(
            Arg::new("transport")
                .long("transport")
                .value_name("tcp|ws")
                .default_value("tcp")
                .value_parser(PossibleValuesParser::new(["tcp", "ws"]))
                .help("Raw TCP, or WebSocket on /ws"),
        )
        .arg(
            Arg::new("bots")
                .long("bots")
                .value_name("N")
                .default_value(DEFAULT_BOTS.to_string())
                .value_parser(value_parser!(u32).range(1..))
                .help("How many bots"),
        )
        .arg(
            Arg::new("duration")
                .long("duration")
                .value_name("SECS")
                .default_value(DEFAULT_DURATION_SECS.to_string())
                .value_parser(value_parser!(u64).range(1..=86_400))
                .help("How long the run lasts, from the first bot's start"),
        )
        .arg(
            Arg::new("ramp")
                .long("ramp")
                .value_name("BOTS_PER_SEC")
                .default_value(DEFAULT_RAMP.to_string())
                .value_parser(value_parser!(u32).range(1..))
                .help("Bots started per second"),
        )
        .arg(
            Arg::new("threads")
                .long("threads")
                .value_name("N")
                .default_value(DEFAULT_THREADS.to_string())
                .value_parser(value_parser!(u32).range(0..=256))
                .help(
                    "Threads the bots run on, each a single-threaded runtime (0: the main runtime)",
                ),
        )
        .arg(
            Arg::new("group")
                .long("group")
                .value_name("N")
                .default_value(DEFAULT_GROUP.to_string())
                .value_parser(value_parser!(u32).range(1..=i64::from(crate::group::MAX_GROUP)))
                .help("Bots driven by one task, with one timer and one read buffer (at most 64)"),
        )
        .arg(
            Arg::new("room-kind")
                .long("room-kind")
                .value_name("KIND")
                .default_value(DEFAULT_ROOM_KIND)
                .value_parser(clap::builder::NonEmptyStringValueParser::new())
                .help("The room kind to join (inputs are arena inputs)"),
        )
        .arg(
            Arg::new("create")
                .long("create")
                .action(clap::ArgAction::SetTrue)
                .conflicts_with("join-code")
                .help("Each bot opens a private room of its own with `create` instead of `join`"),
        )
        .arg(
            Arg::new("join-code")
                .long("join-code")
                .value_name("CODE")
                .value_parser(clap::builder::NonEmptyStringValueParser::new())
                .help(
                    "Every bot joins the room with this share code (`join_by_code`) instead of \
                     `join`; bots past its seats are refused (join:ROOM_FULL)",
                ),
        )
        .arg(
            Arg::new("source-ips")
                .long("source-ips")
                .value_name("N|auto")
                .default_value("auto")
                .value_parser(source_ips)
                .help(
                    "Connect from N addresses of 127.0.0.0/8 from --source-base, round-robin, so a \
                     server's per-address limits see many hosts (0: the system's choice). auto: \
                     enough that each carries at most 32 bots and opens at most 16 a second, when \
                     the server is on loopback; 0 otherwise",
                ),
        )
        .arg(
            Arg::new("source-base")
                .long("source-base")
                .value_name("IPV4")
                .default_value(DEFAULT_SOURCE_BASE.to_string())
                .value_parser(value_parser!(std::net::Ipv4Addr))
                .help("The first source address (see --source-ips)"),
        )
        .arg(
            Arg::new("report-every")
                .long("report-every")
                .value_name("SECS")
                .value_parser(value_parser!(u64).range(1..=86_400))
                .help("Print one JSON line per interval of SECS (latency, errors, traffic of that interval) to --report-file or stdout"),
        )
        .arg(
            Arg::new("report-file")
                .long("report-file")
                .value_name("FILE")
                .requires("report-every")
                .value_parser(value_parser!(PathBuf))
                .help("Append the --report-every lines to FILE instead of stdout"),
        )
        .arg(
            Arg::new("json")
                .long("json")
                .value_name("FILE")
                .value_parser(value_parser!(PathBuf))
                .help("Write the report as JSON to FILE"),
        )
        .arg(
            Arg::new("chart")
                .long("chart")
                .value_name("FILE")
                .value_parser(value_parser!(PathBuf))
                .help("Write an SVG chart of p50/p99 latency per second to FILE"),
        )
}

/// `HOST:PORT` with a non-empty host and a numeric port.
fn host_port(s: &str) -> Result<String, String> {
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(s.to_owned()),
        _ => Err("expected HOST:PORT, e.g. 127.0.0.1:7000".to_owned()),
    }
}

/// `--source-ips`: a count, or `auto` (`None`).
fn source_ips(s: &str) -> Result<Option<u32>, String> {
    if s == "auto" {
        return Ok(None);
    }
    s.parse::<u32>()
        .map(Some)
        .map_err(|_| "expected a number of addresses or auto".to_owned())
}

/// The run that matches of [`command`] describe (progress on). Fails when the source
/// addresses asked for do not fit (see [`SourceIps::new`]).
pub fn config(m: &ArgMatches) -> Result<BotsConfig, String> {
    // The unwraps below cannot fail: each of these flags is required or has a default,
    // and its value parser produced exactly this type.
    let mut cfg = BotsConfig::new(m.get_one::<String>("addr").expect("required").clone());
    cfg.transport = m
        .get_one::<String>("transport")
        .and_then(|name| Transport::from_name(name))
        .unwrap_or_default();
    cfg.bots = *m.get_one::<u32>("bots").expect("defaulted");
    cfg.duration = Duration::from_secs(*m.get_one::<u64>("duration").expect("defaulted"));
    cfg.ramp_per_sec = *m.get_one::<u32>("ramp").expect("defaulted");
    cfg.room_kind = m.get_one::<String>("room-kind").expect("defaulted").clone();
    cfg.entry = match m.get_one::<String>("join-code") {
        Some(code) => Entry::Code(code.clone()),
        None if m.get_flag("create") => Entry::Create,
        None => Entry::Join,
    };
    cfg.threads = *m.get_one::<u32>("threads").expect("defaulted") as usize;
    cfg.group = *m.get_one::<u32>("group").expect("defaulted");
    cfg.progress = true;
    let count = match *m.get_one::<Option<u32>>("source-ips").expect("defaulted") {
        Some(n) => n,
        None if is_loopback_target(&cfg.addr) => {
            SourceIps::needed(u64::from(cfg.bots), u64::from(cfg.ramp_per_sec))
        }
        None => 0,
    };
    if count > 0 {
        let base = *m
            .get_one::<std::net::Ipv4Addr>("source-base")
            .expect("defaulted");
        cfg.sources = Some(SourceIps::new(base, count).map_err(|e| format!("--source-ips: {e}"))?);
    }
    cfg.report_every = m
        .get_one::<u64>("report-every")
        .map(|s| Duration::from_secs(*s));
    Ok(cfg)
}

/// Runs `rally bots`: the swarm, then the summary table on stdout and the files asked for.
pub async fn run(m: &ArgMatches) -> anyhow::Result<ExitCode> {
    let cfg = match config(m) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("rally bots: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut lines: Box<dyn std::io::Write + Send> = match m.get_one::<PathBuf>("report-file") {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open --report-file {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let mut failed = None;
    let report = crate::run_with(cfg, |interval| {
        // One whole line per write, flushed at once, so a reader following the file
        // (scripts/soak.sh) sees each interval as it ends.
        let line = format!("{}\n", interval.to_json());
        if let Err(e) = lines
            .write_all(line.as_bytes())
            .and_then(|()| lines.flush())
        {
            failed.get_or_insert(e);
        }
    })
    .await;
    if let Some(e) = failed {
        eprintln!("rally bots: cannot write an interval report: {e}");
    }
    print!("{}", report.summary_table());
    if let Some(path) = m.get_one::<PathBuf>("json") {
        report
            .write_json(path)
            .with_context(|| format!("cannot write --json {}", path.display()))?;
    }
    if let Some(path) = m.get_one::<PathBuf>("chart") {
        report
            .write_chart(path)
            .with_context(|| format!("cannot write --chart {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ArgMatches, clap::Error> {
        command().try_get_matches_from(std::iter::once("bots").chain(args.iter().copied()))
    }

    #[test]
    fn the_entry_request_is_chosen_by_flag() {
        let create = config(&parse(&["--addr", "h:1", "--create"]).unwrap()).unwrap();
        assert_eq!(create.entry, Entry::Create);
        let code = config(&parse(&["--addr", "h:1", "--join-code", "K7WQ3M"]).unwrap()).unwrap();
        assert_eq!(code.entry, Entry::Code("K7WQ3M".into()));
        assert!(parse(&["--addr", "h:1", "--create", "--join-code", "K7WQ3M"]).is_err());
        assert!(parse(&["--addr", "h:1", "--join-code", ""]).is_err());
    }

    #[test]
    fn defaults_fill_the_config() {
        let cfg = config(&parse(&["--addr", "127.0.0.1:1"]).unwrap()).unwrap();
        assert_eq!(cfg.transport, Transport::Tcp);
        assert_eq!((cfg.bots, cfg.ramp_per_sec), (100, 500));
        assert_eq!(cfg.duration, Duration::from_secs(20));
        assert_eq!(cfg.room_kind, "arena");
        assert_eq!(cfg.entry, Entry::Join);
        let cfg = config(&parse(&["--addr", "h:2", "--transport", "ws", "--bots", "7"]).unwrap())
            .unwrap();
        assert_eq!((cfg.transport, cfg.bots), (Transport::WebSocket, 7));
        assert_eq!(cfg.report_every, None);
    }

    #[test]
    fn source_addresses_are_automatic_on_loopback_only() {
        // 100 bots at 500 a second: the rate needs 32 addresses.
        let cfg = config(&parse(&["--addr", "127.0.0.1:1"]).unwrap()).unwrap();
        let sources = cfg.sources.expect("on loopback");
        assert_eq!((sources.base(), sources.count()), (DEFAULT_SOURCE_BASE, 32));
        let cfg = config(&parse(&["--addr", "10.1.2.3:1"]).unwrap()).unwrap();
        assert_eq!(cfg.sources, None);
        let cfg = config(&parse(&["--addr", "127.0.0.1:1", "--source-ips", "0"]).unwrap()).unwrap();
        assert_eq!(cfg.sources, None);
        let m = parse(&[
            "--addr",
            "10.1.2.3:1",
            "--source-ips",
            "3",
            "--source-base",
            "10.9.0.1",
        ])
        .unwrap();
        let sources = config(&m).unwrap().sources.expect("asked for");
        assert_eq!(sources.count(), 3);
        let m = parse(&[
            "--addr",
            "127.0.0.1:1",
            "--source-ips",
            "9",
            "--source-base",
            "127.255.255.250",
        ])
        .unwrap();
        assert!(config(&m).unwrap_err().contains("--source-ips"));
        let m = parse(&["--addr", "h:1", "--report-every", "60"]).unwrap();
        assert_eq!(
            config(&m).unwrap().report_every,
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_flag_with_exit_code_2() {
        for (args, flag) in [
            (&["--addr", "h:1", "--transport", "udp"][..], "--transport"),
            (&["--addr", "h:1", "--bots", "0"][..], "--bots"),
            (&["--addr", "h:1", "--bots", "many"][..], "--bots"),
            (&["--addr", "h:1", "--duration=-3"][..], "--duration"),
            (&["--addr", "h:1", "--duration", "0"][..], "--duration"),
            (&["--addr", "h:1", "--ramp", "0"][..], "--ramp"),
            (&["--addr", "h:1", "--group", "0"][..], "--group"),
            (&["--addr", "nope"][..], "--addr"),
            (&["--addr", "h:99999"][..], "--addr"),
            (&["--addr", "h:1", "--room-kind", ""][..], "--room-kind"),
            (
                &["--addr", "h:1", "--source-ips", "many"][..],
                "--source-ips",
            ),
            (
                &["--addr", "h:1", "--source-base", "::1"][..],
                "--source-base",
            ),
            (
                &["--addr", "h:1", "--report-every", "0"][..],
                "--report-every",
            ),
            (
                &["--addr", "h:1", "--report-file", "f"][..],
                "--report-every",
            ),
        ] {
            let e = parse(args).expect_err(flag);
            let text = e.to_string();
            assert!(text.contains(flag), "{args:?}: {text}");
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }
}
