//! Resume tokens as the outbox holds them ([`ResumeToken`]): 16 bytes, derived per
//! session from a per-process key, shown to clients as 32 hex characters.

use std::sync::OnceLock;

/// The key resume tokens are derived with: 32 random bytes drawn once per process, or
/// `None` if the system had no randomness to give (then no session can resume).
fn resume_key() -> Option<&'static [u8; 32]> {
    static KEY: OnceLock<Option<[u8; 32]>> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).ok().map(|()| key)
    })
    .as_ref()
}

/// Bytes of a resume token (hex-encoded in `welcome`: 32 characters).
const RESUME_TOKEN_BYTES: usize = 16;

/// A resume token: 128 bits, held as bytes (a seat and the token registry each keep one
/// inline; as a hex string it was a 48-byte allocation per seated player). Clients see
/// it as 32 lowercase hex characters. Its `Debug` never shows it: it is a secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ResumeToken([u8; RESUME_TOKEN_BYTES]);

impl ResumeToken {
    /// Session `session_id`'s token: the first 128 bits of SHA-256 over the per-process
    /// key and the session id; `None` without a key.
    pub(crate) fn derive(session_id: u64) -> Option<Self> {
        use sha2::{Digest, Sha256};
        let key = resume_key()?;
        let digest = Sha256::new()
            .chain_update(key)
            .chain_update(session_id.to_be_bytes())
            .finalize();
        let mut bytes = [0u8; RESUME_TOKEN_BYTES];
        bytes.copy_from_slice(&digest[..RESUME_TOKEN_BYTES]);
        Some(ResumeToken(bytes))
    }

    /// The token as sent in `welcome`.
    pub(crate) fn to_hex(self) -> String {
        use std::fmt::Write as _;
        let mut hex = String::with_capacity(RESUME_TOKEN_BYTES * 2);
        for b in self.0 {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }

    /// A token as a client presents it; `None` unless it is 32 hex characters (which no
    /// registered token can then match).
    pub(crate) fn parse(hex: &str) -> Option<Self> {
        let hex = hex.as_bytes();
        if hex.len() != RESUME_TOKEN_BYTES * 2 {
            return None;
        }
        let mut bytes = [0u8; RESUME_TOKEN_BYTES];
        for (b, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| char::from(c).to_digit(16);
            *b = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
        }
        Some(ResumeToken(bytes))
    }
}

impl std::fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeToken(..)")
    }
}
