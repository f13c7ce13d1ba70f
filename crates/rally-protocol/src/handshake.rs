//! The HTTP/1.1 upgrade that opens a WebSocket (RFC 6455, section 4), sans IO.
//!
//! The server reads at most [`MAX_REQUEST_BYTES`] of request head; a longer head is
//! refused, so a client cannot make it buffer without bound.

use base64::Engine as _;
use thiserror::Error;

/// Largest request head (request line and headers) a server accepts.
pub const MAX_REQUEST_BYTES: usize = 8192;

/// The GUID of RFC 6455, section 1.3, appended to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The WebSocket subprotocol name of Rally's protocol version 1. Clients may offer it;
/// the server echoes it when offered.
pub const SUBPROTOCOL: &str = "rally.v1";

/// Why an upgrade request was refused, with the HTTP status to answer with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// Not parseable as an HTTP/1.1 request.
    #[error("malformed HTTP request")]
    Malformed,
    /// The request head is longer than [`MAX_REQUEST_BYTES`].
    #[error("request head too large")]
    TooLarge,
    /// A path other than the WebSocket endpoint.
    #[error("no such path")]
    NotFound,
    /// Not a GET with `Upgrade: websocket`, `Connection: upgrade`, a key and version 13.
    #[error("not a websocket upgrade: {0}")]
    NotUpgrade(&'static str),
}

impl HandshakeError {
    /// The HTTP status line to send before closing.
    pub fn status(&self) -> &'static str {
        match self {
            HandshakeError::Malformed | HandshakeError::NotUpgrade(_) => "400 Bad Request",
            HandshakeError::TooLarge => "431 Request Header Fields Too Large",
            HandshakeError::NotFound => "404 Not Found",
        }
    }
}

/// A valid upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The `Sec-WebSocket-Key` header.
    pub key: String,
    /// Whether the client offered [`SUBPROTOCOL`].
    pub offers_subprotocol: bool,
}

fn header_has_token(value: &[u8], token: &str) -> bool {
    std::str::from_utf8(value)
        .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        .unwrap_or(false)
}

/// Parses an upgrade request for `path` at the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete, or the bytes the head took and the request.
pub fn parse_request(
    buf: &[u8],
    path: &str,
) -> Result<Option<(usize, UpgradeRequest)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= MAX_REQUEST_BYTES {
                Err(HandshakeError::TooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooLarge),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    if head_len > MAX_REQUEST_BYTES {
        return Err(HandshakeError::TooLarge);
    }
    let request_path = req.path.unwrap_or("");
    let request_path = request_path.split('?').next().unwrap_or("");
    if request_path != path {
        return Err(HandshakeError::NotFound);
    }
    if req.method != Some("GET") {
        return Err(HandshakeError::NotUpgrade("method is not GET"));
    }
    let (mut upgrade, mut connection, mut version, mut key, mut offers) =
        (false, false, false, None, false);
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= header_has_token(h.value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= header_has_token(h.value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version |= h.value == b"13";
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = std::str::from_utf8(h.value)
                .ok()
                .map(|k| k.trim().to_owned());
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            // Subprotocol names are case-sensitive (RFC 6455 section 4.1): exact match only.
            offers |= std::str::from_utf8(h.value)
                .map(|v| v.split(',').any(|t| t.trim() == SUBPROTOCOL))
                .unwrap_or(false);
        }
    }
    if !upgrade {
        return Err(HandshakeError::NotUpgrade("missing Upgrade: websocket"));
    }
    if !connection {
        return Err(HandshakeError::NotUpgrade("missing Connection: upgrade"));
    }
    if !version {
        return Err(HandshakeError::NotUpgrade(
            "Sec-WebSocket-Version is not 13",
        ));
    }
    let key = key
        .filter(|k| !k.is_empty() && k.len() <= 64)
        .ok_or(HandshakeError::NotUpgrade("missing Sec-WebSocket-Key"))?;
    Ok(Some((
        head_len,
        UpgradeRequest {
            key,
            offers_subprotocol: offers,
        },
    )))
}

/// The `Sec-WebSocket-Accept` value for a client key.
pub fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

/// Appends the `101 Switching Protocols` response to `req`.
pub fn write_accept(out: &mut Vec<u8>, req: &UpgradeRequest) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key(&req.key).as_bytes());
    if req.offers_subprotocol {
        out.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
        out.extend_from_slice(SUBPROTOCOL.as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends a plain HTTP error response that closes the connection.
pub fn write_refusal(out: &mut Vec<u8>, err: &HandshakeError) {
    let body = err.to_string();
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            err.status(),
            body.len(),
            body
        )
        .as_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &str = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn rfc_sample_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn parses_a_browser_style_request() {
        let (n, req) = parse_request(REQ.as_bytes(), "/ws").unwrap().unwrap();
        assert_eq!(n, REQ.len());
        assert_eq!(req.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert!(!req.offers_subprotocol);
        let with = |p: &str| {
            REQ.replace(
                "\r\n\r\n",
                &format!("\r\nSec-WebSocket-Protocol: {p}\r\n\r\n"),
            )
        };
        let offers = |p: &str| {
            parse_request(with(p).as_bytes(), "/ws")
                .unwrap()
                .unwrap()
                .1
                .offers_subprotocol
        };
        assert!(offers("chat, rally.v1"));
        assert!(!offers("RALLY.V1"), "subprotocols match exactly");
        assert!(!offers("foo"));
        let partial = &REQ.as_bytes()[..REQ.len() - 3];
        assert_eq!(parse_request(partial, "/ws"), Ok(None));
    }

    #[test]
    fn refuses_other_paths_and_plain_gets() {
        assert_eq!(
            parse_request(REQ.as_bytes(), "/other"),
            Err(HandshakeError::NotFound)
        );
        let plain = "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(
            parse_request(plain.as_bytes(), "/ws"),
            Err(HandshakeError::NotUpgrade(_))
        ));
        let endless = vec![b'a'; MAX_REQUEST_BYTES + 1];
        assert!(parse_request(&endless, "/ws").is_err());
    }
}
