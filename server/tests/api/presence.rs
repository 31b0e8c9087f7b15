//! The presence grace: a user whose last connection closes is still listed for
//! `--presence-grace`, and only then announced as gone; a reconnect within it is
//! invisible to the others. Announcements gathered into `presence` frames during a
//! burst. On both engines, and across servers with Redis.

use std::time::Duration;

use chorus_server::hub::USERS_PER_FRAME;
use serde_json::Value;

use crate::helpers::{Client, EngineApp, Node, RedisServer, spawn_app_with};

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
    let app = spawn_app_with(|config| config.rooms.presence_grace = GRACE).await;
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
    let app = spawn_app_with(|config| config.rooms.presence_grace = Duration::from_secs(5)).await;
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

/// Applies a `system` or `presence` frame to a member list (by user id); `false`
/// for any other frame.
fn apply_presence(list: &mut std::collections::BTreeSet<String>, frame: &Value) -> bool {
    let id = |member: &Value| member["user_id"].as_str().unwrap().to_owned();
    match frame["type"].as_str() {
        Some("system") if frame["event"] == "join" => list.insert(id(frame)),
        Some("system") if frame["event"] == "leave" => list.remove(&id(frame)),
        Some("presence") => {
            for member in frame["joins"].as_array().unwrap() {
                list.insert(id(member));
            }
            for member in frame["leaves"].as_array().unwrap() {
                list.remove(&id(member));
            }
            true
        }
        _ => return false,
    };
    true
}

/// Applies presence frames until the message `content`, which must come before
/// anything else; returns how many `presence` frames there were.
async fn presence_until(
    client: &mut Client,
    list: &mut std::collections::BTreeSet<String>,
    content: &str,
) -> usize {
    let mut gathered = 0;
    loop {
        let frame = next_event(client).await;
        if frame["type"] == "message" {
            assert_eq!(frame["content"], content, "{frame}");
            return gathered;
        }
        assert_eq!(frame["type"], "presence", "only gathered: {frame}");
        gathered += 1;
        assert!(apply_presence(list, &frame));
    }
}

fn listed(welcome: &Value) -> std::collections::BTreeSet<String> {
    welcome["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["user_id"].as_str().unwrap().to_owned())
        .collect()
}

crate::both_engines!(
    joins_and_leaves_gathered_reach_everyone_in_order,
    |config| config.rooms.presence_burst = 0
);
/// With `--presence-burst 0` every announcement is gathered: a crowd joining at once
/// (on the other server, with Redis) reaches a watcher as `presence` frames, all of
/// them before the next message; someone welcomed in the middle of it ends with the
/// same list; leaves are gathered the same way.
async fn joins_and_leaves_gathered_reach_everyone_in_order(app: EngineApp) {
    const CROWD: usize = 30;
    let second = app.second().await;
    let other = app.or_this(&second);
    let (mut watcher, welcome) = app.join("lobby", "watcher").await;
    let mut watcher_list = listed(&welcome);

    let names: Vec<String> = (0..CROWD).map(|i| format!("m{i}")).collect();
    let joins = names.iter().map(|name| other.join("lobby", name));
    let mut crowd: Vec<(Client, Value)> = futures_util::future::join_all(joins).await;
    let (mut last, _) = crowd.pop().unwrap();
    last.say("all in").await;
    let gathered = presence_until(&mut watcher, &mut watcher_list, "all in").await;
    assert!(gathered >= 1);
    let mut everyone: std::collections::BTreeSet<String> =
        (0..CROWD).map(|i| format!("m{i}")).collect();
    everyone.insert("watcher".into());
    assert_eq!(watcher_list, everyone);
    // Welcomed mid-crowd, with the gathering under way: the same list in the end.
    let (middle, middle_welcome) = &mut crowd[CROWD / 2];
    let mut middle_list = listed(middle_welcome);
    presence_until(middle, &mut middle_list, "all in").await;
    assert_eq!(middle_list, everyone);

    // A third of them leave at once.
    let leaving: Vec<(Client, Value)> = crowd.drain(..CROWD / 3).collect();
    for (i, (client, _)) in leaving.into_iter().enumerate() {
        client.close().await;
        everyone.remove(&format!("m{i}"));
    }
    while watcher_list != everyone {
        let frame = next_event(&mut watcher).await;
        assert_eq!(frame["type"], "presence", "only gathered: {frame}");
        apply_presence(&mut watcher_list, &frame);
    }
    last.say("the rest").await;
    let after = next_event(&mut watcher).await;
    assert_eq!(after["content"], "the rest", "nothing else: {after}");
}

crate::both_engines!(
    a_large_rooms_member_list_comes_in_frames_of_bounded_size,
    |config| {
        config.connections.connect_rate_limit = 10_000;
        config.connections.connect_rate_limit_burst = 10_000;
    }
);
/// Past [`USERS_PER_FRAME`] users, a welcome lists the first ones and `users`
/// frames right after it the rest, before anything else; together they are everyone.
async fn a_large_rooms_member_list_comes_in_frames_of_bounded_size(app: EngineApp) {
    let crowd = USERS_PER_FRAME + 5;
    let second = app.second().await;
    let names: Vec<String> = (0..crowd).map(|i| format!("m{i:03}")).collect();
    let joins = names.iter().map(|name| app.join("big", name));
    let _crowd: Vec<(Client, Value)> = futures_util::future::join_all(joins).await;

    let (mut newcomer, welcome) = app.or_this(&second).join("big", "newcomer").await;
    let mut listed = listed(&welcome);
    assert_eq!(listed.len(), USERS_PER_FRAME, "the first share");
    let more = next_event(&mut newcomer).await;
    assert_eq!(more["type"], "users", "{more}");
    let rest = more["users"].as_array().unwrap();
    assert_eq!(rest.len(), 5);
    listed.extend(
        rest.iter()
            .map(|member| member["user_id"].as_str().unwrap().to_owned()),
    );
    let everyone: std::collections::BTreeSet<String> = names.into_iter().collect();
    assert_eq!(listed, everyone);
    // Then announcements only (the crowd's, still being gathered, may come first),
    // up to the newcomer's own join.
    while !listed.contains("newcomer") {
        let frame = next_event(&mut newcomer).await;
        assert!(apply_presence(&mut listed, &frame), "{frame}");
    }
    let mut everyone = everyone;
    everyone.insert("newcomer".into());
    assert_eq!(listed, everyone);
}

crate::both_engines!(typing_reaches_the_room_at_most_every_two_seconds_and_is_never_stored);
/// `typing` goes to every member (with Redis, on the other server too), at most once
/// per connection every two seconds (more are dropped, silently), and never into
/// history: a member joining later is not told someone was typing.
async fn typing_reaches_the_room_at_most_every_two_seconds_and_is_never_stored(app: EngineApp) {
    let second = app.second().await;
    let other = app.or_this(&second);
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    let mut bob = other.join_settled("lobby", "bob", &mut [&mut alice]).await;
    for _ in 0..3 {
        alice.send_text(r#"{"type":"typing"}"#).await;
    }
    alice.say("done typing").await;
    for client in [&mut bob, &mut alice] {
        let typing = next_event(client).await;
        assert_eq!(
            (&typing["type"], &typing["user"]),
            (&Value::from("typing"), &Value::from("alice")),
            "{typing}"
        );
        assert!(typing["user_id"].as_str().is_some_and(|id| !id.is_empty()));
        let next = next_event(client).await;
        assert_eq!(
            next["content"], "done typing",
            "one typing of three: {next}"
        );
    }
    let (mut late, _) = other.join("lobby", "carol").await;
    let backlog = next_event(&mut late).await;
    assert_eq!(backlog["content"], "done typing", "{backlog}");
}
