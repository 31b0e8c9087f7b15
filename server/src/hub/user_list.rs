//! The member list a `welcome` carries, kept serialized.
//!
//! Every joiner gets the whole list, so in a join storm of N members the lists add
//! up to O(N²) entries. [`Roll`] keeps a room's members in welcome order, so no
//! join sorts, and keeps the list's JSON current entry by entry, so no join writes
//! the whole list again; joins with no change in between share one copy.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde::ser::Serializer;

use app::protocol::Member;

/// A JSON array of members (`[{"user_id":…,"name":…},…]`), sorted by name then
/// user id; cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserList(Arc<str>);

impl UserList {
    /// The list of `members`, sorted.
    pub fn from_members(members: &mut [Member]) -> Self {
        members.sort_by(|a, b| (&a.name, &a.user_id).cmp(&(&b.name, &b.user_id)));
        let refs = members.iter().map(|member| MemberRef {
            user_id: &member.user_id,
            name: &member.name,
        });
        UserList::write(refs)
    }

    fn write<'a>(members: impl Iterator<Item = MemberRef<'a>>) -> Self {
        let mut json = Vec::new();
        serde_json::Serializer::new(&mut json)
            .collect_seq(members)
            .expect("writing to a Vec cannot fail");
        UserList(Arc::from(
            String::from_utf8(json).expect("serde_json writes UTF-8"),
        ))
    }

    /// The JSON array.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// The members, read back (for tests and diagnostics).
    pub fn members(&self) -> Vec<Member> {
        serde_json::from_str(&self.0).expect("a user list is valid JSON")
    }
}

impl Default for UserList {
    fn default() -> Self {
        UserList(Arc::from("[]"))
    }
}

#[derive(Serialize)]
struct MemberRef<'a> {
    user_id: &'a str,
    name: &'a str,
}

/// A room's present users in welcome order, with the JSON of their list kept up to
/// date entry by entry: a join writes its own entry and moves the text after it,
/// instead of writing every entry again.
#[derive(Debug)]
pub(super) struct Roll {
    /// (name, user id) in the order welcomes list them → the length of its JSON.
    order: BTreeMap<(Arc<str>, Arc<str>), usize>,
    /// The list's JSON, always current.
    json: String,
    /// A snapshot of `json` given out since the last change.
    cached: Option<UserList>,
}

impl Default for Roll {
    fn default() -> Self {
        Roll {
            order: BTreeMap::new(),
            json: "[]".to_owned(),
            cached: None,
        }
    }
}

impl Roll {
    pub(super) fn insert(&mut self, user_id: &Arc<str>, name: &Arc<str>) {
        let key = (name.clone(), user_id.clone());
        if self.order.contains_key(&key) {
            return;
        }
        let entry = serde_json::to_string(&MemberRef { user_id, name })
            .expect("a member always serializes");
        let (start, index) = self.start_of(&key);
        if self.order.is_empty() {
            self.json.insert_str(1, &entry);
        } else if index < self.order.len() {
            // Before the entry now at `start`: "new," goes in front of it.
            self.json.insert_str(start, &format!("{entry},"));
        } else {
            // Last: ",new" goes before the closing bracket.
            self.json
                .insert_str(self.json.len() - 1, &format!(",{entry}"));
        }
        self.order.insert(key, entry.len());
        self.cached = None;
    }

    pub(super) fn remove(&mut self, user_id: &Arc<str>, name: &Arc<str>) {
        let key = (name.clone(), user_id.clone());
        let Some(&len) = self.order.get(&key) else {
            return;
        };
        let (start, index) = self.start_of(&key);
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
        self.order.remove(&key);
        self.cached = None;
    }

    /// Where the entry for `key` starts (or would start) in the JSON, and its index.
    fn start_of(&self, key: &(Arc<str>, Arc<str>)) -> (usize, usize) {
        self.order
            .range(..key)
            .fold((1, 0), |(start, index), (_, len)| {
                (start + len + 1, index + 1)
            })
    }

    pub(super) fn list(&mut self) -> UserList {
        let json = &self.json;
        self.cached
            .get_or_insert_with(|| UserList(Arc::from(json.as_str())))
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
        assert_eq!(roll.list().as_json(), "[]");
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
            first.as_json(),
            r#"[{"user_id":"q","name":"\"quoted\""},{"user_id":"b1","name":"bob"},{"user_id":"b2","name":"bob"},{"user_id":"z","name":"zoe"}]"#
        );
        // Listing the same user again changes nothing; removing does.
        roll.insert(&ids[0].0, &ids[0].1);
        assert!(Arc::ptr_eq(&first.0, &roll.list().0), "cached");
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
