//! `spawn_app()`: a real server on port 0, plus a WebSocket and HTTP client to poke it with.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use chorus_server::auth::Auth;
use chorus_server::config::Config;
use chorus_server::startup::{Application, StartupError};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "integration-test-secret";
/// Longest wait for anything the server should do promptly.
pub const PATIENCE: Duration = Duration::from_secs(5);

pub struct TestApp {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<Result<(), StartupError>>,
    auth: Auth,
}

/// Starts a server with default settings on a free port.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server on a free port after `configure` adjusted the defaults.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    // Logs only on request (`TEST_LOG=1 cargo test`), so test output stays readable.
    if std::env::var_os("TEST_LOG").is_some() {
        chorus_server::telemetry::init();
    }
    let mut config = Config::defaults();
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.jwt_secret = Some(SECRET.into());
    config.site_root = "target/no-site-in-api-tests".into();
    configure(&mut config);
    let app = Application::build(config).await.expect("server builds");
    let addr = app.local_addr();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        addr,
        shutdown,
        server,
        auth: Auth::new(SECRET.as_bytes()),
    }
}

impl TestApp {
    /// A valid token whose `sub` and `name` are both `name`.
    pub fn token(&self, name: &str) -> String {
        self.auth
            .issue(name, Some(name), Duration::from_secs(3600))
            .token
    }

    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    pub async fn connect(&self, path_and_query: &str) -> Client {
        Client::connect(&self.ws_url(path_and_query)).await
    }

    /// Joins `room` as `name` and checks the welcome frame; returns the client and the welcome.
    pub async fn join(&self, room: &str, name: &str) -> (Client, Value) {
        self.join_since(room, name, None).await
    }

    pub async fn join_since(&self, room: &str, name: &str, since: Option<u64>) -> (Client, Value) {
        let mut path = format!("/ws/chat/{room}?token={}", self.token(name));
        if let Some(since) = since {
            path.push_str(&format!("&since={since}"));
        }
        let mut client = self.connect(&path).await;
        let welcome = client.recv().await;
        assert_eq!(welcome["type"], "welcome", "first frame: {welcome}");
        assert_eq!(welcome["room"], room);
        assert_eq!(welcome["user"], name);
        (client, welcome)
    }

    pub async fn get(&self, path: &str) -> HttpResponse {
        http_request(self.addr, "GET", path, None).await
    }

    pub async fn post_json(&self, path: &str, body: &str) -> HttpResponse {
        http_request(self.addr, "POST", path, Some(body)).await
    }

    /// Waits until every room is gone (members leave asynchronously after their socket closes).
    pub async fn wait_until_no_rooms(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.rooms().await != json!([]) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "rooms still listed: {}",
                self.rooms().await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET /api/rooms` as JSON.
    pub async fn rooms(&self) -> Value {
        let response = self.get("/api/rooms").await;
        assert_eq!(response.status, 200);
        response.json()
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client that asserts on exact frames.
pub struct Client {
    pub ws: Socket,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("WebSocket handshake succeeds");
        Client { ws }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub async fn say(&mut self, content: &str) {
        self.send_text(&json!({"type": "message", "content": content}).to_string())
            .await;
    }

    /// The next frame, which must be a JSON text frame.
    pub async fn recv(&mut self) -> Value {
        match self.next().await {
            Message::Text(text) => serde_json::from_str(text.as_str()).expect("server sends JSON"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next frame, whatever it is.
    pub async fn next(&mut self) -> Message {
        tokio::time::timeout(PATIENCE, self.ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("socket still open")
            .expect("frame reads cleanly")
    }

    /// The next `type:"message"` frame, after checking it is one.
    pub async fn recv_message(&mut self) -> Value {
        let frame = self.recv().await;
        assert_eq!(
            frame["type"], "message",
            "expected a chat message, got {frame}"
        );
        frame
    }

    /// Reads until the server's close frame and returns it; text frames before it are returned too.
    pub async fn closed(&mut self) -> (Option<CloseFrame>, Vec<Value>) {
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
    pub async fn expect_close(&mut self, code: u16) {
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
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Ok(frame) = tokio::time::timeout(quiet, self.ws.next()).await {
            panic!("expected silence, got {frame:?}");
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        // Drain until the server acknowledges.
        let _ =
            tokio::time::timeout(PATIENCE, async { while self.ws.next().await.is_some() {} }).await;
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("{err}: {}", self.body))
    }
}

/// A one-shot HTTP/1.1 request over a fresh connection; enough for JSON endpoints.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read");
    let raw = String::from_utf8(raw).expect("UTF-8 response");
    let (head, payload) = raw.split_once("\r\n\r\n").expect("header end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let headers = head.to_ascii_lowercase();
    let body = if headers.contains("transfer-encoding: chunked") {
        dechunk(payload)
    } else {
        payload.to_owned()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut payload: &str) -> String {
    let mut body = String::new();
    while let Some((size, rest)) = payload.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        body.push_str(&rest[..size]);
        payload = &rest[size + 2..];
    }
    body
}

/// The `chorus` binary, started with `args`, and its log lines up to "listening on".
pub struct Binary {
    pub child: tokio::process::Child,
    pub lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub addr: String,
    pub startup_log: Vec<String>,
}

pub async fn start_binary(args: &[&str], envs: &[(&str, &str)]) -> Binary {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["--addr", "127.0.0.1:0", "--site-root", "target/no-site"])
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut startup_log = Vec::new();
    let addr = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            startup_log.push(line.clone());
            if let Some((_, addr)) = line.split_once("listening on http://") {
                return addr.trim().to_owned();
            }
        }
        panic!("the server never said where it listens: {startup_log:?}");
    })
    .await
    .expect("server starts in time");
    Binary {
        child,
        lines,
        addr,
        startup_log,
    }
}
