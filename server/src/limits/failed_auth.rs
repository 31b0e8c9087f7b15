//! How often one client address may fail to authenticate to the HTTP API before it
//! is refused without its credentials being looked at, for a while: guessing keys
//! or tokens, or making the server verify signatures, is bounded per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::per_address::bucket_of;
use crate::sync::lock;

/// The window failures are counted in.
const WINDOW: Duration = Duration::from_secs(60);
/// Past this many addresses, those whose window has ended are forgotten; past it
/// even then, all are (a reset, rather than memory without bound).
const PRUNE_ABOVE: usize = 4096;
const FORGET_ALL_ABOVE: usize = 100_000;

/// Failed authentications per address (IPv6 by /64) in a one-minute window that
/// starts with the first: at `limit` the address is refused until the window ends.
/// Successes cost nothing.
pub struct FailedAuth {
    limit: u32,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

struct Failures {
    count: u32,
    since: Instant,
}

impl FailedAuth {
    /// `limit` failures a minute per address.
    pub fn new(limit: u32) -> Self {
        FailedAuth {
            limit,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// How long `address` is still refused, if it is.
    pub fn blocked_for(&self, address: IpAddr) -> Option<Duration> {
        self.blocked_for_at(address, Instant::now())
    }

    fn blocked_for_at(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let failures = lock(&self.failures);
        let failed = failures.get(&bucket_of(address))?;
        let ends = failed.since + WINDOW;
        (failed.count >= self.limit && ends > now).then(|| ends - now)
    }

    /// Counts a failed authentication from `address`.
    pub fn failed(&self, address: IpAddr) {
        self.failed_at(address, Instant::now());
    }

    fn failed_at(&self, address: IpAddr, now: Instant) {
        let mut failures = lock(&self.failures);
        if failures.len() >= PRUNE_ABOVE {
            failures.retain(|_, failed| failed.since + WINDOW > now);
            if failures.len() >= FORGET_ALL_ABOVE {
                failures.clear();
            }
        }
        let failed = failures.entry(bucket_of(address)).or_insert(Failures {
            count: 0,
            since: now,
        });
        if failed.since + WINDOW <= now {
            *failed = Failures {
                count: 0,
                since: now,
            };
        }
        failed.count = failed.count.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_at_its_limit_is_refused_until_the_window_ends() {
        let limit = FailedAuth::new(2);
        let start = Instant::now();
        let one: IpAddr = "203.0.113.1".parse().unwrap();
        limit.failed_at(one, start);
        assert_eq!(limit.blocked_for_at(one, start), None, "one failure");
        limit.failed_at(one, start + Duration::from_secs(10));
        assert_eq!(
            limit.blocked_for_at(one, start + Duration::from_secs(20)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(
            limit.blocked_for_at("203.0.113.2".parse().unwrap(), start),
            None
        );
        // The window ends, and counting starts over.
        assert_eq!(limit.blocked_for_at(one, start + WINDOW), None);
        limit.failed_at(one, start + WINDOW);
        assert_eq!(limit.blocked_for_at(one, start + WINDOW), None);
    }

    #[test]
    fn ipv6_hosts_of_one_64_fail_together() {
        let limit = FailedAuth::new(1);
        limit.failed("2001:db8:0:1::a".parse().unwrap());
        assert!(
            limit
                .blocked_for("2001:db8:0:1::b".parse().unwrap())
                .is_some()
        );
        assert!(
            limit
                .blocked_for("2001:db8:0:2::a".parse().unwrap())
                .is_none()
        );
    }
}
