//! Room names and display names: what each may contain, checked where a name
//! enters and trusted behind it.

use std::fmt;

use crate::limits::{MAX_DISPLAY_NAME_CHARS, MAX_ROOM_NAME_CHARS, MAX_USER_ID_CHARS};

/// Why a room name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomNameError {
    /// No characters at all.
    Empty,
    /// More than [`MAX_ROOM_NAME_CHARS`] characters.
    TooLong,
    /// A character outside `[A-Za-z0-9_.-]`.
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
    /// Checks `name` ([`validate_room_name`]) and keeps it.
    pub fn parse(name: &str) -> Result<RoomName, RoomNameError> {
        validate_room_name(name)?;
        Ok(RoomName(name.to_owned()))
    }

    /// The name.
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
    /// Nothing left after trimming.
    Empty,
    /// More than [`MAX_DISPLAY_NAME_CHARS`] characters.
    TooLong,
    /// A control character, or one that hides in names ([`is_hidden_in_names`]).
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

/// Whether `id` may be a user id: 1–[`MAX_USER_ID_CHARS`] characters, none of them a
/// control character. Ids are compared exactly, never shown in place of a name
/// unless [`display_name_for_id`] allows it.
pub fn is_valid_user_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= MAX_USER_ID_CHARS && !id.chars().any(char::is_control)
}

/// The name shown for a user whose token gives none: its id, held to the display
/// name rules; an id longer than a name is cut short, ending in `…`. `None` when the
/// id cannot be shown as a name at all (it has characters that hide in names).
pub fn display_name_for_id(id: &str) -> Option<String> {
    match normalize_display_name(id) {
        Ok(name) => Some(name.to_owned()),
        Err(DisplayNameError::TooLong) => {
            let short: String = id.trim().chars().take(MAX_DISPLAY_NAME_CHARS - 1).collect();
            normalize_display_name(&format!("{}…", short.trim_end()))
                .ok()
                .map(str::to_owned)
        }
        Err(_) => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_bounded_and_printable() {
        assert!(is_valid_user_id("u-42"));
        assert!(is_valid_user_id(&"x".repeat(MAX_USER_ID_CHARS)));
        assert!(!is_valid_user_id(&"x".repeat(MAX_USER_ID_CHARS + 1)));
        assert!(!is_valid_user_id(""));
        assert!(!is_valid_user_id("a\nb"));
    }

    #[test]
    fn an_id_shown_as_a_name_follows_the_name_rules() {
        assert_eq!(display_name_for_id("alice").as_deref(), Some("alice"));
        let uuid = "6f1c2b1e-8a4d-4c1b-9e2f-3a5b7c9d0e1f";
        let shown = display_name_for_id(uuid).unwrap();
        assert_eq!(shown.chars().count(), MAX_DISPLAY_NAME_CHARS);
        assert!(shown.starts_with("6f1c2b1e-8a4d") && shown.ends_with('…'));
        assert!(normalize_display_name(&shown).is_ok());
        assert_eq!(display_name_for_id("evil\u{202E}cod"), None);
        assert_eq!(display_name_for_id("   "), None);
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
}
