//! One bot at play, driven by its group ([`crate::group`]): the socket its entry opened
//! ([`crate::entry`]), the bytes it owes the socket, the send times of its inputs, and
//! what it makes of the server's bytes. Nothing here waits: the group calls
//! [`Bot::send_input`] when the bot's turn comes, and [`Bot::poll`] whenever it wakes, which
//! reads the socket into the group's buffer, decodes in place and writes what is owed.
//!
//! A state is measured where it is decoded: each input from its send until the first
//! state whose `last_seq` covers it ([`SendTimes`]).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rally_client::Parts;
use rally_protocol::framing::{ClientFramer, Deframer, Incoming};
use rally_protocol::message::tag;
use rally_protocol::msgpack::Reader;
use rally_protocol::ws::{close_code, Opcode};
use rally_protocol::{ClientMessage, DecodeError, ServerMessage};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::stats::{Stats, Tally};

/// Inputs remembered per bot: at 20 Hz, 1.6 s of inputs in flight, far more than a
/// healthy server ever leaves unanswered. Older inputs go unmeasured.
const RING: usize = 32;
/// Bytes a bot may owe its socket; past it inputs are refused (`input:backpressure`), as
/// the SDK's `max_outbound_bytes` refuses them.
const MAX_PENDING: usize = 64 * 1024;
/// Largest server message a bot accepts: a sanity bound (docs/protocol.md section 2).
const MAX_INBOUND: usize = 16 << 20;
/// Reads of one socket per wake-up at most, so that a flooding server cannot keep the
/// group from its other bots; the group wakes itself again when it stopped early.
pub(crate) const READS_PER_WAKE: usize = 8;

/// Send times of the last [`RING`] inputs, by seq; fixed size so that sending an input
/// allocates nothing.
#[derive(Debug)]
pub(crate) struct SendTimes {
    slots: [(u32, Option<Instant>); RING],
    /// The highest seq already measured: a state acknowledges every seq up to its
    /// `last_seq`, and each one is measured at the first state that does.
    acked: u32,
}

impl SendTimes {
    pub(crate) fn new() -> SendTimes {
        SendTimes {
            slots: [(0, None); RING],
            acked: 0,
        }
    }

    /// Notes that `seq` was sent at `at`.
    pub(crate) fn sent(&mut self, seq: u32, at: Option<Instant>) {
        self.slots[seq as usize % RING] = (seq, at);
    }

    /// A state says inputs up to `last_seq` are applied: calls `f` with the latency of
    /// each not yet measured, if its send time is remembered and was recorded (`Some`).
    pub(crate) fn acked(&mut self, last_seq: u32, now: Instant, mut f: impl FnMut(Duration)) {
        if last_seq <= self.acked {
            return;
        }
        let first = self.acked.max(last_seq.saturating_sub(RING as u32)) + 1;
        for seq in first..=last_seq {
            if let (s, Some(at)) = self.slots[seq as usize % RING] {
                if s == seq {
                    f(now.saturating_duration_since(at));
                }
            }
        }
        self.acked = last_seq;
    }
}

/// Bot `id`'s point in the input interval, in `0.0..1.0`: the golden-ratio sequence, so
/// the 16 bots of a room (consecutive ids) fall far apart, whatever the count.
pub(crate) fn spread(id: u32) -> f64 {
    (f64::from(id) * 0.618_033_988_749_895).fract()
}

/// WebSocket masking keys for a group's bots. RFC 6455 wants them unpredictable to keep
/// browsers from poisoning proxies; a load tool on loopback only has to mask, so a
/// xorshift generator (seeded per group) spares a system call per batch of keys.
#[derive(Debug)]
pub(crate) struct Masks(u64);

impl Masks {
    pub(crate) fn new(seed: u64) -> Masks {
        // Xorshift must not start at 0.
        Masks(seed | 1)
    }

    pub(crate) fn next(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x as u32).to_be_bytes()
    }
}

/// Why a bot stopped before its goodbye finished; counted as `disconnect:<why>` while it
/// played and `close:<why>` during its goodbye.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// The server closed the connection.
    PeerClosed,
    /// The server sent a fatal error (it closes after it).
    Server(&'static str),
    /// The socket failed.
    Io(std::io::ErrorKind),
    /// The server's bytes made no sense.
    Protocol,
}

impl End {
    /// The error kind, as the SDK-based bots named them.
    pub(crate) fn kind(&self) -> String {
        match self {
            End::PeerClosed => "peer_closed".to_owned(),
            End::Server(code) => (*code).to_owned(),
            End::Io(kind) => format!("io:{kind:?}"),
            End::Protocol => "protocol".to_owned(),
        }
    }
}

impl From<std::io::Error> for End {
    fn from(e: std::io::Error) -> End {
        End::Io(e.kind())
    }
}

/// Where a bot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// In a room: sends inputs, measures states.
    Playing,
    /// Said goodbye (`leave`, close frame, FIN); reads until the server closes too, until
    /// `until` at most.
    Closing { until: Instant },
    /// Over; the group drops it.
    Done,
}

/// One bot at play; see the module docs.
#[derive(Debug)]
pub(crate) struct Bot {
    stream: TcpStream,
    /// Decodes the server's frames; over WebSocket it keeps a fragmented message's state.
    deframer: Deframer,
    framer: ClientFramer,
    /// The server's `max_message_bytes`: inputs are refused above it.
    max_body: usize,
    /// The start of a frame the last read cut off: usually empty and unallocated, since
    /// reads go to the group's buffer and a whole frame never stays.
    carry: Vec<u8>,
    /// Bytes the socket did not take yet: usually empty and unallocated.
    pending: Vec<u8>,
    /// When the next input is due.
    pub(crate) next_send: Instant,
    /// Latencies of inputs sent before this are not recorded (warm-up).
    warm: Instant,
    seq: u32,
    /// The heading turns a little every input: each bot wanders on its own circle.
    heading: f32,
    times: SendTimes,
    pub(crate) phase: Phase,
    /// Whether the FIN went out (the goodbye's last write).
    shut: bool,
    /// Bounds a goodbye the server starts (a closed room, a shutdown).
    close_timeout: Duration,
}

impl Bot {
    /// The bot `id` that joined at `joined`, on the socket `parts` left.
    pub(crate) fn new(
        id: u32,
        parts: Parts,
        max_body: usize,
        joined: Instant,
        cfg: &crate::BotsConfig,
    ) -> Bot {
        let interval = cfg.input_interval;
        Bot {
            stream: parts.stream,
            deframer: Deframer::client(cfg.transport, MAX_INBOUND),
            framer: ClientFramer(cfg.transport),
            max_body,
            carry: parts.unread,
            pending: parts.unwritten,
            // Bots that join together would send right after the same room tick, and
            // each input would wait nearly a whole tick: each bot starts at its own point
            // of the interval instead, as real players do, so the latency measured is
            // the scenario's (about 25 ms median), not an artifact of the ramp.
            next_send: joined + interval.mul_f64(spread(id)),
            warm: joined + cfg.warmup,
            seq: 0,
            heading: id as f32 * 0.618,
            times: SendTimes::new(),
            phase: Phase::Playing,
            shut: false,
            close_timeout: cfg.close_timeout,
        }
    }

    /// Sends the next input (encoded into `scratch`, the group's) and notes its send
    /// time `now`; `next_send` moves one interval on, skipping turns missed.
    pub(crate) fn send_input(
        &mut self,
        now: Instant,
        interval: Duration,
        scratch: &mut Vec<u8>,
        masks: &mut Masks,
        stats: &Stats,
        tally: &mut Tally,
    ) -> Result<(), End> {
        while self.next_send <= now {
            self.next_send += interval;
        }
        self.seq += 1;
        let seq = self.seq;
        if self.pending.len() > MAX_PENDING {
            self.times.sent(seq, None);
            stats.error("input:backpressure");
            return Ok(());
        }
        let heading = self.heading + seq as f32 * 0.05;
        let mut payload = [0u8; 16];
        let payload = arena_input(&mut payload, heading.cos(), heading.sin());
        scratch.clear();
        let msg = ClientMessage::Input { seq, payload };
        if self
            .framer
            .message(&msg, self.max_body, masks.next(), scratch)
            .is_err()
        {
            self.times.sent(seq, None);
            stats.error("input:too_large");
            return Ok(());
        }
        self.times.sent(seq, (now >= self.warm).then_some(now));
        tally.inputs += 1;
        self.write(scratch)
    }

    /// Whether bytes wait for the socket (it is then polled for writing).
    pub(crate) fn owes(&self) -> bool {
        !self.pending.is_empty() || (matches!(self.phase, Phase::Closing { .. }) && !self.shut)
    }

    /// Starts the goodbye: `leave` if still in a room, the WebSocket close frame, then
    /// (once all is written) the FIN; the server's close is awaited until `until`.
    pub(crate) fn goodbye(&mut self, leave: bool, until: Instant, masks: &mut Masks) {
        let mut out = Vec::new();
        if leave {
            // Over raw TCP a close without `leave` looks like a drop, and the server
            // would hold the seat for the reconnection grace.
            let msg = ClientMessage::Leave { req: 1 };
            // A `leave` is a few bytes: always within the server's limit.
            let _ = self
                .framer
                .message(&msg, usize::MAX, masks.next(), &mut out);
        }
        let code = close_code::NORMAL.to_be_bytes();
        self.framer
            .control(Opcode::Close, &code, masks.next(), &mut out);
        self.phase = Phase::Closing { until };
        if self.write(&out).is_err() {
            // Nobody left to say goodbye to.
            self.phase = Phase::Done;
        }
    }

    /// Reads what the socket has (into `buf`, the group's), handles every whole frame,
    /// and writes what is owed. Returns whether the bot stopped early because of
    /// [`READS_PER_WAKE`] (the group then polls again soon). A bot that ends is `Done`
    /// and its error is counted.
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        masks: &mut Masks,
        stats: &Stats,
        tally: &mut Tally,
    ) -> bool {
        let more = match self.poll_read(cx, buf, masks, stats, tally) {
            Ok(more) => more,
            Err(end) => {
                self.end(end, stats, tally);
                return false;
            }
        };
        if let Err(end) = self.poll_write(cx) {
            self.end(end, stats, tally);
        }
        more
    }

    /// Counts the error `end` (or, during the goodbye, a server that closed: the goodbye's
    /// normal end) and marks the bot done.
    fn end(&mut self, end: End, stats: &Stats, tally: &mut Tally) {
        match self.phase {
            Phase::Playing => {
                stats.error(format!("disconnect:{}", end.kind()));
                tally.left += 1;
            }
            Phase::Closing { .. } if end == End::PeerClosed => {}
            Phase::Closing { .. } => stats.error(format!("close:{}", end.kind())),
            Phase::Done => {}
        }
        self.phase = Phase::Done;
    }

    /// Writes `bytes` now if the socket takes them (one system call, no wait); what it
    /// does not take is owed, after whatever was owed already.
    fn write(&mut self, bytes: &[u8]) -> Result<(), End> {
        if !self.pending.is_empty() {
            self.pending.extend_from_slice(bytes);
            return Ok(());
        }
        match self.stream.try_write(bytes) {
            Ok(n) => self.pending.extend_from_slice(&bytes[n..]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.pending.extend_from_slice(bytes)
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Writes what is owed as far as the socket takes it; then, in the goodbye, the FIN.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), End> {
        while !self.pending.is_empty() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.pending) {
                Poll::Ready(Ok(0)) => return Err(End::PeerClosed),
                Poll::Ready(Ok(n)) => {
                    self.pending.drain(..n);
                }
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Pending => return Ok(()),
            }
        }
        if self.pending.capacity() > 0 {
            // A backlog is rare: give its memory back.
            self.pending = Vec::new();
        }
        if matches!(self.phase, Phase::Closing { .. }) && !self.shut {
            // A TCP shutdown does not wait: it is ready at once.
            if let Poll::Ready(r) = Pin::new(&mut self.stream).poll_shutdown(cx) {
                r?;
                self.shut = true;
            }
        }
        Ok(())
    }

    /// Reads until the socket has nothing more (which registers the group's waker with
    /// it) or [`READS_PER_WAKE`] reads; `Ok(true)` in the latter case.
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        masks: &mut Masks,
        stats: &Stats,
        tally: &mut Tally,
    ) -> Result<bool, End> {
        if !self.carry.is_empty() {
            // Bytes the entry left, or the start of a frame: whole frames first.
            self.consume_carry(Instant::now(), masks, stats, tally)?;
        }
        for _ in 0..READS_PER_WAKE {
            if self.phase == Phase::Done {
                return Ok(false);
            }
            if self.carry.is_empty() {
                // The common case: straight into the group's buffer, decoded there.
                let mut rb = ReadBuf::new(buf);
                match Pin::new(&mut self.stream).poll_read(cx, &mut rb) {
                    Poll::Pending => return Ok(false),
                    Poll::Ready(r) => r?,
                }
                let n = rb.filled().len();
                if n == 0 {
                    return Err(End::PeerClosed);
                }
                let used = self.consume(&mut buf[..n], Instant::now(), masks, stats, tally)?;
                self.carry.extend_from_slice(&buf[used..n]);
            } else {
                // A frame is being completed: append to what it has.
                let old = self.carry.len();
                if old > MAX_INBOUND + 16 {
                    return Err(End::Protocol);
                }
                self.carry.resize(old + buf.len(), 0);
                let mut rb = ReadBuf::new(&mut self.carry[old..]);
                let r = Pin::new(&mut self.stream).poll_read(cx, &mut rb);
                let n = rb.filled().len();
                self.carry.truncate(old + n);
                match r {
                    Poll::Pending => return Ok(false),
                    Poll::Ready(r) => r?,
                }
                if n == 0 {
                    return Err(End::PeerClosed);
                }
                self.consume_carry(Instant::now(), masks, stats, tally)?;
            }
        }
        Ok(true)
    }

    /// Handles the whole frames `carry` holds and keeps the rest.
    fn consume_carry(
        &mut self,
        at: Instant,
        masks: &mut Masks,
        stats: &Stats,
        tally: &mut Tally,
    ) -> Result<(), End> {
        let mut carry = std::mem::take(&mut self.carry);
        let used = self.consume(&mut carry, at, masks, stats, tally)?;
        carry.drain(..used);
        if carry.is_empty() {
            // Give back what a cut-off frame needed.
            carry = Vec::new();
        }
        self.carry = carry;
        Ok(())
    }

    /// Handles every whole frame at the start of `data`; returns the bytes used.
    fn consume(
        &mut self,
        data: &mut [u8],
        at: Instant,
        masks: &mut Masks,
        stats: &Stats,
        tally: &mut Tally,
    ) -> Result<usize, End> {
        let mut pos = 0;
        let mut pong = Vec::new();
        while self.phase != Phase::Done {
            let (used, incoming) = match self.deframer.decode(&mut data[pos..]) {
                Ok(Some(unit)) => unit,
                Ok(None) => break,
                Err(_) => return Err(End::Protocol),
            };
            pos += used;
            match incoming {
                Incoming::Message(body) => {
                    let playing = self.phase == Phase::Playing;
                    if on_message(body, at, playing, &mut self.times, stats, tally)? {
                        // The room or the server ended the game: goodbye, without `leave`.
                        tally.left += 1;
                        self.goodbye(false, at + self.close_timeout, masks);
                    }
                }
                Incoming::Ping(p) => self
                    .framer
                    .control(Opcode::Pong, p, masks.next(), &mut pong),
                Incoming::Nothing => {}
                Incoming::Close(_) => return Err(End::PeerClosed),
            }
        }
        if !pong.is_empty() {
            self.write(&pong)?;
        }
        Ok(pos)
    }
}

/// What one message body means to a bot (`playing`: in its room); `Ok(true)` when the
/// game is over for it (the room closed, the server shuts down).
fn on_message(
    body: &[u8],
    at: Instant,
    playing: bool,
    times: &mut SendTimes,
    stats: &Stats,
    tally: &mut Tally,
) -> Result<bool, End> {
    if let Some(last_seq) = state_seq(body) {
        if playing {
            tally.states += 1;
            times.acked(last_seq, at, |d| tally.latency(d));
        }
        return Ok(false);
    }
    match ServerMessage::decode(body) {
        // A fatal error: the server closes after it.
        Ok(ServerMessage::Error { code, req: 0, .. }) if code.is_fatal() => {
            Err(End::Server(code.name()))
        }
        Ok(ServerMessage::Error { code, req: 0, .. }) => {
            stats.error(format!("server:{}", code.name()));
            Ok(false)
        }
        Ok(ServerMessage::RoomClosed { .. }) if playing => {
            stats.error("room_closed");
            Ok(true)
        }
        Ok(ServerMessage::Shutdown { .. }) if playing => {
            stats.error("shutdown");
            Ok(true)
        }
        // Replies (to the goodbye's `leave`) and everything else: nothing to do.
        Ok(_) | Err(DecodeError::UnknownType(_)) => Ok(false),
        Err(DecodeError::UnknownCode(code)) => {
            stats.error(format!("server:code_{code}"));
            Ok(false)
        }
        Err(_) => Err(End::Protocol),
    }
}

/// The `last_seq` of a well-formed `state` body, read in place; `None` for anything else
/// (which the full decoder then reads). States are nearly all a bot receives.
fn state_seq(body: &[u8]) -> Option<u32> {
    let mut r = Reader::new(body);
    let n = r.read_array_len().ok()?;
    if n < 4 || r.read_u64().ok()? != u64::from(tag::STATE) {
        return None;
    }
    r.read_u64().ok()?;
    r.read_u32().ok()
}

/// An arena input `[dx, dy]` (two f32) encoded into `out`, byte for byte as
/// `arena::encode_input` writes it (a test checks), without a heap buffer.
fn arena_input(out: &mut [u8; 16], dx: f32, dy: f32) -> &[u8] {
    out[0] = 0x92;
    out[1] = 0xca;
    out[2..6].copy_from_slice(&dx.to_be_bytes());
    out[6] = 0xca;
    out[7..11].copy_from_slice(&dy.to_be_bytes());
    &out[..11]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_seq_is_measured_once_at_the_first_state_that_covers_it() {
        let t0 = Instant::now();
        let mut times = SendTimes::new();
        for seq in 1..=3 {
            times.sent(seq, Some(t0 + Duration::from_millis(u64::from(seq) * 10)));
        }
        let mut got = Vec::new();
        times.acked(2, t0 + Duration::from_millis(50), |d| got.push(d));
        assert_eq!(got, [Duration::from_millis(40), Duration::from_millis(30)]);
        got.clear();
        times.acked(2, t0 + Duration::from_millis(60), |d| got.push(d));
        assert!(got.is_empty(), "already measured");
        times.acked(3, t0 + Duration::from_millis(70), |d| got.push(d));
        assert_eq!(got, [Duration::from_millis(40)]);
    }

    #[test]
    fn a_room_of_bots_spreads_over_the_interval() {
        let mut points: Vec<f64> = (100..116).map(spread).collect();
        assert!(points.iter().all(|p| (0.0..1.0).contains(p)));
        points.sort_by(f64::total_cmp);
        let widest_gap = points
            .windows(2)
            .map(|w| w[1] - w[0])
            .chain([1.0 - points[15] + points[0]])
            .fold(0.0, f64::max);
        assert!(widest_gap < 0.15, "{points:?}");
    }

    #[test]
    fn overwritten_and_warmup_inputs_are_not_measured() {
        let t0 = Instant::now();
        let mut times = SendTimes::new();
        times.sent(1, None);
        for seq in 2..=(RING as u32 + 5) {
            times.sent(seq, Some(t0));
        }
        let mut n = 0;
        times.acked(RING as u32 + 5, t0, |_| n += 1);
        assert_eq!(n, RING);
    }

    #[test]
    fn inputs_are_the_arena_games_own_encoding() {
        for (dx, dy) in [(0.0, 1.0), (-0.5, 0.25), (1.0, -1.0)] {
            let mut want = Vec::new();
            arena::encode_input(&mut want, dx, dy);
            let mut out = [0u8; 16];
            assert_eq!(arena_input(&mut out, dx, dy), &want[..]);
        }
    }

    #[test]
    fn states_are_read_in_place_and_the_rest_is_not_a_state() {
        let mut body = Vec::new();
        ServerMessage::State {
            tick: 9,
            last_seq: 41,
            payload: vec![0x90].into(),
        }
        .encode(&mut body);
        assert_eq!(state_seq(&body), Some(41));
        let mut pong = Vec::new();
        ServerMessage::Pong { nonce: 3 }.encode(&mut pong);
        assert_eq!(state_seq(&pong), None);
        assert_eq!(state_seq(&[0xc1]), None);
    }

    #[test]
    fn masks_vary() {
        let mut m = Masks::new(0);
        let a = m.next();
        assert_ne!(a, m.next());
    }
}
