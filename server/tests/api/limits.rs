use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    Binary, Client, EngineApp, OP_PING, PATIENCE, RawSocket, SECRET, spawn_app_with, start_binary,
};

crate::both_engines!(frames_over_the_size_limit_close_with_1009, |config| {
    config.connections.max_message_bytes = 1024
});
async fn frames_over_the_size_limit_close_with_1009(app: EngineApp) {
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    let fits = json!({"type": "message", "content": "x".repeat(950)}).to_string();
    assert!(fits.len() <= 1024);
    alice.send_text(&fits).await;
    alice.recv_message().await;
    alice.send_text(&"x".repeat(2048)).await;
    alice.expect_close(1009).await;

    let mut echo = app.connect("/ws").await;
    echo.send_text(&"y".repeat(4096)).await;
    echo.expect_close(1009).await;
}

crate::both_engines!(bad_frames_get_an_error_and_are_not_broadcast);
async fn bad_frames_get_an_error_and_are_not_broadcast(app: EngineApp) {
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    let mut bob = app.join_settled("lobby", "bob", &mut [&mut alice]).await;

    let too_long = json!({"type": "message", "content": "é".repeat(4001)}).to_string();
    for (frame, code) in [
        (r#"{"type":"message","content":""}"#, "empty_message"),
        (r#"{"type":"message","content":"   "}"#, "empty_message"),
        (too_long.as_str(), "message_too_long"),
        ("this is not json", "invalid_json"),
        (r#"{"content":"no type"}"#, "invalid_json"),
        (r#"{"type":"shout","content":"hey"}"#, "unknown_type"),
        (r#"{"type":"message"}"#, "invalid_frame"),
    ] {
        alice.send_text(frame).await;
        let error = alice.recv().await;
        assert_eq!(error["type"], "error", "{frame}");
        assert_eq!(error["code"], code, "{frame}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    alice
        .ws
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    let error = alice.recv().await;
    assert_eq!(error["code"], "binary_not_supported");

    // Nothing reached bob, and alice's connection still works.
    bob.expect_silence(Duration::from_millis(200)).await;
    let exactly_4000 = "é".repeat(4000);
    alice.say(&exactly_4000).await;
    assert_eq!(alice.recv_message().await["content"], exactly_4000.as_str());
    assert_eq!(bob.recv_message().await["content"], exactly_4000.as_str());
}

crate::both_engines!(
    messages_beyond_the_rate_limit_are_dropped_with_an_error,
    |config| {
        config.connections.rate_limit = 1;
        config.connections.rate_limit_burst = 5;
    }
);
async fn messages_beyond_the_rate_limit_are_dropped_with_an_error(app: EngineApp) {
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    for n in 0..8 {
        alice.say(&format!("flood {n}")).await;
    }
    let mut delivered = Vec::new();
    let mut limited = 0;
    for _ in 0..8 {
        let frame = alice.recv().await;
        match frame["type"].as_str() {
            Some("message") => delivered.push(frame["content"].as_str().unwrap().to_owned()),
            Some("error") => {
                assert_eq!(frame["code"], "rate_limited");
                limited += 1;
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    assert_eq!(
        delivered,
        ["flood 0", "flood 1", "flood 2", "flood 3", "flood 4"]
    );
    assert_eq!(limited, 3);
    // The bucket refills at 1 per second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    alice.say("later").await;
    assert_eq!(alice.recv_message().await["content"], "later");
}

crate::both_engines!(sockets_beyond_max_connections_close_with_1013, |config| {
    config.connections.max_connections = 1;
    config.connections.max_echo_connections = 1;
});
async fn sockets_beyond_max_connections_close_with_1013(app: EngineApp) {
    let (alice, _) = app.join("lobby", "alice").await;
    let mut refused = app
        .connect(&format!("/ws/chat/lobby?token={}", app.token("bob")))
        .await;
    refused.expect_close(1013).await;
    // Echo sockets have a pool of their own: they neither take a member's place
    // nor are refused because members took every place.
    let mut echo = app.connect("/ws").await;
    echo.send_text("still here").await;
    assert_eq!(
        echo.next().await.into_text().unwrap().as_str(),
        "Echo: still here"
    );
    let mut refused_echo = app.connect("/ws").await;
    refused_echo.expect_close(1013).await;

    alice.close().await;
    // The permit comes back once the server has finished with alice's socket.
    Client::connect_when_admitted(
        &app.ws_url(&format!("/ws/chat/lobby?token={}", app.token("bob"))),
    )
    .await;
}

crate::both_engines!(
    refused_frames_and_refreshes_take_from_the_rate_too,
    |config| {
        config.connections.rate_limit = 1;
        config.connections.rate_limit_burst = 3;
    }
);
async fn refused_frames_and_refreshes_take_from_the_rate_too(app: EngineApp) {
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    // Counts the answers to `count` copies of `frame` sent at once, by code; the
    // rate refills by 1 a second meanwhile, so at most that many more get through.
    let mut answers = async |frame: &str, count: usize| {
        let started = tokio::time::Instant::now();
        for _ in 0..count {
            alice.send_text(frame).await;
        }
        let mut limited = 0;
        for _ in 0..count {
            let answer = alice.recv().await;
            assert_eq!(answer["type"], "error", "{answer}");
            if answer["code"] == "rate_limited" {
                limited += 1;
            }
        }
        let refilled = started.elapsed().as_secs() as usize + 1;
        (count - limited, limited, refilled)
    };
    let (answered, limited, refilled) = answers("not json", 10).await;
    assert!(
        (3..=3 + refilled).contains(&answered) && limited > 0,
        "{answered} answered, {limited} limited"
    );
    // A refresh past the rate is not even verified.
    let refresh = json!({"type": "refresh", "token": "not-a-token"}).to_string();
    let (answered, limited, refilled) = answers(&refresh, 10).await;
    assert!(
        answered <= refilled + 1 && limited >= 10 - refilled - 1,
        "{answered} answered, {limited} limited"
    );
}

/// Says `count` messages at once on `client` (alone in its room), then reads the
/// answers: how many were published, and the text of each `rate_limited` refusal.
async fn say_at_once(client: &mut Client, count: usize) -> (usize, Vec<String>) {
    for n in 0..count {
        client.say(&format!("at once {n}")).await;
    }
    let mut published = 0;
    let mut refusals = Vec::new();
    for _ in 0..count {
        let frame = client.recv().await;
        match frame["type"].as_str() {
            Some("message") => published += 1,
            Some("error") if frame["code"] == "rate_limited" => {
                refusals.push(frame["message"].as_str().unwrap().to_owned())
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    (published, refusals)
}

crate::both_engines!(a_users_sockets_share_one_publish_rate, |config| {
    config.connections.user_rate_limit = 1;
    config.connections.user_rate_limit_burst = 3;
});
async fn a_users_sockets_share_one_publish_rate(app: EngineApp) {
    // One user, a socket in each of two rooms, each socket well within its own rate.
    let mut here = app.join_settled("room-a", "alice", &mut []).await;
    let mut there = app.join_settled("room-b", "alice", &mut []).await;
    let started = tokio::time::Instant::now();
    let (first, _) = say_at_once(&mut here, 3).await;
    let (second, refusals) = say_at_once(&mut there, 3).await;
    // The rate refills by one a second meanwhile.
    let refilled = started.elapsed().as_secs() as usize + 1;
    assert!(
        first + second <= 3 + refilled,
        "{first} + {second} published"
    );
    assert!(
        refusals.iter().all(|text| text.contains("from this user")),
        "{refusals:?}"
    );
}

crate::both_engines!(an_addresss_users_share_one_publish_rate, |config| {
    config.connections.address_rate_limit = 1;
    config.connections.address_rate_limit_burst = 3;
});
async fn an_addresss_users_share_one_publish_rate(app: EngineApp) {
    let mut alice = app.join_settled("room-a", "alice", &mut []).await;
    let mut bob = app.join_settled("room-b", "bob", &mut []).await;
    let started = tokio::time::Instant::now();
    let (first, _) = say_at_once(&mut alice, 3).await;
    let (second, refusals) = say_at_once(&mut bob, 3).await;
    let refilled = started.elapsed().as_secs() as usize + 1;
    assert!(
        first + second <= 3 + refilled,
        "{first} + {second} published"
    );
    assert!(
        refusals
            .iter()
            .all(|text| text.contains("from this address")),
        "{refusals:?}"
    );
    // Another address has a rate of its own.
    let carol = app.ws_url(&format!("/ws/chat/room-c?token={}", app.token("carol")));
    let mut carol = connect_from("127.0.0.2".parse().unwrap(), &carol).await;
    assert_eq!(carol.recv().await["type"], "welcome");
    carol.settle_join("carol", &mut []).await;
    let (published, refusals) = say_at_once(&mut carol, 3).await;
    assert_eq!((published, refusals.len()), (3, 0));
}

/// A client whose socket has a tiny receive buffer and that does not read until told.
async fn connect_slow_reader(url: &str) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    connect_over(socket, url).await
}

/// A WebSocket opened from the local address `source`, as another client would.
async fn connect_from(source: std::net::IpAddr, url: &str) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(source, 0)).unwrap();
    connect_over(socket, url).await
}

/// A WebSocket to `url` (`ws://host:port/…`) over `socket`, set up as the test needs.
async fn connect_over(socket: TcpSocket, url: &str) -> Client {
    let addr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    Client { ws }
}

fn ids(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["type"] == "message")
        .map(|f| f["id"].as_u64().unwrap())
        .collect()
}

fn assert_consecutive(ids: &[u64]) {
    for pair in ids.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "gap or reordering in {pair:?}");
    }
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4008_and_recovers_with_since() {
    const MESSAGES: usize = 5000;
    let app = spawn_app_with(|config| {
        // Enough slack that the fast member survives a busy machine; the slow one
        // still falls thousands of frames behind.
        config.connections.send_queue_memory = 256 * 1024;
        config.connections.rate_limit = 1_000_000;
        config.connections.rate_limit_burst = 1_000_000;
        config.connections.user_rate_limit = 1_000_000;
        config.connections.user_rate_limit_burst = 1_000_000;
        config.connections.address_rate_limit = 1_000_000;
        config.connections.address_rate_limit_burst = 1_000_000;
        config.rooms.history_size = MESSAGES;
        // The eviction's close frame waits in the slow reader's full socket until it
        // reads, after the fast part: the write deadline (the heartbeat timeout) must
        // outlast that on a busy machine, or the socket is dropped without it.
        config.connections.heartbeat_timeout = Duration::from_secs(120);
    })
    .await;
    let token = app.token("slow");
    let mut slow = connect_slow_reader(&app.ws_url(&format!("/ws/chat/lobby?token={token}"))).await;
    let (fast, _) = app.join("lobby", "fast").await;

    // The fast member reads everything on its own task while it sends.
    let (mut fast_tx, mut fast_rx) = fast.ws.split();
    let reader = tokio::spawn(async move {
        let mut frames: Vec<Value> = Vec::new();
        let mut messages = 0;
        while messages < MESSAGES {
            let message = tokio::time::timeout(PATIENCE * 4, fast_rx.next())
                .await
                .expect("fast member keeps receiving")
                .expect("open")
                .expect("frame");
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                messages += usize::from(frame["type"] == "message");
                frames.push(frame);
            }
        }
        frames
    });
    let filler = "z".repeat(3900);
    for n in 0..MESSAGES {
        let frame = json!({"type": "message", "content": format!("{n} {filler}")}).to_string();
        fast_tx.send(Message::text(frame)).await.unwrap();
    }
    let fast_frames = reader.await.unwrap();
    let fast_ids = ids(&fast_frames);
    assert_eq!(
        fast_ids.len(),
        MESSAGES,
        "the fast member got every message"
    );
    assert_consecutive(&fast_ids);
    assert!(
        fast_frames.contains(&json!({"type": "system", "message": "slow left the room", "event": "leave", "user_id": "slow", "user": "slow"})),
        "the eviction is announced"
    );

    // Now the slow client reads: an in-order prefix, then 4008.
    let (close, received) = slow.closed().await;
    assert_eq!(u16::from(close.expect("close frame").code), 4008);
    let slow_ids = ids(&received);
    assert!(slow_ids.len() < MESSAGES, "the slow client was cut off");
    assert_consecutive(&slow_ids);
    let last_seen = slow_ids.last().copied().unwrap_or(fast_ids[0] - 1);
    let metrics = app
        .metrics_when(|scrape| {
            scrape.value("chorus_connections_closed_total", &[("code", "4008")]) == 1.0
        })
        .await;
    assert_eq!(metrics.value("chorus_evictions_total", &[]), 1.0);

    // Reconnecting with `since` fills the gap exactly.
    let (mut slow, welcome) = app.join_since("lobby", "slow", Some(last_seen)).await;
    assert_eq!(welcome["recovered"], true);
    let mut recovered = Vec::new();
    while recovered.len() < MESSAGES - slow_ids.len() {
        recovered.push(slow.recv_message().await);
    }
    let mut all = slow_ids.clone();
    all.extend(ids(&recovered));
    assert_eq!(all, fast_ids);
}

crate::both_engines!(
    sockets_beyond_the_per_user_limit_close_with_4029,
    |config| config.connections.max_connections_per_user = 2
);
async fn sockets_beyond_the_per_user_limit_close_with_4029(app: EngineApp) {
    let (first, _) = app.join("lobby", "alice").await;
    let (_second, _) = app.join("elsewhere", "alice").await;
    let mut third = app
        .connect(&format!("/ws/chat/lobby?token={}", app.token("alice")))
        .await;
    third.expect_close(4029).await;
    // Other users are not affected.
    app.join("lobby", "bob").await;

    first.close().await;
    // Alice's slot comes back once the server has finished with her first socket.
    Client::connect_when_admitted(
        &app.ws_url(&format!("/ws/chat/lobby?token={}", app.token("alice"))),
    )
    .await;
}

crate::both_engines!(a_ping_flood_closes_with_1008);
async fn a_ping_flood_closes_with_1008(app: EngineApp) {
    let mut alice = app.join_settled("lobby", "alice", &mut []).await;
    for _ in 0..40 {
        alice
            .ws
            .send(Message::Ping(vec![7; 125].into()))
            .await
            .unwrap();
    }
    let code = loop {
        match alice.next().await {
            Message::Close(frame) => break u16::from(frame.expect("a close frame").code),
            Message::Pong(_) | Message::Text(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, 1008);
}

/// The server's resident memory, from `/proc`.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/PID/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test]
async fn a_client_flooding_pings_without_reading_cannot_grow_server_memory() {
    let Binary {
        child,
        mut lines,
        addr,
        ..
    } = start_binary(&["--jwt-secret", SECRET], &[]).await;
    // Keep reading the server's log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let pid = child.id().expect("running");
    let token = chorus_server::auth::Auth::new(SECRET.as_bytes())
        .issue("flooder", None, Duration::from_secs(600))
        .token;
    let addr = addr.parse().unwrap();
    let mut flooder = RawSocket::connect(addr, &format!("/ws/chat/lobby?token={token}")).await;
    let before = rss_bytes(pid);

    // 64 MiB of pings, never reading a pong.
    let ping = RawSocket::frame(OP_PING, &[b'p'; 125]);
    let chunk: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 8192)
        .collect();
    let mut written = 0;
    let flood = async {
        while written < 64 << 20 {
            if flooder.tcp.write_all(&chunk).await.is_err() {
                break;
            }
            written += chunk.len();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), flood)
        .await
        .expect("the flood ends: written, or refused");
    let grown = rss_bytes(pid).saturating_sub(before);
    assert!(
        grown < 8 << 20,
        "server memory grew by {grown} bytes during a flood of {written} bytes"
    );
    // And the server has closed the flooder's connection (it only drained the flood
    // for its close handshake's second): reading ends, rather than waiting.
    while flooder.read_frame().await.is_some() {}
}

/// Opens a WebSocket with extra request headers; `Err(status, Retry-After)` if refused.
async fn upgrade_with(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Client, (u16, Option<String>)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    match tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
        .await
        .expect("answered in time")
    {
        Ok((ws, _)) => Ok(Client { ws }),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err((
            response.status().as_u16(),
            response
                .headers()
                .get("retry-after")
                .map(|value| value.to_str().unwrap().to_owned()),
        )),
        Err(other) => panic!("unexpected {other}"),
    }
}

crate::both_engines!(
    upgrades_beyond_the_per_address_rate_get_429_before_the_upgrade,
    |config| {
        config.connections.connect_rate_limit = 1;
        config.connections.connect_rate_limit_burst = 3;
    }
);
async fn upgrades_beyond_the_per_address_rate_get_429_before_the_upgrade(app: EngineApp) {
    let url = app.ws_url(&format!("/ws/chat/lobby?token={}", app.token("alice")));
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(upgrade_with(&url, &[]).await.expect("within the burst"));
    }
    let (status, retry_after) = upgrade_with(&url, &[]).await.err().expect("refused");
    assert_eq!((status, retry_after.as_deref()), (429, Some("1")));
    // The echo endpoint counts too, and a claimed address from an untrusted peer is
    // ignored.
    let echo = app.ws_url("/ws");
    let (status, _) = upgrade_with(&echo, &[("x-forwarded-for", "203.0.113.5")])
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 429);
    // Nothing was allocated for the refused ones: three sockets, one user, one room
    // (each in it once welcomed: with Redis, a join takes its round trips).
    for client in &mut open {
        assert_eq!(client.recv().await["type"], "welcome");
    }
    assert_eq!(app.rooms().await[0]["connections"], 3);
}

crate::both_engines!(
    behind_a_trusted_proxy_each_forwarded_client_has_its_own_rate,
    |config| {
        config.connections.connect_rate_limit = 1;
        config.connections.connect_rate_limit_burst = 1;
        config.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    }
);
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_rate(app: EngineApp) {
    one_socket_per_forwarded_client(&app).await;
}

/// Behind the trusted proxy (this host), a forwarded client may open one socket,
/// not two, while another forwarded client opens its own.
async fn one_socket_per_forwarded_client(app: &EngineApp) {
    let url = app.ws_url("/ws");
    let first = [("x-forwarded-for", "203.0.113.5")];
    let _one = upgrade_with(&url, &first).await.expect("first client");
    assert_eq!(
        upgrade_with(&url, &first).await.err().map(|e| e.0),
        Some(429)
    );
    let second = [("x-forwarded-for", "203.0.113.6")];
    let _two = upgrade_with(&url, &second).await.expect("another client");
}

crate::both_engines!(
    guest_tokens_beyond_the_per_address_rate_get_429_with_retry_after,
    |config| {
        config.guests.guest_token_rate_limit = 1;
        config.guests.guest_token_rate_limit_burst = 2;
    }
);
async fn guest_tokens_beyond_the_per_address_rate_get_429_with_retry_after(app: EngineApp) {
    for _ in 0..2 {
        let response = app.post_json("/api/token", r#"{"name":"alice"}"#).await;
        assert_eq!(response.status, 200);
    }
    let refused = app.post_json("/api/token", r#"{"name":"alice"}"#).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.json()["error"], "rate_limited");
    let retry_after: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
}

crate::both_engines!(pages_of_other_sites_cannot_open_sockets);
async fn pages_of_other_sites_cannot_open_sockets(app: EngineApp) {
    let chat = app.ws_url(&format!("/ws/chat/lobby?token={}", app.token("alice")));
    let own = format!("http://{}", app.addr);
    let mut open = Vec::new();
    for url in [&chat, &app.ws_url("/ws")] {
        let refused = upgrade_with(url, &[("origin", "https://evil.example")]).await;
        assert_eq!(refused.err().map(|e| e.0), Some(403), "{url}");
        assert_eq!(
            upgrade_with(url, &[("origin", "null")])
                .await
                .err()
                .map(|e| e.0),
            Some(403)
        );
        open.push(
            upgrade_with(url, &[("origin", &own)])
                .await
                .expect("a page of this host"),
        );
        open.push(
            upgrade_with(url, &[])
                .await
                .expect("a client without Origin"),
        );
    }
    open[0].recv().await;
    open[1].recv().await;
    assert_eq!(
        app.rooms().await[0]["connections"],
        2,
        "refused upgrades joined nothing"
    );

    let app = spawn_app_with(|config| {
        config.http.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let url = app.ws_url("/ws");
    upgrade_with(&url, &[("origin", "https://app.example.com")])
        .await
        .expect("a configured origin");
    let own = format!("http://{}", app.addr);
    assert_eq!(
        upgrade_with(&url, &[("origin", &own)])
            .await
            .err()
            .map(|e| e.0),
        Some(403)
    );
}

crate::both_engines!(
    a_join_that_would_create_a_room_beyond_max_rooms_closes_with_1013,
    |config| config.rooms.max_rooms = 1
);
async fn a_join_that_would_create_a_room_beyond_max_rooms_closes_with_1013(app: EngineApp) {
    let (_alice, _) = app.join("lobby", "alice").await;
    let mut refused = app
        .connect(&format!("/ws/chat/another?token={}", app.token("bob")))
        .await;
    refused.expect_close(1013).await;
    // The existing room keeps admitting.
    app.join("lobby", "bob").await;
}

// In memory only: with Redis, Redis's own `maxmemory` bounds history.
#[tokio::test]
async fn history_beyond_the_memory_budget_is_dropped_oldest_first_and_said_so() {
    let app = spawn_app_with(|config| config.rooms.history_memory = 2000).await;
    let mut alice = app.join_settled("busy", "alice", &mut []).await;
    let mut ids = Vec::new();
    for n in 0..12 {
        alice.say(&format!("{n} {}", "x".repeat(100))).await;
        ids.push(alice.recv_message().await["id"].as_u64().unwrap());
    }
    let (_late, welcome) = app.join_since("busy", "bob", Some(ids[0])).await;
    assert_eq!(welcome["recovered"], false, "{welcome}");
    let (mut recent, welcome) = app.join_since("busy", "carol", Some(ids[10])).await;
    assert_eq!(welcome["recovered"], true, "{welcome}");
    assert_eq!(recent.recv_message().await["id"], ids[11]);
}

crate::both_engines!(one_address_holds_at_most_its_share_of_sockets, |config| {
    config.connections.max_connections_per_address = 2
});
async fn one_address_holds_at_most_its_share_of_sockets(app: EngineApp) {
    let chat = app.ws_url(&format!("/ws/chat/lobby?token={}", app.token("alice")));
    let mut first = upgrade_with(&chat, &[]).await.expect("first");
    let _echo = upgrade_with(&app.ws_url("/ws"), &[])
        .await
        .expect("echo counts too");
    let (status, retry_after) = upgrade_with(&chat, &[]).await.err().expect("refused");
    assert_eq!((status, retry_after.as_deref()), (429, Some("5")));
    assert_eq!(first.recv().await["type"], "welcome");
    // Another address still gets in: the honest user is not the one refused.
    let bob = app.ws_url(&format!("/ws/chat/lobby?token={}", app.token("bob")));
    let mut other = connect_from("127.0.0.2".parse().unwrap(), &bob).await;
    assert_eq!(other.recv().await["type"], "welcome");
    // A place comes back when one of the address's sockets is gone.
    first.close().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while upgrade_with(&chat, &[]).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "no place came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

crate::both_engines!(
    behind_a_trusted_proxy_each_forwarded_client_has_its_own_share_of_sockets,
    |config| {
        config.connections.max_connections_per_address = 1;
        config.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    }
);
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_share_of_sockets(app: EngineApp) {
    one_socket_per_forwarded_client(&app).await;
}

#[tokio::test]
async fn the_echo_endpoint_can_be_turned_off() {
    let app = spawn_app_with(|config| config.connections.max_echo_connections = 0).await;
    assert_eq!(
        upgrade_with(&app.ws_url("/ws"), &[])
            .await
            .err()
            .map(|e| e.0),
        Some(404)
    );
}
