//! Session tokens: what a login hands the client, and what a later `hello` presents to be
//! that account again without logging in.
//!
//! A token is self-contained and signed, so checking one costs an HMAC and no database
//! round trip. Its bytes, base64url without padding (87 characters):
//!
//! ```text
//! version (1 byte, 1) | account_id (u64, big-endian) | expires_at_ms (u64, big-endian, Unix ms)
//!   | nonce (16 random bytes) | tag (32 bytes)
//! ```
//!
//! `tag` is HMAC-SHA256, keyed with the server's `auth_secret`, over a fixed domain label
//! followed by the 33 bytes before it, so a token is only ever accepted by servers sharing
//! the secret, and a MAC made for some other purpose with the same secret is never a valid
//! token. The tag is checked in constant time before anything in the token is believed.
//! The nonce makes every token distinct, even two issued in the same millisecond.
//!
//! Tokens are bearer secrets: they are never logged, and their `Debug` output is redacted.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::mac::{expires_at, DomainMac, TAG_LEN};

/// The token format this crate issues and accepts.
const VERSION: u8 = 1;
/// Mixed into every tag, so the secret's MACs for other uses are never tokens.
const DOMAIN: &[u8] = b"rally.session-token.v1\0";
const NONCE_LEN: usize = 16;
/// version + account id + expiry + nonce.
const CLAIMS_LEN: usize = 1 + 8 + 8 + NONCE_LEN;
const RAW_LEN: usize = CLAIMS_LEN + TAG_LEN;
/// The length of a token's text: base64 of [`RAW_LEN`] bytes without padding.
pub const TOKEN_LEN: usize = (RAW_LEN * 4).div_ceil(3);

/// Why a token was not accepted. The client is told only that it is not valid (or that it
/// expired); the kind is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token at all: wrong length, not base64url, an unknown format version, or
    /// account id 0.
    #[error("the session token is malformed")]
    Malformed,
    /// The signature does not match: forged, altered, or signed with another secret.
    #[error("the session token's signature is not valid")]
    BadSignature,
    /// Genuine, but past its expiry.
    #[error("the session token has expired")]
    Expired,
    /// The system had no randomness to give for a new token's nonce.
    #[error("no randomness available to issue a session token")]
    NoRandomness,
}

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    /// The account the token logs in as (never 0).
    pub account_id: u64,
    /// When the token stops being accepted, in Unix milliseconds.
    pub expires_at_ms: u64,
}

/// A token just issued, with its expiry for the `session` reply.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token text (base64url, [`TOKEN_LEN`] characters). A secret: never log it.
    pub token: String,
    /// When it expires, in Unix milliseconds.
    pub expires_at_ms: u64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// Issues and verifies session tokens with one secret and one lifetime.
#[derive(Debug, Clone)]
pub struct TokenSigner {
    mac: DomainMac,
    ttl: Duration,
}

/// Milliseconds since the Unix epoch (0 for a clock before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl TokenSigner {
    /// A signer with `secret` (any length; the server requires 32 bytes or more in
    /// production) whose tokens live for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> TokenSigner {
        TokenSigner {
            mac: DomainMac::new(secret, DOMAIN),
            ttl,
        }
    }

    /// How long new tokens live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new token for `account_id` (not 0), expiring `ttl` after `now`.
    pub fn issue(&self, account_id: u64, now: SystemTime) -> Result<IssuedToken, TokenError> {
        if account_id == 0 {
            return Err(TokenError::Malformed);
        }
        let expires_at_ms = expires_at(now, self.ttl);
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| TokenError::NoRandomness)?;
        Ok(self.issue_with(account_id, expires_at_ms, nonce))
    }

    /// A token with every part given: for tests that need a known or past expiry.
    pub fn issue_with(
        &self,
        account_id: u64,
        expires_at_ms: u64,
        nonce: [u8; NONCE_LEN],
    ) -> IssuedToken {
        let mut raw = [0u8; RAW_LEN];
        raw[0] = VERSION;
        raw[1..9].copy_from_slice(&account_id.to_be_bytes());
        raw[9..17].copy_from_slice(&expires_at_ms.to_be_bytes());
        raw[17..CLAIMS_LEN].copy_from_slice(&nonce);
        let tag = self.mac.tag(&raw[..CLAIMS_LEN]);
        raw[CLAIMS_LEN..].copy_from_slice(&tag);
        IssuedToken {
            token: URL_SAFE_NO_PAD.encode(raw),
            expires_at_ms,
        }
    }

    /// The account a token logs in as, if it is genuine and not expired at `now`.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, TokenError> {
        // The length first: no decoding work for something that cannot be a token.
        if token.len() != TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut raw = [0u8; RAW_LEN + 2];
        let n = URL_SAFE_NO_PAD
            .decode_slice(token, &mut raw)
            .map_err(|_| TokenError::Malformed)?;
        if n != RAW_LEN {
            return Err(TokenError::Malformed);
        }
        let (claims, tag) = raw[..RAW_LEN].split_at(CLAIMS_LEN);
        if !self.mac.verify(claims, tag) {
            return Err(TokenError::BadSignature);
        }
        if claims[0] != VERSION {
            return Err(TokenError::Malformed);
        }
        let field = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&claims[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let (account_id, expires_at_ms) = (field(1), field(9));
        if account_id == 0 {
            return Err(TokenError::Malformed);
        }
        if unix_ms(now) >= expires_at_ms {
            return Err(TokenError::Expired);
        }
        Ok(Claims {
            account_id,
            expires_at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn signer() -> TokenSigner {
        TokenSigner::new(SECRET, Duration::from_secs(3600))
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let s = signer();
        let now = SystemTime::now();
        let t = s.issue(42, now).unwrap();
        assert_eq!(t.token.len(), TOKEN_LEN);
        assert_eq!(t.expires_at_ms, unix_ms(now) + 3_600_000);
        let claims = s.verify(&t.token, now).unwrap();
        assert_eq!(claims.account_id, 42);
        assert_eq!(claims.expires_at_ms, t.expires_at_ms);
        let later = now + Duration::from_secs(3600);
        assert_eq!(s.verify(&t.token, later), Err(TokenError::Expired));
        assert_ne!(s.issue(42, now).unwrap().token, t.token, "nonces differ");
    }

    #[test]
    fn forged_and_altered_tokens_are_refused() {
        let s = signer();
        let now = SystemTime::now();
        let t = s.issue(7, now).unwrap().token;
        let other = TokenSigner::new(
            b"another secret entirely, 32 bytes!",
            Duration::from_secs(60),
        );
        assert_eq!(other.verify(&t, now), Err(TokenError::BadSignature));
        // Flip one claim bit (the account id) and keep the tag: the MAC no longer matches.
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        raw[8] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(s.verify(&altered, now), Err(TokenError::BadSignature));
        // A later expiry, same story.
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        raw[9] = 0x7f;
        assert_eq!(
            s.verify(&URL_SAFE_NO_PAD.encode(&raw), now),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let s = signer();
        let now = SystemTime::now();
        for bad in [
            "",
            "abc",
            &"A".repeat(TOKEN_LEN - 1),
            &"!".repeat(TOKEN_LEN),
        ] {
            assert_eq!(s.verify(bad, now), Err(TokenError::Malformed), "{bad:?}");
        }
        // The right length and alphabet, but not signed by us.
        assert_eq!(
            s.verify(&"A".repeat(TOKEN_LEN), now),
            Err(TokenError::BadSignature)
        );
        assert_eq!(s.issue(0, now), Err(TokenError::Malformed));
    }

    #[test]
    fn crafted_tokens_with_known_parts() {
        let s = signer();
        let now = SystemTime::now();
        let past = s.issue_with(9, unix_ms(now) - 1, [1; NONCE_LEN]);
        assert_eq!(s.verify(&past.token, now), Err(TokenError::Expired));
        let future = s.issue_with(9, unix_ms(now) + 1000, [1; NONCE_LEN]);
        assert_eq!(s.verify(&future.token, now).unwrap().account_id, 9);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = signer();
        let t = s.issue(1, SystemTime::now()).unwrap();
        let shown = format!("{s:?} {t:?}");
        assert!(!shown.contains(&t.token), "{shown}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }
}
