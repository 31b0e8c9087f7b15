//! How often one client address may open sockets or ask for guest tokens.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{AddressSlot, FailedAuth, OpenPerAddress};

/// The per-address limits, and whom to believe about addresses.
pub struct AddressLimits {
    pub upgrades: PerAddress,
    pub guest_tokens: PerAddress,
    /// Failed API authentications.
    pub failed_auth: FailedAuth,
    /// WebSockets held open, by the client (forwarded, behind a trusted proxy).
    pub open_sockets: Arc<OpenPerAddress>,
    /// HTTP connections held open, by the peer (proxies not counted).
    pub open_http_connections: Arc<OpenPerAddress>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl AddressLimits {
    /// The client a request comes from (see [`super::client_address`]).
    pub fn client(&self, peer: std::net::SocketAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        super::client_address::client_address(peer, headers, &self.trusted_proxies)
    }

    /// A slot for one more HTTP connection from `peer`; none is needed for a trusted
    /// proxy, which carries many clients' connections (each client is counted by its
    /// sockets and rates instead).
    pub fn open_http_connection(&self, peer: IpAddr) -> Result<Option<AddressSlot>, AddressFull> {
        let peer = super::client_address::canonical(peer);
        if self.trusted_proxies.iter().any(|net| net.contains(&peer)) {
            return Ok(None);
        }
        self.open_http_connections
            .try_open(peer)
            .map(Some)
            .ok_or(AddressFull)
    }
}

/// The address holds as many connections open as it may.
#[derive(Debug)]
pub struct AddressFull;

/// A rate limit per key (a user, an address), with memory bounded by forgetting
/// keys whose bucket has refilled.
pub(super) struct RatePerKey<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

/// How often (in checks) keys with a full bucket are forgotten.
const FORGET_EVERY: u64 = 1024;

impl<K: Hash + Eq + Clone> RatePerKey<K> {
    /// `per_period` requests every `period`, `burst` at once.
    pub(super) fn new(per_period: u32, period: Duration, burst: u32) -> Self {
        let interval = period / per_period.max(1);
        let quota = Quota::with_period(interval)
            .expect("a positive period")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("at least 1"));
        RatePerKey {
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one request for `key`: `Err(wait)` when over the limit.
    pub(super) fn check(&self, key: &K) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// A rate limit per client address (IPv6 by /64: one host is given a whole /64).
pub struct PerAddress(RatePerKey<IpAddr>);

impl PerAddress {
    /// `per_period` requests every `period`, `burst` at once.
    pub fn new(per_period: u32, period: Duration, burst: u32) -> Self {
        PerAddress(RatePerKey::new(per_period, period, burst))
    }

    /// Counts one request from `address`: `Err(wait)` when over the limit.
    pub fn check(&self, address: IpAddr) -> Result<(), Duration> {
        self.0.check(&bucket_of(address))
    }
}

/// The key an address is counted under.
pub(super) fn bucket_of(address: IpAddr) -> IpAddr {
    match super::client_address::canonical(address) {
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            IpAddr::V6(Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            ))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_burst_and_ipv6_counts_by_64() {
        let limit = PerAddress::new(1, Duration::from_secs(60), 3);
        let one: IpAddr = "203.0.113.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limit.check(one).is_ok());
        }
        let wait = limit.check(one).unwrap_err();
        assert!(
            wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert!(limit.check("203.0.113.2".parse().unwrap()).is_ok());
        // Two hosts of one /64 share a bucket; another /64 does not.
        for _ in 0..3 {
            assert!(limit.check("2001:db8:0:1::a".parse().unwrap()).is_ok());
        }
        assert!(limit.check("2001:db8:0:1::b".parse().unwrap()).is_err());
        assert!(limit.check("2001:db8:0:2::a".parse().unwrap()).is_ok());
        // An IPv4-mapped address is the IPv4 address.
        assert!(limit.check("::ffff:203.0.113.1".parse().unwrap()).is_err());
    }
}
