//! The room's control messages (play floor): one method per [`Control`] message, handled
//! as it arrives, between ticks.

use rally_game::{JoinContext, PlayerId, Refusal, RoomControl};
use rally_protocol::{ErrorCode, ServerMessage};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Room, Seat, Spectator, MAX_SPECTATORS};
use crate::error::CommandError;
use crate::outbox::{Outbound, ResumeToken, SessionLink};
use crate::recording::RoomRecording;
use crate::room_handle::{Control, PartyMember, Reservation, SeatHold, SeatView};

impl Room {
    pub(super) fn on_control(&mut self, c: Control) {
        match c {
            Control::Join {
                link,
                req,
                reservation,
                account,
                held,
                team,
                reply,
            } => self.on_join(link, req, reservation, account, held, team, reply),
            Control::Leave {
                player,
                session,
                reply,
            } => self.on_leave(player, session, reply),
            Control::Detach { player, session } => self.on_detach(player, session),
            Control::Resume {
                player,
                token,
                link,
                held,
                reply,
            } => self.on_resume(player, token, link, held, reply),
            Control::Chat {
                player,
                session,
                name,
                text,
                reply,
            } => self.on_chat(player, session, name, text, reply),
            Control::Inspect { reply } => self.on_inspect(reply),
            Control::Party { reply } => self.on_party(reply),
            Control::Spectate {
                link,
                req,
                watching,
                reply,
            } => self.on_spectate(link, req, watching, reply),
        }
    }

    /// Seats a player, or hands it the seat its account already holds here.
    #[allow(clippy::too_many_arguments)] // the fields of `Control::Join`, taken apart
    fn on_join(
        &mut self,
        link: SessionLink,
        req: u32,
        reservation: Reservation,
        account: Option<u64>,
        held: SeatHold,
        team: Option<u32>,
        reply: oneshot::Sender<Result<PlayerId, CommandError>>,
    ) {
        // An account never holds two seats in one room: a join that lands where
        // the account already sits (a connection it lost and could not resume, say
        // because the `welcome` with its new resume token never arrived; or another
        // device) takes that seat over, as a resume would.
        let sitting = account
            .and_then(|a| self.seats.iter().find(|s| s.account == Some(a)))
            .map(|s| s.id);
        if let Some(player) = sitting {
            // The seat is counted already: the one reserved for the join goes back.
            drop(reservation);
            self.take_over(
                player,
                link,
                held,
                req,
                "the seat was taken by a new connection of the same account",
            );
            if reply.send(Ok(player)).is_err() {
                self.set_away(player);
            }
            return;
        }
        // Dropping the reservation on a refusal frees the seat it held.
        if self.seats.len() >= self.handle.max_players {
            let _ = reply.send(Err(CommandError::new(
                ErrorCode::RoomFull,
                "the room is full",
            )));
            return;
        }
        // The matchmaker stops reserving seats in a locked room, but a join reserved
        // before the game locked it arrives after.
        if self.handle.info.is_locked() {
            let _ = reply.send(Err(CommandError::new(
                ErrorCode::RoomLocked,
                "the room is locked and takes no joins",
            )));
            return;
        }
        let id = self.next_player;
        let team = self.pick_team(team);
        let mut control = RoomControl::new();
        let joined = self.game.join_with(
            id,
            &mut JoinContext::new(team, self.seats.len(), &mut control),
        );
        self.apply_control(control);
        if let Some(out) = self.recording.as_mut().and_then(RoomRecording::records) {
            rally_record::encode::join(out, id, team, joined.is_ok());
        }
        if let Err(refusal) = joined {
            let _ = reply.send(Err(CommandError::new(ErrorCode::JoinRefused, refusal.0)));
            return;
        }
        self.next_player += 1;
        reservation.keep();
        link.send(Outbound::Msg(self.joined(req, id, team)));
        let token = link.resume_token();
        if let Some(t) = token {
            self.env.resume.insert(t, self.handle.clone(), id, account);
        }
        let session = link.session_id;
        self.seats.push(Seat {
            id,
            link: Some(link),
            token,
            away_until: None,
            last_seq: 0,
            account,
            session,
            held,
            team,
        });
        self.count_players();
        if !self.started && self.seats.len() >= self.rules.min() {
            self.started = true;
            if let Some(out) = self.recording.as_mut().and_then(RoomRecording::records) {
                rally_record::encode::start(out);
            }
            let mut control = RoomControl::new();
            self.game.start(&mut control);
            self.apply_control(control);
        }
        if reply.send(Ok(id)).is_ok() {
            if let Some(a) = account {
                self.players.push((id, a));
            }
        } else {
            // The join was abandoned (its command timed out): undo it and say so.
            self.notify(
                id,
                ServerMessage::RoomClosed {
                    room_id: self.handle.id,
                    reason: "the join did not complete in time".into(),
                },
            );
            self.remove(id);
        }
    }

    /// Frees a player's seat if `session` still holds it.
    fn on_leave(&mut self, player: PlayerId, session: u64, reply: Option<oneshot::Sender<()>>) {
        // Only the seat's own session frees it: a connection the seat was resumed
        // away from does not free it for the one that took it.
        if self.seat(player).is_some_and(|s| s.session == session) {
            self.remove(player);
        }
        if let Some(r) = reply {
            let _ = r.send(());
        }
    }

    /// The player's connection dropped: keep the seat for the reconnect grace.
    fn on_detach(&mut self, player: PlayerId, session: u64) {
        if self.seat(player).is_some_and(|s| s.held_by(session)) {
            self.set_away(player);
        }
    }

    /// A new connection presenting the seat's token takes it back.
    fn on_resume(
        &mut self,
        player: PlayerId,
        token: ResumeToken,
        link: SessionLink,
        held: SeatHold,
        reply: oneshot::Sender<Result<(), Refusal>>,
    ) {
        let Some(seat) = self.seat(player) else {
            let _ = reply.send(Err(Refusal::new("the seat is no longer held")));
            return;
        };
        if seat.token != Some(token) {
            // Used already: an earlier resume replaced it with its own token.
            let _ = reply.send(Err(Refusal::new("the resume token was already used")));
            return;
        }
        self.take_over(
            player,
            link,
            held,
            0,
            "the seat was resumed by a new connection",
        );
        if reply.send(Ok(())).is_err() {
            self.set_away(player);
        }
    }

    /// Says a line to everyone in the room if `session` still holds the seat.
    fn on_chat(
        &mut self,
        player: PlayerId,
        session: u64,
        name: String,
        text: String,
        reply: oneshot::Sender<bool>,
    ) {
        let said = self.seat(player).is_some_and(|s| s.held_by(session));
        if said {
            let line = ServerMessage::ChatLine {
                room_id: self.handle.id,
                player_id: player,
                name,
                text,
            };
            for seat in &self.seats {
                if let Some(link) = &seat.link {
                    if !link.send(Outbound::Msg(line.clone())) {
                        self.gone.push(seat.id);
                    }
                }
            }
            self.mark_gone_away();
        }
        let _ = reply.send(said);
    }

    /// The team for a new seat: the one asked for if the kind has it, else the team with
    /// the fewest players (the lowest numbered on a tie); 0 when the kind has no teams.
    fn pick_team(&self, asked: Option<u32>) -> u32 {
        let teams = self.rules.team_count();
        if teams == 0 {
            return 0;
        }
        if let Some(t) = asked.filter(|t| (1..=teams).contains(t)) {
            return t;
        }
        (1..=teams)
            .min_by_key(|t| self.seats.iter().filter(|s| s.team == *t).count())
            .unwrap_or(1)
    }

    /// Adds a spectator, which hears `spectating` before the next state.
    fn on_spectate(
        &mut self,
        link: SessionLink,
        req: u32,
        watching: CancellationToken,
        reply: oneshot::Sender<bool>,
    ) {
        self.spectators.retain(|s| !s.watching.is_cancelled());
        if self.spectators.len() >= MAX_SPECTATORS {
            let _ = reply.send(false);
            return;
        }
        link.send(Outbound::Msg(ServerMessage::Spectating {
            req,
            room_id: self.handle.id,
            kind: self.handle.kind.to_string(),
            tick_hz: (1.0 / self.env.tick_period.as_secs_f64()).round() as u32,
        }));
        if reply.send(true).is_ok() {
            self.spectators.push(Spectator { link, watching });
        }
    }

    /// Describes the seats for the admin API.
    fn on_inspect(&mut self, reply: oneshot::Sender<Vec<SeatView>>) {
        let now = Instant::now();
        let seats = self
            .seats
            .iter()
            .map(|s| SeatView {
                player_id: s.id,
                session_id: s.link.as_ref().map(|l| l.session_id),
                last_seq: s.last_seq,
                away_for: s.away_until.map(|t| t.saturating_duration_since(now)),
                account: s.account,
                team: s.team,
            })
            .collect();
        let _ = reply.send(seats);
    }

    /// The connected players (a player away for a reconnect cannot be queued: nothing
    /// could tell it of its match).
    fn on_party(&mut self, reply: oneshot::Sender<Vec<PartyMember>>) {
        let party = self
            .seats
            .iter()
            .filter_map(|s| {
                s.link.as_ref().map(|link| PartyMember {
                    player_id: s.id,
                    link: link.clone(),
                    account: s.account,
                })
            })
            .collect();
        let _ = reply.send(party);
    }

    /// A new connection takes `player`'s seat, and gets `joined` with `req`: the
    /// connection that held it, if any (a half-open one the server has not noticed yet,
    /// or another of the account's), is told the room closed for it, `why`; the seat's
    /// resume token becomes the new connection's.
    fn take_over(
        &mut self,
        player: PlayerId,
        link: SessionLink,
        held: SeatHold,
        req: u32,
        why: &str,
    ) {
        let room_id = self.handle.id;
        let Some(team) = self.seat(player).map(|s| s.team) else {
            return;
        };
        let joined = self.joined(req, player, team);
        let Some(seat) = self.seat(player) else {
            return;
        };
        if let Some(old) = seat.link.take() {
            old.ctl.give_back_lend(room_id, player);
            old.send(Outbound::Msg(ServerMessage::RoomClosed {
                room_id,
                reason: why.into(),
            }));
        }
        // The displaced session is in no room from now on.
        std::mem::replace(&mut seat.held, held).cancel();
        seat.session = link.session_id;
        let old_token = std::mem::replace(&mut seat.token, link.resume_token());
        let account = seat.account;
        seat.away_until = None;
        link.send(Outbound::Msg(joined));
        let new_token = seat.token;
        seat.link = Some(link);
        if let Some(t) = old_token {
            self.env.resume.remove(&t);
        }
        if let Some(t) = new_token {
            self.env
                .resume
                .insert(t, self.handle.clone(), player, account);
        }
    }
}
