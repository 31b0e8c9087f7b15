use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Binary, Client, EngineApp, SECRET, start_binary};

crate::both_engines!(rooms_are_created_on_first_join_and_removed_when_empty);
async fn rooms_are_created_on_first_join_and_removed_when_empty(app: EngineApp) {
    let (alice, _) = app.join("one", "alice").await;
    let (bob, _) = app.join("two", "bob").await;
    let (carol, _) = app.join("two", "carol").await;
    assert_eq!(app.rooms().await.as_array().unwrap().len(), 2);
    alice.close().await;
    bob.close().await;
    carol.close().await;
    app.wait_until_no_rooms().await;
}

crate::both_engines!(shutdown_closes_every_socket_with_1001_and_stops_accepting);
async fn shutdown_closes_every_socket_with_1001_and_stops_accepting(app: EngineApp) {
    let (app, _redis) = app.split();
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    let mut echo = app.connect("/ws").await;
    let started = Instant::now();
    app.shutdown.cancel();
    alice.expect_close(1001).await;
    echo.expect_close(1001).await;
    tokio::time::timeout(Duration::from_secs(5), app.server)
        .await
        .expect("server exits within 5 s")
        .unwrap()
        .expect("clean exit");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        tokio::net::TcpStream::connect(app.addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn without_a_secret_the_binary_warns_and_uses_a_random_one() {
    let server = start_binary(&[], &[]).await;
    assert!(
        server
            .startup_log
            .iter()
            .any(|line| line.contains("WARN") && line.contains("no --jwt-secret")),
        "{:?}",
        server.startup_log
    );
    // A token signed with any other secret is refused.
    let token = chorus_server::auth::Auth::new(SECRET.as_bytes())
        .issue("alice", None, Duration::from_secs(60))
        .token;
    let mut client =
        Client::connect(&format!("ws://{}/ws/chat/lobby?token={token}", server.addr)).await;
    client.expect_close(4001).await;
}

#[tokio::test]
async fn an_empty_or_short_secret_refuses_to_start_naming_the_flag_not_the_value() {
    for (secret, bytes) in [("", "0"), ("s3cret-but-only-29-bytes-long", "29")] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
            .args(["--addr", "127.0.0.1:0", "--site-root", "target/no-site"])
            .env("CHORUS_JWT_SECRET", secret)
            .output()
            .await
            .expect("the binary runs");
        assert!(!output.status.success(), "started with {secret:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!(
                "--jwt-secret (CHORUS_JWT_SECRET) is {bytes} bytes long"
            )) && stderr.contains("at least 32"),
            "{stderr}"
        );
        assert!(secret.is_empty() || !stderr.contains(secret), "{stderr}");
    }
}

#[tokio::test]
async fn servers_sharing_redis_without_a_shared_secret_refuse_to_start() {
    // Refused before Redis is asked anything: nothing listens on port 1.
    let start = |extra: &'static [&'static str]| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
            .args(["--addr", "127.0.0.1:0", "--site-root", "target/no-site"])
            .args(["--redis-url", "redis://127.0.0.1:1"])
            .args(extra)
            .env_remove("CHORUS_JWT_SECRET")
            .output()
            .await
            .expect("the binary runs")
    };
    let output = start(&[]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--redis-url is set")
            && stderr.contains("give every server the same --jwt-secret"),
        "{stderr}"
    );
    // Without guests there is nothing to share: it goes on (to Redis, which is not there).
    let output = start(&["--no-guest-login"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("--redis-url is set"), "{stderr}");
}

/// The release-style binary: configured from `CHORUS_*` variables, SIGTERM, 1001, exit within 5 s.
#[tokio::test]
async fn the_binary_shuts_down_gracefully_on_sigterm() {
    let Binary {
        mut child,
        mut lines,
        addr,
        startup_log,
    } = start_binary(&[], &[("CHORUS_JWT_SECRET", SECRET)]).await;
    assert!(
        !startup_log
            .iter()
            .any(|line| line.contains("no --jwt-secret")),
        "CHORUS_JWT_SECRET counts as --jwt-secret: {startup_log:?}"
    );
    let token = chorus_server::auth::Auth::new(SECRET.as_bytes())
        .issue("alice", None, Duration::from_secs(60))
        .token;
    let mut alice = Client::connect(&format!("ws://{addr}/ws/chat/lobby?token={token}")).await;
    assert_eq!(alice.recv().await["type"], "welcome");
    assert_eq!(
        alice.recv().await,
        json!({"type": "system", "message": "alice joined the room", "event": "join", "user_id": "alice", "user": "alice"})
    );

    let started = Instant::now();
    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    alice.expect_close(1001).await;
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits within 5 s")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut log = startup_log;
    while let Ok(Some(line)) = lines.next_line().await {
        log.push(line);
    }
    assert!(
        log.iter().any(|line| line.contains("shutting down")),
        "{log:?}"
    );
    assert!(
        !log.iter().any(|line| line.contains(&token)),
        "a token in the log: {log:?}"
    );
}

#[tokio::test]
async fn a_hostile_token_cannot_forge_log_lines_or_reach_the_log() {
    use base64::Engine;
    let Binary {
        child: _running,
        mut lines,
        addr,
        ..
    } = start_binary(&["--jwt-secret", SECRET], &[]).await;
    let encode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(part);
    let token = format!(
        "{}.{}.c2ln",
        encode(
            "{\"alg\":\"HS256\\n2026-11-28T00:00:00Z  INFO FORGED admin signed in\",\"typ\":\"JWT\"}"
        ),
        encode("{\"sub\":\"mallory\",\"exp\":99999999999}"),
    );
    let mut client = Client::connect(&format!("ws://{addr}/ws/chat/lobby?token={token}")).await;
    client.expect_close(4001).await;
    // Read the log up to the refusal: it gives a fixed reason, and nothing of the token.
    let refusal = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the server keeps logging");
            assert!(!line.contains("FORGED") && !line.contains(&token), "{line}");
            if line.contains("refused a socket's token") {
                return line;
            }
        }
    })
    .await
    .expect("the refusal is logged at debug level");
    assert!(
        refusal.contains("DEBUG") && refusal.contains("the token is invalid"),
        "{refusal}"
    );
}
