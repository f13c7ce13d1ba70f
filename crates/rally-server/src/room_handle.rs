//! How the rest of the server reaches a room (play floor, below the room task and the
//! matchmaker): the [`RoomHandle`], the messages a room takes ([`InputMsg`], [`Control`]),
//! a session's [`Membership`], the seat [`Reservation`] a join carries, and a spectator's
//! [`Watching`].
//!
//! The room task, the matchmaker, resume tokens, commands and sessions all import this
//! module; it imports only the outbox and the error below it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use rally_game::{CloseReason, PlayerId, Refusal, RoomOptions};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::error::CommandError;
use crate::outbox::{ResumeToken, SessionLink};

/// One input on its way to a room.
#[derive(Debug)]
pub(crate) struct InputMsg {
    /// The sending session: inputs from a connection that lost its seat to a resumed
    /// one are dropped.
    pub(crate) session: u64,
    pub(crate) player: PlayerId,
    pub(crate) seq: u32,
    pub(crate) payload: InputPayload,
}

/// Payloads up to this many bytes are carried inline (an arena input is 19).
const INLINE_INPUT: usize = 30;

/// An input's payload: inline when small, so queuing an input allocates nothing (a copy
/// into a fresh `Bytes` and its free were 7% of the server's instructions per state,
/// callgrind at 48 players); a larger one is carried on the heap.
#[derive(Clone)]
pub(crate) enum InputPayload {
    Inline { len: u8, bytes: [u8; INLINE_INPUT] },
    Heap(Bytes),
}

impl InputPayload {
    pub(crate) fn new(payload: &[u8]) -> Self {
        if payload.len() <= INLINE_INPUT {
            let mut bytes = [0; INLINE_INPUT];
            bytes[..payload.len()].copy_from_slice(payload);
            InputPayload::Inline {
                // Fits: at most INLINE_INPUT (30).
                len: payload.len() as u8,
                bytes,
            }
        } else {
            InputPayload::Heap(Bytes::copy_from_slice(payload))
        }
    }
}

impl std::ops::Deref for InputPayload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            InputPayload::Inline { len, bytes } => &bytes[..usize::from(*len)],
            InputPayload::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for InputPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.len())
    }
}

/// A room's input queue: sessions push, the room takes all that is queued at each tick.
/// A vector swapped at the tick rather than a channel: a tokio channel allocates in
/// blocks of 32 slots (two 1.8 KiB blocks in turn at 16 inputs a tick), where the two
/// vectors here grow to what a tick brings (16 x 56 B each for arena-16).
#[derive(Debug)]
pub(crate) struct InputQueue {
    inner: Mutex<Inputs>,
    /// Inputs held between two ticks before more are refused (`ROOM_BUSY`).
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inputs {
    queued: Vec<InputMsg>,
    /// The room has ended: pushes are refused (`NOT_IN_ROOM`).
    closed: bool,
}

/// Why an input was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// `capacity` inputs are waiting for the next tick.
    Full,
    /// The room has ended.
    Closed,
}

impl InputQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        InputQueue {
            inner: Mutex::new(Inputs::default()),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inputs> {
        // Each critical section is one push, swap or flag: never left half-done.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, input: InputMsg) -> Result<(), PushError> {
        let mut inputs = self.lock();
        if inputs.closed {
            Err(PushError::Closed)
        } else if inputs.queued.len() >= self.capacity {
            Err(PushError::Full)
        } else {
            inputs.queued.push(input);
            Ok(())
        }
    }

    /// Everything queued, in order, swapped into `into` (which must be empty: its
    /// allocation becomes the queue's, so neither side allocates in the steady state).
    pub(crate) fn take(&self, into: &mut Vec<InputMsg>) {
        debug_assert!(into.is_empty());
        std::mem::swap(&mut self.lock().queued, into);
    }

    /// Refuses every later push and drops what is queued.
    pub(crate) fn close(&self) {
        let mut inputs = self.lock();
        inputs.closed = true;
        inputs.queued = Vec::new();
    }

    /// Whether the room stopped taking inputs (it ended, or its task did).
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

/// A room's control queue. Each request is boxed: a tokio channel allocates 32 slots at
/// once, so with the 96-byte [`Control`] inline every room held 3 KiB for a queue that is
/// nearly always empty (about 190 B per player of a room of 16); a boxed slot is a
/// pointer, and the box lives only while its request is queued.
#[derive(Debug, Clone)]
pub(crate) struct ControlSender(mpsc::Sender<Box<Control>>);

/// The room's end of its control queue.
pub(crate) type ControlReceiver = mpsc::Receiver<Box<Control>>;

/// The room has ended (or its queue is full, for `try_send`).
#[derive(Debug)]
pub(crate) struct ControlClosed;

impl ControlSender {
    /// A control queue of `capacity` requests.
    pub(crate) fn channel(capacity: usize) -> (Self, ControlReceiver) {
        let (tx, rx) = mpsc::channel(capacity);
        (ControlSender(tx), rx)
    }

    /// Queues `control`, waiting for room in the queue; fails if the room has ended.
    pub(crate) async fn send(&self, control: Control) -> Result<(), ControlClosed> {
        self.0
            .send(Box::new(control))
            .await
            .map_err(|_| ControlClosed)
    }

    /// Queues `control` if there is room now; fails if the queue is full or closed.
    pub(crate) fn try_send(&self, control: Control) -> Result<(), ControlClosed> {
        self.0
            .try_send(Box::new(control))
            .map_err(|_| ControlClosed)
    }
}

/// Requests a room handles as they arrive.
pub(crate) enum Control {
    /// Seat a player. The room sends `joined` itself, so it precedes the first state.
    Join {
        link: SessionLink,
        req: u32,
        reservation: Reservation,
        /// The player's account (`None`: a guest, when logins are not required).
        account: Option<u64>,
        /// The membership's token, cancelled when the session no longer holds the seat.
        held: SeatHold,
        /// The team to seat the player on (the rating queue keeps a party together);
        /// `None`: the room picks the smallest team.
        team: Option<u32>,
        /// The seat, or why not (`ROOM_FULL`, `ROOM_LOCKED`, `JOIN_REFUSED`).
        reply: oneshot::Sender<Result<PlayerId, CommandError>>,
    },
    /// Free a player's seat (if `session` still holds it).
    Leave {
        player: PlayerId,
        session: u64,
        reply: Option<oneshot::Sender<()>>,
    },
    /// The player's connection dropped: keep the seat for the reconnect grace.
    Detach { player: PlayerId, session: u64 },
    /// A new connection takes an away (or half-open) seat back. The room sends `joined`
    /// with request id 0 itself.
    Resume {
        player: PlayerId,
        /// The token presented: the seat is taken only while this is still its token, so
        /// two connections presenting one token at once do not both get it.
        token: ResumeToken,
        link: SessionLink,
        /// The new membership's token; the displaced one's is cancelled.
        held: SeatHold,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// Say a line to everyone in the room (if `session` still holds the seat).
    Chat {
        player: PlayerId,
        session: u64,
        name: String,
        text: String,
        /// Whether the line was said.
        reply: oneshot::Sender<bool>,
    },
    /// Add a spectator: the room sends it `spectating` (with `req`) and then every room
    /// state, until `watching` is cancelled or its session is gone. `reply`: admitted
    /// (false: the room has all the spectators it takes).
    Spectate {
        link: SessionLink,
        req: u32,
        watching: CancellationToken,
        reply: oneshot::Sender<bool>,
    },
    /// Describe the seats (admin API).
    Inspect {
        reply: oneshot::Sender<Vec<SeatView>>,
    },
    /// The connected players, to queue as one party (`queue` with `party`).
    Party {
        reply: oneshot::Sender<Vec<PartyMember>>,
    },
}

/// A connected player of a room, as a party going to the matchmaking queue needs it.
#[derive(Debug, Clone)]
pub(crate) struct PartyMember {
    pub(crate) player_id: PlayerId,
    pub(crate) link: SessionLink,
    pub(crate) account: Option<u64>,
}

/// One seat as the admin API shows it.
#[derive(Debug, Clone)]
pub(crate) struct SeatView {
    pub(crate) player_id: PlayerId,
    /// The connected session; `None` while the player is away.
    pub(crate) session_id: Option<u64>,
    pub(crate) last_seq: u32,
    /// How long the seat is still held for an away player.
    pub(crate) away_for: Option<Duration>,
    /// The account that holds the seat (`None`: a guest).
    pub(crate) account: Option<u64>,
    /// The seat's team (0: the kind has no teams).
    pub(crate) team: u32,
}

/// What anyone may read about a room without asking its task.
#[derive(Debug)]
pub(crate) struct RoomInfo {
    pub(crate) opened: std::time::Instant,
    /// The last tick run.
    pub(crate) tick: AtomicU64,
    /// How long the last tick took, in microseconds (the admin API's `tick_ms`).
    pub(crate) tick_micros: AtomicU64,
    /// Seats taken (players away included).
    pub(crate) players: AtomicUsize,
    /// The operator's words when the admin API closed the room.
    pub(crate) close_note: OnceLock<String>,
    /// What the game published for listings (one MessagePack value; empty: none). The
    /// lock is held for a clone of the `Bytes` handle only.
    pub(crate) metadata: Mutex<Bytes>,
    /// Whether the game locked the room (mirrors the matchmaker's copy, for readers
    /// that hold only the handle).
    pub(crate) locked: AtomicBool,
}

impl RoomInfo {
    /// A room opening now: no ticks, no players, no metadata.
    pub(crate) fn new() -> Self {
        RoomInfo {
            opened: std::time::Instant::now(),
            tick: AtomicU64::new(0),
            tick_micros: AtomicU64::new(0),
            players: AtomicUsize::new(0),
            close_note: OnceLock::new(),
            metadata: Mutex::new(Bytes::new()),
            locked: AtomicBool::new(false),
        }
    }

    /// The game's metadata (empty: none).
    pub(crate) fn metadata(&self) -> Bytes {
        // A poisoned lock still holds a whole `Bytes`: the writer only swaps it.
        self.metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the game's metadata.
    pub(crate) fn set_metadata(&self, value: Bytes) {
        *self.metadata.lock().unwrap_or_else(|e| e.into_inner()) = value;
    }

    pub(crate) fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }

    pub(crate) fn tick(&self) -> u64 {
        self.tick.load(Ordering::Relaxed)
    }

    pub(crate) fn players(&self) -> usize {
        self.players.load(Ordering::Relaxed)
    }

    /// How long the last tick took.
    pub(crate) fn tick_time(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.tick_micros.load(Ordering::Relaxed))
    }
}

/// How sessions and the matchmaker reach a room: one shared allocation, so a clone is
/// one reference count (every seat's membership and resume entry holds one; inline, each
/// was a 104-byte copy and seven reference counts). Its parts read through `Deref`.
#[derive(Debug, Clone)]
pub(crate) struct RoomHandle(Arc<RoomParts>);

impl std::ops::Deref for RoomHandle {
    type Target = RoomParts;

    fn deref(&self) -> &RoomParts {
        &self.0
    }
}

/// What a [`RoomHandle`] shares.
#[derive(Debug)]
pub(crate) struct RoomParts {
    /// Random, below 2^53 (JavaScript numbers hold it): not guessable from other ids.
    pub(crate) id: u64,
    pub(crate) kind: Arc<str>,
    /// The share code for `join_by_code`: random, unique among live rooms.
    pub(crate) code: Arc<str>,
    /// Kept out of listings and `join_or_create`.
    pub(crate) private: bool,
    /// The options the room was created with.
    pub(crate) options: Arc<RoomOptions>,
    pub(crate) max_players: usize,
    pub(crate) control: ControlSender,
    pub(crate) inputs: InputQueue,
    /// Cancelled when the room ends; a child of the server's shutdown token.
    pub(crate) token: CancellationToken,
    /// Why the room was cancelled, set by whoever cancels it (unset: server shutdown).
    pub(crate) reason: Arc<OnceLock<CloseReason>>,
    pub(crate) info: Arc<RoomInfo>,
}

impl RoomHandle {
    pub(crate) fn new(parts: RoomParts) -> Self {
        RoomHandle(Arc::new(parts))
    }

    /// Ends the room for `reason` (the first reason given wins).
    pub(crate) fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Asks the room for its seats, bounded by `limit`; `None` if it did not answer (it
    /// ended, or it is too busy).
    pub(crate) async fn inspect(&self, limit: Duration) -> Option<Vec<SeatView>> {
        tokio::time::timeout(limit, async {
            let (reply, answer) = oneshot::channel();
            self.control.send(Control::Inspect { reply }).await.ok()?;
            answer.await.ok()
        })
        .await
        .ok()
        .flatten()
    }
}

/// A session's seat in a room.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub(crate) room: RoomHandle,
    pub(crate) player_id: PlayerId,
    /// Cancelled when this session stops holding the seat: another connection resumed
    /// it, or it was freed (the room's end is seen on `room.token`).
    pub(crate) held: SeatHold,
}

impl Membership {
    /// Whether the room still runs and this session still holds the seat.
    pub(crate) fn is_live(&self) -> bool {
        !self.held.is_cancelled() && !self.room.token.is_cancelled()
    }
}

/// Whether a session still holds its seat: cancelled by the room when another connection
/// resumes the seat or the seat is freed (the room's own end is its token). A flag, not a
/// child `CancellationToken`: nothing waits on it, and a child token is a tree node of
/// its own (over 100 bytes a seat) and a lock on the room's token at every join.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeatHold(Arc<std::sync::atomic::AtomicBool>);

impl SeatHold {
    pub(crate) fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What takes a reserved seat back: the matchmaker. A trait so that a room's messages,
/// which carry reservations, need not import the matchmaker, which imports them.
pub(crate) trait SeatRelease: std::fmt::Debug + Send + Sync {
    /// Gives one seat of `room_id` back.
    fn release(&self, room_id: u64);
}

/// A seat held in a room until the room seats the player ([`Reservation::keep`]);
/// dropped unused, it frees the seat.
#[derive(Debug)]
pub(crate) struct Reservation {
    seats: Arc<dyn SeatRelease>,
    room_id: u64,
    armed: bool,
}

impl Reservation {
    /// A seat just counted in `room_id` by `seats`.
    pub(crate) fn new(seats: Arc<dyn SeatRelease>, room_id: u64) -> Self {
        Reservation {
            seats,
            room_id,
            armed: true,
        }
    }

    /// The player was seated: the seat now belongs to them and is freed when they leave.
    pub(crate) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.armed {
            self.seats.release(self.room_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(seq: u32) -> InputMsg {
        InputMsg {
            session: 7,
            player: 1,
            seq,
            payload: InputPayload::new(&seq.to_be_bytes()),
        }
    }

    #[test]
    fn the_input_queue_hands_over_in_order_refuses_past_capacity_and_after_close() {
        let queue = InputQueue::new(3);
        for seq in 1..=3 {
            assert_eq!(queue.push(input(seq)), Ok(()));
        }
        assert_eq!(queue.push(input(4)), Err(PushError::Full));
        let mut taken = Vec::new();
        queue.take(&mut taken);
        let seqs: Vec<u32> = taken.iter().map(|i| i.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        // Taken: room for the next tick's inputs again, in the buffer handed back.
        taken.clear();
        queue.take(&mut taken);
        assert_eq!(queue.push(input(5)), Ok(()));
        assert_eq!(queue.push(input(6)), Ok(()));
        queue.close();
        assert_eq!(queue.push(input(7)), Err(PushError::Closed));
        let mut after = Vec::new();
        queue.take(&mut after);
        assert!(after.is_empty(), "what was queued is dropped at close");
    }

    #[tokio::test]
    async fn control_requests_are_refused_once_the_room_is_gone() {
        let (tx, mut rx) = ControlSender::channel(1);
        let detach = || Control::Detach {
            player: 1,
            session: 7,
        };
        assert!(tx.try_send(detach()).is_ok());
        assert!(tx.try_send(detach()).is_err(), "full");
        assert!(matches!(
            rx.recv().await.as_deref(),
            Some(Control::Detach { player: 1, .. })
        ));
        drop(rx);
        assert!(tx.send(detach()).await.is_err());
    }

    #[test]
    fn input_payloads_read_back_inline_or_on_the_heap() {
        for len in [0, 1, 19, INLINE_INPUT, INLINE_INPUT + 1, 4096] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let payload = InputPayload::new(&bytes);
            assert_eq!(&*payload, &bytes[..], "len {len}");
            assert_eq!(
                matches!(payload, InputPayload::Inline { .. }),
                len <= INLINE_INPUT,
                "len {len}"
            );
        }
    }
}

/// A session's spectator stream (a room's, or a recording played back): dropping it stops
/// the stream, so a session that ends, stops, or watches something else stops it.
#[derive(Debug)]
pub(crate) struct Watching {
    _stop: DropGuard,
}

impl Watching {
    /// A stream stopped by cancelling `token` when this is dropped.
    pub(crate) fn new(token: CancellationToken) -> Self {
        Watching {
            _stop: token.drop_guard(),
        }
    }
}
