use std::time::Duration;

use chorus_server::auth::Auth;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{Client, EngineApp, SECRET, spawn_app_with};

// Test tokens have `sub` = name, so user ids are the names.
fn joined(user: &str) -> Value {
    json!({"type": "system", "message": format!("{user} joined the room"), "event": "join",
           "user_id": user, "user": user})
}

fn left(user: &str) -> Value {
    json!({"type": "system", "message": format!("{user} left the room"), "event": "leave",
           "user_id": user, "user": user})
}

fn members(names: &[&str]) -> Value {
    names
        .iter()
        .map(|name| json!({"user_id": name, "name": name}))
        .collect()
}

fn id(frame: &Value) -> u64 {
    frame["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id in {frame}"))
}

crate::both_engines!(echo_answers_each_text_frame);
async fn echo_answers_each_text_frame(app: EngineApp) {
    let mut client = app.connect("/ws").await;
    client.send_text("hello").await;
    assert_eq!(
        client.next().await.into_text().unwrap().as_str(),
        "Echo: hello"
    );
    client.send_text("second").await;
    assert_eq!(
        client.next().await.into_text().unwrap().as_str(),
        "Echo: second"
    );
}

crate::both_engines!(two_members_see_each_others_messages_and_presence);
async fn two_members_see_each_others_messages_and_presence(app: EngineApp) {
    let (mut alice, mut welcome) = app.join("lobby", "alice").await;
    assert!(welcome["last_id"].is_u64(), "{welcome}");
    welcome["last_id"] = json!(0);
    assert_eq!(
        welcome,
        json!({"type": "welcome", "room": "lobby", "user_id": "alice", "user": "alice", "users": [], "recovered": true,
               "last_id": 0, "heartbeat_interval_ms": 30000, "heartbeat_timeout_ms": 10000})
    );
    assert_eq!(alice.recv().await, joined("alice"));

    // Those present before; the newcomer's own join follows.
    let (mut bob, welcome) = app.join("lobby", "bob").await;
    assert_eq!(welcome["users"], members(&["alice"]));
    assert_eq!(bob.recv().await, joined("bob"));
    assert_eq!(alice.recv().await, joined("bob"));

    alice.say("hello bob").await;
    let seen_by_alice = alice.recv_message().await;
    let seen_by_bob = bob.recv_message().await;
    assert_eq!(seen_by_alice, seen_by_bob);
    assert_eq!(seen_by_bob["user"], "alice");
    assert_eq!(seen_by_bob["content"], "hello bob");
    let timestamp = seen_by_bob["timestamp"].as_str().unwrap();
    assert!(timestamp.ends_with('Z'), "{timestamp}");
    let sent_at = OffsetDateTime::parse(timestamp, &Rfc3339).expect("RFC 3339");
    assert!((OffsetDateTime::now_utc() - sent_at).abs() < time::Duration::seconds(30));
    let keys: Vec<&String> = seen_by_bob.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["content", "id", "timestamp", "type", "user", "user_id"]
    );
    assert_eq!(seen_by_bob["user_id"], "alice");

    bob.say("hi alice").await;
    let reply = alice.recv_message().await;
    assert_eq!(bob.recv_message().await, reply);
    assert_eq!(reply["user"], "bob");
    assert_eq!(
        id(&reply),
        id(&seen_by_bob) + 1,
        "ids are consecutive per room"
    );

    bob.close().await;
    assert_eq!(alice.recv().await, left("bob"));
}

crate::both_engines!(rooms_are_isolated);
async fn rooms_are_isolated(app: EngineApp) {
    let (mut alice, _) = app.join("one", "alice").await;
    let (mut bob, _) = app.join("two", "bob").await;
    alice.recv().await;
    bob.recv().await;
    alice.say("only for room one").await;
    alice.recv_message().await;
    bob.expect_silence(std::time::Duration::from_millis(300))
        .await;
}

crate::both_engines!(a_second_tab_of_the_same_user_does_not_repeat_presence);
async fn a_second_tab_of_the_same_user_does_not_repeat_presence(app: EngineApp) {
    let (mut first, _) = app.join("lobby", "alice").await;
    assert_eq!(first.recv().await, joined("alice"));
    let (second, welcome) = app.join("lobby", "alice").await;
    assert_eq!(welcome["users"], members(&["alice"]));
    second.close().await;
    first.say("still here").await;
    // No join or leave for the second tab: the next frame is the message.
    first.recv_message().await;
}

crate::both_engines!(history_on_join_is_the_last_50_messages_in_order, |config| {
    config.connections.rate_limit_burst = 100;
    config.connections.user_rate_limit_burst = 100;
});
async fn history_on_join_is_the_last_50_messages_in_order(app: EngineApp) {
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    let sent = alice.say_numbered("message ", 60).await;
    let (mut bob, welcome) = app.join("lobby", "bob").await;
    assert_eq!(welcome["recovered"], true);
    for expected in &sent[10..] {
        assert_eq!(&bob.recv().await, expected);
    }
    assert_eq!(bob.recv().await, joined("bob"));
}

crate::both_engines!(since_recovers_exactly_the_missed_messages);
async fn since_recovers_exactly_the_missed_messages(app: EngineApp) {
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    let mut bob = app.join_settled("lobby", "bob", &mut [&mut alice]).await;

    alice.say("before").await;
    alice.recv_message().await;
    let last_seen = id(&bob.recv_message().await);
    bob.close().await;
    assert_eq!(alice.recv().await, left("bob"));

    let missed = alice.say_numbered("missed ", 3).await;
    let (mut bob, welcome) = app.join_since("lobby", "bob", Some(last_seen)).await;
    assert_eq!(welcome["recovered"], true);
    for expected in &missed {
        assert_eq!(&bob.recv().await, expected);
    }
    assert_eq!(bob.recv().await, joined("bob"));
    // Up to date: nothing more.
    let (mut carol, welcome) = app
        .join_since("lobby", "carol", Some(id(missed.last().unwrap())))
        .await;
    assert_eq!(welcome["recovered"], true);
    assert_eq!(carol.recv().await, joined("carol"));
}

// In memory only: a Redis stream trims approximately (`MAXLEN ~`), so it may keep
// more than `--history-size`.
#[tokio::test]
async fn since_beyond_retained_history_says_not_recovered() {
    let app = spawn_app_with(|config| config.rooms.history_size = 5).await;
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    let sent = alice.say_numbered("m", 8).await;
    // Seen only the first message: m1 and m2 are gone, m3..m7 are retained.
    let (mut bob, welcome) = app.join_since("lobby", "bob", Some(id(&sent[0]))).await;
    assert_eq!(welcome["recovered"], false);
    for expected in &sent[3..] {
        assert_eq!(&bob.recv().await, expected);
    }
    assert_eq!(bob.recv().await, joined("bob"));
    // Seen m2: m3.. are all retained.
    let (mut carol, welcome) = app.join_since("lobby", "carol", Some(id(&sent[2]))).await;
    assert_eq!(welcome["recovered"], true);
    assert_eq!(&carol.recv().await, &sent[3]);
}

#[tokio::test]
async fn ids_keep_increasing_when_a_room_is_recreated() {
    // Without history an emptied room is removed at once (with history it is kept
    // until the space is needed).
    let app = spawn_app_with(|config| config.rooms.history_size = 0).await;
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    alice.say("first life").await;
    let first = id(&alice.recv_message().await);
    alice.close().await;
    app.wait_until_no_rooms().await;
    let (mut alice, welcome) = app.join_since("lobby", "alice", Some(first)).await;
    // The room was emptied and removed; the client cannot know whether others spoke
    // before it emptied.
    assert_eq!(welcome["recovered"], false);
    alice.recv().await;
    alice.say("second life").await;
    assert!(id(&alice.recv_message().await) > first);
}

crate::both_engines!(
    welcome_gives_a_resume_point_and_the_heartbeat_even_in_an_empty_room,
    |config| {
        config.connections.heartbeat_interval = Duration::from_millis(1500);
        config.connections.heartbeat_timeout = Duration::from_millis(700);
        config.connections.rate_limit_burst = 100;
        config.connections.user_rate_limit_burst = 100;
    }
);
async fn welcome_gives_a_resume_point_and_the_heartbeat_even_in_an_empty_room(app: EngineApp) {
    let (alice, welcome) = app.join("quiet", "alice").await;
    assert_eq!(welcome["heartbeat_interval_ms"], 1500);
    assert_eq!(welcome["heartbeat_timeout_ms"], 700);
    let last_id = welcome["last_id"].as_u64().expect("last_id");
    let mut bob = app.join_settled("quiet", "bob", &mut []).await;
    alice.close().await;
    assert_eq!(bob.recv().await, left("alice"));

    // Sixty messages arrive while alice has seen none: since=last_id gets them all.
    let sent = bob.say_numbered("while away ", 60).await;
    assert_eq!(id(&sent[0]), last_id + 1);
    let (mut alice, welcome) = app.join_since("quiet", "alice", Some(last_id)).await;
    assert_eq!(welcome["recovered"], true);
    assert_eq!(welcome["last_id"], sent[59]["id"]);
    for expected in &sent {
        assert_eq!(&alice.recv().await, expected);
    }
}

/// Reads the broadcast of one's own message and its ack, in whichever order they come.
async fn message_and_ack(client: &mut Client) -> (Value, Value) {
    let (first, second) = (client.recv().await, client.recv().await);
    if first["type"] == "ack" {
        (second, first)
    } else {
        (first, second)
    }
}

crate::both_engines!(a_message_with_a_ref_is_acked_and_a_resend_is_not_published_again);
async fn a_message_with_a_ref_is_acked_and_a_resend_is_not_published_again(app: EngineApp) {
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    let mut bob = app.join_settled("lobby", "bob", &mut [&mut alice]).await;
    let once = r#"{"type":"message","content":"once","ref":"r-1"}"#;
    alice.send_text(once).await;
    let (message, ack) = message_and_ack(&mut alice).await;
    assert_eq!(message["content"], "once");
    assert_eq!(
        ack,
        json!({"type": "ack", "ref": "r-1", "id": message["id"]})
    );
    assert_eq!(bob.recv_message().await, message);

    // The same ref again, from a new connection of the same user: the ack with the
    // original id, and nothing published.
    alice.close().await;
    assert_eq!(bob.recv().await, left("alice"));
    let mut alice = app.join_settled("lobby", "alice", &mut [&mut bob]).await;
    alice.send_text(once).await;
    assert_eq!(alice.recv().await, ack);
    alice.expect_silence(Duration::from_millis(200)).await;
    bob.expect_silence(Duration::from_millis(200)).await;

    // Another user's ref is theirs alone.
    bob.send_text(r#"{"type":"message","content":"mine","ref":"r-1"}"#)
        .await;
    let (message, ack) = message_and_ack(&mut bob).await;
    assert_eq!(message["content"], "mine");
    assert_eq!(
        ack,
        json!({"type": "ack", "ref": "r-1", "id": message["id"]})
    );
    assert_eq!(alice.recv_message().await, message);
}

// Refused frames take from the rate too: four of them fit in the burst, and
// the rate refills slowly enough that a burst after them is refused.
crate::both_engines!(errors_name_the_ref_of_the_message_they_refuse, |config| {
    config.connections.rate_limit = 1;
    config.connections.rate_limit_burst = 4;
});
async fn errors_name_the_ref_of_the_message_they_refuse(app: EngineApp) {
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    alice
        .send_text(r#"{"type":"message","content":"  ","ref":"blank"}"#)
        .await;
    let error = alice.recv().await;
    assert_eq!(
        (&error["code"], &error["ref"]),
        (&json!("empty_message"), &json!("blank"))
    );

    // Control characters (each six bytes of JSON in every copy) are refused.
    alice
        .send_text(r#"{"type":"message","content":"a\u0000\u001b[2J","ref":"ctl"}"#)
        .await;
    let error = alice.recv().await;
    assert_eq!(
        (&error["code"], &error["ref"]),
        (&json!("invalid_content"), &json!("ctl"))
    );

    // An unusable ref is refused, and not echoed.
    let long = format!(
        r#"{{"type":"message","content":"x","ref":"{}"}}"#,
        "r".repeat(65)
    );
    alice.send_text(&long).await;
    let error = alice.recv().await;
    assert_eq!(error["code"], "invalid_frame");
    assert!(error.get("ref").is_none(), "{error}");

    alice
        .send_text(r#"{"type":"message","content":"first","ref":"r-1"}"#)
        .await;
    message_and_ack(&mut alice).await;
    // The burst is spent: of five at once, those past the refill are refused with
    // their own ref (a token a second comes back meanwhile).
    for n in 2..7 {
        alice
            .send_text(
                &json!({"type": "message", "content": "more", "ref": format!("r-{n}")}).to_string(),
            )
            .await;
    }
    let error = loop {
        let frame = alice.recv().await;
        if frame["type"] == "error" {
            break frame;
        }
    };
    assert_eq!(error["code"], "rate_limited");
    let reference = error["ref"].as_str().unwrap();
    assert!(
        ["r-2", "r-3", "r-4", "r-5", "r-6"].contains(&reference),
        "{error}"
    );
}

crate::both_engines!(two_users_with_one_name_are_two_members_told_apart_by_user_id);
async fn two_users_with_one_name_are_two_members_told_apart_by_user_id(app: EngineApp) {
    let token = |sub: &str| {
        Auth::new(SECRET.as_bytes())
            .issue(sub, Some("Alice"), Duration::from_secs(600))
            .token
    };
    let mut first = app
        .connect(&format!("/ws/chat/lobby?token={}", token("u-1")))
        .await;
    let welcome = first.recv().await;
    assert_eq!(
        (&welcome["user_id"], &welcome["user"]),
        (&json!("u-1"), &json!("Alice"))
    );
    first.recv().await;
    let mut second = app
        .connect(&format!("/ws/chat/lobby?token={}", token("u-2")))
        .await;
    let welcome = second.recv().await;
    assert_eq!(welcome["user_id"], "u-2");
    assert_eq!(
        welcome["users"],
        json!([{"user_id": "u-1", "name": "Alice"}])
    );
    let joined = second.recv().await;
    assert_eq!(
        (&joined["user_id"], &joined["user"]),
        (&json!("u-2"), &json!("Alice"))
    );
    assert_eq!(first.recv().await, joined, "the second Alice is announced");

    second.say("it's me").await;
    let message = first.recv_message().await;
    assert_eq!(
        (&message["user_id"], &message["user"]),
        (&json!("u-2"), &json!("Alice"))
    );
    assert_eq!(app.rooms().await[0]["members"], 2);
}
