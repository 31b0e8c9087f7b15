//! WebSockets: admission (capacity, token, room, per-user slots) before the upgrade,
//! the handshake itself, and each socket's connection loop.

pub(crate) mod admission;
pub(crate) mod connection;
pub(crate) mod handshake;
