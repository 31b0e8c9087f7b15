//! Integration tests: the real server on port 0, driven by real WebSocket and HTTP clients.

mod auth;
mod chat;
mod heartbeat;
mod helpers;
mod http;
mod identity;
mod lifecycle;
mod limits;
mod observability;
mod permissions;
mod presence;
mod redis;
mod server_api;
