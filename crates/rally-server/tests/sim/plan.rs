//! What happens in one seed's run, decided up front from the seed: who plays when, which
//! faults hit whom, and how each player's story ends.
//!
//! Each player's faults follow one another (they never overlap), so every fault's
//! expected outcome is known: a drop shorter than the grace must resume, a drop longer
//! than it must not.

use std::time::Duration;

use crate::Params;

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.between(lo, hi))
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.between(1, 100) <= percent
    }

    /// A new generator for a part of the run, independent of how much this one is used later.
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }
}

/// Something a player does to its own connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Close the socket without a `leave` and come back after `away` with the resume token.
    Drop { away: Duration },
    /// `leave` the room, and `join` again after `rejoin`.
    Leave { rejoin: Duration },
}

/// Something the network does to one player's link with the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every segment is lost (the connection breaks for good) until `Repair`.
    Partition,
    Repair,
    /// Every segment waits until `Release` (a stall TCP would survive).
    Hold,
    Release,
    /// The link's latency varies up to this much (ordered: TCP sequencing).
    Latency(Duration),
}

/// How a player's story ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `leave`, wait for `left`, close: the seat is freed at once.
    Leave,
    /// Close without a word and never come back: the seat is held for the grace, then freed.
    Vanish,
    /// The network to the player breaks for good (the client gives up on its own).
    Partitioned,
}

#[derive(Debug, Clone)]
pub struct PlayerPlan {
    pub account: u64,
    pub start: Duration,
    pub end: Duration,
    pub ending: End,
    /// The player's own acts, in time order.
    pub acts: Vec<(Duration, Act)>,
    /// Its behaviour between acts (chat, inputs, timings).
    pub rng: Rng,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub players: Vec<PlayerPlan>,
    /// Network faults, in time order, by player index.
    pub faults: Vec<(Duration, usize, Fault)>,
    /// The normal latency bound of every link.
    pub max_latency: Duration,
}

impl Plan {
    pub fn new(seed: u64, p: &Params) -> Plan {
        let mut rng = Rng::new(seed);
        let count = rng.between(p.min_players, p.max_players) as usize;
        let max_latency = rng.ms(2, 40);
        let grace = p.grace.as_millis() as u64;
        let mut players = Vec::with_capacity(count);
        let mut faults = Vec::new();
        for i in 0..count {
            let start = rng.ms(0, 800);
            let end = start + rng.ms(p.min_life_ms, p.max_life_ms);
            let ending = match rng.between(0, 9) {
                0..=4 => End::Leave,
                5..=7 => End::Vanish,
                _ => End::Partitioned,
            };
            let mut acts = Vec::new();
            let mut t = start + rng.ms(600, 1500);
            while t + Duration::from_millis(300) < end {
                let took = match rng.between(0, 9) {
                    // A drop the grace covers: the player must get its seat back.
                    0 | 1 => {
                        let away = rng.ms(0, grace.saturating_sub(700));
                        acts.push((t, Act::Drop { away }));
                        away
                    }
                    // A drop past the grace: the seat must be gone by then.
                    2 => {
                        let away = rng.ms(grace + 300, grace + 1500);
                        acts.push((t, Act::Drop { away }));
                        away
                    }
                    3 => {
                        let rejoin = rng.ms(0, 600);
                        acts.push((t, Act::Leave { rejoin }));
                        rejoin
                    }
                    4 | 5 => {
                        let d = rng.ms(100, 2500);
                        faults.push((t, i, Fault::Partition));
                        faults.push((t + d, i, Fault::Repair));
                        d
                    }
                    6 | 7 => {
                        let d = rng.ms(50, 1500);
                        faults.push((t, i, Fault::Hold));
                        faults.push((t + d, i, Fault::Release));
                        d
                    }
                    _ => {
                        let d = rng.ms(200, 1500);
                        faults.push((t, i, Fault::Latency(rng.ms(100, 400))));
                        faults.push((t + d, i, Fault::Latency(max_latency)));
                        d
                    }
                };
                t += took + rng.ms(300, 1500);
            }
            if ending == End::Partitioned {
                faults.push((end, i, Fault::Partition));
            }
            players.push(PlayerPlan {
                account: i as u64 + 1,
                start,
                end,
                ending,
                acts,
                rng: rng.fork(),
            });
        }
        faults.sort_by_key(|(t, i, _)| (*t, *i));
        Plan {
            players,
            faults,
            max_latency,
        }
    }

    /// Takes out every partition and hold that would be in force at some time in
    /// `from..=to` (latency changes stay).
    pub fn calm(&mut self, from: Duration, to: Duration) {
        let mut keep = vec![true; self.faults.len()];
        let mut down_since: Vec<Option<(usize, Duration)>> = vec![None; self.players.len()];
        for (n, &(t, i, fault)) in self.faults.iter().enumerate() {
            match fault {
                Fault::Partition | Fault::Hold => down_since[i] = Some((n, t)),
                Fault::Repair | Fault::Release => {
                    if let Some((start, s)) = down_since[i].take() {
                        if s <= to && t >= from {
                            keep[start] = false;
                            keep[n] = false;
                        }
                    }
                }
                Fault::Latency(_) => {}
            }
        }
        for (start, s) in down_since.into_iter().flatten() {
            if s <= to {
                keep[start] = false;
            }
        }
        let mut n = 0;
        self.faults.retain(|_| {
            n += 1;
            keep[n - 1]
        });
    }

    /// Whether some player's link is partitioned or held at some time in `from..=to`.
    pub fn link_down_between(&self, from: Duration, to: Duration) -> bool {
        let mut down_since: Vec<Option<Duration>> = vec![None; self.players.len()];
        for &(t, i, fault) in &self.faults {
            match fault {
                Fault::Partition | Fault::Hold => down_since[i] = Some(t),
                Fault::Repair | Fault::Release => {
                    if down_since[i].take().is_some_and(|s| s <= to && t >= from) {
                        return true;
                    }
                }
                Fault::Latency(_) => {}
            }
        }
        // Never repaired: down from then on.
        down_since.iter().flatten().any(|s| *s <= to)
    }

    /// When the last player's story ends.
    pub fn last_end(&self) -> Duration {
        self.players.iter().map(|p| p.end).max().unwrap_or_default()
    }
}
