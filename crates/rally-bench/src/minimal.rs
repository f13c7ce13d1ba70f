//! The reference: a minimal hand-written tokio arena server speaking Rally's protocol,
//! the design of ../shared/BENCHMARK.md's "minimal server": one task per connection, one
//! room task per 16 players, unbounded channels between them, and nothing else: no
//! config, no limits, no timeouts, no reconnection, no metrics, no graceful shutdown.
//!
//! It exists so that `rally bench` can run the same bots against Rally and against the
//! least a server can do, on the same machine in the same run, and report the ratio.
//! It uses Rally's protocol crate (sans IO) for the bytes, so the difference measured is
//! the engine around them. Never use it to serve players.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rally_protocol::framing::{Deframer, Incoming, ServerFramer};
use rally_protocol::message::encode_state;
use rally_protocol::msgpack::{self, Reader};
use rally_protocol::{handshake, ClientMessage, ServerMessage, Transport, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

const SEATS: u32 = 16;
const TICK: Duration = Duration::from_millis(50);
const MAX_MESSAGE: usize = 4096;

enum ToRoom {
    Join {
        player: u32,
        ws: bool,
        out: mpsc::UnboundedSender<Bytes>,
    },
    Input {
        player: u32,
        seq: u32,
        dx: f32,
        dy: f32,
    },
    Leave {
        player: u32,
    },
}

/// The room still taking players, and how many seats of it are taken.
#[derive(Default)]
struct Lobby {
    open: Option<(mpsc::UnboundedSender<ToRoom>, u64, u32)>,
    next_room: u64,
}

impl Lobby {
    fn seat(&mut self) -> (mpsc::UnboundedSender<ToRoom>, u64, u32) {
        match &mut self.open {
            Some((tx, room, taken)) if *taken < SEATS => {
                *taken += 1;
                (tx.clone(), *room, *taken)
            }
            _ => {
                self.next_room += 1;
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(room(rx));
                self.open = Some((tx.clone(), self.next_room, 1));
                (tx, self.next_room, 1)
            }
        }
    }
}

/// Serves TCP players on `tcp` and WebSocket players (path `/ws`) on `ws` until the
/// process ends.
pub async fn serve(tcp: TcpListener, ws: TcpListener) {
    let lobby = Arc::new(Mutex::new(Lobby::default()));
    let sessions = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, is_ws) = tokio::select! {
            r = tcp.accept() => (r, false),
            r = ws.accept() => (r, true),
        };
        let Ok((stream, _)) = stream else {
            // Out of descriptors, most likely: back off a little.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let id = sessions.fetch_add(1, Ordering::Relaxed) + 1;
        tokio::spawn(connection(stream, is_ws, id, lobby.clone()));
    }
}

struct Player {
    id: u32,
    ws: bool,
    out: mpsc::UnboundedSender<Bytes>,
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
    last_seq: u32,
}

async fn room(mut rx: mpsc::UnboundedReceiver<ToRoom>) {
    let mut players: Vec<Player> = Vec::with_capacity(SEATS as usize);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut tick = 0u64;
    let mut payload = Vec::new();
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                None => return,
                Some(ToRoom::Join { player, ws, out }) => players.push(Player {
                    id: player, ws, out, x: 500.0, y: 500.0, vx: 0.0, vy: 0.0, last_seq: 0,
                }),
                Some(ToRoom::Input { player, seq, dx, dy }) => {
                    if let Some(p) = players.iter_mut().find(|p| p.id == player) {
                        (p.vx, p.vy, p.last_seq) = (dx, dy, seq);
                    }
                }
                Some(ToRoom::Leave { player }) => players.retain(|p| p.id != player),
            },
            _ = ticker.tick() => {
                tick += 1;
                let step = TICK.as_secs_f32() * 100.0;
                payload.clear();
                msgpack::write_array_len(&mut payload, players.len() as u32);
                for p in &mut players {
                    p.x = (p.x + p.vx * step).clamp(0.0, 1000.0);
                    p.y = (p.y + p.vy * step).clamp(0.0, 1000.0);
                    msgpack::write_array_len(&mut payload, 4);
                    msgpack::write_uint(&mut payload, p.id.into());
                    msgpack::write_f32(&mut payload, p.x);
                    msgpack::write_f32(&mut payload, p.y);
                    msgpack::write_uint(&mut payload, p.last_seq.into());
                }
                for p in &players {
                    let mut out = Vec::with_capacity(payload.len() + 24);
                    put(&mut out, p.ws, |o| encode_state(o, tick, p.last_seq, &payload));
                    let _ = p.out.send(Bytes::from(out));
                }
            }
        }
    }
}

/// Appends one message, framed for the transport.
fn put(out: &mut Vec<u8>, ws: bool, body: impl FnOnce(&mut Vec<u8>)) {
    let framer = ServerFramer(transport(ws));
    let at = framer.begin(out);
    body(out);
    framer.finish(out, at);
}

/// The transport of a connection that is (or is not) a WebSocket.
fn transport(ws: bool) -> Transport {
    if ws {
        Transport::WebSocket
    } else {
        Transport::Tcp
    }
}

async fn connection(mut stream: TcpStream, is_ws: bool, session: u64, lobby: Arc<Mutex<Lobby>>) {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    if is_ws && !upgrade(&mut stream, &mut buf).await {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let mut deframer = Deframer::server(transport(is_ws), MAX_MESSAGE);
    let framer = ServerFramer(transport(is_ws));
    let mut seat: Option<Seat> = None;
    let mut out: Vec<u8> = Vec::new();
    let (mut rd, mut wr) = stream.split();
    'conn: loop {
        // Handle every whole message read so far.
        let mut pos = 0;
        loop {
            // Where the body sits in `buf`, from its address: the deframer unmasks in
            // place and lends the body out of `buf` itself.
            let base = buf.as_ptr() as usize;
            let body_range = match deframer.decode(&mut buf[pos..]) {
                Ok(Some((used, Incoming::Message(body)))) => {
                    // A reassembled (fragmented) message lives in the deframer, not in
                    // `buf`: the reference does not take those.
                    let Some(start) = (body.as_ptr() as usize).checked_sub(base) else {
                        break 'conn;
                    };
                    if start + body.len() > pos + used {
                        break 'conn;
                    }
                    pos += used;
                    (start, start + body.len())
                }
                Ok(Some((used, Incoming::Ping(p)))) => {
                    let p = p.to_vec();
                    framer.pong(&p, &mut out);
                    pos += used;
                    continue;
                }
                Ok(Some((_, Incoming::Close(_)))) | Err(_) => {
                    framer.close(1000, &mut out);
                    let _ = wr.write_all(&out).await;
                    break 'conn;
                }
                Ok(Some((used, Incoming::Nothing))) => {
                    pos += used;
                    continue;
                }
                Ok(None) => break,
            };
            let body = &buf[body_range.0..body_range.1];
            if !handle(body, is_ws, session, &lobby, &tx, &mut seat, &mut out) {
                let _ = wr.write_all(&out).await;
                break 'conn;
            }
        }
        buf.drain(..pos);
        if !out.is_empty() {
            if wr.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            Some(state) = rx.recv() => {
                out.extend_from_slice(&state);
                while let Ok(more) = rx.try_recv() {
                    out.extend_from_slice(&more);
                }
            }
        }
    }
    if let Some(seat) = seat {
        let _ = seat.room.send(ToRoom::Leave {
            player: seat.player,
        });
    }
}

/// The room a connection plays in.
struct Seat {
    room: mpsc::UnboundedSender<ToRoom>,
    room_id: u64,
    player: u32,
}

/// Acts on one message; false ends the connection.
fn handle(
    body: &[u8],
    is_ws: bool,
    session: u64,
    lobby: &Mutex<Lobby>,
    tx: &mpsc::UnboundedSender<Bytes>,
    seat: &mut Option<Seat>,
    out: &mut Vec<u8>,
) -> bool {
    let Ok(msg) = ClientMessage::decode(body) else {
        return false;
    };
    let reply = match msg {
        ClientMessage::Hello { .. } => ServerMessage::Welcome {
            version: PROTOCOL_VERSION,
            session_id: session,
            tick_hz: 20,
            max_message_bytes: MAX_MESSAGE as u32,
            timeout_ms: 30_000,
            queue_capacity: 100,
            resume_token: String::new(),
            reconnect_grace_ms: 0,
            account_id: 0,
        },
        ClientMessage::Join { req, kind } => {
            let (room, room_id, player) = match lobby.lock() {
                Ok(mut l) => l.seat(),
                Err(_) => return false,
            };
            let _ = room.send(ToRoom::Join {
                player,
                ws: is_ws,
                out: tx.clone(),
            });
            *seat = Some(Seat {
                room,
                room_id,
                player,
            });
            ServerMessage::Joined {
                req,
                room_id,
                player_id: player,
                kind: kind.to_owned(),
                max_players: SEATS,
            }
        }
        ClientMessage::Input { seq, payload } => {
            if let Some(seat) = seat {
                let mut r = Reader::new(payload);
                let (dx, dy) = match (r.read_array_len(), r.read_f64(), r.read_f64()) {
                    (Ok(_), Ok(dx), Ok(dy)) => (dx as f32, dy as f32),
                    _ => return true,
                };
                let _ = seat.room.send(ToRoom::Input {
                    player: seat.player,
                    seq,
                    dx,
                    dy,
                });
            }
            return true;
        }
        ClientMessage::Leave { req } => match seat.take() {
            Some(seat) => {
                let _ = seat.room.send(ToRoom::Leave {
                    player: seat.player,
                });
                ServerMessage::Left {
                    req,
                    room_id: seat.room_id,
                }
            }
            None => return true,
        },
        ClientMessage::Ping { nonce } => ServerMessage::Pong { nonce },
        ClientMessage::Chat { req, .. } => ServerMessage::Ok { req },
        // Accounts cost a reference server nothing: any login is this session's account.
        ClientMessage::Login { req, .. } => ServerMessage::Session {
            req,
            account_id: session,
            token: String::new(),
            expires_at_ms: u64::MAX,
            display_name: format!("player-{session}"),
        },
        ClientMessage::GetData { req, .. }
        | ClientMessage::PutData { req, .. }
        | ClientMessage::DeleteData { req, .. }
        | ClientMessage::GetProfile { req, .. }
        | ClientMessage::SetName { req, .. } => ServerMessage::Error {
            code: rally_protocol::ErrorCode::Unavailable,
            message: "the minimal reference server keeps no player data".into(),
            req,
        },
    };
    put(out, is_ws, |o| reply.encode(o));
    true
}

/// Reads the upgrade request and accepts it; false if the connection is unusable.
async fn upgrade(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    loop {
        match handshake::parse_request(buf, "/ws") {
            Ok(Some((used, req))) => {
                let mut out = Vec::new();
                handshake::write_accept(&mut out, &req);
                buf.drain(..used);
                return stream.write_all(&out).await.is_ok();
            }
            Ok(None) => {}
            Err(_) => return false,
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}
