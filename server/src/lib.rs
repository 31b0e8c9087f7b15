//! The Chorus server: authenticated WebSocket rooms plus the server-rendered web client.
//!
//! One message flows one way through these modules:
//!
//! ```text
//! socket ─▶ ws::admission (origin, rate, capacity, token, room, per-user slots)
//!        ─▶ ws::connection (read loop: parse, validate, rate-limit, heartbeat)
//!        ─▶ hub (the facade) ─▶ engine: hub::memory, or hub::redis (script + Pub/Sub)
//!        ─▶ hub::fanout (the same bytes into every bounded member queue)
//!        ─▶ ws::connection (write loop: batch, flush, deadlines, close codes) ─▶ socket
//! ```
//!
//! The wire format itself is the `chorus-protocol` crate, shared with the web client.
//!
//! # Layout
//!
//! - `main.rs`: the `chorus` binary: flags, logs, run until SIGTERM or Ctrl-C.
//! - [`config`]: command-line flags (with `CHORUS_*` fallbacks) in groups, and the
//!   settings each part of the server is built from.
//! - [`startup`]: configuration into state, the listener, graceful shutdown;
//!   `state`: what every handler shares.
//! - `http/`: the router, the accept loop with its timeouts, security headers,
//!   errors (`ApiError`, the one 429), client addresses, the `Origin` check, the web
//!   client's files, `browser_api` (guest tokens, the room list, health) and
//!   `backend_api` (publish, history, members, disconnect; `--api-key`).
//! - [`auth`]: token verification (HS256, identity providers' PEM keys and JWKS),
//!   guest tokens, permissions (`rooms`, `publish`), API keys.
//! - `ws/`: `admission` (what a socket must pass before it joins), `handshake` (the
//!   WebSocket upgrade), `connection/` (one socket's loop: socket, heartbeat, chat,
//!   replies, echo, gate).
//! - `limits/`: sockets per user, rates per client address, the per-connection token
//!   bucket.
//! - [`hub`]: rooms, members, presence, ids, history and fan-out, over two engines:
//!   [`hub::memory`] (one process) and [`hub::redis`] (Redis or a Redis Cluster).
//! - [`observe`]: logs (text or JSON lines, errors printed with their causes) and
//!   Prometheus metrics.
//! - `sync`: the one way a `std` mutex is locked.
//!
//! Tests: unit tests beside the code (`tests.rs` in a folder, or a `tests` module);
//! `tests/api/` runs the real server (on both engines), `tests/memory.rs` counts the
//! hub's allocations; the bench crate's `tests/load.rs` runs its generator at tiny scale.

pub mod auth;
pub mod config;
mod http;
pub mod hub;
mod limits;
pub mod observe;
pub mod startup;
mod state;
mod sync;
mod ws;
