//! WebSockets: admission (capacity, token, room, per-user slots) before the upgrade,
//! the handshake itself, and each socket's connection loop.

pub mod admission;
pub mod connection;
pub mod handshake;
