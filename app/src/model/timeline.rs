//! What a member has seen of a room: messages in id order without duplicates,
//! system events, gaps, and the member list.
//!
//! Pure data, no Leptos and no browser: [`crate::room`] feeds it server frames
//! and publishes it through signals, and the unit tests below feed it directly.

use std::sync::Arc;

use chorus_protocol::{ChatMessage, JOIN_HISTORY, Member, SystemEvent};

/// How many entries a client keeps; older ones scroll away for good.
pub const MAX_ENTRIES: usize = 1000;

/// One line of the chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A chat message, by its id.
    Message(ChatMessage),
    /// A member joined or left.
    System {
        /// Its place among local entries.
        seq: u64,
        /// Joined or left.
        event: SystemEvent,
        /// Whose.
        user: String,
        /// What to show.
        text: String,
    },
    /// The server could not deliver everything sent while this client was away.
    Gap {
        /// Its place among local entries.
        seq: u64,
    },
}

/// A stable identity for list rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKey {
    /// A message, by its id.
    Message(u64),
    /// A local entry (system event, gap), by its sequence number.
    Local(u64),
}

impl Entry {
    /// The entry's identity for list rendering.
    pub fn key(&self) -> EntryKey {
        match self {
            Entry::Message(message) => EntryKey::Message(message.id),
            Entry::System { seq, .. } | Entry::Gap { seq } => EntryKey::Local(*seq),
        }
    }
}

/// What a member has seen of a room: messages in id order, each once, with system events, gaps and the member list.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Shared so a reactive list can clone the whole timeline cheaply.
    entries: Vec<Arc<Entry>>,
    /// Sorted by name, then user id; each user once, however many tabs they have.
    users: Vec<Member>,
    last_id: Option<u64>,
    /// Numbers local entries (system events, gaps), which have no server id.
    next_seq: u64,
    missed: bool,
    /// The server said nothing older is retained, or nothing older fits here.
    at_oldest: bool,
    /// The room's newest message id when this connection joined: messages after it
    /// arrived live; those up to it are history or a recovered backlog.
    joined_at: Option<u64>,
}

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    /// Current members, sorted by name; two users of the same name are two members.
    pub fn users(&self) -> &[Member] {
        &self.users
    }

    /// The newest message id seen: the `since` of the next connection.
    pub fn last_id(&self) -> Option<u64> {
        self.last_id
    }

    /// Whether some messages were lost for good at least once.
    pub fn missed(&self) -> bool {
        self.missed
    }

    /// The oldest message shown: older ones are fetched from before it.
    pub fn oldest_id(&self) -> Option<u64> {
        self.entries.iter().find_map(|entry| match &**entry {
            Entry::Message(message) => Some(message.id),
            _ => None,
        })
    }

    /// Whether older messages may be retained by the server: not known to be at the
    /// oldest, and a full join history (or more) shown. Fewer means the join history
    /// was everything the room had.
    pub fn may_have_older(&self) -> bool {
        !self.at_oldest
            && self.entries.len() < MAX_ENTRIES
            && self
                .entries
                .iter()
                .filter(|entry| matches!(&***entry, Entry::Message(_)))
                .count()
                >= JOIN_HISTORY
    }

    /// A page of older messages (ascending, as the server API gives them): those
    /// older than everything shown go first, as many as the bound allows.
    pub fn older(&mut self, messages: Vec<ChatMessage>, has_more: bool) {
        let oldest = self.oldest_id();
        let mut older: Vec<Arc<Entry>> = messages
            .into_iter()
            .filter(|message| oldest.is_none_or(|oldest| message.id < oldest))
            .map(|message| Arc::new(Entry::Message(message)))
            .collect();
        let room = MAX_ENTRIES.saturating_sub(self.entries.len());
        if older.len() > room {
            // Keep the newest of them, next to what is shown.
            older.drain(..older.len() - room);
            self.at_oldest = true;
        } else {
            self.at_oldest = !has_more;
        }
        if self.last_id.is_none() {
            self.last_id = older.iter().rev().find_map(|entry| match &**entry {
                Entry::Message(message) => Some(message.id),
                _ => None,
            });
        }
        self.entries.splice(0..0, older);
    }

    /// A `welcome` frame: the member list restarts from the server's view.
    pub fn welcome(&mut self, users: Vec<Member>, recovered: bool) {
        // One by one, as later joins are: a sort of its own would add its code to
        // the client, and a welcome lists at most a page of members.
        self.users.clear();
        self.more_users(users);
        if !recovered {
            self.missed = true;
            let seq = self.take_seq();
            self.push(Entry::Gap { seq });
        }
    }

    /// The room's newest message id when the connection joined (the welcome's
    /// `last_id`).
    pub fn joined_at(&mut self, last_id: u64) {
        self.joined_at = Some(last_id);
    }

    /// Whether message `id` arrived live, after this connection joined: news worth
    /// announcing, unlike the history and backlog that came with the join.
    pub fn is_live(&self, id: u64) -> bool {
        self.joined_at.is_some_and(|joined_at| id > joined_at)
    }

    /// A chat message; returns `false` for one already shown.
    pub fn message(&mut self, message: ChatMessage) -> bool {
        let id = message.id;
        match self.last_id {
            Some(last) if id <= last => {
                // Only a recovery replays old ids; never show one twice.
                let position = self
                    .entries
                    .iter()
                    .rposition(|entry| matches!(&**entry, Entry::Message(shown) if shown.id < id));
                let insert_at = position.map_or(0, |index| index + 1);
                let duplicate = self.entries[insert_at..]
                    .iter()
                    .any(|entry| matches!(&**entry, Entry::Message(shown) if shown.id == id));
                if duplicate || self.entries.len() >= MAX_ENTRIES && insert_at == 0 {
                    return false;
                }
                self.entries
                    .insert(insert_at, Arc::new(Entry::Message(message)));
                self.trim();
            }
            _ => {
                self.last_id = Some(id);
                self.push(Entry::Message(message));
            }
        }
        true
    }

    /// A join or leave event; keeps the member list in step, by user id.
    pub fn system(&mut self, event: SystemEvent, user_id: String, user: String, text: String) {
        match event {
            SystemEvent::Join => self.add_user(Member {
                user_id,
                name: user.clone(),
            }),
            SystemEvent::Leave => self.remove_user(&user_id),
            SystemEvent::Unknown => {}
        }
        let seq = self.take_seq();
        self.push(Entry::System {
            seq,
            event,
            user,
            text,
        });
    }

    /// The rest of a large room's member list, right after its welcome.
    pub fn more_users(&mut self, users: Vec<Member>) {
        for member in users {
            self.add_user(member);
        }
    }

    /// Joins and leaves gathered by the server during a burst: the member list takes
    /// them all, the chat gets one line for the joins and one for the leaves.
    pub fn presence(&mut self, joins: Vec<Member>, leaves: Vec<Member>) {
        for member in &leaves {
            self.remove_user(&member.user_id);
        }
        for (event, members) in [(SystemEvent::Join, &joins), (SystemEvent::Leave, &leaves)] {
            if let Some(text) = presence_summary(event, members) {
                let seq = self.take_seq();
                self.push(Entry::System {
                    seq,
                    event,
                    user: members[0].name.clone(),
                    text,
                });
            }
        }
        for member in joins {
            self.add_user(member);
        }
    }

    /// Lists a user unless already listed (a repeated join changes nothing).
    fn add_user(&mut self, member: Member) {
        if self
            .users
            .iter()
            .any(|other| other.user_id == member.user_id)
        {
            return;
        }
        let at = self
            .users
            .partition_point(|other| member_order(other, &member).is_lt());
        self.users.insert(at, member);
    }

    /// Unlists a user (an unknown leave changes nothing).
    fn remove_user(&mut self, user_id: &str) {
        self.users.retain(|member| member.user_id != user_id);
    }

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn push(&mut self, entry: Entry) {
        self.entries.push(Arc::new(entry));
        self.trim();
    }

    fn trim(&mut self) {
        if self.entries.len() > MAX_ENTRIES {
            let excess = self.entries.len() - MAX_ENTRIES;
            self.entries.drain(..excess);
        }
    }
}

/// "alice joined the room", "alice and bob joined the room", "alice, bob and 3
/// others joined the room" (or left); `None` for nobody.
pub fn presence_summary(event: SystemEvent, members: &[Member]) -> Option<String> {
    let verb = match event {
        SystemEvent::Join => "joined",
        SystemEvent::Leave => "left",
        SystemEvent::Unknown => return None,
    };
    let name = |at: usize| members[at].name.as_str();
    let who = match members.len() {
        0 => return None,
        1 => name(0).to_owned(),
        2 => format!("{} and {}", name(0), name(1)),
        3 => format!("{}, {} and {}", name(0), name(1), name(2)),
        more => format!("{}, {} and {} others", name(0), name(1), more - 2),
    };
    Some(format!("{who} {verb} the room"))
}

/// The newest message among `entries` (in id order): its id, and whether the user
/// `me` wrote it.
pub fn newest_message(entries: &[Arc<Entry>], me: Option<&str>) -> Option<(u64, bool)> {
    entries.iter().rev().find_map(|entry| match &**entry {
        Entry::Message(message) => Some((message.id, Some(message.user_id.as_str()) == me)),
        _ => None,
    })
}

/// How many messages among `entries` are newer than message `id`.
pub fn messages_after(entries: &[Arc<Entry>], id: u64) -> usize {
    entries
        .iter()
        .rev()
        .take_while(|entry| !matches!(&***entry, Entry::Message(message) if message.id <= id))
        .filter(|entry| matches!(&***entry, Entry::Message(_)))
        .count()
}

fn member_order(a: &Member, b: &Member) -> std::cmp::Ordering {
    (&a.name, &a.user_id).cmp(&(&b.name, &b.user_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64) -> ChatMessage {
        ChatMessage {
            id,
            user_id: "u-alice".into(),
            user: "alice".into(),
            content: format!("message {id}"),
            timestamp: "2026-11-28T10:00:00.000Z".into(),
        }
    }

    fn message_ids(timeline: &Timeline) -> Vec<u64> {
        timeline
            .entries()
            .iter()
            .filter_map(|entry| match &**entry {
                Entry::Message(message) => Some(message.id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_newest_message_and_how_many_came_after_one() {
        let mut timeline = Timeline::new();
        assert_eq!(newest_message(timeline.entries(), Some("u-alice")), None);
        for id in [10, 11, 12] {
            timeline.message(message(id));
        }
        timeline.system(
            SystemEvent::Join,
            "u-bob".into(),
            "bob".into(),
            "bob joined".into(),
        );
        let entries = timeline.entries();
        assert_eq!(newest_message(entries, Some("u-alice")), Some((12, true)));
        assert_eq!(newest_message(entries, Some("u-bob")), Some((12, false)));
        assert_eq!(messages_after(entries, 10), 2, "the join is not a message");
        assert_eq!(messages_after(entries, 12), 0);
        assert_eq!(messages_after(entries, 0), 3);
    }

    #[test]
    fn messages_replayed_by_a_recovery_appear_once() {
        let mut timeline = Timeline::new();
        for id in [10, 11, 12] {
            assert!(timeline.message(message(id)));
        }
        // The reconnect asked for since=12, but a server may resend what it has.
        for id in [11, 12, 13, 14] {
            timeline.message(message(id));
        }
        assert_eq!(message_ids(&timeline), [10, 11, 12, 13, 14]);
        assert_eq!(timeline.last_id(), Some(14));
        assert!(!timeline.message(message(13)));
    }

    #[test]
    fn a_late_older_message_is_placed_in_id_order() {
        let mut timeline = Timeline::new();
        for id in [1, 2, 5] {
            timeline.message(message(id));
        }
        timeline.system(
            SystemEvent::Join,
            "u-bob".into(),
            "bob".into(),
            "bob joined".into(),
        );
        assert!(timeline.message(message(3)));
        assert_eq!(message_ids(&timeline), [1, 2, 3, 5]);
        assert_eq!(timeline.last_id(), Some(5));
    }

    #[test]
    fn only_messages_after_the_join_are_live() {
        let mut timeline = Timeline::new();
        // Before any welcome nothing is live.
        assert!(!timeline.is_live(1));
        timeline.welcome(vec![], true);
        timeline.joined_at(10);
        // The join history and anything up to the room's last id at the join.
        assert!(!timeline.is_live(9));
        assert!(!timeline.is_live(10));
        assert!(timeline.is_live(11));
        // A reconnect: what was recovered up to the new welcome's last id is backlog.
        timeline.welcome(vec![], true);
        timeline.joined_at(20);
        assert!(!timeline.is_live(15));
        assert!(timeline.is_live(21));
    }

    fn member(user_id: &str, name: &str) -> Member {
        Member {
            user_id: user_id.into(),
            name: name.into(),
        }
    }

    fn names(timeline: &Timeline) -> Vec<&str> {
        timeline
            .users()
            .iter()
            .map(|member| member.name.as_str())
            .collect()
    }

    #[test]
    fn joins_and_leaves_keep_the_member_list_sorted_by_user() {
        let mut timeline = Timeline::new();
        timeline.welcome(vec![member("z", "zoe"), member("a", "alice")], true);
        assert_eq!(names(&timeline), ["alice", "zoe"]);
        let join = |timeline: &mut Timeline, id: &str, name: &str| {
            timeline.system(
                SystemEvent::Join,
                id.into(),
                name.into(),
                format!("{name} joined"),
            )
        };
        join(&mut timeline, "b1", "bob");
        // Another user who is also called bob is another member; a repeated join is not.
        join(&mut timeline, "b2", "bob");
        join(&mut timeline, "b2", "bob");
        assert_eq!(names(&timeline), ["alice", "bob", "bob", "zoe"]);
        timeline.system(
            SystemEvent::Leave,
            "b1".into(),
            "bob".into(),
            "bob left".into(),
        );
        timeline.system(
            SystemEvent::Leave,
            "c".into(),
            "carol".into(),
            "carol left".into(),
        );
        assert_eq!(
            timeline.users(),
            [
                member("a", "alice"),
                member("b2", "bob"),
                member("z", "zoe")
            ]
        );
        assert_eq!(timeline.entries().len(), 5);
        // A new welcome replaces the list; nothing else changes.
        timeline.welcome(vec![member("a", "alice")], true);
        assert_eq!(names(&timeline), ["alice"]);
        assert!(!timeline.missed());
    }

    fn texts(timeline: &Timeline) -> Vec<&str> {
        timeline
            .entries()
            .iter()
            .filter_map(|entry| match &**entry {
                Entry::System { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_presence_batch_updates_the_list_and_adds_a_line_per_kind() {
        let mut timeline = Timeline::new();
        timeline.welcome(vec![member("a", "alice"), member("z", "zoe")], true);
        // Already listed (a member welcomed mid-burst): listed once.
        timeline.presence(
            vec![
                member("b", "bob"),
                member("a", "alice"),
                member("c", "carol"),
            ],
            vec![member("z", "zoe"), member("x", "unknown")],
        );
        assert_eq!(names(&timeline), ["alice", "bob", "carol"]);
        assert_eq!(
            texts(&timeline),
            [
                "bob, alice and carol joined the room",
                "zoe and unknown left the room"
            ]
        );
        timeline.presence(vec![], vec![member("b", "bob")]);
        assert_eq!(names(&timeline), ["alice", "carol"]);
        assert_eq!(texts(&timeline)[2], "bob left the room");
        timeline.presence(vec![], vec![]);
        assert_eq!(timeline.entries().len(), 3, "nothing to say");
    }

    #[test]
    fn a_large_rooms_list_continues_after_the_welcome_without_a_line() {
        let mut timeline = Timeline::new();
        timeline.welcome(vec![member("a", "alice")], true);
        timeline.more_users(vec![member("b", "bob"), member("a", "alice")]);
        assert_eq!(names(&timeline), ["alice", "bob"]);
        assert!(timeline.entries().is_empty());
    }

    #[test]
    fn presence_summaries_name_two_and_count_the_rest() {
        let many: Vec<Member> = (0..7)
            .map(|i| member(&i.to_string(), &format!("n{i}")))
            .collect();
        let cases = [
            (1, SystemEvent::Join, Some("n0 joined the room")),
            (2, SystemEvent::Leave, Some("n0 and n1 left the room")),
            (
                4,
                SystemEvent::Join,
                Some("n0, n1 and 2 others joined the room"),
            ),
            (
                7,
                SystemEvent::Leave,
                Some("n0, n1 and 5 others left the room"),
            ),
            (0, SystemEvent::Join, None),
            (2, SystemEvent::Unknown, None),
        ];
        for (count, event, expected) in cases {
            assert_eq!(
                presence_summary(event, &many[..count]).as_deref(),
                expected,
                "{count} {event:?}"
            );
        }
    }

    #[test]
    fn an_unrecovered_welcome_marks_a_gap() {
        let mut timeline = Timeline::new();
        timeline.message(message(1));
        timeline.welcome(vec![], false);
        assert!(timeline.missed());
        assert!(matches!(&*timeline.entries()[1], Entry::Gap { .. }));
        let keys: std::collections::HashSet<EntryKey> =
            timeline.entries().iter().map(|entry| entry.key()).collect();
        assert_eq!(keys.len(), 2);
    }

    #[test]
    fn older_pages_go_before_everything_shown() {
        let mut timeline = Timeline::new();
        for id in 100..100 + JOIN_HISTORY as u64 {
            timeline.message(message(id));
        }
        timeline.system(
            SystemEvent::Join,
            "u-bob".into(),
            "bob".into(),
            "bob joined".into(),
        );
        assert!(timeline.may_have_older());
        assert_eq!(timeline.oldest_id(), Some(100));
        // A page overlapping what is shown adds only what is older.
        timeline.older((60..=101).map(message).collect(), true);
        assert_eq!(message_ids(&timeline)[..3], [60, 61, 62]);
        assert_eq!(message_ids(&timeline).len(), 40 + JOIN_HISTORY);
        assert_eq!(timeline.last_id(), Some(149), "the resume point stays");
        assert!(timeline.may_have_older());
        timeline.older((50..60).map(message).collect(), false);
        assert_eq!(timeline.oldest_id(), Some(50));
        assert!(!timeline.may_have_older(), "the server has nothing older");
        let ids = message_ids(&timeline);
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "in order");
    }

    #[test]
    fn a_short_join_history_was_everything() {
        let mut timeline = Timeline::new();
        for id in 1..=10 {
            timeline.message(message(id));
        }
        assert!(!timeline.may_have_older());
    }

    #[test]
    fn older_pages_respect_the_bound() {
        let mut timeline = Timeline::new();
        for id in 5000..5000 + MAX_ENTRIES as u64 - 30 {
            timeline.message(message(id));
        }
        timeline.older((4900..5000).map(message).collect(), true);
        assert_eq!(timeline.entries().len(), MAX_ENTRIES);
        assert_eq!(
            timeline.oldest_id(),
            Some(4970),
            "the newest of the page fit"
        );
        assert!(!timeline.may_have_older(), "nothing more fits");
    }

    #[test]
    fn the_timeline_is_bounded() {
        let mut timeline = Timeline::new();
        for id in 1..=(MAX_ENTRIES as u64 + 10) {
            timeline.message(message(id));
        }
        assert_eq!(timeline.entries().len(), MAX_ENTRIES);
        assert_eq!(message_ids(&timeline)[0], 11);
        // Older than anything kept: it would be trimmed at once.
        assert!(!timeline.message(message(5)));
        assert_eq!(timeline.entries().len(), MAX_ENTRIES);
    }
}
