//! A NATS server with JetStream of a test's own, for the cluster tests: the
//! `nats-server` binary `scripts/nats.sh` installs (its path in `RALLY_NATS_SERVER`),
//! started on a free 127.0.0.1 port with its store in a temporary directory, stopped
//! (killed) when dropped. Each test gets its own, so tests never see each other's nodes,
//! and one may stop and restart its server under play.
//!
//! Without `RALLY_NATS_SERVER`, [`NatsServer::start`] prints a marked skip line (counted
//! by `scripts/test.sh`) and returns `None`, unless `RALLY_REQUIRE_NATS=1` (CI), which
//! makes it a failure.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::db::SKIP_MARK;

/// The `nats-server` binary to run (`eval "$(scripts/nats.sh)"` sets it).
pub const NATS_SERVER: &str = "RALLY_NATS_SERVER";
/// Set to `1` (CI) to fail, rather than skip, cluster tests without [`NATS_SERVER`].
pub const REQUIRE_NATS: &str = "RALLY_REQUIRE_NATS";

/// How long a started server has to accept connections.
const START_LIMIT: Duration = Duration::from_secs(10);
/// Ports tried before giving up.
const START_TRIES: usize = 5;

/// A running nats-server (killed when dropped).
#[derive(Debug)]
pub struct NatsServer {
    bin: PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
    store: tempfile::TempDir,
    child: Option<Child>,
}

/// Says that `what` is skipped for want of a NATS server (or panics when
/// [`REQUIRE_NATS`]`=1`).
pub fn skip_nats(what: &str) {
    if std::env::var(REQUIRE_NATS).is_ok_and(|v| v == "1") {
        panic!(
            "{what}: {REQUIRE_NATS}=1 but {NATS_SERVER} is not set (eval \"$(scripts/nats.sh)\")"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "{SKIP_MARK} (no NATS) {what}: set {NATS_SERVER} (scripts/nats.sh)"
    );
}

impl NatsServer {
    /// Starts a server, or `None` (after [`skip_nats`]) without the binary.
    pub fn start(what: &str) -> Option<NatsServer> {
        let Some(bin) = std::env::var_os(NATS_SERVER).filter(|b| !b.is_empty()) else {
            skip_nats(what);
            return None;
        };
        // A free port, released for the server to take. Another process (a test running
        // beside this one) may take it first: the server then exits, having written no
        // ports file, and another port is tried. Without that check the test would talk
        // to whoever listens there, another test's NATS among them.
        for _ in 0..START_TRIES {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut server = NatsServer {
                bin: PathBuf::from(&bin),
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                store: tempfile::tempdir().expect("a temporary directory"),
                child: None,
            };
            if server.try_start() {
                return Some(server);
            }
        }
        panic!("nats-server did not start on a free port in {START_TRIES} tries");
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store (after [`kill`](Self::kill)),
    /// and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(
            self.try_start(),
            "nats-server could not listen on {} again (taken meanwhile?)",
            self.addr
        );
    }

    /// Kills the server if it runs, starts it on `addr` with `store`, and waits until it
    /// says it listens (its ports file). False when it exited first (the port was taken).
    fn try_start(&mut self) -> bool {
        self.kill();
        let ports = self.store.path().join("ports");
        let _ = std::fs::create_dir_all(&ports);
        let child = Command::new(&self.bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.addr.port().to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .arg("--ports_file_dir")
            .arg(&ports)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.bin.display()));
        let mine = format!("_{}.ports", child.id());
        let child = self.child.insert(child);
        let started = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return false;
            }
            let listening = std::fs::read_dir(&ports).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(&mine))
            });
            if listening && TcpStream::connect(self.addr).is_ok() {
                return true;
            }
            assert!(
                started.elapsed() < START_LIMIT,
                "nats-server did not listen on {} within {START_LIMIT:?}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
