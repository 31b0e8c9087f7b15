//! Every Redis key and channel the engine uses, built in one place.
//!
//! All keys start with `chorus:`. Per room `R` and server (node) `N`:
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `room:R:seq` | string | last message id (`INCR`; a new room starts from the clock in µs) |
//! | `room:R:first` | string | the room's first id, to tell whether a `since` is recoverable |
//! | `room:R:log` | stream | message frames, entry id `<id>-0`, `MAXLEN ~ history-size` |
//! | `room:R` | Pub/Sub | `"<id> <frame>"` (`0` for join/leave), fanned out to every server |
//! | `room:R:users` | hash | user id → connections on all servers |
//! | `room:R:names` | hash | user id → display name |
//! | `room:R:nodes` | hash | `"<node>\|<user id>"` → that server's connections |
//! | `room:R:leaving` | hash | user id → when its leave is due (ms), while in the presence grace |
//! | `leaves` | sorted set | `"<room>\n<user id>"` by due time: leaves any server announces (`lua/finalize.lua`) |
//! | `room:R:ref:L:U:F` | string with TTL | the id of user `U`'s (id `L` bytes long) message with `ref` `F`, for the ref window |
//! | `rooms` | set | rooms with members |
//! | `node:N` | string with TTL | server `N` is alive |
//! | `node:N:rooms` | set | rooms where server `N` has members, for reaping |
//! | `nodes` | set | every server that may have presence to reap |
//! | `ban:U` | string with TTL | user `U`'s joins are refused until it expires (server API) |
//! | `control` | Pub/Sub | user ids whose sockets every server closes (server API `disconnect`) |
//!
//! `seq`, `first` and `log` expire after `--redis-retention` without a message.
//! The reap and finalize scripts (`lua/reap.lua`, `lua/finalize.lua`) visit rooms
//! they are not given, so they build the same names from [`PREFIX`] themselves.

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
        let channel = format!("{PREFIX}room:{room}");
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
    channel.strip_prefix(PREFIX)?.strip_prefix("room:")
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

    #[test]
    fn keys_follow_the_table() {
        let keys = RoomKeys::new("lobby");
        assert_eq!(keys.channel, "chorus:room:lobby");
        assert_eq!(keys.seq, "chorus:room:lobby:seq");
        assert_eq!(keys.first, "chorus:room:lobby:first");
        assert_eq!(keys.log, "chorus:room:lobby:log");
        assert_eq!(keys.users, "chorus:room:lobby:users");
        assert_eq!(keys.names, "chorus:room:lobby:names");
        assert_eq!(keys.nodes, "chorus:room:lobby:nodes");
        assert_eq!(keys.leaving, "chorus:room:lobby:leaving");
        assert_eq!(leaves(), "chorus:leaves");
        assert_eq!(rooms(), "chorus:rooms");
        assert_eq!(nodes(), "chorus:nodes");
        assert_eq!(ban("u:1"), "chorus:ban:u:1");
        assert_eq!(control(), "chorus:control");
        assert_eq!(room_of_channel(&control()), None);
        assert_eq!(node("n1"), "chorus:node:n1");
        assert_eq!(node_rooms("n1"), "chorus:node:n1:rooms");
        assert_eq!(keys.reference("u:1", "r"), "chorus:room:lobby:ref:3:u:1:r");
        assert_ne!(keys.reference("u", "1:r"), keys.reference("u:1", "r"));
    }

    #[test]
    fn a_channel_names_its_room() {
        assert_eq!(
            room_of_channel(&RoomKeys::new("a.b-c").channel),
            Some("a.b-c")
        );
        assert_eq!(room_of_channel("other:room:x"), None);
        assert_eq!(room_of_channel("chorus:rooms"), None);
    }
}
