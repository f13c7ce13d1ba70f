//! Nothing acknowledged is lost when the process dies: a child process (this test binary,
//! run again as `writer_child`) streams writes and prints an acknowledgement after each
//! `Ok`; the parent kills it with SIGKILL at a random moment, reopens the database and checks
//! that every acknowledged write is there with the value written (and, on SQLite, that the
//! file is intact). Repeated 20 times per backend. A child that ends before it is killed
//! (a panic, a failed write) fails the test with its exit status and stderr.
//!
//! The kill points come from a seed, printed with the command that replays it
//! (`RALLY_CRASH_SEED=N`); where the kill lands against the child's commit stays a race,
//! which is what the test is for.
//!
//! SIGKILL tests the store's side of durability (a write is acknowledged only after its
//! commit; recovery from the WAL on reopen); surviving power loss rests on the fsync that
//! `synchronous=FULL` adds to every commit, which no test here can cut.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use rally_store::{AccountId, Store, StoreConfig};
use serde_json::json;
use sqlx::ConnectOptions;

use rally_testkit::db::{self as testkit, TestDb};

const ROUNDS: usize = 20;
const CHILD_URL: &str = "RALLY_STORE_CRASH_CHILD_URL";
const CHILD_DEVICE: &str = "RALLY_STORE_CRASH_CHILD_DEVICE";
/// Replays the kill points of a run (the seed a run prints).
const SEED: &str = "RALLY_CRASH_SEED";
const SIGKILL: i32 = 9;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_acknowledged_writes_survive_sigkill() {
    let db = TestDb::sqlite();
    crash_rounds(&db, "sqlite_acknowledged_writes_survive_sigkill").await;
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
    crash_rounds(&db, "postgres_acknowledged_writes_survive_sigkill").await;
    db.cleanup().await;
}

async fn crash_rounds(db: &TestDb, test: &str) {
    let seed = match std::env::var(SEED) {
        Ok(s) => s.trim().parse().expect("RALLY_CRASH_SEED is a number"),
        Err(_) => random(),
    };
    // Shown with the test's output when it fails (the harness holds it back otherwise).
    println!("seed {seed}: replay with {SEED}={seed} cargo test -p rally-store --test crash {test} -- --exact");
    let mut rng = seed;
    let device = testkit::device_id();
    let me = {
        let store = db.open_store().await;
        let me = store.device_login(&device).await.expect("login");
        store.close().await;
        me.id
    };
    let mut total = 0;
    for round in 0..ROUNDS {
        // Kill after 1..=40 acknowledgements: early, mid-stream, and sometimes between
        // the commit and its acknowledgement.
        let kill_after = 1 + (next(&mut rng) % 40) as usize;
        let acked = run_child_until(db, &device, kill_after, seed);
        let store = db.open_store().await;
        for ack in &acked {
            match ack {
                Ack::Created(key, value) => {
                    let entry = store.kv_get(me, key).await.expect("read");
                    let found = entry.map(|e| (e.value, e.version));
                    assert_eq!(
                        found,
                        Some((json!(value), 1)),
                        "seed {seed} round {round}: acknowledged {key} = {value} (version 1)"
                    );
                }
                Ack::Counter(version, value) => {
                    let entry = store
                        .kv_get(me, "counter")
                        .await
                        .expect("read")
                        .unwrap_or_else(|| panic!("seed {seed} round {round}: counter missing"));
                    // Later writes (acknowledged or not) only raise both.
                    assert!(
                        entry.version >= *version,
                        "seed {seed} round {round}: counter acknowledged at version {version}, found {}",
                        entry.version
                    );
                    let found = entry.value.as_u64().expect("the counter holds a number");
                    if entry.version == *version {
                        assert_eq!(found, *value, "seed {seed} round {round}: counter value");
                    } else {
                        assert!(
                            found > *value,
                            "seed {seed} round {round}: counter went back"
                        );
                    }
                }
            }
        }
        store.close().await;
        total += acked.len();
    }
    assert!(
        total >= ROUNDS,
        "seed {seed}: {total} acknowledgements in {ROUNDS} rounds"
    );
}

/// An acknowledged write: a created key and its value, or the counter's version and value.
enum Ack {
    Created(String, u64),
    Counter(u64, u64),
}

/// Runs the writer child and kills it with SIGKILL once it has acknowledged `kill_after`
/// writes; returns what it acknowledged. A child that ends on its own fails the test.
fn run_child_until(db: &TestDb, device: &str, kill_after: usize, seed: u64) -> Vec<Ack> {
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
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("piped stdout");
    // Read on a thread so that a chatty child never blocks on a full stderr pipe.
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let parse = |s: &str| -> u64 { s.parse().expect("a number in an ACK line") };
    let mut acked = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let fields: Vec<&str> = line.split(' ').collect();
        match fields[..] {
            ["ACK", "created", key, value] => acked.push(Ack::Created(key.into(), parse(value))),
            ["ACK", "counter", version, value] => {
                acked.push(Ack::Counter(parse(version), parse(value)))
            }
            _ => continue,
        }
        if acked.len() >= kill_after {
            child.kill().expect("SIGKILL the writer");
            killed = true;
            break;
        }
    }
    let status = child.wait().expect("reap the writer");
    let errors = errors.join().unwrap_or_default();
    // Died by our SIGKILL, not by itself: a child that exited (or was killed by anything
    // else) before we killed it shows up here, even when its acknowledgements check out.
    assert!(
        killed && status.signal() == Some(SIGKILL),
        "seed {seed}: the writer ended by itself after {} acknowledgements ({status}): {errors}",
        acked.len()
    );
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
        writeln!(out, "ACK created {key} {i}").expect("stdout");
        out.flush().expect("stdout");
        let v = store
            .kv_put(me, "counter", &json!(i), version, false)
            .await
            .expect("child update");
        version = Some(v);
        writeln!(out, "ACK counter {v} {i}").expect("stdout");
        out.flush().expect("stdout");
    }
}

/// splitmix64: the kill points of a run, from its seed.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}
