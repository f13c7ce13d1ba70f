//! The client side of the WebSocket upgrade (RFC 6455 section 4.1): a `GET /ws` with a
//! random key, and a check of the server's `101 Switching Protocols` answer.

use base64::Engine as _;
use bytes::{Buf, BytesMut};
use rally_protocol::handshake::{accept_key, SUBPROTOCOL};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::Error;

/// The WebSocket endpoint's path.
const PATH: &str = "/ws";
/// Largest response head read; a server answering more is not a Rally server.
const MAX_RESPONSE_BYTES: usize = 8192;

/// Upgrades `stream` to a WebSocket. `host` goes in the `Host` header. Bytes the server
/// sent after its response head (its first frames) are left in `inbuf`.
pub(crate) async fn upgrade(
    stream: &mut TcpStream,
    host: &str,
    inbuf: &mut BytesMut,
) -> Result<(), Error> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw)
        .map_err(|e| std::io::Error::other(format!("no OS randomness for the key: {e}")))?;
    let key = base64::engine::general_purpose::STANDARD.encode(raw);
    stream.write_all(request(host, &key).as_bytes()).await?;
    loop {
        if let Some(used) = check_response(inbuf, &key)? {
            inbuf.advance(used);
            return Ok(());
        }
        if inbuf.len() >= MAX_RESPONSE_BYTES {
            return Err(Error::Protocol("WebSocket response head too large".into()));
        }
        inbuf.reserve(1024);
        if stream.read_buf(inbuf).await? == 0 {
            return Err(Error::PeerClosed);
        }
    }
}

fn request(host: &str, key: &str) -> String {
    format!(
        "GET {PATH} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
    )
}

/// Checks the response head at the start of `buf`: `None` while it is incomplete, else
/// the bytes it took.
fn check_response(buf: &[u8], key: &str) -> Result<Option<usize>, Error> {
    let bad = |why: &str| Err(Error::Protocol(format!("WebSocket upgrade refused: {why}")));
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let used = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return bad(&format!("malformed HTTP response ({e})")),
    };
    if res.code != Some(101) {
        let reason = res.reason.unwrap_or("");
        return bad(&format!("HTTP {} {reason}", res.code.unwrap_or(0)));
    }
    let header = |name: &str| {
        res.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return bad("no Upgrade: websocket");
    }
    if !header("connection").is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    }) {
        return bad("no Connection: Upgrade");
    }
    if header("sec-websocket-accept") != Some(accept_key(key).as_str()) {
        return bad("wrong Sec-WebSocket-Accept");
    }
    // Selecting the subprotocol is optional, but selecting another one is not allowed.
    if header("sec-websocket-protocol").is_some_and(|p| p != SUBPROTOCOL) {
        return bad("a subprotocol that was not offered");
    }
    if header("sec-websocket-extensions").is_some() {
        return bad("an extension that was not offered");
    }
    Ok(Some(used))
}

#[cfg(test)]
mod tests {
    use rally_protocol::handshake::{parse_request, write_accept};

    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// The protocol crate's server side answering this module's request.
    fn answer(key: &str) -> Vec<u8> {
        let req = request("example:80", key);
        let (used, parsed) = parse_request(req.as_bytes(), PATH).unwrap().unwrap();
        assert_eq!(used, req.len());
        assert!(parsed.offers_subprotocol);
        let mut out = Vec::new();
        write_accept(&mut out, &parsed);
        out
    }

    #[test]
    fn accepts_the_servers_answer_and_keeps_what_follows() {
        let mut res = answer(KEY);
        let head = res.len();
        res.extend_from_slice(&[0x82, 0x01, 0x90]);
        assert_eq!(check_response(&res, KEY).unwrap(), Some(head));
        assert_eq!(check_response(&res[..head - 1], KEY).unwrap(), None);
    }

    #[test]
    fn refuses_a_wrong_key_a_status_or_a_stranger_subprotocol() {
        let res = answer("c29tZSBvdGhlciBrZXkgISE=");
        assert!(check_response(&res, KEY).is_err());
        let not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let e = check_response(not_found, KEY).unwrap_err();
        assert!(e.to_string().contains("404"), "{e}");
        let other = String::from_utf8(answer(KEY))
            .unwrap()
            .replace(SUBPROTOCOL, "chat");
        assert!(check_response(other.as_bytes(), KEY).is_err());
        assert!(check_response(b"SSH-2.0-OpenSSH\r\n\r\n", KEY).is_err());
    }
}
