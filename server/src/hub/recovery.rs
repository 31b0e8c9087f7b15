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
    /// The room's last [`chorus_protocol::JOIN_HISTORY`] messages.
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

#[cfg(test)]
mod tests {
    use super::*;

    const fn ids(first_id: u64, next_id: u64, oldest_retained: Option<u64>) -> RoomIds {
        RoomIds {
            first_id,
            next_id,
            oldest_retained,
        }
    }

    #[test]
    fn what_a_since_gets() {
        // Ids 100..=109 issued, 105..=109 still retained.
        let trimmed = ids(100, 110, Some(105));
        // Ids 100..=109 issued and all retained.
        let whole = ids(100, 110, Some(100));
        // A room with no message yet: its first id will be 1000.
        let fresh = ids(1000, 1000, None);
        use Start::{After, Recent};
        // (room, since, start, recovered), each with why.
        let cases = [
            (trimmed, None, Recent, true),            // no since: recent history
            (trimmed, Some(0), After(0), false),      // seen nothing, 100..104 gone
            (whole, Some(0), After(0), true),         // seen nothing, all retained
            (fresh, Some(0), After(0), true),         // seen nothing, nothing sent
            (trimmed, Some(104), After(104), true),   // the next missed is retained
            (trimmed, Some(109), After(109), true),   // up to date
            (trimmed, Some(103), After(103), false),  // 104 is gone
            (whole, Some(99), After(99), true),       // the id before this room's first
            (trimmed, Some(50), After(50), false),    // an earlier incarnation of the room
            (trimmed, Some(110), Recent, false),      // an id never issued
            (trimmed, Some(u64::MAX), Recent, false), // a bogus id
            (fresh, Some(999), After(999), true),     // just before a fresh room's first
        ];
        for (n, (room, since, start, recovered)) in cases.into_iter().enumerate() {
            assert_eq!(
                plan(since, room),
                Plan { start, recovered },
                "case {n}: since {since:?} in {room:?}"
            );
        }
    }
}
