//! Custom login: the game's own backend vouches for a player through an HTTP webhook.
//!
//! For each login Rally POSTs `{"credential": "<what the client sent>"}` (JSON) to the
//! configured `auth_webhook_url`. The backend answers `200` with
//! `{"external_id": "<its id for the player>", "display_name": "<optional>"}` to accept;
//! any other answer refuses the login. A backend that cannot be reached, does not answer
//! in time, drops the connection or answers `5xx` is *unavailable*: the call is retried
//! per SPEC.md section 2 (3 attempts, 100 ms then 200 ms apart, with jitter) and then
//! reported as such, so the player is told to try later rather than that it was refused.
//!
//! The whole call, every attempt and wait, fits in the webhook's timeout; each attempt gets
//! an equal share of what the waits leave. Plain `http://` only: put a TLS-terminating proxy (or a sidecar on
//! localhost) in front of an `https` backend. Each call opens its own connection (logins
//! are rare next to game traffic), and the connection is driven inside the call's own
//! future, so nothing is left running when it returns or is cancelled.
//!
//! Credentials are secrets: they are never logged.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use rally_protocol::Redacted;
use rally_retry::RetryPolicy;

/// The largest answer body read from the backend.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why a custom login did not produce an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The backend answered, and not with a valid `200`: the login is refused.
    #[error("the login was refused: {reason}")]
    Refused {
        /// What the backend answered, for logs (never the credential).
        reason: String,
    },
    /// The backend could not be reached or did not answer in time, after the retries.
    #[error("the auth webhook is unavailable: {detail}")]
    Unavailable {
        /// What went wrong on the last attempt, for logs.
        detail: String,
    },
}

/// The configured URL is not one this client can call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid auth_webhook_url {url:?}: {reason}")]
pub struct WebhookUrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The identity the backend vouched for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Verified {
    /// The backend's own id for the player; the account is found or created by it.
    pub external_id: String,
    /// A display name to give a new account, if the backend has one.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A client for one webhook URL.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// The URL may hold a token in its query: `Debug` shows only where it goes
    /// (`authority`), never the URL.
    uri: Redacted<Uri>,
    /// `host:port` to connect to.
    authority: String,
    /// The `Host` header.
    host_header: String,
    timeout: Duration,
    policy: RetryPolicy,
}

/// How one attempt failed.
enum Failure {
    /// Worth another attempt: a timeout, a refused or reset connection, a 5xx.
    Transient(String),
    /// Final: a refusal, or an answer that another attempt will not improve.
    Final(WebhookError),
}

impl Webhook {
    /// A client for `url` (`http://host[:port]/path`), the whole of each call bounded by
    /// `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Webhook, WebhookUrlError> {
        let bad = |reason: &str| WebhookUrlError {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| bad("not a URL; expected http://host[:port]/path"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(
                    "https is not supported; put a TLS-terminating proxy in front of the backend and give its http:// address",
                ))
            }
            _ => return Err(bad("must start with http://")),
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("has no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let host_header = match uri.port_u16() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        Ok(Webhook {
            authority: format!("{host}:{port}"),
            host_header,
            uri: Redacted::new(uri),
            timeout,
            policy: RetryPolicy::SPEC,
        })
    }

    /// The bound on one whole call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The bound on one attempt: an equal share of the timeout after the longest waits
    /// between attempts, so that every attempt gets its turn; when the timeout is too short
    /// for that, a plain third of it (and the later attempts may not happen).
    fn per_attempt(&self) -> Duration {
        let attempts = self.policy.max_attempts.max(1);
        let waits: Duration = (1..attempts).map(|a| self.policy.delay(a, 1.0)).sum();
        if self.timeout > waits * 2 {
            (self.timeout - waits) / attempts
        } else {
            self.timeout / attempts
        }
    }

    /// Asks the backend who `credential` belongs to.
    pub async fn verify(&self, credential: &str) -> Result<Verified, WebhookError> {
        let deadline = Instant::now() + self.timeout;
        let per_attempt = self.per_attempt();
        let body = Bytes::from(
            serde_json::to_vec(&serde_json::json!({ "credential": credential }))
                .unwrap_or_default(),
        );
        let result = self
            .policy
            .run(
                Some(deadline),
                |f: &Failure| matches!(f, Failure::Transient(_)),
                |attempt| {
                    let body = body.clone();
                    async move {
                        let left = deadline.saturating_duration_since(Instant::now());
                        let bound = per_attempt.min(left);
                        let outcome = match tokio::time::timeout(bound, self.attempt(body)).await {
                            Ok(r) => r,
                            Err(_) => Err(Failure::Transient(format!(
                                "no answer within {} ms",
                                bound.as_millis()
                            ))),
                        };
                        if let Err(Failure::Transient(detail)) = &outcome {
                            tracing::debug!(attempt, authority = %self.authority, %detail, "auth webhook attempt failed");
                        }
                        outcome
                    }
                },
            )
            .await;
        result.map_err(|f| match f {
            Failure::Transient(detail) => WebhookError::Unavailable { detail },
            Failure::Final(e) => e,
        })
    }

    /// One POST on a fresh connection.
    async fn attempt(&self, body: Bytes) -> Result<Verified, Failure> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| io_failure("connect", &e))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| hyper_failure(&e))?;
        let path = self
            .uri
            .expose()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let request = Request::post(path)
            .header(HOST, &self.host_header)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, body.len())
            .header(USER_AGENT, concat!("rally/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body))
            .map_err(|e| {
                Failure::Final(WebhookError::Unavailable {
                    detail: format!("cannot build the request: {e}"),
                })
            })?;
        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| hyper_failure(&e))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| Failure::Transient(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, Failure>((status, body))
        };
        // The connection is driven here, beside the exchange, instead of in a spawned
        // task: when the exchange ends (or this future is dropped), so does the connection.
        tokio::pin!(conn);
        let (status, answer) = tokio::select! {
            r = exchange => r?,
            r = &mut conn => {
                let detail = match r {
                    Ok(()) => "the backend closed the connection without answering".to_owned(),
                    Err(e) => return Err(hyper_failure(&e)),
                };
                return Err(Failure::Transient(detail));
            }
        };
        classify(status, &answer)
    }
}

/// What an answer means.
fn classify(status: StatusCode, answer: &[u8]) -> Result<Verified, Failure> {
    if status.is_server_error() {
        return Err(Failure::Transient(format!(
            "the backend answered HTTP {}",
            status.as_u16()
        )));
    }
    if status != StatusCode::OK {
        return Err(Failure::Final(WebhookError::Refused {
            reason: format!("the backend answered HTTP {}", status.as_u16()),
        }));
    }
    let refused = |why: &str| {
        Failure::Final(WebhookError::Refused {
            reason: format!("the backend's 200 answer {why}"),
        })
    };
    let verified: Verified = serde_json::from_slice(answer)
        .map_err(|_| refused("is not JSON with a string external_id"))?;
    if verified.external_id.is_empty() {
        return Err(refused("has an empty external_id"));
    }
    Ok(verified)
}

fn io_failure(what: &str, e: &std::io::Error) -> Failure {
    use std::io::ErrorKind::*;
    let detail = format!("{what}: {e}");
    match e.kind() {
        ConnectionRefused | ConnectionReset | ConnectionAborted | BrokenPipe | TimedOut
        | UnexpectedEof | NotConnected => Failure::Transient(detail),
        _ => Failure::Final(WebhookError::Unavailable { detail }),
    }
}

fn hyper_failure(e: &hyper::Error) -> Failure {
    // A connection the backend dropped mid-exchange is a reset in SPEC's sense.
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() || e.is_timeout() {
        return Failure::Transient(format!("HTTP: {e}"));
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io_failure("HTTP", io);
        }
        source = s.source();
    }
    Failure::Final(WebhookError::Unavailable {
        detail: format!("HTTP: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_plain_http_with_a_host() {
        let w = Webhook::new("http://127.0.0.1:8081/auth?k=v", Duration::from_secs(1)).unwrap();
        assert_eq!(w.authority, "127.0.0.1:8081");
        assert_eq!(
            w.uri.expose().path_and_query().unwrap().as_str(),
            "/auth?k=v"
        );
        let w = Webhook::new("http://auth.internal/login", Duration::from_secs(1)).unwrap();
        assert_eq!(
            (w.authority.as_str(), w.host_header.as_str()),
            ("auth.internal:80", "auth.internal")
        );
        for bad in [
            "https://x/y",
            "ftp://x/",
            "auth.internal/login",
            "http:///nohost",
            "",
        ] {
            assert!(Webhook::new(bad, Duration::from_secs(1)).is_err(), "{bad}");
        }
        let shown = format!(
            "{:?}",
            Webhook::new("http://h/p?token=s3cret", Duration::from_secs(1)).unwrap()
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn answers_are_classified() {
        let ok = classify(
            StatusCode::OK,
            br#"{"external_id":"42","display_name":"Ada"}"#,
        );
        assert!(
            matches!(ok, Ok(v) if v.external_id == "42" && v.display_name.as_deref() == Some("Ada"))
        );
        let no_name = classify(StatusCode::OK, br#"{"external_id":"42"}"#);
        assert!(matches!(no_name, Ok(v) if v.display_name.is_none()));
        for (status, body) in [
            (StatusCode::OK, &b"{}"[..]),
            (StatusCode::OK, br#"{"external_id":""}"#),
            (StatusCode::OK, b"not json"),
            (StatusCode::UNAUTHORIZED, b""),
            (StatusCode::FOUND, b""),
        ] {
            assert!(
                matches!(
                    classify(status, body),
                    Err(Failure::Final(WebhookError::Refused { .. }))
                ),
                "{status} {body:?}"
            );
        }
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, b""),
            Err(Failure::Transient(_))
        ));
    }
}
