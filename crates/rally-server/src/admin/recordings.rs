//! The recordings part of the admin API (edge floor): list the match recordings in
//! `recordings_dir`, filtered by kind, player (account id) and start time, and download
//! one file (for `rally replay`). Both answer 404 when recording is off.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{AdminEnv, ApiError, Operator};
use crate::recording::{self, Filter, Recordings};

fn recordings(shared: &AdminEnv) -> Result<&Arc<Recordings>, ApiError> {
    shared.recordings.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "recording is off (recordings_dir is empty)",
        )
    })
}

/// Reads `kind`, `player`, `since`, `until` and `limit` from a query string. Values are
/// kind names and integers, so the only decoding needed is `%XX` and `+` in the kind.
fn filter(query: Option<&str>) -> Result<Filter, ApiError> {
    let mut f = Filter::default();
    let bad = |k: &str, v: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{k} must be a non-negative integer, not {v:?}"),
        )
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let int = || v.parse::<u64>().map_err(|_| bad(k, v));
        match k {
            "kind" => f.kind = Some(decode(v)),
            "player" => f.player = Some(int()?),
            "since" => f.since = Some(int()?),
            "until" => f.until = Some(int()?),
            "limit" => f.limit = Some(int()? as usize),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("unknown filter {k:?}: use kind, player, since, until, limit"),
                ))
            }
        }
    }
    Ok(f)
}

/// `%XX` and `+` decoding; a malformed escape stays as it is.
fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match v
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(())
                {
                    Ok(c) => {
                        out.push(c);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /admin/recordings?kind=&player=&since=&until=&limit=`: newest first.
pub(crate) async fn list(
    _: Operator,
    State(shared): State<Arc<AdminEnv>>,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let dir = recordings(&shared)?.dir().to_path_buf();
    let filter = filter(query.as_deref())?;
    // A directory walk is blocking IO.
    let listed = tokio::task::spawn_blocking(move || recording::list(&dir, &filter))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the listing failed",
            )
        })?;
    match listed {
        Ok(recordings) => Ok(Json(serde_json::json!({ "recordings": recordings }))),
        // Nothing recorded yet: the directory is made with the first recording.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(Json(serde_json::json!({ "recordings": [] })))
        }
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "io",
            format!("cannot read the recordings directory: {e}"),
        )),
    }
}

/// `GET /admin/recordings/{file}`: the file itself, `application/octet-stream`.
pub(crate) async fn download(
    _: Operator,
    State(shared): State<Arc<AdminEnv>>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let dir = recordings(&shared)?.dir().to_path_buf();
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no recording {file:?}"),
        )
    };
    // A bare recording name only: no path, so nothing outside the directory is served.
    if !recording::is_recording_name(&file) {
        return Err(not_found());
    }
    let bytes = tokio::fs::read(dir.join(&file))
        .await
        .map_err(|_| not_found())?;
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_bad_ones_are_refused() {
        let f = filter(Some(
            "kind=tic%20tac+toe&player=7&since=10&until=20&limit=3",
        ))
        .unwrap();
        assert_eq!(f.kind.as_deref(), Some("tic tac toe"));
        assert_eq!(
            (f.player, f.since, f.until, f.limit),
            (Some(7), Some(10), Some(20), Some(3))
        );
        assert!(filter(Some("player=x")).is_err());
        assert!(filter(Some("colour=red")).is_err());
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("a%"), "a%");
    }
}
