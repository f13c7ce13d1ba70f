//! A simulated player: a turmoil client speaking the raw TCP protocol, the way a real
//! client should (docs/protocol.md): it joins the `tally` room kind, sends one input per
//! tick and now and then a chat line, notices a silent connection and reconnects with
//! the resume token of the last `welcome` it got, and resends its recent inputs after a
//! resume (the room must ignore the ones it already applied).
//!
//! Everything it receives goes into its connection's feed in the [`Record`], for the
//! checks at the end; what can be checked on the spot (a resume's outcome against the
//! grace, a chat line before its `ok`) is checked here.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use rally_server::protocol::{
    frame, ws, ClientMessage, ErrorCode, ServerMessage, PROTOCOL_VERSION,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use turmoil::net::TcpStream;

use crate::plan::{Act, End, PlayerPlan};
use crate::record::{Feed, Item, Record};
use crate::{tally, Params, PORT, SERVER, WS_PORT};

/// How long a client waits for any message before it gives the connection up. Shorter
/// than the server's `timeout_ms`: the client notices first, as a real one would.
const SILENCE: Duration = Duration::from_millis(600);
/// How long a connect may take.
const CONNECT_LIMIT: Duration = Duration::from_millis(400);
/// How long one write may block.
const WRITE_LIMIT: Duration = Duration::from_millis(300);
/// How long a leaving player waits for `left`.
const LEAVE_LIMIT: Duration = Duration::from_secs(1);
/// How long an idle connection waits before it pings: well within `timeout_ms`, and
/// well under the server's per-connection request rate.
const IDLE_PING: Duration = Duration::from_millis(300);
/// Inputs resent after a resume.
const RESEND: u32 = 3;

/// One connection to the server.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The WebSocket decoder, for a player on the WebSocket transport.
    ws: Option<ws::Decoder>,
    /// Index of this connection's feed in the record.
    feed: usize,
    welcomed: bool,
    /// Whether `hello` carried a resume token: `joined` (req 0) or `RESUME_FAILED` follows.
    resuming: bool,
    /// When `hello` went out.
    hello_at: Duration,
    /// When the last message arrived.
    heard_at: Duration,
    /// When the last message went out.
    sent_at: Duration,
    /// When the last state of our seat arrived.
    state_at: Option<Duration>,
    /// The room and player id this connection plays, once `joined` said so.
    seat: Option<(u64, u32)>,
    /// The `join` (or `create`, or `join_by_code`) waiting for its reply.
    joining: Option<u32>,
    /// How that join asked for its room.
    joining_how: How,
    /// The `leave` waiting for its reply.
    leaving: Option<u32>,
    /// Chat lines waiting for `ok`, by request id.
    chats: Vec<(u32, String)>,
}

/// How a player asks for a room.
#[derive(Debug, Clone, PartialEq, Eq)]
enum How {
    /// `join` by kind.
    Kind,
    /// `create` a private room, whose code others may then use.
    Create,
    /// `join_by_code` with the code of the private room with this id.
    Code(String, u64),
}

/// What [`Conn::recv`] got.
enum Recv {
    Msg(ServerMessage),
    /// The connection ended.
    Closed,
    /// The server sent something that is not the protocol.
    Bad(String),
}

/// A fixed mask: a real client draws one per frame, but the server only unmasks.
const MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x08];

impl Conn {
    async fn send(&mut self, msg: &ClientMessage<'_>) -> bool {
        self.sent_at = now();
        let mut body = Vec::new();
        msg.encode(&mut body);
        let mut out = Vec::with_capacity(body.len() + 8);
        match self.ws {
            Some(_) => ws::write_masked_frame(&mut out, ws::Opcode::Binary, &body, MASK),
            None => frame::encode(&body, &mut out),
        }
        matches!(
            timeout(WRITE_LIMIT, self.stream.write_all(&out)).await,
            Ok(Ok(()))
        )
    }

    /// The next message. Cancel-safe: bytes read stay in `buf`.
    async fn recv(&mut self) -> Recv {
        loop {
            match self.decode() {
                Ok(Some(msg)) => return Recv::Msg(msg),
                Ok(None) => {}
                Err(Some(bad)) => return Recv::Bad(bad),
                Err(None) => return Recv::Closed,
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Recv::Closed,
                Ok(_) => {}
            }
        }
    }

    /// The next whole message in `buf`: `Ok(None)` to read more, `Err(None)` for a
    /// WebSocket close, `Err(Some(why))` for bytes that are not the protocol.
    fn decode(&mut self) -> Result<Option<ServerMessage>, Option<String>> {
        let bad = |e: &dyn std::fmt::Display| Some(e.to_string());
        loop {
            let (n, body) = match self.ws.as_mut() {
                None => match frame::decode(&self.buf, 1 << 24) {
                    Ok(Some((n, body))) => (n, Some(body.to_vec())),
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(bad(&e)),
                },
                Some(d) => match d.decode(&mut self.buf) {
                    Ok(Some((n, ws::Event::Binary(body)))) => (n, Some(body.to_vec())),
                    Ok(Some((_, ws::Event::Close(_)))) => return Err(None),
                    Ok(Some((_, ws::Event::Text(_)))) => return Err(bad(&"a text message")),
                    // The server never pings or fragments; nothing to act on anyway.
                    Ok(Some((n, _))) => (n, None),
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(bad(&e)),
                },
            };
            self.buf.drain(..n);
            if let Some(body) = body {
                return ServerMessage::decode(&body).map(Some).map_err(|e| bad(&e));
            }
        }
    }
}

/// Sends the WebSocket upgrade request and reads the answer; what follows the answer's
/// head stays in `buf`.
async fn upgrade(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let request = "GET /ws HTTP/1.1\r\nHost: server\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let switched = buf.starts_with(b"HTTP/1.1 101");
            buf.drain(..end + 4);
            return switched;
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

/// What the player expects of its next resume, after a drop it made itself on a healthy
/// link while it held a live seat.
#[derive(Debug, Clone, Copy)]
struct Expect {
    dropped_at: Duration,
    seat: (u64, u32),
    /// Network faults on this player's link so far: one more voids the expectation.
    faults: u64,
}

pub struct Player {
    index: usize,
    /// Plays over WebSocket rather than raw TCP.
    websocket: bool,
    plan: PlayerPlan,
    params: Params,
    rec: Rc<RefCell<Record>>,
    session_token: String,
    conn: Option<Conn>,
    /// The resume token of the last `welcome`.
    resume: Option<String>,
    /// The seat the player holds or expects to resume.
    seat: Option<(u64, u32)>,
    /// The last input seq sent.
    seq: u32,
    next_req: u32,
    chats_said: u32,
    /// No `join` before this (after a `leave`, or a refused join).
    join_after: Duration,
    reconnect_at: Duration,
    expect: Option<Expect>,
    /// A resume just gave the seat back: resend the last inputs, some of which the
    /// room applied already (it must not apply them twice).
    resend: bool,
}

fn now() -> Duration {
    turmoil::elapsed()
}

impl Player {
    pub fn new(
        index: usize,
        websocket: bool,
        plan: PlayerPlan,
        params: Params,
        rec: Rc<RefCell<Record>>,
        session_token: String,
    ) -> Self {
        Player {
            index,
            websocket,
            plan,
            params,
            rec,
            session_token,
            conn: None,
            resume: None,
            seat: None,
            seq: 0,
            next_req: 0,
            chats_said: 0,
            join_after: Duration::ZERO,
            reconnect_at: Duration::ZERO,
            expect: None,
            resend: false,
        }
    }

    fn req(&mut self) -> u32 {
        self.next_req += 1;
        self.next_req
    }

    fn violation(&self, what: String) {
        self.rec.borrow_mut().violation(format!(
            "account {} at {:?}: {what}",
            self.plan.account,
            now()
        ));
    }

    fn log(&self, item: Item) {
        if let Some(c) = &self.conn {
            self.rec.borrow_mut().feeds[c.feed].items.push(item);
        }
    }

    pub async fn run(mut self) -> turmoil::Result {
        tokio::time::sleep(self.plan.start).await;
        let mut acts = std::mem::take(&mut self.plan.acts).into_iter().peekable();
        let beat = self.params.tick;
        let mut next_beat = now();
        while now() < self.plan.end {
            if let Some(&(at, act)) = acts.peek() {
                if at <= now() {
                    acts.next();
                    self.act(act).await;
                    continue;
                }
            }
            let next_act = acts.peek().map_or(self.plan.end, |(t, _)| *t);
            let wake = next_beat.min(next_act).min(self.plan.end);
            if self.conn.is_none() {
                if now() < self.reconnect_at {
                    sleep_until(self.reconnect_at.min(next_act).min(self.plan.end)).await;
                    continue;
                }
                self.connect().await;
                continue;
            }
            let received = {
                let conn = self.conn.as_mut().expect("connected");
                // Biased, like every select in a simulation: a random pick would make
                // the run differ from one replay to the next.
                tokio::select! {
                    biased;
                    m = conn.recv() => Some(m),
                    _ = sleep_until(wake) => None,
                }
            };
            match received {
                Some(Recv::Msg(msg)) => self.on_message(msg),
                Some(Recv::Closed) => self.lost(),
                Some(Recv::Bad(why)) => {
                    self.violation(format!("the server sent what is not the protocol: {why}"));
                    self.lost();
                }
                None => {}
            }
            if now() >= next_beat {
                next_beat = now() + beat;
                self.beat().await;
            }
        }
        self.finish().await;
        Ok(())
    }

    async fn connect(&mut self) {
        let websocket = self.websocket;
        let mut buf = Vec::new();
        let attempt = timeout(CONNECT_LIMIT, async {
            if !websocket {
                return TcpStream::connect((SERVER, PORT)).await;
            }
            let mut stream = TcpStream::connect((SERVER, WS_PORT)).await?;
            match upgrade(&mut stream, &mut buf).await {
                true => Ok(stream),
                false => Err(std::io::ErrorKind::ConnectionRefused.into()),
            }
        })
        .await;
        tracing::debug!(target: "sim", account = self.plan.account, ok = matches!(attempt, Ok(Ok(_))), resume = self.resume.is_some(), "connect");
        let Ok(Ok(stream)) = attempt else {
            self.reconnect_at = now() + self.plan.rng.ms(50, 250);
            return;
        };
        let feed = {
            let mut rec = self.rec.borrow_mut();
            rec.feeds.push(Feed {
                account: self.plan.account,
                items: Vec::new(),
            });
            rec.feeds.len() - 1
        };
        let resuming = self.resume.is_some();
        let mut conn = Conn {
            stream,
            buf,
            ws: websocket.then(|| ws::Decoder::client(1 << 24)),
            feed,
            welcomed: false,
            resuming,
            hello_at: now(),
            heard_at: now(),
            sent_at: now(),
            state_at: None,
            seat: None,
            joining: None,
            joining_how: How::Kind,
            leaving: None,
            chats: Vec::new(),
        };
        let name = format!("p{}", self.plan.account);
        let sent = conn
            .send(&ClientMessage::Hello {
                version: PROTOCOL_VERSION,
                client: &name,
                resume: self.resume.as_deref(),
                token: Some(&self.session_token),
            })
            .await;
        self.rec.borrow_mut().stats.connections += 1;
        if sent {
            self.conn = Some(conn);
        } else {
            self.reconnect_at = now() + self.plan.rng.ms(50, 250);
        }
    }

    /// The connection broke or went silent: close it and come back soon.
    fn lost(&mut self) {
        tracing::debug!(target: "sim", account = self.plan.account, "connection lost");
        self.conn = None;
        self.reconnect_at = now() + self.plan.rng.ms(0, 300);
    }

    async fn act(&mut self, act: Act) {
        tracing::debug!(target: "sim", account = self.plan.account, ?act, "act");
        match act {
            Act::Drop { away } => {
                self.expect = match &self.conn {
                    Some(c)
                        if c.welcomed
                            && c.seat.is_some()
                            && c.state_at.is_some_and(|t| now() - t < 3 * self.params.tick) =>
                    {
                        Some(Expect {
                            dropped_at: now(),
                            seat: c.seat.expect("checked"),
                            faults: self.rec.borrow().faults[self.index],
                        })
                    }
                    _ => None,
                };
                // No `leave`: to the server this is a network drop.
                self.conn = None;
                self.reconnect_at = now() + away;
                self.rec.borrow_mut().stats.drops += 1;
            }
            Act::Leave { rejoin } => {
                let req = self.req();
                if let Some(c) = self.conn.as_mut() {
                    if c.welcomed && c.seat.is_some() && c.leaving.is_none() {
                        c.leaving = Some(req);
                        if !c.send(&ClientMessage::Leave { req }).await {
                            self.lost();
                        }
                    }
                }
                self.join_after = now() + rejoin;
            }
        }
    }

    /// Once per tick: give up a silent connection, else play.
    async fn beat(&mut self) {
        let Some(c) = self.conn.as_mut() else { return };
        if now() - c.heard_at > SILENCE {
            self.rec.borrow_mut().stats.silent_gave_up += 1;
            self.lost();
            return;
        }
        if !c.welcomed {
            return;
        }
        let ok = if c.seat.is_some() && c.leaving.is_none() {
            if std::mem::take(&mut self.resend) {
                for seq in self.seq.saturating_sub(RESEND - 1).max(1)..=self.seq {
                    let mut payload = Vec::new();
                    rally_server::game::msgpack::write_uint(&mut payload, u64::from(seq));
                    let c = self.conn.as_mut().expect("connected");
                    if !c
                        .send(&ClientMessage::Input {
                            seq,
                            payload: &payload,
                        })
                        .await
                    {
                        self.lost();
                        return;
                    }
                    self.rec.borrow_mut().stats.inputs_resent += 1;
                }
            }
            self.seq += 1;
            let mut payload = Vec::new();
            rally_server::game::msgpack::write_uint(&mut payload, u64::from(self.seq));
            let c = self.conn.as_mut().expect("connected");
            let mut ok = c
                .send(&ClientMessage::Input {
                    seq: self.seq,
                    payload: &payload,
                })
                .await;
            if ok && self.plan.rng.chance(15) && c.chats.len() < 3 {
                self.chats_said += 1;
                let text = format!("a{}-{}", self.plan.account, self.chats_said);
                self.next_req += 1;
                let req = self.next_req;
                let c = self.conn.as_mut().expect("connected");
                c.chats.push((req, text.clone()));
                ok = c.send(&ClientMessage::Chat { req, text: &text }).await;
                self.rec.borrow_mut().stats.chats_sent += 1;
            }
            ok
        } else if c.seat.is_none()
            && c.joining.is_none()
            && c.leaving.is_none()
            && !c.resuming
            && now() >= self.join_after
        {
            self.next_req += 1;
            let req = self.next_req;
            // Mostly by kind; sometimes a private room of one's own, or a friend's by its
            // code (a code whose room ended is refused, and the player tries again).
            let how = if self.plan.rng.chance(10) {
                How::Create
            } else if self.plan.rng.chance(30) {
                let rec = self.rec.borrow();
                match rec.codes.len() {
                    0 => How::Kind,
                    n => {
                        let (code, room) =
                            &rec.codes[self.plan.rng.between(0, n as u64 - 1) as usize];
                        How::Code(code.clone(), *room)
                    }
                }
            } else {
                How::Kind
            };
            let c = self.conn.as_mut().expect("connected");
            c.joining = Some(req);
            c.joining_how = how.clone();
            match how {
                How::Kind => {
                    c.send(&ClientMessage::Join {
                        req,
                        kind: tally::KIND,
                    })
                    .await
                }
                How::Create => {
                    c.send(&ClientMessage::Create {
                        req,
                        kind: tally::KIND,
                        options: &[0x80],
                        private: true,
                    })
                    .await
                }
                How::Code(code, _) => {
                    c.send(&ClientMessage::JoinByCode { req, code: &code })
                        .await
                }
            }
        } else if now() - c.sent_at >= IDLE_PING {
            let nonce = now().as_millis() as u64;
            c.send(&ClientMessage::Ping { nonce }).await
        } else {
            true
        };
        if !ok {
            self.lost();
        }
    }

    fn on_message(&mut self, msg: ServerMessage) {
        let at = now();
        tracing::debug!(target: "sim", account = self.plan.account, ?msg, "received");
        let Some(c) = self.conn.as_mut() else { return };
        c.heard_at = at;
        match msg {
            ServerMessage::Welcome { resume_token, .. } => {
                c.welcomed = true;
                self.resume = Some(resume_token);
                if !c.resuming {
                    // A new session holds no seat: whatever the player held is lost.
                    self.seat = None;
                }
            }
            ServerMessage::Joined {
                req,
                room_id,
                player_id,
                code,
                ..
            } => {
                let seat = (room_id, player_id);
                if req == 0 {
                    c.resuming = false;
                    self.rec.borrow_mut().stats.resumed += 1;
                    if let Some(held) = self.seat {
                        if held != seat {
                            self.violation(format!("resumed seat {seat:?}, but held {held:?}"));
                        }
                    }
                    self.check_resume(true, at);
                } else if c.joining == Some(req) {
                    c.joining = None;
                    let mut rec = self.rec.borrow_mut();
                    rec.stats.joins += 1;
                    match std::mem::replace(&mut c.joining_how, How::Kind) {
                        How::Kind => {}
                        How::Create => {
                            rec.stats.created += 1;
                            rec.codes.push((code, room_id));
                        }
                        How::Code(code, room) => {
                            rec.stats.joined_by_code += 1;
                            if room != room_id {
                                drop(rec);
                                self.violation(format!(
                                    "code {code} of room {room} seated the player in room {room_id}"
                                ));
                            }
                        }
                    }
                }
                let c = self.conn.as_mut().expect("connected");
                c.seat = Some(seat);
                c.state_at = None;
                self.seat = Some(seat);
                self.log(Item::Moved);
                self.rec
                    .borrow_mut()
                    .granted
                    .insert(seat, self.plan.account);
                if req == 0 {
                    self.resend = true;
                }
            }
            ServerMessage::Left { req, .. } => {
                if c.leaving == Some(req) {
                    c.leaving = None;
                }
                c.seat = None;
                self.seat = None;
                self.log(Item::Moved);
            }
            ServerMessage::RoomClosed { room_id, .. } => {
                if c.seat.is_some_and(|(r, _)| r == room_id) {
                    c.seat = None;
                    self.seat = None;
                }
                self.log(Item::Moved);
            }
            ServerMessage::State {
                tick,
                last_seq,
                payload,
            } => {
                let Some((room, me)) = c.seat else {
                    self.violation(format!("state {tick} outside a room"));
                    return;
                };
                c.state_at = Some(at);
                let entries = match tally::decode(&payload) {
                    Ok(e) => e,
                    Err(e) => {
                        self.violation(e);
                        return;
                    }
                };
                match entries.iter().find(|e| e.id == me) {
                    Some(mine) if mine.last_seq != last_seq => self.violation(format!(
                        "room {room} tick {tick}: the state's last_seq {last_seq} is not the game's {}",
                        mine.last_seq
                    )),
                    Some(_) => {}
                    None => self.violation(format!(
                        "room {room} tick {tick}: player {me} is not in its own room's state"
                    )),
                }
                if last_seq > self.seq {
                    self.violation(format!(
                        "room {room} tick {tick}: last_seq {last_seq} is beyond the last seq sent, {}",
                        self.seq
                    ));
                }
                self.log(Item::State {
                    room,
                    tick,
                    entries,
                });
            }
            ServerMessage::ChatLine { room_id, text, .. } => self.log(Item::Line {
                room: room_id,
                text,
            }),
            ServerMessage::Ok { req } => {
                if let Some(at) = c.chats.iter().position(|(r, _)| *r == req) {
                    let (_, text) = c.chats.remove(at);
                    self.rec.borrow_mut().stats.chats_acked += 1;
                    self.log(Item::Said { text });
                }
            }
            ServerMessage::Error { code, req, .. } => {
                if req == 0 && code == ErrorCode::ResumeFailed {
                    c.resuming = false;
                    self.seat = None;
                    self.rec.borrow_mut().stats.resume_failed += 1;
                    self.check_resume(false, at);
                } else if req != 0 && c.joining == Some(req) {
                    c.joining = None;
                    self.join_after = at + self.params.tick * 2;
                } else if req != 0 && c.leaving == Some(req) {
                    c.leaving = None;
                } else if req != 0 {
                    c.chats.retain(|(r, _)| *r != req);
                }
            }
            ServerMessage::Shutdown { .. } => self.lost(),
            _ => {}
        }
    }

    /// A resume's outcome against what the grace promises, when the drop was clean.
    fn check_resume(&mut self, resumed: bool, _at: Duration) {
        let Some(expect) = self.expect.take() else {
            return;
        };
        let Some(c) = &self.conn else { return };
        if self.rec.borrow().faults[self.index] != expect.faults {
            return;
        }
        let p = &self.params;
        let asked = c.hello_at - expect.dropped_at;
        // The server hears of the drop within one latency; the resume reaches the room
        // three latencies after the connect starts.
        let latency = self.rec.borrow().max_latency;
        if !resumed && asked + 4 * latency + p.tick < p.grace {
            self.violation(format!(
                "resume of seat {:?} failed {asked:?} after a clean drop, within the {:?} grace",
                expect.seat, p.grace
            ));
        }
        if resumed && asked > p.grace + 2 * p.tick + 2 * latency {
            self.violation(format!(
                "seat {:?} resumed {asked:?} after a clean drop, past the {:?} grace",
                expect.seat, p.grace
            ));
        }
    }

    async fn finish(&mut self) {
        match self.plan.ending {
            End::Leave => {
                let req = self.req();
                let left = match self.conn.as_mut() {
                    Some(c) if c.welcomed && c.seat.is_some() => {
                        c.leaving = Some(req);
                        c.send(&ClientMessage::Leave { req }).await
                    }
                    _ => false,
                };
                if left {
                    let deadline = now() + LEAVE_LIMIT;
                    while now() < deadline {
                        let Some(c) = self.conn.as_mut() else { break };
                        if c.leaving.is_none() {
                            break;
                        }
                        let m = tokio::select! {
                            biased;
                            m = c.recv() => m,
                            _ = sleep_until(deadline) => break,
                        };
                        match m {
                            Recv::Msg(m) => self.on_message(m),
                            Recv::Closed => break,
                            Recv::Bad(why) => {
                                self.violation(format!(
                                    "the server sent what is not the protocol: {why}"
                                ));
                                break;
                            }
                        }
                    }
                }
            }
            End::Vanish | End::Partitioned => {}
        }
        // Dropping the stream closes it; for `Partitioned` the close is lost on the way.
        self.conn = None;
        let mut rec = self.rec.borrow_mut();
        rec.ends[self.index] = Some(now());
        rec.done += 1;
    }
}

async fn sleep_until(t: Duration) {
    let now = now();
    if t > now {
        tokio::time::sleep(t - now).await;
    }
}
