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
//! - `echo.rs`: the echo endpoint's loop; `settings.rs`: the limits and timers of each;
//! - `gate.rs`: the stop signal a connection's sends watch.

mod chat;
mod echo;
mod gate;
mod heartbeat;
mod replies;
mod settings;
mod socket;

pub(crate) use chat::run_chat;
pub(crate) use echo::run_echo;
pub(crate) use replies::Credentials;
pub(crate) use settings::ConnectionSettings;
pub(crate) use socket::{Ended, Socket};

#[cfg(test)]
mod tests;
