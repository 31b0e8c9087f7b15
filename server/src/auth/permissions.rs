//! Which rooms a token may join and post in: the `rooms` and `publish` claims (and
//! `--guest-rooms` for guest tokens). Pure, unit-tested.
//!
//! A pattern is a room name (`lobby`) or a prefix ending in `*` (`support-*`); `*`
//! alone is every room. `rooms` absent: every room; `publish` absent: the same as
//! `rooms`; `publish: []`: a read-only member.

use chorus_protocol::{RoomName, validate_room_name};

/// One room name, or a prefix (written with a trailing `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// A room's whole name.
    Exact(String),
    /// The start of room names (empty: every room).
    Prefix(String),
}

impl std::str::FromStr for Pattern {
    type Err = BadPattern;

    fn from_str(pattern: &str) -> Result<Self, BadPattern> {
        let bad = || BadPattern(pattern.to_owned());
        match pattern.strip_suffix('*') {
            Some("") => Ok(Pattern::Prefix(String::new())),
            Some(prefix) => {
                // The prefix must be the start of some valid name.
                let probe = format!("{prefix}x");
                if prefix.contains('*') || validate_room_name(&probe).is_err() {
                    return Err(bad());
                }
                Ok(Pattern::Prefix(prefix.to_owned()))
            }
            None => validate_room_name(pattern)
                .map(|()| Pattern::Exact(pattern.to_owned()))
                .map_err(|_| bad()),
        }
    }
}

/// A list of room patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPatterns(Vec<Pattern>);

impl From<Vec<Pattern>> for RoomPatterns {
    fn from(patterns: Vec<Pattern>) -> Self {
        RoomPatterns(patterns)
    }
}

/// Why a pattern list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a room name or a prefix ending in `*`")]
pub struct BadPattern(pub String);

impl RoomPatterns {
    /// Every room.
    pub fn everything() -> Self {
        RoomPatterns(vec![Pattern::Prefix(String::new())])
    }

    /// Parses each pattern; the first that is neither a room name nor a `prefix*` refuses them all.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, BadPattern> {
        patterns
            .iter()
            .map(|pattern| pattern.as_ref().parse())
            .collect::<Result<_, _>>()
            .map(RoomPatterns)
    }

    /// Whether any pattern matches `room`.
    pub fn allows(&self, room: &RoomName) -> bool {
        self.allows_name(room.as_str())
    }

    /// [`Self::allows`], for a name known to be a room's (the room list's).
    pub fn allows_name(&self, room: &str) -> bool {
        self.0.iter().any(|pattern| match pattern {
            Pattern::Exact(name) => name == room,
            Pattern::Prefix(prefix) => room.starts_with(prefix.as_str()),
        })
    }
}

/// Where one token may go and what it may say there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// The rooms it may join.
    pub join: RoomPatterns,
    /// The rooms it may post in (never beyond `join`).
    pub publish: RoomPatterns,
}

impl Permissions {
    /// Every room, both ways: a token without the claims.
    pub fn everything() -> Self {
        Permissions {
            join: RoomPatterns::everything(),
            publish: RoomPatterns::everything(),
        }
    }

    /// From the `rooms` and `publish` claims, as given (absent = `None`).
    pub fn from_claims(
        rooms: Option<&[String]>,
        publish: Option<&[String]>,
    ) -> Result<Self, BadPattern> {
        let join = match rooms {
            Some(rooms) => RoomPatterns::parse(rooms)?,
            None => RoomPatterns::everything(),
        };
        let publish = match publish {
            Some(publish) => RoomPatterns::parse(publish)?,
            None => join.clone(),
        };
        Ok(Permissions { join, publish })
    }

    /// Whether the token may join `room`.
    pub fn may_join(&self, room: &RoomName) -> bool {
        self.join.allows(room)
    }

    /// Posting needs both: no token may post where it may not be.
    pub fn may_publish(&self, room: &RoomName) -> bool {
        self.join.allows(room) && self.publish.allows(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[test]
    fn names_and_prefixes() {
        let patterns = RoomPatterns::parse(&["lobby", "support-*"]).unwrap();
        assert!(patterns.allows(&room("lobby")));
        assert!(patterns.allows(&room("support-42")));
        assert!(patterns.allows(&room("support-")), "the prefix itself");
        assert!(!patterns.allows(&room("lobby2")));
        assert!(!patterns.allows(&room("supporters")));
        assert!(
            RoomPatterns::parse(&["*"])
                .unwrap()
                .allows(&room("anything"))
        );
        assert!(
            !RoomPatterns::parse::<&str>(&[])
                .unwrap()
                .allows(&room("lobby"))
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["a*b", "**", "with space", "café-*", "", "a/b*", "x*y*"] {
            assert_eq!(
                RoomPatterns::parse(&[bad]),
                Err(BadPattern(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn publish_defaults_to_rooms_and_never_exceeds_it() {
        let rooms = vec!["support-*".to_owned()];
        let same = Permissions::from_claims(Some(&rooms), None).unwrap();
        assert!(same.may_publish(&room("support-1")));
        assert!(!same.may_join(&room("lobby")));
        let read_only = Permissions::from_claims(Some(&rooms), Some(&[])).unwrap();
        assert!(read_only.may_join(&room("support-1")));
        assert!(!read_only.may_publish(&room("support-1")));
        let wider = Permissions::from_claims(Some(&rooms), Some(&["*".to_owned()])).unwrap();
        assert!(
            !wider.may_publish(&room("lobby")),
            "publish cannot reach past rooms"
        );
        let open = Permissions::from_claims(None, None).unwrap();
        assert!(open.may_join(&room("x")) && open.may_publish(&room("x")));
        assert_eq!(open, Permissions::everything());
    }
}
