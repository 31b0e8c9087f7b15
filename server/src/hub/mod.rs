//! The room hub: who is in which room, message ids, history, and fan-out.
//!
//! [`Hub`] is the one interface the WebSocket and API code use; an engine behind it
//! does the work:
//!
//! - [`memory`]: one server, rooms in this process (the default).
//! - [`redis`]: any number of servers sharing rooms through Redis (ids, history and
//!   presence in Redis; live fan-out by Pub/Sub).
//!
//! Either way, each member owns a bounded queue of serialized frames; a broadcast is
//! serialized once and the same bytes are pushed into every local queue with
//! `try_send` (`seats`). A member whose queue is full is evicted instead of slowing
//! the room: its queue is closed, which its connection reports as close code 4008.
//!
//! Locks are plain `std` mutexes and are never held across an `.await`. Lock
//! order is always rooms map, then a room.

pub mod memory;
mod recovery;
pub mod redis;
mod seats;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;

pub use app::protocol::RoomSummary;
use memory::{MemoryHub, MemoryJoined, MemoryMembership};
use redis::{RedisHub, RedisJoined, RedisMembership, RedisOptions, RedisStartError};

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
    /// The message could not be stored (the broker is unreachable); it was not sent.
    #[error("messages cannot be stored right now")]
    Unavailable,
}

/// The engine cannot serve the request right now (the broker is unreachable).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("rooms are unavailable right now: {0}")]
pub struct Unavailable(pub String);

/// Shared handle to the hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    engine: Engine,
}

#[derive(Clone)]
enum Engine {
    Memory(Arc<MemoryHub>),
    Redis(Arc<RedisHub>),
}

impl Hub {
    /// Rooms in this process only.
    pub fn memory(settings: HubSettings) -> Self {
        Hub {
            engine: Engine::Memory(Arc::new(MemoryHub::new(settings))),
        }
    }

    /// Rooms shared with every server using the same Redis; fails if Redis cannot be
    /// reached now.
    pub async fn redis(
        settings: HubSettings,
        options: RedisOptions,
    ) -> Result<Self, RedisStartError> {
        let hub = RedisHub::connect(settings, options).await?;
        Ok(Hub {
            engine: Engine::Redis(Arc::new(hub)),
        })
    }

    /// Joins `room` (creating it if needed). With `since`, the backlog is every
    /// retained message after that id; without it, the last [`app::protocol::JOIN_HISTORY`].
    pub async fn join(
        &self,
        room: &str,
        who: Participant,
        since: Option<u64>,
    ) -> Result<Joined, Unavailable> {
        match &self.engine {
            Engine::Memory(hub) => {
                let MemoryJoined {
                    membership,
                    welcome,
                    backlog,
                    queue,
                } = hub.join(room, who, since);
                Ok(Joined {
                    membership: Membership(Seat::Memory(membership)),
                    welcome,
                    backlog,
                    queue,
                })
            }
            Engine::Redis(hub) => {
                let RedisJoined {
                    membership,
                    welcome,
                    backlog,
                    queue,
                } = hub.join(room, who, since).await?;
                Ok(Joined {
                    membership: Membership(Seat::Redis(membership)),
                    welcome,
                    backlog,
                    queue,
                })
            }
        }
    }

    /// Called once every socket has closed at shutdown: a Redis hub leaves presence
    /// at once instead of waiting for other servers to notice.
    pub async fn close(&self) {
        if let Engine::Redis(hub) = &self.engine {
            hub.close().await;
        }
    }

    /// Active rooms, sorted by name.
    pub async fn rooms(&self) -> Result<Vec<RoomSummary>, Unavailable> {
        match &self.engine {
            Engine::Memory(hub) => Ok(hub.rooms()),
            Engine::Redis(hub) => hub.rooms().await,
        }
    }
}

/// A seat in a room; leaving the room is dropping it.
pub struct Membership(Seat);

enum Seat {
    Memory(MemoryMembership),
    Redis(RedisMembership),
}

impl Membership {
    pub fn room(&self) -> &str {
        match &self.0 {
            Seat::Memory(seat) => seat.room(),
            Seat::Redis(seat) => seat.room(),
        }
    }

    /// Stores `content` as the room's next message and queues it for every member.
    pub async fn publish(&self, content: String) -> Result<u64, PublishError> {
        match &self.0 {
            Seat::Memory(seat) => seat.publish(content),
            Seat::Redis(seat) => seat.publish(content).await,
        }
    }
}

/// The current UTC time as RFC 3339 with millisecond precision, e.g. `2026-11-28T01:02:03.456Z`.
fn now_rfc3339() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .expect("a UTC timestamp always formats")
}

/// Locks a mutex, recovering from poisoning: hub state stays consistent between
/// statements, so a panic elsewhere must not take every room down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
