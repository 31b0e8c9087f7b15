//! What a client sends: [`ClientFrame`], its parsing and validation, and the
//! [`ErrorCode`] / [`FrameError`] a refused frame is answered with (the connection
//! stays open).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_CONTENT_CHARS, MAX_REF_CHARS};
#[cfg(doc)]
use crate::limits::{REF_WINDOW_SECS, TYPING_EVERY_MS, TYPING_MIN_GAP_MS};
use crate::server::ServerFrame;

/// A frame the client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// A chat message for the room.
    Message {
        /// The text: 1–[`MAX_CONTENT_CHARS`] characters, not blank, no control characters but line breaks and tabs.
        content: String,
        /// Chosen by the client (1–64 characters) to match the `ack` or `error` this
        /// message causes, and to send it again safely: the same user sending the
        /// same `ref` to the same room within [`REF_WINDOW_SECS`] gets the original
        /// id back instead of a second message.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// The answer to the server's `ping`.
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
        /// The renewed JWT.
        token: String,
    },
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
    /// Blank content.
    EmptyMessage,
    /// More than [`MAX_CONTENT_CHARS`] characters.
    MessageTooLong,
    /// Control characters other than line breaks and tabs.
    InvalidContent,
    /// Binary WebSocket frames are not part of the protocol.
    BinaryNotSupported,
    /// Faster than the connection's rate limit; the message was not sent.
    RateLimited,
    /// The message could not be stored right now (e.g. the broker is down); it was not sent.
    Unavailable,
    /// A `refresh` frame's token was refused (forged, expired, or for another user);
    /// the connection keeps the token it had.
    InvalidToken,
    /// The token may not post in this room (its `publish` claim); nothing was sent.
    Forbidden,
    /// A code this build does not know yet.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it travels in JSON (`"rate_limited"`).
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
    /// What was wrong.
    pub code: ErrorCode,
    /// Says what was wrong in words, for people.
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

    /// The `error` frame that tells the client.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

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
}
