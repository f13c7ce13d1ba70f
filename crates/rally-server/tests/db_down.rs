//! The writes nobody waits for (a session's stats when it ends) while the database is
//! unreachable: they wait for it and land once it is back; at shutdown they get one last
//! try and are dropped with an error in the logs, so shutdown is not held up by a database
//! that is gone (README, "Accounts and data").
//!
//! The server reaches the real test PostgreSQL through a TCP proxy in this test, which
//! cuts every connection and refuses new ones while "down": the outage is this server's
//! alone, so the shared PostgreSQL other tests use keeps running.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{accounts_config, device_id, games, http, Client, TestServer};
use rally_server::{Config, DatabaseUrl, Server};
use rally_testkit::TestDb;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A TCP proxy to `target` that can be cut and restored.
struct Proxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (up, rx) = watch::channel(true);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                // Down: accepted and closed at once, as a database that is gone would.
                if !*rx.borrow() {
                    continue;
                }
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        // Cut: both sockets are dropped mid-conversation.
                        _ = rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { addr, up, task }
    }

    fn down(&self) {
        self.up.send_replace(false);
    }

    fn up(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `url` with its `host:port` replaced by `addr`.
fn via(url: &str, addr: SocketAddr) -> (String, SocketAddr) {
    let at = url.find('@').expect("a user in the URL") + 1;
    let end = at + url[at..].find('/').expect("a database in the URL");
    let target = url[at..end]
        .parse()
        .expect("the test PostgreSQL is host:port");
    (format!("{}{addr}{}", &url[..at], &url[end..]), target)
}

/// A server on `db` through a proxy; the direct `Config` for checking what landed.
async fn start_behind_proxy(db: &TestDb) -> (TestServer, Proxy, Config) {
    let direct = Config {
        timeout_ms: 4_000,
        ..accounts_config(db)
    };
    let (_, target) = via(&db.url, "127.0.0.1:1".parse().expect("addr"));
    let proxy = Proxy::start(target).await;
    let (url, _) = via(&db.url, proxy.addr);
    let proxied = Config {
        database_url: DatabaseUrl::new(url),
        ..direct.clone()
    };
    let store = rally_server::open_store(&proxied)
        .await
        .expect("open via the proxy");
    let server = TestServer::start_with(Server::builder(proxied, games()).store(store)).await;
    (server, proxy, direct)
}

/// Waits (bounded) until `/readyz` answers `status`.
async fn readyz(server: &TestServer, status: u16) {
    for _ in 0..200 {
        if http(server.admin, "GET", "/readyz", None, None)
            .await
            .status
            == status
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/readyz never answered {status}");
}

/// A player logs in and leaves while the database is down: its session's stats are a
/// pending background write. Returns its account.
async fn leave_during_outage(server: &TestServer, proxy: &Proxy) -> i64 {
    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    let (account, _) = c.login(&device_id()).await;
    proxy.down();
    readyz(server, 503).await;
    c.close().await;
    common::eventually("the session's stats write is pending", || {
        server.handle.pending_writes() == 1
    })
    .await;
    i64::try_from(account).expect("an account id")
}

#[tokio::test]
async fn background_writes_wait_out_an_outage_and_land() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (server, proxy, direct) = start_behind_proxy(&db).await;
    let account = leave_during_outage(&server, &proxy).await;
    // The write waits rather than failing: still pending after two probe periods.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.handle.pending_writes(), 1, "the write gave up");
    proxy.up();
    readyz(&server, 200).await;
    common::eventually("the write lands", || server.handle.pending_writes() == 0).await;
    let store = db.open(&direct).await;
    let stats = store
        .stats(rally_store::AccountId(account))
        .await
        .expect("stats");
    assert_eq!(
        stats.sessions, 1,
        "the session waited out the outage: {stats:?}"
    );
    store.close().await;
    assert_eq!(server.shutdown().await.unflushed_writes, 0);
    db.cleanup().await;
}

/// Decided: shutdown does not wait for a database that is gone. It drains the players as
/// usual; each pending write gets one more try, which fails at once, and is dropped with a
/// `warn` naming what was not recorded; the report has no unflushed write left running and
/// `rally serve` exits 0 (the drain succeeded). What is lost: those writes, no more.
#[tokio::test]
async fn shutdown_while_the_database_is_down_is_prompt_and_drops_pending_writes() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (server, proxy, direct) = start_behind_proxy(&db).await;
    let account = leave_during_outage(&server, &proxy).await;
    let started = Instant::now();
    let report = server.shutdown().await;
    let took = started.elapsed();
    // Far under the five minutes a write waits while the server runs.
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert!(report.drained, "{report:?}");
    assert_eq!(report.unflushed_writes, 0, "{report:?}");
    proxy.up();
    let store = db.open(&direct).await;
    let stats = store
        .stats(rally_store::AccountId(account))
        .await
        .expect("stats");
    assert_eq!(
        stats.sessions, 0,
        "the dropped write did not land later: {stats:?}"
    );
    store.close().await;
    db.cleanup().await;
}

/// Plays arena inputs until the room has applied `inputs` more; returns the last seq.
async fn play(c: &mut Client, mut seq: u32, inputs: u32) -> u32 {
    let target = seq + inputs;
    while seq < target {
        seq += 1;
        c.input(seq, 0.3, -0.3).await;
        c.expect("a state with the input applied", |m| match m {
            rally_server::protocol::ServerMessage::State { last_seq, .. } if *last_seq >= seq => {
                Some(())
            }
            _ => None,
        })
        .await;
    }
    seq
}

/// SQLite has no server to lose; what takes it away from Rally is another process holding
/// its write lock (a backup tool, a migration run by hand, a stuck writer) past the busy
/// timeout. Writes then get `UNAVAILABLE` within `timeout_ms`, reads and play go on, and
/// once the lock is released everything works without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_held_by_another_process_is_unavailable_then_recovers() {
    let db = TestDb::sqlite();
    let config = Config {
        timeout_ms: 2_000,
        ..accounts_config(&db)
    };
    let server = common::start_with_db(config, &db).await;
    let (mut a, _) = Client::tcp_hello(server.tcp).await;
    let (id, _) = a.login(&device_id()).await;
    assert_eq!(a.put("save", "1", 0, false).await, Ok(1));
    a.join("arena").await;
    let mut seq = play(&mut a, 0, 2).await;

    // Another connection takes the file's write lock and keeps it. (Taking the file
    // from readers too needs exclusive locking mode, which SQLite refuses while the
    // server's connections have it open: readers share the WAL index.)
    let holder = db.block_kv_writes().await;

    let started = Instant::now();
    let (code, message) = a.put("save", "2", 1, false).await.unwrap_err();
    assert_eq!(
        code,
        rally_server::protocol::ErrorCode::Unavailable,
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "within timeout_ms: {:?}",
        started.elapsed()
    );
    // Reads go on: WAL lets them past a writer.
    assert_eq!(
        a.get(id, "save").await.map(|(v, _, _)| v),
        Ok(Some("1".into()))
    );
    // Play goes on.
    seq = play(&mut a, seq, 3).await;
    let ready = http(server.admin, "GET", "/readyz", None, None)
        .await
        .status;
    eprintln!("/readyz while SQLite is held: {ready}");

    // The file is free again: no restart needed.
    holder.release().await;
    let mut recovered = false;
    for _ in 0..100 {
        if a.put("save", "2", 1, false).await == Ok(2) {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "writes work again once the file is free");
    play(&mut a, seq, 1).await;
    a.close().await;
    assert_eq!(server.shutdown().await.unflushed_writes, 0);
    db.cleanup().await;
}
