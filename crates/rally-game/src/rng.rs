//! The room's seeded random number generator, and the state hash games report.
//!
//! A game draws every random number from [`Rng`] (handed to it by [`Tick::rng`](crate::Tick::rng)),
//! never from the OS or a thread-local source, so that a match replays from its seed and
//! its inputs alone. The generator is SplitMix64: one `u64` of state, a few arithmetic
//! operations per draw, and the same sequence on every platform and Rust version.
//!
//! [`StateHasher`] is FNV-1a over the bytes a game feeds it: stable across builds and
//! platforms, unlike `std`'s `DefaultHasher`, whose algorithm may change between releases,
//! which would make old recordings fail to verify.

/// A seeded, deterministic pseudo-random number generator (SplitMix64). Not for secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A float in `0.0..1.0` (24 random bits: every value equally likely).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// A number in `0..n` (0 when `n` is 0), without the bias of a plain modulo.
    pub fn below(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift: unbiased after rejecting the few low products.
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u64::from(self.next_u32()) * u64::from(n);
            if (m as u32) >= threshold {
                return (m >> 32) as u32;
            }
        }
    }
}

/// FNV-1a, 64 bits: a state hash that stays the same across builds and platforms.
#[derive(Debug, Clone)]
pub struct StateHasher(u64);

impl Default for StateHasher {
    fn default() -> Self {
        StateHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl StateHasher {
    /// A hasher with nothing fed yet.
    pub fn new() -> Self {
        StateHasher::default()
    }

    /// Feeds bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// Feeds an integer (little-endian bytes, so the hash is the same on every platform).
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Feeds a float by its bits: a hash of the exact value, as a replay must reproduce it.
    pub fn f32(&mut self, v: f32) -> &mut Self {
        self.bytes(&v.to_bits().to_le_bytes())
    }

    /// The hash of everything fed.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence_and_another_seed_another() {
        let (mut a, mut b, mut c) = (Rng::new(7), Rng::new(7), Rng::new(8));
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        // SplitMix64's published first output for seed 0, so the algorithm never drifts
        // (a drift would make every old recording fail to verify).
        assert_eq!(Rng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn below_and_floats_stay_in_range() {
        let mut r = Rng::new(1);
        for n in [1, 2, 3, 10, 1000, u32::MAX] {
            for _ in 0..200 {
                assert!(r.below(n) < n);
            }
        }
        assert_eq!(r.below(0), 0);
        for _ in 0..1000 {
            let f = r.next_f32();
            assert!((0.0..1.0).contains(&f));
        }
    }

    #[test]
    fn fnv_matches_its_reference_value() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (the published test vector).
        assert_eq!(
            StateHasher::new().bytes(b"a").finish(),
            0xaf63_dc4c_8601_ec8c
        );
        assert_ne!(
            StateHasher::new().f32(1.0).finish(),
            StateHasher::new().f32(-1.0).finish()
        );
    }
}
