//! What operators see: `/metrics` on its own listener, parsed as Prometheus text,
//! with counters that move as things happen (on both engines, and the Redis ones
//! through a Pub/Sub outage); and `--log-format json`, one object per line with each
//! connection's span.

use std::time::Duration;

use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{Client, EngineApp, PATIENCE, RedisServer, start_binary};

/// The next frame that is not a ping.
async fn next_event(client: &mut Client) -> Value {
    loop {
        let frame = client.recv().await;
        if frame["type"] != "ping" {
            return frame;
        }
    }
}

both_engines!(counters_move_as_members_come_talk_and_go);
async fn counters_move_as_members_come_talk_and_go(app: EngineApp) {
    let before = app.metrics().await;
    assert_eq!(before.value("chorus_connections", &[]), 0.0);
    assert_eq!(before.value("chorus_rooms", &[]), 0.0);

    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    let mut bob = app.join_settled("lobby", "bob", &mut [&mut alice]).await;
    let during = app.metrics().await;
    assert_eq!(during.value("chorus_connections", &[]), 2.0);
    assert_eq!(during.value("chorus_rooms", &[]), 1.0);
    assert_eq!(during.value("chorus_connections_accepted_total", &[]), 2.0);

    alice.say("hello").await;
    next_event(&mut alice).await;
    assert_eq!(next_event(&mut bob).await["content"], "hello");
    alice.say("").await; // refused: empty_message
    assert_eq!(next_event(&mut alice).await["code"], "empty_message");
    let published = app
        .api(
            "POST",
            "/api/rooms/lobby/messages",
            Some(r#"{"content":"from the backend"}"#),
        )
        .await;
    assert_eq!(published.status, 201);
    assert_eq!(next_event(&mut bob).await["content"], "from the backend");
    app.connect("/ws/chat/lobby?token=forged")
        .await
        .expect_close(4001)
        .await;

    // Counted as they happen, which may be just after a client saw the effect.
    let after = app
        .metrics_when(|scrape| {
            scrape.value("chorus_connections_closed_total", &[("code", "4001")]) == 1.0
                && scrape.value("chorus_messages_published_total", &[]) == 2.0
                && scrape.value("chorus_delivery_latency_seconds", &[]) == 2.0
        })
        .await;
    assert_eq!(
        after.value("chorus_messages_published_total", &[("source", "socket")]),
        1.0
    );
    assert_eq!(
        after.value("chorus_messages_published_total", &[("source", "api")]),
        1.0
    );
    assert_eq!(
        after.value("chorus_frames_refused_total", &[("code", "empty_message")]),
        1.0
    );
    assert_eq!(
        after.value(
            "chorus_auth_failures_total",
            &[("reason", "malformed token")]
        ),
        1.0
    );
    // Two messages to two members, and bob's join to alice and bob (at least).
    assert!(after.value("chorus_frames_delivered_total", &[]) >= 6.0);
    assert_eq!(
        after.value("chorus_delivery_latency_seconds", &[]),
        2.0,
        "one per broadcast"
    );
    assert_eq!(after.value("chorus_evictions_total", &[]), 0.0);

    bob.close().await;
    let gone = app
        .metrics_when(|scrape| scrape.value("chorus_connections", &[]) == 1.0)
        .await;
    assert_eq!(
        gone.value("chorus_connections_closed_total", &[("code", "none")]),
        1.0
    );
    app.shutdown.cancel();
    let (frame, _) = alice.closed().await;
    assert_eq!(u16::from(frame.unwrap().code), 1001);
}

#[tokio::test]
async fn redis_errors_reconnects_and_gap_refills_are_counted() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let app =
        crate::helpers::spawn_app_with(move |config| config.redis.redis_url = Some(url)).await;
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    alice.say("first").await;
    let first = next_event(&mut alice).await["id"].as_u64().unwrap();

    // A message stored in the room's stream whose Pub/Sub copy never came (as when
    // this server's subscription is down while another server publishes).
    let missed = json!({"type": "message", "id": first + 1, "user_id": "bob", "user": "bob",
        "content": "sent while you were cut off", "timestamp": "2026-11-28T10:00:00.000Z"});
    let _: String = redis
        .query(
            redis::cmd("XADD")
                .arg("chorus:room:{lobby}:log")
                .arg(format!("{}-0", first + 1))
                .arg("f")
                .arg(missed.to_string()),
        )
        .await;
    let _: u64 = redis
        .query(redis::cmd("INCR").arg("chorus:room:{lobby}:seq"))
        .await;
    let _: u64 = redis
        .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub"))
        .await;
    // The subscriber comes back and fills the gap from the stream.
    assert_eq!(
        next_event(&mut alice).await["content"],
        "sent while you were cut off"
    );
    let after = app
        .metrics_when(|scrape| scrape.value("chorus_redis_subscriber_reconnects_total", &[]) >= 1.0)
        .await;
    assert_eq!(after.value("chorus_redis_gap_refills_total", &[]), 1.0);
    assert_eq!(after.value("chorus_redis_errors_total", &[]), 0.0);

    // Redis refuses writes: the send fails and is counted.
    let _: () = redis
        .query(
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("min-replicas-to-write")
                .arg("1"),
        )
        .await;
    alice.say("refused").await;
    assert_eq!(next_event(&mut alice).await["code"], "unavailable");
    let refused = app.metrics().await;
    assert_eq!(refused.value("chorus_redis_errors_total", &[]), 1.0);
    assert_eq!(
        refused.value("chorus_frames_refused_total", &[("code", "unavailable")]),
        1.0
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_connections_span() {
    let secret = "json-log-test-secret-of-32-bytes!!";
    let mut server = start_binary(
        &[
            "--jwt-secret",
            secret,
            "--log-format",
            "json",
            "--presence-grace",
            "0s",
        ],
        &[],
    )
    .await;
    for line in &server.startup_log {
        let parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            parsed["level"].is_string() && parsed["fields"]["message"].is_string(),
            "{line}"
        );
    }
    let token = chorus_server::auth::Auth::new(secret.as_bytes())
        .issue("user-7", Some("Dana"), Duration::from_secs(600))
        .token;
    let mut client =
        Client::connect(&format!("ws://{}/ws/chat/lobby?token={token}", server.addr)).await;
    assert_eq!(client.recv().await["type"], "welcome");
    client.close().await;
    let forged = format!("{token}x");
    let mut refused = Client::connect(&format!(
        "ws://{}/ws/chat/lobby?token={forged}",
        server.addr
    ))
    .await;
    refused.expect_close(4001).await;

    // Read the log until both sockets have said their last word.
    let mut joined = None;
    let mut refusal = None;
    tokio::time::timeout(PATIENCE, async {
        while joined.is_none() || refusal.is_none() {
            let line = server
                .lines
                .next_line()
                .await
                .unwrap()
                .expect("the server is still logging");
            assert!(!line.contains(&token[20..]), "a token in the log: {line}");
            let parsed: Value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
            match parsed["fields"]["message"].as_str() {
                Some("member joined") => joined = Some(parsed),
                Some("refused a socket's token") => refusal = Some(parsed),
                _ => {}
            }
        }
    })
    .await
    .expect("both log lines in time");
    let joined = joined.unwrap();
    assert_eq!(joined["span"]["name"], "socket");
    assert_eq!(joined["span"]["room"], "lobby");
    assert_eq!(joined["span"]["user_id"], "user-7");
    assert!(joined["span"]["connection_id"].is_u64(), "{joined}");
    let refusal = refusal.unwrap();
    assert_eq!(refusal["span"]["room"], "lobby");
    assert!(
        refusal["span"].get("user_id").is_none(),
        "no user for a forged token: {refusal}"
    );
    assert_ne!(
        refusal["span"]["connection_id"],
        joined["span"]["connection_id"]
    );
}

#[tokio::test]
async fn the_metrics_listener_closes_connections_that_never_finish_their_headers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_app_with(|config| {
        config.http.http_idle_timeout = Duration::from_millis(300);
    })
    .await;
    let mut slow = tokio::net::TcpStream::connect(app.metrics_addr)
        .await
        .unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    // The read ends when the server closes it; a timeout here means it never did.
    tokio::time::timeout(PATIENCE, slow.read_to_end(&mut received))
        .await
        .expect("closed in time")
        .ok();
    // Scrapes that arrive in time are served as before.
    assert!(app.metrics().await.value("chorus_connections", &[]) >= 0.0);
}
