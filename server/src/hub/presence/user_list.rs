//! The member list a `welcome` carries, kept serialized.
//!
//! Every joiner gets the whole list, so in a join storm of N members the lists add
//! up to O(N²) entries. [`Roll`] keeps a room's members in welcome order, so no
//! join sorts, and keeps the list's JSON current entry by entry, so no join writes
//! the whole list again; joins with no change in between share one copy.

use std::ops::Range;
use std::sync::Arc;

use chorus_protocol::{Member, member_entry};

/// How many members one frame lists: a `welcome` lists the first ones and `users`
/// frames right after it the rest. Every socket's write buffer keeps the size of the
/// largest frame it ever sent, so no frame may grow with the room.
pub const USERS_PER_FRAME: usize = 200;

/// A JSON array of members (`[{"user_id":…,"name":…},…]`), sorted by name then
/// user id, and where each frame's share of it begins and ends; cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserList {
    json: Arc<str>,
    /// Byte ranges of `json` holding [`USERS_PER_FRAME`] entries each (the last
    /// fewer), without the brackets.
    shares: Arc<[Range<usize>]>,
}

impl UserList {
    /// The list of `members`, sorted.
    pub fn from_members(members: &mut [Member]) -> Self {
        members.sort_by(|a, b| (&a.name, &a.user_id).cmp(&(&b.name, &b.user_id)));
        let mut json = String::from("[");
        let mut lengths = Vec::with_capacity(members.len());
        for (at, member) in members.iter().enumerate() {
            if at > 0 {
                json.push(',');
            }
            let entry = member_entry(&member.user_id, &member.name);
            lengths.push(entry.len());
            json.push_str(&entry);
        }
        json.push(']');
        UserList::new(Arc::from(json), lengths)
    }

    /// `json` whose entries are `lengths` bytes long, in order.
    fn new(json: Arc<str>, lengths: impl IntoIterator<Item = usize>) -> Self {
        let mut shares: Vec<Range<usize>> = Vec::new();
        let mut at = 1;
        for (index, length) in lengths.into_iter().enumerate() {
            match shares.last_mut() {
                Some(share) if index % USERS_PER_FRAME != 0 => share.end = at + length,
                _ => shares.push(at..at + length),
            }
            at += length + 1;
        }
        UserList {
            json,
            shares: shares.into(),
        }
    }

    /// Each frame's share of the list: comma-separated entries, without brackets.
    pub fn shares(&self) -> impl Iterator<Item = &str> {
        self.shares.iter().map(|share| &self.json[share.clone()])
    }

    /// The members, read back (for tests and diagnostics).
    pub fn members(&self) -> Vec<Member> {
        serde_json::from_str(&self.json).expect("a user list is valid JSON")
    }
}

impl Default for UserList {
    fn default() -> Self {
        UserList::new(Arc::from("[]"), [])
    }
}

/// A room's present users in welcome order, with the JSON of their list kept up to
/// date entry by entry: a join writes its own entry and moves the text after it,
/// instead of writing every entry again.
#[derive(Debug)]
pub(crate) struct Roll {
    /// (name, user id, length of its JSON entry), sorted: the order welcomes list
    /// them in. A sorted `Vec` rather than a tree: a room of one costs one small
    /// allocation, and an insertion moves no more than the JSON's does.
    order: Vec<(Arc<str>, Arc<str>, usize)>,
    /// The list's JSON, always current.
    json: String,
    /// A snapshot of `json` given out since the last change.
    cached: Option<UserList>,
}

impl Default for Roll {
    fn default() -> Self {
        Roll {
            order: Vec::new(),
            json: "[]".to_owned(),
            cached: None,
        }
    }
}

impl Roll {
    pub(crate) fn insert(&mut self, user_id: &Arc<str>, name: &Arc<str>) {
        let Err(index) = self.find(user_id, name) else {
            return;
        };
        let entry = member_entry(user_id, name);
        if self.order.is_empty() {
            self.json.insert_str(1, &entry);
        } else if index < self.order.len() {
            // Before the entry now at `index`: "new," goes in front of it.
            self.json
                .insert_str(self.start_of(index), &format!("{entry},"));
        } else {
            // Last: ",new" goes before the closing bracket.
            self.json
                .insert_str(self.json.len() - 1, &format!(",{entry}"));
        }
        self.order
            .insert(index, (name.clone(), user_id.clone(), entry.len()));
        self.cached = None;
    }

    pub(crate) fn remove(&mut self, user_id: &Arc<str>, name: &Arc<str>) {
        let Ok(index) = self.find(user_id, name) else {
            return;
        };
        let start = self.start_of(index);
        let len = self.order[index].2;
        let range = if self.order.len() == 1 {
            start..start + len
        } else if index + 1 < self.order.len() {
            // With the comma after it.
            start..start + len + 1
        } else {
            // The last one: with the comma before it.
            start - 1..start + len
        };
        self.json.replace_range(range, "");
        self.order.remove(index);
        self.cached = None;
    }

    /// Where `(name, user_id)` is, or would go.
    fn find(&self, user_id: &str, name: &str) -> Result<usize, usize> {
        self.order.binary_search_by(|(other_name, other_id, _)| {
            (&**other_name, &**other_id).cmp(&(name, user_id))
        })
    }

    /// Where the entry at `index` starts (or would start) in the JSON.
    fn start_of(&self, index: usize) -> usize {
        1 + self.order[..index]
            .iter()
            .map(|(_, _, len)| len + 1)
            .sum::<usize>()
    }

    pub(crate) fn list(&mut self) -> UserList {
        let (json, order) = (&self.json, &self.order);
        self.cached
            .get_or_insert_with(|| {
                UserList::new(
                    Arc::from(json.as_str()),
                    order.iter().map(|(_, _, len)| *len),
                )
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user_id: &str, name: &str) -> Member {
        Member {
            user_id: user_id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_roll_lists_by_name_then_user_id_and_follows_changes() {
        let mut roll = Roll::default();
        assert_eq!(roll.list(), UserList::default());
        assert_eq!(roll.list().shares().count(), 0);
        let ids: Vec<(Arc<str>, Arc<str>)> = [
            ("z", "zoe"),
            ("b2", "bob"),
            ("b1", "bob"),
            ("q", "\"quoted\""),
        ]
        .iter()
        .map(|(id, name)| (Arc::from(*id), Arc::from(*name)))
        .collect();
        for (id, name) in &ids {
            roll.insert(id, name);
        }
        let first = roll.list();
        assert_eq!(
            first.members(),
            [
                member("q", "\"quoted\""),
                member("b1", "bob"),
                member("b2", "bob"),
                member("z", "zoe")
            ]
        );
        assert_eq!(
            first.shares().collect::<Vec<_>>(),
            [
                r#"{"user_id":"q","name":"\"quoted\""},{"user_id":"b1","name":"bob"},{"user_id":"b2","name":"bob"},{"user_id":"z","name":"zoe"}"#
            ]
        );
        // Listing the same user again changes nothing; removing does.
        roll.insert(&ids[0].0, &ids[0].1);
        assert!(Arc::ptr_eq(&first.json, &roll.list().json), "cached");
        roll.remove(&ids[1].0, &ids[1].1);
        roll.remove(&Arc::from("nobody"), &Arc::from("x"));
        assert_eq!(roll.list().members().len(), 3);
        assert_eq!(first.members().len(), 4, "a list given out stays as it was");
    }

    proptest::proptest! {
        /// Whatever joins and leaves come, the kept JSON is the list written afresh.
        #[test]
        fn a_roll_edited_entry_by_entry_matches_the_list_written_afresh(
            changes in proptest::collection::vec((proptest::bool::ANY, 0..12u8, 0..3u8), 0..80)
        ) {
            let mut roll = Roll::default();
            let mut present = std::collections::BTreeMap::new();
            for (join, id, name) in changes {
                let (user_id, name): (Arc<str>, Arc<str>) =
                    (Arc::from(format!("u{id}")), Arc::from(["ann", "bo\"b", "ćy"][name as usize]));
                if join {
                    present.entry(user_id.clone()).or_insert(name.clone());
                    // A user keeps the name it joined with.
                    let name = present[&user_id].clone();
                    roll.insert(&user_id, &name);
                } else if let Some(name) = present.remove(&user_id) {
                    roll.remove(&user_id, &name);
                }
                let mut members: Vec<Member> = present
                    .iter()
                    .map(|(id, name)| member(id, name))
                    .collect();
                proptest::prop_assert_eq!(roll.list(), UserList::from_members(&mut members));
            }
        }
    }

    #[test]
    fn a_long_list_is_shared_out_in_frames_of_a_bounded_size() {
        let mut members: Vec<Member> = (0..USERS_PER_FRAME * 2 + 3)
            .map(|n| member(&format!("u{n:04}"), &format!("n{n:04}")))
            .collect();
        let list = UserList::from_members(&mut members.clone());
        let shares: Vec<Vec<Member>> = list
            .shares()
            .map(|share| serde_json::from_str(&format!("[{share}]")).unwrap())
            .collect();
        assert_eq!(
            shares.iter().map(Vec::len).collect::<Vec<_>>(),
            [USERS_PER_FRAME, USERS_PER_FRAME, 3]
        );
        assert_eq!(shares.concat(), members);
        // A roll shares out the same way.
        let mut roll = Roll::default();
        for member in members.drain(..) {
            roll.insert(&Arc::from(member.user_id), &Arc::from(member.name));
        }
        assert_eq!(roll.list(), list);
    }

    #[test]
    fn a_list_from_members_is_sorted_like_a_roll() {
        let mut members = vec![
            member("z", "zoe"),
            member("a", "alice"),
            member("a2", "alice"),
        ];
        let list = UserList::from_members(&mut members);
        assert_eq!(
            list.members(),
            [
                member("a", "alice"),
                member("a2", "alice"),
                member("z", "zoe")
            ]
        );
        assert_eq!(UserList::default().members(), []);
    }
}
