//! Incremental UTF-8 validation for WebSocket text, which may arrive split anywhere:
//! across fragments of a message, and across reads of one frame.
//!
//! The bulk of each piece goes through `std::str::from_utf8` (fast, and the reference);
//! only a character cut at a piece boundary is carried to the next piece, as the range the
//! next byte must fall in (Unicode 15, table 3-7, which also rules out surrogates,
//! overlong forms and code points above U+10FFFF).

use super::WsError;

/// Where validation stands between two pieces of one text message. `Copy` and three
/// bytes, so peeking ahead is a copy, not an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Utf8Validator {
    /// Continuation bytes the current character still needs (0: between characters).
    need: u8,
    /// Smallest allowed value of the next byte.
    lo: u8,
    /// Largest allowed value of the next byte.
    hi: u8,
}

impl Utf8Validator {
    /// Between characters, at the start of a message.
    pub(crate) const fn new() -> Self {
        Utf8Validator {
            need: 0,
            lo: 0x80,
            hi: 0xBF,
        }
    }

    /// Checks the next piece of the message; a byte that cannot continue valid UTF-8 fails
    /// at once, a character cut at the end of `piece` is carried over.
    pub(crate) fn feed(&mut self, piece: &[u8]) -> Result<(), WsError> {
        let mut at = 0;
        while self.need > 0 {
            let Some(&b) = piece.get(at) else {
                return Ok(());
            };
            self.step(b)?;
            at += 1;
        }
        let rest = &piece[at..];
        match std::str::from_utf8(rest) {
            Ok(_) => Ok(()),
            // `error_len() == None`: the bytes after `valid_up_to` are the start of a
            // valid character cut short; anything else is a bad byte.
            Err(e) if e.error_len().is_none() => {
                for &b in &rest[e.valid_up_to()..] {
                    self.step(b)?;
                }
                Ok(())
            }
            Err(_) => Err(WsError::InvalidUtf8),
        }
    }

    /// The message has ended: it must not end inside a character.
    pub(crate) fn finish(&self) -> Result<(), WsError> {
        if self.need == 0 {
            Ok(())
        } else {
            Err(WsError::InvalidUtf8)
        }
    }

    /// Takes one byte.
    fn step(&mut self, b: u8) -> Result<(), WsError> {
        if self.need > 0 {
            if !(self.lo..=self.hi).contains(&b) {
                return Err(WsError::InvalidUtf8);
            }
            *self = Utf8Validator {
                need: self.need - 1,
                ..Utf8Validator::new()
            };
            return Ok(());
        }
        let (need, lo, hi) = match b {
            0x00..=0x7F => return Ok(()),
            0xC2..=0xDF => (1, 0x80, 0xBF),
            // No overlong three-byte forms.
            0xE0 => (2, 0xA0, 0xBF),
            // No surrogates (U+D800-U+DFFF).
            0xED => (2, 0x80, 0x9F),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            // No overlong four-byte forms.
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            // Nothing above U+10FFFF.
            0xF4 => (3, 0x80, 0x8F),
            _ => return Err(WsError::InvalidUtf8),
        };
        *self = Utf8Validator { need, lo, hi };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Validates `bytes` cut at every position in `cuts`.
    fn split_valid(bytes: &[u8], cuts: &[usize]) -> bool {
        let mut v = Utf8Validator::new();
        let mut from = 0;
        for &c in cuts.iter().chain(std::iter::once(&bytes.len())) {
            let c = c.clamp(from, bytes.len());
            if v.feed(&bytes[from..c]).is_err() {
                return false;
            }
            from = c;
        }
        v.finish().is_ok()
    }

    #[test]
    fn edge_cases_match_std() {
        let cases: &[&[u8]] = &[
            b"",
            "κόσμε".as_bytes(),
            &[0xED, 0x9F, 0xBF],       // U+D7FF, last before the surrogates
            &[0xED, 0xA0, 0x80],       // U+D800, a surrogate
            &[0xF4, 0x8F, 0xBF, 0xBF], // U+10FFFF
            &[0xF4, 0x90, 0x80, 0x80], // U+110000
            &[0xC0, 0xAF],             // overlong '/'
            &[0xE0, 0x80, 0xAF],       // overlong '/'
            &[0xF0, 0x8F, 0xBF, 0xBF], // overlong U+FFFF
            &[0xCE],                   // cut short
            &[0xFE],
            &[0xEF, 0xBF, 0xBF], // U+FFFF is allowed
        ];
        for bytes in cases {
            let want = std::str::from_utf8(bytes).is_ok();
            for cut in 0..=bytes.len() {
                assert_eq!(split_valid(bytes, &[cut]), want, "{bytes:x?} cut at {cut}");
            }
            let every: Vec<usize> = (0..bytes.len()).collect();
            assert_eq!(split_valid(bytes, &every), want, "{bytes:x?} bytewise");
        }
    }

    #[test]
    fn a_bad_byte_fails_the_piece_that_carries_it() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[0xCE, 0xBA, 0xE1]).is_ok());
        assert!(v.feed(&[0xBD]).is_ok());
        // 0xED 0xA0 would start a surrogate: refused at the second byte, without the third.
        assert!(v.feed(&[0xBD, 0xED]).is_ok());
        assert_eq!(v.feed(&[0xA0]), Err(WsError::InvalidUtf8));
    }

    proptest! {
        #[test]
        fn any_split_agrees_with_std(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            cuts in proptest::collection::vec(0usize..64, 0..6),
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(split_valid(&bytes, &cuts), std::str::from_utf8(&bytes).is_ok());
        }

        #[test]
        fn valid_text_split_anywhere_passes(
            text in "\\PC{0,40}",
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert!(split_valid(text.as_bytes(), &cuts));
        }
    }
}
