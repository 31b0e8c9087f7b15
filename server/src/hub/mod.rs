//! The room hub: who is in which room, message ids, history, and fan-out.
//!
//! [`Hub`] is the one interface the WebSocket and API code use; an engine behind it
//! does the work:
//!
//! - [`memory`]: one server, rooms in this process (the default).
//! - [`redis`]: any number of servers sharing rooms through Redis or a Redis Cluster
//!   (ids, history and presence in Redis; live fan-out by Pub/Sub).
//!
//! Either way, each member owns a queue of serialized frames bounded in bytes
//! (`fanout::queue`); a broadcast is serialized once and the same bytes are pushed
//! into every local queue with `try_send` (`fanout::seats`), or, while a room is
//! busy, gathered and framed once into one batch every queue shares. A member whose queue is full is evicted
//! instead of slowing the room: its queue is closed, which its connection reports as
//! close code 4008.
//!
//! Locks are plain `std` mutexes and are never held across an `.await`. Lock
//! order is always rooms map, then a room.
//!
//! # Layout
//!
//! - `mod.rs`: [`Hub`] and [`Membership`], which dispatch to the engine;
//! - `engine.rs`: what the facade and the engines share (settings, [`Participant`],
//!   [`Joined`], [`Unavailable`], ...);
//! - `fanout/`: seats, member queues, pacing and framed batches;
//! - `presence/`: join and leave announcements, the welcome's member list;
//! - `recovery.rs`: what a `since` brings back; `listing.rs`: the room list's cache;
//! - `memory/` and `redis/`: the engines;
//! - `tests.rs`: the facade over both engines.

mod engine;
pub(crate) mod fanout;
mod listing;
pub mod memory;
pub(crate) mod presence;
mod recovery;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

pub use chorus_protocol::{RoomName, RoomSummary};

pub use engine::{
    HistoryPage, HubSettings, MAX_BAN, MemberConnections, Participant, PublishError, Published,
    RemovalHandler, Removals, Unavailable, Welcome,
};
pub use fanout::FrameBytes;
#[cfg(test)]
pub(crate) use fanout::framed::read_as_client;
pub use fanout::queue::{MemberQueue, Outbound};
use listing::Listing;
use memory::{MemoryHub, MemoryMembership};
pub use presence::user_list::{USERS_PER_FRAME, UserList};
use redis::{RedisHub, RedisMembership, RedisOptions, RedisStartError};

/// What a new member receives (see `engine.rs`), with the facade's membership.
pub type Joined<M = Membership> = engine::Joined<M>;
use crate::observe::metrics::Metrics;

/// Shared handle to the hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    engine: Engine,
    listing: Arc<Listing>,
    removals: Removals,
    metrics: Arc<Metrics>,
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
            metrics: settings.metrics.clone(),
            engine: Engine::Memory(Arc::new(MemoryHub::new(settings))),
            listing: Arc::default(),
            removals: Removals::default(),
        }
    }

    /// Rooms shared with every server using the same Redis; fails if Redis cannot be
    /// reached now.
    pub async fn redis(
        settings: HubSettings,
        options: RedisOptions,
    ) -> Result<Self, RedisStartError> {
        let removals = Removals::default();
        let metrics = settings.metrics.clone();
        let hub = RedisHub::connect(settings, options, removals.clone()).await?;
        Ok(Hub {
            engine: Engine::Redis(Arc::new(hub)),
            listing: Arc::default(),
            removals,
            metrics,
        })
    }

    /// Joins `room` (creating it if needed). With `since`, the backlog is every
    /// retained message after that id; without it, the last [`chorus_protocol::JOIN_HISTORY`].
    pub async fn join(
        &self,
        room: &RoomName,
        who: Participant,
        since: Option<u64>,
    ) -> Result<Joined, Unavailable> {
        let joined = match &self.engine {
            Engine::Memory(hub) => hub
                .join(room, who, since)?
                .map_membership(EngineMembership::Memory),
            Engine::Redis(hub) => self
                .counted(hub.join(room, who, since).await)?
                .map_membership(EngineMembership::Redis),
        };
        self.listing.changed(room.as_str());
        let listing = self.listing.clone();
        let metrics = self.metrics.clone();
        Ok(joined.map_membership(|member| Membership {
            member: Some(member),
            room: room.clone(),
            listing,
            metrics,
        }))
    }

    /// Counts a failed Redis call in the metrics.
    fn counted<T>(&self, outcome: Result<T, Unavailable>) -> Result<T, Unavailable> {
        if let Err(Unavailable::Redis(_) | Unavailable::NotSubscribed) = &outcome {
            self.metrics.redis_errors.inc();
        }
        outcome
    }

    /// Publishes `content` in `room` as `author` whether or not anyone is connected
    /// (the server API): ids, history, recovery and delivery as for a member's
    /// message, on every server. The same `idempotency_key` in the same room within
    /// [`chorus_protocol::REF_WINDOW_SECS`] gets the first message's id back and
    /// publishes nothing.
    pub async fn publish(
        &self,
        room: &RoomName,
        author: Participant,
        content: String,
        idempotency_key: Option<&str>,
    ) -> Result<Published, Unavailable> {
        let published = match &self.engine {
            Engine::Memory(hub) => hub.publish(room, author, content, idempotency_key),
            Engine::Redis(hub) => {
                self.counted(hub.publish(room, author, content, idempotency_key).await)
            }
        }?;
        if !published.repeated {
            self.metrics.published("api");
        }
        Ok(published)
    }

    /// Rooms with members on this server (for the metrics).
    pub fn occupied_rooms(&self) -> usize {
        match &self.engine {
            Engine::Memory(hub) => hub.occupied_rooms(),
            Engine::Redis(hub) => hub.occupied_rooms(),
        }
    }

    /// The newest `limit` retained messages of `room` before id `before` (or the
    /// newest), oldest first. An unknown room has none.
    pub async fn history(
        &self,
        room: &RoomName,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, Unavailable> {
        match &self.engine {
            Engine::Memory(hub) => Ok(hub.history(room, before, limit)),
            Engine::Redis(hub) => self.counted(hub.history(room, before, limit).await),
        }
    }

    /// Who is listed in `room`, sorted by name. An unknown room has nobody.
    pub async fn members(&self, room: &RoomName) -> Result<Vec<MemberConnections>, Unavailable> {
        match &self.engine {
            Engine::Memory(hub) => Ok(hub.members(room)),
            Engine::Redis(hub) => self.counted(hub.members(room).await),
        }
    }

    /// Closes every socket of `user_id` on every server (4010, with `reason`) and,
    /// with `ban`, refuses its joins for that long (4003). The ban is in place before
    /// any socket closes, so a reconnect cannot slip in between.
    pub async fn disconnect(
        &self,
        user_id: &str,
        reason: &str,
        ban: Option<Duration>,
    ) -> Result<(), Unavailable> {
        match &self.engine {
            Engine::Memory(hub) => {
                if let Some(ban) = ban {
                    hub.ban(user_id, ban);
                }
                self.removals.remove(user_id, reason);
            }
            Engine::Redis(hub) => self.counted(hub.disconnect(user_id, reason, ban).await)?,
        }
        Ok(())
    }

    /// Where removals go: `handler` closes a removed user's sockets on this server.
    /// Set once, at start.
    pub fn on_removal(&self, handler: RemovalHandler) {
        if !self.removals.set(handler) {
            tracing::error!("a second removal handler was ignored");
        }
    }

    /// Called once every socket has closed at shutdown: a Redis hub leaves presence
    /// at once instead of waiting for other servers to notice.
    pub async fn close(&self) {
        if let Engine::Redis(hub) = &self.engine {
            hub.close().await;
        }
    }

    /// Active rooms, sorted by name; at most a second old, and the rooms of a join
    /// or leave on this server read again at once (`listing.rs`).
    pub async fn rooms(&self) -> Result<Arc<Vec<RoomSummary>>, Unavailable> {
        let whole = || async {
            match &self.engine {
                Engine::Memory(hub) => Ok(hub.rooms()),
                Engine::Redis(hub) => self.counted(hub.rooms().await),
            }
        };
        let reread = |names: Vec<String>| async move {
            match &self.engine {
                Engine::Memory(hub) => Ok(hub.room_summaries(names)),
                Engine::Redis(hub) => self.counted(hub.room_summaries(names).await),
            }
        };
        self.listing.get(whole, reread).await
    }
}

/// A member of a room; leaving the room is dropping it.
pub struct Membership {
    /// `None` only while being dropped.
    member: Option<EngineMembership>,
    /// Where, for the room list.
    room: RoomName,
    listing: Arc<Listing>,
    metrics: Arc<Metrics>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        // Leave first, so the next room list no longer has this member.
        drop(self.member.take());
        self.listing.changed(self.room.as_str());
    }
}

enum EngineMembership {
    Memory(MemoryMembership),
    Redis(RedisMembership),
}

impl Membership {
    fn member(&self) -> &EngineMembership {
        self.member.as_ref().expect("present until dropped")
    }

    /// The room's name.
    pub fn room(&self) -> &str {
        match self.member() {
            EngineMembership::Memory(member) => member.room(),
            EngineMembership::Redis(member) => member.room(),
        }
    }

    /// The user was removed by the server API: when this connection goes, the user's
    /// leave (if it was its last) is announced at once, without the presence grace.
    pub fn leave_at_once(&mut self) {
        match self.member.as_mut().expect("present until dropped") {
            EngineMembership::Memory(member) => member.leave_at_once(),
            EngineMembership::Redis(member) => member.leave_at_once(),
        }
    }

    /// Tells the room's members (on every server) that this member's user is typing;
    /// nothing is stored.
    pub async fn typing(&self) {
        match self.member() {
            EngineMembership::Memory(member) => member.typing(),
            EngineMembership::Redis(member) => member.typing().await,
        }
    }

    /// Stores `content` as the room's next message and queues it for every member.
    pub async fn publish(&self, content: String) -> Result<u64, PublishError> {
        Ok(self.publish_once(content, None).await?.id)
    }

    /// [`Self::publish`], idempotent per `reference`: the same user publishing the
    /// same `reference` in this room within [`chorus_protocol::REF_WINDOW_SECS`] (from
    /// any connection, on any server) gets the first message's id back and nothing
    /// is published again.
    pub async fn publish_once(
        &self,
        content: String,
        reference: Option<&str>,
    ) -> Result<Published, PublishError> {
        let outcome = match self.member() {
            EngineMembership::Memory(member) => member.publish_once(content, reference),
            EngineMembership::Redis(member) => member.publish_once(content, reference).await,
        };
        match &outcome {
            Ok(Published {
                repeated: false, ..
            }) => self.metrics.published("socket"),
            Err(PublishError::Unavailable) => {
                self.metrics.redis_errors.inc();
            }
            _ => {}
        }
        outcome
    }
}

#[cfg(test)]
mod tests;
