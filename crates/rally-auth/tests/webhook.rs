//! The custom-login webhook client against a real HTTP server on 127.0.0.1: an accepted
//! credential, a refused one, a 500 followed by success (retried), a backend that never
//! answers (bounded, then unavailable) and one that is not there at all.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use rally_auth::{Webhook, WebhookError};
use serde_json::{json, Value};

/// What the fake backend does, and how many requests it saw.
#[derive(Clone)]
struct Backend {
    calls: Arc<AtomicU32>,
    /// Answer 500 to this many requests before answering normally.
    fail_first: u32,
    /// Never answer.
    hang: bool,
}

async fn login(State(b): State<Backend>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let n = b.calls.fetch_add(1, Ordering::SeqCst) + 1;
    if b.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if n <= b.fail_first {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({})));
    }
    match body["credential"].as_str() {
        Some("good-ada") => (
            StatusCode::OK,
            Json(json!({"external_id": "ada-1", "display_name": "Ada"})),
        ),
        Some("good-anon") => (StatusCode::OK, Json(json!({"external_id": "anon-7"}))),
        _ => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "bad credential"})),
        ),
    }
}

async fn backend(fail_first: u32, hang: bool) -> (String, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let state = Backend {
        calls: calls.clone(),
        fail_first,
        hang,
    };
    let app = Router::new().route("/auth", post(login)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/auth"), calls)
}

#[tokio::test]
async fn an_accepted_credential_gives_the_backends_identity() {
    let (url, calls) = backend(0, false).await;
    let hook = Webhook::new(&url, Duration::from_secs(5)).unwrap();
    let v = hook.verify("good-ada").await.unwrap();
    assert_eq!(v.external_id, "ada-1");
    assert_eq!(v.display_name.as_deref(), Some("Ada"));
    let v = hook.verify("good-anon").await.unwrap();
    assert_eq!((v.external_id.as_str(), v.display_name), ("anon-7", None));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refusal_is_final_and_not_retried() {
    let (url, calls) = backend(0, false).await;
    let hook = Webhook::new(&url, Duration::from_secs(5)).unwrap();
    let e = hook.verify("wrong").await.unwrap_err();
    assert!(
        matches!(&e, WebhookError::Refused { reason } if reason.contains("401")),
        "{e:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_500_is_retried_and_the_next_answer_counts() {
    let (url, calls) = backend(1, false).await;
    let hook = Webhook::new(&url, Duration::from_secs(5)).unwrap();
    let started = Instant::now();
    let v = hook.verify("good-ada").await.unwrap();
    assert_eq!(v.external_id, "ada-1");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "waited the backoff"
    );

    // Failing every time: three attempts, then unavailable.
    let (url, calls) = backend(u32::MAX, false).await;
    let hook = Webhook::new(&url, Duration::from_secs(5)).unwrap();
    let e = hook.verify("good-ada").await.unwrap_err();
    assert!(
        matches!(&e, WebhookError::Unavailable { detail } if detail.contains("500")),
        "{e:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// Paused time: the attempts' timeouts and the backoff waits run on tokio's clock, which
/// moves only when every task waits, so a loaded machine cannot push the third attempt
/// past the bound (the backend answering nothing is all that makes time pass).
#[tokio::test(start_paused = true)]
async fn a_backend_that_never_answers_is_unavailable_within_the_timeout() {
    let (url, calls) = backend(0, true).await;
    let hook = Webhook::new(&url, Duration::from_millis(900)).unwrap();
    let started = tokio::time::Instant::now();
    let e = hook.verify("good-ada").await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, WebhookError::Unavailable { .. }), "{e:?}");
    assert!(took <= Duration::from_millis(900), "bounded: {took:?}");
    // (900 - 375) / 3 = 175 ms per attempt, waits of 100-125 and 200-250 ms: all three fit.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_backend_that_is_not_there_is_unavailable_after_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    drop(listener);
    let hook = Webhook::new(&format!("http://{addr}/auth"), Duration::from_secs(5)).unwrap();
    let started = Instant::now();
    let e = hook.verify("good-ada").await.unwrap_err();
    assert!(
        matches!(&e, WebhookError::Unavailable { detail } if detail.contains("connect")),
        "{e:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "two backoffs: {:?}",
        started.elapsed()
    );
}
