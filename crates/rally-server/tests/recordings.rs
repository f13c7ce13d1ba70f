//! Match recordings over real sockets and a real directory: a match played by three
//! clients is recorded, and a replay of the file on a fresh arena reproduces every
//! recorded state hash and every state the players received; the admin API lists the file
//! and serves its bytes. A directory that cannot be written (a path under a regular
//! file: refused even to root, unlike a read-only mode) cuts the recording, counts it,
//! and the game goes on.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::{admin_config, http, scrape, Client, TestServer, ADMIN_TOKEN};
use rally_server::protocol::ServerMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rally-{name}-{}-{}",
        std::process::id(),
        rally_testkit::unique_name("rec")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Plays `rounds` inputs per client, one round per tick or so, and returns each tick's
/// state payload as client 0 saw it.
async fn play(clients: &mut [Client], rounds: u32) -> BTreeMap<u64, Vec<u8>> {
    let mut seen = BTreeMap::new();
    for seq in 1..=rounds {
        for (i, c) in clients.iter_mut().enumerate() {
            let angle = (seq as f32 * 0.37) + i as f32;
            c.input(seq, angle.cos(), angle.sin()).await;
        }
        // Wait for a state on client 0 so inputs spread over many ticks.
        let (tick, payload) = clients[0]
            .expect("a state", |m| match m {
                ServerMessage::State { tick, payload, .. } => Some((*tick, payload.to_vec())),
                _ => None,
            })
            .await;
        seen.insert(tick, payload);
    }
    seen
}

fn arena(h: &rally_record::Header) -> Option<Box<dyn rally_record::Game>> {
    (h.kind == arena::KIND).then(|| Box::new(arena::Arena::new()) as Box<dyn rally_record::Game>)
}

async fn wait_for_file(dir: &std::path::Path, suffix: &str) -> PathBuf {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().into_string().unwrap_or_default();
                if name.ends_with(suffix) {
                    return e.path();
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no *{suffix} in {dir:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_match_is_recorded_and_replays_to_the_same_hashes_and_states() {
    let dir = temp_dir("recordings");
    let mut cfg = admin_config();
    cfg.tick_hz = 60;
    cfg.recordings_dir = Some(dir.display().to_string());
    let server = TestServer::start(cfg).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (mut c, _) = Client::tcp_hello(server.tcp).await;
        c.join("arena").await;
        clients.push(c);
    }
    let seen = play(&mut clients, 60).await;
    for c in clients {
        c.close().await;
    }
    // The last leave ends the room; the summary is written after the fsync.
    let summary = wait_for_file(&dir, ".rrec.json").await;
    let file = summary.with_extension("");
    let bytes = std::fs::read(&file).unwrap();

    let mut compared = 0;
    let report = rally_record::verify(&bytes, arena, |replay, step| {
        if let rally_record::Step::Ticked(n) = step {
            if let Some(state) = seen.get(&n) {
                assert_eq!(replay.room_state(), &state[..], "tick {n}'s state");
                compared += 1;
            }
        }
    })
    .unwrap_or_else(|e| panic!("the replay diverged: {e}"));
    assert!(report.complete(), "{report:?}");
    assert!(report.ticks >= 60, "{} ticks", report.ticks);
    assert_eq!(
        report.hashes,
        report.ticks / 10,
        "a hash every 10 ticks, all matching"
    );
    assert!(
        compared >= 50,
        "{compared} states compared with what the player saw"
    );

    // Listed, filtered, downloadable; the bytes counted.
    let all = http(
        server.admin,
        "GET",
        "/admin/recordings",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(all.status, 200, "{}", all.body);
    let listed = all.json()["recordings"].as_array().cloned().unwrap();
    assert_eq!(listed.len(), 1);
    let name = file.file_name().unwrap().to_str().unwrap();
    assert_eq!(listed[0]["file"], name);
    assert_eq!(listed[0]["kind"], "arena");
    assert_eq!(listed[0]["complete"], true);
    assert_eq!(listed[0]["reason"], "empty");
    assert_eq!(listed[0]["bytes"], bytes.len() as u64);
    let none = http(
        server.admin,
        "GET",
        "/admin/recordings?kind=tictactoe",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(none.json()["recordings"].as_array().map(Vec::len), Some(0));
    let bad = http(
        server.admin,
        "GET",
        "/admin/recordings?player=me",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
    let denied = http(server.admin, "GET", "/admin/recordings", None, None).await;
    assert_eq!(denied.status, 401);
    let escape = http(
        server.admin,
        "GET",
        "/admin/recordings/..%2Fx.rrec",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(escape.status, 404);
    assert_eq!(download(server.admin, name).await, bytes);

    let s = scrape(server.admin).await;
    assert_eq!(
        s.value("rally_recording_bytes_total", &[]),
        bytes.len() as f64
    );
    assert_eq!(
        s.value(
            "rally_recordings_truncated_total",
            &[("reason", "write_error")]
        ),
        0.0
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The raw bytes of a download (the test helper's `http` reads text).
async fn download(admin: std::net::SocketAddr, name: &str) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    let req = format!(
        "GET /admin/recordings/{name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..at]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("application/octet-stream"), "{head}");
    raw[at + 4..].to_vec()
}

#[tokio::test]
async fn an_unwritable_directory_cuts_the_recording_and_the_game_plays_on() {
    let base = temp_dir("unwritable");
    std::fs::create_dir_all(&base).unwrap();
    let blocker = base.join("a-file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let mut cfg = admin_config();
    cfg.recordings_dir = Some(blocker.join("recordings").display().to_string());
    let server = TestServer::start(cfg).await;
    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    c.join("arena").await;
    let seen = play(std::slice::from_mut(&mut c), 10).await;
    assert_eq!(seen.len(), 10, "states keep coming");
    let s = common::scrape_until(server.admin, "the cut counted", |s| {
        s.value(
            "rally_recordings_truncated_total",
            &[("reason", "write_error")],
        ) == 1.0
    })
    .await;
    assert_eq!(s.value("rally_recording_bytes_total", &[]), 0.0);
    // Still playing after the cut.
    let more = play(std::slice::from_mut(&mut c), 5).await;
    assert_eq!(more.len(), 5);
    c.close().await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&base);
}
