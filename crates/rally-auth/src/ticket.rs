//! Seat tickets: what a cluster node hands a player it redirects to another node, and
//! what the player presents there (`claim_seat`) to take the seat that node reserved.
//!
//! A ticket is signed by the node holding the seat with the cluster's shared
//! `auth_secret`, as session tokens are ([`token`](crate::token)), under its own domain
//! label, so neither is ever accepted as the other. Its bytes, base64url without padding:
//!
//! ```text
//! version (1 byte, 1) | expires_at_ms (u64 BE) | room_id (u64 BE) | account_id (u64 BE, 0: guest)
//!   | nonce (16 random bytes) | node length (1 byte, 1..=64) | node id (UTF-8) | tag (32 bytes)
//! ```
//!
//! The signature makes a ticket unforgeable and binds it to one node, room and account;
//! the expiry makes it short-lived. Single use is the holding node's business: it keeps
//! the seat under the nonce and gives it out once.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::mac::{expires_at, DomainMac, TAG_LEN};
use crate::token::unix_ms;

const VERSION: u8 = 1;
/// Mixed into every tag: a session token's MAC is never a ticket's, and back.
const DOMAIN: &[u8] = b"rally.seat-ticket.v1\0";
/// The nonce's length in bytes.
pub const NONCE_LEN: usize = 16;
/// version, expiry, room, account, nonce, node length.
const FIXED_LEN: usize = 1 + 8 + 8 + 8 + NONCE_LEN + 1;
/// The longest node id a ticket carries.
pub const MAX_NODE_LEN: usize = 64;
/// The longest ticket text: base64 of the longest raw ticket.
pub const MAX_TICKET_LEN: usize = ((FIXED_LEN + MAX_NODE_LEN + TAG_LEN) * 4).div_ceil(3);

/// Why a ticket was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Not a ticket: wrong length, not base64url, an unknown version, a bad node id.
    #[error("the seat ticket is malformed")]
    Malformed,
    /// Forged, altered, or signed with another secret.
    #[error("the seat ticket's signature is not valid")]
    BadSignature,
    /// Genuine, but past its expiry.
    #[error("the seat ticket has expired")]
    Expired,
    /// No randomness for a new ticket's nonce.
    #[error("no randomness available to issue a seat ticket")]
    NoRandomness,
}

/// What a ticket says.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The node holding the seat.
    pub node: String,
    /// The room the seat is in.
    pub room_id: u64,
    /// The account the seat is for; 0: a guest (servers that do not require logins).
    pub account_id: u64,
    /// Makes the ticket unique; the holding node keeps the seat under it.
    pub nonce: [u8; NONCE_LEN],
    /// When the ticket stops being accepted, Unix milliseconds.
    pub expires_at_ms: u64,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The nonce is what makes a ticket claimable: kept out of logs.
        f.debug_struct("Ticket")
            .field("node", &self.node)
            .field("room_id", &self.room_id)
            .field("account_id", &self.account_id)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// Issues and verifies seat tickets with one secret.
#[derive(Debug, Clone)]
pub struct TicketSigner {
    mac: DomainMac,
}

/// A fresh random nonce.
pub fn nonce() -> Result<[u8; NONCE_LEN], TicketError> {
    let mut n = [0u8; NONCE_LEN];
    getrandom::fill(&mut n).map_err(|_| TicketError::NoRandomness)?;
    Ok(n)
}

/// Whether `node` may name a node in a ticket: 1 to 64 bytes of ASCII letters, digits,
/// `-` and `_` (what a NATS subject token and a key-value key both accept).
pub fn valid_node_id(node: &str) -> bool {
    (1..=MAX_NODE_LEN).contains(&node.len())
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl TicketSigner {
    /// A signer keyed with `secret` (the cluster's shared `auth_secret`).
    pub fn new(secret: &[u8]) -> TicketSigner {
        TicketSigner {
            mac: DomainMac::new(secret, DOMAIN),
        }
    }

    /// The expiry of a ticket issued at `now` for `ttl`.
    pub fn expiry(now: SystemTime, ttl: Duration) -> u64 {
        expires_at(now, ttl)
    }

    /// Signs `ticket`; its node id must pass [`valid_node_id`].
    pub fn sign(&self, ticket: &Ticket) -> Result<String, TicketError> {
        if !valid_node_id(&ticket.node) {
            return Err(TicketError::Malformed);
        }
        let mut raw = Vec::with_capacity(FIXED_LEN + ticket.node.len() + TAG_LEN);
        raw.push(VERSION);
        raw.extend_from_slice(&ticket.expires_at_ms.to_be_bytes());
        raw.extend_from_slice(&ticket.room_id.to_be_bytes());
        raw.extend_from_slice(&ticket.account_id.to_be_bytes());
        raw.extend_from_slice(&ticket.nonce);
        // At most MAX_NODE_LEN (64): valid_node_id checked it.
        raw.push(ticket.node.len() as u8);
        raw.extend_from_slice(ticket.node.as_bytes());
        let tag = self.mac.tag(&raw);
        raw.extend_from_slice(&tag);
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// What a ticket says, if it is genuine and not expired at `now`.
    pub fn verify(&self, text: &str, now: SystemTime) -> Result<Ticket, TicketError> {
        if text.len() > MAX_TICKET_LEN {
            return Err(TicketError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| TicketError::Malformed)?;
        if raw.len() < FIXED_LEN + 1 + TAG_LEN {
            return Err(TicketError::Malformed);
        }
        let (claims, tag) = raw.split_at(raw.len() - TAG_LEN);
        // Constant time, and before anything in the ticket is believed.
        if !self.mac.verify(claims, tag) {
            return Err(TicketError::BadSignature);
        }
        if claims[0] != VERSION {
            return Err(TicketError::Malformed);
        }
        let field = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&claims[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&claims[25..25 + NONCE_LEN]);
        let node_len = usize::from(claims[FIXED_LEN - 1]);
        if claims.len() != FIXED_LEN + node_len {
            return Err(TicketError::Malformed);
        }
        let node = std::str::from_utf8(&claims[FIXED_LEN..])
            .map_err(|_| TicketError::Malformed)?
            .to_owned();
        if !valid_node_id(&node) {
            return Err(TicketError::Malformed);
        }
        let ticket = Ticket {
            node,
            expires_at_ms: field(1),
            room_id: field(9),
            account_id: field(17),
            nonce,
        };
        if unix_ms(now) >= ticket.expires_at_ms {
            return Err(TicketError::Expired);
        }
        Ok(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenSigner;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn ticket(now: SystemTime) -> Ticket {
        Ticket {
            node: "node-b".into(),
            room_id: 7,
            account_id: 42,
            nonce: [3; NONCE_LEN],
            expires_at_ms: TicketSigner::expiry(now, Duration::from_secs(10)),
        }
    }

    #[test]
    fn a_signed_ticket_verifies_until_it_expires() {
        let s = TicketSigner::new(SECRET);
        let now = SystemTime::now();
        let t = ticket(now);
        let text = s.sign(&t).unwrap();
        assert!(text.len() <= MAX_TICKET_LEN);
        assert_eq!(s.verify(&text, now).unwrap(), t);
        let later = now + Duration::from_secs(10);
        assert_eq!(s.verify(&text, later), Err(TicketError::Expired));
    }

    #[test]
    fn forged_altered_and_foreign_tickets_are_refused() {
        let s = TicketSigner::new(SECRET);
        let now = SystemTime::now();
        let text = s.sign(&ticket(now)).unwrap();
        let other = TicketSigner::new(b"another secret entirely, 32 bytes!");
        assert_eq!(other.verify(&text, now), Err(TicketError::BadSignature));
        let mut raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
        raw[10] ^= 1; // the room id
        assert_eq!(
            s.verify(&URL_SAFE_NO_PAD.encode(&raw), now),
            Err(TicketError::BadSignature)
        );
        // A session token signed with the same secret is not a ticket.
        let token = TokenSigner::new(SECRET, Duration::from_secs(60))
            .issue(42, now)
            .unwrap()
            .token;
        assert!(s.verify(&token, now).is_err());
    }

    #[test]
    fn garbage_is_malformed_and_never_panics() {
        let s = TicketSigner::new(SECRET);
        let now = SystemTime::now();
        for bad in ["", "abc", "!!!!", &"A".repeat(MAX_TICKET_LEN + 1)] {
            assert_eq!(s.verify(bad, now), Err(TicketError::Malformed), "{bad:?}");
        }
        assert_eq!(
            s.verify(&"A".repeat(120), now),
            Err(TicketError::BadSignature)
        );
        let mut t = ticket(now);
        t.node = "no spaces".into();
        assert_eq!(s.sign(&t), Err(TicketError::Malformed));
        assert!(!valid_node_id(""));
        assert!(!valid_node_id(&"a".repeat(65)));
        assert!(valid_node_id("node_1-a"));
    }
}
