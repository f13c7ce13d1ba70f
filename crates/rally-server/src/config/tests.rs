//! The configuration's own tests: defaults, precedence, ranges, secrets, production checks.

use super::*;

#[test]
fn defaults_match_the_spec() {
    let c = Config::default();
    assert_eq!(c.concurrency_limit, 1000);
    assert_eq!(c.timeout_ms, 30_000);
    assert_eq!(c.tick_hz, 20);
    assert_eq!(c.max_message_bytes, 4096);
    assert_eq!(c.queue_capacity, 100);
    assert_eq!(c.shutdown_grace_ms, 10_000);
    assert_eq!(c.reconnect_grace_ms, 10_000);
    assert_eq!(c.tcp.to_string(), "0.0.0.0:7000");
    assert_eq!(c.http.to_string(), "0.0.0.0:8080");
    assert_eq!(c.admin.to_string(), "127.0.0.1:9100");
    assert_eq!(c.admin_token, None);
    assert_eq!(c.handshake_timeout(), Duration::from_millis(5000));
    assert_eq!(c.effective_input_rate(), 40);
    assert_eq!(c.command_rate, 10);
    assert_eq!(c.max_connections_per_ip, 64);
    assert_eq!(c.connection_rate_per_ip, 32);
}

#[test]
fn the_handshake_bound_is_capped_by_timeout_ms() {
    let c = Sources::new().flag("timeout_ms", "1000").load().unwrap();
    assert_eq!(c.handshake_timeout(), Duration::from_millis(1000));
    let c = Sources::new()
        .flag("timeout_ms", "1000")
        .flag("handshake_timeout_ms", "200")
        .load()
        .unwrap();
    assert_eq!(c.handshake_timeout(), Duration::from_millis(200));
    let err = Sources::new()
        .flag("handshake_timeout_ms", "50")
        .load()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("handshake_timeout_ms") && err.contains("100..=60000"),
        "{err}"
    );
}

#[test]
fn admin_token_is_optional_and_never_shown() {
    let c = Sources::new()
        .env([("RALLY_ADMIN_TOKEN".into(), "0123456789abcdef-secret".into())])
        .load()
        .unwrap();
    let token = c.admin_token.as_ref().map(Secret::expose);
    assert_eq!(token, Some("0123456789abcdef-secret"));
    assert!(!format!("{c:?}").contains("0123456789abcdef"), "{c:?}");
    let c = Sources::new().flag("admin_token", "").load().unwrap();
    assert_eq!(c.admin_token, None);
    let err = Sources::new()
        .flag("admin_token", "short secret")
        .load()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("admin_token") && err.contains("at least 16") && !err.contains("short"),
        "{err}"
    );
}

#[test]
fn accounts_keys_have_development_defaults() {
    let c = Config::default();
    assert_eq!(c.database_url.expose(), "sqlite://rally.db");
    assert_eq!(c.auth_secret.expose(), DEVELOPMENT_AUTH_SECRET);
    assert_eq!(c.environment, Environment::Development);
    assert_eq!(c.session_ttl_secs, 86_400);
    assert_eq!(c.auth_webhook_url, None);
    assert!(c.auth_required);
    let c = Sources::new()
        .toml(
            "auth_required = false\nsession_ttl_secs = 60\nauth_webhook_url = \"http://127.0.0.1:9/auth\"",
            "rally.toml",
        )
        .unwrap()
        .load()
        .unwrap();
    assert!(!c.auth_required);
    assert_eq!(c.session_ttl_secs, 60);
    assert_eq!(
        c.auth_webhook_url.as_deref(),
        Some("http://127.0.0.1:9/auth")
    );
    for (key, bad) in [
        ("session_ttl_secs", "59"),
        ("auth_required", "maybe"),
        ("database_url", "mysql://x/y"),
        ("auth_webhook_url", "https://auth.example/login"),
        ("environment", "staging"),
    ] {
        let err = Sources::new()
            .flag(key, bad)
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{err}");
    }
}

#[test]
fn database_passwords_stay_out_of_debug_output() {
    let c = Sources::new()
        .env([(
            "RALLY_DATABASE_URL".into(),
            "postgres://rally:hunter2@db/rally".into(),
        )])
        .load()
        .unwrap();
    assert_eq!(c.database_url.expose(), "postgres://rally:hunter2@db/rally");
    let shown = format!("{c:?} {}", c.database_url);
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn production_refuses_development_switches_naming_the_key() {
    let prod = || Sources::new().flag("environment", "production");
    let err = prod().load().unwrap_err().to_string();
    assert!(
        err.contains("auth_secret") && err.contains("development default"),
        "{err}"
    );
    let err = prod()
        .env([("RALLY_AUTH_SECRET".into(), "0123456789abcdef-short".into())])
        .load()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("auth_secret") && err.contains("32 bytes") && !err.contains("short"),
        "{err}"
    );
    let strong = "0123456789abcdef0123456789abcdef";
    let err = prod()
        .env([("RALLY_AUTH_SECRET".into(), strong.into())])
        .flag("auth_required", "false")
        .load()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("auth_required") && err.contains("--auth-required"),
        "{err}"
    );
    let c = prod()
        .env([("RALLY_AUTH_SECRET".into(), strong.into())])
        .load()
        .unwrap();
    assert_eq!(c.environment, Environment::Production);
    assert!(!format!("{c:?}").contains(strong));
}

#[test]
fn flags_beat_env_beat_file() {
    let s = Sources::new()
        .toml(
            "tick_hz = 30\nqueue_capacity = 7\ntimeout_ms = 1000",
            "rally.toml",
        )
        .unwrap()
        .env([
            ("RALLY_TICK_HZ".into(), "40".into()),
            ("RALLY_TIMEOUT_MS".into(), "2000".into()),
        ])
        .flag("tick_hz", "50");
    let c = s.load().unwrap();
    assert_eq!((c.tick_hz, c.timeout_ms, c.queue_capacity), (50, 2000, 7));
}

#[test]
fn out_of_range_names_key_value_source_and_range() {
    let err = Sources::new()
        .env([("RALLY_CONCURRENCY_LIMIT".into(), "20000".into())])
        .load()
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "invalid concurrency_limit = \"20000\" (from environment variable RALLY_CONCURRENCY_LIMIT): \
         allowed is an integer in 1..=10000"
    );
    let err = Sources::new()
        .flag("tick_hz", "0")
        .load()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tick_hz") && err.contains("--tick-hz") && err.contains("1..=120"),
        "{err}"
    );
    let err = Sources::new()
        .toml("timeout_ms = -5", "x.toml")
        .unwrap()
        .load()
        .unwrap_err();
    assert!(err.to_string().contains("config file x.toml"), "{err}");
}

#[test]
fn unknown_file_keys_and_bad_types_are_refused() {
    let err = Sources::new()
        .toml("tick_rate = 20", "rally.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key \"tick_rate\""), "{err}");
    let err = Sources::new()
        .flag("tcp", "not-an-address")
        .load()
        .unwrap_err()
        .to_string();
    assert!(err.contains("IP:PORT"), "{err}");
    let err = Sources::new()
        .flag("log_format", "xml")
        .load()
        .unwrap_err()
        .to_string();
    assert!(err.contains("pretty, json"), "{err}");
}

#[test]
fn cluster_keys_default_to_a_single_node_and_check_the_node_id() {
    let c = Config::default();
    assert!(!c.clustered());
    assert_eq!(c.cluster_nats_url, None);
    assert_eq!(c.node_id, "rally-1");
    assert_eq!(c.advertise_tcp, "auto");
    let c = Sources::new()
        .flag("cluster_nats_url", "nats://127.0.0.1:4222")
        .flag("node_id", "node_b-2")
        .load()
        .unwrap();
    assert!(c.clustered());
    assert_eq!(c.node_id, "node_b-2");
    for bad in ["has space", "dot.ted", &"x".repeat(65)] {
        let e = Sources::new().flag("node_id", bad).load().unwrap_err();
        assert!(e.to_string().contains("node_id"), "{e}");
    }
    let e = Sources::new()
        .flag("cluster_nats_url", "http://x")
        .load()
        .unwrap_err();
    assert!(e.to_string().contains("cluster_nats_url"), "{e}");
}
