//! `spawn_app()`: a real server on port 0, in this process.

use std::net::SocketAddr;
use std::time::Duration;

use chorus_server::auth::Auth;
use chorus_server::config::Config;
use chorus_server::startup::{Application, StartupError};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{
    API_KEY, Client, HttpResponse, PATIENCE, SECRET, http_request, http_request_with, ws_client,
};

pub(crate) struct TestApp {
    pub addr: SocketAddr,
    /// `--metrics-addr`, on a port of its own.
    pub metrics_addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<Result<(), StartupError>>,
    auth: Auth,
}

/// A parsed `/metrics` scrape.
pub(crate) struct Scrape(pub prometheus_parse::Scrape);

impl Scrape {
    /// The value of `metric` with these labels (every label given must match), or 0
    /// when no such sample exists yet; a histogram's sample count.
    pub(crate) fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|sample| sample.metric == metric)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(name, value)| sample.labels.get(name) == Some(*value))
            })
            .map(|sample| match &sample.value {
                prometheus_parse::Value::Counter(value)
                | prometheus_parse::Value::Gauge(value)
                | prometheus_parse::Value::Untyped(value) => *value,
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.last().map_or(0.0, |bucket| bucket.count)
                }
                prometheus_parse::Value::Summary(_) => 0.0,
            })
            .sum()
    }
}

/// Starts a server on a free port after `configure` adjusted the defaults.
pub(crate) async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    // Logs only on request (`TEST_LOG=1 cargo test`), so test output stays readable.
    if std::env::var_os("TEST_LOG").is_some() {
        chorus_server::observe::logs::init(chorus_server::observe::logs::LogFormat::Text);
    }
    let mut config = Config::defaults();
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    config.tokens.jwt_secret = Some(SECRET.into());
    config.tokens.api_keys = vec![API_KEY.into()];
    config.observe.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    config.http.site_root = "target/no-site-in-api-tests".into();
    // Leaves announced at once unless a test is about the grace: most tests watch
    // comings and goings and should not wait for them.
    config.rooms.presence_grace = Duration::ZERO;
    configure(&mut config);
    let app = Application::build(config).await.expect("server builds");
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr().expect("metrics are on in tests");
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        addr,
        metrics_addr,
        shutdown,
        server,
        auth: Auth::new(SECRET.as_bytes()),
    }
}

impl TestApp {
    /// A valid token whose `sub` and `name` are both `name`.
    pub(crate) fn token(&self, name: &str) -> String {
        self.auth
            .issue(name, Some(name), Duration::from_secs(3600))
            .token
    }

    pub(crate) fn ws_url(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    pub(crate) async fn connect(&self, path_and_query: &str) -> Client {
        Client::connect(&self.ws_url(path_and_query)).await
    }

    /// Joins `room` as `name` and checks the welcome frame; returns the client and the welcome.
    pub(crate) async fn join(&self, room: &str, name: &str) -> (Client, Value) {
        self.join_since(room, name, None).await
    }

    pub(crate) async fn join_since(
        &self,
        room: &str,
        name: &str,
        since: Option<u64>,
    ) -> (Client, Value) {
        ws_client::join(&self.addr.to_string(), room, name, since).await
    }

    /// Joins `room` as `name` and waits until the join has been announced to the
    /// newcomer and to every member in `present`: what most tests start with.
    pub(crate) async fn join_settled(
        &self,
        room: &str,
        name: &str,
        present: &mut [&mut Client],
    ) -> Client {
        let (mut client, _) = self.join(room, name).await;
        client.settle_join(name, present).await;
        client
    }

    pub(crate) async fn get(&self, path: &str) -> HttpResponse {
        http_request(self.addr, "GET", path, None).await
    }

    pub(crate) async fn post_json(&self, path: &str, body: &str) -> HttpResponse {
        http_request(self.addr, "POST", path, Some(body)).await
    }

    /// A guest token for `name` from `POST /api/token`, as the web client signs in.
    pub(crate) async fn guest_token(&self, name: &str) -> String {
        let body = serde_json::json!({ "name": name }).to_string();
        let issued = self.post_json("/api/token", &body).await.json();
        issued["token"].as_str().expect("a guest token").to_owned()
    }

    /// `POST` with no body and `Authorization: Bearer <token>`.
    pub(crate) async fn post_bearer(&self, path: &str, token: &str) -> HttpResponse {
        let bearer = format!("Bearer {token}");
        http_request_with(self.addr, "POST", path, &[("Authorization", &bearer)], None).await
    }

    /// A `/metrics` scrape, parsed as a Prometheus server reads it.
    pub(crate) async fn metrics(&self) -> Scrape {
        let response = http_request(self.metrics_addr, "GET", "/metrics", None).await;
        assert_eq!(response.status, 200);
        Scrape(
            prometheus_parse::Scrape::parse(response.body.lines().map(|line| Ok(line.to_owned())))
                .expect("Prometheus text"),
        )
    }

    /// Scrapes until `done` says the scrape shows what is expected, for at most
    /// [`PATIENCE`]: a socket's end is counted just after the client sees it.
    pub(crate) async fn metrics_when(&self, done: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let scrape = self.metrics().await;
            if done(&scrape) {
                return scrape;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the metrics never showed it: {:?}",
                scrape.0.samples
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A server API call with the test's API key (`body` as JSON, when given).
    pub(crate) async fn api(&self, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
        self.api_as(API_KEY, method, path, body).await
    }

    /// A server API call with `credentials` as the bearer.
    pub(crate) async fn api_as(
        &self,
        credentials: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> HttpResponse {
        let bearer = format!("Bearer {credentials}");
        http_request_with(self.addr, method, path, &[("Authorization", &bearer)], body).await
    }

    /// Waits until every room is gone (members leave asynchronously after their socket closes).
    pub(crate) async fn wait_until_no_rooms(&self) {
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

    /// `GET /api/rooms` as JSON, as the backend sees it (every room).
    pub(crate) async fn rooms(&self) -> Value {
        let response = self.api("GET", "/api/rooms", None).await;
        assert_eq!(response.status, 200);
        response.json()
    }
}
