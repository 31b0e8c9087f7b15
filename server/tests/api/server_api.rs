//! The server API, on both engines and, with Redis, across two servers: publish,
//! history pages, members, disconnect and ban, with and without the API key.

use std::time::Duration;

use chorus_server::auth::{sign_hs256, unix_now};
use serde_json::{Value, json};

use crate::both_engines;
use crate::helpers::{
    API_KEY, Client, EngineApp, PATIENCE, SECRET, TestApp, connect_from, request_over,
};

/// The next frame that is not a ping.
async fn next_event(client: &mut Client) -> Value {
    loop {
        let frame = client.recv().await;
        if frame["type"] != "ping" {
            return frame;
        }
    }
}

fn publish_body(content: &str) -> String {
    json!({"content": content}).to_string()
}

both_engines!(every_endpoint_needs_the_api_key);
async fn every_endpoint_needs_the_api_key(app: EngineApp) {
    let calls = [
        (
            "POST",
            "/api/rooms/lobby/messages",
            Some(r#"{"content":"hi"}"#),
        ),
        ("GET", "/api/rooms/lobby/messages", None),
        ("GET", "/api/rooms/lobby/members", None),
        ("POST", "/api/users/alice/disconnect", Some("{}")),
    ];
    for (method, path, body) in calls {
        let missing = crate::helpers::http_request(app.addr, method, path, body).await;
        assert_eq!(missing.status, 401, "{method} {path}");
        assert_eq!(missing.json()["error"], "unauthorized", "{method} {path}");
        let wrong = app
            .api_as("not-the-key-but-just-as-long-as-one!", method, path, body)
            .await;
        assert_eq!(wrong.status, 401, "{method} {path}: {}", wrong.body);
        assert_eq!(wrong.json()["error"], "unauthorized");
        let almost = &API_KEY[..API_KEY.len() - 1];
        assert_eq!(app.api_as(almost, method, path, body).await.status, 401);
    }
    // Nothing was published by the refused calls.
    let page = app.api("GET", "/api/rooms/lobby/messages", None).await;
    assert_eq!(page.json(), json!({"messages": [], "has_more": false}));
}

both_engines!(a_published_message_reaches_members_everywhere_and_history);
async fn a_published_message_reaches_members_everywhere_and_history(app: EngineApp) {
    let second = app.second().await;
    let elsewhere = app.or_this(&second);
    let (mut alice, _) = elsewhere.join("lobby", "alice").await;
    assert_eq!(next_event(&mut alice).await["event"], "join");
    let published = app
        .api(
            "POST",
            "/api/rooms/lobby/messages",
            Some(r#"{"content":"deploy at 5","user":"Release Bot","user_id":"bot-1"}"#),
        )
        .await;
    assert_eq!(published.status, 201, "{}", published.body);
    let id = published.json()["id"].as_u64().unwrap();
    let message = next_event(&mut alice).await;
    assert_eq!(
        (
            &message["id"],
            &message["content"],
            &message["user"],
            &message["user_id"]
        ),
        (
            &json!(id),
            &json!("deploy at 5"),
            &json!("Release Bot"),
            &json!("bot-1")
        ),
        "{message}"
    );
    // A member's message follows with the next id: one sequence.
    alice.say("thanks").await;
    assert_eq!(next_event(&mut alice).await["id"], json!(id + 1));

    // Into a room nobody is in: kept, and a later member gets it as history.
    let quiet = app
        .api(
            "POST",
            "/api/rooms/quiet/messages",
            Some(&publish_body("while you were out")),
        )
        .await;
    assert_eq!(quiet.status, 201);
    let (mut late, welcome) = elsewhere.join("quiet", "bob").await;
    assert_eq!(welcome["last_id"], quiet.json()["id"]);
    let history = late.recv().await;
    assert_eq!(
        (&history["content"], &history["user_id"], &history["user"]),
        (
            &json!("while you were out"),
            &json!("server"),
            &json!("server")
        )
    );
}

both_engines!(the_same_idempotency_key_publishes_once);
async fn the_same_idempotency_key_publishes_once(app: EngineApp) {
    let second = app.second().await;
    let (mut alice, _) = app.join("lobby", "alice").await;
    assert_eq!(next_event(&mut alice).await["event"], "join");
    let body = json!({"content": "invoice paid", "idempotency_key": "inv-42"}).to_string();
    let first = app
        .api("POST", "/api/rooms/lobby/messages", Some(&body))
        .await;
    // The retry may land on another server.
    let retry = app
        .or_this(&second)
        .api("POST", "/api/rooms/lobby/messages", Some(&body))
        .await;
    assert_eq!((first.status, retry.status), (201, 201));
    assert_eq!(first.json()["id"], retry.json()["id"]);
    // The same key in another room is another message.
    let other = app
        .api("POST", "/api/rooms/other/messages", Some(&body))
        .await;
    assert_eq!(other.status, 201);
    app.api(
        "POST",
        "/api/rooms/lobby/messages",
        Some(&publish_body("next")),
    )
    .await;
    assert_eq!(next_event(&mut alice).await["content"], "invoice paid");
    assert_eq!(
        next_event(&mut alice).await["content"],
        "next",
        "published once"
    );
}

both_engines!(history_pages_walk_back_to_the_oldest, |config| {
    config.rooms.history_size = 150;
});
async fn history_pages_walk_back_to_the_oldest(app: EngineApp) {
    let mut ids = Vec::new();
    for n in 0..120 {
        let published = app
            .api(
                "POST",
                "/api/rooms/log/messages",
                Some(&publish_body(&format!("m{n}"))),
            )
            .await;
        ids.push(published.json()["id"].as_u64().unwrap());
    }
    let second = app.second().await;
    let reader = app.or_this(&second);
    let page = |query: String| async move {
        let response = reader
            .api("GET", &format!("/api/rooms/log/messages{query}"), None)
            .await;
        assert_eq!(response.status, 200, "{query}: {}", response.body);
        let page = response.json();
        let ids: Vec<u64> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|message| {
                assert_eq!(message["type"], "message");
                message["id"].as_u64().unwrap()
            })
            .collect();
        (ids, page["has_more"].as_bool().unwrap())
    };
    assert_eq!(
        page(String::new()).await,
        (ids[70..].to_vec(), true),
        "newest 50"
    );
    assert_eq!(
        page(format!("?before={}", ids[70])).await,
        (ids[20..70].to_vec(), true)
    );
    assert_eq!(
        page(format!("?before={}&limit=100", ids[20])).await,
        (ids[..20].to_vec(), false)
    );
    assert_eq!(page(format!("?before={}", ids[0])).await, (vec![], false));
    // Below the first id there can be nothing (and Redis refuses a range below 0-0).
    assert_eq!(page("?before=0".into()).await, (vec![], false));
    assert_eq!(page("?before=1".into()).await, (vec![], false));
    assert_eq!(page("?limit=100".into()).await, (ids[20..].to_vec(), true));
    assert_eq!(page("?limit=1".into()).await, (ids[119..].to_vec(), true));
    // An id between messages, or beyond the newest.
    assert_eq!(
        page(format!("?before={}&limit=2", ids[119] + 1000)).await,
        (ids[118..].to_vec(), true)
    );
    // Unknown rooms are empty, not 404.
    let unknown = reader
        .api("GET", "/api/rooms/nothing-here/messages", None)
        .await;
    assert_eq!(unknown.json(), json!({"messages": [], "has_more": false}));
    let members = reader
        .api("GET", "/api/rooms/nothing-here/members", None)
        .await;
    assert_eq!((members.status, members.json()), (200, json!([])));
}

both_engines!(bad_requests_name_the_field);
async fn bad_requests_name_the_field(app: EngineApp) {
    let post = |path: &'static str, body: String| {
        let app = &app;
        async move { app.api("POST", path, Some(&body)).await }
    };
    let messages = "/api/rooms/lobby/messages";
    let cases = [
        (post(messages, "{}".into()).await, "content"),
        (
            post(messages, json!({"content": ""}).to_string()).await,
            "content",
        ),
        (
            post(messages, json!({"content": 5}).to_string()).await,
            "content",
        ),
        (
            post(messages, json!({"content": "x".repeat(4001)}).to_string()).await,
            "content",
        ),
        (
            post(messages, json!({"content": "a\u{7}b"}).to_string()).await,
            "content",
        ),
        (
            post(
                messages,
                json!({"content": "hi", "user": "evil\u{202E}"}).to_string(),
            )
            .await,
            "user",
        ),
        (
            post(
                messages,
                json!({"content": "hi", "user_id": ""}).to_string(),
            )
            .await,
            "user_id",
        ),
        (
            post(messages, json!({"content": "hi", "user_id": 7}).to_string()).await,
            "user_id",
        ),
        (
            post(
                messages,
                json!({"content": "hi", "idempotency_key": "k".repeat(65)}).to_string(),
            )
            .await,
            "idempotency_key",
        ),
        (
            post("/api/rooms/bad%20room/messages", publish_body("hi")).await,
            "room",
        ),
        (
            post(
                "/api/users/alice/disconnect",
                json!({"ban_seconds": 0}).to_string(),
            )
            .await,
            "ban_seconds",
        ),
        (
            post(
                "/api/users/alice/disconnect",
                json!({"ban_seconds": -5}).to_string(),
            )
            .await,
            "ban_seconds",
        ),
        (
            post(
                "/api/users/alice/disconnect",
                json!({"ban_seconds": "60"}).to_string(),
            )
            .await,
            "ban_seconds",
        ),
        (
            post(
                "/api/users/alice/disconnect",
                json!({"reason": "r".repeat(124)}).to_string(),
            )
            .await,
            "reason",
        ),
        (
            app.api("GET", "/api/rooms/lobby/messages?limit=0", None)
                .await,
            "limit",
        ),
        (
            app.api("GET", "/api/rooms/lobby/messages?limit=101", None)
                .await,
            "limit",
        ),
        (
            app.api("GET", "/api/rooms/lobby/messages?limit=ten", None)
                .await,
            "limit",
        ),
        (
            app.api("GET", "/api/rooms/lobby/messages?before=-1", None)
                .await,
            "before",
        ),
        (
            app.api("GET", "/api/rooms/lobby/members/../x", None).await,
            "",
        ),
    ];
    for (response, field) in cases {
        if field.is_empty() {
            assert_ne!(response.status, 200);
            continue;
        }
        assert_eq!(response.status, 400, "{field}: {}", response.body);
        let body = response.json();
        assert_eq!(
            (&body["error"], &body["field"]),
            (&json!("invalid_field"), &json!(field)),
            "{body}"
        );
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    let not_json = post(messages, "content=hi".into()).await;
    assert_eq!(
        (not_json.status, &not_json.json()["error"]),
        (400, &json!("invalid_json"))
    );
    // Nothing was published.
    let page = app.api("GET", "/api/rooms/lobby/messages", None).await;
    assert_eq!(page.json()["messages"], json!([]));
}

both_engines!(a_members_token_reads_the_history_of_rooms_it_may_join);
async fn a_members_token_reads_the_history_of_rooms_it_may_join(app: EngineApp) {
    app.api(
        "POST",
        "/api/rooms/support-1/messages",
        Some(&publish_body("hello")),
    )
    .await;
    let token = |rooms: Value| {
        sign_hs256(
            SECRET.as_bytes(),
            &json!({"sub": "agent", "exp": unix_now() + 600, "rooms": rooms}),
        )
    };
    let allowed = app
        .api_as(
            &token(json!(["support-*"])),
            "GET",
            "/api/rooms/support-1/messages",
            None,
        )
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.json()["messages"][0]["content"], "hello");
    let elsewhere = app
        .api_as(
            &token(json!(["lobby"])),
            "GET",
            "/api/rooms/support-1/messages",
            None,
        )
        .await;
    assert_eq!(
        (elsewhere.status, &elsewhere.json()["error"]),
        (403, &json!("forbidden"))
    );
    let forged = sign_hs256(
        b"not the secret at all, but long enough",
        &json!({"sub": "x", "exp": unix_now() + 600}),
    );
    assert_eq!(
        app.api_as(&forged, "GET", "/api/rooms/support-1/messages", None)
            .await
            .status,
        401
    );
    // A member's token opens nothing else.
    let member = token(json!(["*"]));
    for (method, path, body) in [
        (
            "POST",
            "/api/rooms/support-1/messages",
            Some(publish_body("from a member")),
        ),
        ("GET", "/api/rooms/support-1/members", None),
        ("POST", "/api/users/agent/disconnect", Some("{}".to_owned())),
    ] {
        let refused = app.api_as(&member, method, path, body.as_deref()).await;
        assert_eq!(refused.status, 401, "{method} {path}");
    }
}

both_engines!(members_lists_each_user_with_its_connections);
async fn members_lists_each_user_with_its_connections(app: EngineApp) {
    let second = app.second().await;
    let (mut alice, _) = app.join("lobby", "alice").await;
    let (_alice_again, _) = app.or_this(&second).join("lobby", "alice").await;
    let (_bob, _) = app.join("lobby", "bob").await;
    let expected = json!([
        {"user_id": "alice", "name": "alice", "connections": 2},
        {"user_id": "bob", "name": "bob", "connections": 1},
    ]);
    // Joins are recorded before the welcome; bob's join reaching alice settles it.
    loop {
        let event = next_event(&mut alice).await;
        if event["event"] == "join" && event["user"] == "bob" {
            break;
        }
    }
    let members = app
        .or_this(&second)
        .api("GET", "/api/rooms/lobby/members", None)
        .await;
    assert_eq!(members.json(), expected);
}

both_engines!(
    disconnect_closes_every_socket_of_the_user_and_a_ban_keeps_it_out,
    |config| {
        // Long enough that a leave announced at once cannot be the grace running out.
        config.rooms.presence_grace = std::time::Duration::from_secs(30);
    }
);
async fn disconnect_closes_every_socket_of_the_user_and_a_ban_keeps_it_out(app: EngineApp) {
    let second = app.second().await;
    let elsewhere = app.or_this(&second);
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    let (mut mallory, _) = app.join("lobby", "mallory").await;
    let (mut mallory_elsewhere, _) = elsewhere.join("other", "mallory").await;
    loop {
        let event = next_event(&mut alice).await;
        if event["event"] == "join" && event["user"] == "mallory" {
            break;
        }
    }
    let removed = app
        .api(
            "POST",
            "/api/users/mallory/disconnect",
            Some(r#"{"reason":"spamming","ban_seconds":2}"#),
        )
        .await;
    assert_eq!(removed.status, 204, "{}", removed.body);
    for socket in [&mut mallory, &mut mallory_elsewhere] {
        let (frame, _) = socket.closed().await;
        let frame = frame.expect("a close frame");
        assert_eq!(
            (u16::from(frame.code), frame.reason.as_str()),
            (4010, "spamming")
        );
    }
    // The leave comes at once, not after the 30 s grace.
    let left = tokio::time::timeout(PATIENCE, next_event(&mut alice))
        .await
        .expect("the leave is announced at once");
    assert_eq!(
        (&left["event"], &left["user"]),
        (&json!("leave"), &json!("mallory"))
    );
    // Banned, on every server...
    for server in [&*app, elsewhere] {
        let token = server.token("mallory");
        let mut refused = server
            .connect(&format!("/ws/chat/lobby?token={token}"))
            .await;
        refused.expect_close(4003).await;
    }
    // ...others are not...
    app.join("lobby", "bob").await;
    // ...and not for longer than asked.
    let token = app.token("mallory");
    let back = wait_until_admitted(&app, &format!("/ws/chat/lobby?token={token}")).await;
    drop(back);
    // Without a ban, a disconnected user may come straight back.
    let (mut carol, _) = elsewhere.join("lobby", "carol").await;
    let removed = app.api("POST", "/api/users/carol/disconnect", None).await;
    assert_eq!(removed.status, 204);
    let (frame, _) = carol.closed().await;
    assert_eq!(u16::from(frame.unwrap().code), 4010);
    elsewhere.join("lobby", "carol").await;
}

/// Connects until the server admits (a ban running out), for at most 5 s.
async fn wait_until_admitted(app: &TestApp, path: &str) -> Client {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut client = app.connect(path).await;
        match client.next().await {
            tokio_tungstenite::tungstenite::Message::Text(_) => return client,
            tokio_tungstenite::tungstenite::Message::Close(Some(frame))
                if u16::from(frame.code) == 4003 && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("not admitted after the ban: {other:?}"),
        }
    }
}

both_engines!(a_busy_room_delivers_every_message_once_and_in_order);
/// Hundreds of messages a second make a room busy: its frames then reach members
/// gathered into batches framed once (`hub::seats`), which a real WebSocket client
/// must read as the same messages, each once, in order, here and on another server.
async fn a_busy_room_delivers_every_message_once_and_in_order(app: EngineApp) {
    const MESSAGES: usize = 300;
    let second = app.second().await;
    let (mut here, _) = app.join("lobby", "alice").await;
    let mut there = app
        .or_this(&second)
        .join_settled("lobby", "bob", &mut [&mut here])
        .await;
    for n in 0..MESSAGES {
        let body = publish_body(&n.to_string());
        let published = app
            .api("POST", "/api/rooms/lobby/messages", Some(&body))
            .await;
        assert_eq!(published.status, 201, "{}", published.body);
    }
    for client in [&mut here, &mut there] {
        let mut last_id = 0;
        for n in 0..MESSAGES {
            let message = next_event(client).await;
            assert_eq!(message["content"], n.to_string(), "{message}");
            let id = message["id"].as_u64().unwrap();
            assert!(id > last_id, "ids rise: {id} after {last_id}");
            last_id = id;
        }
    }
}

both_engines!(
    an_address_that_keeps_failing_to_authenticate_is_refused_for_a_while,
    |config| config.tokens.failed_auth_limit = 2
);
async fn an_address_that_keeps_failing_to_authenticate_is_refused_for_a_while(app: EngineApp) {
    let publish = |source: &'static str, key: &'static str| {
        let addr = app.addr;
        async move {
            let bearer = format!("Bearer {key}");
            let stream = connect_from(source.parse().unwrap(), addr).await;
            request_over(
                stream,
                addr,
                "POST",
                "/api/rooms/lobby/messages",
                &[("Authorization", &bearer)],
                Some(r#"{"content":"hi"}"#),
            )
            .await
        }
    };
    let wrong = "a-wrong-key-guessed-by-someone-else";
    for _ in 0..2 {
        assert_eq!(publish("127.0.0.1", wrong).await.status, 401);
    }
    let refused = publish("127.0.0.1", wrong).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.header("retry-after").is_some());
    // Refused whatever it sends now, so a right guess gains nothing; members'
    // tokens on the history too.
    assert_eq!(publish("127.0.0.1", API_KEY).await.status, 429);
    let stream = connect_from("127.0.0.1".parse().unwrap(), app.addr).await;
    let history = request_over(
        stream,
        app.addr,
        "GET",
        "/api/rooms/lobby/messages",
        &[("Authorization", &format!("Bearer {}", app.token("alice")))],
        None,
    )
    .await;
    assert_eq!(history.status, 429);
    // Another address is not affected.
    assert_eq!(publish("127.0.0.2", API_KEY).await.status, 201);
}
