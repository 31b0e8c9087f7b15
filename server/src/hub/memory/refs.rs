//! Which message a `(user, ref)` pair already produced, for idempotent resends: the
//! in-memory engine's copy of what the Redis engine keeps in per-ref keys with a TTL.
//!
//! Bounded both ways: an entry is forgotten after [`REF_WINDOW`], and a room keeps
//! at most [`MAX_REFS`] (the oldest go first), so a flood of refs cannot grow a
//! room without limit.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_protocol::REF_WINDOW_SECS;

/// How long a `ref` is remembered.
pub(super) const REF_WINDOW: Duration = Duration::from_secs(REF_WINDOW_SECS);
/// The most refs one room remembers.
pub(super) const MAX_REFS: usize = 1024;

type Key = (Arc<str>, Box<str>);

#[derive(Default)]
pub(super) struct RecentRefs {
    ids: HashMap<Key, u64>,
    /// Insertion order, for expiry and the cap.
    order: VecDeque<(Instant, Key)>,
}

impl RecentRefs {
    /// The id `user`'s message with `reference` got, if it is still remembered.
    pub(super) fn get(&mut self, user: &Arc<str>, reference: &str, now: Instant) -> Option<u64> {
        self.expire(now);
        self.ids.get(&(user.clone(), Box::from(reference))).copied()
    }

    pub(super) fn insert(&mut self, user: Arc<str>, reference: &str, id: u64, now: Instant) {
        self.expire(now);
        if self.order.len() == MAX_REFS
            && let Some((_, oldest)) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        let key: Key = (user, Box::from(reference));
        if self.ids.insert(key.clone(), id).is_none() {
            self.order.push_back((now, key));
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front()
            && now.duration_since(*at) >= REF_WINDOW
        {
            let (_, key) = self.order.pop_front().expect("just seen");
            self.ids.remove(&key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ref_is_remembered_per_user_for_the_window() {
        let mut refs = RecentRefs::default();
        let start = Instant::now();
        let (alice, bob): (Arc<str>, Arc<str>) = (Arc::from("alice"), Arc::from("bob"));
        refs.insert(alice.clone(), "r1", 7, start);
        assert_eq!(refs.get(&alice, "r1", start), Some(7));
        assert_eq!(refs.get(&bob, "r1", start), None, "another user's ref");
        assert_eq!(refs.get(&alice, "r2", start), None);
        let almost = start + REF_WINDOW - Duration::from_millis(1);
        assert_eq!(refs.get(&alice, "r1", almost), Some(7));
        assert_eq!(
            refs.get(&alice, "r1", start + REF_WINDOW),
            None,
            "forgotten"
        );
        assert_eq!(refs.len(), 0);
    }

    #[test]
    fn a_room_remembers_at_most_max_refs() {
        let mut refs = RecentRefs::default();
        let now = Instant::now();
        let user: Arc<str> = Arc::from("flooder");
        for n in 0..MAX_REFS + 10 {
            refs.insert(user.clone(), &n.to_string(), n as u64, now);
        }
        assert_eq!(refs.len(), MAX_REFS);
        assert_eq!(refs.get(&user, "0", now), None, "the oldest went first");
        assert_eq!(refs.get(&user, "9", now), None);
        assert_eq!(refs.get(&user, "10", now), Some(10));
        let last = (MAX_REFS + 9).to_string();
        assert_eq!(refs.get(&user, &last, now), Some((MAX_REFS + 9) as u64));
    }
}
