//! `rally replay` against recordings that `rally serve` wrote: a match two logged-in
//! players played replays with every state hash matching (and lists under their account
//! ids); a server killed with SIGKILL mid-match leaves a file that replays up to its last
//! flushed tick; a file size limit (a full disk) cuts the recording, counted, while the
//! match plays on; a corrupt or foreign file is refused with the tick or byte offset
//! named, never a panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{serve, Player, Served, LIMIT, RALLY};
use rally_server::protocol::{ClientMessage, ServerMessage};

fn sqlite(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("rally.db").display())
}

fn replay(file: &Path, extra: &[&str]) -> Output {
    std::process::Command::new(RALLY)
        .arg("replay")
        .arg(file)
        .args(extra)
        .output()
        .expect("run rally replay")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Two logged-in players in one arena; returns them with their account ids.
async fn two_players(served: &Served) -> Vec<(Player, u64)> {
    let mut players = Vec::new();
    for n in 0..2 {
        let (mut p, _) = Player::connect(&served.tcp, None).await;
        let device = format!("replay-{}-{n}-{}", std::process::id(), served.tcp);
        let (account, _, _) = p.login(&device).await;
        let joined = p
            .call(|req| ClientMessage::Join { req, kind: "arena" })
            .await
            .expect("an answer");
        assert!(
            matches!(joined, Ok(ServerMessage::Joined { .. })),
            "{joined:?}"
        );
        players.push((p, account));
    }
    players
}

/// Each player sends `n` inputs, one every `every`.
async fn play(players: &mut [(Player, u64)], n: u32, every: Duration) {
    for seq in 1..=n {
        for (i, (p, _)) in players.iter_mut().enumerate() {
            let mut payload = Vec::new();
            let a = seq as f32 * 0.21 + i as f32;
            arena::encode_input(&mut payload, a.cos(), a.sin());
            p.send(ClientMessage::Input {
                seq,
                payload: &payload,
            })
            .await
            .expect("send input");
        }
        tokio::time::sleep(every).await;
    }
}

async fn file_ending(dir: &Path, suffix: &str) -> PathBuf {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let found = std::fs::read_dir(dir).ok().and_then(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(suffix))
        });
        if let Some(p) = found {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no *{suffix} in {dir:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_recorded_match_replays_and_corrupt_files_are_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().join("recordings");
    let served = serve(
        &sqlite(dir.path()),
        &[
            "--recordings-dir",
            recordings.to_str().unwrap(),
            "--tick-hz",
            "50",
            "--command-rate",
            "1000",
        ],
    )
    .await;
    let mut players = two_players(&served).await;
    play(&mut players, 40, Duration::from_millis(20)).await;
    let accounts: Vec<u64> = players.iter().map(|(_, a)| *a).collect();
    drop(players);
    let summary = file_ending(&recordings, ".rrec.json").await;
    let file = summary.with_extension("");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let mut listed: Vec<u64> = summary["players"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    listed.sort_unstable();
    let mut expected = accounts.clone();
    expected.sort_unstable();
    assert_eq!(listed, expected, "the summary lists both accounts");
    assert!(served.terminate().await);

    let ok = replay(&file, &[]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("state hashes match"), "{}", text(&ok));
    assert!(text(&ok).contains("result matches"), "{}", text(&ok));

    // --json: one line per tick, each with the arena's state as JSON.
    let json = replay(&file, &["--json"]);
    assert!(json.status.success(), "{}", text(&json));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(lines.len() > 30, "{} ticks", lines.len());
    assert_eq!(lines[0]["tick"], 1);
    assert!(
        lines
            .iter()
            .any(|l| l["state"].as_array().map(Vec::len) == Some(2)),
        "ticks with both players"
    );

    // A changed input byte: the replay names the first tick whose hash disagrees.
    let bytes = std::fs::read(&file).unwrap();
    let (_, mut reader) = rally_record::Reader::new(&bytes).unwrap();
    let mut input_at = None;
    while let Some(r) = reader.next_record().unwrap() {
        if let rally_record::Record::Input {
            payload, seq: 20, ..
        } = r
        {
            input_at = Some(payload.as_ptr() as usize - bytes.as_ptr() as usize);
        }
    }
    let mut changed = bytes.clone();
    changed[input_at.expect("input 20 is recorded") + 2] ^= 0x20;
    let changed_file = dir.path().join("changed.rrec");
    std::fs::write(&changed_file, &changed).unwrap();
    let out = replay(&changed_file, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("diverged at tick"), "{}", text(&out));

    // Not a recording, a malformed record, a cut copy: refused with the offset, no panic.
    let foreign = dir.path().join("foreign.rrec");
    std::fs::write(&foreign, b"PK\x03\x04 a zip file").unwrap();
    let out = replay(&foreign, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("not a Rally recording") && text(&out).contains("byte offset 0"),
        "{}",
        text(&out)
    );
    let mut malformed = bytes.clone();
    // The first record after the header gets an impossible length: past the file.
    let (_, reader) = rally_record::Reader::new(&bytes).unwrap();
    let first = reader.offset();
    malformed[first + 1] = 0xff;
    malformed[first + 2] = 0xff;
    malformed[first + 3] = 0x7f;
    let malformed_file = dir.path().join("malformed.rrec");
    std::fs::write(&malformed_file, &malformed).unwrap();
    let out = replay(&malformed_file, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("byte offset {first}")),
        "{}",
        text(&out)
    );
    for cut in [3, 20, bytes.len() / 2] {
        let cut_file = dir.path().join(format!("cut-{cut}.rrec"));
        std::fs::write(&cut_file, &bytes[..cut]).unwrap();
        let out = replay(&cut_file, &[]);
        assert!(
            matches!(out.status.code(), Some(1) | Some(3)),
            "cut at {cut}: {}",
            text(&out)
        );
        assert!(!text(&out).contains("panicked"), "{}", text(&out));
    }
}

#[tokio::test]
async fn a_server_killed_mid_match_leaves_a_file_that_replays_to_its_last_flushed_tick() {
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().join("recordings");
    let served = serve(
        &sqlite(dir.path()),
        &[
            "--recordings-dir",
            recordings.to_str().unwrap(),
            "--command-rate",
            "1000",
        ],
    )
    .await;
    let mut players = two_players(&served).await;
    // Past two of the writer's one-second flushes.
    play(&mut players, 50, Duration::from_millis(50)).await;
    served.kill().await;
    drop(players);
    let file = file_ending(&recordings, ".rrec").await;
    assert!(
        !recordings
            .join(format!(
                "{}.json",
                file.file_name().unwrap().to_string_lossy()
            ))
            .exists(),
        "no summary: the match never ended"
    );
    let out = replay(&file, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("state hashes match"), "{said}");
    let ticks: u64 = said
        .split(": ")
        .find_map(|part| {
            part.split(" ticks replayed")
                .next()
                .filter(|_| part.contains(" ticks replayed"))
        })
        .and_then(|n| n.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a tick count in {said:?}"));
    assert!(ticks >= 20, "{ticks} ticks survived the kill: {said}");
}

/// A file size limit (RLIMIT_FSIZE, as a full disk would) on `rally serve`: the
/// recording's write fails, the cut is counted, the match plays on, and the file on disk
/// is a readable prefix. SIGXFSZ is ignored, as a server that must not die of a full disk
/// would run; the write then fails with EFBIG.
#[tokio::test]
async fn a_file_size_limit_cuts_the_recording_and_the_game_plays_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path());
    // The database is made before the limit applies; guests play, so nothing else grows.
    let migrated = std::process::Command::new(RALLY)
        .args(["migrate", "--database-url", &db])
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{}", text(&migrated));
    let recordings = dir.path().join("recordings");
    let mut bash = tokio::process::Command::new("bash");
    // 1 MiB (bash counts 1024-byte blocks); "$0" "$@" is rally and its arguments.
    bash.args([
        "-c",
        "trap '' XFSZ; ulimit -f 1024; exec \"$0\" \"$@\"",
        RALLY,
    ]);
    let served = common::serve_via(
        bash,
        "127.0.0.1",
        &db,
        &[
            "--recordings-dir",
            recordings.to_str().unwrap(),
            "--auth-required",
            "false",
            "--input-rate",
            "2000",
            "--tick-hz",
            "100",
        ],
    )
    .await;
    let (mut p, _) = Player::connect(&served.tcp, None).await;
    let joined = p
        .call(|req| ClientMessage::Join { req, kind: "arena" })
        .await
        .expect("an answer");
    assert!(
        matches!(joined, Ok(ServerMessage::Joined { .. })),
        "{joined:?}"
    );
    // Inputs of 3 KB (arena reads [dx, dy] and ignores what follows): past 1 MiB of
    // recording in a few seconds.
    let filler = "x".repeat(3000);
    let mut last_state = 0;
    for seq in 1..=900u32 {
        let mut payload = Vec::new();
        rally_server::game::msgpack::write_array_len(&mut payload, 3);
        rally_server::game::msgpack::write_f32(&mut payload, 0.1);
        rally_server::game::msgpack::write_f32(&mut payload, -0.1);
        rally_server::game::msgpack::write_str(&mut payload, &filler);
        p.send(ClientMessage::Input {
            seq,
            payload: &payload,
        })
        .await
        .expect("send input");
        if seq % 3 == 0 {
            // Keep reading: states keep coming whatever the disk does.
            loop {
                match p.recv().await {
                    Some(ServerMessage::State { tick, .. }) => {
                        last_state = tick;
                        break;
                    }
                    Some(_) => continue,
                    None => panic!("the server closed the connection"),
                }
            }
        }
    }
    assert!(last_state > 200, "the match played on: tick {last_state}");
    let metrics = scrape_metrics(&served.admin).await;
    assert!(
        metrics.contains("rally_recordings_truncated_total{reason=\"write_error\"} 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("recording"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(p);
    assert!(served.terminate().await, "rally exits 0");
    let file = file_ending(&recordings, ".rrec").await;
    assert!(std::fs::metadata(&file).unwrap().len() <= 1024 * 1024);
    let out = replay(&file, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("state hashes match"), "{}", text(&out));
}

/// `/metrics` over a plain HTTP/1.1 request.
async fn scrape_metrics(admin: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(LIMIT, s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}
