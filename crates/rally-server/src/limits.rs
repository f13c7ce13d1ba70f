//! Rate limits: per connection (inputs, and every other message) and per client address
//! (connections held, new connections per second).
//!
//! Per connection, two GCRA budgets kept as plain numbers (56 bytes a session); per
//! address, `governor`'s keyed GCRA limiter. Both read tokio's clock, so that paused-time
//! tests and simulations see the same limits as a real server.
//!
//! - **Per connection.** Inputs may arrive at `input_rate` per second, everything else a
//!   client sends after `hello` (requests, `ping`, WebSocket pings) at `command_rate`;
//!   inputs with a burst of one second's worth, commands with a burst of
//!   [`COMMAND_BURST_SECONDS`] seconds' worth, so that an ordinary client start (login, set
//!   name, a profile read, a few writes and reads: 11 requests in 0.1 s, seen from an
//!   independent client) is not refused; the sustained rate is unchanged, so a flood is
//!   throttled and closed as before, only after a larger first burst. A message past its limit is refused: an input is
//!   dropped, a request is answered `RATE_LIMITED`, a `ping` is not answered. Refusals are
//!   themselves limited: a connection may have one second's worth of messages refused, and
//!   that allowance refills at a fifth of the rate. A client slightly over its rate is only
//!   throttled; one that keeps going (at about 1.2x its rate or more) is closed with
//!   `RATE_LIMITED` within seconds.
//! - **Per address.** At most `max_connections_per_ip` connections from one address at a
//!   time, and `connection_rate_per_ip` new ones per second (burst: one second's worth).
//!   IPv6 clients are counted by their /64 prefix, which is what one host usually gets.
//!   A connection past either limit is told `RATE_LIMITED` and closed at once.
//!
//! Infra floor: imports only the config.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::config::Config;

/// governor's clock, read from tokio's: pausing or simulating tokio's time moves it too.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> Self::Instant {
        tokio::time::Instant::now().into_std()
    }
}

type Keyed =
    RateLimiter<IpAddr, HashMapStateStore<IpAddr>, TokioClock, NoOpMiddleware<std::time::Instant>>;

/// How refusals refill, relative to the rate: a fifth.
const STRIKE_REFILL_DIVISOR: u32 = 5;
/// How often a client is told that inputs or pings were dropped (requests are always
/// answered).
const WARN_EVERY: Duration = Duration::from_secs(1);
/// The keyed limiter forgets idle addresses every this many admissions.
const RETAIN_EVERY: u32 = 1024;

/// Seconds' worth of commands a connection may send at once (see the module docs).
pub(crate) const COMMAND_BURST_SECONDS: u32 = 3;

/// `rate` per second with a burst of one second's worth.
fn per_second(rate: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(rate.max(1)).unwrap_or(NonZeroU32::MIN))
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the limit: handle it.
    Allow,
    /// Over the limit: refuse it; `warn` says whether a message-less refusal (an input, a
    /// ping) should be reported to the client this time.
    Refuse { warn: bool },
    /// Over the limit for too long: close the connection with `RATE_LIMITED`.
    Close,
}

/// Which of a connection's two budgets a message draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    /// `input`: `input_rate`.
    Input,
    /// Everything else after `hello`: `command_rate`.
    Command,
}

/// Nanoseconds in a second.
const NANOS: u64 = 1_000_000_000;

/// One GCRA cell (the algorithm `governor` uses, kept as one number): `burst` events at
/// once, refilled one every `interval` ns. `tat` is the theoretical arrival time of the
/// next event, in ns since the owner's epoch; an event is allowed when it would not push
/// `tat` more than `burst` intervals past now.
fn admit(tat: &mut u64, now: u64, interval: u64, burst: u64) -> bool {
    let next = (*tat).max(now).saturating_add(interval);
    if next - now > burst.saturating_mul(interval) {
        return false;
    }
    *tat = next;
    true
}

/// A budget's messages' cell: `rate` per second, `rate * burst_seconds` at once.
fn allow(rate: u32, burst_seconds: u32, tat: &mut u64, now: u64) -> bool {
    let rate = u64::from(rate);
    let burst = rate.saturating_mul(u64::from(burst_seconds));
    admit(tat, now, NANOS / rate, burst)
}

/// The input budget's cell, lent with a seated session's reads to its room
/// (`outbox::Lend`): the room admits inputs against it exactly as the session would, and
/// the session takes it back with the reads. Refusals and their strikes stay the
/// session's: the room hands an input it may not admit back to the session unread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InputCell {
    rate: u32,
    burst_seconds: u32,
    tat: u64,
}

impl InputCell {
    /// Counts one input at `now` (the time since the server's epoch, as for
    /// [`MessageLimits::check`]); false when it is over `input_rate`.
    pub(crate) fn allow(&mut self, now: Duration) -> bool {
        let now = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        allow(self.rate, self.burst_seconds, &mut self.tat, now)
    }
}

/// One budget: its rate, its cell and its allowance of refusals.
#[derive(Debug)]
struct Bucket {
    rate: u32,
    /// Seconds' worth of messages allowed at once.
    burst_seconds: u32,
    /// The messages' cell: `rate` per second, `rate * burst_seconds` at once.
    tat: u64,
    /// The refusals' cell: one second's worth at once, refilled at a fifth of the rate.
    strikes: u64,
}

impl Bucket {
    fn new(rate: u32, burst_seconds: u32) -> Self {
        Bucket {
            rate: rate.max(1),
            burst_seconds: burst_seconds.max(1),
            tat: 0,
            strikes: 0,
        }
    }

    fn allow(&mut self, now: u64) -> bool {
        allow(self.rate, self.burst_seconds, &mut self.tat, now)
    }

    fn strike(&mut self, now: u64) -> bool {
        let rate = u64::from(self.rate);
        let interval = (u64::from(STRIKE_REFILL_DIVISOR) * NANOS / rate).max(1);
        admit(&mut self.strikes, now, interval, rate)
    }
}

/// A connection's message limits: two plain GCRA budgets with their refusal allowances,
/// 56 bytes in the session's state (four `governor` limiters took 192).
pub(crate) struct MessageLimits {
    input: Bucket,
    command: Bucket,
    /// The earliest time (ns since `epoch`) the client may be told again about a dropped
    /// input or ping.
    next_warn: u64,
}

impl std::fmt::Debug for MessageLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageLimits")
            .field("input_rate", &self.input.rate)
            .field("command_rate", &self.command.rate)
            .finish_non_exhaustive()
    }
}

impl MessageLimits {
    pub(crate) fn new(config: &Config) -> Self {
        MessageLimits {
            input: Bucket::new(config.effective_input_rate(), 1),
            command: Bucket::new(config.command_rate, COMMAND_BURST_SECONDS),
            next_warn: 0,
        }
    }

    /// The rate of `budget`, per second.
    pub(crate) fn rate(&self, budget: Budget) -> u32 {
        match budget {
            Budget::Input => self.input.rate,
            Budget::Command => self.command.rate,
        }
    }

    /// A copy of the input budget's cell, to lend with the reads.
    pub(crate) fn input_cell(&self) -> InputCell {
        InputCell {
            rate: self.input.rate,
            burst_seconds: self.input.burst_seconds,
            tat: self.input.tat,
        }
    }

    /// The lent cell is back: the inputs the room admitted count as the session's own.
    pub(crate) fn set_input_cell(&mut self, cell: InputCell) {
        self.input.tat = cell.tat;
    }

    /// Counts one message against `budget`, at `now`: the time since any fixed epoch,
    /// the same for every call (the server's: `LiveSessions::clock`).
    pub(crate) fn check(&mut self, budget: Budget, now: Duration) -> Verdict {
        let now = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let bucket = match budget {
            Budget::Input => &mut self.input,
            Budget::Command => &mut self.command,
        };
        if bucket.allow(now) {
            return Verdict::Allow;
        }
        if !bucket.strike(now) {
            return Verdict::Close;
        }
        let warn = now >= self.next_warn;
        if warn {
            let every = u64::try_from(WARN_EVERY.as_nanos()).unwrap_or(NANOS);
            self.next_warn = now.saturating_add(every);
        }
        Verdict::Refuse { warn }
    }
}

/// Why a connection was refused by its address's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddressRefusal {
    /// `max_connections_per_ip` connections from the address are open.
    TooMany(u32),
    /// More than `connection_rate_per_ip` new connections per second.
    TooFast(u32),
}

impl AddressRefusal {
    pub(crate) fn message(&self) -> String {
        match self {
            AddressRefusal::TooMany(n) => format!(
                "too many connections from your address: at most {n} at a time (max_connections_per_ip)"
            ),
            AddressRefusal::TooFast(n) => format!(
                "too many new connections from your address: at most {n} per second (connection_rate_per_ip)"
            ),
        }
    }
}

/// The per-address limits, shared by every listener.
pub(crate) struct AddressLimits {
    max: u32,
    rate: u32,
    /// Open connections per address; an address leaves the map with its last connection.
    open: Mutex<HashMap<IpAddr, u32>>,
    /// New connections per second, per address.
    arrivals: Keyed,
    admitted: AtomicU32,
}

impl std::fmt::Debug for AddressLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressLimits")
            .field("max", &self.max)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// One admitted connection's place in its address's count, given back on drop.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    limits: Arc<AddressLimits>,
    key: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open();
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The address a client is counted under: IPv4 as is (an IPv4-mapped IPv6 address as
/// its IPv4 address), IPv6 by its /64 prefix.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl AddressLimits {
    pub(crate) fn new(config: &Config) -> Arc<Self> {
        Arc::new(AddressLimits {
            max: config.max_connections_per_ip,
            rate: config.connection_rate_per_ip,
            open: Mutex::new(HashMap::new()),
            arrivals: RateLimiter::hashmap_with_clock(
                per_second(config.connection_rate_per_ip),
                TokioClock,
            ),
            admitted: AtomicU32::new(0),
        })
    }

    fn open(&self) -> MutexGuard<'_, HashMap<IpAddr, u32>> {
        // Each critical section is one map update: a poisoned lock is still consistent.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection from `ip`, or says why not.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<AddressSlot, AddressRefusal> {
        let key = address_key(ip);
        if self.admitted.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            // Addresses whose allowance is full again carry no state worth keeping.
            self.arrivals.retain_recent();
            self.arrivals.shrink_to_fit();
        }
        {
            let open = self.open();
            if open.get(&key).copied().unwrap_or(0) >= self.max {
                return Err(AddressRefusal::TooMany(self.max));
            }
        }
        if self.arrivals.check_key(&key).is_err() {
            return Err(AddressRefusal::TooFast(self.rate));
        }
        let mut open = self.open();
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            // Another listener admitted one in between.
            return Err(AddressRefusal::TooMany(self.max));
        }
        *n += 1;
        drop(open);
        Ok(AddressSlot {
            limits: self.clone(),
            key,
        })
    }

    /// Addresses with a connection open now.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.open().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sources;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut s = Sources::new();
        for (k, v) in pairs {
            s = s.flag(k, *v);
        }
        s.load().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_at_its_rate_is_never_refused() {
        let c = config(&[("tick_hz", "20")]);
        let mut limits = MessageLimits::new(&c);
        let epoch = tokio::time::Instant::now();
        assert_eq!(limits.rate(Budget::Input), 40);
        // 20 inputs a second (one per tick) for a minute, and a ping every second.
        for i in 0..1200 {
            assert_eq!(
                limits.check(Budget::Input, epoch.elapsed()),
                Verdict::Allow,
                "input {i}"
            );
            if i % 20 == 0 {
                assert_eq!(
                    limits.check(Budget::Command, epoch.elapsed()),
                    Verdict::Allow
                );
            }
            tokio::time::advance(Duration::from_millis(50)).await;
        }
    }

    #[test]
    fn inputs_a_room_admits_with_the_lent_cell_count_as_the_sessions() {
        let c = config(&[("tick_hz", "20")]);
        let mut limits = MessageLimits::new(&c);
        let now = Duration::from_secs(10);
        // The room admits the whole second's burst (40) with the lent cell, and not one
        // more; back with the session, the cell still has nothing left at that moment.
        let mut cell = limits.input_cell();
        for i in 0..40 {
            assert!(cell.allow(now), "input {i}");
        }
        assert!(!cell.allow(now));
        limits.set_input_cell(cell);
        assert_ne!(limits.check(Budget::Input, now), Verdict::Allow);
        // It refills at the rate, as the session's own would: one more every 25 ms.
        assert_eq!(
            limits.check(Budget::Input, now + Duration::from_millis(25)),
            Verdict::Allow
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_allowed_then_refused_then_closed_if_it_goes_on() {
        let c = config(&[("command_rate", "10")]);
        let mut limits = MessageLimits::new(&c);
        let epoch = tokio::time::Instant::now();
        // A burst of COMMAND_BURST_SECONDS' worth passes at once (an ordinary start).
        for _ in 0..30 {
            assert_eq!(
                limits.check(Budget::Command, epoch.elapsed()),
                Verdict::Allow
            );
        }
        // The next is refused; the client is told once, not for every refusal.
        assert_eq!(
            limits.check(Budget::Command, epoch.elapsed()),
            Verdict::Refuse { warn: true }
        );
        assert_eq!(
            limits.check(Budget::Command, epoch.elapsed()),
            Verdict::Refuse { warn: false }
        );
        // Ten refusals in all are tolerated; the eleventh closes.
        for _ in 0..8 {
            assert!(matches!(
                limits.check(Budget::Command, epoch.elapsed()),
                Verdict::Refuse { .. }
            ));
        }
        assert_eq!(
            limits.check(Budget::Command, epoch.elapsed()),
            Verdict::Close
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slightly_over_is_throttled_not_closed() {
        // 11 messages a second against a limit of 10: one refused a second, while
        // refusals refill at two a second.
        let c = config(&[("command_rate", "10")]);
        let mut limits = MessageLimits::new(&c);
        let epoch = tokio::time::Instant::now();
        let (mut allowed, mut refused) = (0, 0);
        for _ in 0..(11 * 60) {
            match limits.check(Budget::Command, epoch.elapsed()) {
                Verdict::Allow => allowed += 1,
                Verdict::Refuse { .. } => refused += 1,
                Verdict::Close => panic!("closed a client only 10% over its rate"),
            }
            tokio::time::advance(Duration::from_secs(1) / 11).await;
        }
        assert!(refused > 30, "{refused} refused");
        assert!(allowed >= 600, "{allowed} allowed");
    }

    #[tokio::test(start_paused = true)]
    async fn twice_the_rate_is_closed_within_seconds() {
        let c = config(&[("tick_hz", "20")]);
        let mut limits = MessageLimits::new(&c);
        let epoch = tokio::time::Instant::now();
        let start = tokio::time::Instant::now();
        loop {
            if limits.check(Budget::Input, epoch.elapsed()) == Verdict::Close {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "never closed");
            tokio::time::advance(Duration::from_secs(1) / 80).await;
        }
        let after = start.elapsed();
        assert!(after > Duration::from_secs(1), "closed after {after:?}");
    }

    #[test]
    fn a_connections_limits_stay_small() {
        // They are part of every session's state (see the module docs).
        assert!(std::mem::size_of::<MessageLimits>() <= 56);
    }

    #[tokio::test(start_paused = true)]
    async fn the_strikes_refill_at_a_fifth_of_the_rate() {
        let c = config(&[("command_rate", "10")]);
        let mut limits = MessageLimits::new(&c);
        let epoch = tokio::time::Instant::now();
        for _ in 0..30 {
            assert_eq!(
                limits.check(Budget::Command, epoch.elapsed()),
                Verdict::Allow
            );
        }
        for _ in 0..10 {
            assert!(matches!(
                limits.check(Budget::Command, epoch.elapsed()),
                Verdict::Refuse { .. }
            ));
        }
        // Half a second later five messages are allowed again (10/s) and one refusal
        // has come back (2/s): five allows and a refusal, then a close.
        tokio::time::advance(Duration::from_millis(500)).await;
        for _ in 0..5 {
            assert_eq!(
                limits.check(Budget::Command, epoch.elapsed()),
                Verdict::Allow
            );
        }
        assert!(matches!(
            limits.check(Budget::Command, epoch.elapsed()),
            Verdict::Refuse { .. }
        ));
        assert_eq!(
            limits.check(Budget::Command, epoch.elapsed()),
            Verdict::Close
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_explicit_input_rate_overrides_twice_the_tick_rate() {
        let c = config(&[("tick_hz", "30"), ("input_rate", "100")]);
        assert_eq!(MessageLimits::new(&c).rate(Budget::Input), 100);
        let c = config(&[("tick_hz", "30")]);
        assert_eq!(MessageLimits::new(&c).rate(Budget::Input), 60);
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let c = config(&[
            ("max_connections_per_ip", "3"),
            ("connection_rate_per_ip", "100"),
        ]);
        let limits = AddressLimits::new(&c);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let slots: Vec<_> = (0..3).map(|_| limits.admit(a).unwrap()).collect();
        assert_eq!(limits.admit(a).unwrap_err(), AddressRefusal::TooMany(3));
        // Another address is not affected.
        let other = limits.admit(b).unwrap();
        drop(slots);
        assert!(limits.admit(a).is_ok());
        drop(other);
        // Slots given back leave no entry behind.
        assert_eq!(limits.addresses(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn new_connections_per_second_are_limited_per_address() {
        let c = config(&[("connection_rate_per_ip", "5")]);
        let limits = AddressLimits::new(&c);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..5 {
            drop(limits.admit(a).unwrap());
        }
        assert_eq!(limits.admit(a).unwrap_err(), AddressRefusal::TooFast(5));
        assert!(limits.admit("192.0.2.8".parse().unwrap()).is_ok());
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(limits.admit(a).is_ok());
    }

    #[test]
    fn ipv6_hosts_are_counted_by_their_prefix() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(one), address_key(two));
        assert_ne!(address_key(one), address_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
