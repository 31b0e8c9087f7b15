//! A member's seat in a room of the memory engine.

use std::sync::Arc;
use std::time::Instant;

use super::room::Room;
use super::rooms::Rooms;
use super::timers::schedule;
use crate::hub::engine::{PublishError, Published};
use crate::hub::fanout::seats::MemberId;

/// A seat in a room; leaving the room is dropping it.
pub struct MemoryMembership {
    pub(super) shared: Arc<Rooms>,
    pub(super) room: Arc<Room>,
    pub(super) member_id: MemberId,
    /// Leave without the presence grace ([`Self::leave_at_once`]).
    pub(super) at_once: bool,
}

impl MemoryMembership {
    /// The room's name.
    pub fn room(&self) -> &str {
        self.room.name()
    }

    /// Stores `content` as the room's next message and queues it for every member.
    pub fn publish(&self, content: String) -> Result<u64, PublishError> {
        self.publish_once(content, None)
            .map(|published| published.id)
    }

    /// [`Self::publish`], unless this user's message with the same `reference` was
    /// published within the ref window: then only its id comes back.
    pub fn publish_once(
        &self,
        content: String,
        reference: Option<&str>,
    ) -> Result<Published, PublishError> {
        // Formatted before taking the lock: the room lock covers only what must be ordered.
        let timestamp = crate::hub::engine::now_rfc3339();
        let stamped = Instant::now();
        let mut state = self.room.lock();
        let outcome = state.publish(self.member_id, content, reference, timestamp);
        let followups = state.take_followups();
        drop(state);
        if matches!(
            outcome,
            Ok((
                Published {
                    repeated: false,
                    ..
                },
                _
            ))
        ) {
            self.shared.settings.metrics.latency(stamped.elapsed());
        }
        schedule(&self.shared, &self.room, followups);
        let (published, emptied) = outcome?;
        self.shared.published(&self.room, published);
        if emptied {
            self.shared.remove_if_empty(&self.room);
        }
        Ok(published)
    }

    /// When this connection goes, its user's leave (if it was the last) is announced
    /// at once, without the presence grace: the user was removed.
    pub fn leave_at_once(&mut self) {
        self.at_once = true;
    }

    /// Tells the room this member's user is typing (a frame for every member, never
    /// stored).
    pub fn typing(&self) {
        let followups = {
            let mut state = self.room.lock();
            state.typing(self.member_id);
            state.take_followups()
        };
        schedule(&self.shared, &self.room, followups);
    }
}

impl Drop for MemoryMembership {
    fn drop(&mut self) {
        let (emptied, followups) = {
            let mut state = self.room.lock();
            (
                state.remove(self.member_id, self.at_once),
                state.take_followups(),
            )
        };
        schedule(&self.shared, &self.room, followups);
        if emptied {
            self.shared.remove_if_empty(&self.room);
        }
    }
}
