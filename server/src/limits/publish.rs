//! How many chat messages one user, and one client address, may publish a second
//! whatever number of sockets they spread them over: each connection has its own
//! rate as well (`--rate-limit`), but sixteen sockets would otherwise give one user
//! sixteen times it.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::per_address::{PerAddress, RatePerKey};

/// The per-user and per-address publish rates.
pub struct PublishLimits {
    per_user: RatePerKey<String>,
    per_address: PerAddress,
    user_rate: u32,
    address_rate: u32,
}

/// Which publish rate a message went over, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishRefused {
    /// The user's, across its connections: `per_second` a second.
    User { wait: Duration, per_second: u32 },
    /// The client address's, across its users: `per_second` a second.
    Address { wait: Duration, per_second: u32 },
}

impl PublishLimits {
    /// `user_rate` messages a second per user (`user_burst` at once), and
    /// `address_rate` per client address (`address_burst` at once).
    pub fn new(user_rate: u32, user_burst: u32, address_rate: u32, address_burst: u32) -> Self {
        let second = Duration::from_secs(1);
        PublishLimits {
            per_user: RatePerKey::new(user_rate, second, user_burst),
            per_address: PerAddress::new(address_rate, second, address_burst),
            user_rate,
            address_rate,
        }
    }

    /// Counts one message of `user` from `address`.
    pub fn check(&self, user: &String, address: IpAddr) -> Result<(), PublishRefused> {
        self.per_user
            .check(user)
            .map_err(|wait| PublishRefused::User {
                wait,
                per_second: self.user_rate,
            })?;
        self.per_address
            .check(address)
            .map_err(|wait| PublishRefused::Address {
                wait,
                per_second: self.address_rate,
            })
    }
}

impl fmt::Debug for PublishLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishLimits")
            .field("user_rate", &self.user_rate)
            .field("address_rate", &self.address_rate)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_and_an_address_each_have_one_rate_for_all_their_sockets() {
        let limits = PublishLimits::new(1, 2, 1, 3);
        let here: IpAddr = "203.0.113.1".parse().unwrap();
        let alice = "alice".to_owned();
        assert!(limits.check(&alice, here).is_ok());
        assert!(limits.check(&alice, here).is_ok());
        assert!(
            matches!(
                limits.check(&alice, "203.0.113.9".parse().unwrap()),
                Err(PublishRefused::User { per_second: 1, .. })
            ),
            "from anywhere"
        );
        // Bob has his own rate, but shares the address's, of which two went to alice.
        let bob = "bob".to_owned();
        assert!(limits.check(&bob, here).is_ok());
        assert!(matches!(
            limits.check(&bob, here),
            Err(PublishRefused::Address { per_second: 1, .. })
        ));
    }
}
