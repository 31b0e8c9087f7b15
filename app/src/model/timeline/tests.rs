//! The timeline fed frames directly: order, duplicates, gaps, what is live, the
//! member list, the bound.

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
