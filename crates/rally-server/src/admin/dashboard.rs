//! `GET /dashboard`: the operator's page on the admin listener, and its script and
//! style under `/dashboard/`.
//!
//! The files are public on purpose: the page holds no data and no secret. It asks the
//! operator for the admin token, keeps it in the tab's `sessionStorage` only, and sends
//! it as the bearer token to `/admin/*` (rooms, players, kick, close, drain), which
//! refuse without it; the charts poll `/metrics`, which the admin listener already
//! serves to anyone who can reach it. Caching follows `crate::web` (`no-cache` and an
//! `ETag`).

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::web::{self, Asset};

/// `GET /dashboard`.
pub(crate) async fn page(headers: HeaderMap) -> Response {
    serve("/dashboard", &headers)
}

/// `GET /dashboard/{file}`: the page's script and style.
pub(crate) async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&format!("/dashboard/{file}"), &headers)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = web::find(web::DASHBOARD_ASSETS, path) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file").into_response();
    };
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| asset.matches(v));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    set_headers(&mut response, asset);
    response
}

fn set_headers(response: &mut Response, asset: &Asset) {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::ETAG, HeaderValue::from_static(asset.etag()));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}
