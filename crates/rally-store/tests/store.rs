//! The storage suite: every case is written once (module `cases`) and run on both
//! backends, `sqlite::<case>` always and `postgres::<case>` when `RALLY_TEST_POSTGRES_URL`
//! is set (see `rally_testkit::db`). Cases use the public API only; the SQLite-only file checks
//! (journal mode, integrity) open the file itself.

use std::time::{Duration, Instant, SystemTime};

use rally_store::{AccountId, Store, StoreConfig, StoreError};
use serde_json::json;

use rally_testkit::db::{self as testkit, TestDb};
use rally_testkit::eventually as testkit_wait;
use std::future::Future as _;

/// Runs each listed case as `sqlite::<case>` and `postgres::<case>`.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let db = rally_testkit::TestDb::sqlite();
                    crate::cases::$case(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(db) = rally_testkit::TestDb::postgres().await else { return };
                    crate::cases::$case(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

on_both_backends!(
    migrations_are_idempotent,
    device_login_finds_or_creates,
    concurrent_first_logins_make_one_account,
    invalid_arguments_are_refused,
    profile_display_name,
    stats_count_sessions_and_games,
    kv_versions,
    kv_concurrent_writers_one_wins,
    kv_permissions,
    kv_values_and_limits,
    match_results,
    durable_without_close,
    close_waits_for_in_flight_writes,
    blocked_write_is_unavailable_within_the_timeout,
);

fn conflict<T>(current: Option<u64>) -> Result<T, StoreError> {
    Err(StoreError::Conflict { current })
}

fn invalid_field<T: std::fmt::Debug>(r: Result<T, StoreError>) -> &'static str {
    match r {
        Err(StoreError::Invalid { field, .. }) => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

mod cases {
    use super::*;

    pub async fn migrations_are_idempotent(db: &TestDb) {
        let store = db.open_store().await;
        let me = store.device_login(&testkit::device_id()).await.unwrap();
        store.close().await;

        // Opening again runs the migrator over an up-to-date schema; so does `migrate`.
        let store = db.open_store().await;
        rally_store::migrate(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        assert_eq!(store.account(me.id).await.unwrap(), me);
        store.close().await;
    }

    pub async fn device_login_finds_or_creates(db: &TestDb) {
        let store = db.open_store().await;
        let device = testkit::device_id();
        let first = store.device_login(&device).await.unwrap();
        assert_eq!(first.display_name, format!("player-{}", first.id));
        let again = store.device_login(&device).await.unwrap();
        assert_eq!(again, first, "the same device finds the same account");

        let other = store.device_login(&testkit::device_id()).await.unwrap();
        assert_ne!(other.id, first.id);

        // Custom ids are their own space: the same string is another account.
        let custom = store.custom_login(&device).await.unwrap();
        assert_ne!(custom.id, first.id);
        assert_eq!(store.custom_login(&device).await.unwrap(), custom);
        assert_eq!(store.custom_login("42").await.unwrap().id, {
            store.custom_login("42").await.unwrap().id
        });

        // Creation counts nothing yet.
        assert_eq!(store.stats(first.id).await.unwrap(), Default::default());
        store.close().await;
    }

    pub async fn concurrent_first_logins_make_one_account(db: &TestDb) {
        let store = db.open_store().await;
        for _ in 0..3 {
            let device = testkit::device_id();
            let tasks: Vec<_> = (0..32)
                .map(|_| {
                    let store = store.clone();
                    let device = device.clone();
                    tokio::spawn(async move { store.device_login(&device).await })
                })
                .collect();
            let mut ids = Vec::new();
            for task in tasks {
                ids.push(task.await.unwrap().unwrap().id);
            }
            ids.dedup();
            assert_eq!(ids.len(), 1, "one account for one device: {ids:?}");
            assert_eq!(store.device_login(&device).await.unwrap().id, ids[0]);
            store.stats(ids[0]).await.unwrap();
        }
        store.close().await;
    }

    pub async fn invalid_arguments_are_refused(db: &TestDb) {
        let store = db.open_store().await;
        let me = store.device_login(&testkit::device_id()).await.unwrap();

        assert_eq!(
            invalid_field(store.device_login("short").await),
            "device_id"
        );
        assert_eq!(
            invalid_field(store.device_login(&"x".repeat(129)).await),
            "device_id"
        );
        assert_eq!(
            invalid_field(store.device_login("with space in it").await),
            "device_id"
        );
        assert_eq!(invalid_field(store.custom_login("").await), "external_id");
        assert_eq!(
            invalid_field(store.set_display_name(me.id, "").await),
            "display_name"
        );
        assert_eq!(
            invalid_field(store.set_display_name(me.id, &"n".repeat(33)).await),
            "display_name"
        );
        assert_eq!(
            invalid_field(store.set_display_name(me.id, "new\nline").await),
            "display_name"
        );
        assert_eq!(
            invalid_field(store.kv_put(me.id, "a/b", &json!(1), None, false).await),
            "key"
        );
        assert_eq!(invalid_field(store.kv_get(me.id, "").await), "key");
        assert_eq!(
            invalid_field(store.kv_delete(me.id, &"k".repeat(65), 1).await),
            "key"
        );
        let now = SystemTime::now();
        let r = json!({});
        assert_eq!(
            invalid_field(store.record_match("arena", &[], now, 1, &r).await),
            "players"
        );
        assert_eq!(
            invalid_field(
                store
                    .record_match("arena", &[me.id, me.id], now, 1, &r)
                    .await
            ),
            "players"
        );
        assert_eq!(
            invalid_field(store.record_match("a rena", &[me.id], now, 1, &r).await),
            "kind"
        );
        assert_eq!(
            invalid_field(
                store
                    .record_match(
                        "arena",
                        &[me.id],
                        SystemTime::UNIX_EPOCH - Duration::from_secs(1),
                        1,
                        &r
                    )
                    .await
            ),
            "started_at"
        );
        assert_eq!(
            invalid_field(store.record_session(me.id, u64::MAX).await),
            "play_ms"
        );

        // Nothing was written by any of those.
        assert_eq!(store.kv_list(me.id).await.unwrap(), vec![]);
        assert_eq!(store.stats(me.id).await.unwrap(), Default::default());
        assert_eq!(store.account(me.id).await.unwrap(), me);
        store.close().await;
    }

    pub async fn profile_display_name(db: &TestDb) {
        let store = db.open_store().await;
        let me = store.device_login(&testkit::device_id()).await.unwrap();
        store.set_display_name(me.id, "Zoë 🦀").await.unwrap();
        let read = store.account(me.id).await.unwrap();
        assert_eq!(read.display_name, "Zoë 🦀");
        assert_eq!(read.created_at, me.created_at);
        // Login returns the profile too.
        let device_again = store.device_login(&testkit::device_id()).await.unwrap();
        assert_ne!(device_again.display_name, "Zoë 🦀");

        let nobody = AccountId(i64::MAX);
        assert_eq!(
            store.account(nobody).await,
            Err(StoreError::NotFound { what: "account" })
        );
        assert_eq!(
            store.set_display_name(nobody, "ghost").await,
            Err(StoreError::NotFound { what: "account" })
        );
        store.close().await;
    }

    pub async fn stats_count_sessions_and_games(db: &TestDb) {
        let store = db.open_store().await;
        let me = store.device_login(&testkit::device_id()).await.unwrap();
        store.record_session(me.id, 1_500).await.unwrap();
        store.record_session(me.id, 2_500).await.unwrap();
        store.record_game(me.id).await.unwrap();

        // Concurrent increments are not lost.
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.record_session(me.id, 10).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let stats = store.stats(me.id).await.unwrap();
        assert_eq!(stats.sessions, 22);
        assert_eq!(stats.play_ms, 4_200);
        assert_eq!(stats.games_played, 1);

        let nobody = AccountId(i64::MAX);
        assert_eq!(
            store.stats(nobody).await,
            Err(StoreError::NotFound { what: "account" })
        );
        assert_eq!(
            store.record_session(nobody, 1).await,
            Err(StoreError::NotFound { what: "account" })
        );
        assert_eq!(
            store.record_game(nobody).await,
            Err(StoreError::NotFound { what: "account" })
        );
        store.close().await;
    }

    pub async fn kv_versions(db: &TestDb) {
        let store = db.open_store().await;
        let me = store.device_login(&testkit::device_id()).await.unwrap();

        assert_eq!(store.kv_get(me.id, "save").await.unwrap(), None);
        assert_eq!(
            store
                .kv_put(me.id, "save", &json!({"lvl": 1}), None, false)
                .await,
            Ok(1)
        );
        // Creating again: it exists at version 1.
        assert_eq!(
            store
                .kv_put(me.id, "save", &json!({"lvl": 9}), None, false)
                .await,
            conflict(Some(1))
        );
        assert_eq!(
            store
                .kv_put(me.id, "save", &json!({"lvl": 2}), Some(1), false)
                .await,
            Ok(2)
        );
        // A stale version (and a future one) is refused with the current one.
        assert_eq!(
            store
                .kv_put(me.id, "save", &json!({"lvl": 9}), Some(1), false)
                .await,
            conflict(Some(2))
        );
        assert_eq!(
            store
                .kv_put(me.id, "save", &json!({"lvl": 9}), Some(3), false)
                .await,
            conflict(Some(2))
        );
        assert_eq!(
            store
                .kv_put(me.id, "save", &json!(9), Some(u64::MAX), false)
                .await,
            conflict(Some(2))
        );
        // Replacing what does not exist.
        assert_eq!(
            store.kv_put(me.id, "nope", &json!(1), Some(1), false).await,
            conflict(None)
        );

        let entry = store.kv_get(me.id, "save").await.unwrap().unwrap();
        assert_eq!(entry.key, "save");
        assert_eq!(
            entry.value,
            json!({"lvl": 2}),
            "the refused writes left no trace"
        );
        assert_eq!(entry.version, 2);
        assert!(!entry.public_read);
        assert!(entry.updated_at <= SystemTime::now());

        store
            .kv_put(me.id, "a.first", &json!("x"), None, true)
            .await
            .unwrap();
        let keys: Vec<_> = store
            .kv_list(me.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.version, e.public_read))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("a.first".to_string(), 1, true),
                ("save".to_string(), 2, false)
            ]
        );

        assert_eq!(store.kv_delete(me.id, "save", 1).await, conflict(Some(2)));
        assert_eq!(store.kv_delete(me.id, "save", 2).await, Ok(()));
        assert_eq!(store.kv_get(me.id, "save").await.unwrap(), None);
        assert_eq!(store.kv_delete(me.id, "save", 2).await, conflict(None));
        // Recreated from scratch.
        assert_eq!(
            store.kv_put(me.id, "save", &json!(null), None, false).await,
            Ok(1)
        );
        store.close().await;
    }

    pub async fn kv_concurrent_writers_one_wins(db: &TestDb) {
        let store = db.open_store().await;
        let me = store.device_login(&testkit::device_id()).await.unwrap();
        // Racing creators: one creates, the rest see version 1.
        let results = race(&store, me.id, None).await;
        assert_eq!(results.iter().filter(|r| **r == Ok(1)).count(), 1);
        assert!(results
            .iter()
            .all(|r| *r == Ok(1) || *r == Err(StoreError::Conflict { current: Some(1) })));
        // Racing updaters of version 1: one makes version 2, the rest are refused.
        let results = race(&store, me.id, Some(1)).await;
        assert_eq!(results.iter().filter(|r| **r == Ok(2)).count(), 1);
        assert!(results
            .iter()
            .all(|r| *r == Ok(2) || *r == Err(StoreError::Conflict { current: Some(2) })));
        store.close().await;
    }

    async fn race(
        store: &Store,
        owner: AccountId,
        expected: Option<u64>,
    ) -> Vec<Result<u64, StoreError>> {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .kv_put(owner, "contested", &json!(i), expected, false)
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        results
    }

    pub async fn kv_permissions(db: &TestDb) {
        let store = db.open_store().await;
        let owner = store.device_login(&testkit::device_id()).await.unwrap().id;
        let other = store.device_login(&testkit::device_id()).await.unwrap().id;
        store
            .kv_put(owner, "private", &json!("mine"), None, false)
            .await
            .unwrap();
        store
            .kv_put(owner, "public", &json!("ours"), None, true)
            .await
            .unwrap();

        // The owner reads everything.
        let own = store
            .kv_get_as(owner, owner, "private")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(own.value, json!("mine"));
        // Others read public-read entries only.
        let public = store
            .kv_get_as(other, owner, "public")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(public.value, json!("ours"));
        // A private entry of someone else reads like a missing one: its existence stays private.
        assert_eq!(store.kv_get_as(other, owner, "private").await, Ok(None));
        assert_eq!(store.kv_get_as(other, owner, "missing").await, Ok(None));

        // Making it private again takes effect at once.
        store
            .kv_put(owner, "public", &json!("now mine"), Some(1), false)
            .await
            .unwrap();
        assert_eq!(store.kv_get_as(other, owner, "public").await, Ok(None));
        // Others' writes go to their own space, never to the owner's.
        store
            .kv_put(other, "private", &json!("theirs"), None, false)
            .await
            .unwrap();
        assert_eq!(
            store.kv_get(owner, "private").await.unwrap().unwrap().value,
            json!("mine")
        );

        // No account, no entries.
        assert_eq!(
            store
                .kv_put(AccountId(i64::MAX), "k", &json!(1), None, false)
                .await,
            Err(StoreError::NotFound { what: "account" })
        );
        store.close().await;
    }

    pub async fn kv_values_and_limits(db: &TestDb) {
        let mut config = db.store_config();
        config.max_value_bytes = 64;
        let store = Store::open_with(config).await.unwrap();
        let me = store.device_login(&testkit::device_id()).await.unwrap();
        let value =
            json!({"n": -1.5, "big": 9007199254740993_u64, "s": "é\u{1F980}\"", "l": [true, null]});
        store.kv_put(me.id, "v", &value, None, false).await.unwrap();
        assert_eq!(
            store.kv_get(me.id, "v").await.unwrap().unwrap().value,
            value
        );

        let too_big = json!("x".repeat(63)); // 65 bytes with its quotes
        assert_eq!(
            invalid_field(store.kv_put(me.id, "big", &too_big, None, false).await),
            "value"
        );
        let fits = json!("x".repeat(62));
        assert_eq!(store.kv_put(me.id, "big", &fits, None, false).await, Ok(1));
        store.close().await;
    }

    pub async fn match_results(db: &TestDb) {
        let store = db.open_store().await;
        let a = store.device_login(&testkit::device_id()).await.unwrap().id;
        let b = store.device_login(&testkit::device_id()).await.unwrap().id;
        let c = store.device_login(&testkit::device_id()).await.unwrap().id;
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_000);

        let first = store
            .record_match("arena", &[b, a], t0, 60_000, &json!({"winner": b.0}))
            .await
            .unwrap();
        let second = store
            .record_match(
                "tictactoe",
                &[a, c],
                t0 + Duration::from_secs(90),
                30_000,
                &json!({"draw": true}),
            )
            .await
            .unwrap();
        assert!(second > first);

        assert_eq!(store.stats(a).await.unwrap().games_played, 2);
        assert_eq!(store.stats(b).await.unwrap().games_played, 1);
        assert_eq!(store.stats(c).await.unwrap().games_played, 1);

        let recent = store.recent_matches(a, 10).await.unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].id, second, "newest first");
        assert_eq!(recent[0].kind, "tictactoe");
        assert_eq!(recent[0].players, {
            let mut p = vec![a, c];
            p.sort();
            p
        });
        assert_eq!(recent[0].result, json!({"draw": true}));
        assert_eq!(recent[1].id, first);
        assert_eq!(recent[1].started_at, t0);
        assert_eq!(recent[1].duration_ms, 60_000);
        assert_eq!(recent[1].players, {
            let mut p = vec![a, b];
            p.sort();
            p
        });
        assert_eq!(store.recent_matches(a, 1).await.unwrap().len(), 1);
        assert_eq!(store.recent_matches(a, 0).await.unwrap(), vec![]);
        assert_eq!(store.recent_matches(b, 10).await.unwrap().len(), 1);

        // A missing player: nothing is recorded, nobody's count moves.
        let r = store
            .record_match("arena", &[a, AccountId(i64::MAX)], t0, 1, &json!({}))
            .await;
        assert_eq!(r, Err(StoreError::NotFound { what: "account" }));
        assert_eq!(store.stats(a).await.unwrap().games_played, 2);
        assert_eq!(store.recent_matches(a, 10).await.unwrap().len(), 2);

        // Results are bounded like values.
        let mut config = db.store_config();
        config.max_result_bytes = 10;
        let small = Store::open_with(config).await.unwrap();
        assert_eq!(
            invalid_field(
                small
                    .record_match("arena", &[a], t0, 1, &json!("0123456789"))
                    .await
            ),
            "result"
        );
        small.close().await;
        store.close().await;
    }

    pub async fn durable_without_close(db: &TestDb) {
        let device = testkit::device_id();
        let (me, version) = {
            let store = db.open_store().await;
            let me = store.device_login(&device).await.unwrap();
            store.set_display_name(me.id, "Kept").await.unwrap();
            let v = store
                .kv_put(me.id, "save", &json!([1, 2, 3]), None, false)
                .await
                .unwrap();
            store.record_session(me.id, 77).await.unwrap();
            // Dropped without close: only what was committed counts.
            (me, v)
        };
        let store = db.open_store().await;
        let again = store.device_login(&device).await.unwrap();
        assert_eq!(again.id, me.id);
        assert_eq!(again.display_name, "Kept");
        let entry = store.kv_get(me.id, "save").await.unwrap().unwrap();
        assert_eq!((entry.value, entry.version), (json!([1, 2, 3]), version));
        assert_eq!(store.stats(me.id).await.unwrap().play_ms, 77);
        store.close().await;
    }

    pub async fn close_waits_for_in_flight_writes(db: &TestDb) {
        let store = db.open_store().await;
        let me = store.device_login(&testkit::device_id()).await.unwrap();
        // Writes held in flight (waiting on another connection's lock) when close begins.
        let blocker = db.block_kv_writes().await;
        // A write is in flight once its first poll has run: `Store::call` takes its
        // in-flight permit there, before its first wait. Counting first polls (rather
        // than sleeping and hoping) makes "in flight when close begins" hold on a loaded
        // machine too.
        let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writers: Vec<_> = (0..10)
            .map(|i| {
                let store = store.clone();
                let started = started.clone();
                tokio::spawn(async move {
                    let key = format!("k{i}");
                    let value = json!(i);
                    let mut put = std::pin::pin!(store.kv_put(me.id, &key, &value, None, false));
                    let mut first = true;
                    std::future::poll_fn(|cx| {
                        let poll = put.as_mut().poll(cx);
                        if std::mem::take(&mut first) {
                            started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        poll
                    })
                    .await
                })
            })
            .collect();
        testkit_wait("the ten writes are in flight", || {
            started.load(std::sync::atomic::Ordering::SeqCst) == 10
        })
        .await;
        assert!(
            writers.iter().all(|w| !w.is_finished()),
            "the writes wait on the blocker"
        );
        let closing = tokio::spawn({
            let store = store.clone();
            async move { store.close().await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !closing.is_finished(),
            "close waits for the writes in flight"
        );
        assert!(
            matches!(store.ping().await, Err(StoreError::Other { .. })),
            "a closing store takes no new call"
        );
        blocker.release().await;
        closing.await.unwrap();
        for w in writers {
            assert_eq!(w.await.unwrap(), Ok(1), "every write in flight completed");
        }

        let store = db.open_store().await;
        assert_eq!(store.kv_list(me.id).await.unwrap().len(), 10);
        store.close().await;
    }

    /// A write stuck behind another connection's lock fails as Unavailable within the
    /// timeout instead of hanging, and for good: releasing the lock later does not let it
    /// through. Reads go on meanwhile.
    pub async fn blocked_write_is_unavailable_within_the_timeout(db: &TestDb) {
        // Setup and the checks that are not about the bound use the default timeout: on a
        // loaded machine a new connection alone can take longer than 400 ms.
        let roomy = db.open_store().await;
        let me = roomy.device_login(&testkit::device_id()).await.unwrap();
        let mut config = db.store_config();
        config.timeout = Duration::from_millis(400);
        let store = Store::connect(config).await.unwrap();
        // Warm its pool first: the bound is about the lock, and a connection made on a
        // loaded machine may alone take longer than it.
        let mut warm = false;
        for _ in 0..40 {
            if store.account(me.id).await.is_ok() {
                warm = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(warm, "the 400 ms store never got a connection");
        let blocker = db.block_kv_writes().await;

        let started = Instant::now();
        let err = store
            .kv_put(me.id, "k", &json!(1), None, false)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_millis(1_500),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(roomy.account(me.id).await.unwrap().id, me.id);

        // Past the statement's own bound, the refused write is gone for good.
        tokio::time::sleep(Duration::from_millis(400)).await;
        blocker.release().await;
        assert_eq!(roomy.kv_get(me.id, "k").await, Ok(None));
        assert_eq!(
            roomy.kv_put(me.id, "k", &json!(1), None, false).await,
            Ok(1)
        );
        store.close().await;
        roomy.close().await;
    }
}

// ---- SQLite only: the file itself ----

#[tokio::test]
async fn sqlite_file_is_wal_and_intact() {
    let db = TestDb::sqlite();
    let store = db.open_store().await;
    assert_eq!(store.backend(), rally_store::Backend::Sqlite);
    let me = store.device_login(&testkit::device_id()).await.unwrap();
    for i in 0..50 {
        store
            .kv_put(me.id, &format!("k{i}"), &json!(i), None, i % 2 == 0)
            .await
            .unwrap();
    }
    let path = db.sqlite_path.clone().unwrap();
    assert!(path.exists(), "rally.db was created");
    // Checked while the store still has it open, as after a crash.
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    sqlx::Connection::close(conn).await.unwrap();
    store.close().await;
}

use sqlx::ConnectOptions;

#[tokio::test]
async fn sqlite_bad_paths_are_clear_errors_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/rally.db");
    let err = Store::open(&format!("sqlite://{}", missing.display()))
        .await
        .unwrap_err();
    match &err {
        StoreError::Invalid {
            field: "database_url",
            reason,
        } => {
            assert!(reason.contains("no/such/dir"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(&format!("sqlite://{}/rally.db", file.display()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid { field: "database_url", reason } if reason.contains("not a directory")),
        "{err:?}"
    );
    // A file that is not a database.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let err = Store::open(&format!("sqlite://{}", junk.display()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Invalid {
                field: "database_url",
                ..
            }
        ),
        "{err:?}"
    );
    for url in ["sqlite::memory:", "mysql://localhost/db", "rally.db"] {
        assert!(
            matches!(
                Store::open(url).await,
                Err(StoreError::Invalid {
                    field: "database_url",
                    ..
                })
            ),
            "{url}"
        );
    }
}

/// Nothing listens on the port: opening fails as Unavailable within the timeout, whether
/// or not a test PostgreSQL is configured.
#[tokio::test]
async fn postgres_unreachable_is_unavailable_within_the_timeout() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: connections to it are refused
    let mut config = StoreConfig::new(format!("postgres://rally:x@127.0.0.1:{port}/rally"));
    config.timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = Store::open_with(config).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
}

/// TLS the server cannot give (the test server has none) is a setup problem, reported at
/// once and not retried, with or without the crate's `tls` feature.
#[tokio::test]
async fn postgres_tls_refusal_is_not_transient() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let mut config = db.store_config();
    config.database_url.push_str("&sslmode=require");
    let err = Store::open_with(config).await.unwrap_err();
    assert!(matches!(err, StoreError::Other { .. }), "{err:?}");
    assert!(err.to_string().contains("TLS"), "{err}");
    db.cleanup().await;
}
