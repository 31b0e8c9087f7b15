//! Room permissions from token claims: `rooms` (where a token may join: 4003
//! elsewhere), `publish` (where it may post: `forbidden` elsewhere), and
//! `--guest-rooms` for guest tokens. On both engines.

use chorus_server::auth::{sign_hs256, unix_now};
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{Client, EngineApp, SECRET};

fn token(sub: &str, extra: Value) -> String {
    let mut claims = json!({"sub": sub, "exp": unix_now() + 600});
    claims
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    sign_hs256(SECRET.as_bytes(), &claims)
}

async fn connect(app: &EngineApp, room: &str, token: &str) -> Client {
    app.connect(&format!("/ws/chat/{room}?token={token}")).await
}

async fn welcomed(app: &EngineApp, room: &str, token: &str) -> Client {
    let mut client = connect(app, room, token).await;
    let welcome = client.recv().await;
    assert_eq!(welcome["type"], "welcome", "{room}: {welcome}");
    client
}

both_engines!(the_rooms_claim_limits_where_a_token_may_join);
async fn the_rooms_claim_limits_where_a_token_may_join(app: EngineApp) {
    let agent = token("agent", json!({"rooms": ["support-*", "lobby"]}));
    welcomed(&app, "lobby", &agent).await;
    welcomed(&app, "support-17", &agent).await;
    for room in ["lobby2", "supporters", "general"] {
        let mut refused = connect(&app, room, &agent).await;
        let (frame, before) = refused.closed().await;
        assert!(before.is_empty(), "{room}: {before:?}");
        let frame = frame.expect("a close frame");
        assert_eq!(u16::from(frame.code), 4003, "{room}");
        assert_eq!(frame.reason.as_str(), "Not allowed in this room");
    }
    // An empty list: nowhere. Absent: everywhere (a token without the claim).
    let nowhere = token("nobody", json!({"rooms": []}));
    connect(&app, "lobby", &nowhere)
        .await
        .expect_close(4003)
        .await;
    welcomed(&app, "general", &token("anyone", json!({}))).await;
    // Refused sockets never joined: no room was created for them.
    let rooms: Vec<String> = app
        .rooms()
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|room| room["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !rooms
            .iter()
            .any(|room| room == "lobby2" || room == "supporters"),
        "{rooms:?}"
    );
}

both_engines!(the_publish_claim_makes_a_read_only_member);
async fn the_publish_claim_makes_a_read_only_member(app: EngineApp) {
    let mut writer = welcomed(&app, "news", &token("editor", json!({"publish": ["news"]}))).await;
    let mut reader = welcomed(
        &app,
        "news",
        &token("reader", json!({"rooms": ["news"], "publish": []})),
    )
    .await;
    // Nor is its typing passed on.
    reader.send_text(r#"{"type":"typing"}"#).await;
    reader
        .send_text(r#"{"type":"message","content":"let me in","ref":"r-1"}"#)
        .await;
    let refused = next_not(&mut reader, &["system", "ping"]).await;
    assert_eq!(
        (&refused["type"], &refused["code"], &refused["ref"]),
        (&json!("error"), &json!("forbidden"), &json!("r-1")),
        "{refused}"
    );
    // Nothing was published: the writer's next message is the first the room has.
    writer
        .send_text(r#"{"type":"message","content":"headline","ref":"w-1"}"#)
        .await;
    let message = next_not(&mut reader, &["system", "ping", "ack"]).await;
    assert_eq!(message["content"], "headline", "{message}");
    let first = next_not(&mut writer, &["system", "ping", "ack"]).await;
    assert_eq!(first["content"], "headline", "no typing before it: {first}");
    // Nor stored: a member joining later (with Redis, on another server) gets only it.
    let second = app.second().await;
    let elsewhere = app.or_this(&second);
    let mut late = elsewhere
        .connect(&format!("/ws/chat/news?token={}", token("late", json!({}))))
        .await;
    assert_eq!(late.recv().await["type"], "welcome");
    let history = history_contents(late).await;
    assert_eq!(history, ["headline"]);
}

both_engines!(guest_tokens_go_only_where_guest_rooms_says, |config| {
    config.guests.guest_rooms = vec![
        "lobby"
            .parse::<chorus_server::auth::permissions::Pattern>()
            .unwrap(),
        "public-*".parse().unwrap(),
    ];
});
async fn guest_tokens_go_only_where_guest_rooms_says(app: EngineApp) {
    let guest = &app.guest_token("visitor").await;
    let mut lobby = welcomed(&app, "lobby", guest).await;
    welcomed(&app, "public-chat", guest).await;
    connect(&app, "staff", guest).await.expect_close(4003).await;
    lobby
        .send_text(r#"{"type":"message","content":"hi","ref":"g-1"}"#)
        .await;
    let ack = next_not(&mut lobby, &["system", "ping"]).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // Tokens from the application's issuer are not guests: --guest-rooms does not apply.
    welcomed(&app, "staff", &token("staffer", json!({}))).await;
}

both_engines!(malformed_room_claims_are_refused_with_4001);
async fn malformed_room_claims_are_refused_with_4001(app: EngineApp) {
    for extra in [
        json!({"rooms": "lobby"}),
        json!({"rooms": [1, 2]}),
        json!({"rooms": ["a*b"]}),
        json!({"rooms": ["with space"]}),
        json!({"publish": {"lobby": true}}),
        json!({"publish": ["**"]}),
    ] {
        let mut refused = connect(&app, "lobby", &token("u", extra.clone())).await;
        let (frame, _) = refused.closed().await;
        assert_eq!(u16::from(frame.unwrap().code), 4001, "{extra}");
    }
}

/// The next frame whose type is not one of `skipped`.
async fn next_not(client: &mut Client, skipped: &[&str]) -> Value {
    loop {
        let frame = client.recv().await;
        if !skipped.iter().any(|skip| frame["type"] == *skip) {
            return frame;
        }
    }
}

/// The contents of the history a member was sent on joining (welcomed already).
async fn history_contents(mut client: Client) -> Vec<String> {
    let mut contents = Vec::new();
    loop {
        let frame = client.recv().await;
        match frame["type"].as_str() {
            Some("message") => contents.push(frame["content"].as_str().unwrap().to_owned()),
            Some("system") => return contents,
            _ => {}
        }
    }
}
