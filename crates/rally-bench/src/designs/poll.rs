//! The "poll" reference design: no task per connection at all. The accept loop hands
//! each new socket, non-blocking and unregistered from the reactor, to the room with a
//! free seat; the room task, once per tick, does one `read` of each of its sockets
//! (upgrade, `hello`, `join`, inputs: whatever arrived), moves the players, encodes them
//! once, and does one `write` per socket: the replies and the state together. The fewest
//! system calls this workload allows, and no readiness events.
//!
//! A socket that does not take a whole write keeps the tail and skips states until it
//! drains; one that holds more than [`MAX_PENDING`] unsent bytes is dropped.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::MissedTickBehavior;

use super::{
    encode_players, parse_upgrade, put_joined, put_left, put_state, respond, step, Act, Framer,
    MAX_PENDING, READ_CHUNK, SEATS, TICK,
};

/// One connection, owned by its room.
struct Conn {
    stream: TcpStream,
    session: u64,
    framer: Framer,
    /// WebSocket connections before their upgrade request is answered.
    upgrading: bool,
    /// Bytes read and not yet a whole frame (usually empty, unallocated).
    carry: Vec<u8>,
    /// Bytes to write this tick: replies, a state, or the tail of an earlier write.
    out: Vec<u8>,
    /// Whether `out` holds the tail of a write the socket did not take: states are
    /// skipped until it drains.
    blocked: bool,
    /// The player's id in the room once it joined.
    player: Option<u32>,
    seq: u32,
    vx: f32,
    vy: f32,
    x: f32,
    y: f32,
    gone: bool,
}

/// Sockets handed to a room and not yet taken in by its task.
#[derive(Default)]
struct Arrivals {
    conns: Vec<Conn>,
    /// Sockets handed out, so the room knows when it gets no more.
    taken: u32,
}

type Door = Arc<Mutex<Arrivals>>;

fn lock(door: &Mutex<Arrivals>) -> MutexGuard<'_, Arrivals> {
    // A push or a take: a poisoned lock still holds a consistent list.
    door.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves TCP players on `tcp` and WebSocket players (path `/ws`) on `ws` until the
/// process ends.
pub async fn serve(tcp: TcpListener, ws: TcpListener) {
    let sessions = AtomicU64::new(0);
    let (mut open, mut rooms): (Option<Door>, u64) = (None, 0);
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
        // Leaves the reactor, stays non-blocking: the room reads it on its own clock.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            stream,
            session: sessions.fetch_add(1, Ordering::Relaxed) + 1,
            framer: Framer::new(is_ws),
            upgrading: is_ws,
            carry: Vec::new(),
            out: Vec::new(),
            blocked: false,
            player: None,
            seq: 0,
            vx: 0.0,
            vy: 0.0,
            x: 500.0,
            y: 500.0,
            gone: false,
        };
        let door = match &open {
            Some(door) if lock(door).taken < SEATS => door.clone(),
            _ => {
                rooms += 1;
                let door = Door::default();
                tokio::spawn(run_room(door.clone(), rooms));
                open = Some(door.clone());
                door
            }
        };
        let mut arrivals = lock(&door);
        arrivals.taken += 1;
        arrivals.conns.push(conn);
    }
}

async fn run_room(door: Door, room_id: u64) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut conns: Vec<Conn> = Vec::with_capacity(SEATS as usize);
    let (mut tick, mut payload, mut next_player) = (0u64, Vec::new(), 0u32);
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        ticker.tick().await;
        tick += 1;
        let full = {
            let mut arrivals = lock(&door);
            conns.append(&mut arrivals.conns);
            arrivals.taken == SEATS
        };
        for c in &mut conns {
            read(c, &mut chunk, room_id, &mut next_player);
        }
        conns.retain(|c| !c.gone);
        if conns.is_empty() && full {
            return;
        }
        let mut playing = 0;
        for c in conns.iter_mut().filter(|c| c.player.is_some()) {
            (c.x, c.y) = step(c.x, c.y, c.vx, c.vy);
            playing += 1;
        }
        if playing > 0 {
            let players = conns
                .iter()
                .filter_map(|c| c.player.map(|p| (p, c.x, c.y, c.seq)));
            encode_players(&mut payload, Counted(players, playing));
        }
        for c in &mut conns {
            if c.player.is_some() && !c.blocked {
                put_state(&mut c.out, c.framer.is_ws(), tick, c.seq, &payload);
            }
            if c.out.is_empty() {
                continue;
            }
            match c.stream.write(&c.out) {
                Ok(n) => {
                    c.out.drain(..n);
                    c.blocked = !c.out.is_empty();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => c.blocked = true,
                Err(_) => c.gone = true,
            }
            if c.out.len() > MAX_PENDING {
                c.gone = true;
            }
        }
    }
}

/// An iterator with its length known in advance (a filter's is not).
struct Counted<I>(I, usize);

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        self.0.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.1, Some(self.1))
    }
}

impl<I: Iterator> ExactSizeIterator for Counted<I> {}

/// One read of `c`'s socket, and everything it brought handled.
fn read(c: &mut Conn, chunk: &mut [u8], room_id: u64, next_player: &mut u32) {
    let n = match c.stream.read(chunk) {
        Ok(0) => {
            c.gone = true;
            return;
        }
        Ok(n) => n,
        Err(e) if e.kind() == ErrorKind::WouldBlock => return,
        Err(_) => {
            c.gone = true;
            return;
        }
    };
    c.carry.extend_from_slice(&chunk[..n]);
    if c.upgrading {
        match parse_upgrade(&mut c.carry) {
            Some(Some(accept)) => {
                c.out.extend_from_slice(&accept);
                c.upgrading = false;
            }
            Some(None) => return,
            None => {
                c.gone = true;
                return;
            }
        }
    }
    let (ws, session, seated) = (c.framer.is_ws(), c.session, c.player.is_some());
    let mut acts = Vec::new();
    let used = c.framer.each(&mut c.carry, &mut c.out, |body, out| {
        let act = respond(body, ws, session, seated, out);
        let go_on = act != Act::Close;
        if !matches!(act, Act::Nothing) {
            acts.push(act);
        }
        go_on
    });
    match used {
        Some(used) => {
            c.carry.drain(..used);
        }
        None => c.gone = true,
    }
    if c.carry.is_empty() && c.carry.capacity() > READ_CHUNK {
        c.carry = Vec::new();
    }
    for act in acts {
        match act {
            Act::Nothing | Act::Close => {}
            Act::Input { seq, dx, dy } => {
                if c.player.is_some() {
                    (c.seq, c.vx, c.vy) = (seq, dx, dy);
                }
            }
            Act::Join { req, kind } => {
                if c.player.is_none() {
                    *next_player += 1;
                    c.player = Some(*next_player);
                    put_joined(&mut c.out, ws, req, room_id, *next_player, &kind);
                }
            }
            Act::Leave { req } => {
                if c.player.take().is_some() {
                    put_left(&mut c.out, ws, req, room_id);
                }
            }
        }
    }
}
