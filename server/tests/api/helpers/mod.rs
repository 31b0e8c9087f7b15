//! What the integration tests drive the server with, one module each:
//!
//! - `app`: `spawn_app()`, the real server on port 0 in this process, and `TestApp`
//!   to join rooms, issue tokens and call the API;
//! - `engines`: `both_engines!`, one test on the memory and the Redis engine, and
//!   `EngineApp::second()`, another server on the same Redis;
//! - `ws_client`: `Client`, a WebSocket client that asserts on exact frames;
//! - `http_client`: `http_request`, a one-shot HTTP/1.1 request;
//! - `process`: `start_binary`, the `chorus` binary as a child process;
//! - `raw_ws`: `RawSocket`, a WebSocket written byte by byte, for hostile clients;
//! - `redis_server`: a `redis-server` of a test's own, and `Node`, a `chorus`
//!   process using it; `redis_cluster`: a three-master Redis Cluster of its own.

mod app;
mod engines;
mod http_client;
mod process;
mod raw_ws;
mod redis_cluster;
mod redis_server;
mod ws_client;

use std::time::Duration;

pub(crate) use app::{TestApp, spawn_app_with};
pub(crate) use engines::{Engine, EngineApp, spawn_on};
pub(crate) use http_client::{
    HttpResponse, connect_from, http_request, http_request_with, request_over, status_from,
};
pub(crate) use process::{Binary, start_binary};
pub(crate) use raw_ws::{OP_PING, RawSocket};
pub(crate) use redis_cluster::RedisCluster;
pub(crate) use redis_server::{Node, RedisServer, RedisUrl, free_port};
pub(crate) use ws_client::Client;

pub(crate) const SECRET: &str = "integration-test-secret-of-32-bytes";
/// The `--api-key` every test server accepts.
pub(crate) const API_KEY: &str = "integration-test-api-key-of-32-chars";
/// Longest wait for anything the server should do promptly.
pub(crate) const PATIENCE: Duration = Duration::from_secs(5);

/// `GET /api/rooms` on the server at `addr` (started with [`SECRET`]) as a member
/// who may join every room sees it.
pub(crate) async fn every_room(addr: std::net::SocketAddr) -> HttpResponse {
    let token = chorus_server::auth::Auth::new(SECRET.as_bytes())
        .issue("observer", None, Duration::from_secs(3600))
        .token;
    let bearer = format!("Bearer {token}");
    http_request_with(
        addr,
        "GET",
        "/api/rooms",
        &[("Authorization", &bearer)],
        None,
    )
    .await
}
