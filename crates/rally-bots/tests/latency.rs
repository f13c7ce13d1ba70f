//! The latency the bots measure is the server's: against a server of the test's own that
//! answers every input with a state exactly `DELAY` after it arrived (no tick to wait
//! for), each bot must measure at least `DELAY` and not much more, over both transports.

use std::collections::VecDeque;
use std::time::Duration;

use rally_bots::{BotsConfig, Transport};
use rally_protocol::framing::{Deframer, Incoming, ServerFramer};
use rally_protocol::{handshake, ClientMessage, ServerMessage, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// How long the server holds each input before the state that shows it.
const DELAY: Duration = Duration::from_millis(80);

/// Serves `listener` until the test ends: every connection in its own task.
async fn serve(listener: TcpListener, transport: Transport) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(session(stream, transport));
    }
}

/// One player: `welcome`, `joined`, then a state for each input `DELAY` after it came,
/// `left` for a `leave`; ends when the player closes.
async fn session(mut stream: TcpStream, transport: Transport) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    if transport == Transport::WebSocket {
        loop {
            if let Ok(Some((used, req))) = handshake::parse_request(&buf, "/ws") {
                let mut accept = Vec::new();
                handshake::write_accept(&mut accept, &req);
                buf.drain(..used);
                if stream.write_all(&accept).await.is_err() {
                    return;
                }
                break;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
    let framer = ServerFramer(transport);
    let mut deframer = Deframer::server(transport, 4096);
    // Inputs waiting for their state: when it is due, and the seq.
    let mut due: VecDeque<(Instant, u32)> = VecDeque::new();
    let mut tick = 0;
    let mut out = Vec::new();
    loop {
        let mut pos = 0;
        loop {
            let (used, incoming) = match deframer.decode(&mut buf[pos..]) {
                Ok(Some(unit)) => unit,
                Ok(None) => break,
                Err(_) => return,
            };
            pos += used;
            let body = match incoming {
                Incoming::Message(body) => body,
                Incoming::Close(_) => return,
                Incoming::Ping(_) | Incoming::Nothing => continue,
            };
            let reply = match ClientMessage::decode(body) {
                Ok(ClientMessage::Hello { .. }) => ServerMessage::Welcome {
                    version: PROTOCOL_VERSION,
                    session_id: 1,
                    tick_hz: 20,
                    max_message_bytes: 4096,
                    timeout_ms: 30_000,
                    queue_capacity: 100,
                    resume_token: String::new(),
                    reconnect_grace_ms: 0,
                    account_id: 0,
                    revision: 1,
                },
                Ok(ClientMessage::Join { req, kind }) => ServerMessage::Joined {
                    req,
                    room_id: 1,
                    player_id: 1,
                    kind: kind.to_owned(),
                    max_players: 16,
                    code: String::new(),
                    team: 0,
                },
                Ok(ClientMessage::Input { seq, .. }) => {
                    due.push_back((Instant::now() + DELAY, seq));
                    continue;
                }
                Ok(ClientMessage::Leave { req }) => ServerMessage::Left { req, room_id: 1 },
                _ => continue,
            };
            framer.message(&reply, &mut out);
        }
        buf.drain(..pos);
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        let next = due.front().map(|d| d.0);
        tokio::select! {
            r = stream.read(&mut chunk) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
            () = tokio::time::sleep_until(next.unwrap_or_else(|| Instant::now() + DELAY)), if next.is_some() => {
                while let Some(&(at, seq)) = due.front() {
                    if at > Instant::now() {
                        break;
                    }
                    due.pop_front();
                    tick += 1;
                    let state = ServerMessage::State {
                        tick,
                        last_seq: seq,
                        payload: vec![0x90].into(),
                    };
                    framer.message(&state, &mut out);
                }
            }
        }
    }
}

async fn measured(transport: Transport) -> rally_bots::Report {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(serve(listener, transport));
    let mut cfg = BotsConfig::new(addr.to_string());
    cfg.transport = transport;
    cfg.bots = 40;
    cfg.duration = Duration::from_secs(3);
    cfg.warmup = Duration::from_millis(500);
    let report = rally_bots::run(cfg).await;
    server.abort();
    report
}

fn check(report: &rally_bots::Report) {
    let table = report.summary_table();
    eprintln!("{table}");
    assert_eq!(report.errors, 0, "{table}");
    assert_eq!(report.connected, 40, "{table}");
    let l = report.latency;
    assert!(l.samples > 40 * 20, "every bot measured: {table}");
    let delay = DELAY.as_secs_f64() * 1000.0;
    // Never less than the server's hold; more only by the loopback and the bots' own
    // wake-up (generous: the box is shared).
    assert!(l.p50 >= delay && l.p50 < delay + 15.0, "{table}");
    assert!(l.max >= l.p99 && l.p99 < delay + 40.0, "{table}");
    assert!(
        (report.inputs_per_sec - 800.0).abs() < 200.0,
        "20 inputs a second per bot: {table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_server_delay_is_what_the_bots_measure_over_tcp() {
    check(&measured(Transport::Tcp).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_server_delay_is_what_the_bots_measure_over_websocket() {
    check(&measured(Transport::WebSocket).await);
}
