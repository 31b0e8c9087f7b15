//! A WebSocket client that asserts on exact frames.

use std::time::Duration;

use chorus_server::auth::Auth;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{PATIENCE, SECRET};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client that asserts on exact frames.
pub(crate) struct Client {
    pub ws: Socket,
}

/// Joins `room` on the server at `addr` as `name` (a token with `sub` and `name`
/// both `name`) and checks the welcome frame; returns the client and the welcome.
pub(super) async fn join(
    addr: &str,
    room: &str,
    name: &str,
    since: Option<u64>,
) -> (Client, Value) {
    let token = Auth::new(SECRET.as_bytes())
        .issue(name, Some(name), Duration::from_secs(3600))
        .token;
    let mut url = format!("ws://{addr}/ws/chat/{room}?token={token}");
    if let Some(since) = since {
        url.push_str(&format!("&since={since}"));
    }
    let mut client = Client::connect(&url).await;
    let welcome = client.recv().await;
    assert_eq!(welcome["type"], "welcome", "first frame: {welcome}");
    assert_eq!(welcome["room"], room);
    assert_eq!(welcome["user"], name);
    (client, welcome)
}

impl Client {
    pub(crate) async fn connect(url: &str) -> Client {
        let (ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("WebSocket handshake succeeds");
        Client { ws }
    }

    /// Connects until the server admits the socket (its first frame is text, not a
    /// close): for a slot or a room that frees up once the server has finished with
    /// other sockets, or a broker that comes back. Panics after [`PATIENCE`].
    pub(crate) async fn connect_when_admitted(url: &str) -> Client {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let mut client = Client::connect(url).await;
            match client.next().await {
                Message::Text(_) => return client,
                Message::Close(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                other => panic!("not admitted in time: {other:?}"),
            }
        }
    }

    pub(crate) async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub(crate) async fn say(&mut self, content: &str) {
        self.send_text(&json!({"type": "message", "content": content}).to_string())
            .await;
    }

    /// Says `{prefix}0`, `{prefix}1`, … `count` times, reading each back; returns them.
    pub(crate) async fn say_numbered(&mut self, prefix: &str, count: usize) -> Vec<Value> {
        let mut sent = Vec::with_capacity(count);
        for n in 0..count {
            self.say(&format!("{prefix}{n}")).await;
            sent.push(self.recv_message().await);
        }
        sent
    }

    /// The next frame, which must be a JSON text frame.
    pub(crate) async fn recv(&mut self) -> Value {
        match self.next().await {
            Message::Text(text) => serde_json::from_str(text.as_str()).expect("server sends JSON"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next frame, whatever it is.
    pub(crate) async fn next(&mut self) -> Message {
        tokio::time::timeout(PATIENCE, self.ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("socket still open")
            .expect("frame reads cleanly")
    }

    /// Reads (skipping any backlog) until `name`'s join announcement, then has every
    /// client in `present` do the same.
    pub(crate) async fn settle_join(&mut self, name: &str, present: &mut [&mut Client]) {
        self.until_joined(name).await;
        for member in present {
            member.until_joined(name).await;
        }
    }

    async fn until_joined(&mut self, name: &str) {
        loop {
            let frame = self.recv().await;
            let one =
                frame["type"] == "system" && frame["event"] == "join" && frame["user"] == name;
            // During a burst, joins come gathered in a `presence` frame.
            let gathered = frame["type"] == "presence"
                && frame["joins"]
                    .as_array()
                    .is_some_and(|joins| joins.iter().any(|member| member["name"] == name));
            if one || gathered {
                return;
            }
        }
    }

    /// The next `type:"message"` frame, after checking it is one.
    pub(crate) async fn recv_message(&mut self) -> Value {
        let frame = self.recv().await;
        assert_eq!(
            frame["type"], "message",
            "expected a chat message, got {frame}"
        );
        frame
    }

    /// Reads until the server's close frame and returns it; text frames before it are returned too.
    pub(crate) async fn closed(&mut self) -> (Option<CloseFrame>, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            match tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("timed out waiting for the close frame")
            {
                Some(Ok(Message::Close(frame))) => {
                    // Keep reading so the client's close reply is flushed, as a browser does.
                    let _ = tokio::time::timeout(PATIENCE, async {
                        while self.ws.next().await.is_some() {}
                    })
                    .await;
                    return (frame, before);
                }
                Some(Ok(Message::Text(text))) => {
                    before.push(serde_json::from_str(text.as_str()).expect("JSON"))
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => panic!("socket failed before a close frame: {err}"),
                None => panic!("socket ended without a close frame"),
            }
        }
    }

    /// Asserts the server closes with `code` and nothing else arrives first.
    pub(crate) async fn expect_close(&mut self, code: u16) {
        let (frame, before) = self.closed().await;
        assert!(before.is_empty(), "frames before close: {before:?}");
        let frame = frame.expect("close frame carries a code");
        assert_eq!(
            u16::from(frame.code),
            code,
            "close reason: {}",
            frame.reason
        );
    }

    /// Asserts nothing arrives for `quiet`.
    pub(crate) async fn expect_silence(&mut self, quiet: Duration) {
        if let Ok(frame) = tokio::time::timeout(quiet, self.ws.next()).await {
            panic!("expected silence, got {frame:?}");
        }
    }

    pub(crate) async fn close(mut self) {
        let _ = self.ws.close(None).await;
        // Drain until the server acknowledges.
        let _ =
            tokio::time::timeout(PATIENCE, async { while self.ws.next().await.is_some() {} }).await;
    }
}
