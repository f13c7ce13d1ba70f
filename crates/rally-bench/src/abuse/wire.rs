//! The attackers' side of the wire: connecting (from a source address, through the
//! WebSocket upgrade), writing client messages in either framing, and reading back what
//! the server said, decoded just enough to count it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rally_bots::source::connect_from;
use rally_protocol::framing::{ClientFramer, Deframer, Incoming};
use rally_protocol::{ClientMessage, ErrorCode, ServerMessage, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The mask of every WebSocket frame an attacker sends: any key is valid (RFC 6455
/// wants it unpredictable to defeat proxy cache poisoning, which is no concern here).
pub(crate) const MASK: [u8; 4] = [0x3c, 0x5a, 0xa5, 0xc3];
/// The server's messages are small (a 16-player state is about 240 bytes); more than
/// this unread in the inbox is junk, dropped.
const INBOX_LIMIT: usize = 1 << 20;

/// Which listener an attacker connects to: the protocol crate's, re-exported as
/// `rally_bench::abuse::Transport`.
pub use rally_protocol::Transport;

/// The server's listeners an attack goes to; connections alternate between the two
/// when both are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The TCP listener.
    pub tcp: Option<SocketAddr>,
    /// The HTTP listener (WebSocket on `/ws`).
    pub ws: Option<SocketAddr>,
}

impl Target {
    /// Where connection `i` goes: TCP for even `i` and WebSocket for odd, when both are
    /// given. `None` when neither is.
    pub fn pick(&self, i: u64) -> Option<(Transport, SocketAddr)> {
        match (self.tcp, self.ws) {
            (Some(t), Some(w)) => Some(if i % 2 == 1 {
                (Transport::WebSocket, w)
            } else {
                (Transport::Tcp, t)
            }),
            (Some(t), None) => Some((Transport::Tcp, t)),
            (None, Some(w)) => Some((Transport::WebSocket, w)),
            (None, None) => None,
        }
    }

    /// The transports in use.
    pub fn transports(&self) -> Vec<Transport> {
        let mut t = Vec::new();
        if self.tcp.is_some() {
            t.push(Transport::Tcp);
        }
        if self.ws.is_some() {
            t.push(Transport::WebSocket);
        }
        t
    }
}

/// The HTTP request that upgrades a connection to `addr` to a WebSocket on `/ws`.
pub(crate) fn upgrade_request(addr: SocketAddr) -> Vec<u8> {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Appends `body` as one client frame: a length prefix over TCP, a masked binary
/// frame over WebSocket.
pub(crate) fn push_body(transport: Transport, body: &[u8], out: &mut Vec<u8>) {
    ClientFramer(transport).body(body, MASK, out);
}

/// Appends `msg` as one client frame.
pub(crate) fn push(transport: Transport, msg: &ClientMessage<'_>, out: &mut Vec<u8>) {
    // No size limit here (an attacker sends what it likes), so this cannot fail.
    let _ = ClientFramer(transport).message(msg, usize::MAX, MASK, out);
}

/// A `hello` body, as a fresh client sends it.
pub(crate) fn hello_body(name: &str) -> Vec<u8> {
    let mut body = Vec::new();
    ClientMessage::Hello {
        version: PROTOCOL_VERSION,
        client: name,
        resume: None,
        token: None,
    }
    .encode(&mut body);
    body
}

/// One thing the server said.
#[derive(Debug)]
pub(crate) enum Said {
    /// The HTTP status of its answer to the upgrade request (101: upgraded).
    Http(u16),
    /// A protocol message.
    Msg(ServerMessage),
    /// A WebSocket close frame, with its status code.
    Close(Option<u16>),
    /// Bytes that are no server message; the inbox is cleared after them.
    Junk,
}

/// Bytes received from the server, decoded one [`Said`] at a time.
pub(crate) struct Inbox {
    buf: Vec<u8>,
    /// The protocol's client-role deframer; `None` while a WebSocket connection waits
    /// for the HTTP answer to its upgrade.
    deframer: Option<Deframer>,
}

impl Inbox {
    pub(crate) fn new(transport: Transport) -> Inbox {
        Inbox {
            buf: Vec::new(),
            deframer: (transport == Transport::Tcp)
                .then(|| Deframer::client(Transport::Tcp, INBOX_LIMIT)),
        }
    }

    /// Reads once from `stream` into the inbox; `Ok(0)` when the server closed.
    pub(crate) async fn read(&mut self, stream: &mut TcpStream) -> std::io::Result<usize> {
        if self.buf.len() > INBOX_LIMIT {
            self.buf.clear();
        }
        self.buf.reserve(4096);
        stream.read_buf(&mut self.buf).await
    }

    /// Appends bytes read elsewhere (a split read half).
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        if self.buf.len() > INBOX_LIMIT {
            self.buf.clear();
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next thing the server said, if its bytes are all here.
    pub(crate) fn next(&mut self) -> Option<Said> {
        let Some(deframer) = &mut self.deframer else {
            let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
            let status = std::str::from_utf8(&self.buf[..end])
                .ok()
                .and_then(|head| head.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u16>().ok());
            self.buf.drain(..end);
            return match status {
                Some(101) => {
                    self.deframer = Some(Deframer::client(Transport::WebSocket, INBOX_LIMIT));
                    Some(Said::Http(101))
                }
                Some(s) => Some(Said::Http(s)),
                None => {
                    self.buf.clear();
                    Some(Said::Junk)
                }
            };
        };
        let (used, said) = match deframer.decode(&mut self.buf) {
            Ok(None) => return None,
            Ok(Some((used, incoming))) => (
                used,
                match incoming {
                    Incoming::Message(body) => {
                        ServerMessage::decode(body).map_or(Said::Junk, Said::Msg)
                    }
                    Incoming::Close(code) => Said::Close(code),
                    // The server sends neither pings nor fragments; a pong answers a ping
                    // an attacker sent. Consumed like any frame: returning before the
                    // drain below decoded the same frame again forever (an attacker
                    // spinning at 100% CPU).
                    Incoming::Ping(_) | Incoming::Nothing => Said::Junk,
                },
            ),
            Err(_) => {
                self.buf.clear();
                return Some(Said::Junk);
            }
        };
        self.buf.drain(..used);
        Some(said)
    }
}

/// What the server did to one connection, from the attacker's side: the last fatal
/// thing it said before closing.
#[derive(Debug, Default, Clone)]
pub(crate) struct Verdict {
    /// The upgrade was answered with this HTTP status (not 101).
    pub(crate) http: Option<u16>,
    /// The last unprompted error (request id 0) with a code that ends a connection, or
    /// RATE_LIMITED (which ends one that keeps going over).
    pub(crate) error: Option<ErrorCode>,
    /// The WebSocket close status, if a close frame came.
    pub(crate) close: Option<u16>,
    /// Whether `welcome` came.
    pub(crate) welcomed: bool,
}

impl Verdict {
    /// Notes what matters in `said` for the verdict.
    pub(crate) fn note(&mut self, said: &Said) {
        match said {
            Said::Http(101) => {}
            Said::Http(s) => self.http = Some(*s),
            Said::Msg(ServerMessage::Welcome { .. }) => self.welcomed = true,
            Said::Msg(ServerMessage::Error { code, req: 0, .. })
                if code.is_fatal() || *code == ErrorCode::RateLimited =>
            {
                self.error = Some(*code)
            }
            Said::Close(code) => self.close = *code,
            _ => {}
        }
    }

    /// How the connection ended, as a short stable key: `http:431`, `error:TIMEOUT`,
    /// `ws_close:1008`, `closed` (a plain close, nothing said), or `reset`.
    pub(crate) fn ending(&self, read: &std::io::Result<usize>) -> String {
        if let Some(s) = self.http {
            return format!("http:{s}");
        }
        if let Some(c) = self.error {
            return format!("error:{}", c.name());
        }
        if let Some(c) = self.close {
            return format!("ws_close:{c}");
        }
        match read {
            Ok(_) => "closed".to_owned(),
            Err(e) => io_kind(e),
        }
    }
}

/// A short stable name for an IO error.
pub(crate) fn io_kind(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionReset => "reset".to_owned(),
        std::io::ErrorKind::ConnectionRefused => "refused".to_owned(),
        std::io::ErrorKind::TimedOut => "timeout".to_owned(),
        k => format!("io:{k:?}"),
    }
}

/// A short stable name for a message the server sent, for counting.
pub(crate) fn said_key(said: &Said) -> String {
    match said {
        Said::Http(s) => format!("http:{s}"),
        Said::Msg(ServerMessage::Error { code, .. }) => format!("error:{}", code.name()),
        Said::Msg(m) => match m {
            ServerMessage::Welcome { .. } => "welcome",
            ServerMessage::Joined { .. } => "joined",
            ServerMessage::Left { .. } => "left",
            ServerMessage::State { .. } => "state",
            ServerMessage::Pong { .. } => "pong",
            ServerMessage::Ok { .. } => "ok",
            ServerMessage::ChatLine { .. } => "chat_line",
            ServerMessage::RoomClosed { .. } => "room_closed",
            ServerMessage::Shutdown { .. } => "shutdown",
            _ => "other",
        }
        .to_owned(),
        Said::Close(c) => format!("ws_close:{}", c.unwrap_or(0)),
        Said::Junk => "junk".to_owned(),
    }
}

/// An open connection: the socket and what came back on it.
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) transport: Transport,
    pub(crate) inbox: Inbox,
    pub(crate) verdict: Verdict,
    /// Everything [`Conn::read_until`] read, counted by [`said_key`].
    pub(crate) heard: BTreeMap<String, u64>,
}

impl Conn {
    /// Connects to `addr` from `source`, with `TCP_NODELAY`; for WebSocket, sends the
    /// upgrade request too (its answer is read with the rest).
    pub(crate) async fn open(
        transport: Transport,
        addr: SocketAddr,
        source: Option<IpAddr>,
    ) -> std::io::Result<Conn> {
        let mut stream = connect_from(addr, source).await?;
        stream.set_nodelay(true)?;
        if transport == Transport::WebSocket {
            stream.write_all(&upgrade_request(addr)).await?;
        }
        Ok(Conn::new(stream, transport))
    }

    /// A connection over `stream`, nothing read yet.
    pub(crate) fn new(stream: TcpStream, transport: Transport) -> Conn {
        Conn {
            stream,
            transport,
            inbox: Inbox::new(transport),
            verdict: Verdict::default(),
            heard: BTreeMap::new(),
        }
    }

    /// Reads until `stop` picks something the server said (`Ok(Some(t))`), the server
    /// closes (`Ok(None)`, or the read error), or `limit` passes (`Err(None)`). Every
    /// thing said is counted in `heard` and noted in the verdict.
    pub(crate) async fn read_until<T>(
        &mut self,
        limit: Duration,
        mut stop: impl FnMut(&Said) -> Option<T>,
    ) -> Result<Option<T>, Option<std::io::Error>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            while let Some(said) = self.inbox.next() {
                self.verdict.note(&said);
                *self.heard.entry(said_key(&said)).or_insert(0) += 1;
                if let Some(t) = stop(&said) {
                    return Ok(Some(t));
                }
            }
            match tokio::time::timeout_at(deadline, self.inbox.read(&mut self.stream)).await {
                Err(_) => return Err(None),
                Ok(Ok(0)) => return Ok(None),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Some(e)),
            }
        }
    }

    /// Sends `hello` and reads until `welcome` (true) or anything that ends the
    /// connection (false; the verdict says what), within `limit`.
    pub(crate) async fn handshake(&mut self, name: &str, limit: Duration) -> std::io::Result<bool> {
        let mut out = Vec::new();
        push_body(self.transport, &hello_body(name), &mut out);
        self.stream.write_all(&out).await?;
        match self
            .read_until(limit, |s| match s {
                Said::Msg(ServerMessage::Welcome { .. }) => Some(true),
                Said::Http(s) if *s != 101 => Some(false),
                Said::Msg(ServerMessage::Error { req: 0, .. }) => Some(false),
                Said::Close(_) => Some(false),
                _ => None,
            })
            .await
        {
            Ok(done) => Ok(done.unwrap_or(false)),
            Err(Some(e)) => Err(e),
            Err(None) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

/// A small, fast pseudo-random generator (SplitMix64): the attacks need varied bytes,
/// reproducible from a seed, not secrecy.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `len` random bytes appended to `out`.
    pub(crate) fn fill(&mut self, out: &mut Vec<u8>, len: usize) {
        out.reserve(len);
        for _ in 0..len {
            out.push(self.next_u64() as u8);
        }
    }
}

/// A seed from the clock, when none is given.
pub(crate) fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x5eed, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rally_protocol::framing::ServerFramer;
    use rally_protocol::ws::{self, Opcode};

    fn server_frame(transport: Transport, msg: &ServerMessage, out: &mut Vec<u8>) {
        ServerFramer(transport).message(msg, out);
    }

    #[test]
    fn the_inbox_reads_errors_and_closes_on_both_transports() {
        let error = ServerMessage::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            req: 0,
        };
        let mut tcp = Inbox::new(Transport::Tcp);
        let mut bytes = Vec::new();
        server_frame(Transport::Tcp, &error, &mut bytes);
        // Byte by byte: nothing until the frame is whole.
        for (i, b) in bytes.iter().enumerate() {
            if i + 1 < bytes.len() {
                tcp.extend(&[*b]);
                assert!(tcp.next().is_none());
            }
        }
        tcp.extend(&bytes[bytes.len() - 1..]);
        let said = tcp.next().expect("whole");
        assert_eq!(said_key(&said), "error:RATE_LIMITED");
        let mut v = Verdict::default();
        v.note(&said);
        assert_eq!(v.ending(&Ok(0)), "error:RATE_LIMITED");

        let mut ws_in = Inbox::new(Transport::WebSocket);
        let mut bytes = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        server_frame(Transport::WebSocket, &error, &mut bytes);
        ws::write_close(&mut bytes, 1008);
        ws_in.extend(&bytes);
        let mut v = Verdict::default();
        let mut keys = Vec::new();
        while let Some(said) = ws_in.next() {
            v.note(&said);
            keys.push(said_key(&said));
        }
        assert_eq!(keys, ["http:101", "error:RATE_LIMITED", "ws_close:1008"]);
        assert_eq!(v.ending(&Ok(0)), "error:RATE_LIMITED");

        let mut refused = Inbox::new(Transport::WebSocket);
        refused.extend(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n");
        let mut v = Verdict::default();
        v.note(&refused.next().expect("status"));
        assert_eq!(v.ending(&Ok(0)), "http:431");
    }

    #[test]
    fn a_pong_is_consumed_once() {
        // A pong (answering a ping in an attacker's random frames) used to be decoded
        // again and again without being consumed: the attacker spun forever.
        let mut ws_in = Inbox::new(Transport::WebSocket);
        let mut bytes = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
        ws::write_frame(&mut bytes, Opcode::Pong, b"p");
        ws::write_close(&mut bytes, 1002);
        ws_in.extend(&bytes);
        let mut keys = Vec::new();
        while let Some(said) = ws_in.next() {
            keys.push(said_key(&said));
            assert!(keys.len() < 10, "the same frame decoded again: {keys:?}");
        }
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert_eq!(keys[2], "ws_close:1002");
    }

    #[test]
    fn junk_is_reported_and_dropped() {
        let mut tcp = Inbox::new(Transport::Tcp);
        tcp.extend(&[0, 0, 0, 2, 0xc1, 0xc1]);
        assert!(matches!(tcp.next(), Some(Said::Junk)));
        assert!(tcp.next().is_none());
        assert_eq!(Verdict::default().ending(&Ok(0)), "closed");
    }

    #[test]
    fn connections_alternate_when_both_listeners_are_given() {
        let (t, w): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        let both = Target {
            tcp: Some(t),
            ws: Some(w),
        };
        assert_eq!(both.pick(0), Some((Transport::Tcp, t)));
        assert_eq!(both.pick(3), Some((Transport::WebSocket, w)));
        let none = Target {
            tcp: None,
            ws: None,
        };
        assert_eq!(none.pick(0), None);
    }

    #[test]
    fn the_generator_is_reproducible() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let (mut x, mut y) = (Vec::new(), Vec::new());
        a.fill(&mut x, 100);
        b.fill(&mut y, 100);
        assert_eq!(x, y);
        assert!(x.iter().any(|&v| v != x[0]));
        assert!((0..1000).all(|_| a.below(10) < 10));
    }
}
