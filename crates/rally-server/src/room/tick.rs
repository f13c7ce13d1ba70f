//! One room tick (play floor): read the sockets lent to the room, apply the inputs,
//! advance the game, send each seated player its state.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use rally_game::{PlayerId, Tick};
use rally_protocol::{ClientMessage, ErrorCode, ServerMessage};
use rally_record::encode;
use tokio::time::Instant;

use super::Room;
use crate::error::ClientError;
use crate::metrics::ErrorKind;
use crate::outbox::{millis_since, DirectSocket, Lend, Outbound, Sent};
use crate::recording::RoomRecording;
use crate::room_handle::{InputMsg, InputPayload};
use crate::transport::{self, Decoder, Incoming, Transport};

/// A state encoding buffer grown past this (a huge state) is freed after the tick.
const MAX_KEPT_WRITE_BUFFER: usize = 64 * 1024;

impl Room {
    pub(super) fn run_tick(&mut self, dt: Duration, now: Instant) {
        self.expire_away(now);
        // Apply what is queued now and what the lent sockets hold (after: the queued
        // inputs were read first); inputs arriving meanwhile wait for the next tick.
        let mut inputs = std::mem::take(&mut self.inputs);
        self.handle.inputs.take(&mut inputs);
        self.read_lent(&mut inputs, now);
        for input in inputs.drain(..) {
            let Ok(at) = self.seats.binary_search_by_key(&input.player, |s| s.id) else {
                continue;
            };
            if input.seq <= self.seats[at].last_seq || !self.seats[at].held_by(input.session) {
                continue; // a duplicate, or from a connection that lost the seat
            }
            if let Some(out) = self.recording.as_mut().and_then(RoomRecording::records) {
                encode::input(out, input.player, input.seq, &input.payload);
            }
            match self.game.input(input.player, input.seq, &input.payload) {
                Ok(()) => self.seats[at].last_seq = input.seq,
                Err(refusal) => {
                    self.env
                        .metrics
                        .stats
                        .count_error(ErrorKind::Room, ErrorCode::InputRejected);
                    if let Some(link) = &self.seats[at].link {
                        tracing::debug!(
                            session_id = link.session_id,
                            code = ErrorCode::InputRejected.name(),
                            room_id = self.handle.id,
                            detail = %refusal.0,
                            "error to client"
                        );
                    }
                    self.notify(
                        input.player,
                        ClientError::new(ErrorCode::InputRejected, refusal.0).into_message(0),
                    )
                }
            }
        }
        self.inputs = inputs;
        self.tick += 1;
        self.handle.info.tick.store(self.tick, Ordering::Relaxed);
        self.room_buf.clear();
        self.views.clear();
        let mut tick =
            Tick::new(self.tick, dt, &mut self.room_buf, &mut self.views).with_rng(&mut self.rng);
        self.game.tick(&mut tick);
        let control = tick.take_control();
        if !control.is_empty() {
            self.apply_control(control);
        }
        self.record_tick(dt);
        let room_state =
            (!self.room_buf.is_empty()).then(|| Bytes::copy_from_slice(&self.room_buf));
        let views: Vec<(PlayerId, Bytes)> = self
            .views
            .drain(..)
            .map(|(p, v)| (p, Bytes::from(v)))
            .collect();
        // Messages and bytes written here, per transport: one metrics add per tick.
        let mut written = [(0usize, 0usize); 2];
        for seat in &self.seats {
            let Some(link) = &seat.link else { continue };
            let payload = match views.iter().find(|(p, _)| *p == seat.id) {
                Some((_, v)) => v.clone(),
                None => match &room_state {
                    Some(s) => s.clone(),
                    None => continue,
                },
            };
            let state = ServerMessage::State {
                tick: self.tick,
                last_seq: seat.last_seq,
                payload,
            };
            match link.send_now(state, &mut self.write_buf) {
                Sent::Written { transport, bytes } => {
                    let w = &mut written[usize::from(transport == Transport::WebSocket)];
                    (w.0, w.1) = (w.0 + 1, w.1 + bytes);
                }
                Sent::Queued => {}
                Sent::Gone => self.gone.push(seat.id),
            }
        }
        for (transport, (messages, bytes)) in [Transport::Tcp, Transport::WebSocket]
            .into_iter()
            .zip(written)
        {
            if messages > 0 {
                self.env.metrics.stats.sent(transport, messages, bytes);
            }
        }
        self.send_spectators(room_state);
        if self.write_buf.capacity() > MAX_KEPT_WRITE_BUFFER {
            self.write_buf = Vec::new();
        }
        self.mark_gone_away();
    }

    /// Reads each socket lent to the room once ([`Lend`]): its whole inputs join this
    /// tick's, the first thing the room may not handle goes back to its session.
    fn read_lent(&mut self, inputs: &mut Vec<InputMsg>, now: Instant) {
        let room_id = self.handle.id;
        let env = &self.env;
        // The rate limits' clock, and the deadline a read with a whole message sets.
        let clock = now.saturating_duration_since(env.epoch);
        let deadline = millis_since(env.epoch, now + env.timeout);
        let copy = &mut self.write_buf;
        // Messages and bytes read, per transport: one metrics add per tick.
        let mut read = [(0u64, 0usize); 2];
        for seat in &self.seats {
            let Some(link) = &seat.link else { continue };
            let (session, player) = (link.session_id, seat.id);
            let done = link
                .ctl
                .with_lend(room_id, player, |socket, transport, lend| {
                    let decoder = Decoder::new(transport, env.max_message_bytes);
                    let (messages, bytes) = transport::with_read_chunk(|chunk| {
                        let mut from = Reading {
                            socket,
                            decoder,
                            chunk,
                            copy,
                        };
                        from.read(lend, (session, player), clock, inputs)
                    });
                    (transport, messages, bytes)
                });
            let Some((transport, messages, bytes)) = done else {
                continue;
            };
            if messages > 0 {
                link.ctl.set_deadline(deadline, true);
            }
            let r = &mut read[usize::from(transport == Transport::WebSocket)];
            (r.0, r.1) = (r.0 + messages, r.1 + bytes);
        }
        for (transport, (messages, bytes)) in
            [Transport::Tcp, Transport::WebSocket].into_iter().zip(read)
        {
            if bytes > 0 {
                env.metrics.stats.received(transport, messages, bytes);
            }
        }
    }

    /// Sends spectators the room state, dropping those that stopped watching or whose
    /// session is gone or not reading. Per-player views are never sent to them.
    fn send_spectators(&mut self, room_state: Option<Bytes>) {
        if self.spectators.is_empty() {
            return;
        }
        let (room_id, tick) = (self.handle.id, self.tick);
        self.spectators.retain(|s| {
            if s.watching.is_cancelled() {
                return false;
            }
            match &room_state {
                Some(payload) => s.link.send(Outbound::Msg(ServerMessage::SpectatorState {
                    room_id,
                    tick,
                    payload: payload.clone(),
                })),
                None => true,
            }
        });
    }

    /// Records the tick (and every `HASH_EVERY` ticks the state hash) and hands the
    /// tick's records to the writer without waiting.
    fn record_tick(&mut self, dt: Duration) {
        let Some(recording) = &mut self.recording else {
            return;
        };
        if let Some(out) = recording.records() {
            encode::tick(out, self.tick, dt.as_nanos() as u64);
        }
        if recording.wants_hash(self.tick) {
            let hash = rally_record::state_hash(&*self.game, &self.room_buf);
            if let Some(out) = recording.records() {
                encode::hash(out, self.tick, hash);
            }
        }
        recording.end_tick();
    }
}

/// One read of a lent socket, with what it needs: the socket, a fresh decoder (the
/// session's was idle when it lent the reads), the thread's read buffer, and the room's
/// scratch buffer for a copy of what was read.
struct Reading<'a> {
    socket: &'a dyn DirectSocket,
    decoder: Decoder,
    chunk: &'a mut [u8],
    copy: &'a mut Vec<u8>,
}

impl Reading<'_> {
    /// The whole `input` messages at the start of what the socket holds, within the lent
    /// input budget, go to `inputs` as the session would queue them; from the first
    /// other thing on (a request, a ping, a control or partial frame, a refused input,
    /// the end of the stream, an error) the bytes go back to the session, unhandled.
    /// Returns the messages handled and the bytes read.
    fn read(
        &mut self,
        lend: &mut Lend,
        (session, player): (u64, PlayerId),
        clock: Duration,
        inputs: &mut Vec<InputMsg>,
    ) -> (u64, usize) {
        let n = match self.socket.try_read(self.chunk) {
            Ok(n) if n > 0 => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return (0, 0),
            // The end of the stream or an error: the session reads it again and ends.
            _ => {
                lend.give_back(&[]);
                return (0, 0);
            }
        };
        if n < self.chunk.len() {
            // A short read emptied the socket (as in the session's own reads).
            self.socket.clear_read_ready();
        }
        let bytes = &mut self.chunk[..n];
        // Decoding unmasks WebSocket frames in place: what goes back must be as sent.
        self.copy.clear();
        self.copy.extend_from_slice(bytes);
        let (mut at, mut handled) = (0, 0);
        while at < n {
            let Ok(Some((len, Incoming::Message(body)))) = self.decoder.decode(&mut bytes[at..])
            else {
                break;
            };
            let Ok(ClientMessage::Input { seq, payload }) = ClientMessage::decode(body) else {
                break;
            };
            if !lend.input.allow(clock) {
                break;
            }
            inputs.push(InputMsg {
                session,
                player,
                seq,
                payload: InputPayload::new(payload),
            });
            handled += 1;
            at += len;
        }
        if at < n {
            lend.give_back(&self.copy[at..n]);
        }
        (handled, n)
    }
}
