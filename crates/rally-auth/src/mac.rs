//! The keyed MAC both signers use (session tokens, seat tickets): HMAC-SHA256 with the
//! server's secret, keyed once, with a domain label mixed into every tag so a MAC made
//! for one kind of credential is never valid as another.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use rally_protocol::Redacted;
use sha2::Sha256;

use crate::token::unix_ms;

type HmacSha256 = Hmac<Sha256>;

/// A tag's length in bytes.
pub(crate) const TAG_LEN: usize = 32;

/// HMAC-SHA256 keyed with a secret, for one domain.
#[derive(Debug, Clone)]
pub(crate) struct DomainMac {
    /// The MAC already keyed with the secret; cloned per use, so the key schedule runs
    /// once. Redacted: its state is as good as the secret.
    mac: Redacted<HmacSha256>,
    /// Mixed into every tag ahead of the claims.
    domain: &'static [u8],
}

impl DomainMac {
    /// A MAC keyed with `secret` (any length) for `domain`.
    pub(crate) fn new(secret: &[u8], domain: &'static [u8]) -> DomainMac {
        DomainMac {
            // HMAC takes keys of any length, so this cannot fail.
            mac: Redacted::new(
                HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length"),
            ),
            domain,
        }
    }

    fn keyed(&self, claims: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.expose().clone();
        mac.update(self.domain);
        mac.update(claims);
        mac
    }

    /// The tag of `claims`.
    pub(crate) fn tag(&self, claims: &[u8]) -> [u8; TAG_LEN] {
        self.keyed(claims).finalize().into_bytes().into()
    }

    /// Whether `tag` is the tag of `claims`, compared in constant time: how much of a
    /// forged tag matched is not observable.
    pub(crate) fn verify(&self, claims: &[u8], tag: &[u8]) -> bool {
        self.keyed(claims).verify_slice(tag).is_ok()
    }
}

/// The expiry, in Unix milliseconds, of a credential issued at `now` for `ttl`.
pub(crate) fn expires_at(now: SystemTime, ttl: Duration) -> u64 {
    unix_ms(now).saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}
