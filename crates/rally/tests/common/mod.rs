//! A `rally serve` child process and a raw-TCP player, for the binary's end-to-end tests.
#![allow(dead_code)] // each test binary uses a different part of this

use std::process::Stdio;
use std::time::Duration;

use rally_server::protocol::{frame, ClientMessage, ErrorCode, ServerMessage};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

pub const RALLY: &str = env!("CARGO_BIN_EXE_rally");
/// The bound on starting, stopping, and any one reply.
pub const LIMIT: Duration = Duration::from_secs(20);

/// A running `rally serve`.
pub struct Served {
    pub child: Child,
    /// Its TCP game address.
    pub tcp: String,
    /// Its WebSocket and admin listeners' addresses (`host:port`).
    pub ws: String,
    pub admin: String,
    /// Every line it has logged so far (stderr), kept for tests that read the logs.
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Starts `rally serve` on ephemeral ports with `database_url` and extra flags; returns once
/// it logs that it is serving.
pub async fn serve(database_url: &str, extra: &[&str]) -> Served {
    serve_on("127.0.0.1", database_url, extra).await
}

/// Like [`serve`], with every listener on `host` port 0 (`::1` for IPv6). A
/// `--shutdown-grace-ms` in `extra` replaces the default of 2000.
pub async fn serve_on(host: &str, database_url: &str, extra: &[&str]) -> Served {
    serve_via(Command::new(RALLY), host, database_url, extra).await
}

/// Like [`serve_on`], with `rally` started by `command` (e.g. a shell that sets a
/// resource limit first and then runs `rally` with the arguments it is given).
pub async fn serve_via(
    mut command: Command,
    host: &str,
    database_url: &str,
    extra: &[&str],
) -> Served {
    let any = |h: &str| {
        if h.contains(':') {
            format!("[{h}]:0")
        } else {
            format!("{h}:0")
        }
    };
    let grace: &[&str] = if extra.contains(&"--shutdown-grace-ms") {
        &[]
    } else {
        &["--shutdown-grace-ms", "2000"]
    };
    let mut child = command
        .args(["serve", "--tcp", &any(host), "--http", &any(host)])
        .args(["--admin", &any(host), "--log-format", "json"])
        .args(grace)
        .args(["--database-url", database_url])
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start rally serve");
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = |line: &str| {
        if let Ok(mut l) = logs.lock() {
            l.push(line.to_owned());
        }
    };
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let (tcp, ws, admin) = tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.expect("read the logs") {
            keep(&line);
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            // JSON log lines are flat: the event's fields sit beside `message`.
            if v["message"] == "rally is serving" {
                let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                let ws = field("ws");
                let ws = ws.trim_start_matches("ws://").trim_end_matches("/ws");
                return (field("tcp"), ws.to_owned(), field("admin"));
            }
        }
        panic!("rally serve exited before serving");
    })
    .await
    .expect("rally serve starts in time");
    // Keep draining (and keeping) the logs so the child never blocks on a full pipe.
    let kept = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut l) = kept.lock() {
                l.push(line);
            }
        }
    });
    Served {
        child,
        tcp,
        ws,
        admin,
        logs,
    }
}

impl Served {
    /// Sends `signal` (`INT`, `TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// SIGTERM, then waits for the drain; returns whether it exited 0.
    pub async fn terminate(mut self) -> bool {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        tokio::time::timeout(LIMIT, self.child.wait())
            .await
            .expect("rally exits in time after SIGTERM")
            .expect("wait for rally")
            .success()
    }

    /// SIGKILL: no drain, no flush, no goodbye.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL rally");
    }
}

/// A player over raw TCP, speaking only the documented protocol.
pub struct Player {
    stream: TcpStream,
    buf: Vec<u8>,
    next_req: u32,
    /// The resume token of its `welcome`.
    pub resume_token: String,
}

/// A reply: the success message, or the error's code and message.
pub type Reply = Result<ServerMessage, (ErrorCode, String)>;

impl Player {
    /// Connects and says `hello` (with a session token if given); returns the player and
    /// welcome's account id.
    pub async fn connect(addr: &str, token: Option<&str>) -> (Player, u64) {
        let (mut p, reply) = Player::hello(addr, token).await;
        match reply {
            Some(ServerMessage::Welcome {
                account_id,
                resume_token,
                ..
            }) => {
                p.resume_token = resume_token;
                (p, account_id)
            }
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// Connects and says `hello` with `token`; returns the first reply (`welcome`, or the
    /// error a refused token gets), without judging it.
    pub async fn try_connect(addr: &str, token: &str) -> Option<ServerMessage> {
        Player::hello(addr, Some(token)).await.1
    }

    /// Connects, says `hello`, and reads the first reply (`None`: closed first).
    async fn hello(addr: &str, token: Option<&str>) -> (Player, Option<ServerMessage>) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let mut p = Player {
            stream,
            buf: Vec::new(),
            next_req: 1,
            resume_token: String::new(),
        };
        p.send(ClientMessage::Hello {
            version: 1,
            client: "e2e",
            resume: None,
            token,
        })
        .await
        .expect("send hello");
        let reply = p.recv().await;
        (p, reply)
    }

    pub async fn send(&mut self, msg: ClientMessage<'_>) -> std::io::Result<()> {
        let mut body = Vec::new();
        msg.encode(&mut body);
        let mut wire = Vec::new();
        frame::encode(&body, &mut wire);
        self.stream.write_all(&wire).await
    }

    /// The next message, or None once the connection is closed.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        tokio::time::timeout(LIMIT, async {
            loop {
                if let Some((n, body)) = frame::decode(&self.buf, 1 << 24).expect("a frame") {
                    let m = ServerMessage::decode(body).expect("a server message");
                    self.buf.drain(..n);
                    return Some(m);
                }
                let mut chunk = [0u8; 8192];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .expect("a message in time")
    }

    /// A fresh request id.
    pub fn req(&mut self) -> u32 {
        self.next_req += 1;
        self.next_req
    }

    /// Sends a request built for `req` and waits for its reply; `None` if the connection
    /// closed first (the server died).
    pub async fn call(
        &mut self,
        build: impl FnOnce(u32) -> ClientMessage<'static>,
    ) -> Option<Reply> {
        let req = self.req();
        self.send(build(req)).await.ok()?;
        loop {
            let m = self.recv().await?;
            let answers = match &m {
                ServerMessage::Session { req: r, .. }
                | ServerMessage::Data { req: r, .. }
                | ServerMessage::Written { req: r, .. }
                | ServerMessage::Profile { req: r, .. }
                | ServerMessage::Redirect { req: r, .. }
                | ServerMessage::Ok { req: r }
                | ServerMessage::Joined { req: r, .. } => *r == req,
                ServerMessage::Error { req: r, .. } | ServerMessage::Conflict { req: r, .. } => {
                    *r == req
                }
                _ => false,
            };
            if answers {
                return Some(match m {
                    ServerMessage::Error { code, message, .. } => Err((code, message)),
                    ServerMessage::Conflict { message, .. } => Err((ErrorCode::Conflict, message)),
                    other => Ok(other),
                });
            }
        }
    }

    /// Device login; returns the account id, the session token and the display name.
    pub async fn login(&mut self, device: &str) -> (u64, String, String) {
        let device = device.to_owned();
        let req = self.req();
        self.send(ClientMessage::Login {
            req,
            provider: "device",
            credential: &device,
        })
        .await
        .expect("send login");
        loop {
            match self.recv().await {
                Some(ServerMessage::Session {
                    req: r,
                    account_id,
                    token,
                    display_name,
                    ..
                }) if r == req => return (account_id, token, display_name),
                Some(ServerMessage::Error {
                    code,
                    message,
                    req: r,
                }) if r == req => {
                    panic!("login failed: {code} {message}")
                }
                Some(_) => continue,
                None => panic!("closed during login"),
            }
        }
    }

    /// `put_data` of JSON text; the new version, the error, or None if the server died.
    pub async fn put(
        &mut self,
        key: &str,
        value: &str,
        expected_version: u64,
    ) -> Option<Result<u64, (ErrorCode, String)>> {
        let (key, value) = (key.to_owned(), value.to_owned());
        let req = self.req();
        self.send(ClientMessage::PutData {
            req,
            key: &key,
            value: &value,
            expected_version,
            public: false,
        })
        .await
        .ok()?;
        loop {
            match self.recv().await? {
                ServerMessage::Written {
                    req: r, version, ..
                } if r == req => return Some(Ok(version)),
                ServerMessage::Error {
                    code,
                    message,
                    req: r,
                } if r == req => return Some(Err((code, message))),
                _ => continue,
            }
        }
    }

    /// `get_data` of one's own key: `(value, version)`.
    pub async fn get(&mut self, key: &str) -> (Option<String>, u64) {
        let key = key.to_owned();
        let req = self.req();
        self.send(ClientMessage::GetData {
            req,
            owner: 0,
            key: &key,
        })
        .await
        .expect("send get_data");
        loop {
            match self.recv().await {
                Some(ServerMessage::Data {
                    req: r,
                    value,
                    version,
                    ..
                }) if r == req => return (value, version),
                Some(ServerMessage::Error {
                    code,
                    message,
                    req: r,
                }) if r == req => {
                    panic!("get_data failed: {code} {message}")
                }
                Some(_) => continue,
                None => panic!("closed during get_data"),
            }
        }
    }
}
