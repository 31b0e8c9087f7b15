//! What the engine writes into Redis and reads back: message frames built around an
//! id chosen inside Redis, Pub/Sub payloads, and stream entries.

use chorus_protocol::message_around_id;
use redis::streams::StreamRangeReply;

use crate::hub::fanout::FrameBytes;
use crate::hub::fanout::seats::FrameId;

/// A message frame split around its id, so the id can be chosen inside Redis:
/// `prefix + id + suffix` is the frame's JSON.
pub(super) fn message_template(user_id: &str, user: &str, content: String) -> (String, String) {
    message_around_id(user_id, user, content, crate::hub::engine::now_rfc3339())
}

/// When the publishing server stamped a message frame: its `timestamp`, which is
/// serialized last.
pub(super) fn stamped_at(frame: &str) -> Option<std::time::SystemTime> {
    let (_, stamp) = frame.strip_suffix("\"}")?.rsplit_once("\"timestamp\":\"")?;
    let stamp =
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).ok()?;
    Some(std::time::SystemTime::from(stamp))
}

/// `"<id> <frame>"` → (`Some(id)` for messages, `None` for `0`, frame).
pub(super) fn parse_payload(payload: &[u8]) -> Option<(FrameId, FrameBytes)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (id, frame) = text.split_once(' ')?;
    let id: u64 = id.parse().ok()?;
    Some(((id > 0).then_some(id), FrameBytes::from(frame.to_owned())))
}

/// Stream entries (field `f` holds the frame) → (id, frame), in stream order.
pub(super) fn stored_frames(entries: StreamRangeReply) -> Vec<(u64, FrameBytes)> {
    entries
        .ids
        .into_iter()
        .filter_map(|entry| {
            let id = entry_id(&entry.id)?;
            let frame: String = entry.get("f")?;
            Some((id, FrameBytes::from(frame)))
        })
        .collect()
}

/// `"<id>-0"` → id.
pub(super) fn entry_id(entry: &str) -> Option<u64> {
    entry.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_template_rebuilds_the_frame_around_any_id() {
        let (prefix, suffix) = message_template("\"id\":0", "a\"id\":0,", "x \"id\":0, y".into());
        let frame = format!("{prefix}1764293000000001{suffix}");
        let parsed: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(parsed["id"], 1764293000000001_u64);
        assert_eq!(parsed["user_id"], "\"id\":0");
        assert_eq!(parsed["user"], "a\"id\":0,");
        assert_eq!(parsed["content"], "x \"id\":0, y");
        assert_eq!(parsed["type"], "message");
    }

    #[test]
    fn a_message_says_when_it_was_stamped() {
        let (prefix, suffix) = message_template("u", "n", "\"timestamp\":\"1999".into());
        let frame = format!("{prefix}7{suffix}");
        let stamped = stamped_at(&frame).expect("a timestamp");
        let age = std::time::SystemTime::now()
            .duration_since(stamped)
            .unwrap();
        assert!(age < std::time::Duration::from_secs(60), "{age:?}");
        assert_eq!(stamped_at("{\"type\":\"system\"}"), None);
    }

    #[test]
    fn payloads_carry_an_id_or_zero() {
        let (id, frame) = parse_payload(b"42 {\"type\":\"message\"}").unwrap();
        assert_eq!(id, Some(42));
        assert_eq!(frame.as_str(), "{\"type\":\"message\"}");
        assert_eq!(parse_payload(b"0 {}").unwrap().0, None);
        assert!(parse_payload(b"nonsense").is_none());
        assert!(parse_payload(b"-1 {}").is_none());
        assert!(parse_payload(b"\xff {}").is_none());
    }

    #[test]
    fn entry_ids_are_the_message_ids() {
        assert_eq!(entry_id("1764293000000001-0"), Some(1764293000000001));
        assert_eq!(entry_id("nonsense"), None);
        assert_eq!(entry_id("x-0"), None);
    }
}
