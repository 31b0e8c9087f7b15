//! The Chorus server: authenticated WebSocket rooms plus the server-rendered web client.
//!
//! One message flows one way through these modules:
//!
//! ```text
//! socket ─▶ ws (admission: capacity, token, room name)
//!        ─▶ connection (read loop: parse, validate, rate-limit)
//!        ─▶ hub (id, history, serialize once; with Redis: script + Pub/Sub)
//!        ─▶ hub seats (fan out to bounded member queues)
//!        ─▶ connection (write loop: batch, flush, heartbeat, close codes) ─▶ socket
//! ```
//!
//! - [`config`]: command-line flags with `CHORUS_*` environment fallbacks.
//! - [`telemetry`]: `tracing` setup (human-readable or JSON lines).
//! - [`metrics`]: Prometheus metrics on `--metrics-addr`.
//! - [`startup`]: configuration into state, the listener and graceful shutdown;
//!   [`state`]: what every handler shares; [`routes`]: which handler serves which path.
//! - [`auth`]: JWT verification (HS256 with the secret; identity providers' keys from
//!   [`signing_keys`] and [`jwks`]) and guest tokens.
//! - [`ws`]: the WebSocket routes and admission checks.
//! - [`connection`]: one socket's loop, generic over `Sink`/`Stream`.
//! - [`rate_limit`]: the per-connection token bucket.
//! - [`hub`]: rooms, members, presence, message ids, history and fan-out, in memory
//!   ([`hub::memory`]) or shared through Redis ([`hub::redis_engine`]).
//! - [`api`]: `POST /api/token`, `GET /api/rooms`, `GET /healthz`.
//! - [`server_api`]: the application backend's API (publish, history, members,
//!   disconnect), authenticated by `--api-key`.
//! - [`permissions`]: where a token may join and post (`rooms`, `publish` claims).
//!
//! The wire format itself lives in [`chorus_protocol`], shared with the browser client.

pub mod auth;
pub mod config;
pub mod http;
pub mod hub;
pub mod limits;
pub mod observe;
pub mod startup;
pub mod state;
mod sync;
pub mod ws;
