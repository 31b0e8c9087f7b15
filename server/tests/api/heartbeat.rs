use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Client, EngineApp, OP_PING, PATIENCE, RawSocket};

const INTERVAL: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(800);

/// Heartbeats fast enough for a test.
fn quick_heartbeat(config: &mut chorus_server::config::Config) {
    config.connections.heartbeat_interval = INTERVAL;
    config.connections.heartbeat_timeout = TIMEOUT;
}

async fn joined(app: &crate::helpers::TestApp) -> Client {
    let (mut client, _) = app.join("lobby", "alice").await;
    assert_eq!(client.recv().await["event"], "join");
    client
}

crate::both_engines!(the_server_pings_every_interval, quick_heartbeat);
async fn the_server_pings_every_interval(app: EngineApp) {
    let mut client = joined(&app).await;
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(client.recv().await, json!({"type": "ping"}));
        client.send_text(r#"{"type":"pong"}"#).await;
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= INTERVAL * 2,
        "three pings came too fast: {elapsed:?}"
    );
}

crate::both_engines!(a_silent_client_is_closed_with_4009, quick_heartbeat);
async fn a_silent_client_is_closed_with_4009(app: EngineApp) {
    let mut client = joined(&app).await;
    let started = Instant::now();
    let (frame, before) = client.closed().await;
    assert_eq!(u16::from(frame.expect("close frame").code), 4009);
    assert!(
        before.iter().all(|frame| *frame == json!({"type": "ping"})),
        "{before:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= INTERVAL + TIMEOUT - Duration::from_millis(50),
        "closed too early: {elapsed:?}"
    );
}

crate::both_engines!(pongs_keep_a_client_alive, quick_heartbeat);
async fn pongs_keep_a_client_alive(app: EngineApp) {
    let mut client = joined(&app).await;
    let until = Instant::now() + (INTERVAL + TIMEOUT) * 3;
    while Instant::now() < until {
        assert_eq!(client.recv().await, json!({"type": "ping"}));
        client.send_text(r#"{"type":"pong"}"#).await;
    }
    client.say("still alive").await;
    loop {
        let frame = client.recv().await;
        if frame["type"] == "message" {
            assert_eq!(frame["content"], "still alive");
            break;
        }
        assert_eq!(frame, json!({"type": "ping"}));
    }
}

crate::both_engines!(
    websocket_pings_are_answered_and_count_as_life,
    quick_heartbeat
);
async fn websocket_pings_are_answered_and_count_as_life(app: EngineApp) {
    let mut client = joined(&app).await;
    let until = Instant::now() + (INTERVAL + TIMEOUT) * 3;
    let mut pongs = 0;
    while Instant::now() < until {
        client
            .ws
            .send(Message::Ping(b"are you there".to_vec().into()))
            .await
            .unwrap();
        loop {
            match client.next().await {
                Message::Pong(payload) => {
                    assert_eq!(&payload[..], b"are you there");
                    pongs += 1;
                    break;
                }
                Message::Text(text) => assert_eq!(text.as_str(), r#"{"type":"ping"}"#),
                other => panic!("unexpected {other:?}"),
            }
        }
        // Well under the 5 pings a second a client may send.
        tokio::time::sleep(INTERVAL).await;
    }
    assert!(pongs >= 5);
}

crate::both_engines!(
    an_idle_echo_socket_is_pinged_then_closed_with_4009_and_frees_its_slot,
    |config| {
        config.connections.heartbeat_interval = INTERVAL;
        config.connections.heartbeat_timeout = TIMEOUT;
        config.connections.max_echo_connections = 1;
    }
);
async fn an_idle_echo_socket_is_pinged_then_closed_with_4009_and_frees_its_slot(app: EngineApp) {
    // A client that never reads, so never answers a ping.
    let started = Instant::now();
    let mut idle = RawSocket::connect(app.addr, "/ws").await;
    // The only echo slot is taken...
    let mut refused = app.connect("/ws").await;
    refused.expect_close(1013).await;
    // ...until the server gives up on the silent socket: it was pinged, then closed
    // with 4009.
    assert_eq!(idle.read_frame().await.map(|(op, _)| op), Some(OP_PING));
    assert_eq!(idle.close_code().await, 4009);
    assert!(started.elapsed() >= INTERVAL + TIMEOUT - Duration::from_millis(50));
    // The slot is free again, once the server has finished with the silent socket.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut echo = app.connect("/ws").await;
        echo.send_text("back").await;
        match echo.next().await {
            Message::Text(text) => break assert_eq!(text.as_str(), "Echo: back"),
            Message::Close(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => panic!("no echo slot came back: {other:?}"),
        }
    }
}

crate::both_engines!(
    an_echo_socket_that_answers_pings_stays_open,
    quick_heartbeat
);
async fn an_echo_socket_that_answers_pings_stays_open(app: EngineApp) {
    // tungstenite answers the server's pings while we read.
    let mut echo = app.connect("/ws").await;
    let until = Instant::now() + (INTERVAL + TIMEOUT) * 2;
    let mut pinged = 0;
    while Instant::now() < until {
        if let Message::Ping(_) = echo.next().await {
            pinged += 1;
        }
    }
    assert!(pinged >= 3);
    echo.send_text("still here").await;
    loop {
        match echo.next().await {
            Message::Text(text) => break assert_eq!(text.as_str(), "Echo: still here"),
            Message::Ping(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
