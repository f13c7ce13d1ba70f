//! A WebSocket echo server on [`rally_protocol::ws`], for Autobahn|Testsuite
//! (`scripts/autobahn.sh`): it drives the codec the way `rally-server`'s session does,
//! so the suite's verdicts hold for the server.
//!
//! Like the session, it appends what it reads to one buffer, decodes every whole frame at
//! its start, answers pings with pongs, answers a close frame with a close frame (1000)
//! and stops reading, and closes a stream the decoder refused with the status the error
//! names ([`ws::WsError::close_code`], which the server uses too), then shuts the socket
//! and drains what the peer still sends for at most a second. Where the session hands a
//! binary message to Rally, this echoes it; a text message too (the session refuses those
//! with `BAD_MESSAGE` and 1008, which the suite would count as failures of no interest).
//! It does not send the session's `error` message before closing.
//!
//! Blocking `std::net`, one thread per connection (at most [`MAX_CONNECTIONS`]): the codec
//! needs no runtime, and the suite opens one connection at a time.
//!
//! ```text
//! cargo run --release -p rally-protocol --example ws_echo -- [ADDR] [MAX_MESSAGE_BYTES]
//! ```
//! ADDR defaults to 127.0.0.1:9001. MAX_MESSAGE_BYTES defaults to 16 MiB + 1 KiB: the
//! suite's largest messages (cases 9.*) are 16 MiB, above anything `max_message_bytes`
//! allows Rally (1 MiB); the limit itself is covered by the crate's tests.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rally_protocol::handshake;
use rally_protocol::ws::{self, Event, Opcode};

/// Connections served at once; more are dropped at accept.
const MAX_CONNECTIONS: usize = 32;
/// Bytes read in one system call, as the server's `READ_CHUNK`.
const READ_CHUNK: usize = 8192;
/// Longest wait for the peer to send anything: every wait has a bound.
const IDLE: Duration = Duration::from_secs(60);
/// Longest time spent saying goodbye, as the session's `FAREWELL`.
const FAREWELL: Duration = Duration::from_secs(1);
/// Most bytes read and discarded while lingering, as the session's `LINGER_BYTES`.
const LINGER_BYTES: usize = 64 * 1024;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let max_message = match args.next().map(|s| s.parse::<usize>()) {
        None => 16 * 1024 * 1024 + 1024,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("ws_echo: MAX_MESSAGE_BYTES: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ws_echo: bind {addr}: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!("ws_echo: listening on ws://{addr}/ws (max message {max_message} bytes)");
    let live = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // Accept errors (fd exhaustion, aborted handshakes) pass; back off a little.
                eprintln!("ws_echo: accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if live.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            live.fetch_sub(1, Ordering::AcqRel);
            continue;
        }
        let live = Arc::clone(&live);
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, max_message) {
                eprintln!("ws_echo: connection: {e}");
            }
            live.fetch_sub(1, Ordering::AcqRel);
        });
    }
    ExitCode::SUCCESS
}

/// One connection: the upgrade, then frames until a close or an error.
fn serve(mut stream: TcpStream, max_message: usize) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IDLE))?;
    let Some(mut buf) = upgrade(&mut stream)? else {
        return Ok(());
    };
    let mut decoder = ws::Decoder::server(max_message);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let (used, close) = process(&mut decoder, &mut buf, &mut out);
        buf.drain(..used);
        if let Some(code) = close {
            ws::write_close(&mut out, code);
            stream.write_all(&out)?;
            linger(&mut stream);
            return Ok(());
        }
        if !out.is_empty() {
            // One write per batch of answers, as the session's writer.
            stream.write_all(&out)?;
            out.clear();
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Handles every whole frame at the start of `buf`, appending the answers to `out`.
/// Returns the bytes taken, and the close status to end with if the stream ends here.
fn process(decoder: &mut ws::Decoder, buf: &mut [u8], out: &mut Vec<u8>) -> (usize, Option<u16>) {
    let mut at = 0;
    while at < buf.len() {
        match decoder.decode(&mut buf[at..]) {
            Ok(None) => break,
            Ok(Some((n, event))) => {
                at += n;
                match event {
                    Event::Binary(body) => ws::write_frame(out, Opcode::Binary, body),
                    Event::Text(text) => ws::write_frame(out, Opcode::Text, text),
                    Event::Ping(payload) => ws::write_frame(out, Opcode::Pong, payload),
                    Event::Pong | Event::Fragment => {}
                    // The session answers every close frame with 1000 and reads no further.
                    Event::Close(_) => return (at, Some(ws::close_code::NORMAL)),
                }
            }
            Err(e) => return (at, Some(e.close_code())),
        }
    }
    (at, None)
}

/// Reads and answers the upgrade request; returns the bytes after it (the first frames),
/// or `None` when it was refused or the peer left.
fn upgrade(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        match handshake::parse_request(&buf, "/ws") {
            Ok(None) => continue,
            Ok(Some((used, req))) => {
                handshake::write_accept(&mut out, &req);
                stream.write_all(&out)?;
                return Ok(Some(buf.split_off(used)));
            }
            Err(e) => {
                handshake::write_refusal(&mut out, &e);
                stream.write_all(&out)?;
                return Ok(None);
            }
        }
    }
}

/// Shuts the write side and reads until the peer closes too, within [`FAREWELL`] and
/// [`LINGER_BYTES`], so the close frame is not lost to a reset for unread bytes.
fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + FAREWELL;
    let mut sink = [0u8; 4096];
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(n) => discarded += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
