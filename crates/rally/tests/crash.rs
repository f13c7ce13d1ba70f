//! Nothing acknowledged is lost: a player streams `put_data` writes to `rally serve` (on
//! SQLite, the default backend) and the server is killed with SIGKILL at a random moment,
//! again and again. After each kill the database file passes `PRAGMA integrity_check`;
//! after each restart the last acknowledged write of the round before reads back through
//! the protocol; at the end every write ever acknowledged is in the database with its
//! value, and the versioned counter is at least at its last acknowledged version.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{serve, Player};
use rally_server::store::{AccountId, Store};
use rally_testkit::TestDb;
use sqlx::{ConnectOptions as _, Connection as _};

const ROUNDS: u32 = 24;

/// A small xorshift generator seeded from the clock: random kill moments, reproducible
/// from the seed the test prints.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

async fn integrity_check(path: &std::path::Path) {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .expect("open the database file");
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .expect("integrity_check");
    assert_eq!(verdict, "ok");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill_at_random_moments() {
    let started = Instant::now();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let db = TestDb::sqlite();
    let path = db.sqlite_path.clone().unwrap();
    let device = rally_testkit::unique_name("crash");
    // Every acknowledged write: key -> value; and the counter's last acknowledged version.
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut counter = 0u64;
    let mut last_key: Option<String> = None;
    let mut account = 0;
    let mut total_kills = 0;

    for round in 0..ROUNDS {
        // Writes stream as fast as the server acknowledges them: past the default
        // command_rate, which is not what this test is about.
        let server = serve(&db.url, &["--command-rate", "100000"]).await;
        let (mut p, _) = Player::connect(&server.tcp, None).await;
        let (id, _, _) = p.login(&device).await;
        assert!(
            account == 0 || id == account,
            "the same account every round"
        );
        account = id;
        if let Some(key) = &last_key {
            let (value, version) = p.get(key).await;
            assert_eq!(
                (value.as_deref(), version),
                (Some(acked[key].to_string().as_str()), 1),
                "round {round}: the last write acknowledged before the kill"
            );
        }
        // Where the counter is now: at least what was acknowledged, maybe one more (a
        // write committed whose answer the kill swallowed).
        let (value, version) = p.get("counter").await;
        assert!(
            version >= counter,
            "round {round}: counter {version} < acked {counter}"
        );
        if version > 0 {
            assert_eq!(value.as_deref(), Some(version.to_string().as_str()));
        }
        counter = version;

        // Stream writes; kill the server at a random moment while they flow.
        let kill_after = Duration::from_millis(rng.between(20, 250));
        let writer = async {
            let mut i = 0u64;
            loop {
                i += 1;
                let key = format!("r{round}-{i}");
                match p.put(&key, &i.to_string(), 0).await {
                    Some(Ok(1)) => {
                        acked.insert(key.clone(), i);
                        last_key = Some(key);
                    }
                    Some(other) => panic!("round {round}: put {key}: {other:?}"),
                    None => return,
                }
                match p.put("counter", &(counter + 1).to_string(), counter).await {
                    Some(Ok(v)) => counter = v,
                    Some(other) => panic!("round {round}: counter: {other:?}"),
                    None => return,
                }
            }
        };
        let kill = async {
            tokio::time::sleep(kill_after).await;
            server.kill().await;
        };
        // The writer ends when the connection dies.
        tokio::join!(writer, kill);
        total_kills += 1;
        integrity_check(&path).await;
    }

    // Every acknowledged write is there, read straight from the database.
    let store = Store::open(&db.url).await.expect("open the store");
    let entries = store
        .kv_list(AccountId(i64::try_from(account).unwrap()))
        .await
        .unwrap();
    let found: BTreeMap<&str, &serde_json::Value> =
        entries.iter().map(|e| (e.key.as_str(), &e.value)).collect();
    for (key, value) in &acked {
        assert_eq!(
            found.get(key.as_str()).and_then(|v| v.as_u64()),
            Some(*value),
            "acknowledged write {key} lost (seed {seed})"
        );
    }
    let counter_now = found.get("counter").and_then(|v| v.as_u64()).unwrap_or(0);
    assert!(
        counter_now >= counter,
        "counter {counter_now} < acked {counter}"
    );
    store.close().await;
    integrity_check(&path).await;
    assert!(!acked.is_empty(), "writes were acknowledged");
    eprintln!(
        "{total_kills} kills, {} acknowledged writes, counter {counter_now}, {:?}",
        acked.len(),
        started.elapsed()
    );
}
