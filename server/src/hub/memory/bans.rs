//! Users whose joins are refused until a time (server API `disconnect` with
//! `ban_seconds`): the in-memory engine's copy of the Redis engine's ban keys.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::hub::engine::MAX_BAN;
use crate::sync::lock;

#[derive(Default)]
pub(super) struct Bans {
    until: Mutex<HashMap<Box<str>, Instant>>,
}

impl Bans {
    /// Refuses `user_id` for `ban` from now (replacing any earlier ban).
    pub(super) fn ban(&self, user_id: &str, ban: Duration) {
        let now = Instant::now();
        let mut until = lock(&self.until);
        // Bans come from the application's backend, not from clients; forgetting the
        // expired ones here still keeps the map to the bans in force.
        until.retain(|_, end| *end > now);
        until.insert(Box::from(user_id), now + ban.min(MAX_BAN));
    }

    pub(super) fn is_banned(&self, user_id: &str) -> bool {
        lock(&self.until)
            .get(user_id)
            .is_some_and(|end| *end > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_lasts_its_time() {
        let bans = Bans::default();
        bans.ban("mallory", Duration::from_secs(60));
        bans.ban("brief", Duration::ZERO);
        assert!(bans.is_banned("mallory"));
        assert!(!bans.is_banned("brief"));
        assert!(!bans.is_banned("alice"));
        bans.ban("forever", Duration::MAX);
        assert!(bans.is_banned("forever"), "capped, not overflowed");
    }
}
