//! The two game transports, raw TCP and WebSocket, behind one interface: decode client
//! frames from bytes read, encode server messages into the write buffer.
//!
//! Both run over a plain byte stream (a `TcpStream`, or any [`Connection`]), so a
//! session's read and write loops, buffers, limits and timeouts are the same code for
//! both; only the framing differs, and that is `rally_protocol::framing`'s server role
//! (this file keeps the session's names for it).

use std::time::Duration;

use rally_protocol::framing::{self, Deframer, ServerFramer};
use rally_protocol::handshake::{self, HandshakeError};
use rally_protocol::{ws, ErrorCode, ServerMessage};

use crate::connection::Connection;

/// Which transport a listener speaks: the protocol crate's, re-exported as
/// `rally_server::Transport`.
pub use rally_protocol::Transport;

/// A frame decoded from a client (the protocol's [`framing::Incoming`], with the close
/// code the session does not use left out).
#[derive(Debug)]
pub(crate) enum Incoming<'a> {
    /// One message body.
    Message(&'a [u8]),
    /// A WebSocket ping: answer with this payload.
    Ping(&'a [u8]),
    /// Nothing to act on (a pong, a fragment).
    Nothing,
    /// The client closes (WebSocket close frame).
    Close,
}

/// Why the stream of frames was refused: `{code, message}`, from the protocol's deframer.
pub(crate) use rally_protocol::framing::FrameFault;

/// Per-connection decoding state: the protocol's server-role deframer (length prefixes,
/// or WebSocket frames unmasked in place).
#[derive(Debug)]
pub(crate) struct Decoder(Deframer);

impl Decoder {
    pub(crate) fn new(transport: Transport, max_message_bytes: usize) -> Self {
        Decoder(Deframer::server(transport, max_message_bytes))
    }

    /// Whether it holds nothing of a message in progress (see [`Deframer::is_idle`]).
    pub(crate) fn is_idle(&self) -> bool {
        self.0.is_idle()
    }

    /// Decodes one frame from the start of `buf`: `Ok(None)` means "read more".
    pub(crate) fn decode<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> Result<Option<(usize, Incoming<'a>)>, FrameFault> {
        Ok(self.0.decode(buf)?.map(|(n, incoming)| {
            let incoming = match incoming {
                framing::Incoming::Message(body) => Incoming::Message(body),
                framing::Incoming::Ping(p) => Incoming::Ping(p),
                framing::Incoming::Nothing => Incoming::Nothing,
                framing::Incoming::Close(_) => Incoming::Close,
            };
            (n, incoming)
        }))
    }
}

/// Appends one framed server message to `out`.
pub(crate) fn encode(transport: Transport, msg: &ServerMessage, out: &mut Vec<u8>) {
    ServerFramer(transport).message(msg, out);
}

/// Appends a WebSocket pong (nothing for TCP).
pub(crate) fn encode_pong(transport: Transport, payload: &[u8], out: &mut Vec<u8>) {
    ServerFramer(transport).pong(payload, out);
}

/// Appends a WebSocket close frame (nothing for TCP, where closing the socket says it).
pub(crate) fn encode_close(transport: Transport, code: u16, out: &mut Vec<u8>) {
    ServerFramer(transport).close(code, out);
}

/// The WebSocket close code matching a Rally error code, for faults the codec did not
/// name a status for (a bad Rally message, a timeout, ...: policy, 1008).
pub(crate) fn ws_close_code(code: Option<ErrorCode>) -> u16 {
    match code {
        None => ws::close_code::NORMAL,
        Some(ErrorCode::ServerShutdown) => ws::close_code::GOING_AWAY,
        Some(ErrorCode::MessageTooLarge) => ws::close_code::TOO_BIG,
        Some(ErrorCode::ServerFull | ErrorCode::Draining) => ws::close_code::TRY_AGAIN_LATER,
        Some(_) => ws::close_code::POLICY_VIOLATION,
    }
}

/// Writes what the socket takes of `buf` now, without waiting: the bytes written (fewer
/// than `buf.len()` when the socket is full).
pub(crate) fn try_write_all<C: Connection>(stream: &C, buf: &[u8]) -> std::io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match stream.try_write(&buf[at..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

/// Writes all of `buf`, waiting for the socket to drain at most `limit`.
/// Returns `Ok(false)` on timeout.
pub(crate) async fn write_all<C: Connection>(
    stream: &C,
    buf: &[u8],
    limit: Duration,
) -> std::io::Result<bool> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut at = 0;
    while at < buf.len() {
        match stream.try_write(&buf[at..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                match tokio::time::timeout_at(deadline, stream.writable()).await {
                    Ok(r) => r?,
                    Err(_) => return Ok(false),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads what the socket has (without waiting) and appends it to `buf`.
///
/// The chunk buffer lives on this function's stack, not in the caller's future, so an
/// idle connection waiting to read holds no read buffer at all.
pub(crate) fn read_append<C: Connection>(stream: &C, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; READ_CHUNK];
    let n = stream.try_read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Bytes read from a socket in one system call.
pub(crate) const READ_CHUNK: usize = 8192;

thread_local! {
    /// The read buffer of every session (and every room reading lent sockets) polled on
    /// this thread. An array on the stack would be zeroed at every read: 8 KiB of stores
    /// per input, the largest item in callgrind's count (docs/flame/README.md). Held by
    /// no one between reads, so an idle connection still holds no read buffer.
    static READ_BUF: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// Runs `read` with this thread's read buffer ([`READ_CHUNK`] bytes).
pub(crate) fn with_read_chunk<R>(read: impl FnOnce(&mut [u8]) -> R) -> R {
    READ_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut chunk) => read(&mut chunk),
        // Not re-entered (handling a message never reads another socket); if it ever
        // were, a buffer of its own keeps it correct.
        Err(_) => read(&mut vec![0; READ_CHUNK]),
    })
}

/// Reads and answers the WebSocket upgrade request, within `limit`.
///
/// Returns any bytes the client sent after the request head (its first frames), or `None`
/// when the request was refused or did not arrive in time; the refusal has been answered.
pub(crate) async fn accept_websocket<C: Connection>(
    stream: &C,
    limit: Duration,
) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.readable()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return None,
            Err(_) => {
                // The upgrade did not finish within the handshake bound: say so, without
                // waiting on a peer that may not read.
                let _ = stream.try_write(REQUEST_TIMEOUT);
                return None;
            }
        }
        match read_append(stream, &mut buf) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return None,
        }
        let mut out = Vec::new();
        match handshake::parse_request(&buf, "/ws") {
            Ok(None) => continue,
            Ok(Some((n, req))) => {
                handshake::write_accept(&mut out, &req);
                let written = write_all(stream, &out, limit).await;
                return matches!(written, Ok(true)).then(|| buf.split_off(n));
            }
            Err(e) => {
                // A plain GET of a page (not the `/ws` upgrade) gets the embedded file.
                let page = matches!(e, HandshakeError::NotFound)
                    .then(|| crate::web::respond(&buf))
                    .flatten();
                match page {
                    Some(page) => drop(write_all(stream, &page, limit).await),
                    None => refuse(stream, &e, limit).await,
                }
                return None;
            }
        }
    }
}

/// The answer to an upgrade request that did not arrive within the handshake bound.
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 50\r\nConnection: close\r\n\r\nno WebSocket upgrade within handshake_timeout_ms\r\n";

async fn refuse<C: Connection>(stream: &C, err: &HandshakeError, limit: Duration) {
    let mut out = Vec::new();
    handshake::write_refusal(&mut out, err);
    let _ = write_all(stream, &out, limit).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_encoding_matches_a_plain_frame() {
        for len in [0usize, 100, 125, 126, 1000, 70_000] {
            let msg = ServerMessage::Error {
                code: ErrorCode::Internal,
                message: "x".repeat(len),
                req: 0,
            };
            let mut body = Vec::new();
            msg.encode(&mut body);
            let mut expected = vec![9u8, 9];
            ws::write_frame(&mut expected, ws::Opcode::Binary, &body);
            let mut got = vec![9u8, 9];
            encode(Transport::WebSocket, &msg, &mut got);
            assert_eq!(got, expected, "len {len}");
        }
    }
}
