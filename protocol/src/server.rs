//! What the server sends: [`ServerFrame`] and the records inside it, written with
//! serde and read back by [`ServerFrame::from_json`] (a reader without serde's
//! buffering of internally tagged enums, for the client's WASM size).

use serde::{Deserialize, Serialize};

use crate::client::ErrorCode;
#[cfg(doc)]
use crate::limits::TYPING_SHOWN_MS;

/// A chat message as every member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Strictly increasing within a room. Serialized before any user-provided text.
    pub id: u64,
    /// The sender's token `sub`: who sent it, even when two users share a name.
    pub user_id: String,
    /// The sender's display name.
    pub user: String,
    /// The text, as the sender wrote it.
    pub content: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
}

/// Membership changes announced to a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemEvent {
    /// A user joined (its first connection to the room).
    Join,
    /// A user left (its last connection closed, and its grace is over).
    Leave,
    /// An event kind this build does not know yet.
    #[serde(other)]
    Unknown,
}

/// A member of a room: its user id (the token's `sub`) and display name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The token's `sub`.
    pub user_id: String,
    /// The display name.
    pub name: String,
}

/// A frame the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The first frame after a successful connect.
    Welcome {
        /// The room's name.
        room: String,
        /// This member's user id: "you" is decided by it, never by the name.
        user_id: String,
        /// This member's display name.
        user: String,
        /// Who was present before this connection, sorted by name: in a large room
        /// only the first ones, the rest following at once in `users` frames. The
        /// member's own `join` follows if this is its first connection to the room.
        users: Vec<Member>,
        /// `false` when a `since` recovery could not deliver every missed message.
        recovered: bool,
        /// The room's newest message id (the id just before its first when it has
        /// none yet): a client that has seen no message resumes with `since=last_id`.
        last_id: u64,
        /// The server pings this often...
        heartbeat_interval_ms: u64,
        /// ...and closes with 4009 after this much more silence. A client that hears
        /// nothing for both together may treat the connection as dead.
        heartbeat_timeout_ms: u64,
    },
    /// More of the member list a `welcome` began (a large room's list comes in
    /// several frames of bounded size, right after the welcome, in order).
    Users {
        /// The next part of the list, in order.
        users: Vec<Member>,
    },
    /// A chat message, live or from history.
    Message(ChatMessage),
    /// A join or a leave, one at a time.
    System {
        /// What happened, in words (`"alice joined the room"`).
        message: String,
        /// Which kind of change.
        event: SystemEvent,
        /// Whose.
        user_id: String,
        /// Their display name.
        user: String,
    },
    /// Joins and leaves gathered during a burst (many within a fraction of a second),
    /// instead of one `system` frame each. Each user is named at most once, so the
    /// lists can be applied in any order; sparse joins and leaves still come as
    /// `system` frames.
    Presence {
        /// Who joined.
        #[serde(default)]
        joins: Vec<Member>,
        /// Who left.
        #[serde(default)]
        leaves: Vec<Member>,
    },
    /// Are you there? Answer with `pong`.
    Ping,
    /// A member is typing (its client sent `typing`): show it for
    /// [`TYPING_SHOWN_MS`], or until its message arrives. Never in history or
    /// recovery; every member gets it, the typist's own connections too.
    Typing {
        /// The typist.
        user_id: String,
        /// The typist's display name.
        user: String,
    },
    /// The token of a `refresh` frame was accepted.
    Refreshed,
    /// The sender's message (the one with this `ref`) was stored with this id.
    Ack {
        /// The `ref` the message was sent with.
        #[serde(rename = "ref")]
        reference: String,
        /// The id the message was stored with.
        id: u64,
    },
    /// A client frame was refused; the connection stays open.
    Error {
        /// Why.
        code: ErrorCode,
        /// The same in words, for people.
        message: String,
        /// The `ref` of the client frame that caused the error, if it had one.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// A frame type this build does not know yet; clients skip it.
    #[serde(other)]
    Unknown,
}

impl ServerFrame {
    /// The `system` frame announcing that the user joined.
    pub fn joined(user_id: &str, user: &str) -> Self {
        ServerFrame::System {
            message: format!("{user} joined the room"),
            event: SystemEvent::Join,
            user_id: user_id.to_owned(),
            user: user.to_owned(),
        }
    }

    /// The `system` frame announcing that the user left.
    pub fn left(user_id: &str, user: &str) -> Self {
        ServerFrame::System {
            message: format!("{user} left the room"),
            event: SystemEvent::Leave,
            user_id: user_id.to_owned(),
            user: user.to_owned(),
        }
    }

    /// An `error` frame caused by no particular client frame.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            code,
            message: message.into(),
            reference: None,
        }
    }

    /// An error caused by the client frame with this `ref` (if it had one).
    pub fn error_for(
        code: ErrorCode,
        message: impl Into<String>,
        reference: Option<String>,
    ) -> Self {
        ServerFrame::Error {
            code,
            message: message.into(),
            reference,
        }
    }

    /// Serializes to JSON text. Infallible: every field is a plain string, number or list.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames always serialize")
    }
}

impl ServerFrame {
    /// Parses a server frame: its `type` first, then the fields of that kind.
    ///
    /// The same as deriving it (`serde_json::from_str::<ServerFrame>`, which tests
    /// compare it with), without the buffering an internally tagged enum needs
    /// (serde reads every field into a `Content` tree before it knows the type):
    /// that machinery was 12 KB of the client's WASM. A frame of a type this build
    /// does not know is [`ServerFrame::Unknown`], whatever its fields.
    pub fn from_json(text: &str) -> Result<ServerFrame, serde_json::Error> {
        use serde_json::from_str;
        let Tag { kind } = from_str(text)?;
        Ok(match kind.as_ref() {
            "welcome" => {
                let wire::Welcome {
                    room,
                    user_id,
                    user,
                    users,
                    recovered,
                    last_id,
                    heartbeat_interval_ms,
                    heartbeat_timeout_ms,
                } = from_str(text)?;
                ServerFrame::Welcome {
                    room,
                    user_id,
                    user,
                    users,
                    recovered,
                    last_id,
                    heartbeat_interval_ms,
                    heartbeat_timeout_ms,
                }
            }
            "users" => ServerFrame::Users {
                users: from_str::<wire::Users>(text)?.users,
            },
            "message" => ServerFrame::Message(from_str(text)?),
            "system" => {
                let wire::System {
                    message,
                    event,
                    user_id,
                    user,
                } = from_str(text)?;
                ServerFrame::System {
                    message,
                    event,
                    user_id,
                    user,
                }
            }
            "presence" => {
                let wire::Presence { joins, leaves } = from_str(text)?;
                ServerFrame::Presence { joins, leaves }
            }
            "ping" => ServerFrame::Ping,
            "typing" => {
                let wire::Typing { user_id, user } = from_str(text)?;
                ServerFrame::Typing { user_id, user }
            }
            "refreshed" => ServerFrame::Refreshed,
            "ack" => {
                let wire::Ack { reference, id } = from_str(text)?;
                ServerFrame::Ack { reference, id }
            }
            "error" => {
                let wire::Error {
                    code,
                    message,
                    reference,
                } = from_str(text)?;
                ServerFrame::Error {
                    code,
                    message,
                    reference,
                }
            }
            _ => ServerFrame::Unknown,
        })
    }
}

/// A frame's `type`, every other field skipped.
#[derive(Deserialize)]
struct Tag<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// The fields of each kind of [`ServerFrame`] with fields, as
/// [`ServerFrame::from_json`] reads them (its `type` skipped like any unknown
/// field). They mirror the enum's variants: the round-trip tests compare both
/// ways of parsing every frame.
mod wire {
    use serde::Deserialize;

    use super::{ErrorCode, Member, SystemEvent};

    #[derive(Deserialize)]
    pub(super) struct Welcome {
        pub room: String,
        pub user_id: String,
        pub user: String,
        pub users: Vec<Member>,
        pub recovered: bool,
        pub last_id: u64,
        pub heartbeat_interval_ms: u64,
        pub heartbeat_timeout_ms: u64,
    }

    #[derive(Deserialize)]
    pub(super) struct Users {
        pub users: Vec<Member>,
    }

    #[derive(Deserialize)]
    pub(super) struct System {
        pub message: String,
        pub event: SystemEvent,
        pub user_id: String,
        pub user: String,
    }

    #[derive(Deserialize)]
    pub(super) struct Presence {
        #[serde(default)]
        pub joins: Vec<Member>,
        #[serde(default)]
        pub leaves: Vec<Member>,
    }

    #[derive(Deserialize)]
    pub(super) struct Typing {
        pub user_id: String,
        pub user: String,
    }

    #[derive(Deserialize)]
    pub(super) struct Ack {
        #[serde(rename = "ref")]
        pub reference: String,
        pub id: u64,
    }

    #[derive(Deserialize)]
    pub(super) struct Error {
        pub code: ErrorCode,
        pub message: String,
        #[serde(rename = "ref", default)]
        pub reference: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientFrame;
    use serde_json::{Value, json};

    fn assert_json(frame: &ServerFrame, expected: Value) {
        let text = frame.to_json();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected);
        assert_eq!(&serde_json::from_str::<ServerFrame>(&text).unwrap(), frame);
        assert_eq!(&ServerFrame::from_json(&text).unwrap(), frame);
        // Wherever `type` comes, and whatever else a newer server adds.
        let mut reordered = serde_json::Map::new();
        reordered.insert("added_later".into(), json!({"nested": [1, "two"]}));
        for (key, value) in expected.as_object().unwrap().iter().rev() {
            reordered.insert(key.clone(), value.clone());
        }
        let reordered = Value::Object(reordered).to_string();
        assert_eq!(
            &ServerFrame::from_json(&reordered).unwrap(),
            frame,
            "{reordered}"
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert_eq!(
            ClientFrame::parse(r#"{"type":"message","content":"hi","extra":[1,2]}"#).unwrap(),
            ClientFrame::Message {
                content: "hi".into(),
                reference: None,
            }
        );
        let frame: ServerFrame =
            serde_json::from_str(r#"{"type":"ping","future":"field"}"#).unwrap();
        assert_eq!(frame, ServerFrame::Ping);
    }

    #[test]
    fn unknown_server_frames_and_codes_do_not_break_clients() {
        let frame: ServerFrame =
            serde_json::from_str(r#"{"type":"reaction","user":"bob"}"#).unwrap();
        assert_eq!(frame, ServerFrame::Unknown);
        // Whatever fields it has: even ones a known frame has with another type.
        for text in [
            r#"{"type":"reaction","user":"bob"}"#,
            r#"{"type":"reaction","users":"not a list","id":"x"}"#,
            r#"{"id":-1,"type":"future"}"#,
        ] {
            assert_eq!(
                ServerFrame::from_json(text).unwrap(),
                ServerFrame::Unknown,
                "{text}"
            );
        }
        assert_eq!(
            ServerFrame::from_json(r#"{"type":"error","code":"new_code","message":"m"}"#).unwrap(),
            ServerFrame::error(ErrorCode::Unknown, "m")
        );
        // Not frames at all, or a known type without its fields.
        for text in [
            "",
            "[]",
            "null",
            r#"{"type":7}"#,
            r#"{"kind":"ping"}"#,
            r#"{"type":"ack","ref":"r"}"#,
            r#"{"type":"welcome","room":"x"}"#,
            r#"{"type":"message","id":"seven"}"#,
            r#"{"type":"ping""#,
        ] {
            assert!(ServerFrame::from_json(text).is_err(), "{text}");
            assert!(serde_json::from_str::<ServerFrame>(text).is_err(), "{text}");
        }
        let frame: ServerFrame =
            serde_json::from_str(r#"{"type":"error","code":"new_code","message":"m"}"#).unwrap();
        assert_eq!(frame, ServerFrame::error(ErrorCode::Unknown, "m"));
    }

    #[test]
    fn server_frames_match_the_wire_format() {
        assert_json(
            &ServerFrame::Welcome {
                room: "lobby".into(),
                user_id: "u1".into(),
                user: "alice".into(),
                users: vec![Member {
                    user_id: "u2".into(),
                    name: "bob".into(),
                }],
                recovered: true,
                last_id: 1764293000000000,
                heartbeat_interval_ms: 30000,
                heartbeat_timeout_ms: 10000,
            },
            json!({"type":"welcome","room":"lobby","user_id":"u1","user":"alice",
                   "users":[{"user_id":"u2","name":"bob"}],"recovered":true,
                   "last_id":1764293000000000_u64,"heartbeat_interval_ms":30000,"heartbeat_timeout_ms":10000}),
        );
        assert_json(
            &ServerFrame::Message(ChatMessage {
                id: 7,
                user_id: "u1".into(),
                user: "alice".into(),
                content: "hello".into(),
                timestamp: "2026-11-28T01:02:03.456Z".into(),
            }),
            json!({"type":"message","id":7,"user_id":"u1","user":"alice","content":"hello","timestamp":"2026-11-28T01:02:03.456Z"}),
        );
        assert_json(
            &ServerFrame::joined("u1", "alice"),
            json!({"type":"system","message":"alice joined the room","event":"join","user_id":"u1","user":"alice"}),
        );
        assert_json(
            &ServerFrame::left("u1", "alice"),
            json!({"type":"system","message":"alice left the room","event":"leave","user_id":"u1","user":"alice"}),
        );
        assert_json(
            &ServerFrame::Presence {
                joins: vec![Member {
                    user_id: "u1".into(),
                    name: "alice".into(),
                }],
                leaves: vec![],
            },
            json!({"type":"presence","joins":[{"user_id":"u1","name":"alice"}],"leaves":[]}),
        );
        assert_json(
            &ServerFrame::Users {
                users: vec![Member {
                    user_id: "u2".into(),
                    name: "bob".into(),
                }],
            },
            json!({"type":"users","users":[{"user_id":"u2","name":"bob"}]}),
        );
        assert_json(&ServerFrame::Ping, json!({"type":"ping"}));
        assert_json(&ServerFrame::Refreshed, json!({"type":"refreshed"}));
        assert_json(
            &ServerFrame::Typing {
                user_id: "u1".into(),
                user: "alice".into(),
            },
            json!({"type":"typing","user_id":"u1","user":"alice"}),
        );
        assert_json(
            &ServerFrame::Ack {
                reference: "r-1".into(),
                id: 7,
            },
            json!({"type":"ack","ref":"r-1","id":7}),
        );
        assert_json(
            &ServerFrame::error_for(ErrorCode::RateLimited, "slow down", Some("r-2".into())),
            json!({"type":"error","code":"rate_limited","message":"slow down","ref":"r-2"}),
        );
        assert_json(
            &ServerFrame::error(ErrorCode::RateLimited, "slow down"),
            json!({"type":"error","code":"rate_limited","message":"slow down"}),
        );
    }
}
