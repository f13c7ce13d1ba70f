//! The "tasks" reference design: one reader task per connection, one task per room, and
//! no writer task. A reader decodes its player's messages and publishes the latest input
//! into the room's slot for its seat; the room ticks, encodes the players once, and
//! `try_write`s each player its state straight from the room task. A socket that would
//! block keeps the unsent tail and skips snapshots until it drains.
//!
//! Replies before the seat is taken (`welcome`, `joined`) are written by the reader;
//! after it, the reader appends replies to the seat's pending bytes, which the room sends
//! ahead of the next state, so the two never interleave on the socket.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::MissedTickBehavior;

use super::{
    encode_players, put_joined, put_left, put_state, respond, step, Act, Framer, MAX_PENDING,
    READ_CHUNK, SEATS, TICK,
};

/// A room's seats, shared by its readers (who publish inputs) and its task.
#[derive(Default)]
struct Seats {
    seats: Vec<Seat>,
    /// Seats handed out, so the room knows when it will get no more players.
    taken: u32,
}

struct Seat {
    player: u32,
    stream: Arc<TcpStream>,
    ws: bool,
    /// The latest input.
    seq: u32,
    vx: f32,
    vy: f32,
    x: f32,
    y: f32,
    /// Bytes for the socket not yet taken by it: replies, or the tail of a state.
    pending: Vec<u8>,
    /// Whether the last write left bytes behind: new states are skipped until it drains.
    blocked: bool,
    /// Left, disconnected or dropped: removed on the next tick.
    gone: bool,
}

type Room = Arc<Mutex<Seats>>;

thread_local! {
    /// The readers' read buffer, one per thread: a connection waiting to read holds
    /// none, and no read zeroes one.
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// One read of `stream`, appended to `carry`: the byte count, 0 at the end of the stream.
fn read_some(stream: &TcpStream, carry: &mut Vec<u8>) -> std::io::Result<usize> {
    READ_BUF.with(|cell| {
        let mut own;
        let mut shared = cell.try_borrow_mut();
        let chunk: &mut [u8] = match &mut shared {
            Ok(chunk) => chunk,
            Err(_) => {
                own = vec![0; READ_CHUNK];
                &mut own
            }
        };
        let n = stream.try_read(chunk)?;
        carry.extend_from_slice(&chunk[..n]);
        Ok(n)
    })
}

fn lock(room: &Mutex<Seats>) -> MutexGuard<'_, Seats> {
    // Every critical section leaves the seats consistent: a poisoned lock is still usable.
    room.lock().unwrap_or_else(|e| e.into_inner())
}

/// The room still taking players.
#[derive(Default)]
struct Lobby {
    open: Option<(Room, u64)>,
    rooms: u64,
}

impl Lobby {
    /// A room with a free seat, its id and the seat's player id, starting a room if needed.
    fn seat(&mut self) -> (Room, u64, u32) {
        if let Some((room, id)) = &self.open {
            let mut seats = lock(room);
            if seats.taken < SEATS {
                seats.taken += 1;
                return (room.clone(), *id, seats.taken);
            }
        }
        self.rooms += 1;
        let room: Room = Arc::new(Mutex::new(Seats {
            seats: Vec::with_capacity(SEATS as usize),
            taken: 1,
        }));
        tokio::spawn(run_room(room.clone()));
        self.open = Some((room.clone(), self.rooms));
        (room, self.rooms, 1)
    }
}

/// Serves TCP players on `tcp` and WebSocket players (path `/ws`) on `ws` until the
/// process ends.
pub async fn serve(tcp: TcpListener, ws: TcpListener) {
    let lobby = Arc::new(Mutex::new(Lobby::default()));
    let sessions = AtomicU64::new(0);
    loop {
        let (accepted, is_ws) = tokio::select! {
            r = tcp.accept() => (r, false),
            r = ws.accept() => (r, true),
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors, most likely: back off a little.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let session = sessions.fetch_add(1, Ordering::Relaxed) + 1;
        tokio::spawn(reader(stream, is_ws, session, lobby.clone()));
    }
}

async fn run_room(room: Room) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (mut tick, mut payload, mut frame) = (0u64, Vec::new(), Vec::new());
    loop {
        ticker.tick().await;
        tick += 1;
        let mut guard = lock(&room);
        let seats = &mut *guard;
        seats.seats.retain(|s| !s.gone);
        if seats.seats.is_empty() && seats.taken == SEATS {
            return;
        }
        for s in &mut seats.seats {
            (s.x, s.y) = step(s.x, s.y, s.vx, s.vy);
        }
        encode_players(
            &mut payload,
            seats.seats.iter().map(|s| (s.player, s.x, s.y, s.seq)),
        );
        for s in &mut seats.seats {
            if s.blocked {
                // The tail of an earlier state first; this snapshot is skipped.
                s.blocked = !flush(&s.stream, &mut s.pending, &mut s.gone);
                continue;
            }
            let bytes: &[u8] = if s.pending.is_empty() {
                // The common case: the state alone, built in the room's buffer.
                frame.clear();
                put_state(&mut frame, s.ws, tick, s.seq, &payload);
                &frame
            } else {
                put_state(&mut s.pending, s.ws, tick, s.seq, &payload);
                &s.pending
            };
            match s.stream.try_write(bytes) {
                Ok(n) if n == bytes.len() => s.pending.clear(),
                Ok(n) => {
                    let tail = bytes[n..].to_vec();
                    s.pending = tail;
                    s.blocked = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if s.pending.is_empty() {
                        s.pending.extend_from_slice(&frame);
                    }
                    s.blocked = true;
                }
                Err(_) => s.gone = true,
            }
        }
    }
}

/// Writes what `pending` holds; true when all of it went.
fn flush(stream: &TcpStream, pending: &mut Vec<u8>, gone: &mut bool) -> bool {
    match stream.try_write(pending) {
        Ok(n) => {
            pending.drain(..n);
            pending.is_empty()
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => {
            *gone = true;
            false
        }
    }
}

/// Writes all of `bytes` from the reader (before the player has a seat).
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if stream.writable().await.is_err() {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// Where a connection's player sits.
struct Place {
    room: Room,
    room_id: u64,
    player: u32,
}

impl Place {
    /// Runs `f` on this player's seat, if it is still there.
    fn with<R>(&self, f: impl FnOnce(&mut Seat) -> R) -> Option<R> {
        let mut seats = lock(&self.room);
        seats
            .seats
            .iter_mut()
            .find(|s| s.player == self.player)
            .map(f)
    }
}

async fn reader(stream: TcpStream, is_ws: bool, session: u64, lobby: Arc<Mutex<Lobby>>) {
    let _ = stream.set_nodelay(true);
    let stream = Arc::new(stream);
    let mut carry: Vec<u8> = Vec::new();
    if is_ws {
        match super::upgrade(&stream, &mut carry).await {
            Some(accept) if write_all(&stream, &accept).await => {}
            _ => return,
        }
    }
    let mut framer = Framer::new(is_ws);
    let mut place: Option<Place> = None;
    let mut out = Vec::new();
    loop {
        // Whole frames already buffered (the upgrade's leftovers, a split frame's rest).
        let mut acts = Vec::new();
        let seated = place.is_some();
        let used = framer.each(&mut carry, &mut out, |body, out| {
            let act = respond(body, is_ws, session, seated, out);
            let go_on = act != Act::Close;
            acts.push(act);
            go_on
        });
        let Some(used) = used else { break };
        carry.drain(..used);
        if !act(&stream, is_ws, &lobby, &mut place, &mut out, acts).await {
            break;
        }
        if stream.readable().await.is_err() {
            break;
        }
        match read_some(&stream, &mut carry) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
        if carry.capacity() > 2 * READ_CHUNK && carry.len() < READ_CHUNK {
            carry.shrink_to(READ_CHUNK);
        }
    }
    if let Some(place) = place {
        place.with(|s| s.gone = true);
    }
}

/// Does what the messages asked, in order, and sends the replies. False ends the
/// connection.
async fn act(
    stream: &Arc<TcpStream>,
    ws: bool,
    lobby: &Mutex<Lobby>,
    place: &mut Option<Place>,
    out: &mut Vec<u8>,
    acts: Vec<Act>,
) -> bool {
    let mut ok = true;
    for act in acts {
        match act {
            Act::Nothing => {}
            Act::Close => ok = false,
            Act::Input { seq, dx, dy } => {
                if let Some(p) = place {
                    p.with(|s| (s.seq, s.vx, s.vy) = (seq, dx, dy));
                }
            }
            Act::Join { req, kind } => {
                if place.is_some() {
                    continue;
                }
                let (room, room_id, player) = {
                    let mut l = lobby.lock().unwrap_or_else(|e| e.into_inner());
                    l.seat()
                };
                // `joined` goes out before the seat exists, so before any state.
                put_joined(out, ws, req, room_id, player, &kind);
                if !write_all(stream, out).await {
                    return false;
                }
                out.clear();
                lock(&room).seats.push(Seat {
                    player,
                    stream: stream.clone(),
                    ws,
                    seq: 0,
                    vx: 0.0,
                    vy: 0.0,
                    x: 500.0,
                    y: 500.0,
                    pending: Vec::new(),
                    blocked: false,
                    gone: false,
                });
                *place = Some(Place {
                    room,
                    room_id,
                    player,
                });
            }
            Act::Leave { req } => {
                if let Some(p) = place.take() {
                    // `left` after whatever the seat still owes, then the seat goes; a
                    // socket that cannot take it all now ends the connection.
                    let flushed = p.with(|s| {
                        put_left(&mut s.pending, ws, req, p.room_id);
                        let flushed = flush(&s.stream, &mut s.pending, &mut s.gone);
                        s.gone = true;
                        flushed
                    });
                    ok &= flushed == Some(true);
                }
            }
        }
    }
    if !out.is_empty() {
        let sent = match place {
            // Seated: replies join the seat's pending bytes, in order with the states.
            Some(p) => p
                .with(|s| {
                    s.pending.extend_from_slice(out);
                    s.pending.len() <= MAX_PENDING
                })
                .unwrap_or(false),
            None => write_all(stream, out).await,
        };
        out.clear();
        ok &= sent;
    }
    ok
}
