//! The connection loop over in-memory channels, with tokio's clock paused: timers
//! are exact and tests take no real time.

use std::io;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use chorus_protocol::{CloseCode, RoomName};
use futures_channel::mpsc as futures_mpsc;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tungstenite::Message;

use super::socket::MessageSocket;
use super::*;
use crate::auth::Auth;
use crate::hub::{Hub, HubSettings, Participant};

const INTERVAL: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(10);

fn settings() -> ConnectionSettings {
    ConnectionSettings {
        heartbeat_interval: INTERVAL,
        heartbeat_timeout: TIMEOUT,
        max_message_bytes: 1024,
        rate_limit: 20,
        rate_limit_burst: 40,
        write_timeout: Duration::from_secs(10),
        publish_limits: std::sync::Arc::new(crate::limits::PublishLimits::new(20, 40, 100, 200)),
        metrics: Default::default(),
    }
}

/// A socket made of two channels: what the server writes goes into `sink`, what it
/// reads comes from `stream`.
struct Duplex<Si, St> {
    sink: Si,
    stream: St,
}

fn duplex<Si, St>(
    sink: Si,
    stream: St,
) -> Duplex<impl Sink<Message, Error = tungstenite::Error>, St>
where
    Si: Sink<Message>,
    Si::Error: std::error::Error + Send + Sync + 'static,
{
    Duplex {
        sink: sink.sink_map_err(|err| tungstenite::Error::Io(std::io::Error::other(err))),
        stream,
    }
}

impl<Si: Sink<Message, Error = tungstenite::Error> + Unpin, St: Unpin> Sink<Message>
    for Duplex<Si, St>
{
    type Error = tungstenite::Error;

    fn poll_ready(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), tungstenite::Error>> {
        self.sink.poll_ready_unpin(cx)
    }

    fn start_send(
        mut self: std::pin::Pin<&mut Self>,
        item: Message,
    ) -> Result<(), tungstenite::Error> {
        self.sink.start_send_unpin(item)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), tungstenite::Error>> {
        self.sink.poll_flush_unpin(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), tungstenite::Error>> {
        self.sink.poll_close_unpin(cx)
    }
}

impl<Si: Unpin, St: Stream + Unpin> Stream for Duplex<Si, St> {
    type Item = St::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<St::Item>> {
        self.stream.poll_next_unpin(cx)
    }
}

impl<Si, St> MessageSocket for Duplex<Si, St>
where
    Si: Sink<Message, Error = tungstenite::Error> + Unpin,
    St: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    /// Reads the frames back as a client would and passes them on as messages.
    fn poll_write_framed(
        &mut self,
        _cx: &mut Context<'_>,
        framed: &[u8],
    ) -> Poll<io::Result<usize>> {
        for text in crate::hub::read_as_client(framed) {
            self.sink
                .start_send_unpin(Message::Text(text.into()))
                .map_err(io::Error::other)?;
        }
        Poll::Ready(Ok(framed.len()))
    }
}

/// The client's end of an in-memory connection.
struct Peer {
    to_server: futures_mpsc::UnboundedSender<Result<Message, tungstenite::Error>>,
    from_server: futures_mpsc::UnboundedReceiver<Message>,
    task: JoinHandle<Ended>,
    shutdown: CancellationToken,
}

impl Peer {
    async fn start(
        hub: &Hub,
        name: &str,
        token_valid_for: Duration,
        settings: ConnectionSettings,
    ) -> Peer {
        let (to_server, server_stream) = futures_mpsc::unbounded();
        let (server_sink, from_server) = futures_mpsc::unbounded::<Message>();
        let joined = join_lobby(hub, name).await;
        let shutdown = CancellationToken::new();
        let user_id = name.to_owned();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                run_chat(
                    Box::new(Socket::new(
                        duplex(server_sink, server_stream),
                        settings.write_timeout,
                    )),
                    joined,
                    credentials(&user_id, SystemTime::now() + token_valid_for),
                    &settings,
                    &shutdown,
                )
                .await
            }
        });
        Peer {
            to_server,
            from_server,
            task,
            shutdown,
        }
    }

    fn send(&self, text: &str) {
        self.to_server
            .unbounded_send(Ok(Message::Text(text.into())))
            .unwrap();
    }

    async fn recv(&mut self) -> Value {
        match self.from_server.next().await.expect("server still sending") {
            Message::Text(text) => serde_json::from_str(text.as_str()).unwrap(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    async fn close_code(&mut self) -> u16 {
        loop {
            match self.from_server.next().await.expect("a close frame") {
                Message::Close(Some(frame)) => return u16::from(frame.code),
                Message::Text(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// Signs the tokens a peer may hand over with `refresh`.
static AUTH: LazyLock<Auth> = LazyLock::new(|| Auth::new(b"connection tests"));

fn credentials(user_id: &str, valid_until: SystemTime) -> Credentials<'static> {
    Credentials {
        auth: &AUTH,
        user_id: user_id.into(),
        valid_until,
        room: RoomName::parse("lobby").unwrap(),
        may_publish: true,
        removal: crate::limits::Removal::default(),
        client: std::net::Ipv4Addr::LOCALHOST.into(),
    }
}

/// `name` (also its id) seated in the lobby.
async fn join_lobby(hub: &Hub, name: &str) -> crate::hub::Joined {
    hub.join(
        &RoomName::parse("lobby").unwrap(),
        Participant {
            id: name.into(),
            name: name.into(),
        },
        None,
    )
    .await
    .expect("the memory engine is always available")
}

fn hub() -> Hub {
    hub_sending_at_most_every(Duration::ZERO)
}

fn hub_sending_at_most_every(write_delay: Duration) -> Hub {
    Hub::memory(HubSettings {
        history_size: 100,
        queue_bytes: 1 << 20,
        max_rooms: usize::MAX,
        history_memory: usize::MAX,
        presence_grace: std::time::Duration::ZERO,
        presence_burst: 16,
        write_delay,
        metrics: Default::default(),
    })
}

#[tokio::test(start_paused = true)]
async fn pings_on_schedule_and_closes_silent_clients_with_4009() {
    let hub = hub();
    let mut peer = Peer::start(&hub, "alice", Duration::from_secs(3600), settings()).await;
    let started = Instant::now();
    assert_eq!(peer.recv().await["type"], "welcome");
    assert_eq!(peer.recv().await["event"], "join");
    assert_eq!(peer.recv().await, json!({"type":"ping"}));
    assert_eq!(started.elapsed(), INTERVAL);
    assert_eq!(peer.close_code().await, 4009);
    assert_eq!(started.elapsed(), INTERVAL + TIMEOUT);
    assert_eq!(
        peer.task.await.unwrap(),
        Ended::Closed(CloseCode::HeartbeatTimeout)
    );
}

#[tokio::test(start_paused = true)]
async fn any_frame_counts_as_life() {
    let hub = hub();
    let mut peer = Peer::start(&hub, "alice", Duration::from_secs(3600), settings()).await;
    peer.recv().await;
    peer.recv().await;
    for _ in 0..5 {
        assert_eq!(peer.recv().await, json!({"type":"ping"}));
        tokio::time::sleep(Duration::from_secs(5)).await;
        peer.to_server
            .unbounded_send(Ok(Message::Pong(Default::default())))
            .unwrap();
    }
    peer.shutdown.cancel();
    assert_eq!(peer.close_code().await, 1001);
}

/// A graceful shutdown sends what the member's queue holds before closing with
/// 1001 (a sender acked before its own message went out would never see it). The
/// loop picks among ready events at random: each round would lose the message half
/// the time if the close could overtake it.
#[tokio::test(start_paused = true)]
async fn a_shutdown_sends_what_was_queued_before_closing() {
    let lobby = RoomName::parse("lobby").unwrap();
    let author = Participant {
        id: "api".into(),
        name: "API".into(),
    };
    for round in 0..20 {
        let hub = hub();
        let mut peer = Peer::start(&hub, "alice", Duration::from_secs(3600), settings()).await;
        assert_eq!(peer.recv().await["type"], "welcome");
        assert_eq!(peer.recv().await["event"], "join");
        hub.publish(&lobby, author.clone(), format!("last words {round}"), None)
            .await
            .unwrap();
        peer.shutdown.cancel();
        let frame = peer.recv().await;
        assert_eq!(frame["content"], format!("last words {round}"), "{frame}");
        assert_eq!(peer.close_code().await, 1001);
    }
}

#[tokio::test(start_paused = true)]
async fn pings_keep_their_schedule_until_the_token_ends_between_two() {
    // One timer serves pings, silence and the token's end: each keeps its own time.
    let hub = hub();
    let lifetime = INTERVAL * 5 / 2;
    let mut peer = Peer::start(&hub, "alice", lifetime, settings()).await;
    let started = Instant::now();
    peer.recv().await;
    peer.recv().await;
    for n in 1..=2 {
        assert_eq!(peer.recv().await, json!({"type":"ping"}));
        assert_eq!(started.elapsed(), INTERVAL * n);
        // Answered a little later: the next ping still comes an interval after this one.
        tokio::time::sleep(Duration::from_secs(3)).await;
        peer.send(r#"{"type":"pong"}"#);
    }
    assert_eq!(peer.close_code().await, 4002);
    let elapsed = started.elapsed();
    assert!(
        elapsed > INTERVAL * 2 && elapsed <= lifetime,
        "closed at {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn token_expiry_closes_with_4002() {
    let hub = hub();
    let mut peer = Peer::start(&hub, "alice", Duration::from_secs(12), settings()).await;
    let started = Instant::now();
    assert_eq!(peer.close_code().await, 4002);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(11) && elapsed <= Duration::from_secs(12),
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_renewed_token_for_the_same_user_keeps_the_connection_open() {
    let hub = hub();
    let mut peer = Peer::start(&hub, "alice", Duration::from_secs(12), settings()).await;
    peer.recv().await;
    peer.recv().await;
    let renewed = AUTH.issue("alice", Some("alice"), Duration::from_secs(3600));
    peer.send(&json!({"type":"refresh","token":renewed.token}).to_string());
    assert_eq!(peer.recv().await, json!({"type":"refreshed"}));
    // Past the first token's expiry (and its leeway), the member still chats.
    tokio::time::sleep(Duration::from_secs(20)).await;
    peer.send(r#"{"type":"message","content":"still here","ref":"r1"}"#);
    let ack = peer.recv().await;
    assert_eq!((&ack["type"], &ack["ref"]), (&json!("ack"), &json!("r1")));
    assert_eq!(peer.recv().await["content"], "still here");
}

#[tokio::test(start_paused = true)]
async fn a_refused_refresh_changes_nothing() {
    let hub = hub();
    let mut peer = Peer::start(&hub, "alice", Duration::from_secs(12), settings()).await;
    let started = Instant::now();
    peer.recv().await;
    peer.recv().await;
    let refused = [
        AUTH.issue("mallory", Some("alice"), Duration::from_secs(3600))
            .token,
        Auth::new(b"another secret")
            .issue("alice", None, Duration::from_secs(3600))
            .token,
        "not a token".to_owned(),
        String::new(),
    ];
    for token in refused {
        peer.send(&json!({"type":"refresh","token":token}).to_string());
        let reply = peer.recv().await;
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["code"], "invalid_token", "{reply}");
    }
    peer.send(r#"{"type":"refresh"}"#);
    assert_eq!(peer.recv().await["code"], "invalid_frame");
    // The first token still decides when the connection ends.
    assert_eq!(peer.close_code().await, 4002);
    assert!(started.elapsed() <= Duration::from_secs(12));
}

#[tokio::test(start_paused = true)]
async fn a_refresh_brings_the_new_tokens_permissions() {
    let hub = hub();
    let mut peer = Peer::start(&hub, "alice", Duration::from_secs(3600), settings()).await;
    peer.recv().await;
    peer.recv().await;
    let token = |rooms: Value, publish: Value| {
        let mut claims = json!({"sub": "alice", "exp": crate::auth::unix_now() + 3600});
        if !rooms.is_null() {
            claims["rooms"] = rooms;
        }
        if !publish.is_null() {
            claims["publish"] = publish;
        }
        crate::auth::sign_hs256(b"connection tests", &claims)
    };
    // Not allowed here at all: refused, and the connection keeps what it had.
    peer.send(
        &json!({"type":"refresh","token":token(json!(["support-*"]), Value::Null)}).to_string(),
    );
    assert_eq!(peer.recv().await["code"], "forbidden");
    peer.send(r#"{"type":"message","content":"one","ref":"r1"}"#);
    assert_eq!(peer.recv().await["type"], "ack");
    assert_eq!(peer.recv().await["content"], "one");
    // Allowed to read only: accepted, and posting stops.
    peer.send(&json!({"type":"refresh","token":token(json!(["lobby"]), json!([]))}).to_string());
    assert_eq!(peer.recv().await, json!({"type":"refreshed"}));
    peer.send(r#"{"type":"message","content":"two","ref":"r2"}"#);
    let refused = peer.recv().await;
    assert_eq!(
        (&refused["type"], &refused["code"], &refused["ref"]),
        (&json!("error"), &json!("forbidden"), &json!("r2"))
    );
    // And a token allowing it again restores it.
    peer.send(&json!({"type":"refresh","token":token(json!(["lob*"]), Value::Null)}).to_string());
    assert_eq!(peer.recv().await, json!({"type":"refreshed"}));
    peer.send(r#"{"type":"message","content":"three","ref":"r3"}"#);
    assert_eq!(peer.recv().await["type"], "ack");
    assert_eq!(peer.recv().await["content"], "three");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_allows_the_burst_then_the_rate() {
    let hub = hub();
    let mut peer = Peer::start(
        &hub,
        "alice",
        Duration::from_secs(3600),
        ConnectionSettings {
            rate_limit: 1,
            rate_limit_burst: 2,
            ..settings()
        },
    )
    .await;
    peer.recv().await;
    peer.recv().await;
    for n in 0..3 {
        peer.send(&json!({"type":"message","content":format!("m{n}")}).to_string());
    }
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let frame = peer.recv().await;
        let kind = frame["code"].as_str().or(frame["content"].as_str());
        kinds.push(
            kind.unwrap_or_else(|| panic!("unexpected {frame}"))
                .to_owned(),
        );
    }
    kinds.sort();
    assert_eq!(kinds, ["m0", "m1", "rate_limited"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    peer.send(r#"{"type":"message","content":"later"}"#);
    assert_eq!(peer.recv().await["content"], "later");
}

#[tokio::test(start_paused = true)]
async fn oversized_text_closes_with_1009() {
    let hub = hub();
    let mut peer = Peer::start(&hub, "alice", Duration::from_secs(3600), settings()).await;
    peer.send(&"x".repeat(2000));
    assert_eq!(peer.close_code().await, 1009);
}

#[tokio::test(start_paused = true)]
async fn a_write_that_never_completes_is_abandoned() {
    let hub = hub();
    let (to_server, server_stream) =
        futures_mpsc::unbounded::<Result<Message, tungstenite::Error>>();
    // A sink with room for nothing: every send waits forever, like a peer that stopped reading.
    let (server_sink, _never_read) = futures_mpsc::channel::<Message>(0);
    let joined = join_lobby(&hub, "stuck").await;
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let ended = run_chat(
        Box::new(Socket::new(
            duplex(server_sink, server_stream),
            settings().write_timeout,
        )),
        joined,
        credentials("stuck", SystemTime::now() + Duration::from_secs(3600)),
        &settings(),
        &shutdown,
    )
    .await;
    drop(to_server);
    assert_eq!(ended, Ended::WriteStalled);
    assert_eq!(started.elapsed(), settings().write_timeout);
}

/// Publishes `count` messages from a second member, one every `every`, in a room that
/// sends at most every 20 ms while busy; returns when alice's connection wrote each
/// of them (the clock is paused: frames written in one batch arrive at the same
/// instant).
async fn written_at(every: Duration, count: usize) -> Vec<Duration> {
    let hub = hub_sending_at_most_every(Duration::from_millis(20));
    let mut peer = Peer::start(&hub, "alice", Duration::from_secs(3600), settings()).await;
    assert_eq!(peer.recv().await["type"], "welcome");
    assert_eq!(peer.recv().await["event"], "join");
    let bob = join_lobby(&hub, "bob").await;
    let start = Instant::now();
    let reader = tokio::spawn(async move {
        let mut written = Vec::new();
        while written.len() < count {
            let frame = peer.recv().await;
            if frame["type"] == "message" {
                assert_eq!(frame["content"], written.len().to_string(), "in order");
                written.push(start.elapsed());
            }
        }
        written
    });
    for n in 0..count {
        bob.membership.publish(n.to_string()).await.unwrap();
        tokio::time::sleep(every).await;
    }
    reader.await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_member_at_chat_speed_gets_every_frame_at_once() {
    let written = written_at(Duration::from_millis(10), 100).await;
    for (n, at) in written.iter().enumerate() {
        assert_eq!(*at, Duration::from_millis(10) * n as u32, "message {n}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_busy_member_gets_its_frames_together_within_the_write_delay() {
    let every = Duration::from_millis(1);
    let written = written_at(every, 500).await;
    let mut batches = written.clone();
    batches.dedup();
    // Once a window has shown the member busy, one write per 20 ms carries 20 frames.
    let paced: Vec<_> = batches
        .iter()
        .filter(|at| **at >= Duration::from_millis(200))
        .collect();
    assert!(paced.len() <= 300 / 20 + 1, "{} writes", paced.len());
    for pair in paced.windows(2) {
        assert!(*pair[1] - *pair[0] >= Duration::from_millis(20), "{pair:?}");
    }
    for (n, at) in written.iter().enumerate() {
        let published = every * n as u32;
        assert!(
            *at - published <= Duration::from_millis(20),
            "message {n} published at {published:?}, written at {at:?}"
        );
    }
}
