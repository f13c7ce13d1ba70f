//! What a swarm run does: which server, how many bots, for how long.

use std::time::Duration;

use crate::source::SourceIps;

/// Which transport the bots use: the protocol crate's (through the SDK), re-exported
/// as `rally_bots::Transport`.
pub use rally_client::Transport;

/// One swarm run.
#[derive(Debug, Clone)]
pub struct BotsConfig {
    /// The server, `host:port`: its TCP listener, or its HTTP listener for WebSocket.
    pub addr: String,
    /// The transport every bot uses.
    pub transport: Transport,
    /// How many bots to start.
    pub bots: u32,
    /// How long the run lasts from the first bot's start; then every bot closes.
    pub duration: Duration,
    /// Bots started per second, so that thousands of handshakes do not land at once.
    pub ramp_per_sec: u32,
    /// The room kind every bot joins; inputs are arena inputs.
    pub room_kind: String,
    /// How each bot takes its seat: `join` (the default), `create`, or `join_by_code`.
    pub entry: Entry,
    /// How often each bot sends an input (50 ms: the scenario's 20 Hz).
    pub input_interval: Duration,
    /// Latencies of inputs sent this soon after a bot joined are not recorded: the first
    /// moments include room creation and connection warm-up, not steady play.
    pub warmup: Duration,
    /// Bounds each bot's goodbye (leave, then close) at the end.
    pub close_timeout: Duration,
    /// Threads the bots run on, each a single-threaded runtime (groups of bots are dealt
    /// out round-robin); 0 runs them on the caller's runtime. One thread keeps the bots to
    /// one core, leaving the other cores to the server under test.
    pub threads: usize,
    /// Bots driven by one task (with one timer and one read buffer); see
    /// [`crate::group`]. Bots are grouped by id, so with `join` a group's bots share
    /// rooms, and a room tick's states wake the group once.
    pub group: u32,
    /// Whether to draw a progress line on stderr once a second.
    pub progress: bool,
    /// The local addresses bots connect from, bot `i` from the `i`-th (round-robin);
    /// `None`: the system's choice. See [`crate::source`].
    pub sources: Option<SourceIps>,
    /// How often to report an interval (`rally bots --report-every`): latency, errors and
    /// traffic of that interval alone, so a long run shows drift. `None`: no intervals.
    pub report_every: Option<Duration>,
}

/// The request a bot takes its seat with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `join`: join-or-create a room of the kind (`rally bots`' default).
    Join,
    /// `create`: each bot opens a private room of its own (`--create`), the path a
    /// player starting a match for friends takes.
    Create,
    /// `join_by_code`: every bot joins the room with this share code (`--join-code`),
    /// e.g. to fill a room a person opened in the browser; bots past its seats are
    /// refused (`join:ROOM_FULL`).
    Code(String),
}

impl BotsConfig {
    /// A run against `addr` with the defaults of `rally bots`.
    pub fn new(addr: impl Into<String>) -> BotsConfig {
        BotsConfig {
            addr: addr.into(),
            transport: Transport::Tcp,
            bots: DEFAULT_BOTS,
            duration: Duration::from_secs(DEFAULT_DURATION_SECS),
            ramp_per_sec: DEFAULT_RAMP,
            room_kind: DEFAULT_ROOM_KIND.to_owned(),
            entry: Entry::Join,
            input_interval: Duration::from_millis(50),
            warmup: Duration::from_secs(2),
            close_timeout: Duration::from_secs(5),
            threads: DEFAULT_THREADS,
            group: DEFAULT_GROUP,
            progress: false,
            sources: None,
            report_every: None,
        }
    }
}

/// Default of `--bots`.
pub(crate) const DEFAULT_BOTS: u32 = 100;
/// Default of `--duration`.
pub(crate) const DEFAULT_DURATION_SECS: u64 = 20;
/// Default of `--ramp`.
pub(crate) const DEFAULT_RAMP: u32 = 500;
/// Default of `--group`: two rooms of 16.
pub(crate) const DEFAULT_GROUP: u32 = 32;
/// Default of `--threads`.
pub(crate) const DEFAULT_THREADS: usize = 1;
/// Default of `--source-base`: a range of its own, apart from the one
/// `rally abuse` uses, so honest bots never share an address with an attacker.
pub(crate) const DEFAULT_SOURCE_BASE: std::net::Ipv4Addr = crate::source::HONEST_BASE;
/// Default of `--room-kind`.
pub(crate) const DEFAULT_ROOM_KIND: &str = "arena";
