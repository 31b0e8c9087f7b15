//! The room hub: who is in which room, message ids, history, and fan-out.
//!
//! A room exists while it has members. Each member owns a bounded queue of
//! serialized frames; a broadcast is serialized once and the same bytes are
//! pushed into every queue with `try_send`, under the room's lock, so every
//! member sees the room's frames in one order. A member whose queue is full is
//! evicted instead of slowing the room: its queue is closed, which its
//! connection reports to the client as close code 4008.
//!
//! Locks are plain `std` mutexes and are never held across an `.await`. Lock
//! order is always rooms map, then a room.

mod room;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;

pub use app::protocol::RoomSummary;
use room::{MemberId, Room};

/// Bytes of one serialized server frame, shared by every queue it is pushed into.
pub type FrameBytes = Utf8Bytes;

/// Tuning for the hub.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Messages kept per room for history and `since` recovery.
    pub history_size: usize,
    /// Frames a member's outbound queue holds before the member is evicted as too slow.
    pub queue_capacity: usize,
}

/// Who joins a room: `id` tells connections apart for presence, `name` is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub id: String,
    pub name: String,
}

/// What a new member receives; send `welcome`, then `backlog`, then drain `queue`.
pub struct Joined {
    pub membership: Membership,
    pub welcome: FrameBytes,
    pub backlog: Vec<FrameBytes>,
    /// Live frames. Ends (`None`) when the hub evicted this member for being too slow.
    pub queue: mpsc::Receiver<FrameBytes>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    /// The member was evicted (too slow) and its connection is closing.
    #[error("not a member of the room any more")]
    NotMember,
}

/// Shared handle to the hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    rooms: Mutex<HashMap<Arc<str>, Arc<Room>>>,
    settings: HubSettings,
    next_member_id: AtomicU64,
}

impl Hub {
    pub fn new(settings: HubSettings) -> Self {
        assert!(
            settings.queue_capacity > 0,
            "queue capacity must be positive"
        );
        Hub {
            shared: Arc::new(Shared {
                rooms: Mutex::new(HashMap::new()),
                settings,
                next_member_id: AtomicU64::new(1),
            }),
        }
    }

    /// Joins `room` (creating it if needed). With `since`, the backlog is every
    /// retained message after that id; without it, the last [`app::protocol::JOIN_HISTORY`].
    pub fn join(&self, room_name: &str, who: Participant, since: Option<u64>) -> Joined {
        let (sender, queue) = mpsc::channel(self.shared.settings.queue_capacity);
        let member_id = MemberId(self.shared.next_member_id.fetch_add(1, Ordering::Relaxed));

        let mut rooms = lock(&self.shared.rooms);
        let room = rooms
            .entry(Arc::from(room_name))
            .or_insert_with_key(|name| Arc::new(Room::new(name.clone(), &self.shared.settings)))
            .clone();
        let mut state = room.lock();
        // The room cannot be removed while we hold its lock, and it will not be empty after.
        drop(rooms);
        let (welcome, backlog) = state.admit(room_name, member_id, who, since, sender);
        drop(state);

        Joined {
            membership: Membership {
                hub: self.clone(),
                room,
                member_id,
            },
            welcome,
            backlog,
            queue,
        }
    }

    /// Active rooms, sorted by name.
    pub fn rooms(&self) -> Vec<RoomSummary> {
        let rooms: Vec<Arc<Room>> = lock(&self.shared.rooms).values().cloned().collect();
        let mut summaries: Vec<RoomSummary> = rooms.iter().map(|room| room.summary()).collect();
        summaries.retain(|summary| summary.connections > 0);
        summaries.sort_by(|a, b| a.name.cmp(&b.name));
        summaries
    }

    pub fn room_count(&self) -> usize {
        lock(&self.shared.rooms).len()
    }

    fn remove_if_empty(&self, room: &Arc<Room>) {
        let mut rooms = lock(&self.shared.rooms);
        let still_listed = rooms
            .get(room.name())
            .is_some_and(|listed| Arc::ptr_eq(listed, room));
        if still_listed && room.lock().is_empty() {
            rooms.remove(room.name());
            // Give the memory of a burst of rooms back once they are gone.
            if rooms.is_empty() || rooms.len() < rooms.capacity() / 4 {
                rooms.shrink_to_fit();
            }
        }
    }
}

/// A seat in a room; leaving the room is dropping it.
pub struct Membership {
    hub: Hub,
    room: Arc<Room>,
    member_id: MemberId,
}

impl Membership {
    pub fn room(&self) -> &str {
        self.room.name()
    }

    /// Stores `content` as the room's next message and queues it for every member.
    pub fn publish(&self, content: String) -> Result<u64, PublishError> {
        // Formatted before taking the lock: the room lock covers only what must be ordered.
        let timestamp = room::now_rfc3339();
        let mut state = self.room.lock();
        let outcome = state.publish(self.member_id, content, timestamp);
        drop(state);
        let (id, emptied) = outcome?;
        if emptied {
            self.hub.remove_if_empty(&self.room);
        }
        Ok(id)
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let emptied = self.room.lock().remove(self.member_id);
        if emptied {
            self.hub.remove_if_empty(&self.room);
        }
    }
}

/// Locks a mutex, recovering from poisoning: hub state stays consistent between
/// statements, so a panic elsewhere must not take every room down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
