//! The [`Events`] stream: the room's states and everything else the server says
//! unprompted, plus what happens to the connection.
//!
//! The stream goes on across reconnections and ends after [`Event::Closed`]. It is
//! bounded: when the application falls `event_capacity` events behind, the oldest state
//! is dropped to make room (a newer state supersedes it) and counted in
//! [`Events::dropped`], so a stalled reader costs bounded memory and never stalls the
//! connection (replies keep flowing, and the server never sees a slow consumer).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

use crate::client::{Room, Welcome};
use crate::error::Error;
use crate::shared::Shared;

/// A room's state after one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// The room's tick number, from 1, consecutive.
    pub tick: u64,
    /// The highest `seq` of this player's inputs the room has applied (0: none yet).
    pub last_seq: u32,
    /// The game's state: one MessagePack value, as the game wrote it.
    pub payload: Bytes,
}

/// The state of a watched room (`spectate`) or recording (`spectate_recording`) after a
/// tick: what the room's players got as its room state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpectatorState {
    /// The room watched (for a recording, the room that played it).
    pub room_id: u64,
    /// The room's tick number.
    pub tick: u64,
    /// The game's room state: one MessagePack value.
    pub payload: Bytes,
}

/// A chat line said in the room (the sayer included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// The room.
    pub room_id: u64,
    /// Who said it.
    pub player_id: u32,
    /// Their display name.
    pub name: String,
    /// What they said.
    pub text: String,
}

/// Something that happened, in the order it happened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The room's state after a tick.
    State(State),
    /// A chat line.
    Chat(ChatLine),
    /// A state of the room or recording this client watches ([`Client::spectate`](crate::Client::spectate)).
    /// The stream ends with [`Event::RoomClosed`] for that room id.
    SpectatorState(SpectatorState),
    /// The room ended (the game is over, the server is shutting down, ...); this client
    /// is in no room now.
    RoomClosed {
        /// The room.
        room_id: u64,
        /// Why, for people.
        reason: String,
    },
    /// An error the server sent unprompted that leaves the connection open:
    /// `INPUT_REJECTED`, `ROOM_BUSY`, `NOT_IN_ROOM` for an input.
    Error(Error),
    /// The connection dropped unexpectedly (the error says how); the SDK is reconnecting.
    /// Inputs are refused until [`Event::Reconnected`]; requests wait for it.
    Disconnected(Error),
    /// A new connection is open, with a new session. If the old one was in a room,
    /// [`Event::Resumed`] or [`Event::ResumeFailed`] follows.
    Reconnected(Welcome),
    /// The seat was taken back: same room, same player id; states follow, and
    /// `last_seq` tells which inputs the room applied before the drop.
    Resumed(Room),
    /// The server could not give the seat back (`RESUME_FAILED`: the token is unknown or
    /// the grace period is over): the new session is in no room; join again.
    ResumeFailed(Error),
    /// The matchmaking queue seated this player in its match (see
    /// [`Client::queue`](crate::Client::queue)); states of that room follow.
    Matched(Room),
    /// The server moved this player out of its room: its party is going to a match,
    /// whose [`Event::Matched`] follows.
    Left {
        /// The room left.
        room_id: u64,
    },
    /// The server is going away; the SDK closes the connection and does not reconnect.
    /// Connect again after `reconnect_after`, to this server or another.
    Shutdown {
        /// Why, for people.
        reason: String,
        /// How long the server asks clients to wait before reconnecting.
        reconnect_after: Duration,
    },
    /// The connection is over for good, the last event: `None` after
    /// [`Client::close`](crate::Client::close) or a shutdown, else why (a fatal server
    /// error, or a reconnection that failed).
    Closed(Option<Error>),
}

/// The stream of [`Event`]s of one client.
#[derive(Debug)]
pub struct Events {
    shared: Arc<Shared>,
}

impl Events {
    pub(crate) fn new(shared: Arc<Shared>) -> Events {
        Events { shared }
    }

    /// States dropped so far because the application fell `event_capacity` events behind.
    pub fn dropped(&self) -> u64 {
        self.shared
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .dropped
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let mut q = self
            .shared
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = q.items.pop_front() {
            return Poll::Ready(Some(e));
        }
        if q.ended {
            return Poll::Ready(None);
        }
        match &mut q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// The bounded queue behind [`Events`].
#[derive(Debug)]
pub(crate) struct EventQueue {
    /// Grows as needed up to `capacity`; empty when the application keeps up.
    items: VecDeque<Event>,
    capacity: usize,
    dropped: u64,
    /// No event comes after the ones queued.
    ended: bool,
    /// The reader waiting for an event.
    waker: Option<Waker>,
}

impl EventQueue {
    pub(crate) fn new(capacity: usize) -> EventQueue {
        EventQueue {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
            ended: false,
            waker: None,
        }
    }

    /// Queues `event`; returns the reader's waker, to wake once the lock is released.
    pub(crate) fn push(&mut self, event: Event) -> Option<Waker> {
        if self.ended {
            return None;
        }
        if self.items.len() >= self.capacity {
            // Drop the oldest state, superseded by newer ones; if there are only other
            // events (which say things no later event repeats), drop the new state
            // instead, or as a last resort the oldest event.
            match self.items.iter().position(|e| matches!(e, Event::State(_))) {
                Some(i) => {
                    self.items.remove(i);
                }
                None if matches!(event, Event::State(_)) => {
                    self.dropped += 1;
                    return None;
                }
                None => {
                    self.items.pop_front();
                }
            }
            self.dropped += 1;
        }
        self.items.push_back(event);
        self.waker.take()
    }

    /// Marks the end; returns the reader's waker.
    pub(crate) fn end(&mut self) -> Option<Waker> {
        self.ended = true;
        self.waker.take()
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;
    use crate::config::Transport;

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiting_reader_is_woken_by_an_event_and_by_the_end() {
        let welcome = Welcome {
            version: 1,
            session_id: 1,
            tick_hz: 20,
            max_message_bytes: 4096,
            timeout_ms: 30_000,
            queue_capacity: 100,
            resume_token: String::new().into(),
            reconnect_grace_ms: 0,
            account_id: 0,
            revision: 2,
        };
        let shared = Arc::new(Shared::new(welcome, Transport::Tcp, 8, 1024));
        let mut events = Events::new(shared.clone());
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut poll = || Pin::new(&mut events).poll_next(&mut cx);
        assert!(poll().is_pending());
        shared.emit(state(1));
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(matches!(poll(), Poll::Ready(Some(Event::State(_)))));
        assert!(poll().is_pending());
        shared.finish(None);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
        assert!(matches!(poll(), Poll::Ready(Some(Event::Closed(None)))));
        assert!(matches!(poll(), Poll::Ready(None)));
    }

    fn state(tick: u64) -> Event {
        Event::State(State {
            tick,
            last_seq: 0,
            payload: Bytes::new(),
        })
    }

    fn ticks(q: &EventQueue) -> Vec<Option<u64>> {
        q.items
            .iter()
            .map(|e| match e {
                Event::State(s) => Some(s.tick),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_full_queue_drops_the_oldest_state_first() {
        let mut q = EventQueue::new(3);
        q.push(state(1));
        q.push(Event::Error(Error::PeerClosed));
        q.push(state(2));
        q.push(state(3));
        assert_eq!(ticks(&q), vec![None, Some(2), Some(3)]);
        q.push(Event::Closed(None));
        assert_eq!(ticks(&q), vec![None, Some(3), None]);
        assert_eq!(q.dropped, 2);
        q.push(Event::Error(Error::PeerClosed));
        q.push(state(4));
        assert_eq!(ticks(&q), vec![None, None, None], "only non-states left");
        assert_eq!(q.dropped, 4);
        q.end();
        assert!(q.push(state(5)).is_none());
        assert_eq!(q.items.len(), 3, "nothing after the end");
    }
}
