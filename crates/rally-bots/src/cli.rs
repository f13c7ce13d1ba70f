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
    BotsConfig, Transport, DEFAULT_BOTS, DEFAULT_DURATION_SECS, DEFAULT_RAMP, DEFAULT_ROOM_KIND,
    DEFAULT_THREADS,
};

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
            Arg::new("room-kind")
                .long("room-kind")
                .value_name("KIND")
                .default_value(DEFAULT_ROOM_KIND)
                .value_parser(clap::builder::NonEmptyStringValueParser::new())
                .help("The room kind to join (inputs are arena inputs)"),
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

/// The run that matches of [`command`] describe (progress on).
pub fn config(m: &ArgMatches) -> BotsConfig {
    // The unwraps below cannot fail: each of these flags is required or has a default,
    // and its value parser produced exactly this type.
    let mut cfg = BotsConfig::new(m.get_one::<String>("addr").expect("required").clone());
    cfg.transport = match m.get_one::<String>("transport").map(String::as_str) {
        Some("ws") => Transport::Ws,
        _ => Transport::Tcp,
    };
    cfg.bots = *m.get_one::<u32>("bots").expect("defaulted");
    cfg.duration = Duration::from_secs(*m.get_one::<u64>("duration").expect("defaulted"));
    cfg.ramp_per_sec = *m.get_one::<u32>("ramp").expect("defaulted");
    cfg.room_kind = m.get_one::<String>("room-kind").expect("defaulted").clone();
    cfg.threads = *m.get_one::<u32>("threads").expect("defaulted") as usize;
    cfg.progress = true;
    cfg
}

/// Runs `rally bots`: the swarm, then the summary table on stdout and the files asked for.
pub async fn run(m: &ArgMatches) -> anyhow::Result<ExitCode> {
    let report = crate::run(config(m)).await;
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
    fn defaults_fill_the_config() {
        let cfg = config(&parse(&["--addr", "127.0.0.1:1"]).unwrap());
        assert_eq!(cfg.transport, Transport::Tcp);
        assert_eq!((cfg.bots, cfg.ramp_per_sec), (100, 500));
        assert_eq!(cfg.duration, Duration::from_secs(20));
        assert_eq!(cfg.room_kind, "arena");
        let cfg = config(&parse(&["--addr", "h:2", "--transport", "ws", "--bots", "7"]).unwrap());
        assert_eq!((cfg.transport, cfg.bots), (Transport::Ws, 7));
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
            (&["--addr", "nope"][..], "--addr"),
            (&["--addr", "h:99999"][..], "--addr"),
            (&["--addr", "h:1", "--room-kind", ""][..], "--room-kind"),
        ] {
            let e = parse(args).expect_err(flag);
            let text = e.to_string();
            assert!(text.contains(flag), "{args:?}: {text}");
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }
}
