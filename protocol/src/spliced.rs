//! Server frames written in pieces, for speed: the parts that are the same for many
//! frames are serialized once and the rest spliced in as text. A room's member list
//! is kept as JSON entries ([`member_entry`]) and a large one travels as a
//! `welcome` ([`WelcomeHead::frame`]) followed by `users` frames ([`users_frame`]),
//! each carrying a share of it; a message stored through Redis gets its id inside
//! Redis, between the two halves [`message_around_id`] returns.
//!
//! Every frame written here reads back through [`ServerFrame::from_json`] as the
//! frame it stands for (the tests below, and `tests/properties.rs` over generated
//! names and text).

use serde::Serialize;

#[cfg(doc)]
use crate::server::ServerFrame;
use crate::server::{ChatMessage, ServerFrame as Frame};

/// One member's entry in a member list: `{"user_id":…,"name":…}`, as
/// [`Member`](crate::Member) serializes. A share of a list is entries joined by
/// commas.
pub fn member_entry(user_id: &str, name: &str) -> String {
    #[derive(Serialize)]
    struct Entry<'a> {
        user_id: &'a str,
        name: &'a str,
    }
    serde_json::to_string(&Entry { user_id, name }).expect("a member always serializes")
}

/// A `welcome` frame's fields but its member list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename = "welcome")]
pub struct WelcomeHead<'a> {
    /// The room's name.
    pub room: &'a str,
    /// The member's user id.
    pub user_id: &'a str,
    /// The member's display name.
    pub user: &'a str,
    /// `false` when a `since` could not bring back every missed message.
    pub recovered: bool,
    /// The room's newest message id.
    pub last_id: u64,
    /// How often the server pings.
    pub heartbeat_interval_ms: u64,
    /// Silence allowed after an interval before 4009.
    pub heartbeat_timeout_ms: u64,
}

impl WelcomeHead<'_> {
    /// The `welcome` frame listing `first_share` (entries joined by commas, or
    /// nothing for an empty room); the rest of a large list follows in
    /// [`users_frame`]s.
    pub fn frame(&self, first_share: &str) -> String {
        let head = serde_json::to_string(self).expect("a welcome always serializes");
        let head = head.strip_suffix('}').expect("an object");
        format!("{head},\"users\":[{first_share}]}}")
    }
}

/// A `users` frame carrying `share` of a member list (entries joined by commas).
pub fn users_frame(share: &str) -> String {
    format!("{{\"type\":\"users\",\"users\":[{share}]}}")
}

/// A `message` frame split around its id, so the id can be chosen elsewhere (inside
/// Redis, by the script that stores it): `prefix + id + suffix` is the frame.
pub fn message_around_id(
    user_id: &str,
    user: &str,
    content: String,
    timestamp: String,
) -> (String, String) {
    let placeholder = Frame::Message(ChatMessage {
        id: 0,
        user_id: user_id.to_owned(),
        user: user.to_owned(),
        content,
        timestamp,
    })
    .to_json();
    // `"id":0` cannot occur unescaped inside a string, and `id` is serialized before
    // any user-provided text.
    let at = placeholder
        .find("\"id\":0")
        .expect("a message frame has an id")
        + "\"id\":".len();
    (
        placeholder[..at].to_owned(),
        placeholder[at + 1..].to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Member;

    fn share(members: &[Member]) -> String {
        members
            .iter()
            .map(|m| member_entry(&m.user_id, &m.name))
            .collect::<Vec<_>>()
            .join(",")
    }

    const TRICKY: [&str; 5] = ["alice", "a\"b\\c", "}{,]", "Zoë 🎉 李雷", "\"users\":[]"];

    #[test]
    fn a_spliced_welcome_and_its_users_frames_read_back_as_the_frames_they_stand_for() {
        let listed = |user_id: String, name: &str| Member {
            user_id,
            name: name.into(),
        };
        let first: Vec<Member> = TRICKY.iter().map(|n| listed(format!("u-{n}"), n)).collect();
        let rest = vec![listed("u-9".into(), "zed"), listed("u\"10".into(), "\\")];
        for first in [first.clone(), Vec::new()] {
            let head = WelcomeHead {
                room: "lobby",
                user_id: "u\"me",
                user: "me \\ \"you\"",
                recovered: false,
                last_id: u64::MAX,
                heartbeat_interval_ms: 30_000,
                heartbeat_timeout_ms: 10_000,
            };
            let text = head.frame(&share(&first));
            let expected = Frame::Welcome {
                room: "lobby".into(),
                user_id: "u\"me".into(),
                user: "me \\ \"you\"".into(),
                users: first.clone(),
                recovered: false,
                last_id: u64::MAX,
                heartbeat_interval_ms: 30_000,
                heartbeat_timeout_ms: 10_000,
            };
            assert_eq!(Frame::from_json(&text).unwrap(), expected, "{text}");
            assert_eq!(serde_json::from_str::<Frame>(&text).unwrap(), expected);
        }
        let users = users_frame(&share(&rest));
        let expected = Frame::Users {
            users: rest.clone(),
        };
        assert_eq!(Frame::from_json(&users).unwrap(), expected);
        assert_eq!(users, expected.to_json());
        assert_eq!(
            Frame::from_json(&users_frame("")).unwrap(),
            Frame::Users { users: vec![] }
        );
    }

    #[test]
    fn a_message_split_around_its_id_reads_back_with_any_id() {
        for content in ["x \"id\":0, y", "\"timestamp\":\"1999", "}", "🎉\n\t"] {
            let (prefix, suffix) = message_around_id(
                "\"id\":0",
                "a\"id\":0,",
                content.into(),
                "2026-12-07T12:00:00.000Z".into(),
            );
            for id in [0, 1, 42, u64::MAX] {
                let text = format!("{prefix}{id}{suffix}");
                let expected = Frame::Message(ChatMessage {
                    id,
                    user_id: "\"id\":0".into(),
                    user: "a\"id\":0,".into(),
                    content: content.into(),
                    timestamp: "2026-12-07T12:00:00.000Z".into(),
                });
                assert_eq!(Frame::from_json(&text).unwrap(), expected, "{text}");
                assert_eq!(text, expected.to_json());
            }
        }
    }
}
