//! The tick loop's promise (README, "How it behaves under pressure"): a room that falls
//! behind skips the ticks it missed and counts them in `rally_missed_ticks_total`; it never
//! runs them back to back to catch up (a burst would send a player several states at once
//! and run the game several times with no time between).
//!
//! Time is paused: the test moves the clock 3.5 periods at once between two ticks, which
//! is what the room sees when a tick (a slow game, a stalled worker) takes that long; the
//! states' arrival times are then exact, however loaded the machine is.

mod common;

use std::time::Duration;

use common::{config, scrape, Client, TestServer};
use rally_server::protocol::ServerMessage;
use tokio::time::Instant;

/// When (on the paused clock) the next state arrived.
async fn next_state(c: &mut Client) -> Instant {
    c.expect("a state", |m| {
        matches!(m, ServerMessage::State { .. }).then_some(())
    })
    .await;
    Instant::now()
}

#[tokio::test(start_paused = true)]
async fn a_room_that_falls_behind_skips_missed_ticks_and_never_bursts() {
    let mut cfg = config();
    cfg.tick_hz = 20;
    let period = Duration::from_millis(50);
    let server = TestServer::start(cfg).await;
    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    c.join("arena").await;

    // Two ordinary ticks: a period apart.
    let a = next_state(&mut c).await;
    let b = next_state(&mut c).await;
    assert_eq!(b - a, period, "ticks are a period apart");
    let missed_before = scrape(server.admin)
        .await
        .value("rally_missed_ticks_total", &[]);

    // The room falls 3.5 periods behind.
    tokio::time::advance(period * 7 / 2).await;
    let first = next_state(&mut c).await;
    let second = next_state(&mut c).await;
    let third = next_state(&mut c).await;
    // Never burst: no two states at one instant; after the late tick the room is back on
    // its schedule, a period apart.
    assert!(
        second - first >= period / 4,
        "two states {:?} apart right after the stall: a burst",
        second - first
    );
    assert_eq!(third - second, period, "back on schedule");
    // Skipped and counted: three periods passed with no tick.
    let missed = scrape(server.admin)
        .await
        .value("rally_missed_ticks_total", &[])
        - missed_before;
    assert!(
        (2.0..=4.0).contains(&missed),
        "{missed} missed ticks counted"
    );
    c.close().await;
    server.shutdown().await;
}
