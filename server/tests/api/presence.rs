//! The presence grace: a user whose last connection closes is still listed for
//! `--presence-grace`, and only then announced as gone; a reconnect within it is
//! invisible to the others. On both engines, and across servers with Redis.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Client, Node, RedisServer, spawn_app_with};

const GRACE: Duration = Duration::from_millis(500);

/// The next frame that is not a ping.
async fn next_event(client: &mut Client) -> Value {
    loop {
        let frame = client.recv().await;
        if frame["type"] != "ping" {
            return frame;
        }
    }
}

#[tokio::test]
async fn sixty_reconnects_within_the_grace_announce_nothing_and_a_real_leave_once() {
    let app = spawn_app_with(|config| config.presence_grace = GRACE).await;
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    let mut bob = app.join_settled("lobby", "bob", &mut [&mut alice]).await;
    for _ in 0..60 {
        bob.close().await;
        bob = app.join("lobby", "bob").await.0;
    }
    bob.say("still me").await;
    // Nothing between bob's join and his message: no leave, no join.
    let next = next_event(&mut alice).await;
    assert_eq!(next["content"], "still me", "{next}");

    // Gone for good: one leave, once the grace is over.
    bob.close().await;
    let left = next_event(&mut alice).await;
    assert_eq!(
        (&left["event"], &left["user_id"]),
        (&"leave".into(), &"bob".into()),
        "{left}"
    );
    // And only one: coming back now is a new join, right after it.
    let (mut bob, _) = app.join("lobby", "bob").await;
    assert_eq!(next_event(&mut alice).await["event"], "join");
    bob.say("back").await;
    assert_eq!(next_event(&mut alice).await["content"], "back");
}

#[tokio::test]
async fn a_graceful_shutdown_announces_no_leaves() {
    let app = spawn_app_with(|config| config.presence_grace = Duration::from_secs(5)).await;
    let mut members = Vec::new();
    for name in ["alice", "bob", "carol", "dave"] {
        let mut refs: Vec<&mut Client> = members.iter_mut().collect();
        let joined = app.join_settled("lobby", name, &mut refs).await;
        members.push(joined);
    }
    app.shutdown.cancel();
    for member in &mut members {
        let (frame, before) = member.closed().await;
        assert_eq!(u16::from(frame.expect("a close frame").code), 1001);
        assert!(
            before.iter().all(|frame| frame["type"] == "ping"),
            "told something before the close: {before:?}"
        );
    }
}

/// Two servers on one Redis with a 500 ms grace: alice on the first, bob on the
/// second, each seen by alice.
struct TwoServers {
    _redis: RedisServer,
    a: Node,
    b: Node,
    alice: Client,
    bob: Client,
}

impl TwoServers {
    async fn start() -> TwoServers {
        let redis = RedisServer::start().await;
        let grace = ["--presence-grace", "500ms"];
        let a = Node::start_with(&redis, &grace).await;
        let b = Node::start_with(&redis, &grace).await;
        let (mut alice, _) = a.join("lobby", "alice", None).await;
        assert_eq!(
            next_event(&mut alice).await["user_id"],
            "alice",
            "her own join"
        );
        let (bob, _) = b.join("lobby", "bob", None).await;
        assert_eq!(next_event(&mut alice).await["user_id"], "bob");
        TwoServers {
            _redis: redis,
            a,
            b,
            alice,
            bob,
        }
    }

    /// Bob's server stops gracefully: his socket closes with 1001.
    async fn stop_bobs_server(&mut self) {
        self.b.terminate().await;
        let (closed, _) = self.bob.closed().await;
        assert_eq!(u16::from(closed.expect("a close frame").code), 1001);
    }
}

#[tokio::test]
async fn with_redis_a_user_moving_servers_within_the_grace_announces_nothing() {
    let mut servers = TwoServers::start().await;
    // Bob's server stops; he reconnects to the other one within the grace.
    servers.stop_bobs_server().await;
    let TwoServers { a, mut alice, .. } = servers;
    let (mut bob, welcome) = a.join("lobby", "bob", None).await;
    assert!(
        welcome["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|user| user["user_id"] == "bob"),
        "still listed while in the grace: {welcome}"
    );
    bob.say("moved").await;
    let next = next_event(&mut alice).await;
    assert_eq!(next["content"], "moved", "{next}");

    // Gone for good: one leave after the grace, announced by the server still running.
    bob.close().await;
    let left = next_event(&mut alice).await;
    assert_eq!(
        (&left["event"], &left["user_id"]),
        (&"leave".into(), &"bob".into()),
        "{left}"
    );
    let (mut carol, _) = a.join("lobby", "carol", None).await;
    assert_eq!(next_event(&mut alice).await["user_id"], "carol");
    carol.say("hi").await;
    assert_eq!(next_event(&mut alice).await["content"], "hi");
}

#[tokio::test]
async fn with_redis_the_leave_of_a_user_whose_server_stopped_is_announced_once_by_another() {
    let mut servers = TwoServers::start().await;
    servers.stop_bobs_server().await;
    let TwoServers { a, mut alice, .. } = servers;
    let left = next_event(&mut alice).await;
    assert_eq!(
        (&left["event"], &left["user_id"]),
        (&"leave".into(), &"bob".into()),
        "{left}"
    );
    assert_eq!(
        a.rooms().await,
        serde_json::json!([{"name": "lobby", "members": 1, "connections": 1}])
    );
}
