//! What operators see: counters, gauges and a latency histogram, all prefixed
//! `chorus_`, served in the Prometheus (OpenMetrics) text format on `--metrics-addr`,
//! a listener of its own, never the public port.
//!
//! Each server has its own registry (`prometheus-client`), so tests can run several
//! servers in one process. Labels come from fixed sets only (close codes, error
//! codes, refusal reasons, sources): nothing a client sends can add a series.
//! Nothing here is touched per delivered frame: deliveries are counted once per
//! broadcast, with the number of queues it reached.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `code` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The close code, or `none` when the client went away without one from us.
    pub code: &'static str,
}

/// The `source` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// `socket` (a member) or `api` (the server API).
    pub source: &'static str,
}

/// The `code` label of refused frames.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    /// The `error` frame's code.
    pub code: &'static str,
}

/// The `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A fixed reason (`expired`, `missing`, `bad signature`, ...).
    pub reason: &'static str,
}

/// Every metric of one server.
pub struct Metrics {
    registry: Registry,
    /// `chorus_connections`: open WebSockets.
    pub connections_open: Gauge,
    /// `chorus_connections_accepted_total`.
    pub connections_accepted: Counter,
    /// `chorus_connections_closed_total`, by close code.
    pub connections_closed: Family<CodeLabel, Counter>,
    /// `chorus_rooms`: rooms with members here.
    pub rooms: Gauge,
    /// `chorus_messages_published_total`, by source.
    pub messages_published: Family<SourceLabel, Counter>,
    /// `chorus_frames_delivered_total`.
    pub frames_delivered: Counter,
    /// `chorus_evictions_total`: members closed with 4008.
    pub evictions: Counter,
    /// `chorus_frames_refused_total`, by error code.
    pub frames_refused: Family<ErrorLabel, Counter>,
    /// `chorus_auth_failures_total`, by reason.
    pub auth_failures: Family<ReasonLabel, Counter>,
    /// `chorus_delivery_latency_seconds`.
    pub delivery_latency: Histogram,
    /// `chorus_redis_errors_total`.
    pub redis_errors: Counter,
    /// `chorus_redis_subscriber_reconnects_total`.
    pub redis_subscriber_reconnects: Counter,
    /// `chorus_redis_gap_refills_total`.
    pub redis_gap_refills: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("chorus");
        let metrics = Metrics {
            connections_open: Gauge::default(),
            connections_accepted: Counter::default(),
            connections_closed: Family::default(),
            rooms: Gauge::default(),
            messages_published: Family::default(),
            frames_delivered: Counter::default(),
            evictions: Counter::default(),
            frames_refused: Family::default(),
            auth_failures: Family::default(),
            // 100 µs to about 13 s.
            delivery_latency: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            redis_errors: Counter::default(),
            redis_subscriber_reconnects: Counter::default(),
            redis_gap_refills: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "connections",
            "Open WebSocket connections (chat and echo)",
            metrics.connections_open.clone(),
        );
        registry.register(
            "connections_accepted",
            "WebSocket connections upgraded",
            metrics.connections_accepted.clone(),
        );
        registry.register(
            "connections_closed",
            "WebSocket connections ended, by the close code the server sent (none: the client left)",
            metrics.connections_closed.clone(),
        );
        registry.register(
            "rooms",
            "Rooms with members on this server",
            metrics.rooms.clone(),
        );
        registry.register(
            "messages_published",
            "Messages published, by source (socket: a member; api: the server API)",
            metrics.messages_published.clone(),
        );
        registry.register(
            "frames_delivered",
            "Frames queued to members on this server",
            metrics.frames_delivered.clone(),
        );
        registry.register(
            "evictions",
            "Members evicted for a full queue (closed with 4008)",
            metrics.evictions.clone(),
        );
        registry.register(
            "frames_refused",
            "Client frames answered with an error, by error code",
            metrics.frames_refused.clone(),
        );
        registry.register(
            "auth_failures",
            "Tokens refused, by reason",
            metrics.auth_failures.clone(),
        );
        registry.register(
            "delivery_latency_seconds",
            "From a message being stamped by the server that published it to its fan-out into this server's member queues",
            metrics.delivery_latency.clone(),
        );
        registry.register(
            "redis_errors",
            "Redis commands that failed or timed out",
            metrics.redis_errors.clone(),
        );
        registry.register(
            "redis_subscriber_reconnects",
            "Pub/Sub connections re-established after an outage",
            metrics.redis_subscriber_reconnects.clone(),
        );
        registry.register(
            "redis_gap_refills",
            "Messages delivered from a room's stream after a Pub/Sub outage",
            metrics.redis_gap_refills.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// A connection ended, closed by the server with `code` (`None`: the client left).
    pub fn closed(&self, code: Option<u16>) {
        self.connections_closed
            .get_or_create(&CodeLabel {
                code: code.map_or("none", close_code_label),
            })
            .inc();
    }

    /// A message was published from `source` (`socket` or `api`).
    pub fn published(&self, source: &'static str) {
        self.messages_published
            .get_or_create(&SourceLabel { source })
            .inc();
    }

    /// A client frame was answered with an `error` of `code`.
    pub fn refused(&self, code: &'static str) {
        self.frames_refused
            .get_or_create(&ErrorLabel { code })
            .inc();
    }

    /// A token was refused, for `reason`.
    pub fn auth_failed(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// One broadcast reached `queues` member queues (and evicted `evicted` members).
    pub fn delivered(&self, queues: usize, evicted: usize) {
        if queues > 0 {
            self.frames_delivered.inc_by(queues as u64);
        }
        if evicted > 0 {
            self.evictions.inc_by(evicted as u64);
        }
    }

    /// How long a message took from being stamped to reaching this server's queues.
    pub fn latency(&self, latency: Duration) {
        self.delivery_latency.observe(latency.as_secs_f64());
    }

    /// The exposition, as `/metrics` serves it.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

fn close_code_label(code: u16) -> &'static str {
    use chorus_protocol::CloseCode;
    match CloseCode::from_code(code) {
        Some(CloseCode::Normal) => "1000",
        Some(CloseCode::GoingAway) => "1001",
        Some(CloseCode::PolicyViolation) => "1008",
        Some(CloseCode::TooBig) => "1009",
        Some(CloseCode::ServerFull) => "1013",
        Some(CloseCode::Unauthorized) => "4001",
        Some(CloseCode::TokenExpired) => "4002",
        Some(CloseCode::Forbidden) => "4003",
        Some(CloseCode::InvalidRoom) => "4004",
        Some(CloseCode::TooSlow) => "4008",
        Some(CloseCode::HeartbeatTimeout) => "4009",
        Some(CloseCode::Removed) => "4010",
        Some(CloseCode::TooManyConnections) => "4029",
        None => "other",
    }
}

/// Refreshed at each scrape: what is cheaper to read then than to keep counting.
pub type Sample = Arc<dyn Fn(&Metrics) + Send + Sync>;

/// `GET /metrics`, for its own listener (`--metrics-addr`), which serves it with
/// the same accept loop and timeouts as the main one.
pub(crate) fn router(metrics: Arc<Metrics>, sample: Sample) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(
                |State((metrics, sample)): State<(Arc<Metrics>, Sample)>| async move {
                    sample(&metrics);
                    (
                        [(
                            CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                        .into_response()
                },
            ),
        )
        .with_state((metrics, sample))
}
