//! The database goes away while players are connected (a real PostgreSQL, stopped and
//! started again through `RALLY_TEST_PG_CTL`): requests that need it get `UNAVAILABLE`
//! quickly, arena play goes on, a session token still logs in, `/readyz` says not ready,
//! and everything recovers by itself once the database is back.
//!
//! Alone in its test binary: stopping the shared PostgreSQL must not pull it out from
//! under other tests.

mod common;

use std::time::{Duration, Instant};

use common::{accounts_config, device_id, http, start_with_db, Client};
use rally_server::protocol::{ErrorCode, ServerMessage};
use rally_server::Config;
use rally_testkit::{TestDb, PG_CTL};

/// Runs `$RALLY_TEST_PG_CTL <action>`.
fn pg_ctl(ctl: &str, action: &str) {
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("{ctl} {action}"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run RALLY_TEST_PG_CTL");
    assert!(status.success(), "{PG_CTL} {action} failed");
}

/// Starts PostgreSQL again if the test ends (or panics) while it is stopped.
struct Restart<'a> {
    ctl: &'a str,
    stopped: bool,
}

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        if self.stopped {
            pg_ctl(self.ctl, "start");
        }
    }
}

/// Plays arena inputs until the player's `last_seq` reaches `seq`; returns the next seq.
async fn play(c: &mut Client, mut seq: u32, inputs: u32) -> u32 {
    let target = seq + inputs;
    while seq < target {
        seq += 1;
        c.input(seq, 0.3, -0.3).await;
        c.expect("a state with the input applied", |m| match m {
            ServerMessage::State { last_seq, .. } if *last_seq >= seq => Some(()),
            _ => None,
        })
        .await;
    }
    seq
}

#[tokio::test]
async fn players_keep_playing_through_a_database_outage_and_it_recovers() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Ok(ctl) = std::env::var(PG_CTL) else {
        rally_testkit::skip("the database outage test");
        return;
    };
    // Long enough that idle players are not dropped while the test waits on others; the
    // store fails fast while the database is down, well inside it.
    let config = Config {
        timeout_ms: 10_000,
        ..accounts_config(&db)
    };
    let server = start_with_db(config, &db).await;
    let (mut a, _) = Client::tcp_hello(server.tcp).await;
    let (mut b, _) = Client::ws_hello(server.ws).await;
    let (ida, token) = a.login(&device_id()).await;
    b.login(&device_id()).await;
    assert_eq!(a.put("save", "1", 0, false).await, Ok(1));
    a.join("arena").await;
    b.join("arena").await;
    let mut seq = play(&mut a, 0, 3).await;
    assert_eq!(
        http(server.admin, "GET", "/readyz", None, None)
            .await
            .status,
        200
    );

    let mut restart = Restart {
        ctl: &ctl,
        stopped: true,
    };
    pg_ctl(&ctl, "stop");

    // Requests that need the database: a clear error, within a quarter of timeout_ms for
    // the first ones to find out, at once for the others; the connection stays.
    let started = Instant::now();
    let (code, message) = a.put("save", "2", 1, false).await.unwrap_err();
    assert_eq!(code, ErrorCode::Unavailable, "{message}");
    assert!(
        started.elapsed() < Duration::from_millis(3_500),
        "{:?}",
        started.elapsed()
    );

    // Readiness says why.
    let mut not_ready = None;
    for _ in 0..100 {
        let r = http(server.admin, "GET", "/readyz", None, None).await;
        if r.status == 503 {
            not_ready = Some(r.body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = not_ready.expect("/readyz turns 503 while the database is down");
    assert!(body.contains("database"), "{body}");

    // Now that the server knows, requests fail at once.
    let started = Instant::now();
    let (code, _) = b.get(ida, "save").await.unwrap_err();
    assert_eq!(code, ErrorCode::Unavailable);
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "fails fast: {:?}",
        started.elapsed()
    );
    let r = b.profile(0).await;
    assert!(matches!(r, Err((ErrorCode::Unavailable, _))), "{r:?}");

    // Realtime play goes on, for both.
    seq = play(&mut a, seq, 5).await;
    play(&mut b, 0, 5).await;

    // A session token logs in without the database, and that player plays too. It is
    // a's account, so its join takes over a's seat (an account holds one seat in a room:
    // docs/protocol.md section 11a), and a is told so; c plays on from a's last input.
    let mut c = Client::tcp(server.tcp).await;
    assert_eq!(c.hello_token(&token).await.1, ida);
    c.join("arena").await;
    a.expect("room_closed for the seat taken over", |m| {
        matches!(m, ServerMessage::RoomClosed { .. }).then_some(())
    })
    .await;
    seq = play(&mut c, seq, 3).await;

    // The database comes back: nothing to do, the server recovers by itself.
    pg_ctl(&ctl, "start");
    restart.stopped = false;
    let mut recovered = false;
    for _ in 0..100 {
        if a.put("save", "2", 1, false).await == Ok(2) {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "writes work again after the restart");
    // A private entry of another player reads as missing.
    assert_eq!(b.get(ida, "save").await, Ok((None, 0, false)));
    let mut ready = false;
    for _ in 0..100 {
        if http(server.admin, "GET", "/readyz", None, None)
            .await
            .status
            == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "/readyz is 200 again");
    play(&mut c, seq, 2).await;

    for cl in [a, b, c] {
        cl.close().await;
    }
    assert_eq!(server.shutdown().await.unflushed_writes, 0);
    db.cleanup().await;
}
