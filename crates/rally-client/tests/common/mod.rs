//! Test helpers: a real rally-server on 127.0.0.1 port 0, a TCP proxy that can cut the
//! client's connections from under it, and bounded waits on the events stream.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rally_client::{Client, Config, Event, Events, Room, Transport};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a test waits for any one thing before failing.
pub const LIMIT: Duration = Duration::from_secs(10);

// Each test binary uses its own subset of these.
#[allow(unused_imports)]
pub use rally_testkit::{eventually, TestServer};

/// The default server config (seats held for the default reconnect grace) on 127.0.0.1.
pub fn server_config() -> rally_server::Config {
    rally_testkit::local_config()
}

/// The address of `transport`'s listener on `server`.
pub fn addr(server: &TestServer, transport: Transport) -> SocketAddr {
    match transport {
        Transport::Tcp => server.tcp,
        Transport::WebSocket => server.ws,
    }
}

/// A client config for `addr` over `transport`.
pub fn client_config(addr: SocketAddr, transport: Transport) -> Config {
    Config::new(addr.to_string())
        .transport(transport)
        .client_name("sdk-test")
}

pub async fn connect(addr: SocketAddr, transport: Transport) -> (Client, Events) {
    Client::connect(client_config(addr, transport))
        .await
        .expect("connect")
}

/// The next event `f` picks, skipping the others; panics if the stream ends or nothing
/// matches within [`LIMIT`].
pub async fn next_matching<T>(
    events: &mut Events,
    what: &str,
    mut f: impl FnMut(&Event) -> Option<T>,
) -> T {
    let found = tokio::time::timeout(LIMIT, async {
        while let Some(e) = events.next().await {
            if let Some(t) = f(&e) {
                return Some(t);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(t)) => t,
        Ok(None) => panic!("events ended while waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// An arena input `[dx, dy]`.
pub fn input(dx: f32, dy: f32) -> Vec<u8> {
    let mut p = Vec::new();
    arena::encode_input(&mut p, dx, dy);
    p
}

/// Waits for a state whose `last_seq` has reached `seq`; returns its tick and payload.
pub async fn state_applying(events: &mut Events, seq: u32) -> (u64, bytes::Bytes) {
    next_matching(events, "a state applying the input", |e| match e {
        Event::State(s) if s.last_seq >= seq => Some((s.tick, s.payload.clone())),
        _ => None,
    })
    .await
}

/// Joins arena and checks the room looks right.
pub async fn join_arena(client: &Client) -> Room {
    let room = client.join(arena::KIND).await.expect("join");
    assert_eq!(room.kind, arena::KIND);
    assert!(room.player_id >= 1);
    assert_eq!(client.room(), Some(room.clone()));
    room
}

/// A TCP proxy in front of `upstream` that can cut every connection it carries, and
/// hold new ones until let through.
pub struct Proxy {
    pub addr: SocketAddr,
    /// Bumped to cut every connection open at the time.
    cut: watch::Sender<u64>,
    /// Whether new connections are forwarded (else they wait).
    gate: watch::Sender<bool>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = watch::channel(0u64);
        let (gate, _) = watch::channel(true);
        let accepted = Arc::new(AtomicUsize::new(0));
        let (cut_rx, gate_rx, count) = (cut.subscribe(), gate.subscribe(), accepted.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let (mut cut_rx, mut gate_rx) = (cut_rx.clone(), gate_rx.clone());
                let generation = *cut_rx.borrow_and_update();
                tokio::spawn(async move {
                    if gate_rx.wait_for(|open| *open).await.is_err() {
                        return;
                    }
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.wait_for(|g| *g != generation) => {}
                    }
                    // Both sockets drop here: the client and the server each see a close.
                });
            }
        });
        Proxy {
            addr,
            cut,
            gate,
            accepted,
            task,
        }
    }

    /// Drops every connection open now, as a network failure would.
    pub fn cut(&self) {
        self.cut.send_modify(|g| *g += 1);
    }

    /// New connections wait (false) or go through (true).
    pub fn set_open(&self, open: bool) {
        self.gate.send_replace(open);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address on 127.0.0.1 where nothing listens: connecting is refused.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}
