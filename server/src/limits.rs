//! Limits that span connections: how many sockets one user may hold open.
//!
//! Per server: with Redis, a user spread over N servers may hold N times the limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Open sockets per user (`sub`), capped at a maximum.
#[derive(Debug)]
pub struct UserSockets {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One socket's place in its user's count; given back on drop.
#[derive(Debug)]
pub struct UserSlot {
    sockets: Arc<UserSockets>,
    user_id: String,
}

impl UserSockets {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(UserSockets {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more socket of `user_id`, or `None` if it has `max` already.
    pub fn try_open(self: &Arc<Self>, user_id: &str) -> Option<UserSlot> {
        let mut open = self
            .open
            .lock()
            .expect("the count is never left inconsistent");
        let count = open.entry(user_id.to_owned()).or_insert(0);
        if *count >= self.max {
            if *count == 0 {
                open.remove(user_id);
            }
            return None;
        }
        *count += 1;
        Some(UserSlot {
            sockets: self.clone(),
            user_id: user_id.to_owned(),
        })
    }

    /// Users with at least one socket (for tests: nobody is left behind).
    pub fn users(&self) -> usize {
        self.open.lock().expect("consistent").len()
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut open = self.sockets.open.lock().expect("consistent");
        if let Some(count) = open.get_mut(&self.user_id) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_max_sockets_and_gets_slots_back() {
        let sockets = UserSockets::new(2);
        let first = sockets.try_open("alice").unwrap();
        let second = sockets.try_open("alice").unwrap();
        assert!(sockets.try_open("alice").is_none());
        assert!(sockets.try_open("bob").is_some(), "per user");
        drop(first);
        let third = sockets.try_open("alice").unwrap();
        drop((second, third));
        assert_eq!(sockets.users(), 0, "no entry left for users who left");
        let nobody = UserSockets::new(0);
        assert!(nobody.try_open("alice").is_none());
        assert_eq!(nobody.users(), 0);
    }
}
