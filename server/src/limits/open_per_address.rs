//! How many connections one client address may hold open at once (IPv6 by /64, as
//! the rates are counted): WebSockets, and HTTP connections still in the accept
//! loop. A rate limit alone lets one address open a few a second until it holds
//! every connection the server allows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::per_address::bucket_of;
use crate::sync::lock;

/// Open connections per client address, capped at a maximum. Memory follows the
/// connections: an address is forgotten when its last one closes.
#[derive(Debug)]
pub struct OpenPerAddress {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its address's count; given back on drop.
#[derive(Debug)]
pub struct AddressSlot {
    counts: Arc<OpenPerAddress>,
    bucket: IpAddr,
}

impl OpenPerAddress {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(OpenPerAddress {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `address`, or `None` if its address
    /// (its /64, for IPv6) holds `max` already.
    pub fn try_open(self: &Arc<Self>, address: IpAddr) -> Option<AddressSlot> {
        let bucket = bucket_of(address);
        let mut open = lock(&self.open);
        let count = open.entry(bucket).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: self.clone(),
            bucket,
        })
    }

    /// Addresses holding at least one connection (for tests: nobody is left behind).
    pub fn addresses(&self) -> usize {
        lock(&self.open).len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.counts.open);
        if let Some(count) = open.get_mut(&self.bucket) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.bucket);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_max_and_gets_slots_back() {
        let counts = OpenPerAddress::new(2);
        let one: IpAddr = "203.0.113.1".parse().unwrap();
        let first = counts.try_open(one).unwrap();
        let second = counts.try_open(one).unwrap();
        assert!(counts.try_open(one).is_none());
        assert!(counts.try_open("203.0.113.2".parse().unwrap()).is_some());
        assert!(
            counts
                .try_open("::ffff:203.0.113.1".parse().unwrap())
                .is_none(),
            "an IPv4-mapped address is the IPv4 address"
        );
        drop(first);
        let third = counts.try_open(one).unwrap();
        drop((second, third));
        assert_eq!(
            counts.addresses(),
            0,
            "no entry left for addresses that left"
        );
    }

    #[test]
    fn ipv6_hosts_of_one_64_share_a_count() {
        let counts = OpenPerAddress::new(1);
        let _held = counts.try_open("2001:db8:0:1::a".parse().unwrap()).unwrap();
        assert!(
            counts
                .try_open("2001:db8:0:1::b".parse().unwrap())
                .is_none()
        );
        assert!(
            counts
                .try_open("2001:db8:0:2::a".parse().unwrap())
                .is_some()
        );
    }
}
