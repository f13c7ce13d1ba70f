//! What a client connects to, over which transport, and how long it waits for anything.

use std::net::IpAddr;
use std::time::Duration;

use crate::retry::RetryPolicy;

/// Which transport carries the protocol: the protocol crate's, re-exported as
/// `rally_client::Transport`.
pub use rally_protocol::Transport;

/// How a [`Client`](crate::Client) connects and how long it waits.
///
/// Every wait is bounded: the handshake by `connect_timeout`, each request by
/// `request_timeout`, a silent connection by the server's own `timeout_ms` (learnt from
/// `welcome`), and buffers by `event_capacity` and `max_outbound_bytes`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Servers as `host:port`. With several, all are tried at once and the first to
    /// complete the handshake wins; reconnection prefers the one that won, since only it
    /// holds the seat. For WebSocket, the address of the HTTP listener (the path is `/ws`).
    pub addrs: Vec<String>,
    /// The transport to use on every address.
    pub transport: Transport,
    /// Sent in `hello`: the client's name in server logs and its display name in chat
    /// (at most 64 bytes; empty lets the server name it `player-<session id>`).
    pub client_name: String,
    /// Bounds one connection attempt: TCP connect, WebSocket upgrade, `hello` to `welcome`.
    pub connect_timeout: Duration,
    /// Bounds one attempt of a request (`join`, `leave`, `chat`) or a `ping`, from send to
    /// reply. The server bounds each request by its `timeout_ms` too.
    pub request_timeout: Duration,
    /// How connects, reconnects and requests are retried (SPEC.md section 2).
    pub retry: RetryPolicy,
    /// Whether an unexpected drop is followed by a reconnection that takes the seat back.
    pub reconnect: bool,
    /// Events held for the application before the oldest state is dropped to make room
    /// (see [`Events::dropped`](crate::Events::dropped)). Bounds memory when the
    /// application reads slower than the server sends.
    pub event_capacity: usize,
    /// Bytes of outgoing messages held while the socket is busy; beyond it
    /// [`Client::send_input`](crate::Client::send_input) refuses with
    /// [`Error::Backpressure`](crate::Error::Backpressure) instead of blocking.
    pub max_outbound_bytes: usize,
    /// Largest server message accepted. The protocol puts no limit on server messages (a
    /// state may be large); this is the client's sanity bound.
    pub max_inbound_bytes: usize,
    /// The local address every connection is made from (its port is left to the
    /// system); `None` lets the system choose. Load generators on one host spread their
    /// connections over many addresses of `127.0.0.0/8` with it, as players on many hosts
    /// would be, so a server's per-address limits see each as a separate host.
    pub source_ip: Option<IpAddr>,
}

impl Config {
    /// A raw TCP client of one server, with the defaults.
    pub fn new(addr: impl Into<String>) -> Config {
        Config {
            addrs: vec![addr.into()],
            transport: Transport::Tcp,
            client_name: String::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            reconnect: true,
            event_capacity: 256,
            max_outbound_bytes: 64 * 1024,
            max_inbound_bytes: 16 << 20,
            source_ip: None,
        }
    }

    /// The same, over `transport`.
    pub fn transport(mut self, transport: Transport) -> Config {
        self.transport = transport;
        self
    }

    /// The same, with one more server address to try.
    pub fn addr(mut self, addr: impl Into<String>) -> Config {
        self.addrs.push(addr.into());
        self
    }

    /// The same, with `name` as the client name.
    pub fn client_name(mut self, name: impl Into<String>) -> Config {
        self.client_name = name.into();
        self
    }

    /// The same, connecting from `ip` (see [`Config::source_ip`]).
    pub fn source_ip(mut self, ip: IpAddr) -> Config {
        self.source_ip = Some(ip);
        self
    }

    /// Refuses values the server would refuse fatally, or that make no sense.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        if self.addrs.is_empty() {
            return Err("no server address");
        }
        if self.client_name.len() > MAX_CLIENT_NAME {
            return Err("client name longer than 64 bytes");
        }
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err("a timeout is zero");
        }
        if self.event_capacity == 0 || self.max_outbound_bytes == 0 {
            return Err("a buffer capacity is zero");
        }
        Ok(())
    }
}

/// The longest client name the server accepts in `hello` (`docs/protocol.md` section 5).
const MAX_CLIENT_NAME: usize = 64;
