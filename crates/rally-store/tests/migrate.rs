//! Servers starting at once against one fresh database all migrate it: every open
//! succeeds, each migration is applied exactly once, and every store can then write and
//! read the others' rows. On PostgreSQL this rests on sqlx's advisory lock; on SQLite,
//! where sqlx takes none, on the store's own lock file beside the database (`<db>.lock`) (without it,
//! two stores opening one fresh file at once both ran the first migration: "table accounts
//! already exists").

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
    if db.backend() == "sqlite" {
        let mut conn = sqlx::SqliteConnection::connect(&db.url)
            .await
            .expect("connect");
        return sqlx::query_as(QUERY)
            .fetch_all(&mut conn)
            .await
            .expect("read _sqlx_migrations");
    }
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query_as(QUERY)
        .fetch_all(&mut conn)
        .await
        .expect("read _sqlx_migrations")
}

/// The race is a narrow window, so it is run many times, each on a new file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_servers_migrating_one_new_file_at_once() {
    for _ in 0..20 {
        let db = TestDb::sqlite();
        servers_migrating_at_once(&db).await;
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_servers_migrating_one_database_at_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    servers_migrating_at_once(&db).await;
    db.cleanup().await;
}
