//! The browser pages Rally serves itself: the arena demo at `/` and tic-tac-toe at
//! `/tictactoe` on the game's HTTP listener, and the operator dashboard at `/dashboard`
//! on the admin listener (module `admin::dashboard`).
//!
//! The files are built from `clients/typescript` (`npm run bundle`) into
//! `crates/rally-server/web/`, committed, and embedded here with `include_bytes!`, so
//! the one `rally serve` of the README serves them with no Node on the machine; CI
//! rebuilds them and fails when the committed files differ from their sources.
//!
//! Caching: the URLs are stable names (`/arena.js`, not a hashed name), so every answer
//! is `Cache-Control: no-cache` with a strong `ETag` (a SHA-256 prefix of the bytes): a
//! browser revalidates each load and gets `304 Not Modified` (no body) while the file
//! is unchanged, and a new server version is picked up at once, never a stale mix of
//! an old page and a new script.
//!
//! Only `GET` and `HEAD` of a listed path are answered here; the WebSocket endpoint
//! `/ws` never reaches this module, and any other request keeps the transport's
//! `404`/`400` answers (protocol section 1).

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug)]
pub(crate) struct Asset {
    /// The URL path it answers.
    pub(crate) path: &'static str,
    /// Its `Content-Type`.
    pub(crate) content_type: &'static str,
    /// The file's bytes, in the binary.
    pub(crate) body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The game listener's pages (plain HTTP, beside `/ws`).
pub(crate) const GAME_ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: HTML,
        body: include_bytes!("../web/index.html"),
    },
    Asset {
        path: "/tictactoe",
        content_type: HTML,
        body: include_bytes!("../web/tictactoe.html"),
    },
    Asset {
        path: "/arena.js",
        content_type: JS,
        body: include_bytes!("../web/arena.js"),
    },
    Asset {
        path: "/tictactoe.js",
        content_type: JS,
        body: include_bytes!("../web/tictactoe.js"),
    },
    Asset {
        path: "/style.css",
        content_type: CSS,
        body: include_bytes!("../web/style.css"),
    },
];

/// The admin listener's dashboard (served by `admin::dashboard`).
pub(crate) const DASHBOARD_ASSETS: &[Asset] = &[
    Asset {
        path: "/dashboard",
        content_type: HTML,
        body: include_bytes!("../web/dashboard.html"),
    },
    Asset {
        path: "/dashboard/dashboard.js",
        content_type: JS,
        body: include_bytes!("../web/dashboard.js"),
    },
    Asset {
        path: "/dashboard/dashboard.css",
        content_type: CSS,
        body: include_bytes!("../web/dashboard.css"),
    },
];

/// Finds the asset for `path` (a query string is ignored).
pub(crate) fn find(assets: &'static [Asset], path: &str) -> Option<&'static Asset> {
    let path = path.split('?').next().unwrap_or("");
    assets.iter().find(|a| a.path == path)
}

impl Asset {
    /// The strong ETag of the file, computed once per process for all files.
    pub(crate) fn etag(&self) -> &'static str {
        static TAGS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
        let tags = TAGS.get_or_init(|| {
            GAME_ASSETS
                .iter()
                .chain(DASHBOARD_ASSETS)
                .map(|a| {
                    let digest = Sha256::digest(a.body);
                    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                    (a.path, format!("\"{hex}\""))
                })
                .collect()
        });
        tags.iter()
            .find(|(p, _)| *p == self.path)
            .map_or("\"0\"", |(_, t)| t.as_str())
    }

    /// Whether an `If-None-Match` header value names this file's current ETag.
    pub(crate) fn matches(&self, if_none_match: &str) -> bool {
        let tag = self.etag();
        if_none_match
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == tag || t == "*")
    }
}

/// The HTTP answer to a complete request head `head` (already parsed as HTTP by the
/// WebSocket handshake, which found it is not an upgrade of `/ws`), or `None` when it is
/// not a `GET`/`HEAD` of a page this listener serves.
pub(crate) fn respond(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?;
    let path = request_line.next()?;
    if method != "GET" && method != "HEAD" {
        return None;
    }
    let asset = find(GAME_ASSETS, path)?;
    let fresh = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("if-none-match"))
        .any(|(_, value)| asset.matches(value));
    let mut out = Vec::with_capacity(asset.body.len() + 256);
    let status = if fresh { "304 Not Modified" } else { "200 OK" };
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {}\r\nCache-Control: no-cache\r\nETag: {}\r\nX-Content-Type-Options: nosniff\r\n",
            asset.content_type,
            asset.etag()
        )
        .as_bytes(),
    );
    if fresh {
        out.extend_from_slice(b"Connection: close\r\n\r\n");
    } else {
        out.extend_from_slice(
            format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                asset.body.len()
            )
            .as_bytes(),
        );
        if method == "GET" {
            out.extend_from_slice(asset.body);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn serves_the_arena_page_with_its_type_and_etag() {
        let out = respond(b"GET /?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").expect("answered");
        let out = text(&out);
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(out.contains("Cache-Control: no-cache\r\n"));
        let body_len = GAME_ASSETS[0].body.len();
        assert!(out.contains(&format!("Content-Length: {body_len}\r\n")));
    }

    #[test]
    fn a_matching_etag_gets_304_without_a_body() {
        let asset = find(GAME_ASSETS, "/arena.js").expect("listed");
        let req = format!(
            "GET /arena.js HTTP/1.1\r\nif-none-match: \"zz\", {}\r\n\r\n",
            asset.etag()
        );
        let out = text(&respond(req.as_bytes()).expect("answered"));
        assert!(out.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\n"));
    }

    #[test]
    fn head_has_no_body_and_unknown_paths_and_methods_are_not_ours() {
        let out = respond(b"HEAD /style.css HTTP/1.1\r\n\r\n").expect("answered");
        assert!(text(&out).ends_with("\r\n\r\n"));
        assert!(respond(b"GET /nope HTTP/1.1\r\n\r\n").is_none());
        assert!(respond(b"POST / HTTP/1.1\r\n\r\n").is_none());
        assert!(respond(b"\xff\xfe").is_none());
        // The dashboard lives on the admin listener only.
        assert!(respond(b"GET /dashboard HTTP/1.1\r\n\r\n").is_none());
    }

    #[test]
    fn every_asset_has_a_distinct_etag() {
        let mut tags: Vec<&str> = GAME_ASSETS
            .iter()
            .chain(DASHBOARD_ASSETS)
            .map(Asset::etag)
            .collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), GAME_ASSETS.len() + DASHBOARD_ASSETS.len());
    }
}
