//! The chat protocol as the reconnecting socket sees it: frames in and out, pings
//! answered, `welcome` as ready, message ids as the resume point, close codes.

use std::time::Duration;

use chorus_protocol::{ClientFrame, Reconnect, ServerFrame, reconnect_for_code};

use crate::socket::{Codec, Next};

/// The chat protocol as the reconnecting socket sees it.
pub struct ChatCodec;

impl Codec for ChatCodec {
    type Incoming = ServerFrame;
    type Outgoing = ClientFrame;
    /// The last message id seen: the next connection asks for `since=<id>`.
    type Resume = u64;

    fn encode(frame: &ClientFrame) -> String {
        frame.to_json()
    }

    fn decode(text: &str) -> Result<ServerFrame, String> {
        ServerFrame::from_json(text).map_err(|err| err.to_string())
    }

    fn auto_reply(frame: &ServerFrame) -> Option<ClientFrame> {
        matches!(frame, ServerFrame::Ping).then_some(ClientFrame::Pong)
    }

    fn is_ready(frame: &ServerFrame) -> bool {
        matches!(frame, ServerFrame::Welcome { .. })
    }

    fn resume_point(frame: &ServerFrame, current: Option<&u64>) -> Option<u64> {
        match frame {
            ServerFrame::Message(message) => Some(message.id),
            // Seen nothing yet: resume after whatever the room had when we joined.
            // With a resume point already, the backlog that follows moves it.
            ServerFrame::Welcome { last_id, .. } if current.is_none() => Some(*last_id),
            _ => None,
        }
    }

    /// The server pings every interval and gives up after the timeout: hearing
    /// nothing for both together means the connection is gone.
    fn liveness_timeout(frame: &ServerFrame) -> Option<Duration> {
        match frame {
            ServerFrame::Welcome {
                heartbeat_interval_ms,
                heartbeat_timeout_ms,
                ..
            } => Some(Duration::from_millis(
                heartbeat_interval_ms.saturating_add(*heartbeat_timeout_ms),
            )),
            _ => None,
        }
    }

    fn after_close(code: u16) -> Next {
        match reconnect_for_code(code) {
            Reconnect::Never => Next::Stop,
            Reconnect::WithBackoff => Next::Retry,
            Reconnect::WithFreshToken => Next::Renew,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::ChatMessage;

    #[test]
    fn the_codec_answers_pings_and_is_ready_on_welcome() {
        let ping = ChatCodec::decode(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(ChatCodec::auto_reply(&ping), Some(ClientFrame::Pong));
        assert_eq!(ChatCodec::encode(&ClientFrame::Pong), r#"{"type":"pong"}"#);
        let welcome = ChatCodec::decode(WELCOME).unwrap();
        assert!(ChatCodec::is_ready(&welcome));
        assert_eq!(ChatCodec::auto_reply(&welcome), None);
        assert!(!ChatCodec::is_ready(&ping));
        assert!(ChatCodec::decode("not json").is_err());
    }

    const WELCOME: &str = r#"{"type":"welcome","room":"r","user_id":"u1","user":"u","users":[],"recovered":true,
        "last_id":41,"heartbeat_interval_ms":30000,"heartbeat_timeout_ms":10000}"#;

    #[test]
    fn messages_and_a_first_welcome_are_the_resume_points() {
        let message = ServerFrame::Message(ChatMessage {
            id: 42,
            user_id: "u-a".into(),
            user: "a".into(),
            content: "hi".into(),
            timestamp: "2026-11-28T00:00:00.000Z".into(),
        });
        assert_eq!(ChatCodec::resume_point(&message, None), Some(42));
        assert_eq!(ChatCodec::resume_point(&message, Some(&7)), Some(42));
        assert_eq!(
            ChatCodec::resume_point(&ServerFrame::joined("u-a", "a"), None),
            None
        );
        let welcome = ChatCodec::decode(WELCOME).unwrap();
        assert_eq!(
            ChatCodec::resume_point(&welcome, None),
            Some(41),
            "seen nothing yet"
        );
        assert_eq!(
            ChatCodec::resume_point(&welcome, Some(&7)),
            None,
            "keeps since=7"
        );
    }

    #[test]
    fn the_welcome_sets_the_liveness_timeout() {
        let welcome = ChatCodec::decode(WELCOME).unwrap();
        assert_eq!(
            ChatCodec::liveness_timeout(&welcome),
            Some(Duration::from_secs(40))
        );
        assert_eq!(ChatCodec::liveness_timeout(&ServerFrame::Ping), None);
    }

    #[test]
    fn close_codes_decide_what_follows() {
        let expected = [
            (1000, Next::Stop),
            (1001, Next::Retry),
            (1006, Next::Retry),
            (1009, Next::Retry),
            (1011, Next::Retry),
            (1013, Next::Retry),
            (4001, Next::Stop),
            (4002, Next::Renew),
            (4003, Next::Stop),
            (4004, Next::Stop),
            (4008, Next::Retry),
            (4010, Next::Stop),
            (4009, Next::Retry),
            (1008, Next::Stop),
            (4029, Next::Retry),
        ];
        for (code, next) in expected {
            assert_eq!(ChatCodec::after_close(code), next, "close code {code}");
        }
    }
}
