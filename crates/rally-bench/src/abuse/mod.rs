//! Abusive clients, and the `rally bench` scenario that runs them beside honest players.
//!
//! A server is only as good as what it does to clients that break the rules. These
//! attackers run as the hidden `rally abuse <attack>` subcommand (one process each, so
//! its CPU is its own), count what the server did to them, and print one JSON object.
//! They spread their connections over addresses of `127.0.0.0/8` of their own
//! (127.2.0.1 up for floods, 127.3 for slowloris, 127.4 for garbage), apart from the
//! honest bots (127.1), so per-address limits treat them as the separate hosts they
//! model.
//!
//! # Layout
//! - [`flood`]: messages as fast as the socket takes them, or connections as fast as
//!   they open.
//! - [`slowloris`]: sockets opened at once that never finish the handshake.
//! - [`garbage`]: random and malformed bytes, on TCP and WebSocket.
//! - [`cli`]: `rally abuse`'s flags.
//! - [`suite`]: `rally bench`'s abuse scenario: a fresh server per case, honest bots,
//!   an attacker, honest latency and join time against a clean run.
//! - `wire`: connecting, framing, reading back what the server said; `tally`: counters.

pub mod cli;
pub mod flood;
pub mod garbage;
pub mod slowloris;
pub mod suite;
mod tally;
mod wire;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::time::Instant;

pub use wire::{Target, Transport};

/// Whether a fresh client can still get in: connects to `addr` from `source`, says
/// `hello` and waits for `welcome`, within `limit`. The time it took, or how the server
/// refused it (`error:SERVER_FULL`, `http:503`, `closed`, `connect:refused`, ...).
pub async fn probe(
    transport: Transport,
    addr: SocketAddr,
    source: Option<IpAddr>,
    limit: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    let attempt = async {
        let mut conn = wire::Conn::open(transport, addr, source)
            .await
            .map_err(|e| format!("connect:{}", wire::io_kind(&e)))?;
        match conn.handshake("probe", limit).await {
            Ok(true) => Ok(start.elapsed()),
            Ok(false) => Err(conn.verdict.ending(&Ok(0))),
            Err(e) => Err(format!("handshake:{}", wire::io_kind(&e))),
        }
    };
    tokio::time::timeout(limit, attempt)
        .await
        .unwrap_or_else(|_| Err("timeout".to_owned()))
}
