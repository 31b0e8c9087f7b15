//! What a room does later: a leave announced after its grace, gathered
//! announcements sent once per window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::room::{Followups, Room, RoomState};
use super::rooms::Rooms;

/// Runs the timers a room asked for under its lock: each leave is announced when its
/// grace is over unless the user is back by then, and gathered announcements go out
/// once per window while a burst lasts. The timers hold the hub weakly: a hub that
/// is gone (a server shutting down) announces nothing, so a restart never tells
/// anyone that everyone left.
pub(super) fn schedule(shared: &Arc<Rooms>, room: &Arc<Room>, followups: Followups) {
    let grace = shared.settings.presence_grace;
    for (user_id, token) in followups.leaves {
        after(shared, room, grace, move |state| {
            state.finish_leave(&user_id, token)
        });
    }
    if let Some(at) = followups.flush_at {
        flush_announcements_at(shared, room, at);
    }
    if let Some(at) = followups.send_at {
        let wait = at.saturating_duration_since(tokio::time::Instant::now());
        after(shared, room, wait, |state| {
            state.send_gathered(tokio::time::Instant::now())
        });
    }
}

/// Sends what the room's announcer gathered at `at`; while the burst goes on, the
/// flush asks for the next one through the followups.
pub(super) fn flush_announcements_at(shared: &Arc<Rooms>, room: &Arc<Room>, at: Instant) {
    let wait = at.saturating_duration_since(Instant::now());
    after(shared, room, wait, |state| {
        state.flush_announcements(Instant::now())
    });
}

/// Runs `then` on the room's state after `wait`, unless the hub is gone by then;
/// schedules what it leads to and removes the room if it is left empty.
pub(super) fn after(
    shared: &Arc<Rooms>,
    room: &Arc<Room>,
    wait: Duration,
    then: impl FnOnce(&mut RoomState) + Send + 'static,
) {
    let hub = Arc::downgrade(shared);
    let room = room.clone();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        let Some(shared) = hub.upgrade() else {
            return;
        };
        let (emptied, followups) = {
            let mut state = room.lock();
            then(&mut state);
            (state.is_empty(), state.take_followups())
        };
        schedule(&shared, &room, followups);
        if emptied {
            shared.remove_if_empty(&room);
        }
    });
}
