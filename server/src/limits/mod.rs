//! Limits that span connections, and who they count: the client a request comes
//! from ([`client_address`], behind `--trusted-proxies` the one it forwards for).
//! How many sockets one user may hold open
//! ([`UserSockets`]), how many connections one address may hold open
//! ([`OpenPerAddress`]), and how often one address may open sockets or ask for
//! guest tokens ([`PerAddress`], with `governor`'s keyed token buckets), and how
//! often it may fail to authenticate to the API ([`FailedAuth`]); how many messages
//! one user and one address may publish across their sockets ([`PublishLimits`]);
//! and the token bucket each socket's frames go through ([`token_bucket`]).
//!
//! Per server: with Redis, a client spread over N servers gets N times the limits.

pub(crate) mod client_address;
mod failed_auth;
mod open_per_address;
mod per_address;
mod publish;
pub(crate) mod token_bucket;
mod user_sockets;

pub(crate) use failed_auth::FailedAuth;
pub(crate) use open_per_address::{AddressSlot, OpenPerAddress};
pub(crate) use per_address::{AddressFull, AddressLimits, PerAddress};
pub(crate) use publish::{PublishLimits, PublishRefused};
pub(crate) use user_sockets::{Removal, UserSlot, UserSockets};
