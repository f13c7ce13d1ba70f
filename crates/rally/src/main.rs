//! `rally`: the Rally game server binary.
//!
//! `rally serve` wires configuration (flags, `RALLY_*` environment, `rally.toml`) to the
//! server library, registers the bundled games, and turns SIGINT/SIGTERM into a graceful
//! shutdown; a second signal exits at once. `rally migrate` applies the database
//! migrations (`database_url`) with the same configuration and exits. With the default
//! `load-tools` feature it also carries the load tools (`bots`, `bench`, `bench-worker`,
//! `abuse`); `--no-default-features` builds the server alone.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Arg, ArgMatches, Command};
use rally_server::config::KEYS;
use rally_server::{Games, KindRules, LogFormat, QueueRules, Server, Sources};

/// Exit code when a second signal cuts the drain short (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

/// `--config` and a flag per configuration key, as `serve` and `migrate` take them.
fn with_config_args(mut command: Command) -> Command {
    command = command.arg(
        Arg::new("config")
            .long("config")
            .value_name("FILE")
            .value_parser(clap::value_parser!(PathBuf))
            .help("TOML file with any of the keys below (default: ./rally.toml if it exists)"),
    );
    for key in KEYS {
        let help = format!(
            "{} [env {}] [default {}] [{}]",
            key.help,
            key.env(),
            key.default_text(),
            key.allowed()
        );
        command = command.arg(
            Arg::new(key.name)
                .long(key.flag())
                .value_name("VALUE")
                .help(help),
        );
    }
    command
}

fn cli() -> Command {
    let rally = Command::new("rally")
        .about("Rally: an authoritative real-time multiplayer game server")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .arg_required_else_help(true);
    let serve = with_config_args(
        Command::new("serve")
            .about("Run the game server: TCP, WebSocket (/ws) and admin listeners"),
    );
    let migrate = with_config_args(
        Command::new("migrate")
            .about("Apply the database migrations (database_url) and exit, without serving"),
    );
    let rally = rally.subcommand(serve).subcommand(migrate);
    #[cfg(feature = "load-tools")]
    let rally = rally
        .subcommand(rally_bots::cli::command())
        .subcommand(rally_bench::cli::command())
        .subcommand(rally_bench::cli::worker_command())
        .subcommand(rally_bench::abuse::cli::command());
    rally
}

/// Players in an arena match from the rating queue (a room seats 16: the rest stays
/// free for friends joining by code).
const ARENA_MATCH: usize = 4;

/// The games `rally serve` offers: arena (its `mode` option is the filter key of
/// `join_or_create` and of the rating queue; queued players meet four at a time) and
/// tic-tac-toe (a room starts with two players and locks itself; queued players meet two
/// at a time).
fn games() -> Games {
    let mut games = Games::new();
    games
        .register_kind(
            arena::KIND,
            KindRules::new(arena::MAX_PLAYERS)
                .filter_keys(&[arena::MODE])
                .queue(QueueRules {
                    match_size: Some(ARENA_MATCH),
                    ..QueueRules::default()
                }),
            arena::Arena::from_options,
        )
        .register_kind(
            tictactoe::KIND,
            KindRules::new(tictactoe::MAX_PLAYERS)
                .min_players(tictactoe::MAX_PLAYERS)
                .queue(QueueRules::default()),
            |_| Ok(tictactoe::TicTacToe::new()),
        );
    games
}

fn sources(m: &ArgMatches) -> anyhow::Result<Sources> {
    let mut sources = Sources::new();
    let default_file = PathBuf::from("rally.toml");
    match m.get_one::<PathBuf>("config") {
        Some(path) => sources = sources.file(path)?,
        None if default_file.exists() => sources = sources.file(&default_file)?,
        None => {}
    }
    sources = sources.env(std::env::vars());
    for key in KEYS {
        if let Some(v) = m.get_one::<String>(key.name) {
            sources = sources.flag(key.name, v.clone());
        }
    }
    Ok(sources)
}

#[cfg(all(feature = "console", not(tokio_unstable)))]
compile_error!("the `console` feature needs tokio's unstable instrumentation: build with RUSTFLAGS=\"--cfg tokio_unstable\"");

fn init_logs(level: &str, format: LogFormat) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("invalid log_level {level:?}"))?;
    let logs = rally_server::logging::layer(format, std::io::stderr).with_filter(filter);
    let registry = tracing_subscriber::registry().with(logs);
    // tokio-console attaches to this layer (port 6669 by default); it sees the runtime's
    // task events whatever `log_level` says.
    #[cfg(feature = "console")]
    let registry = registry.with(console_subscriber::spawn());
    registry
        .try_init()
        .context("cannot install the log subscriber")?;
    Ok(())
}

/// SIGINT and SIGTERM, watched from when this is made. tokio installs its handler when a
/// signal stream is created, not when it is first polled: made before the server binds,
/// a signal that arrives once it says it is serving starts the drain instead of killing
/// the process (the default action), and a second one is kept until it is read.
struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn watch() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let watch = |kind, name: &str| {
                signal(kind)
                    .map_err(|e| tracing::warn!(error = %e, "cannot watch {name}"))
                    .ok()
            };
            Signals {
                int: watch(SignalKind::interrupt(), "SIGINT"),
                term: watch(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Completes at the next SIGINT or SIGTERM.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        let _ = s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.int) => {}
                _ = next(&mut self.term) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn serve(m: &ArgMatches) -> anyhow::Result<ExitCode> {
    let config = sources(m)?.load()?;
    init_logs(&config.log_level, config.log_format)?;
    // Each player is a file descriptor: take the soft limit up to the hard one, and say
    // so when even that cannot hold `concurrency_limit` players (plus listeners and logs).
    let wanted = u64::from(config.concurrency_limit) + 64;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted => tracing::warn!(
            open_files = limit,
            concurrency_limit = config.concurrency_limit,
            "the open-file limit is below concurrency_limit; connections past it will fail to be accepted"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
    }
    let mut signals = Signals::watch();
    let server = Server::builder(config, games()).bind().await?;
    let report = server
        .run(async move {
            signals.recv().await;
            tracing::info!("signal received; a second signal exits at once");
            tokio::spawn(async move {
                signals.recv().await;
                tracing::warn!("second signal: exiting without finishing the drain");
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            });
        })
        .await;
    if !report.drained {
        tracing::warn!(
            forced = report.forced,
            "some connections were closed at the end of the grace period"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `rally migrate`: brings the configured database's schema up to date.
async fn migrate(m: &ArgMatches) -> anyhow::Result<ExitCode> {
    let config = sources(m)?.load()?;
    init_logs(&config.log_level, config.log_format)?;
    rally_server::migrate(&config)
        .await
        .with_context(|| format!("migrating {} (database_url)", config.database_url))?;
    eprintln!("rally: database {} is up to date", config.database_url);
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let matches = cli().get_matches();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rally: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match matches.subcommand() {
        Some(("serve", m)) => runtime.block_on(serve(m)),
        Some(("migrate", m)) => runtime.block_on(migrate(m)),
        #[cfg(feature = "load-tools")]
        Some(("bots", m)) => runtime.block_on(rally_bots::cli::run(m)),
        #[cfg(feature = "load-tools")]
        Some(("bench", m)) => runtime.block_on(rally_bench::cli::run(m)),
        #[cfg(feature = "load-tools")]
        Some(("bench-worker", m)) => runtime.block_on(rally_bench::cli::run_worker(m)),
        #[cfg(feature = "load-tools")]
        Some(("abuse", m)) => runtime.block_on(rally_bench::abuse::cli::run(m)),
        _ => Ok(ExitCode::FAILURE),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rally: {e:#}");
            ExitCode::from(2)
        }
    }
}
