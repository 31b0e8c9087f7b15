//! The wire protocol shared by the server and the browser client.
//!
//! Every frame is a JSON text message tagged by `type`. Unknown fields are
//! ignored in both directions so either side can grow new fields without
//! breaking the other. This crate has no Leptos dependency and compiles for
//! native and `wasm32` targets alike.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest chat message, in characters (not bytes).
pub const MAX_CONTENT_CHARS: usize = 4000;
/// Longest room name, in characters.
pub const MAX_ROOM_NAME_CHARS: usize = 64;
/// Longest display name, in characters, after trimming.
pub const MAX_DISPLAY_NAME_CHARS: usize = 32;
/// How many recent messages a member receives on join when it asks for no `since`.
pub const JOIN_HISTORY: usize = 50;
/// A client sends `typing` at most this often while its user types.
pub const TYPING_EVERY_MS: u64 = 3000;
/// Others show a user as typing for this long after its last `typing` (or until
/// its message arrives).
pub const TYPING_SHOWN_MS: u64 = 5000;
/// The server passes on at most one `typing` per connection this often; more are
/// dropped (a little under [`TYPING_EVERY_MS`], for timers that fire early).
pub const TYPING_MIN_GAP_MS: u64 = 2000;

/// A frame the client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Message {
        content: String,
        /// Chosen by the client (1–64 characters) to match the `ack` or `error` this
        /// message causes, and to send it again safely: the same user sending the
        /// same `ref` to the same room within [`REF_WINDOW_SECS`] gets the original
        /// id back instead of a second message.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    Pong,
    /// The user is typing a message: sent at most every [`TYPING_EVERY_MS`].
    /// Passed on to the room's members as a `typing` frame, never stored, at most
    /// every [`TYPING_MIN_GAP_MS`] per connection (more are dropped); ignored from
    /// a member whose token may not post.
    Typing,
    /// A renewed token for the same user, sent on an open connection so it outlives
    /// the token it was opened with: answered with `refreshed` (the connection now
    /// lasts until the new token expires) or an `error` with code `invalid_token`
    /// (nothing changes). Never logged.
    Refresh {
        token: String,
    },
}

/// The WebSocket subprotocol of this protocol. A client may offer it in
/// `Sec-WebSocket-Protocol` together with `chorus.token.<JWT>` to authenticate
/// without putting the token in the URL (where proxies and access logs keep it); the
/// server then selects `chorus.v1`, never the token.
pub const SUBPROTOCOL: &str = "chorus.v1";
/// The prefix of the subprotocol that carries the token.
pub const TOKEN_SUBPROTOCOL_PREFIX: &str = "chorus.token.";

/// The subprotocols a client offers to connect with `token`.
pub fn token_subprotocols(token: &str) -> [String; 2] {
    [
        SUBPROTOCOL.to_owned(),
        format!("{TOKEN_SUBPROTOCOL_PREFIX}{token}"),
    ]
}

/// The token offered in `Sec-WebSocket-Protocol` values (comma-separated, possibly
/// over several headers), if any.
pub fn token_from_subprotocols<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    values
        .into_iter()
        .flat_map(|value| value.split(','))
        .find_map(|protocol| protocol.trim().strip_prefix(TOKEN_SUBPROTOCOL_PREFIX))
        .filter(|token| !token.is_empty())
}

/// Longest client `ref`, in characters.
pub const MAX_REF_CHARS: usize = 64;
/// How long a message's `ref` is remembered for idempotent resends, in seconds.
pub const REF_WINDOW_SECS: u64 = 300;

/// A chat message as every member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Strictly increasing within a room. Serialized before any user-provided text.
    pub id: u64,
    /// The sender's token `sub`: who sent it, even when two users share a name.
    pub user_id: String,
    /// The sender's display name.
    pub user: String,
    pub content: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
}

/// Membership changes announced to a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemEvent {
    Join,
    Leave,
    /// An event kind this build does not know yet.
    #[serde(other)]
    Unknown,
}

/// A member of a room: its user id (the token's `sub`) and display name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub name: String,
}

/// A frame the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The first frame after a successful connect.
    Welcome {
        room: String,
        /// This member's user id: "you" is decided by it, never by the name.
        user_id: String,
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
        users: Vec<Member>,
    },
    Message(ChatMessage),
    System {
        message: String,
        event: SystemEvent,
        user_id: String,
        user: String,
    },
    /// Joins and leaves gathered during a burst (many within a fraction of a second),
    /// instead of one `system` frame each. Each user is named at most once, so the
    /// lists can be applied in any order; sparse joins and leaves still come as
    /// `system` frames.
    Presence {
        #[serde(default)]
        joins: Vec<Member>,
        #[serde(default)]
        leaves: Vec<Member>,
    },
    Ping,
    /// A member is typing (its client sent `typing`): show it for
    /// [`TYPING_SHOWN_MS`], or until its message arrives. Never in history or
    /// recovery; every member gets it, the typist's own connections too.
    Typing {
        user_id: String,
        user: String,
    },
    /// The token of a `refresh` frame was accepted.
    Refreshed,
    /// The sender's message (the one with this `ref`) was stored with this id.
    Ack {
        #[serde(rename = "ref")]
        reference: String,
        id: u64,
    },
    Error {
        code: ErrorCode,
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
    pub fn joined(user_id: &str, user: &str) -> Self {
        ServerFrame::System {
            message: format!("{user} joined the room"),
            event: SystemEvent::Join,
            user_id: user_id.to_owned(),
            user: user.to_owned(),
        }
    }

    pub fn left(user_id: &str, user: &str) -> Self {
        ServerFrame::System {
            message: format!("{user} left the room"),
            event: SystemEvent::Leave,
            user_id: user_id.to_owned(),
            user: user.to_owned(),
        }
    }

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

/// Why the server rejected a client frame; the connection stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or JSON that is not an object with a string `type`.
    InvalidJson,
    /// A `type` this server does not handle.
    UnknownType,
    /// A known `type` with missing or mistyped fields.
    InvalidFrame,
    EmptyMessage,
    MessageTooLong,
    /// Control characters other than line breaks and tabs.
    InvalidContent,
    /// Binary WebSocket frames are not part of the protocol.
    BinaryNotSupported,
    RateLimited,
    /// The message could not be stored right now (e.g. the broker is down); it was not sent.
    Unavailable,
    /// A `refresh` frame's token was refused (forged, expired, or for another user);
    /// the connection keeps the token it had.
    InvalidToken,
    /// The token may not post in this room (its `publish` claim); nothing was sent.
    Forbidden,
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidFrame => "invalid_frame",
            ErrorCode::EmptyMessage => "empty_message",
            ErrorCode::MessageTooLong => "message_too_long",
            ErrorCode::InvalidContent => "invalid_content",
            ErrorCode::BinaryNotSupported => "binary_not_supported",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// A client frame the server refuses, with the error to report back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
    /// The refused frame's `ref`, when it had a valid one.
    pub reference: Option<String>,
}

impl FrameError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        FrameError {
            code,
            message: message.into(),
            reference: None,
        }
    }

    fn with_ref(mut self, reference: Option<String>) -> Self {
        self.reference = reference;
        self
    }

    pub fn into_frame(self) -> ServerFrame {
        ServerFrame::error_for(self.code, self.message, self.reference)
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for FrameError {}

impl ClientFrame {
    /// Serializes to JSON text. Infallible: every field is a plain string.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("client frames always serialize")
    }

    /// Parses and validates a text frame from a client.
    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(err) => return Err(classify_parse_error(text, err)),
        };
        if let ClientFrame::Message { content, reference } = &frame {
            if let Some(reference) = reference {
                validate_ref(reference)?;
            }
            validate_content(content).map_err(|err| err.with_ref(reference.clone()))?;
        }
        Ok(frame)
    }
}

/// Checks a message's `ref`: 1–[`MAX_REF_CHARS`] characters, none of them control
/// characters.
pub fn validate_ref(reference: &str) -> Result<(), FrameError> {
    let chars = reference.chars().count();
    if chars == 0 || chars > MAX_REF_CHARS || reference.chars().any(char::is_control) {
        return Err(FrameError::new(
            ErrorCode::InvalidFrame,
            format!("\"ref\" must be 1 to {MAX_REF_CHARS} printable characters"),
        ));
    }
    Ok(())
}

/// Tells apart "not JSON", "unknown type" and "bad fields" — the rare path, so a second parse is fine.
fn classify_parse_error(text: &str, err: serde_json::Error) -> FrameError {
    let object = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).ok();
    match object
        .as_ref()
        .and_then(|object| object.get("type")?.as_str())
    {
        None => FrameError::new(
            ErrorCode::InvalidJson,
            "expected a JSON object with a string \"type\" field",
        ),
        Some(kind @ ("message" | "pong" | "refresh" | "typing")) => FrameError::new(
            ErrorCode::InvalidFrame,
            format!("invalid {kind:?} frame: {err}"),
        )
        // Name the refused message when its `ref` at least is usable.
        .with_ref(
            object
                .as_ref()
                .and_then(|object| object.get("ref")?.as_str())
                .filter(|reference| validate_ref(reference).is_ok())
                .map(str::to_owned),
        ),
        Some(kind) => FrameError::new(
            ErrorCode::UnknownType,
            format!("unknown frame type {kind:?}"),
        ),
    }
}

/// Checks a chat message's content: not blank, at most [`MAX_CONTENT_CHARS`] characters.
pub fn validate_content(content: &str) -> Result<(), FrameError> {
    if content.trim().is_empty() {
        return Err(FrameError::new(ErrorCode::EmptyMessage, "message is empty"));
    }
    // Control characters show as nothing (or break a terminal), and each costs six
    // bytes of JSON in every copy of the message.
    if content
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FrameError::new(
            ErrorCode::InvalidContent,
            "message contains control characters; only line breaks and tabs are allowed",
        ));
    }
    let chars = content.chars().count();
    if chars > MAX_CONTENT_CHARS {
        return Err(FrameError::new(
            ErrorCode::MessageTooLong,
            format!("message has {chars} characters; the limit is {MAX_CONTENT_CHARS}"),
        ));
    }
    Ok(())
}

/// Why a room name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomNameError {
    Empty,
    TooLong,
    InvalidCharacter(char),
    /// Only `.`, `_` and `-`: names like `..` cannot even be opened in a browser.
    NoLetterOrDigit,
}

impl fmt::Display for RoomNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomNameError::Empty => f.write_str("room name is empty"),
            RoomNameError::TooLong => write!(
                f,
                "room name is longer than {MAX_ROOM_NAME_CHARS} characters"
            ),
            RoomNameError::InvalidCharacter(c) => write!(
                f,
                "room name may only contain letters, digits, '_', '.' and '-' (found {c:?})"
            ),
            RoomNameError::NoLetterOrDigit => {
                f.write_str("room name needs at least one letter or digit")
            }
        }
    }
}

impl std::error::Error for RoomNameError {}

/// A room name that passed [`validate_room_name`]: parsed once where it enters (the
/// server's admission), then trusted everywhere behind it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(name: &str) -> Result<RoomName, RoomNameError> {
        validate_room_name(name)?;
        Ok(RoomName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RoomName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Room names: 1–64 characters of `[A-Za-z0-9_.-]`.
pub fn validate_room_name(name: &str) -> Result<(), RoomNameError> {
    if name.is_empty() {
        return Err(RoomNameError::Empty);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(RoomNameError::InvalidCharacter(c));
    }
    // Only ASCII is left, so bytes == characters.
    if name.len() > MAX_ROOM_NAME_CHARS {
        return Err(RoomNameError::TooLong);
    }
    if !name.bytes().any(|b| b.is_ascii_alphanumeric()) {
        return Err(RoomNameError::NoLetterOrDigit);
    }
    Ok(())
}

/// Why a display name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayNameError {
    Empty,
    TooLong,
    NotPrintable,
}

impl fmt::Display for DisplayNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisplayNameError::Empty => f.write_str("name is empty"),
            DisplayNameError::TooLong => {
                write!(f, "name is longer than {MAX_DISPLAY_NAME_CHARS} characters")
            }
            DisplayNameError::NotPrintable => {
                f.write_str("name contains control or invisible characters")
            }
        }
    }
}

impl std::error::Error for DisplayNameError {}

/// Trims a display name and checks it: 1–32 characters, none of them a control
/// character or one of [`is_hidden_in_names`]. Returns the trimmed name.
pub fn normalize_display_name(name: &str) -> Result<&str, DisplayNameError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DisplayNameError::Empty);
    }
    if name
        .chars()
        .any(|c| c.is_control() || is_hidden_in_names(c))
    {
        return Err(DisplayNameError::NotPrintable);
    }
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(DisplayNameError::TooLong);
    }
    Ok(name)
}

/// Characters that let one name pass for another: Unicode's format characters
/// (category Cf, Unicode 16: bidi overrides and isolates, zero-width spaces and
/// joiners, the byte-order mark, soft hyphens, invisible operators, tags...), the
/// line and paragraph separators (Zl, Zp) and every space but U+0020 (Zs).
///
/// Written out rather than taken from a Unicode tables crate: the set is small and
/// closed, and the tables would ship in the browser's WASM. (Emoji sequences joined
/// with U+200D are refused with it.)
pub fn is_hidden_in_names(c: char) -> bool {
    matches!(
        c,
        // Cf
        '\u{AD}'
            | '\u{600}'..='\u{605}'
            | '\u{61C}'
            | '\u{6DD}'
            | '\u{70F}'
            | '\u{890}'..='\u{891}'
            | '\u{8E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
            // Zl, Zp
            | '\u{2028}'
            | '\u{2029}'
            // Zs other than U+0020
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// `POST /api/token` request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    pub name: String,
}

/// `POST /api/token` response body: a freshly issued token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    pub token: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
    /// The token's lifetime in seconds, from when it was issued: a client schedules
    /// its renewal by its own clock, unaffected by skew with the server's.
    pub expires_in: u64,
}

/// A live room as listed by `GET /api/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub name: String,
    /// Distinct users present.
    pub members: usize,
    /// Open connections, counting every tab of a user.
    pub connections: usize,
}

/// The body of every HTTP API error: `{"error": "<code>", "message": "<human text>"}`,
/// plus `"field"` naming the request field at fault when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub error: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `GET /api/rooms/{room}/messages` response: retained messages, oldest first, each
/// as members receive it (with `"type":"message"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePage {
    pub messages: Vec<ChatMessage>,
    /// Older messages are retained before the first of these.
    pub has_more: bool,
}

/// The most messages one `GET /api/rooms/{room}/messages` returns, and how many
/// without `limit`.
pub const MAX_PAGE: usize = 100;
pub const DEFAULT_PAGE: usize = 50;

/// How a client should react to a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// Do not reconnect: the same request would fail again.
    Never,
    /// Reconnect (with backoff), passing `since` to recover missed messages.
    WithBackoff,
    /// Fetch a fresh token first, then reconnect.
    WithFreshToken,
}

/// WebSocket close codes the server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    Normal = 1000,
    GoingAway = 1001,
    /// Pings (or pongs) faster than any keepalive needs: a flood.
    PolicyViolation = 1008,
    TooBig = 1009,
    ServerFull = 1013,
    Unauthorized = 4001,
    TokenExpired = 4002,
    /// The token may not join this room (its `rooms` claim, `--guest-rooms`), or the
    /// user is banned for now.
    Forbidden = 4003,
    InvalidRoom = 4004,
    TooSlow = 4008,
    HeartbeatTimeout = 4009,
    /// Removed by the application's backend (server API `disconnect`).
    Removed = 4010,
    /// More open sockets for one user than the server allows.
    TooManyConnections = 4029,
}

impl CloseCode {
    pub const ALL: [CloseCode; 13] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::PolicyViolation,
        CloseCode::TooBig,
        CloseCode::ServerFull,
        CloseCode::Unauthorized,
        CloseCode::TokenExpired,
        CloseCode::Forbidden,
        CloseCode::InvalidRoom,
        CloseCode::TooSlow,
        CloseCode::HeartbeatTimeout,
        CloseCode::Removed,
        CloseCode::TooManyConnections,
    ];

    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn from_code(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The close reason the server sends with this code.
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "Normal closure",
            CloseCode::GoingAway => "Server shutting down",
            CloseCode::PolicyViolation => "Too many pings",
            CloseCode::TooBig => "Frame too big",
            CloseCode::ServerFull => "Server full, try again later",
            CloseCode::Unauthorized => "Unauthorized",
            CloseCode::TokenExpired => "Token expired",
            CloseCode::Forbidden => "Not allowed in this room",
            CloseCode::Removed => "Removed by the server",
            CloseCode::InvalidRoom => "Invalid room name",
            CloseCode::TooSlow => "Too slow to keep up",
            CloseCode::HeartbeatTimeout => "Heartbeat timeout",
            CloseCode::TooManyConnections => "Too many connections for this user",
        }
    }

    pub fn reconnect(self) -> Reconnect {
        match self {
            // Retrying these would fail the same way, or undo a deliberate close.
            CloseCode::Normal
            | CloseCode::Unauthorized
            | CloseCode::InvalidRoom
            | CloseCode::Forbidden
            | CloseCode::Removed
            | CloseCode::PolicyViolation => Reconnect::Never,
            CloseCode::TokenExpired => Reconnect::WithFreshToken,
            // 1009 only drops the oversized frame; the room itself is still usable.
            CloseCode::GoingAway
            | CloseCode::TooBig
            | CloseCode::ServerFull
            | CloseCode::TooSlow
            | CloseCode::HeartbeatTimeout
            // Other sockets of the user may close meanwhile.
            | CloseCode::TooManyConnections => Reconnect::WithBackoff,
        }
    }

    pub fn should_reconnect(self) -> bool {
        self.reconnect() != Reconnect::Never
    }
}

/// Policy for any close code a client observes, including ones the server never
/// sends itself (1006 for a dropped connection, 1011 for a server error, ...).
pub fn reconnect_for_code(code: u16) -> Reconnect {
    match CloseCode::from_code(code) {
        Some(known) => known.reconnect(),
        None => Reconnect::WithBackoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn client_frames_match_the_wire_format() {
        assert_eq!(
            ClientFrame::parse(r#"{"type":"message","content":"hi"}"#).unwrap(),
            ClientFrame::Message {
                content: "hi".into(),
                reference: None,
            }
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"message","content":"hi","ref":"r-1"}"#).unwrap(),
            ClientFrame::Message {
                content: "hi".into(),
                reference: Some("r-1".into()),
            }
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"pong"}"#).unwrap(),
            ClientFrame::Pong
        );
        let text = ClientFrame::Message {
            content: "hi".into(),
            reference: None,
        }
        .to_json();
        assert_eq!(text, r#"{"type":"message","content":"hi"}"#);
        let text = ClientFrame::Message {
            content: "hi".into(),
            reference: Some("r-1".into()),
        }
        .to_json();
        assert_eq!(text, r#"{"type":"message","content":"hi","ref":"r-1"}"#);
        assert_eq!(ClientFrame::Pong.to_json(), r#"{"type":"pong"}"#);
        assert_eq!(ClientFrame::Typing.to_json(), r#"{"type":"typing"}"#);
        assert_eq!(
            ClientFrame::parse(r#"{"type":"typing","added_later":1}"#).unwrap(),
            ClientFrame::Typing
        );
        let refresh = ClientFrame::Refresh {
            token: "a.b.c".into(),
        };
        assert_eq!(refresh.to_json(), r#"{"type":"refresh","token":"a.b.c"}"#);
        assert_eq!(ClientFrame::parse(&refresh.to_json()).unwrap(), refresh);
    }

    #[test]
    fn the_token_travels_as_a_subprotocol() {
        let offered = token_subprotocols("a.b.c");
        assert_eq!(
            offered,
            ["chorus.v1".to_owned(), "chorus.token.a.b.c".to_owned()]
        );
        assert_eq!(
            token_from_subprotocols(["chorus.v1, chorus.token.a.b.c"]),
            Some("a.b.c")
        );
        assert_eq!(
            token_from_subprotocols(["chorus.v1", "chorus.token.x.y.z"]),
            Some("x.y.z")
        );
        assert_eq!(token_from_subprotocols(["chorus.v1"]), None);
        assert_eq!(token_from_subprotocols(["chorus.token."]), None);
        assert_eq!(token_from_subprotocols([]), None);
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

    #[test]
    fn error_code_names_match_serde() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::UnknownType,
            ErrorCode::InvalidFrame,
            ErrorCode::EmptyMessage,
            ErrorCode::MessageTooLong,
            ErrorCode::InvalidContent,
            ErrorCode::BinaryNotSupported,
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
            ErrorCode::InvalidToken,
            ErrorCode::Forbidden,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                Value::String(code.as_str().into())
            );
        }
    }

    #[test]
    fn bad_client_frames_are_classified() {
        let code = |text: &str| ClientFrame::parse(text).unwrap_err().code;
        assert_eq!(code("not json"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"["message"]"#), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"content":"x"}"#), ErrorCode::InvalidJson);
        assert_eq!(
            code(r#"{"type":"shout","content":"x"}"#),
            ErrorCode::UnknownType
        );
        assert_eq!(code(r#"{"type":"message"}"#), ErrorCode::InvalidFrame);
        assert_eq!(code(r#"{"type":"refresh"}"#), ErrorCode::InvalidFrame);
        assert_eq!(
            code(r#"{"type":"message","content":5}"#),
            ErrorCode::InvalidFrame
        );
        assert_eq!(
            code(r#"{"type":"message","content":"  "}"#),
            ErrorCode::EmptyMessage
        );
        let long = format!(
            r#"{{"type":"message","content":"{}"}}"#,
            "é".repeat(MAX_CONTENT_CHARS + 1)
        );
        assert_eq!(code(&long), ErrorCode::MessageTooLong);
        let at_limit = format!(
            r#"{{"type":"message","content":"{}"}}"#,
            "é".repeat(MAX_CONTENT_CHARS)
        );
        assert!(ClientFrame::parse(&at_limit).is_ok());
    }

    #[test]
    fn content_keeps_line_breaks_and_tabs_but_no_other_control_character() {
        assert!(validate_content("two\nlines\tand a tab").is_ok());
        assert!(validate_content("emoji 🎉 and \u{202E} are text").is_ok());
        for bad in [
            "\0",
            "a\rb",
            "bell\u{7}",
            "esc\u{1B}[31m",
            "del\u{7F}",
            "c1\u{85}",
            "\u{9F}",
        ] {
            assert_eq!(
                validate_content(bad).unwrap_err().code,
                ErrorCode::InvalidContent,
                "{bad:?}"
            );
        }
        let frame = json!({"type":"message","content":"a\u{0}b","ref":"r-9"}).to_string();
        let err = ClientFrame::parse(&frame).unwrap_err();
        assert_eq!(
            (err.code, err.reference),
            (ErrorCode::InvalidContent, Some("r-9".into()))
        );
    }

    #[test]
    fn refs_are_checked_and_named_in_errors() {
        let error = |text: &str| ClientFrame::parse(text).unwrap_err();
        let long = "r".repeat(MAX_REF_CHARS + 1);
        for bad in ["", long.as_str(), "a\u{7}b"] {
            let frame = json!({"type":"message","content":"hi","ref":bad}).to_string();
            let err = error(&frame);
            assert_eq!(err.code, ErrorCode::InvalidFrame, "{bad:?}");
            assert_eq!(err.reference, None, "an invalid ref is not echoed");
        }
        let at_limit = json!({"type":"message","content":"hi","ref":"r".repeat(MAX_REF_CHARS)});
        assert!(ClientFrame::parse(&at_limit.to_string()).is_ok());
        // A valid ref names the refused message.
        let empty = error(r#"{"type":"message","content":" ","ref":"r-1"}"#);
        assert_eq!(
            (empty.code, empty.reference),
            (ErrorCode::EmptyMessage, Some("r-1".into()))
        );
        let mistyped = error(r#"{"type":"message","content":5,"ref":"r-2"}"#);
        assert_eq!(
            (mistyped.code, mistyped.reference),
            (ErrorCode::InvalidFrame, Some("r-2".into()))
        );
        assert_eq!(
            error(r#"{"type":"message","content":5,"ref":7}"#).reference,
            None
        );
    }

    #[test]
    fn room_names() {
        assert!(validate_room_name("lobby").is_ok());
        assert!(validate_room_name("A-z_0.9").is_ok());
        assert!(validate_room_name(&"a".repeat(64)).is_ok());
        assert_eq!(validate_room_name(""), Err(RoomNameError::Empty));
        assert_eq!(
            validate_room_name(&"a".repeat(65)),
            Err(RoomNameError::TooLong)
        );
        assert_eq!(
            validate_room_name("with space"),
            Err(RoomNameError::InvalidCharacter(' '))
        );
        assert_eq!(
            validate_room_name("café"),
            Err(RoomNameError::InvalidCharacter('é'))
        );
        assert_eq!(
            validate_room_name("a/b"),
            Err(RoomNameError::InvalidCharacter('/'))
        );
        for dots in [".", "..", "...", "-", "_.-"] {
            assert_eq!(
                validate_room_name(dots),
                Err(RoomNameError::NoLetterOrDigit),
                "{dots}"
            );
        }
        assert!(validate_room_name(".x.").is_ok());
    }

    #[test]
    fn room_name_parses_only_valid_names() {
        let name = RoomName::parse("lobby-2").unwrap();
        assert_eq!(name.as_str(), "lobby-2");
        assert_eq!(name.to_string(), "lobby-2");
        assert_eq!(
            RoomName::parse("a b"),
            Err(RoomNameError::InvalidCharacter(' '))
        );
        assert_eq!(RoomName::parse(""), Err(RoomNameError::Empty));
    }

    #[test]
    fn display_names() {
        assert_eq!(normalize_display_name("  alice "), Ok("alice"));
        assert_eq!(normalize_display_name("Zoë 🎉"), Ok("Zoë 🎉"));
        assert_eq!(normalize_display_name("   "), Err(DisplayNameError::Empty));
        assert_eq!(
            normalize_display_name(&"é".repeat(33)),
            Err(DisplayNameError::TooLong)
        );
        assert!(normalize_display_name(&"é".repeat(32)).is_ok());
        assert_eq!(
            normalize_display_name("a\u{7}b"),
            Err(DisplayNameError::NotPrintable)
        );
        assert_eq!(normalize_display_name("Ben Smith"), Ok("Ben Smith"));
        assert_eq!(normalize_display_name("李雷"), Ok("李雷"));
        // Names that would pass for another, or hide text.
        for bad in [
            "evil\u{202E}nimda",
            "ad\u{200B}min",
            "a\u{200D}b",
            "\u{FEFF}alice",
            "two\u{2028}lines",
            "two\u{2029}paras",
            "Ben\u{A0}Smith",
            "wide\u{3000}space",
            "iso\u{2066}late",
            "soft\u{AD}hyphen",
            "tag\u{E0041}",
        ] {
            assert_eq!(
                normalize_display_name(bad),
                Err(DisplayNameError::NotPrintable),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn close_codes_and_reconnect_policy() {
        let expected = [
            (1000, Reconnect::Never),
            (1001, Reconnect::WithBackoff),
            (1008, Reconnect::Never),
            (1009, Reconnect::WithBackoff),
            (1013, Reconnect::WithBackoff),
            (4001, Reconnect::Never),
            (4002, Reconnect::WithFreshToken),
            (4003, Reconnect::Never),
            (4004, Reconnect::Never),
            (4008, Reconnect::WithBackoff),
            (4009, Reconnect::WithBackoff),
            (4010, Reconnect::Never),
            (4029, Reconnect::WithBackoff),
        ];
        assert_eq!(
            expected.len(),
            CloseCode::ALL.len(),
            "every code has a policy here"
        );
        for (code, policy) in expected {
            let close = CloseCode::from_code(code).unwrap();
            assert_eq!(close.code(), code);
            assert_eq!(close.reconnect(), policy, "close code {code}");
            assert_eq!(close.should_reconnect(), policy != Reconnect::Never);
        }
        assert_eq!(reconnect_for_code(1006), Reconnect::WithBackoff);
        assert_eq!(CloseCode::from_code(4005), None);
    }
}
