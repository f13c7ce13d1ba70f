//! One bot's life: connect (from its source address, if the run has them), join
//! (logging in first if the server wants it; the time from the start of the connect to
//! `joined` is its join time), send an arena input every interval, time each input
//! until the first state that shows it applied, and close at the deadline.
//!
//! A bot is one task owning one [`Connection`]: no task, lock or channel besides, and
//! states are read in place, so thousands of bots fit on one core.

use std::sync::Arc;
use std::time::Duration;

use rally_client::{Config, Connection, Error, ErrorCode, Message};
use tokio::time::{self, Instant, MissedTickBehavior};

use crate::config::{BotsConfig, Entry};
use crate::stats::Stats;

/// Inputs remembered per bot: at 20 Hz, 1.6 s of inputs in flight, far more than a
/// healthy server ever leaves unanswered. Older inputs go unmeasured.
const RING: usize = 32;

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

/// What kind of error `e` is, for counting: short and stable.
pub(crate) fn kind(e: &Error) -> String {
    match e {
        Error::Io(io) => format!("io:{:?}", io.kind()),
        Error::Timeout(_) => "timeout".to_owned(),
        Error::Server { code, .. } => code.name().to_owned(),
        Error::UnknownServerError { code, .. } => format!("code_{code}"),
        Error::Protocol(_) => "protocol".to_owned(),
        Error::PeerClosed => "peer_closed".to_owned(),
        Error::ConnectionLost => "connection_lost".to_owned(),
        Error::Closed => "closed".to_owned(),
        Error::Backpressure => "backpressure".to_owned(),
        Error::TooLarge { .. } => "too_large".to_owned(),
        Error::InvalidPayload => "invalid_payload".to_owned(),
        Error::Config(_) => "config".to_owned(),
        Error::AllFailed(_) => "all_failed".to_owned(),
        _ => "other".to_owned(),
    }
}

/// Runs bot `id` from `start` until `deadline`, reporting into `stats`.
pub(crate) async fn run(
    id: u32,
    cfg: Arc<BotsConfig>,
    stats: Arc<Stats>,
    start: Instant,
    deadline: Instant,
) {
    time::sleep_until(start).await;
    if Instant::now() >= deadline {
        return;
    }
    let mut config = Config::new(cfg.addr.clone())
        .transport(cfg.transport)
        .client_name(format!("bot-{id}"));
    if let Some(sources) = &cfg.sources {
        config = config.source_ip(sources.nth(u64::from(id)));
    }
    let connecting = Instant::now();
    let mut conn = match time::timeout_at(deadline, Connection::connect(&config)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return stats.error(format!("connect:{}", kind(&e))),
        Err(_) => return stats.error("connect:unfinished"),
    };
    drop(config);
    match time::timeout_at(deadline, enter(&mut conn, id, &cfg, &stats)).await {
        Ok(Some(())) => {
            stats.record_join(connecting.elapsed());
            Stats::add(&stats.connected, 1);
            Stats::add(&stats.active, 1);
            play(id, &cfg, &stats, &mut conn, deadline).await;
            stats
                .active
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(None) => {}
        Err(_) => stats.error("join:unfinished"),
    }
    // A connection that is over already (counted) closes at once.
    match time::timeout(cfg.close_timeout, conn.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(Error::Timeout(_))) | Err(_) => stats.error("close:timeout"),
        Ok(Err(e)) => stats.error(format!("close:{}", kind(&e))),
    }
}

/// Takes a seat the way the run asks (`cfg.entry`), logging in first as the bot's own
/// device when the server requires logins (as `rally serve` does by default); `None`
/// after counting the error.
async fn enter(conn: &mut Connection, id: u32, cfg: &BotsConfig, stats: &Stats) -> Option<()> {
    match seat(conn, cfg).await {
        Ok(_room) => return Some(()),
        Err(e) if e.code() == Some(ErrorCode::Unauthorized) => {}
        Err(e) => {
            stats.error(format!("join:{}", kind(&e)));
            return None;
        }
    }
    // The same device id on every run: each bot is one account, created at its first run.
    if let Err(e) = conn.login("device", &format!("rally-bot-{id:06}")).await {
        stats.error(format!("login:{}", kind(&e)));
        return None;
    }
    match seat(conn, cfg).await {
        Ok(_room) => Some(()),
        Err(e) => {
            stats.error(format!("join:{}", kind(&e)));
            None
        }
    }
}

/// One request for a seat, as `cfg.entry` says.
async fn seat(conn: &mut Connection, cfg: &BotsConfig) -> Result<rally_client::Room, Error> {
    match &cfg.entry {
        Entry::Join => conn.join(&cfg.room_kind).await,
        Entry::Create => conn.create(&cfg.room_kind, &[], true).await,
        Entry::Code(code) => conn.join_by_code(code).await,
    }
}

/// The steady state: an input every interval, states timed against them, until the
/// deadline, or until the room or the connection ends. One `select!` serves both, in a
/// random order each time, so neither a busy socket nor the ticker can starve the other.
/// The ticker also keeps the deadline (the first tick at or past it ends the bot, at most
/// one interval late): a timer of its own would be polled at every state for nothing.
async fn play(id: u32, cfg: &BotsConfig, stats: &Stats, conn: &mut Connection, deadline: Instant) {
    let joined = Instant::now();
    let warm = joined + cfg.warmup;
    // Bots that join together would send right after the same room tick, and each input
    // would wait nearly a whole tick: each bot starts at its own point of the interval
    // instead, as real players do, so the latency measured is the scenario's (about 25
    // ms median), not an artifact of the ramp.
    let first = joined + cfg.input_interval.mul_f64(spread(id));
    let mut ticker = time::interval_at(first, cfg.input_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut times = SendTimes::new();
    let mut payload = Vec::with_capacity(16);
    let mut seq: u32 = 0;
    // Each bot wanders on its own circle: a heading that turns a little every input.
    let phase = id as f32 * 0.618;
    loop {
        tokio::select! {
            at = ticker.tick() => {
                if at >= deadline {
                    return;
                }
                seq += 1;
                let heading = phase + seq as f32 * 0.05;
                payload.clear();
                arena::encode_input(&mut payload, heading.cos(), heading.sin());
                let now = Instant::now();
                match conn.send_input(seq, &payload) {
                    Ok(()) => {
                        Stats::add(&stats.inputs_sent, 1);
                        times.sent(seq, (now >= warm).then_some(now));
                    }
                    Err(e) => {
                        times.sent(seq, None);
                        stats.error(format!("input:{}", kind(&e)));
                    }
                }
                // Written now, without waiting; what the socket cannot take yet is
                // written by `recv` as soon as it can.
                if let Err(e) = conn.try_flush() {
                    stats.error(format!("disconnect:{}", kind(&e)));
                    return;
                }
            }
            msg = conn.recv() => match msg {
                Ok(Message::State(state)) => {
                    Stats::add(&stats.states_received, 1);
                    times.acked(state.last_seq, Instant::now(), |d| stats.record(id, d));
                }
                Ok(Message::Error(e)) => stats.error(format!("server:{}", kind(&e))),
                Ok(Message::RoomClosed { .. }) => {
                    stats.error("room_closed");
                    return;
                }
                Ok(Message::Shutdown { .. }) => {
                    stats.error("shutdown");
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    stats.error(format!("disconnect:{}", kind(&e)));
                    return;
                }
            },
        }
    }
}

/// Bot `id`'s point in the input interval, in `0.0..1.0`: the golden-ratio sequence, so
/// the 16 bots of a room (consecutive ids) fall far apart, whatever the count.
fn spread(id: u32) -> f64 {
    (f64::from(id) * 0.618_033_988_749_895).fract()
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
}
