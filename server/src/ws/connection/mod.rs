//! One WebSocket after the upgrade: the read loop, the write loop, heartbeats,
//! rate limiting and close codes.
//!
//! A connection is a single task that `select!`s over the client's frames, its
//! queue from the hub, its timers and the server's shutdown signal. It runs over a
//! [`Socket`], generic over `Sink`/`Stream`, so it runs the same over a real socket
//! or over channels in a unit test. Every write has a deadline: a peer that stops
//! reading cannot pin the task forever.
//!
//! - `socket.rs`: the socket, with write deadlines and the close handshake;
//! - `heartbeat.rs`: pings, the silence limit and the token's end, on one timer;
//! - `chat.rs`: a chat member's loop; `replies.rs`: what each of its frames leads to;
//! - `echo.rs`: the echo endpoint's loop;
//! - `gate.rs`: the stop signal a connection's sends watch.

use std::sync::Arc;
use std::time::Duration;

use chorus_protocol::CloseCode;

use crate::observe::metrics::Metrics;

mod chat;
mod echo;
mod gate;
mod heartbeat;
mod replies;
mod socket;

pub use chat::{Credentials, run_chat};
pub use echo::run_echo;
pub use socket::{MessageSocket, Socket};

/// Per-connection limits and timers.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub max_message_bytes: usize,
    pub rate_limit: u32,
    pub rate_limit_burst: u32,
    /// Longest a single write (or batch of writes) may block.
    pub write_timeout: Duration,
    /// Where refused frames are counted.
    pub metrics: Arc<Metrics>,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The server closed it with this code.
    Closed(CloseCode),
    /// The client closed it or the socket broke.
    ClientGone,
    /// A write did not complete in time; the socket was dropped without a close frame.
    WriteStalled,
}

#[cfg(test)]
mod tests;
