//! How many sockets one user may hold open, and the switch that closes them all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::sync::lock;

/// Open sockets per user (`sub`), capped at a maximum; and the switch that closes
/// all of one user's sockets (server API `disconnect`).
#[derive(Debug)]
pub struct UserSockets {
    max: usize,
    open: Mutex<HashMap<String, UserEntry>>,
}

#[derive(Debug)]
struct UserEntry {
    count: usize,
    /// Every socket of the user watches it.
    removal: Removal,
}

/// Tells a user's sockets that the user was removed, and why.
#[derive(Debug, Clone, Default)]
pub struct Removal {
    token: CancellationToken,
    reason: Arc<OnceLock<Box<str>>>,
}

impl Removal {
    /// Completes when the user is removed.
    pub async fn removed(&self) {
        self.token.cancelled().await
    }

    pub fn is_removed(&self) -> bool {
        self.token.is_cancelled()
    }

    /// What the application said, for the close frame.
    pub fn reason(&self) -> Option<&str> {
        self.reason.get().map(|reason| &**reason)
    }

    fn remove(&self, reason: &str) {
        let _ = self.reason.set(Box::from(reason));
        self.token.cancel();
    }
}

/// One socket's place in its user's count; given back on drop.
#[derive(Debug)]
pub struct UserSlot {
    sockets: Arc<UserSockets>,
    user_id: String,
    removal: Removal,
}

impl UserSlot {
    /// Says when (and why) this socket's user is removed.
    pub fn removal(&self) -> &Removal {
        &self.removal
    }
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
        let mut open = lock(&self.open);
        let entry = open.entry(user_id.to_owned()).or_insert_with(|| UserEntry {
            count: 0,
            removal: Removal::default(),
        });
        if entry.count >= self.max {
            if entry.count == 0 {
                open.remove(user_id);
            }
            return None;
        }
        entry.count += 1;
        Some(UserSlot {
            sockets: self.clone(),
            user_id: user_id.to_owned(),
            removal: entry.removal.clone(),
        })
    }

    /// Closes every open socket of `user_id` (each sees its slot's [`Removal`]) with
    /// `reason`; sockets opened after this are not affected. Returns how many were told.
    pub fn remove(&self, user_id: &str, reason: &str) -> usize {
        let mut open = lock(&self.open);
        let Some(entry) = open.get_mut(user_id) else {
            return 0;
        };
        std::mem::take(&mut entry.removal).remove(reason);
        entry.count
    }

    /// Users with at least one socket (for tests: nobody is left behind).
    pub fn users(&self) -> usize {
        lock(&self.open).len()
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.sockets.open);
        if let Some(entry) = open.get_mut(&self.user_id) {
            entry.count -= 1;
            if entry.count == 0 {
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

    #[test]
    fn removing_a_user_tells_its_open_sockets_only() {
        let sockets = UserSockets::new(4);
        let (first, second) = (
            sockets.try_open("mallory").unwrap(),
            sockets.try_open("mallory").unwrap(),
        );
        let bystander = sockets.try_open("alice").unwrap();
        assert_eq!(sockets.remove("mallory", "spam"), 2);
        assert!(first.removal().is_removed() && second.removal().is_removed());
        assert_eq!(first.removal().reason(), Some("spam"));
        assert!(!bystander.removal().is_removed());
        let later = sockets.try_open("mallory").unwrap();
        assert!(
            !later.removal().is_removed(),
            "a later socket is not removed"
        );
        assert_eq!(sockets.remove("nobody", "spam"), 0);
        drop((first, second, later, bystander));
        assert_eq!(sockets.users(), 0);
        let nobody = UserSockets::new(0);
        assert!(nobody.try_open("alice").is_none());
        assert_eq!(nobody.users(), 0);
    }
}
