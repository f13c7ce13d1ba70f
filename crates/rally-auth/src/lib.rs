//! Rally's authentication, with no server state: the signed, expiring session tokens a
//! login returns and a later `hello` presents, the HTTP client for custom login through
//! the game's own backend, and the retry policy of the server's outbound calls.
//!
//! The server (crate `rally-server`) decides when these run; the accounts themselves live
//! in the storage layer (crate `rally-store`).
//!
//! # Layout
//! - [`token`]: session tokens, HMAC-SHA256 over (version, account id, expiry, nonce),
//!   base64url, verified in constant time.
//! - [`ticket`]: seat tickets, signed like tokens under their own label, that a cluster
//!   node hands a player it redirects to the node holding its seat.
//! - `mac`: the keyed HMAC-SHA256 both use, one domain label each, and the expiry of a
//!   credential.
//! - [`webhook`]: custom login, a JSON POST to `auth_webhook_url`, bounded and retried.
//! - [`RetryPolicy`]: SPEC.md section 2's policy, re-exported from `rally-retry` (the
//!   one implementation the client SDK uses too), with an optional deadline.
//!
//! # Retrying 5xx answers
//!
//! SPEC.md retries "only timeouts and connection resets". A webhook's `5xx` answer is
//! counted with them: like a reset, it says the backend could not do its work just now
//! (a restarting service behind its proxy answers 502/503), not that the credential is
//! bad, and a second attempt a moment later often succeeds. Every other HTTP answer is
//! final at once.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod mac;
pub mod ticket;
pub mod token;
pub mod webhook;

pub use rally_retry::RetryPolicy;
pub use ticket::{Ticket, TicketError, TicketSigner};
pub use token::{Claims, IssuedToken, TokenError, TokenSigner};
pub use webhook::{Verified, Webhook, WebhookError, WebhookUrlError};
