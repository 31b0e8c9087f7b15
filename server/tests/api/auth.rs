use std::time::{Duration, Instant};

use chorus_server::auth::{sign_hs256, unix_now};
use serde_json::json;

use crate::helpers::{EngineApp, SECRET};

fn sign(secret: &str, claims: serde_json::Value) -> String {
    sign_hs256(secret.as_bytes(), &claims)
}

fn now() -> u64 {
    unix_now()
}

crate::both_engines!(bad_tokens_are_upgraded_then_closed_with_4001);
async fn bad_tokens_are_upgraded_then_closed_with_4001(app: EngineApp) {
    let forged = sign(
        "not-the-secret",
        json!({"sub": "mallory", "exp": now() + 600}),
    );
    let without_sub = sign(SECRET, json!({"name": "alice", "exp": now() + 600}));
    let without_exp = sign(SECRET, json!({"sub": "alice"}));
    for path in [
        "/ws/chat/lobby".to_owned(),
        "/ws/chat/lobby?token=".to_owned(),
        "/ws/chat/lobby?token=not.a.jwt".to_owned(),
        format!("/ws/chat/lobby?token={forged}"),
        format!("/ws/chat/lobby?token={without_sub}"),
        format!("/ws/chat/lobby?token={without_exp}"),
    ] {
        let mut client = app.connect(&path).await;
        let (frame, before) = client.closed().await;
        assert!(before.is_empty(), "{path}: {before:?}");
        let frame = frame.expect("close frame");
        assert_eq!(u16::from(frame.code), 4001, "{path}");
        assert_eq!(frame.reason.as_str(), "Unauthorized");
    }
    // Nobody joined.
    assert_eq!(app.rooms().await, json!([]));
}

crate::both_engines!(a_name_claim_that_passes_for_another_is_refused_with_4001);
async fn a_name_claim_that_passes_for_another_is_refused_with_4001(app: EngineApp) {
    for name in ["evil\u{202E}nimda", "ad\u{200B}min", "", "a\u{7}b"] {
        let token = sign(
            SECRET,
            json!({"sub": "user-7", "name": name, "exp": now() + 600}),
        );
        let mut client = app.connect(&format!("/ws/chat/lobby?token={token}")).await;
        client.expect_close(4001).await;
    }
    assert_eq!(app.rooms().await, json!([]));
}

crate::both_engines!(a_token_expiring_at_the_end_of_time_connects_without_a_panic);
async fn a_token_expiring_at_the_end_of_time_connects_without_a_panic(app: EngineApp) {
    for exp in [u64::MAX, 1 << 63] {
        let token = sign(SECRET, json!({"sub": "forever", "exp": exp}));
        let mut client = app.connect(&format!("/ws/chat/lobby?token={token}")).await;
        assert_eq!(client.recv().await["type"], "welcome", "exp {exp}");
    }
}

crate::both_engines!(the_name_claim_is_optional);
async fn the_name_claim_is_optional(app: EngineApp) {
    let token = sign(SECRET, json!({"sub": "user-42", "exp": now() + 600}));
    let mut client = app.connect(&format!("/ws/chat/lobby?token={token}")).await;
    assert_eq!(client.recv().await["user"], "user-42");
    let token = sign(
        SECRET,
        json!({"sub": "user-43", "name": "Dana", "exp": now() + 600}),
    );
    let mut client = app.connect(&format!("/ws/chat/lobby?token={token}")).await;
    assert_eq!(client.recv().await["user"], "Dana");
}

crate::both_engines!(an_expired_token_at_connect_closes_with_4002_so_the_client_renews);
async fn an_expired_token_at_connect_closes_with_4002_so_the_client_renews(app: EngineApp) {
    // Beyond the 5 s leeway.
    let expired = sign(SECRET, json!({"sub": "alice", "exp": now() - 60}));
    let mut client = app
        .connect(&format!("/ws/chat/lobby?token={expired}"))
        .await;
    let (frame, before) = client.closed().await;
    assert!(before.is_empty(), "{before:?}");
    let frame = frame.expect("close frame");
    assert_eq!(u16::from(frame.code), 4002);
    assert_eq!(frame.reason.as_str(), "Token expired");
    assert_eq!(app.rooms().await, json!([]));
}

crate::both_engines!(a_token_expiring_while_connected_closes_with_4002);
async fn a_token_expiring_while_connected_closes_with_4002(app: EngineApp) {
    // Expired 3 s ago: still inside the 5 s leeway, so it connects, and the
    // server must close it about 2 s later.
    let token = sign(SECRET, json!({"sub": "alice", "exp": now() - 3}));
    let started = Instant::now();
    let mut client = app.connect(&format!("/ws/chat/lobby?token={token}")).await;
    assert_eq!(client.recv().await["type"], "welcome");
    assert_eq!(client.recv().await["event"], "join");
    client.expect_close(4002).await;
    assert!(
        started.elapsed() <= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

crate::both_engines!(a_token_handed_over_on_the_open_socket_outlives_the_one_it_connected_with);
async fn a_token_handed_over_on_the_open_socket_outlives_the_one_it_connected_with(app: EngineApp) {
    // Inside the 5 s leeway: the server would close it about 2 s from now.
    let old_exp = now() - 3;
    let token = sign(SECRET, json!({"sub": "alice", "exp": old_exp}));
    let mut client = app.connect(&format!("/ws/chat/lobby?token={token}")).await;
    assert_eq!(client.recv().await["type"], "welcome");
    assert_eq!(client.recv().await["event"], "join");

    let other_user = sign(SECRET, json!({"sub": "mallory", "exp": now() + 600}));
    let refresh = |token: &str| json!({"type": "refresh", "token": token}).to_string();
    client.send_text(&refresh(&other_user)).await;
    let refused = client.recv().await;
    assert_eq!(refused["code"], "invalid_token", "{refused}");
    let renewed = sign(SECRET, json!({"sub": "alice", "exp": now() + 600}));
    client.send_text(&refresh(&renewed)).await;
    assert_eq!(client.recv().await, json!({"type": "refreshed"}));

    // Wait out the first token, leeway included, by the clock the server judges by.
    while now() <= old_exp + 6 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client
        .send_text(r#"{"type":"message","content":"still here","ref":"r1"}"#)
        .await;
    assert_eq!(client.recv().await["type"], "ack");
    assert_eq!(client.recv().await["content"], "still here");
}

crate::both_engines!(invalid_room_names_close_with_4004);
async fn invalid_room_names_close_with_4004(app: EngineApp) {
    let token = app.token("alice");
    let too_long = "a".repeat(65);
    for room in [
        "bad%20room",
        "caf%C3%A9",
        too_long.as_str(),
        "semi%3Bcolon",
        // Dot segments: no browser could open these rooms.
        ".",
        "..",
        "...",
        "-_",
    ] {
        let mut client = app.connect(&format!("/ws/chat/{room}?token={token}")).await;
        client.expect_close(4004).await;
    }
    let longest = "a".repeat(64);
    let (_client, _) = app.join(&longest, "alice").await;
}

crate::both_engines!(authentication_is_checked_before_the_room_name);
async fn authentication_is_checked_before_the_room_name(app: EngineApp) {
    let mut client = app.connect("/ws/chat/bad%20room?token=nope").await;
    client.expect_close(4001).await;
}

crate::both_engines!(a_malformed_since_is_refused_before_the_upgrade);
async fn a_malformed_since_is_refused_before_the_upgrade(app: EngineApp) {
    let url = app.ws_url(&format!(
        "/ws/chat/lobby?token={}&since=abc",
        app.token("alice")
    ));
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("since"), "{body}");
        }
        other => panic!("expected HTTP 400, got {other:?}"),
    }
}

/// Connects with the token offered as a subprotocol; returns the client and the
/// protocol the server selected.
async fn connect_with_protocols(
    app: &crate::helpers::TestApp,
    path: &str,
    offered: &str,
) -> (crate::helpers::Client, Option<String>) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = app.ws_url(path).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", offered.parse().unwrap());
    let (ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgraded");
    let selected = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|value| value.to_str().unwrap().to_owned());
    (crate::helpers::Client { ws }, selected)
}

crate::both_engines!(the_token_may_travel_in_sec_websocket_protocol_and_is_never_echoed);
async fn the_token_may_travel_in_sec_websocket_protocol_and_is_never_echoed(app: EngineApp) {
    let token = app.token("alice");
    let (mut client, selected) = connect_with_protocols(
        &app,
        "/ws/chat/lobby",
        &format!("chorus.v1, chorus.token.{token}"),
    )
    .await;
    assert_eq!(selected.as_deref(), Some("chorus.v1"));
    let welcome = client.recv().await;
    assert_eq!(
        (&welcome["type"], &welcome["user"]),
        (&json!("welcome"), &json!("alice"))
    );

    // The header wins over the query.
    let (mut client, _) = connect_with_protocols(
        &app,
        &format!("/ws/chat/lobby?token={}", app.token("mallory")),
        &format!("chorus.v1, chorus.token.{}", app.token("bob")),
    )
    .await;
    assert_eq!(client.recv().await["user"], "bob");

    // A forged one is refused like in the query.
    let forged = sign("not-the-secret", json!({"sub": "eve", "exp": now() + 600}));
    let (mut client, selected) = connect_with_protocols(
        &app,
        "/ws/chat/lobby",
        &format!("chorus.v1, chorus.token.{forged}"),
    )
    .await;
    assert_eq!(selected.as_deref(), Some("chorus.v1"));
    client.expect_close(4001).await;
}

#[tokio::test]
async fn with_an_issuer_and_audience_set_tokens_must_carry_them_and_guests_do() {
    let app = crate::helpers::spawn_app_with(|config| {
        config.tokens.jwt_issuer = Some("https://id.example.com".into());
        config.tokens.jwt_audience = Some("chorus".into());
    })
    .await;
    let exp = now() + 600;
    let good = sign(
        SECRET,
        json!({"sub": "u1", "name": "Una", "exp": exp, "iss": "https://id.example.com", "aud": "chorus"}),
    );
    let mut client = app.connect(&format!("/ws/chat/lobby?token={good}")).await;
    assert_eq!(client.recv().await["user"], "Una");
    for claims in [
        json!({"sub": "u2", "exp": exp}),
        json!({"sub": "u2", "exp": exp, "iss": "https://evil.example", "aud": "chorus"}),
        json!({"sub": "u2", "exp": exp, "iss": "https://id.example.com", "aud": "someone-else"}),
    ] {
        let token = sign(SECRET, claims.clone());
        let mut refused = app.connect(&format!("/ws/chat/lobby?token={token}")).await;
        refused.expect_close(4001).await;
    }
    // Guest tokens issued here carry both and are accepted.
    let token = &app.guest_token("guest").await;
    let mut guest = app.connect(&format!("/ws/chat/lobby?token={token}")).await;
    assert_eq!(guest.recv().await["user"], "guest");
}
