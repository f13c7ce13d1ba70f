//! The hot-path counters (infra floor): relaxed atomic adds for traffic, errors, rate
//! limits and missed ticks, read only when `/metrics` is scraped.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rally_protocol::ErrorCode;

use crate::transport::Transport;

/// Shards of the traffic counters; a thread always uses the same one.
const SHARDS: usize = 16;
/// Highest error code number plus one (codes are below 64).
const CODES: usize = 64;

/// Where an error sent to a client came from: the `kind` label of `async_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Refused by an accept loop before any session started (`SERVER_FULL`).
    Listener,
    /// The connection: protocol faults, timeouts, slow consumers, inputs, kicks.
    Session,
    /// A request's checks or execution.
    Command,
    /// A room: inputs the game refused, an operator closing it.
    Room,
}

impl ErrorKind {
    pub(super) const ALL: [ErrorKind; 4] = [
        ErrorKind::Listener,
        ErrorKind::Session,
        ErrorKind::Command,
        ErrorKind::Room,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            ErrorKind::Listener => "listener",
            ErrorKind::Session => "session",
            ErrorKind::Command => "command",
            ErrorKind::Room => "room",
        }
    }
}

/// Which traffic counter.
#[derive(Debug, Clone, Copy)]
pub(super) enum Flow {
    MessagesIn = 0,
    BytesIn = 1,
    MessagesOut = 2,
    BytesOut = 3,
}

/// One shard of the traffic counters, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct TrafficShard {
    /// `[transport][flow]`.
    counts: [[AtomicU64; 4]; 2],
}

thread_local! {
    /// This thread's traffic shard (`usize::MAX` until first used).
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

fn shard_index() -> usize {
    SHARD.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(i);
        }
        i
    })
}

pub(super) fn transport_index(t: Transport) -> usize {
    match t {
        Transport::Tcp => 0,
        Transport::WebSocket => 1,
    }
}

pub(super) const TRANSPORTS: [Transport; 2] = [Transport::Tcp, Transport::WebSocket];

/// The rate limits, as labelled in `rally_rate_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// An input past `input_rate`.
    Input = 0,
    /// A request or ping past `command_rate`.
    Command = 1,
    /// A connection closed for staying over its message limits.
    Closed = 2,
    /// A connection refused: `max_connections_per_ip` open from its address.
    AddressConnections = 3,
    /// A connection refused: past `connection_rate_per_ip`.
    AddressRate = 4,
}

impl Limit {
    pub(super) const ALL: [Limit; 5] = [
        Limit::Input,
        Limit::Command,
        Limit::Closed,
        Limit::AddressConnections,
        Limit::AddressRate,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            Limit::Input => "input",
            Limit::Command => "command",
            Limit::Closed => "closed",
            Limit::AddressConnections => "connections_per_ip",
            Limit::AddressRate => "connection_rate_per_ip",
        }
    }
}

/// Counters the hot paths add to: relaxed atomics, read at scrape time.
#[derive(Debug)]
pub(crate) struct Stats {
    /// Ticks rooms skipped because they fell behind.
    pub(crate) missed_ticks: AtomicU64,
    /// Errors sent to clients, by where they came from and code number.
    pub(super) errors: [[AtomicU64; CODES]; 4],
    /// Accept calls that failed (the server retries them).
    pub(super) accept_errors: AtomicU64,
    /// Messages and connections refused by a rate limit, by [`Limit`].
    rate_limited: [AtomicU64; 5],
    traffic: Box<[TrafficShard; SHARDS]>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            missed_ticks: AtomicU64::new(0),
            errors: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            accept_errors: AtomicU64::new(0),
            rate_limited: std::array::from_fn(|_| AtomicU64::new(0)),
            traffic: Box::default(),
        }
    }
}

impl Stats {
    /// Counts an error sent (or meant) to a client.
    pub(crate) fn count_error(&self, kind: ErrorKind, code: ErrorCode) {
        if let Some(c) = self.errors[kind as usize].get(usize::from(code.as_u16())) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Errors with `code` sent to clients, from anywhere.
    pub(crate) fn errors(&self, code: ErrorCode) -> u64 {
        let at = usize::from(code.as_u16());
        self.errors
            .iter()
            .filter_map(|by_code| by_code.get(at))
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Counts one message or connection refused by `limit`.
    pub(crate) fn count_rate_limited(&self, limit: Limit) {
        self.rate_limited[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals by `limit` so far.
    pub(crate) fn rate_limited(&self, limit: Limit) -> u64 {
        self.rate_limited[limit as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn count_accept_error(&self) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    fn add(&self, transport: Transport, flow: Flow, n: u64) {
        self.traffic[shard_index()].counts[transport_index(transport)][flow as usize]
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Messages and bytes read in one read call.
    pub(crate) fn received(&self, transport: Transport, messages: u64, bytes: usize) {
        if messages > 0 {
            self.add(transport, Flow::MessagesIn, messages);
        }
        self.add(transport, Flow::BytesIn, bytes as u64);
    }

    /// Messages and bytes sent in one write call.
    pub(crate) fn sent(&self, transport: Transport, messages: usize, bytes: usize) {
        self.add(transport, Flow::MessagesOut, messages as u64);
        self.add(transport, Flow::BytesOut, bytes as u64);
    }

    pub(super) fn traffic(&self, transport: Transport, flow: Flow) -> u64 {
        self.traffic
            .iter()
            .map(|s| s.counts[transport_index(transport)][flow as usize].load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_from_many_threads_adds_up() {
        let stats = Stats::default();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        stats.received(Transport::Tcp, 2, 10);
                        stats.sent(Transport::WebSocket, 3, 7);
                    }
                });
            }
        });
        assert_eq!(stats.traffic(Transport::Tcp, Flow::MessagesIn), 16_000);
        assert_eq!(stats.traffic(Transport::Tcp, Flow::BytesIn), 80_000);
        assert_eq!(
            stats.traffic(Transport::WebSocket, Flow::MessagesOut),
            24_000
        );
        assert_eq!(stats.traffic(Transport::WebSocket, Flow::BytesOut), 56_000);
        assert_eq!(stats.traffic(Transport::WebSocket, Flow::MessagesIn), 0);
    }

    #[test]
    fn errors_are_counted_by_kind_and_summed_by_code() {
        let stats = Stats::default();
        stats.count_error(ErrorKind::Session, ErrorCode::NotInRoom);
        stats.count_error(ErrorKind::Command, ErrorCode::NotInRoom);
        stats.count_error(ErrorKind::Listener, ErrorCode::ServerFull);
        assert_eq!(stats.errors(ErrorCode::NotInRoom), 2);
        assert_eq!(stats.errors(ErrorCode::ServerFull), 1);
        assert_eq!(stats.errors(ErrorCode::Kicked), 0);
        // Every code fits the table.
        assert!(ErrorCode::ALL
            .iter()
            .all(|c| usize::from(c.as_u16()) < CODES));
    }
}
