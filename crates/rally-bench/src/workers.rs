//! The pieces `rally bench` runs as separate processes (hidden subcommand
//! `rally bench-worker`), so that each one's CPU and memory can be read from `/proc`:
//!
//! - `tasks-arena`, `poll-arena`: the reference arena servers ([`crate::designs`]).
//! - `echo`: a minimal tokio echo server, the reference for request/response.
//! - `reqresp`: the request/response load: connections each sending a 64-byte message
//!   and waiting for its reply before sending the next, to Rally (a `ping` padded to
//!   64 bytes, answered by `pong`) or to the echo server.
//! - `idle`: opens connections, completes Rally's handshake on each, and holds them idle.
//!
//! The loads open their connections from many addresses of `127.0.0.0/8` when the server
//! is on loopback (`--source-ips`, [`rally_bots::source`]), as players on many hosts
//! would, so Rally's per-address limits do not refuse them.
//!
//! Each load worker prints one JSON line on stdout per milestone.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rally_bots::source::{connect_from, SourceIps};
use rally_protocol::{frame, msgpack, ClientMessage, ServerMessage, PROTOCOL_VERSION};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Size of one request/response message, framing included.
pub const MESSAGE_BYTES: usize = 64;
/// Connections being opened at once by a load worker: enough to be quick, few enough not
/// to overflow the listener's backlog (which costs a one-second SYN retry).
const CONNECTING_AT_ONCE: usize = 128;

/// Runs the echo server on `addr` until the process ends.
pub async fn echo(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut buf = [0u8; 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// Runs the "tasks" reference arena server until the process ends.
pub async fn tasks_arena(tcp: SocketAddr, ws: SocketAddr) -> anyhow::Result<()> {
    let tcp = TcpListener::bind(tcp).await?;
    let ws = TcpListener::bind(ws).await?;
    crate::designs::tasks::serve(tcp, ws).await;
    Ok(())
}

/// Runs the "poll" reference arena server until the process ends.
pub async fn poll_arena(tcp: SocketAddr, ws: SocketAddr) -> anyhow::Result<()> {
    let tcp = TcpListener::bind(tcp).await?;
    let ws = TcpListener::bind(ws).await?;
    crate::designs::poll::serve(tcp, ws).await;
    Ok(())
}

/// Which server the request/response load talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Rally's TCP listener: handshake, then `ping` padded to 64 bytes, `pong` back.
    Rally,
    /// The echo server: 64 bytes out, the same 64 back.
    Echo,
}

/// The 64-byte request: for Rally, a length-prefixed `ping` whose padding is a trailing
/// element (readers ignore elements past the fields they know: docs/protocol.md section 3).
fn request(target: Target, nonce: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(MESSAGE_BYTES);
    match target {
        Target::Rally => {
            let at = frame::begin(&mut out);
            msgpack::write_array_len(&mut out, 3);
            msgpack::write_uint(&mut out, 6);
            // A fixed-size nonce encoding (uint 64) keeps every request the same size.
            out.push(0xcf);
            out.extend_from_slice(&nonce.to_be_bytes());
            let pad = MESSAGE_BYTES - out.len() - 2;
            msgpack::write_bin(&mut out, &vec![0x5a; pad]);
            frame::finish(&mut out, at);
        }
        Target::Echo => out.resize(MESSAGE_BYTES, 0x5a),
    }
    debug_assert_eq!(out.len(), MESSAGE_BYTES);
    out
}

/// Reads from `stream` into `buf` until one whole reply is there, and removes it.
async fn read_reply(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    target: Target,
) -> anyhow::Result<()> {
    loop {
        let whole = match target {
            Target::Rally => frame::decode(buf, 1 << 16)
                .map_err(|e| anyhow::anyhow!("bad frame from the server: {e:?}"))?
                .map(|(used, _)| used),
            Target::Echo => (buf.len() >= MESSAGE_BYTES).then_some(MESSAGE_BYTES),
        };
        if let Some(used) = whole {
            buf.drain(..used);
            return Ok(());
        }
        if stream.read_buf(buf).await? == 0 {
            bail!("the server closed the connection");
        }
    }
}

/// Opens a connection; for Rally, completes the handshake.
async fn open(
    addr: SocketAddr,
    source: Option<IpAddr>,
    target: Target,
    name: &str,
) -> anyhow::Result<TcpStream> {
    let mut stream = connect_from(addr, source).await?;
    stream.set_nodelay(true)?;
    if target == Target::Rally {
        let mut out = Vec::new();
        let at = frame::begin(&mut out);
        ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            client: name,
            resume: None,
            token: None,
        }
        .encode(&mut out);
        frame::finish(&mut out, at);
        stream.write_all(&out).await?;
        let mut buf = Vec::with_capacity(256);
        loop {
            if let Some((_, body)) = frame::decode(&buf, 1 << 16)
                .map_err(|e| anyhow::anyhow!("bad frame from the server: {e:?}"))?
            {
                match ServerMessage::decode(body) {
                    Ok(ServerMessage::Welcome { .. }) => break,
                    Ok(other) => bail!("expected welcome, got {other:?}"),
                    Err(e) => bail!("undecodable reply to hello: {e:?}"),
                }
            }
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("the server closed the connection during the handshake");
            }
        }
    }
    Ok(stream)
}

/// Opens `n` connections, [`CONNECTING_AT_ONCE`] at a time, connection `i` from the
/// `i`-th of `sources` (round-robin) if given.
async fn open_all(
    addr: SocketAddr,
    sources: Option<SourceIps>,
    target: Target,
    n: usize,
) -> anyhow::Result<Vec<TcpStream>> {
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let gate = gate.clone();
        let source = sources.map(|s| s.nth(i as u64));
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            open(addr, source, target, &format!("bench-{i}")).await
        }));
    }
    let mut streams = Vec::with_capacity(n);
    for t in tasks {
        streams.push(t.await.context("connect task")??);
    }
    Ok(streams)
}

/// The request/response load: `conns` connections, each in a loop of one 64-byte request
/// and its reply; counts replies over `secs` after a `warmup`. Prints one JSON line.
pub async fn reqresp(
    addr: SocketAddr,
    sources: Option<SourceIps>,
    target: Target,
    conns: usize,
    warmup: Duration,
    secs: Duration,
) -> anyhow::Result<()> {
    let streams = open_all(addr, sources, target, conns).await?;
    let replies = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(conns);
    for (i, mut stream) in streams.into_iter().enumerate() {
        let (replies, failures, stop) = (replies.clone(), failures.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let req = request(target, i as u64);
            let mut buf = Vec::with_capacity(256);
            while !stop.load(Ordering::Relaxed) {
                let done = async {
                    stream.write_all(&req).await?;
                    read_reply(&mut stream, &mut buf, target).await
                };
                if done.await.is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                replies.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(warmup).await;
    let (start, at) = (replies.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(secs).await;
    let (end, elapsed) = (replies.load(Ordering::Relaxed), at.elapsed());
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let per_sec = (end - start) as f64 / elapsed.as_secs_f64();
    println!(
        "{}",
        json!({
            "target": match target { Target::Rally => "rally", Target::Echo => "echo" },
            "connections": conns,
            "message_bytes": MESSAGE_BYTES,
            "replies": end - start,
            "secs": elapsed.as_secs_f64(),
            "replies_per_sec": per_sec,
            "failed_connections": failures.load(Ordering::Relaxed),
        })
    );
    Ok(())
}

/// Opens `conns` Rally connections past the handshake (from `sources`, if given), prints
/// how long that took, then holds them idle for `hold` and closes them.
pub async fn idle(
    addr: SocketAddr,
    sources: Option<SourceIps>,
    conns: usize,
    hold: Duration,
) -> anyhow::Result<()> {
    let begin = Instant::now();
    let streams = open_all(addr, sources, Target::Rally, conns).await?;
    println!(
        "{}",
        json!({ "connected": streams.len(), "connect_secs": begin.elapsed().as_secs_f64() })
    );
    tokio::time::sleep(hold).await;
    drop(streams);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_64_bytes_and_rally_reads_them_as_ping() {
        for target in [Target::Rally, Target::Echo] {
            assert_eq!(request(target, u64::MAX).len(), MESSAGE_BYTES);
        }
        let req = request(Target::Rally, 42);
        let (used, body) = frame::decode(&req, 4096).expect("frame").expect("whole");
        assert_eq!(used, MESSAGE_BYTES);
        assert_eq!(
            ClientMessage::decode(body).expect("decodes"),
            ClientMessage::Ping { nonce: 42 }
        );
    }
}
