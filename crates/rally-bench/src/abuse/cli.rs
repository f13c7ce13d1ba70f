//! `rally abuse <flood|slowloris|garbage>` (hidden): one attacker process, its JSON
//! report on stdout (and in `--out FILE` if given).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use rally_bots::SourceIps;

use super::wire::Target;
use super::{flood, garbage, slowloris};

/// First source address of each attack: ranges of their own, apart from one another
/// and from honest load (127.1.0.1 up).
pub const FLOOD_BASE: Ipv4Addr = Ipv4Addr::new(127, 2, 0, 1);
/// See [`FLOOD_BASE`].
pub const SLOWLORIS_BASE: Ipv4Addr = Ipv4Addr::new(127, 3, 0, 1);
/// See [`FLOOD_BASE`].
pub const GARBAGE_BASE: Ipv4Addr = Ipv4Addr::new(127, 4, 0, 1);

/// The flags every attack takes; `conns`, `ips` and `base` are its defaults.
fn attack(
    name: &'static str,
    about: &'static str,
    conns: u32,
    ips: u32,
    base: Ipv4Addr,
) -> Command {
    let addr = |name: &'static str, help: &'static str| {
        Arg::new(name)
            .long(name)
            .value_name("HOST:PORT")
            .value_parser(value_parser!(SocketAddr))
            .help(help)
    };
    Command::new(name)
        .about(about)
        .arg(addr("tcp", "The server's TCP listener"))
        .arg(addr("ws", "The server's HTTP listener (WebSocket on /ws); with --tcp too, connections alternate"))
        .arg(
            Arg::new("conns")
                .long("conns")
                .value_name("N")
                .default_value(conns.to_string())
                .value_parser(value_parser!(u32).range(1..=100_000))
                .help("Connections at once"),
        )
        .arg(
            Arg::new("duration")
                .long("duration")
                .value_name("SECS")
                .default_value("20")
                .value_parser(value_parser!(u64).range(1..=86_400))
                .help("How long the attack lasts"),
        )
        .arg(
            Arg::new("source-ips")
                .long("source-ips")
                .value_name("N")
                .default_value(ips.to_string())
                .value_parser(value_parser!(u32))
                .help("Connect from N addresses from --source-base, round-robin (0: the system's choice)"),
        )
        .arg(
            Arg::new("source-base")
                .long("source-base")
                .value_name("IPV4")
                .default_value(base.to_string())
                .value_parser(value_parser!(Ipv4Addr))
                .help("The first source address"),
        )
        .arg(
            Arg::new("out")
                .long("out")
                .value_name("FILE")
                .value_parser(value_parser!(PathBuf))
                .help("Also write the JSON report to FILE"),
        )
}

/// The hidden `abuse` subcommand.
pub fn command() -> Command {
    Command::new("abuse")
        .about("Abusive clients for testing a server's defences (each prints a JSON report)")
        .hide(true)
        .subcommand_required(true)
        .subcommand(
            attack(
                "flood",
                "Messages as fast as the socket allows on established sessions, or new connections as fast as possible",
                50,
                1,
                FLOOD_BASE,
            )
            .arg(
                Arg::new("mode")
                    .long("mode")
                    .default_value("messages")
                    .value_parser(["messages", "connect"])
                    .help("messages: inputs and pings on sessions; connect: connections"),
            )
            .arg(
                Arg::new("join")
                    .long("join")
                    .value_name("KIND|none")
                    .default_value("arena")
                    .help("The room kind to join before flooding messages (none: flood from the lobby)"),
            )
            .arg(
                Arg::new("batch")
                    .long("batch")
                    .value_name("N")
                    .default_value("64")
                    .value_parser(value_parser!(u32).range(1..=10_000))
                    .help("Messages per write"),
            ),
        )
        .subcommand(
            attack(
                "slowloris",
                "Sockets opened at once that drip their opening bytes or say nothing, reopened when closed",
                1000,
                16,
                SLOWLORIS_BASE,
            )
            .arg(
                Arg::new("mode")
                    .long("mode")
                    .default_value("drip")
                    .value_parser(["drip", "silent"])
                    .help("drip: one byte of the handshake every --drip-ms; silent: nothing"),
            )
            .arg(
                Arg::new("drip-ms")
                    .long("drip-ms")
                    .value_name("MS")
                    .default_value("1000")
                    .value_parser(value_parser!(u64).range(1..=600_000))
                    .help("The pause between two bytes"),
            )
            .arg(
                Arg::new("reopen-ms")
                    .long("reopen-ms")
                    .value_name("MS")
                    .default_value("1000")
                    .value_parser(value_parser!(u64).range(0..=600_000))
                    .help("Reopen a socket the server closed after MS"),
            )
            .arg(
                Arg::new("no-reconnect")
                    .long("no-reconnect")
                    .action(ArgAction::SetTrue)
                    .help("Do not reopen a socket the server closed"),
            ),
        )
        .subcommand(
            attack(
                "garbage",
                "Random and malformed bytes, a case per connection, reconnecting after each",
                16,
                1,
                GARBAGE_BASE,
            )
            .arg(
                Arg::new("seed")
                    .long("seed")
                    .value_name("N")
                    .value_parser(value_parser!(u64))
                    .help("Seeds the cases' bytes [default: the clock]"),
            )
            .arg(
                Arg::new("hold-ms")
                    .long("hold-ms")
                    .value_name("MS")
                    .default_value("10000")
                    .value_parser(value_parser!(u64).range(1..=600_000))
                    .help("How long to wait for the server to close after a case"),
            ),
        )
}

/// The flags every attack shares.
struct Common {
    target: Target,
    conns: u32,
    duration: Duration,
    sources: Option<SourceIps>,
}

fn common(m: &ArgMatches) -> anyhow::Result<Common> {
    let target = Target {
        tcp: m.get_one::<SocketAddr>("tcp").copied(),
        ws: m.get_one::<SocketAddr>("ws").copied(),
    };
    if target.tcp.is_none() && target.ws.is_none() {
        bail!("give --tcp, --ws or both");
    }
    // The unwraps below cannot fail: these flags have defaults of exactly these types.
    let count = *m.get_one::<u32>("source-ips").expect("defaulted");
    let base = *m.get_one::<Ipv4Addr>("source-base").expect("defaulted");
    let sources = match count {
        0 => None,
        n => Some(SourceIps::new(base, n).map_err(|e| anyhow::anyhow!("--source-ips: {e}"))?),
    };
    Ok(Common {
        target,
        conns: *m.get_one::<u32>("conns").expect("defaulted"),
        duration: Duration::from_secs(*m.get_one::<u64>("duration").expect("defaulted")),
        sources,
    })
}

/// Runs `rally abuse`.
pub async fn run(m: &ArgMatches) -> anyhow::Result<ExitCode> {
    // A thousand sockets need a thousand descriptors.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (report, m) = match m.subcommand() {
        Some(("flood", m)) => {
            let c = common(m)?;
            let join = m
                .get_one::<String>("join")
                .filter(|k| *k != "none")
                .cloned();
            let opts = flood::Options {
                target: c.target,
                conns: c.conns,
                duration: c.duration,
                sources: c.sources,
                mode: match m.get_one::<String>("mode").map(String::as_str) {
                    Some("connect") => flood::Mode::Connect,
                    _ => flood::Mode::Messages,
                },
                join,
                batch: *m.get_one::<u32>("batch").expect("defaulted") as usize,
            };
            (flood::run(opts).await, m)
        }
        Some(("slowloris", m)) => {
            let c = common(m)?;
            let opts = slowloris::Options {
                target: c.target,
                conns: c.conns,
                duration: c.duration,
                sources: c.sources,
                mode: match m.get_one::<String>("mode").map(String::as_str) {
                    Some("silent") => slowloris::Mode::Silent,
                    _ => slowloris::Mode::Drip,
                },
                drip: Duration::from_millis(*m.get_one::<u64>("drip-ms").expect("defaulted")),
                reconnect: (!m.get_flag("no-reconnect")).then(|| {
                    Duration::from_millis(*m.get_one::<u64>("reopen-ms").expect("defaulted"))
                }),
            };
            (slowloris::run(opts).await, m)
        }
        Some(("garbage", m)) => {
            let c = common(m)?;
            let opts = garbage::Options {
                target: c.target,
                conns: c.conns,
                duration: c.duration,
                sources: c.sources,
                seed: m
                    .get_one::<u64>("seed")
                    .copied()
                    .unwrap_or_else(super::wire::clock_seed),
                hold_limit: Duration::from_millis(*m.get_one::<u64>("hold-ms").expect("defaulted")),
            };
            (garbage::run(opts).await, m)
        }
        _ => return Ok(ExitCode::FAILURE),
    };
    let text = serde_json::to_string(&report)?;
    println!("{text}");
    if let Some(path) = m.get_one::<PathBuf>("out") {
        std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ArgMatches, clap::Error> {
        command().try_get_matches_from(std::iter::once("abuse").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_and_refusals() {
        let m = parse(&["slowloris", "--tcp", "127.0.0.1:1"]).unwrap();
        let (_, m) = m.subcommand().unwrap();
        let c = common(m).unwrap();
        assert_eq!(c.conns, 1000);
        let s = c.sources.expect("16 addresses");
        assert_eq!((s.base(), s.count()), (SLOWLORIS_BASE, 16));
        let m = parse(&["flood"]).unwrap();
        assert!(common(m.subcommand().unwrap().1).is_err(), "no target");
        assert!(parse(&["flood", "--tcp", "127.0.0.1:1", "--mode", "fast"]).is_err());
        assert!(parse(&["garbage", "--tcp", "nowhere"]).is_err());
        let m = parse(&["garbage", "--ws", "127.0.0.1:1", "--source-ips", "0"]).unwrap();
        assert!(common(m.subcommand().unwrap().1).unwrap().sources.is_none());
    }
}
