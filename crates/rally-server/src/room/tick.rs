//! One room tick (play floor): apply the queued inputs, advance the game, send each
//! seated player its state.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use rally_game::{PlayerId, Tick};
use rally_protocol::{ErrorCode, ServerMessage};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Room;
use crate::error::ClientError;
use crate::metrics::ErrorKind;
use crate::outbox::Outbound;
use crate::room_handle::InputMsg;

impl Room {
    pub(super) fn run_tick(
        &mut self,
        inputs: &mut mpsc::Receiver<InputMsg>,
        dt: Duration,
        now: Instant,
    ) {
        self.expire_away(now);
        // Apply what is queued now; inputs arriving meanwhile wait for the next tick.
        for _ in 0..inputs.len() {
            let Ok(input) = inputs.try_recv() else { break };
            let Ok(at) = self.seats.binary_search_by_key(&input.player, |s| s.id) else {
                continue;
            };
            if input.seq <= self.seats[at].last_seq || !self.seats[at].held_by(input.session) {
                continue; // a duplicate, or from a connection that lost the seat
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
        self.tick += 1;
        self.handle.info.tick.store(self.tick, Ordering::Relaxed);
        self.room_buf.clear();
        self.views.clear();
        self.game.tick(&mut Tick::new(
            self.tick,
            dt,
            &mut self.room_buf,
            &mut self.views,
        ));
        let room_state =
            (!self.room_buf.is_empty()).then(|| Bytes::copy_from_slice(&self.room_buf));
        let views: Vec<(PlayerId, Bytes)> = self
            .views
            .drain(..)
            .map(|(p, v)| (p, Bytes::from(v)))
            .collect();
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
            if !link.send(Outbound::Msg(state)) {
                self.gone.push(seat.id);
            }
        }
        self.mark_gone_away();
    }
}
