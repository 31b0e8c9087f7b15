//! Every Redis key and channel the engine uses, built in one place.
//!
//! All keys start with `chorus:`. Per room `R` and server (node) `N`:
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `room:{R}:seq` | string | last message id (`INCR`; a new room starts from the clock in µs) |
//! | `room:{R}:first` | string | the room's first id, to tell whether a `since` is recoverable |
//! | `room:{R}:log` | stream | message frames, entry id `<id>-0`, `MAXLEN ~ history-size` |
//! | `room:{R}` | Pub/Sub | `"<id> <frame>"` (`0` for join/leave), fanned out to every server |
//! | `room:{R}:users` | hash | user id → connections on all servers |
//! | `room:{R}:names` | hash | user id → display name |
//! | `room:{R}:nodes` | hash | `"<node>\|<user id>"` → that server's connections |
//! | `room:{R}:leaving` | hash | user id → when its last leave is due (ms), while in the presence grace |
//! | `leaves` | sorted set | `"<room>\n<user id>"` by due time: leaves any server announces (`lua/finalize.lua`) |
//! | `room:{R}:ref:L:U:F` | string with TTL | the id of user `U`'s (id `L` bytes long) message with `ref` `F`, for the ref window |
//! | `rooms` | set | rooms with members (re-asserted by every server's heartbeat) |
//! | `node:N` | string with TTL | server `N` is alive |
//! | `node:N:rooms` | set | rooms where server `N` has members, for reaping |
//! | `nodes` | set | every server that may have presence to reap |
//! | `ban:U` | string with TTL | user `U`'s joins are refused until it expires (server API) |
//! | `control` | Pub/Sub | user ids whose sockets every server closes (server API `disconnect`) |
//!
//! `seq`, `first` and `log` expire after `--redis-retention` without a message.
//!
//! A room's keys and channel share the hash tag `{R}`: on a Redis Cluster they live
//! on one shard, so each script touches the declared keys of one slot only. Keys
//! that span rooms (`rooms`, `leaves`, `nodes`, a server's) are changed by commands
//! of their own, never from a room's script. Before hash tags, room keys were
//! `room:R:...`; `untagged` renames such keys when a server starts.

/// The prefix of every key and channel.
pub(super) const PREFIX: &str = "chorus:";

/// The keys of one room.
pub(super) struct RoomKeys {
    pub(super) seq: String,
    pub(super) first: String,
    pub(super) log: String,
    /// The room's Pub/Sub channel.
    pub(super) channel: String,
    pub(super) users: String,
    pub(super) names: String,
    pub(super) nodes: String,
    /// Users whose last connection closed, with when their leave is due.
    pub(super) leaving: String,
}

impl RoomKeys {
    /// Where the id of `user`'s message with `reference` is remembered. The user id's
    /// length comes first, so no user id and ref can spell another pair's key.
    pub(super) fn reference(&self, user: &str, reference: &str) -> String {
        format!("{}:ref:{}:{user}:{reference}", self.channel, user.len())
    }

    pub(super) fn new(room: &str) -> Self {
        let channel = format!("{PREFIX}room:{{{room}}}");
        RoomKeys {
            seq: format!("{channel}:seq"),
            first: format!("{channel}:first"),
            log: format!("{channel}:log"),
            users: format!("{channel}:users"),
            names: format!("{channel}:names"),
            nodes: format!("{channel}:nodes"),
            leaving: format!("{channel}:leaving"),
            channel,
        }
    }
}

/// The room a Pub/Sub channel belongs to, if it is one of ours.
pub(super) fn room_of_channel(channel: &str) -> Option<&str> {
    channel
        .strip_prefix(PREFIX)?
        .strip_prefix("room:{")?
        .strip_suffix('}')
}

/// What a room key named before hash tags (`chorus:room:R:log`) is called now
/// (`chorus:room:{R}:log`); `None` for any other key, a tagged one included.
pub(super) fn untagged(key: &str) -> Option<String> {
    let rest = key.strip_prefix(PREFIX)?.strip_prefix("room:")?;
    if rest.starts_with('{') {
        return None;
    }
    // Room names have no `:`; the old channel name had no suffix.
    let (room, suffix) = rest.split_once(':').unwrap_or((rest, ""));
    let keys = RoomKeys::new(room);
    Some(match suffix {
        "" => keys.channel,
        suffix => format!("{}:{suffix}", keys.channel),
    })
}

/// Rooms with members on any server.
pub(super) fn rooms() -> String {
    format!("{PREFIX}rooms")
}

/// Leaves waiting out their grace, every room's, scored by when they are due.
pub(super) fn leaves() -> String {
    format!("{PREFIX}leaves")
}

/// Set while `user`'s joins are refused.
pub(super) fn ban(user: &str) -> String {
    format!("{PREFIX}ban:{user}")
}

/// The channel removals go out on, to every server.
pub(super) fn control() -> String {
    format!("{PREFIX}control")
}

/// Every server that may have presence to reap.
pub(super) fn nodes() -> String {
    format!("{PREFIX}nodes")
}

/// Server `node`'s liveness key.
pub(super) fn node(node: &str) -> String {
    format!("{PREFIX}node:{node}")
}

/// The rooms where server `node` has members.
pub(super) fn node_rooms(node: &str) -> String {
    format!("{PREFIX}node:{node}:rooms")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cluster slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole
    /// key without one, modulo 16384, as Redis Cluster computes it.
    fn slot(key: &str) -> u16 {
        let bytes = key.as_bytes();
        let tagged = key
            .find('{')
            .and_then(|open| {
                let close = key[open + 1..].find('}')? + open + 1;
                (close > open + 1).then_some(&bytes[open + 1..close])
            })
            .unwrap_or(bytes);
        let mut crc: u16 = 0;
        for byte in tagged {
            crc ^= u16::from(*byte) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % 16384
    }

    #[test]
    fn a_rooms_keys_and_channel_share_one_slot() {
        // Known slots, as `CLUSTER KEYSLOT` says.
        assert_eq!(slot("123456789"), 12739);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        for room in ["lobby", "a.b-c", "x"] {
            let keys = RoomKeys::new(room);
            let all = [
                &keys.seq,
                &keys.first,
                &keys.log,
                &keys.channel,
                &keys.users,
                &keys.names,
                &keys.nodes,
                &keys.leaving,
                &keys.reference("u:1", "r{}"),
            ];
            for key in all {
                assert_eq!(slot(key), slot(room), "{key}");
            }
        }
        assert_ne!(
            slot(&RoomKeys::new("lobby").log),
            slot(&RoomKeys::new("other").log)
        );
    }

    #[test]
    fn keys_from_before_hash_tags_are_renamed() {
        assert_eq!(
            untagged("chorus:room:lobby:log").as_deref(),
            Some("chorus:room:{lobby}:log")
        );
        assert_eq!(
            untagged("chorus:room:lobby").as_deref(),
            Some("chorus:room:{lobby}")
        );
        assert_eq!(
            untagged("chorus:room:lobby:ref:3:u:1:r").as_deref(),
            Some("chorus:room:{lobby}:ref:3:u:1:r")
        );
        assert_eq!(untagged("chorus:room:{lobby}:log"), None);
        assert_eq!(untagged("chorus:rooms"), None);
        assert_eq!(untagged("other:room:lobby:log"), None);
    }

    #[test]
    fn keys_follow_the_table() {
        let keys = RoomKeys::new("lobby");
        assert_eq!(keys.channel, "chorus:room:{lobby}");
        assert_eq!(keys.seq, "chorus:room:{lobby}:seq");
        assert_eq!(keys.first, "chorus:room:{lobby}:first");
        assert_eq!(keys.log, "chorus:room:{lobby}:log");
        assert_eq!(keys.users, "chorus:room:{lobby}:users");
        assert_eq!(keys.names, "chorus:room:{lobby}:names");
        assert_eq!(keys.nodes, "chorus:room:{lobby}:nodes");
        assert_eq!(keys.leaving, "chorus:room:{lobby}:leaving");
        assert_eq!(leaves(), "chorus:leaves");
        assert_eq!(rooms(), "chorus:rooms");
        assert_eq!(nodes(), "chorus:nodes");
        assert_eq!(ban("u:1"), "chorus:ban:u:1");
        assert_eq!(control(), "chorus:control");
        assert_eq!(room_of_channel(&control()), None);
        assert_eq!(node("n1"), "chorus:node:n1");
        assert_eq!(node_rooms("n1"), "chorus:node:n1:rooms");
        assert_eq!(
            keys.reference("u:1", "r"),
            "chorus:room:{lobby}:ref:3:u:1:r"
        );
        assert_ne!(keys.reference("u", "1:r"), keys.reference("u:1", "r"));
    }

    #[test]
    fn a_channel_names_its_room() {
        assert_eq!(
            room_of_channel(&RoomKeys::new("a.b-c").channel),
            Some("a.b-c")
        );
        assert_eq!(room_of_channel("other:room:{x}"), None);
        assert_eq!(room_of_channel("chorus:room:x"), None);
        assert_eq!(room_of_channel("chorus:rooms"), None);
    }
}
