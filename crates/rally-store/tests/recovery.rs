//! PostgreSQL goes away and comes back: calls in between fail as Unavailable within the
//! timeout, and the same store works again once the server is back, without reopening.
//!
//! It stops the real test server (`$RALLY_TEST_PG_CTL stop`, then `start`; see
//! scripts/postgres.sh), so it lives alone in this test binary: `cargo test` runs test
//! binaries one after another, so no other PostgreSQL test is running meanwhile. (Under
//! cargo-nextest, which runs binaries side by side, run this one on its own.)

use std::process::Command;
use std::time::{Duration, Instant};

use rally_store::{Store, StoreError};
use serde_json::json;

use rally_testkit::db::{self as testkit, TestDb};

/// Runs `$RALLY_TEST_PG_CTL <action>`, failing the test (with its output) if it fails.
fn pg_ctl(ctl: &str, action: &str) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{ctl} {action}"))
        .output()
        .unwrap_or_else(|e| panic!("running {ctl} {action}: {e}"));
    assert!(
        out.status.success(),
        "{ctl} {action}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the server again however the test ends, so a failure here does not leave the
/// next run without a database.
struct RestartOnDrop<'a>(&'a str);

impl Drop for RestartOnDrop<'_> {
    fn drop(&mut self) {
        pg_ctl(self.0, "start");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unavailable_then_recovers() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Some(ctl) = std::env::var(testkit::PG_CTL)
        .ok()
        .filter(|c| !c.is_empty())
    else {
        testkit::skip("the PostgreSQL recovery test (needs RALLY_TEST_PG_CTL too)");
        db.cleanup().await;
        return;
    };
    let timeout = Duration::from_secs(1);
    let mut config = db.store_config();
    config.timeout = timeout;
    let store = Store::open_with(config).await.unwrap();
    let me = store.device_login(&testkit::device_id()).await.unwrap();
    assert_eq!(
        store.kv_put(me.id, "k", &json!(1), None, false).await,
        Ok(1)
    );

    {
        let _restart = RestartOnDrop(&ctl);
        pg_ctl(&ctl, "stop");

        // The first calls find out, each within the timeout: a read, then a write.
        let started = Instant::now();
        let read = store.account(me.id).await;
        assert!(
            matches!(read, Err(StoreError::Unavailable { .. })),
            "read while down: {read:?}"
        );
        assert!(started.elapsed() < timeout + Duration::from_millis(500));
        let started = Instant::now();
        let write = store.kv_put(me.id, "k", &json!(2), Some(1), false).await;
        assert!(
            matches!(&write, Err(e) if e.is_transient()),
            "write while down: {write:?}"
        );
        assert!(started.elapsed() < timeout + Duration::from_millis(500));
        assert!(store.ping().await.is_err());

        // Then many at once: one waits for the database, the others fail at once.
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    (store.account(me.id).await, started.elapsed())
                })
            })
            .collect();
        let mut fast = 0;
        for call in calls {
            let (result, took) = call.await.unwrap();
            assert!(
                matches!(result, Err(StoreError::Unavailable { .. })),
                "{result:?}"
            );
            assert!(took < timeout + Duration::from_millis(500), "{took:?}");
            if took < Duration::from_millis(200) {
                fast += 1;
            }
        }
        assert!(fast >= 19, "{fast} of 20 calls failed fast");
        // _restart starts the server here.
    }

    // The very next call works: dead pooled connections are replaced, not handed out.
    assert_eq!(store.account(me.id).await.unwrap().id, me.id);
    assert_eq!(
        store.kv_put(me.id, "k", &json!(2), Some(1), false).await,
        Ok(2)
    );
    assert_eq!(
        store.kv_get(me.id, "k").await.unwrap().map(|e| e.value),
        Some(json!(2))
    );
    store.close().await;
    db.cleanup().await;
}
