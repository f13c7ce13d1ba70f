//! `rally bench --quick` end to end: every scenario runs against real processes (Rally,
//! the two reference designs, the echo server, the load generators) and the report
//! files hold measured rows. A smoke test of the instrument, not a benchmark: the
//! figures are not judged, only that they were measured.

use std::time::Duration;

use tokio::process::Command;

const RALLY: &str = env!("CARGO_BIN_EXE_rally");

#[tokio::test]
async fn quick_bench_writes_a_filled_report() {
    let out_dir = std::env::temp_dir().join(format!("rally-bench-test-{}", std::process::id()));
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        Command::new(RALLY)
            .args(["bench", "--quick", "--no-search", "--no-colyseus", "--out"])
            .arg(&out_dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("rally bench --quick finishes within 5 minutes")
    .expect("run rally bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rally bench failed: {stderr}");

    let md = std::fs::read_to_string(out_dir.join("BENCHMARKS.md")).expect("BENCHMARKS.md");
    assert!(!md.contains("run failed"), "{md}");
    for section in [
        "## Targets",
        "## Arena-16 @ 20 Hz",
        "## Idle connections",
        "## Request/response",
    ] {
        assert!(md.contains(section), "missing {section}: {md}");
    }
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out_dir.join("benchmarks.json")).expect("benchmarks.json"),
    )
    .expect("valid JSON");
    let arena = json["arena"].as_array().expect("arena rows");
    // Rally and the two reference designs, over TCP and WebSocket.
    assert_eq!(arena.len(), 6, "{arena:?}");
    for row in arena {
        assert_eq!(row["connected"], 40, "{row}");
        assert_eq!(row["errors"], 0, "{row}");
        let p99 = row["p99_ms"].as_f64().expect("p99");
        assert!(p99 > 0.0 && p99 < 1000.0, "{row}");
        assert!(row["server_cores"].as_f64().expect("cpu") > 0.0, "{row}");
        assert!(row["rss_loaded_bytes"].as_u64().expect("rss") > 0, "{row}");
    }
    let rally_rows = arena.iter().filter(|r| r["server"] == "rally");
    for row in rally_rows {
        // Read from Rally's own /metrics.
        assert!(row["missed_ticks"].is_u64(), "{row}");
    }
    assert_eq!(json["idle"]["connected"], 200, "{}", json["idle"]);
    let ratio = json["reqresp"]["ratio"].as_f64().expect("ratio");
    assert!(ratio.is_finite() && ratio > 0.0, "{}", json["reqresp"]);
    let _ = std::fs::remove_dir_all(&out_dir);
}
