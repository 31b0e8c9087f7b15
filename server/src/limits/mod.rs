//! Limits that span connections: how many sockets one user may hold open
//! ([`UserSockets`]), and how often one address may open sockets or ask for guest
//! tokens ([`PerAddress`], with `governor`'s keyed token buckets); and the token
//! bucket each socket's messages go through ([`token_bucket`]).
//!
//! Per server: with Redis, a client spread over N servers gets N times the limits.

mod per_address;
pub(crate) mod token_bucket;
mod user_sockets;

pub(crate) use per_address::{AddressLimits, PerAddress};
pub(crate) use user_sockets::{Removal, UserSlot, UserSockets};
