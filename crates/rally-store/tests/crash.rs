//! Nothing acknowledged is lost when the process dies: a child process (this test binary,
//! run again as `writer_child`) streams writes and prints an acknowledgement after each
//! `Ok`; the parent kills it with SIGKILL at a random moment, reopens the database and checks
//! that every acknowledged write is there (and, on SQLite, that the file is intact). Repeated
//! 20 times per backend.
//!
//! SIGKILL tests the store's side of durability (a write is acknowledged only after its
//! commit; recovery from the WAL on reopen); surviving power loss rests on the fsync that
//! `synchronous=FULL` adds to every commit, which no test here can cut.

mod common;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use rally_store::{AccountId, Store, StoreConfig};
use serde_json::json;
use sqlx::ConnectOptions;

use common::TestDb;

const ROUNDS: usize = 20;
const CHILD_URL: &str = "RALLY_STORE_CRASH_CHILD_URL";
const CHILD_DEVICE: &str = "RALLY_STORE_CRASH_CHILD_DEVICE";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_acknowledged_writes_survive_sigkill() {
    let db = TestDb::sqlite();
    crash_rounds(&db).await;
    let path = db.sqlite_path.clone().expect("a SQLite file");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .expect("open the file");
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .expect("integrity_check");
    assert_eq!(integrity, "ok");
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_acknowledged_writes_survive_sigkill() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    crash_rounds(&db).await;
    db.cleanup().await;
}

async fn crash_rounds(db: &TestDb) {
    let device = common::device_id();
    let me = {
        let store = db.open().await;
        let me = store.device_login(&device).await.expect("login");
        store.close().await;
        me.id
    };
    let mut total = 0;
    for round in 0..ROUNDS {
        // Kill after 1..=40 acknowledgements: early, mid-stream, and sometimes between
        // the commit and its acknowledgement.
        let kill_after = 1 + (random() % 40) as usize;
        let acked = run_child_until(db, &device, kill_after);
        let store = db.open().await;
        for ack in &acked {
            match ack {
                Ack::Created(key) => assert!(
                    store.kv_get(me, key).await.expect("read").is_some(),
                    "round {round}: acknowledged {key} is missing"
                ),
                Ack::Counter(v) => {
                    let entry = store.kv_get(me, "counter").await.expect("read");
                    let current = entry.map_or(0, |e| e.version);
                    assert!(
                        current >= *v,
                        "round {round}: counter acknowledged at {v}, found {current}"
                    );
                }
            }
        }
        store.close().await;
        total += acked.len();
    }
    assert!(
        total >= ROUNDS,
        "{total} acknowledgements in {ROUNDS} rounds"
    );
}

enum Ack {
    Created(String),
    Counter(u64),
}

/// Runs the writer child and kills it with SIGKILL once it has acknowledged `kill_after`
/// writes (or when it ends, which it should not); returns what it acknowledged.
fn run_child_until(db: &TestDb, device: &str, kill_after: usize) -> Vec<Ack> {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "writer_child",
            "--exact",
            "--nocapture",
            "--include-ignored",
        ])
        .env(CHILD_URL, &db.url)
        .env(CHILD_DEVICE, device)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(key) = line.strip_prefix("ACK created ") {
            acked.push(Ack::Created(key.to_string()));
        } else if let Some(v) = line.strip_prefix("ACK counter ") {
            acked.push(Ack::Counter(v.parse().expect("a version")));
        } else {
            continue;
        }
        if acked.len() >= kill_after {
            child.kill().expect("SIGKILL the writer");
            break;
        }
    }
    child.wait().expect("reap the writer");
    acked
}

/// The child: writes until killed (or until its parent stops reading: a write to the
/// closed pipe fails and ends it), printing each acknowledged write.
#[tokio::test]
#[ignore = "run by the crash tests as their child process"]
async fn writer_child() {
    let (Ok(url), Ok(device)) = (std::env::var(CHILD_URL), std::env::var(CHILD_DEVICE)) else {
        return;
    };
    let mut config = StoreConfig::new(url);
    config.timeout = Duration::from_secs(10);
    let store = Store::open_with(config).await.expect("child open");
    let me: AccountId = store.device_login(&device).await.expect("child login").id;
    let mut version = store
        .kv_get(me, "counter")
        .await
        .expect("child read")
        .map(|e| e.version);
    let mut out = std::io::stdout();
    let salt = random();
    for i in 0u64..100_000 {
        let key = format!("k{salt:x}-{i}");
        store
            .kv_put(me, &key, &json!(i), None, false)
            .await
            .expect("child create");
        writeln!(out, "ACK created {key}").expect("stdout");
        out.flush().expect("stdout");
        let v = store
            .kv_put(me, "counter", &json!(i), version, false)
            .await
            .expect("child update");
        version = Some(v);
        writeln!(out, "ACK counter {v}").expect("stdout");
        out.flush().expect("stdout");
    }
}

fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}
