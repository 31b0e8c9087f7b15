//! What a joining member receives before live traffic, whichever engine stores the
//! history: the same rules for the in-memory ring and the Redis stream.

/// Where a room's ids stand.
#[derive(Debug, Clone, Copy)]
pub(super) struct RoomIds {
    /// The id this room started from (ids before it belonged to an earlier room).
    pub first_id: u64,
    /// The id the next message will get.
    pub next_id: u64,
    /// The oldest message still retained, if any.
    pub oldest_retained: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// The room's last [`app::protocol::JOIN_HISTORY`] messages.
    Recent,
    /// Every retained message with an id above this one (`0`: all of them).
    After(u64),
}

/// Which messages to send and whether they cover everything the member asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Plan {
    pub start: Start,
    pub recovered: bool,
}

pub(super) fn plan(since: Option<u64>, room: RoomIds) -> Plan {
    let retained_from = room.oldest_retained.unwrap_or(room.next_id);
    match since {
        None => Plan {
            start: Start::Recent,
            recovered: true,
        },
        // `since=0`: the client has seen nothing; everything this room still has.
        Some(0) => Plan {
            start: Start::After(0),
            recovered: retained_from == room.first_id,
        },
        // Ids the room never issued: a bogus `since`, or a clock that went backwards.
        // Say so, and start the client over from recent history.
        Some(seen) if seen >= room.next_id => Plan {
            start: Start::Recent,
            recovered: false,
        },
        Some(seen) => Plan {
            start: Start::After(seen),
            // Messages older than this room's first id were in an earlier incarnation
            // of the room and are gone with it.
            recovered: seen >= room.first_id.saturating_sub(1) && seen + 1 >= retained_from,
        },
    }
}
