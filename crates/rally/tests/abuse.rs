//! Abusive clients against a server with the default config, beside honest players: a
//! message flood and a connection flood, slowloris, garbage. Each case runs 50 honest
//! arena bots (in this process, from addresses of their own) while `rally abuse ...`
//! attacks from another process, and checks what a user would see: no honest player
//! gets an error or a bad latency (a generous bound: CI machines are noisy), the
//! attacker is refused or disconnected with the documented codes, and the server still
//! lets a fresh client in and drains cleanly afterwards.
//!
//! The cases share the machine's two cores, so they take turns (a lock) rather than
//! measure one another.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use rally_bench::abuse::{probe, Transport};
use rally_bots::source::HONEST_BASE;
use rally_bots::{BotsConfig, Report, SourceIps};
use rally_testkit::TestServer;
use serde_json::Value;
use tokio::process::Command;
use tokio::sync::Mutex;

const RALLY: &str = env!("CARGO_BIN_EXE_rally");
/// Honest bots per case.
const HONEST: u32 = 50;
/// Honest input-to-state p99 bound: generous, for a noisy machine.
const P99_BOUND_MS: f64 = 500.0;
/// The documented handshake bound (`handshake_timeout_ms`, default 5,000).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// One case at a time.
static TURN: Mutex<()> = Mutex::const_new(());

/// Runs `rally abuse <args>` against `server` and returns its JSON report.
async fn attack(server: &TestServer, args: &[&str]) -> Value {
    let out = Command::new(RALLY)
        .arg("abuse")
        .args(args)
        .args([
            "--tcp",
            &server.tcp.to_string(),
            "--ws",
            &server.ws.to_string(),
        ])
        .kill_on_drop(true)
        .output()
        .await
        .expect("run rally abuse");
    assert!(
        out.status.success(),
        "rally abuse {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the attacker's JSON")
}

/// Runs 50 honest bots for `secs` against `server` over TCP, from two addresses.
async fn honest(server: &TestServer, secs: u64) -> Report {
    let mut cfg = BotsConfig::new(server.tcp.to_string());
    cfg.bots = HONEST;
    cfg.duration = Duration::from_secs(secs);
    cfg.ramp_per_sec = 100;
    cfg.warmup = Duration::from_secs(1);
    cfg.sources = Some(SourceIps::new(HONEST_BASE, 2).expect("valid range"));
    rally_bots::run(cfg).await
}

/// The honest bots saw nothing of the attack.
fn unhurt(report: &Report) {
    let table = report.summary_table();
    assert_eq!(report.errors, 0, "{table}");
    assert_eq!(report.connected, u64::from(HONEST), "{table}");
    assert!(report.latency.samples > 0, "{table}");
    assert!(report.latency.p99 < P99_BOUND_MS, "{table}");
    assert!(report.join.p99 < P99_BOUND_MS, "{table}");
}

/// A fresh client gets in over both transports, and the server drains.
async fn survives(server: TestServer) {
    let fresh = Some(IpAddr::V4(Ipv4Addr::new(127, 9, 0, 1)));
    for (transport, addr) in [
        (Transport::Tcp, server.tcp),
        (Transport::WebSocket, server.ws),
    ] {
        let got = probe(transport, addr, fresh, Duration::from_secs(5)).await;
        assert!(got.is_ok(), "{transport:?} after the attack: {got:?}");
    }
    let report = server.shutdown().await;
    assert!(report.drained, "{report:?}");
}

fn counts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_flood_is_rate_limited_and_cut_off_while_honest_players_play_on() {
    let _turn = TURN.lock().await;
    let server = TestServer::start(rally_testkit::local_config()).await;
    let (flood, report) = tokio::join!(
        attack(
            &server,
            &[
                "flood",
                "--mode",
                "messages",
                "--conns",
                "4",
                "--duration",
                "6"
            ]
        ),
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            honest(&server, 5).await
        }
    );
    unhurt(&report);
    let received = counts(&flood["received"]);
    let endings = counts(&flood["endings"]);
    assert!(
        received.get("error:RATE_LIMITED").copied().unwrap_or(0) > 0,
        "the flood is told RATE_LIMITED: {flood}"
    );
    assert!(
        endings.get("error:RATE_LIMITED").copied().unwrap_or(0) > 0,
        "a flood that goes on is closed with RATE_LIMITED: {flood}"
    );
    survives(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_from_one_address_is_refused_past_its_rate() {
    let _turn = TURN.lock().await;
    let server = TestServer::start(rally_testkit::local_config()).await;
    let secs = 4;
    let duration = secs.to_string();
    let args = [
        "flood",
        "--mode",
        "connect",
        "--conns",
        "8",
        "--duration",
        &duration,
    ];
    let (flood, report) = tokio::join!(attack(&server, &args), honest(&server, 5));
    unhurt(&report);
    let refused = counts(&flood["refused_at_door"]);
    assert!(
        refused.get("error:RATE_LIMITED").copied().unwrap_or(0) > 0,
        "connections past the per-address rate are refused with RATE_LIMITED: {flood}"
    );
    // One address opens at most connection_rate_per_ip (default 32) a second, and
    // holds at most max_connections_per_ip (64): far fewer than it tried.
    let welcomed = flood["welcomed"].as_u64().expect("welcomed");
    assert!(welcomed <= 32 * (secs + 1) + 64, "{flood}");
    assert!(
        flood["attempts"].as_u64().expect("attempts") > welcomed,
        "{flood}"
    );
    survives(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_sockets_are_cut_at_the_handshake_timeout_and_honest_players_join() {
    let _turn = TURN.lock().await;
    let server = TestServer::start(rally_testkit::local_config()).await;
    // 300 sockets over 8 addresses (38 each: under the per-address limit), each
    // dripping its handshake a byte a second; 50 honest bots arrive a second later.
    let (loris, report) = tokio::join!(
        attack(
            &server,
            &[
                "slowloris",
                "--conns",
                "300",
                "--source-ips",
                "8",
                "--duration",
                "8"
            ]
        ),
        async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            honest(&server, 5).await
        }
    );
    unhurt(&report);
    assert_eq!(
        loris["completed"], 0,
        "no drip finishes a handshake: {loris}"
    );
    // Over TCP the server says TIMEOUT; a WebSocket upgrade that never finishes is
    // answered 408 Request Timeout.
    let endings = counts(&loris["endings"]);
    let timeouts = endings.get("error:TIMEOUT").copied().unwrap_or(0);
    let request_timeouts = endings.get("http:408").copied().unwrap_or(0);
    let closed = endings.get("closed").copied().unwrap_or(0);
    assert!(
        timeouts >= 100 && request_timeouts >= 1 && timeouts + request_timeouts + closed >= 250,
        "the server closes them: {loris}"
    );
    let held = loris["tally"]["durations_secs"]["held"]["max"]
        .as_f64()
        .expect("some were closed");
    assert!(
        held < (HANDSHAKE_TIMEOUT + Duration::from_secs(2)).as_secs_f64(),
        "none is held past the handshake timeout: {loris}"
    );
    survives(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_refused_with_the_right_codes() {
    let _turn = TURN.lock().await;
    let server = TestServer::start(rally_testkit::local_config()).await;
    // Each connection from an address of its own, so the per-address rate does not
    // refuse most cases before they are sent.
    let (garbage, report) = tokio::join!(
        attack(
            &server,
            &[
                "garbage",
                "--conns",
                "8",
                "--source-ips",
                "8",
                "--duration",
                "5",
                "--seed",
                "7",
                "--hold-ms",
                "3000",
            ]
        ),
        honest(&server, 5)
    );
    unhurt(&report);
    let by_case = garbage["by_case"].as_object().expect("by_case");
    // What each case must get (refused at the door with RATE_LIMITED is allowed too).
    let expected = [
        ("huge_length", "error:MESSAGE_TOO_LARGE"),
        ("ws_huge_length", "error:MESSAGE_TOO_LARGE"),
        ("zero_length", "error:BAD_MESSAGE"),
        ("wrong_shape", "error:BAD_MESSAGE"),
        ("garbage_after_hello", "error:BAD_MESSAGE"),
        ("ws_unmasked", "error:BAD_MESSAGE"),
        ("ws_reserved_opcode", "error:BAD_MESSAGE"),
        ("ws_text", "error:BAD_MESSAGE"),
        ("http_garbage", "http:400"),
        ("http_huge_head", "http:431"),
    ];
    for (case, code) in expected {
        let endings = counts(&by_case[case]);
        assert!(
            endings.get(code).copied().unwrap_or(0) > 0,
            "{case}: {garbage}"
        );
        for (ending, n) in &endings {
            assert!(
                ending == code || ending == "error:RATE_LIMITED" || ending == "unfinished",
                "{case} ended {n} times with {ending}: {garbage}"
            );
        }
    }
    survives(server).await;
}
