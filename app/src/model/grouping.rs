//! How the conversation is laid out: a heading above the first message of each
//! day, and consecutive messages of one author within a few minutes grouped under
//! one header, as chat apps do.
//!
//! Pure data: the caller says when each message was sent in the reader's local time
//! (the browser knows the time zone), so the rules are unit-tested natively.

use std::sync::Arc;

use crate::model::timeline::{Entry, EntryKey};

/// How long after an author's message their next one still joins its group.
pub const GROUP_WINDOW_MS: i64 = 5 * 60 * 1000;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// One line of the rendered conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// Above the first message of a local day.
    Day {
        /// The local day, in days since the Unix epoch.
        day: i64,
        /// What its heading says.
        name: DayName,
    },
    /// A message, system event or gap; `continues` for a message that joins the
    /// previous one's group (same author, same day, within [`GROUP_WINDOW_MS`]).
    Entry {
        /// The entry.
        entry: Arc<Entry>,
        /// Whether it joins the previous message's group.
        continues: bool,
    },
}

/// What a day heading says, relative to the reader's today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DayName {
    /// The reader's today.
    Today,
    /// The day before.
    Yesterday,
    /// Its date, in the reader's locale.
    Date,
}

/// A stable identity for list rendering: a row is drawn again only when what it
/// shows changes (a heading's name at midnight, a message joining a group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowKey {
    /// A day heading, by day and what it says.
    Day(i64, DayName),
    /// An entry, and whether it continues a group.
    Entry(EntryKey, bool),
}

impl Row {
    /// The row's identity for list rendering.
    pub fn key(&self) -> RowKey {
        match self {
            Row::Day { day, name } => RowKey::Day(*day, *name),
            Row::Entry { entry, continues } => RowKey::Entry(entry.key(), *continues),
        }
    }
}

/// The local day (days since 1970-01-01) of a local time in milliseconds.
pub fn local_day(local_ms: i64) -> i64 {
    local_ms.div_euclid(DAY_MS)
}

/// The rows for `entries` (in order). `local_ms` gives a message's time in the
/// reader's time zone, in milliseconds since the epoch, or `None` for a timestamp
/// it cannot read (such a message starts no day and joins no group); `today` is
/// the reader's local day.
pub fn rows(
    entries: &[Arc<Entry>],
    local_ms: impl Fn(&str) -> Option<i64>,
    today: i64,
) -> Vec<Row> {
    let mut rows = Vec::with_capacity(entries.len() + 4);
    // The day of the last message, and its author and time while a group can go on.
    let mut last_day = None;
    let mut group: Option<(&str, i64)> = None;
    for entry in entries {
        let mut continues = false;
        match &**entry {
            Entry::Message(message) => {
                let sent = local_ms(&message.timestamp);
                if let Some(sent) = sent {
                    let day = local_day(sent);
                    if last_day != Some(day) {
                        last_day = Some(day);
                        group = None;
                        let name = match today - day {
                            0 => DayName::Today,
                            1 => DayName::Yesterday,
                            _ => DayName::Date,
                        };
                        rows.push(Row::Day { day, name });
                    }
                }
                continues = matches!(
                    (group, sent),
                    (Some((author, at)), Some(sent))
                        if author == message.user_id && (0..=GROUP_WINDOW_MS).contains(&(sent - at))
                );
                group = sent.map(|sent| (message.user_id.as_str(), sent));
            }
            // A join, a leave or a gap between two messages parts them.
            Entry::System { .. } | Entry::Gap { .. } => group = None,
        }
        rows.push(Row::Entry {
            entry: entry.clone(),
            continues,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::{ChatMessage, SystemEvent};

    const MINUTE: i64 = 60 * 1000;

    /// Messages at `minutes` after midnight of day 20,000 (local time), the
    /// timestamp being those minutes.
    fn message(id: u64, user: &str, minutes: i64) -> Arc<Entry> {
        sent_at(id, user, &minutes.to_string())
    }

    fn sent_at(id: u64, user: &str, timestamp: &str) -> Arc<Entry> {
        Arc::new(Entry::Message(ChatMessage {
            id,
            user_id: format!("u-{user}"),
            user: user.into(),
            content: format!("message {id}"),
            timestamp: timestamp.into(),
        }))
    }

    fn at(timestamp: &str) -> Option<i64> {
        let minutes: i64 = timestamp.parse().ok()?;
        Some(20_000 * DAY_MS + minutes * MINUTE)
    }

    /// Each row as text: `day N Name`, or `id` with `+` for a continuation, or `-`
    /// for an entry that is not a message.
    fn shape(rows: &[Row]) -> Vec<String> {
        rows.iter()
            .map(|row| match row {
                Row::Day { day, name } => format!("day {day} {name:?}"),
                Row::Entry { entry, continues } => match &**entry {
                    Entry::Message(message) if *continues => format!("{}+", message.id),
                    Entry::Message(message) => message.id.to_string(),
                    _ => "-".into(),
                },
            })
            .collect()
    }

    #[test]
    fn one_authors_messages_within_five_minutes_form_a_group() {
        let entries = [
            message(1, "alice", 600),
            message(2, "alice", 601),
            message(3, "alice", 606),
            message(4, "alice", 612),
            message(5, "bob", 612),
            message(6, "alice", 613),
        ];
        assert_eq!(
            shape(&rows(&entries, at, 20_000)),
            ["day 20000 Today", "1", "2+", "3+", "4", "5", "6"],
            "up to 5 minutes after the previous message joins its group, 6 starts \
             another, another author parts them"
        );
    }

    #[test]
    fn joins_leaves_and_gaps_part_a_group() {
        let join = Arc::new(Entry::System {
            seq: 1,
            event: SystemEvent::Join,
            user: "bob".into(),
            text: "bob joined the room".into(),
        });
        let gap = Arc::new(Entry::Gap { seq: 2 });
        let entries = [
            message(1, "alice", 600),
            join,
            message(2, "alice", 601),
            gap,
            message(3, "alice", 602),
            message(4, "alice", 603),
        ];
        assert_eq!(
            shape(&rows(&entries, at, 20_000)),
            ["day 20000 Today", "1", "-", "2", "-", "3", "4+"]
        );
    }

    #[test]
    fn each_day_starts_with_its_heading_named_from_today() {
        let entries = [
            message(1, "alice", -2 * 24 * 60 + 5),
            message(2, "alice", -24 * 60 + 5),
            // Two minutes apart across midnight: a new day, and a new group.
            message(3, "alice", -1),
            message(4, "alice", 1),
            message(5, "alice", 2),
        ];
        assert_eq!(
            shape(&rows(&entries, at, 20_000)),
            [
                "day 19998 Date",
                "1",
                "day 19999 Yesterday",
                "2",
                "3",
                "day 20000 Today",
                "4",
                "5+"
            ]
        );
        // A day later, the same messages are named from the new today: their rows'
        // keys change, so they are drawn again.
        let later = rows(&entries, at, 20_001);
        assert_eq!(later[2].key(), RowKey::Day(19_999, DayName::Date));
        assert_eq!(later[5].key(), RowKey::Day(20_000, DayName::Yesterday));
    }

    #[test]
    fn an_unreadable_time_starts_no_day_and_joins_no_group() {
        let entries = [
            message(1, "alice", 600),
            sent_at(9, "alice", "not a time"),
            message(2, "alice", 601),
        ];
        assert_eq!(
            shape(&rows(&entries, at, 20_000)),
            ["day 20000 Today", "1", "9", "2"]
        );
    }

    #[test]
    fn a_clock_going_back_parts_a_group() {
        let entries = [message(1, "alice", 610), message(2, "alice", 600)];
        assert_eq!(
            shape(&rows(&entries, at, 20_000)),
            ["day 20000 Today", "1", "2"]
        );
    }

    #[test]
    fn days_before_1970_count_down() {
        assert_eq!(local_day(-1), -1);
        assert_eq!(local_day(0), 0);
        assert_eq!(local_day(DAY_MS - 1), 0);
    }
}
