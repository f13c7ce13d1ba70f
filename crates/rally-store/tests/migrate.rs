//! Servers starting at once against one fresh PostgreSQL database all migrate it: every
//! open succeeds, each migration is applied exactly once, and every store can then write
//! and read the others' rows. This rests on sqlx's advisory lock.
//!
//! Not on SQLite: there sqlx takes no lock, and two stores opening one fresh file at once
//! can both run the first migration ("table accounts already exists"; seen once in a few
//! runs on a loaded machine). One server per SQLite file is the documented setup; a
//! `rally migrate` racing a `rally serve` on one new file is the case that would hit it.

use rally_store::Store;
use serde_json::json;

use rally_testkit::db::{self as testkit, TestDb};

/// Servers starting at once: more than one, as many as a rolling deploy might start.
const SERVERS: usize = 4;

async fn servers_migrating_at_once(db: &TestDb) {
    let opens = (0..SERVERS).map(|_| {
        let config = db.store_config();
        tokio::spawn(Store::open_with(config))
    });
    let mut stores = Vec::new();
    for (i, open) in opens.collect::<Vec<_>>().into_iter().enumerate() {
        let store = open
            .await
            .expect("the open task does not panic")
            .unwrap_or_else(|e| {
                panic!(
                    "{}: server {i} failed to open and migrate: {e}",
                    db.backend()
                )
            });
        stores.push(store);
    }
    // Each migration once, all of them successful.
    let store = db.open_store().await;
    let applied = applied_migrations(db).await;
    assert!(
        !applied.is_empty(),
        "{}: no migration recorded",
        db.backend()
    );
    let mut versions: Vec<i64> = applied.iter().map(|(v, _)| *v).collect();
    versions.dedup();
    assert_eq!(
        versions.len(),
        applied.len(),
        "{}: a migration applied twice: {applied:?}",
        db.backend()
    );
    assert!(
        applied.iter().all(|(_, ok)| *ok),
        "{}: {applied:?}",
        db.backend()
    );
    // They share one schema: what one writes, another reads.
    let device = testkit::device_id();
    let me = stores[0].device_login(&device).await.expect("login");
    stores[1]
        .kv_put(me.id, "shared", &json!(1), None, false)
        .await
        .expect("write");
    let entry = stores[SERVERS - 1]
        .kv_get(me.id, "shared")
        .await
        .expect("read")
        .expect("the entry");
    assert_eq!(entry.value, json!(1));
    for s in stores {
        s.close().await;
    }
    store.close().await;
}

/// `_sqlx_migrations`: (version, success) in version order.
async fn applied_migrations(db: &TestDb) -> Vec<(i64, bool)> {
    const QUERY: &str = "SELECT version, success FROM _sqlx_migrations ORDER BY version";
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query_as(QUERY)
        .fetch_all(&mut conn)
        .await
        .expect("read _sqlx_migrations")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_servers_migrating_one_database_at_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    servers_migrating_at_once(&db).await;
    db.cleanup().await;
}
