//! `rally serve` and `rally migrate` end to end with a real database: an account keeps its
//! name and data across a restart (SQLite, and PostgreSQL when `RALLY_TEST_POSTGRES_URL`
//! is set); `rally migrate` prepares a database without serving; production mode refuses
//! the development switches.

mod common;

use common::{serve, Player, RALLY};
use rally_server::protocol::{ClientMessage, ServerMessage};
use rally_testkit::TestDb;

#[tokio::test]
async fn an_account_keeps_its_name_and_data_across_a_restart() {
    for db in TestDb::both().await {
        let device = rally_testkit::unique_name("device");
        let server = serve(&db.url, &[]).await;
        let (mut p, account) = Player::connect(&server.tcp, None).await;
        assert_eq!(account, 0);
        let (account, token, name) = p.login(&device).await;
        assert_eq!(name, format!("player-{account}"));
        let renamed = p
            .call(|req| ClientMessage::SetName {
                req,
                name: "Persistent Pat",
            })
            .await;
        assert!(
            matches!(renamed, Some(Ok(ServerMessage::Ok { .. }))),
            "{renamed:?}"
        );
        assert_eq!(
            p.put("save", r#"{"level":7,"items":["lamp"]}"#, 0).await,
            Some(Ok(1))
        );
        drop(p);
        assert!(server.terminate().await, "exit 0 after SIGTERM");

        let server = serve(&db.url, &[]).await;
        let (mut p, _) = Player::connect(&server.tcp, None).await;
        let (again, _, name) = p.login(&device).await;
        assert_eq!(
            again,
            account,
            "same device, same account ({})",
            db.backend()
        );
        assert_eq!(name, "Persistent Pat");
        let (value, version) = p.get("save").await;
        let value: serde_json::Value = serde_json::from_str(&value.expect("the data")).unwrap();
        assert_eq!(value, serde_json::json!({"level": 7, "items": ["lamp"]}));
        assert_eq!(version, 1);
        // The session token of the first run still logs in: same (default) secret.
        let (q, restored) = Player::connect(&server.tcp, Some(&token)).await;
        assert_eq!(restored, account);
        drop((p, q));
        assert!(server.terminate().await);
        db.cleanup().await;
    }
}

async fn rally(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(RALLY)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run rally");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn rally_migrate_prepares_the_database_without_serving() {
    let db = TestDb::sqlite();
    let path = db.sqlite_path.clone().unwrap();
    let (code, err) = rally(&["migrate", "--database-url", &db.url], &[]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("up to date"), "{err}");
    assert!(path.exists(), "the database file was created");
    // Again: nothing to do.
    let (code, err) = rally(&["migrate", "--database-url", &db.url], &[]).await;
    assert_eq!(code, Some(0), "{err}");
    // A server on the migrated file finds its schema ready.
    let server = serve(&db.url, &[]).await;
    let (mut p, _) = Player::connect(&server.tcp, None).await;
    p.login("migrated-device-0001").await;
    drop(p);
    assert!(server.terminate().await);

    let (code, err) = rally(&["migrate", "--database-url", "mysql://db/rally"], &[]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("database_url"), "{err}");
    let (code, err) = rally(
        &[
            "migrate",
            "--database-url",
            "sqlite:///no/such/dir/rally.db",
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("database_url") && err.contains("/no/such/dir"),
        "{err}"
    );
}

#[tokio::test]
async fn production_mode_refuses_development_switches() {
    let (code, err) = rally(&["serve", "--environment", "production"], &[]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("auth_secret") && err.contains("development default"),
        "{err}"
    );
    let (code, err) = rally(
        &["serve", "--environment", "production"],
        &[("RALLY_AUTH_SECRET", "only-twenty-chars-xx")],
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("auth_secret") && err.contains("32 bytes"),
        "{err}"
    );
    assert!(
        !err.contains("only-twenty"),
        "the secret is never shown: {err}"
    );
    let strong = "0123456789abcdef0123456789abcdef-strong";
    let (code, err) = rally(
        &[
            "serve",
            "--environment",
            "production",
            "--auth-required",
            "false",
        ],
        &[("RALLY_AUTH_SECRET", strong)],
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("auth_required"), "{err}");
    // With a strong secret and logins required, production starts.
    let db = TestDb::sqlite();
    let server = serve(
        &db.url,
        &["--environment", "production", "--auth-secret", strong],
    )
    .await;
    let (mut p, _) = Player::connect(&server.tcp, None).await;
    p.login("production-device-1").await;
    drop(p);
    assert!(server.terminate().await);
}
