//! The admin listener (edge floor): health, readiness and metrics for anyone who can reach it, and
//! the admin API (`/admin/*`) for operators holding the bearer token.
//!
//! - `GET /healthz`: 200 while the process serves.
//! - `GET /readyz`: 200 when this server should get new players; 503 while it drains or
//!   shuts down, or while a dependency (the database) reports itself unhealthy.
//! - `GET /metrics`: Prometheus text (see the `metrics` module).
//! - `GET /dashboard` (module `dashboard`): the operator's page; it holds no data and no
//!   secret, and reads everything through `/admin/*` and `/metrics` with the token the
//!   operator types in.
//! - `/admin/recordings` (module `recordings`): list match recordings, download one.
//! - `/admin/*` (module `api`): rooms, players, kick, close, drain, cluster; refused with 401
//!   without the right `Authorization: Bearer <admin_token>`, and with 403 when no
//!   `admin_token` is configured.
//!
//! Every answer is JSON except `/metrics`; errors are `{"error": code, "message": text}`.
//! `docs/admin.md` documents every endpoint.

mod api;
mod dashboard;
mod recordings;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::directory::Directory;
use crate::matchmaker::Matchmaker;
use crate::metrics::{Gauges, Metrics};
use crate::outbox::LiveSessions;
use crate::readiness::Readiness;
use crate::recording::Recordings;

/// Largest request body the admin API reads (a JSON object with a reason).
const MAX_BODY: usize = 4096;

/// What the admin listener reads and acts on.
#[derive(Debug)]
pub(crate) struct AdminEnv {
    /// `admin_token` and `timeout_ms` (the bound on asking a room for its seats).
    pub(crate) config: Arc<Config>,
    /// Open rooms, and the drain switch.
    pub(crate) matchmaker: Arc<Matchmaker>,
    /// Handshaken sessions.
    pub(crate) directory: Arc<Directory>,
    /// Every running session, for kicks.
    pub(crate) sessions: Arc<LiveSessions>,
    /// What `/metrics` renders.
    pub(crate) metrics: Arc<Metrics>,
    /// Dependencies that reported themselves unhealthy.
    pub(crate) readiness: Arc<Readiness>,
    /// Cancelled when shutdown begins.
    pub(crate) shutdown: CancellationToken,
    /// Match recordings, to list and download; `None` when recording is off.
    pub(crate) recordings: Option<Arc<Recordings>>,
    /// Cluster mode: what `/admin/cluster` shows; `None` for a single node.
    pub(crate) cluster: Option<Arc<Cluster>>,
}

impl AdminEnv {
    /// Why the server is not ready, as `/readyz` lists it; empty when ready.
    pub(crate) fn readiness_problems(&self) -> Vec<String> {
        self.readiness
            .report(self.shutdown.is_cancelled(), self.matchmaker.is_draining())
    }

    /// What `/metrics` reads of rooms, sessions and readiness now.
    fn gauges(&self) -> Gauges {
        let mut rooms_by_kind: HashMap<String, usize> = HashMap::new();
        let mut players = 0;
        for room in &self.matchmaker.rooms() {
            *rooms_by_kind.entry(room.kind.to_string()).or_default() += 1;
            players += room.info.players();
        }
        Gauges {
            rooms_by_kind,
            players,
            sessions: self.directory.len(),
            draining: self.matchmaker.is_draining() || self.shutdown.is_cancelled(),
            ready: self.readiness_problems().is_empty(),
        }
    }
}

pub(crate) async fn serve(listener: TcpListener, shared: Arc<AdminEnv>, stop: CancellationToken) {
    let app = Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/admin/rooms", get(api::rooms))
        .route("/admin/rooms/{id}", get(api::room))
        .route("/admin/rooms/{id}/close", post(api::close_room))
        .route("/admin/players", get(api::players))
        .route("/admin/players/{id}/kick", post(api::kick))
        .route("/admin/drain", post(api::drain))
        .route("/admin/recordings", get(recordings::list))
        .route("/admin/recordings/{file}", get(recordings::download))
        .route("/admin/cluster", get(api::cluster))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/{file}", get(dashboard::asset))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared);
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, service)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "admin listener failed");
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(shared): State<Arc<AdminEnv>>) -> (StatusCode, Json<serde_json::Value>) {
    let problems = shared.readiness_problems();
    if problems.is_empty() {
        (StatusCode::OK, Json(json!({ "ready": true })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reasons": problems })),
        )
    }
}

async fn metrics(State(shared): State<Arc<AdminEnv>>) -> Response {
    let text = shared.metrics.render(&shared.gauges());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// An admin API failure: an HTTP status and a JSON body `{"error", "message"}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.code, "message": self.message }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rally-admin\""),
            );
        }
        response
    }
}

/// Proof that a request carries the admin token: taking it as a handler argument guards
/// the handler. Carries the caller's address for the audit log.
#[derive(Debug, Clone)]
pub(crate) struct Operator {
    /// The caller's address, as text for logs.
    pub(crate) peer: String,
}

impl FromRequestParts<Arc<AdminEnv>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<AdminEnv>,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |c| c.0.to_string());
        let path = parts.uri.path().to_owned();
        let Some(expected) = shared.config.admin_token.as_ref() else {
            tracing::warn!(%peer, %path, "admin request refused: no admin_token is configured");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_disabled",
                "the admin API is off: no admin token is configured (set admin_token in rally.toml, \
                 RALLY_ADMIN_TOKEN or --admin-token)",
            ));
        };
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        let Some(given) = given else {
            tracing::warn!(%peer, %path, "admin request refused: no bearer token");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing admin token: send Authorization: Bearer <admin_token>",
            ));
        };
        // Constant time, so the comparison does not tell how much of a guess was right.
        // The digests are compared, not the tokens: they have one length whatever the
        // lengths of the tokens, so the time does not tell the token's length either.
        let digest = |t: &str| Sha256::digest(t.as_bytes());
        if !bool::from(digest(given).ct_eq(&digest(expected.expose()))) {
            // The token given is never logged: it may be a real one with a typo.
            tracing::warn!(%peer, %path, "admin request refused: wrong bearer token");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "wrong admin token",
            ));
        }
        Ok(Operator { peer })
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
