//! The three acceptance tests of SPEC.md section 5, over real sockets on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, Client, TestServer};
use rally_server::protocol::{ClientMessage, ServerMessage};
use rally_server::{
    BoxFuture, Command, CommandChecks, CommandContext, CommandError, PlayerData, Server,
};

/// 1. A session with one queued message processes it and sends exactly one reply, of
/// the expected type.
#[tokio::test]
async fn one_queued_message_gets_exactly_one_reply() {
    let server = TestServer::start(config()).await;
    let mut c = Client::tcp(server.tcp).await;
    // Hello and one ping queued together in a single write.
    let mut body = Vec::new();
    let mut bytes = Vec::new();
    ClientMessage::Hello {
        version: 1,
        client: "t",
        resume: None,
        token: None,
    }
    .encode(&mut body);
    rally_server::protocol::frame::encode(&body, &mut bytes);
    body.clear();
    ClientMessage::Ping { nonce: 41 }.encode(&mut body);
    rally_server::protocol::frame::encode(&body, &mut bytes);
    c.send_bytes(&bytes).await;
    assert!(matches!(
        c.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    assert_eq!(c.recv().await, Some(ServerMessage::Pong { nonce: 41 }));
    // Had the ping produced a second reply, it would arrive before this pong.
    c.send(&ClientMessage::Ping { nonce: 42 }).await;
    assert_eq!(c.recv().await, Some(ServerMessage::Pong { nonce: 42 }));
    c.close().await;
    assert!(server.shutdown().await.drained);
}

/// Checks that each take 100 ms before deferring to the real ones.
struct SlowChecks(Arc<dyn CommandChecks>);

const CHECK_TIME: Duration = Duration::from_millis(100);

impl CommandChecks for SlowChecks {
    fn validate<'a>(
        &'a self,
        cmd: &'a Command,
        ctx: &'a CommandContext,
    ) -> BoxFuture<'a, Result<(), CommandError>> {
        Box::pin(async move {
            tokio::time::sleep(CHECK_TIME).await;
            self.0.validate(cmd, ctx).await
        })
    }

    fn load_player<'a>(
        &'a self,
        ctx: &'a CommandContext,
    ) -> BoxFuture<'a, Result<PlayerData, CommandError>> {
        Box::pin(async move {
            tokio::time::sleep(CHECK_TIME).await;
            self.0.load_player(ctx).await
        })
    }

    fn authorize<'a>(
        &'a self,
        cmd: &'a Command,
        ctx: &'a CommandContext,
    ) -> BoxFuture<'a, Result<(), CommandError>> {
        Box::pin(async move {
            tokio::time::sleep(CHECK_TIME).await;
            self.0.authorize(cmd, ctx).await
        })
    }
}

/// 2. A command whose three checks each take 100 ms completes in under 200 ms.
#[tokio::test(start_paused = true)]
async fn three_100ms_checks_complete_in_under_200ms() {
    let builder = Server::builder(config(), common::games()).checks(|d| Arc::new(SlowChecks(d)));
    let server = TestServer::start_with(builder).await;
    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    let started = tokio::time::Instant::now();
    let (room, player) = c.join("arena").await;
    let took = started.elapsed();
    assert!(room > 0 && player > 0);
    assert!(took >= CHECK_TIME, "the checks ran: {took:?}");
    assert!(
        took < Duration::from_millis(200),
        "checks ran concurrently: {took:?}"
    );

    // A failing check cancels the others and becomes the client's error, still under 200 ms.
    c.send(&ClientMessage::Join {
        req: 9,
        kind: "arena",
    })
    .await;
    let started = tokio::time::Instant::now();
    let (code, _, req) = c.expect_error().await;
    assert_eq!((code.name(), req), ("ALREADY_IN_ROOM", 9));
    assert!(started.elapsed() < Duration::from_millis(200));
    c.close().await;
    assert!(server.shutdown().await.drained);
}

/// 3. Shutdown waits for a live connection: 100 ms after it starts, with a slow player
/// still connected, it has not completed.
#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_a_live_connection() {
    let mut server = TestServer::start(config()).await;
    let (mut slow, _) = Client::tcp_hello(server.tcp).await;
    slow.join("arena").await;
    server.begin_shutdown();
    slow.expect("shutdown", |m| {
        matches!(m, ServerMessage::Shutdown { .. }).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !server.task.is_finished(),
        "shutdown must wait for the connected player"
    );
    // Once the player closes, the drain completes cleanly.
    slow.close().await;
    let report = tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .unwrap()
        .unwrap();
    assert!(report.drained, "{report:?}");
    assert_eq!(report.forced, 0);
}

/// A player that never closes is closed at the end of the grace period.
#[tokio::test(start_paused = true)]
async fn shutdown_forces_stragglers_after_the_grace_period() {
    let mut cfg = config();
    cfg.shutdown_grace_ms = 500;
    let mut server = TestServer::start(cfg).await;
    let (mut stuck, _) = Client::tcp_hello(server.tcp).await;
    server.begin_shutdown();
    stuck
        .expect("shutdown", |m| {
            matches!(m, ServerMessage::Shutdown { .. }).then_some(())
        })
        .await;
    let report = tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .unwrap()
        .unwrap();
    assert!(!report.drained);
    assert!(report.forced >= 1);
    assert!(report.duration >= Duration::from_millis(500));
    assert_eq!(stuck.expect_closed().await, None);
}
