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
mod tests;
