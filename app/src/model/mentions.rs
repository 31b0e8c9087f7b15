//! Desktop notifications for messages that mention the reader: what counts as a
//! mention, and whether notifications are on.
//!
//! Pure data: the room page asks the browser ([`crate::room::ChatSocket::mentioned`]
//! says which live messages mention the reader), and these rules are unit-tested
//! natively.

/// Whether `content` mentions the user called `name`: the name as a whole word (or
/// words), in any case, with or without an `@` before it. `lowercase` folds case:
/// the browser's own in the client (Rust's `str::to_lowercase` would add its
/// Unicode tables, 3 KB, to the WASM), `str::to_lowercase` elsewhere.
pub fn mentions(content: &str, name: &str, lowercase: impl Fn(&str) -> String) -> bool {
    let name = lowercase(name.trim());
    if name.is_empty() {
        return false;
    }
    let text = lowercase(content);
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(&name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// Where mention notifications stand for the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alerts {
    /// This browser has no notifications (or the page is rendered on the server).
    Unsupported,
    /// Supported and not asked for, or turned off.
    Off,
    /// Turned on and permitted.
    On,
    /// The reader (or a policy) refused notifications for this site; only the
    /// browser's site settings can allow them again.
    Blocked,
}

/// What the browser's permission (`Notification.permission`: `granted`, `denied`
/// or `default`) and the reader's choice make of notifications. On only when both
/// agree: a permission granted some other time never turns them on by itself.
pub fn alerts(supported: bool, chosen: bool, permission: &str) -> Alerts {
    match (supported, permission) {
        (false, _) => Alerts::Unsupported,
        (true, "denied") => Alerts::Blocked,
        (true, "granted") if chosen => Alerts::On,
        _ => Alerts::Off,
    }
}

/// A notification's text: at most this many characters of the message.
pub const BODY_CHARS: usize = 200;

/// The body of a notification for `content`: its first [`BODY_CHARS`]
/// characters, with an ellipsis when cut.
pub fn body(content: &str) -> String {
    match content.char_indices().nth(BODY_CHARS) {
        Some((cut, _)) => format!("{}…", &content[..cut]),
        None => content.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mentioned(content: &str, name: &str) -> bool {
        mentions(content, name, str::to_lowercase)
    }

    #[test]
    fn a_mention_is_the_name_as_a_word_in_any_case() {
        for content in [
            "alice",
            "hey @Alice, look",
            "ALICE?",
            "ask alice.",
            "(alice)",
            "thanks Alice\nand bob",
        ] {
            assert!(mentioned(content, "Alice"), "{content:?}");
        }
        for content in ["malice", "alices", "alice_b", "alice2", "ali ce", ""] {
            assert!(!mentioned(content, "Alice"), "{content:?}");
        }
    }

    #[test]
    fn names_of_several_words_and_scripts_are_mentioned_whole() {
        assert!(mentioned("ping Mary Ann please", "Mary Ann"));
        assert!(!mentioned("ping Mary please", "Mary Ann"));
        assert!(mentioned("Привет, Мария!", "мария"));
        assert!(mentioned("おはよう 太郎 さん", "太郎"));
        // A later occurrence counts when an earlier one is part of a word.
        assert!(mentioned("malice, alice", "alice"));
    }

    #[test]
    fn a_blank_name_is_never_mentioned() {
        assert!(!mentioned("anything", ""));
        assert!(!mentioned("   ", "  "));
    }

    #[test]
    fn notifications_are_on_only_when_chosen_and_allowed() {
        assert_eq!(alerts(false, true, "granted"), Alerts::Unsupported);
        assert_eq!(alerts(true, true, "granted"), Alerts::On);
        assert_eq!(alerts(true, false, "granted"), Alerts::Off);
        assert_eq!(alerts(true, true, "default"), Alerts::Off);
        assert_eq!(alerts(true, false, "denied"), Alerts::Blocked);
        assert_eq!(alerts(true, true, "denied"), Alerts::Blocked);
        assert_eq!(alerts(true, true, "something new"), Alerts::Off);
    }

    #[test]
    fn a_long_message_is_cut_on_a_character() {
        assert_eq!(body("short"), "short");
        let exact = "é".repeat(BODY_CHARS);
        assert_eq!(body(&exact), exact);
        let long = "é".repeat(BODY_CHARS + 1);
        assert_eq!(body(&long), format!("{}…", "é".repeat(BODY_CHARS)));
    }
}
