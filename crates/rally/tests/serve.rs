//! The `rally` binary end to end: configuration refused with a clear message; a TCP
//! player and a WebSocket player (raw frames, built from the protocol alone) play in
//! one arena room; SIGTERM tells both `shutdown` and the process exits 0 in the grace period.

use std::process::Stdio;
use std::time::Duration;

use rally_server::protocol::{frame, handshake, ws, ClientMessage, ServerMessage};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const RALLY: &str = env!("CARGO_BIN_EXE_rally");
const LIMIT: Duration = Duration::from_secs(20);

async fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(RALLY)
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run rally");
    assert_eq!(out.status.code(), Some(2), "exit code for bad config");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn out_of_range_config_is_refused_with_key_value_and_range() {
    let err = refused(&["--tick-hz", "0"], &[]).await;
    assert!(
        err.contains("tick_hz") && err.contains("\"0\"") && err.contains("1..=120"),
        "{err}"
    );
    let err = refused(&[], &[("RALLY_QUEUE_CAPACITY", "100000")]).await;
    assert!(
        err.contains("queue_capacity")
            && err.contains("RALLY_QUEUE_CAPACITY")
            && err.contains("1..=10000"),
        "{err}"
    );
    let dir = std::env::temp_dir().join(format!("rally-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rally.toml");
    std::fs::write(&file, "timeout_ms = 5\n").unwrap();
    let err = refused(&["--config", file.to_str().unwrap()], &[]).await;
    assert!(
        err.contains("timeout_ms") && err.contains("100..=60000") && err.contains("rally.toml"),
        "{err}"
    );
    std::fs::write(&file, "timeout = 500\n").unwrap();
    let err = refused(&["--config", file.to_str().unwrap()], &[]).await;
    assert!(err.contains("unknown key \"timeout\""), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A player over raw TCP or raw WebSocket, speaking only the documented protocol.
struct Player {
    stream: TcpStream,
    ws: bool,
    buf: Vec<u8>,
}

impl Player {
    async fn connect_tcp(addr: &str) -> Player {
        Player {
            stream: TcpStream::connect(addr).await.unwrap(),
            ws: false,
            buf: Vec::new(),
        }
    }

    async fn connect_ws(addr: &str) -> Player {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let key = "x3JJHMbDL1EzLkh9GBhXDw==";
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: rally.v1\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let end = loop {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed during upgrade");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains(&handshake::accept_key(key)), "{head}");
        assert!(head.contains("rally.v1"), "{head}");
        Player {
            stream,
            ws: true,
            buf: buf.split_off(end),
        }
    }

    async fn send(&mut self, msg: ClientMessage<'_>) {
        let mut body = Vec::new();
        msg.encode(&mut body);
        let mut wire = Vec::new();
        if self.ws {
            ws::write_masked_frame(&mut wire, ws::Opcode::Binary, &body, [7, 1, 9, 3]);
        } else {
            frame::encode(&body, &mut wire);
        }
        self.stream.write_all(&wire).await.unwrap();
    }

    /// The next message, or None at close.
    async fn recv(&mut self) -> Option<ServerMessage> {
        tokio::time::timeout(LIMIT, async {
            loop {
                if self.ws {
                    let mut d = ws::Decoder::client(1 << 20);
                    let mut copy = self.buf.clone();
                    match d.decode(&mut copy) {
                        Ok(Some((n, ws::Event::Binary(b)))) => {
                            let m = ServerMessage::decode(b).unwrap();
                            self.buf.drain(..n);
                            return Some(m);
                        }
                        Ok(Some((_, ws::Event::Close(_)))) => return None,
                        Ok(Some((n, _))) => {
                            self.buf.drain(..n);
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => panic!("bad frame from server: {e}"),
                    }
                } else if let Some((n, body)) = frame::decode(&self.buf, 1 << 20).unwrap() {
                    let m = ServerMessage::decode(body).unwrap();
                    self.buf.drain(..n);
                    return Some(m);
                }
                let mut chunk = [0u8; 4096];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .expect("message in time")
    }

    async fn join_arena(&mut self) -> (u64, u32) {
        self.send(ClientMessage::Hello {
            version: 1,
            client: if self.ws { "ws" } else { "tcp" },
            resume: None,
            token: None,
        })
        .await;
        assert!(matches!(
            self.recv().await,
            Some(ServerMessage::Welcome { .. })
        ));
        // `rally serve` requires a login: a device id of our own.
        let device = format!("serve-test-{}-{}", std::process::id(), self.ws);
        self.send(ClientMessage::Login {
            req: 7,
            provider: "device",
            credential: &device,
        })
        .await;
        assert!(matches!(
            self.recv().await,
            Some(ServerMessage::Session { req: 7, .. })
        ));
        self.send(ClientMessage::Join {
            req: 1,
            kind: "arena",
        })
        .await;
        loop {
            match self.recv().await {
                Some(ServerMessage::Joined {
                    room_id, player_id, ..
                }) => return (room_id, player_id),
                Some(ServerMessage::State { .. }) => continue,
                other => panic!("expected joined, got {other:?}"),
            }
        }
    }

    /// Moves right until the other player is seen to have moved too.
    async fn play_until_other_moves(&mut self, me: u32, other: u32) {
        let mut first_x = None;
        for seq in 1..400u32 {
            let mut payload = Vec::new();
            arena::encode_input(&mut payload, if seq % 40 < 20 { 1.0 } else { -1.0 }, 0.0);
            self.send(ClientMessage::Input {
                seq,
                payload: &payload,
            })
            .await;
            loop {
                match self.recv().await {
                    Some(ServerMessage::State { payload, .. }) => {
                        let players = arena::decode_state(&payload).unwrap();
                        assert!(players.iter().any(|p| p.id == me));
                        if let Some(p) = players.iter().find(|p| p.id == other) {
                            match first_x {
                                None => first_x = Some(p.x),
                                Some(x) if (p.x - x).abs() > 1.0 && p.last_seq > 0 => return,
                                Some(_) => {}
                            }
                        }
                        break;
                    }
                    Some(_) => continue,
                    None => panic!("closed while playing"),
                }
            }
        }
        panic!("never saw player {other} move");
    }
}

struct Served {
    child: Child,
    tcp: String,
    ws: String,
    /// The server's database directory.
    _data: tempfile::TempDir,
}

async fn start() -> Served {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(RALLY)
        .args([
            "serve",
            "--tcp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .arg("--database-url")
        .arg(format!(
            "sqlite://{}",
            data.path().join("rally.db").display()
        ))
        .args(["--log-format", "json", "--shutdown-grace-ms", "5000"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start rally");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (tcp, ws) = tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            // JSON log lines are flat: the event's fields sit beside `message`.
            let f = &v;
            if f["message"] == "rally is serving" {
                let tcp = f["tcp"].as_str().unwrap().to_owned();
                let ws = f["ws"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("ws://")
                    .trim_end_matches("/ws")
                    .to_owned();
                return (tcp, ws);
            }
        }
        panic!("rally exited before serving");
    })
    .await
    .expect("rally starts in time");
    // Keep draining the logs so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Served {
        child,
        tcp,
        ws,
        _data: data,
    }
}

#[tokio::test]
async fn tcp_and_websocket_players_play_then_sigterm_drains_and_exits_zero() {
    let mut served = start().await;
    let mut a = Player::connect_tcp(&served.tcp).await;
    let mut b = Player::connect_ws(&served.ws).await;
    let (room_a, pa) = a.join_arena().await;
    let (room_b, pb) = b.join_arena().await;
    assert_eq!(room_a, room_b);
    let (ra, rb) = tokio::join!(
        a.play_until_other_moves(pa, pb),
        b.play_until_other_moves(pb, pa)
    );
    let _ = (ra, rb);

    let pid = served.child.id().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    for p in [&mut a, &mut b] {
        loop {
            match p.recv().await {
                Some(ServerMessage::Shutdown {
                    reconnect_after_ms, ..
                }) => {
                    assert!(reconnect_after_ms > 0);
                    break;
                }
                Some(_) => continue,
                None => panic!("closed before shutdown was announced"),
            }
        }
        // A well-behaved client closes on shutdown.
        p.stream.shutdown().await.unwrap();
    }
    let exit = tokio::time::timeout(LIMIT, served.child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_millis(5000),
        "exited within the grace period"
    );
}
