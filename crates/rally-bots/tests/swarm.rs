//! The swarm against a real server on 127.0.0.1 port 0, over both transports, from the
//! system's source address or spread over several of 127.0.0.0/8, with interval reports.

use std::time::Duration;

use rally_bots::{BotsConfig, Interval, Report, SourceIps, Transport};
use rally_server::{Config, Server};
use rally_testkit::{TestDb, TestServer};

const BOTS: u32 = 20;

/// Starts a server, runs 20 bots for 3 s over `transport`, stops the server.
async fn swarm(transport: Transport) -> Report {
    let config = Config {
        reconnect_grace_ms: 0,
        ..rally_testkit::local_config()
    };
    swarm_on(TestServer::start(config).await, transport).await
}

/// Runs 20 bots for 3 s against `server` over `transport`, then stops the server.
async fn swarm_on(server: TestServer, transport: Transport) -> Report {
    let addr = match transport {
        Transport::Tcp => server.tcp,
        Transport::WebSocket => server.ws,
    };

    let mut cfg = BotsConfig::new(addr.to_string());
    cfg.transport = transport;
    cfg.bots = BOTS;
    cfg.duration = Duration::from_secs(3);
    // Shorter than the default so that a 3 s run still measures two seconds of play.
    cfg.warmup = Duration::from_secs(1);
    // Over WebSocket, from four addresses of loopback (five bots each); over TCP, from
    // the system's choice.
    if transport == Transport::WebSocket {
        cfg.sources = Some(SourceIps::new([127, 0, 4, 1].into(), 4).expect("valid range"));
    }
    cfg.report_every = Some(Duration::from_secs(1));
    let mut intervals = Vec::new();
    let report = rally_bots::run_with(cfg, |i| intervals.push(i.clone())).await;
    check_intervals(&report, &intervals);

    let drained = server.shutdown().await;
    assert!(drained.drained, "{drained:?}");
    report
}

/// One interval a second, each with its own figures, adding up to the run's.
fn check_intervals(report: &Report, intervals: &[Interval]) {
    let table = report.summary_table();
    assert!((2..=4).contains(&intervals.len()), "{intervals:?}\n{table}");
    for w in intervals.windows(2) {
        assert!(w[0].elapsed_secs < w[1].elapsed_secs, "{intervals:?}");
    }
    let states: u64 = intervals.iter().map(|i| i.states).sum();
    assert!(
        states <= report.states_received && states * 10 >= report.states_received * 7,
        "{states} of {}: {intervals:?}",
        report.states_received
    );
    let last = intervals.last().expect("some");
    assert_eq!(last.connected, u64::from(BOTS), "{intervals:?}");
    assert_eq!(last.errors_total, report.errors, "{intervals:?}");
    assert!(
        intervals
            .iter()
            .any(|i| i.latency.samples > 0 && i.latency.p99 > 0.0),
        "{intervals:?}"
    );
    let json = last.to_json();
    for key in [
        "elapsed_secs",
        "interval_secs",
        "active",
        "errors",
        "latency_ms",
    ] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
}

fn check(report: &Report, transport: &str) {
    let table = report.summary_table();
    // Shown with --nocapture: the margins of the bounds below on this machine.
    eprintln!("{transport}:\n{table}");
    assert_eq!(report.errors, 0, "{table}");
    assert_eq!(report.connected, u64::from(BOTS), "{table}");
    let l = report.latency;
    assert!(l.samples > 0, "{table}");
    assert!(l.p50 > 0.0 && l.p50 < 60.0, "{table}");
    assert!(
        l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max,
        "{table}"
    );
    let expected = f64::from(BOTS) * 20.0;
    assert!(
        report.states_per_sec > expected * 0.5 && report.states_per_sec < expected * 1.5,
        "{table}"
    );
    assert!(report.inputs_per_sec > expected * 0.5, "{table}");
    assert!(!report.timeline.is_empty(), "{table}");
    // Every bot's join was timed, from the start of its connect.
    assert_eq!(report.join.samples, u64::from(BOTS), "{table}");
    assert!(
        report.join.p50 > 0.0 && report.join.p50 <= report.join.max,
        "{table}"
    );
    let sources = if transport == "ws" { 4 } else { 0 };
    assert_eq!(report.source_ips, sources, "{table}");

    let dir = std::env::temp_dir().join(format!("rally-bots-{}-{transport}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json_path = dir.join("report.json");
    report.write_json(&json_path).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    for key in [
        "connected",
        "errors",
        "errors_by_kind",
        "latency_ms",
        "inputs_per_sec",
        "states_per_sec",
        "bots",
        "duration_secs",
        "transport",
        "join_ms",
        "source_ips",
    ] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    for key in ["p50", "p90", "p99", "max"] {
        assert!(json["latency_ms"][key].is_number(), "missing {key}: {json}");
    }
    assert_eq!(json["transport"], transport);
    assert_eq!(json["bots"], BOTS);

    let chart_path = dir.join("chart.svg");
    report.write_chart(&chart_path).unwrap();
    let svg = std::fs::read_to_string(&chart_path).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..svg.len().min(100)]
    );
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("<polyline"), "the latency lines are drawn");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_bots_over_tcp_play_without_errors() {
    let report = swarm(Transport::Tcp).await;
    check(&report, "tcp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_bots_over_websocket_play_without_errors() {
    let report = swarm(Transport::WebSocket).await;
    check(&report, "ws");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_log_in_when_the_server_requires_it() {
    let db = TestDb::sqlite();
    let config = Config {
        reconnect_grace_ms: 0,
        auth_required: true,
        ..rally_testkit::local_config()
    };
    let store = db.open(&config).await;
    let server =
        TestServer::start_with(Server::builder(config, rally_testkit::games()).store(store)).await;
    let report = swarm_on(server, Transport::Tcp).await;
    check(&report, "tcp");
}
