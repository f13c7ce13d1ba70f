//! Opening a session: one connection through `welcome`, retried by the policy, and
//! several addresses raced against each other.

use futures_util::stream::{FuturesUnordered, StreamExt};
use rally_protocol::{ClientMessage, ServerMessage, PROTOCOL_VERSION};
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::net::{TcpSocket, TcpStream};

use crate::client::Welcome;
use crate::config::{Config, Transport};
use crate::error::Error;
use crate::retry::retry;
use crate::upgrade::upgrade;
use crate::wire::{Framing, Inbound, Incoming};

/// Bytes reserved for each read: a few arena states (a 16-player state is about 240
/// bytes). Small, since it is most of an idle client's memory.
pub(crate) const READ_CHUNK: usize = 1024;

/// An open connection past its handshake.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    /// Bytes received and not yet decoded; may already hold messages that followed
    /// `welcome`.
    pub(crate) inbound: Inbound,
    /// Which of the configured addresses it is connected to (`usize::MAX`: an address a
    /// cluster redirect gave).
    pub(crate) addr: usize,
}

/// What a `hello` presents besides the version: the tokens of the session before, if
/// any (none on a first connection).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tokens<'a> {
    /// The last `welcome`'s resume token: takes the seat back after a drop.
    pub(crate) resume: Option<&'a str>,
    /// The last `login`'s session token: logs in again without a `login`.
    pub(crate) session: Option<&'a str>,
}

/// Opens a session on one of `config.addrs`: each address with the retry policy, all at
/// once; the first to reach `welcome` wins and the others are dropped (cancelled).
pub(crate) async fn open_any(
    config: &Config,
    tokens: Tokens<'_>,
) -> Result<(Conn, Welcome), Error> {
    if let [addr] = config.addrs.as_slice() {
        return open_retried(config, 0, addr, tokens).await;
    }
    let mut racing: FuturesUnordered<_> = config
        .addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| async move { (addr, open_retried(config, i, addr, tokens).await) })
        .collect();
    let mut failures = Vec::new();
    while let Some((addr, result)) = racing.next().await {
        match result {
            Ok(opened) => return Ok(opened),
            Err(e) => failures.push((addr.clone(), e)),
        }
    }
    Err(Error::AllFailed(failures))
}

/// Reopens a session after a drop, presenting the resume token: first on the address
/// that held the seat (only it knows the token), then, if it cannot be reached, on any.
pub(crate) async fn reopen(
    config: &Config,
    last: usize,
    tokens: Tokens<'_>,
) -> Result<(Conn, Welcome), Error> {
    let Some(addr) = config.addrs.get(last) else {
        return open_any(config, tokens).await;
    };
    match open_retried(config, last, addr, tokens).await {
        Err(e) if config.addrs.len() > 1 => {
            tracing::debug!(%addr, error = %e, "reconnecting elsewhere");
            open_any(config, tokens).await
        }
        done => done,
    }
}

/// Opens a session on `addr`, an address outside the configured ones (a cluster
/// redirect's), with the retry policy.
pub(crate) async fn open_at(
    config: &Config,
    addr: &str,
    tokens: Tokens<'_>,
) -> Result<(Conn, Welcome), Error> {
    open_retried(config, usize::MAX, addr, tokens).await
}

/// Reopens a session after a drop from a node a redirect moved the client to: that node
/// first (it holds the seat), then, if it cannot be reached (it died), any configured
/// address.
pub(crate) async fn reopen_at(
    config: &Config,
    addr: &str,
    tokens: Tokens<'_>,
) -> Result<(Conn, Welcome), Error> {
    match open_at(config, addr, tokens).await {
        Err(e) => {
            tracing::debug!(%addr, error = %e, "the node the seat was on is gone; reconnecting to a configured address");
            open_any(config, tokens).await
        }
        done => done,
    }
}

async fn open_retried(
    config: &Config,
    index: usize,
    addr: &str,
    tokens: Tokens<'_>,
) -> Result<(Conn, Welcome), Error> {
    retry(&config.retry, Error::is_retryable, || async {
        let opened = open(config, index, addr, tokens).await;
        if let Err(e) = &opened {
            tracing::debug!(%addr, error = %e, "connection attempt failed");
        }
        opened
    })
    .await
}

/// One attempt: TCP connect, WebSocket upgrade if asked, `hello` (with the resume and
/// session tokens, if any), `welcome`, all within `connect_timeout`.
async fn open(
    config: &Config,
    index: usize,
    addr: &str,
    tokens: Tokens<'_>,
) -> Result<(Conn, Welcome), Error> {
    tokio::time::timeout(config.connect_timeout, async {
        let mut stream = dial(addr, config.source_ip).await?;
        // Inputs are small and latency matters more than packet count.
        stream.set_nodelay(true)?;
        let mut inbound = Inbound::new(config.transport, config.max_inbound_bytes);
        if config.transport == Transport::WebSocket {
            upgrade(&mut stream, addr, &mut inbound.buf).await?;
        }
        let mut hello = Vec::new();
        Framing::new(config.transport).push(
            &mut hello,
            &ClientMessage::Hello {
                version: PROTOCOL_VERSION,
                client: &config.client_name,
                resume: tokens.resume,
                token: tokens.session,
            },
            usize::MAX,
        )?;
        stream.write_all(&hello).await?;
        let welcome = loop {
            match inbound.next()? {
                Some(Incoming::Msg(ServerMessage::Welcome {
                    version,
                    session_id,
                    tick_hz,
                    max_message_bytes,
                    timeout_ms,
                    queue_capacity,
                    resume_token,
                    reconnect_grace_ms,
                    account_id,
                    revision,
                })) => {
                    break Welcome {
                        version,
                        session_id,
                        tick_hz,
                        max_message_bytes,
                        timeout_ms,
                        queue_capacity,
                        resume_token: resume_token.into(),
                        reconnect_grace_ms,
                        account_id,
                        revision,
                    }
                }
                Some(Incoming::Msg(ServerMessage::Error { code, message, .. })) => {
                    return Err(Error::Server { code, message })
                }
                Some(Incoming::UnknownError { code, message, .. }) => {
                    return Err(Error::UnknownServerError { code, message })
                }
                Some(Incoming::Msg(other)) => {
                    return Err(Error::Protocol(format!("expected welcome, got {other:?}")))
                }
                Some(Incoming::Close) => return Err(Error::PeerClosed),
                Some(Incoming::Ping | Incoming::Nothing) => {}
                None => {
                    inbound.buf.reserve(READ_CHUNK);
                    if stream.read_buf(&mut inbound.buf).await? == 0 {
                        return Err(Error::PeerClosed);
                    }
                }
            }
        };
        Ok((
            Conn {
                stream,
                inbound,
                addr: index,
            },
            welcome,
        ))
    })
    .await
    .map_err(|_| Error::Timeout("connecting"))?
}

/// Opens a TCP connection to `addr` (`host:port`), from `source` when given: a socket
/// bound to that address (port chosen by the system), connected to the first of the
/// host's addresses of the same family.
async fn dial(addr: &str, source: Option<IpAddr>) -> Result<TcpStream, Error> {
    let Some(source) = source else {
        return Ok(TcpStream::connect(addr).await?);
    };
    let target = tokio::net::lookup_host(addr)
        .await?
        .find(|a| a.is_ipv4() == source.is_ipv4())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("{addr} has no address of the family of the source address {source}"),
            )
        })?;
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    Ok(socket.connect(target).await?)
}
