//! JSON logs, captured in a buffer through the same layer `rally serve --log-format json`
//! installs: task-end events carry `task_id`, `async_model` and `duration_ms`; every
//! error a client receives is logged once with its code and session id; no resume token
//! and no admin token ever appears.
//!
//! The subscriber is the test thread's default, and `#[tokio::test]` runs the server on
//! that one thread, so every event of the server lands in the buffer.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{admin_config, http, Client, TestServer, ADMIN_TOKEN};
use rally_server::protocol::{ClientMessage, ErrorCode, ServerMessage};
use rally_server::{Config, LogFormat};
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Layer as _;

/// Log lines written by the subscriber.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn events(buffer: &Buffer) -> (String, Vec<Value>) {
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).expect("UTF-8 logs");
    let events = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a JSON line ({e}): {l}")))
        .collect();
    (text, events)
}

fn with_message<'a>(events: &'a [Value], message: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["message"] == message).collect()
}

fn assert_task_end(e: &Value, task_id: &str) {
    assert_eq!(e["task_id"], task_id, "{e}");
    assert_eq!(e["async_model"], "async_await", "{e}");
    assert!(e["duration_ms"].is_u64(), "{e}");
}

#[tokio::test]
async fn json_logs_carry_task_fields_and_errors_and_never_a_secret() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let layer = rally_server::logging::layer(LogFormat::Json, move || writer.clone())
        .with_filter(tracing_subscriber::EnvFilter::new("rally_server=debug"));
    let _logs = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let server = TestServer::start(Config {
        reconnect_grace_ms: 10_000,
        ..admin_config()
    })
    .await;
    // A joins, drops without leaving, and comes back with its resume token.
    let mut a = Client::tcp(server.tcp).await;
    let (sid_a, token_a) = a.hello_with(None).await;
    let (room, _) = a.join("arena").await;
    drop(a);
    let mut a2 = Client::tcp(server.tcp).await;
    let (sid_a2, token_a2) = a2.hello_with(Some(&token_a)).await;
    a2.expect("joined again", |m| {
        matches!(m, ServerMessage::Joined { req: 0, .. }).then_some(())
    })
    .await;
    // C sends an input outside a room (an error), then is kicked (a fatal one).
    let (mut c, sid_c) = Client::tcp_hello(server.tcp).await;
    c.input(1, 1.0, 0.0).await;
    assert_eq!(c.expect_error().await.0, ErrorCode::NotInRoom);
    let almost = format!("{ADMIN_TOKEN}!");
    let r = http(
        server.admin,
        "POST",
        &format!("/admin/players/{sid_c}/kick"),
        Some(&almost),
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    let r = http(
        server.admin,
        "POST",
        &format!("/admin/players/{sid_c}/kick"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(c.expect_closed().await, Some(ErrorCode::Kicked));
    a2.send(&ClientMessage::Leave { req: 1 }).await;
    a2.expect("left", |m| {
        matches!(m, ServerMessage::Left { .. }).then_some(())
    })
    .await;
    a2.close().await;
    server.shutdown().await;

    let (text, events) = events(&buffer);
    for secret in [
        token_a.as_str(),
        token_a2.as_str(),
        ADMIN_TOKEN,
        almost.as_str(),
    ] {
        assert!(!secret.is_empty());
        assert!(
            !text.contains(secret),
            "a secret in the logs: {secret}\n{text}"
        );
    }
    for e in &events {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(e.get(field).is_some(), "{field} missing: {e}");
        }
    }

    // Each error a client received: logged once, with its code and session id.
    let errors: Vec<&Value> = events
        .iter()
        .filter(|e| e["message"] == "error to client" || e["message"] == "fatal error to client")
        .collect();
    let count = |code: &str, sid: u64| {
        errors
            .iter()
            .filter(|e| e["code"] == code && e["session_id"] == sid)
            .count()
    };
    assert_eq!(count("NOT_IN_ROOM", sid_c), 1, "{text}");
    assert_eq!(count("KICKED", sid_c), 1, "{text}");
    assert_eq!(errors.len(), 2, "no other errors were sent: {errors:?}");
    let kicked = errors.iter().find(|e| e["code"] == "KICKED").unwrap();
    assert_eq!(kicked["level"], "INFO", "fatal errors are logged at info");

    // Task ends carry task_id, async_model and duration_ms.
    let sessions = with_message(&events, "session ended");
    for sid in [sid_a, sid_a2, sid_c] {
        let e = sessions
            .iter()
            .find(|e| e["session_id"] == sid)
            .unwrap_or_else(|| panic!("session {sid} ended: {text}"));
        assert_task_end(e, &format!("session-{sid}"));
    }
    let rooms = with_message(&events, "room ended");
    assert_eq!(rooms.len(), 1, "{text}");
    assert_task_end(rooms[0], &format!("room-{room}"));
    let commands = with_message(&events, "command ended");
    let join = commands
        .iter()
        .find(|e| e["command"] == "join")
        .expect("the join's end");
    assert_task_end(join, &format!("command-{sid_a}-1"));
    let resume = commands
        .iter()
        .find(|e| e["command"] == "resume")
        .expect("the resume's end");
    assert_task_end(resume, &format!("command-{sid_a2}-0"));
    for listener in ["listener-tcp", "listener-ws"] {
        let e = with_message(&events, "listener stopped");
        let e = e
            .iter()
            .find(|e| e["task_id"] == listener)
            .unwrap_or_else(|| panic!("{listener} stopped: {text}"));
        assert_task_end(e, listener);
    }

    // The operator's actions are in the log, with the operator's address.
    let kicks = with_message(&events, "admin: player kicked");
    assert_eq!(kicks.len(), 1, "{text}");
    assert_eq!(kicks[0]["session_id"], sid_c);
    assert!(kicks[0]["operator"]
        .as_str()
        .is_some_and(|o| o.starts_with("127.0.0.1:")));
    assert_eq!(
        with_message(&events, "admin request refused: wrong bearer token").len(),
        1
    );
}
