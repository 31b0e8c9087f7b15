//! The room hub: who is in which room, message ids, history, and fan-out.
//!
//! [`Hub`] is the one interface the WebSocket and API code use; an engine behind it
//! does the work:
//!
//! - [`memory`]: one server, rooms in this process (the default).
//! - [`redis_engine`]: any number of servers sharing rooms through Redis (ids, history and
//!   presence in Redis; live fan-out by Pub/Sub).
//!
//! Either way, each member owns a queue of serialized frames bounded in bytes
//! (`queue`); a broadcast is serialized once and the same bytes are pushed into every
//! local queue with `try_send` (`seats`), or, while a room is busy, gathered and
//! framed once into one batch every queue shares. A member whose queue is full is evicted
//! instead of slowing the room: its queue is closed, which its connection reports as
//! close code 4008.
//!
//! Locks are plain `std` mutexes and are never held across an `.await`. Lock
//! order is always rooms map, then a room.

mod announcements;
mod bans;
mod framed;
#[cfg(test)]
pub(crate) use framed::read_as_client;
pub mod listing;
pub mod memory;
mod pacing;
mod queue;
mod recovery;
pub mod redis_engine;
mod refs;
mod seats;
mod user_list;

use std::sync::{Arc, OnceLock};

use crate::sync::lock;
use std::time::Duration;

pub use queue::{MemberQueue, Outbound};
use tungstenite::Utf8Bytes;
pub use user_list::{USERS_PER_FRAME, UserList};

use crate::observe::metrics::Metrics;
pub use chorus_protocol::{RoomName, RoomSummary};
use listing::Listing;
use memory::{MemoryHub, MemoryMembership};
use redis_engine::{RedisHub, RedisMembership, RedisOptions, RedisStartError};

/// Bytes of one serialized server frame, shared by every queue it is pushed into.
pub type FrameBytes = Utf8Bytes;

/// Tuning for the hub.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Messages kept per room for history and `since` recovery.
    pub history_size: usize,
    /// Bytes of frames a member's outbound queue holds before the member is evicted
    /// as too slow (`--send-queue-memory`).
    pub queue_bytes: usize,
    /// Rooms that may exist at once (with Redis: across every server); a join that
    /// would create one more is refused, joins to existing rooms are not.
    pub max_rooms: usize,
    /// Bytes of retained history all rooms together may hold (in-memory engine; with
    /// Redis, Redis's `maxmemory` bounds it); beyond it the least recently active
    /// rooms lose their oldest messages first.
    pub history_memory: usize,
    /// How long a user whose last connection went away is still listed before its
    /// leave is announced: a reconnect within it announces nothing. Zero: at once.
    pub presence_grace: Duration,
    /// Joins and leaves announced one by one per window before they are gathered.
    pub presence_burst: u32,
    /// How often at most a busy room (hundreds of frames a second) sends to its
    /// members: its frames wait for each other and go out together, framed once
    /// (see `pacing`). Zero: every frame at once.
    pub write_delay: Duration,
    /// Where deliveries, evictions, latency and Redis trouble are counted.
    pub metrics: Arc<Metrics>,
}

/// Who joins a room: `id` tells connections apart for presence, `name` is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub id: String,
    pub name: String,
}

/// What the hub knows for a member's `welcome` frame; the connection adds its own
/// part (the heartbeat timing) in [`Welcome::into_frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub room: String,
    pub user_id: String,
    /// The member's display name.
    pub user: String,
    /// Who was present before this connection, sorted by name.
    pub users: UserList,
    pub recovered: bool,
    /// The newest message id in the room when the backlog was read (the id just
    /// before its first message when it has none yet).
    pub last_id: u64,
}

impl Welcome {
    /// The `welcome` frame and, for a room of more than [`USERS_PER_FRAME`] users,
    /// the `users` frames that list the rest, in order. The member list is spliced in
    /// as it was kept (already serialized) rather than parsed and written again.
    pub fn into_frames(
        self,
        heartbeat_interval: Duration,
        heartbeat_timeout: Duration,
    ) -> Vec<FrameBytes> {
        #[derive(serde::Serialize)]
        #[serde(tag = "type", rename = "welcome")]
        struct Head<'a> {
            room: &'a str,
            user_id: &'a str,
            user: &'a str,
            recovered: bool,
            last_id: u64,
            heartbeat_interval_ms: u64,
            heartbeat_timeout_ms: u64,
        }
        let head = serde_json::to_string(&Head {
            room: &self.room,
            user_id: &self.user_id,
            user: &self.user,
            recovered: self.recovered,
            last_id: self.last_id,
            heartbeat_interval_ms: heartbeat_interval.as_millis() as u64,
            heartbeat_timeout_ms: heartbeat_timeout.as_millis() as u64,
        })
        .expect("a welcome always serializes");
        let head = head.strip_suffix('}').expect("an object");
        let mut shares = self.users.shares();
        let first = shares.next().unwrap_or_default();
        let mut frames = vec![FrameBytes::from(format!("{head},\"users\":[{first}]}}"))];
        frames.extend(
            shares.map(|share| {
                FrameBytes::from(format!("{{\"type\":\"users\",\"users\":[{share}]}}"))
            }),
        );
        frames
    }
}

/// What a new member receives; send `welcome`, then `backlog`, then drain `queue`.
/// Engines hand it back with their own membership type; [`Hub::join`] with [`Membership`].
pub struct Joined<M = Membership> {
    pub membership: M,
    pub welcome: Welcome,
    pub backlog: Vec<FrameBytes>,
    /// Live frames. Ends (`None`) when the hub evicted this member for being too slow.
    pub queue: MemberQueue,
}

impl<M> Joined<M> {
    fn map_membership<N>(self, wrap: impl FnOnce(M) -> N) -> Joined<N> {
        Joined {
            membership: wrap(self.membership),
            welcome: self.welcome,
            backlog: self.backlog,
            queue: self.queue,
        }
    }
}

/// A message stored by [`Membership::publish_once`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub id: u64,
    /// The same user's message with the same `ref` was already stored (with this
    /// id); nothing was published this time.
    pub repeated: bool,
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

/// The engine cannot serve the request right now.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// Redis refused the request or did not answer in time.
    #[error("rooms are unavailable right now")]
    Redis(#[from] redis::RedisError),
    /// The Pub/Sub connection is down (being re-established) or its task has ended.
    #[error("rooms are unavailable right now: the Redis subscription is down")]
    NotSubscribed,
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Creating the room would exceed `--max-rooms`.
    #[error("there are as many rooms as the server may hold")]
    TooManyRooms,
    /// The user is banned for now (server API `disconnect` with `ban_seconds`).
    #[error("the user is banned for now")]
    Banned,
}

/// The longest ban: longer ones are cut to it.
pub const MAX_BAN: Duration = Duration::from_secs(10 * 365 * 86_400);

/// A page of a room's history, for the server API: each message exactly as members
/// receive it, oldest first.
#[derive(Debug, Default)]
pub struct HistoryPage {
    pub messages: Vec<FrameBytes>,
    /// Older messages are retained before the first of these.
    pub has_more: bool,
}

/// A user listed in a room, for the server API: its connections on every server (0
/// while its leave waits out the presence grace).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberConnections {
    pub user_id: String,
    pub name: String,
    pub connections: usize,
}

/// Called with a user id and the reason when the server API removes that user (on
/// every server, with Redis): the sockets layer closes the user's sockets here.
pub type RemovalHandler = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Where removals go: set once at start ([`Hub::on_removal`]).
#[derive(Clone, Default)]
pub struct Removals(Arc<OnceLock<RemovalHandler>>);

impl Removals {
    /// Closes `user_id`'s sockets on this server, with `reason`.
    pub fn remove(&self, user_id: &str, reason: &str) {
        if let Some(handler) = self.0.get() {
            handler(user_id, reason);
        }
    }
}

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
        self.listing.changed();
        let listing = self.listing.clone();
        let metrics = self.metrics.clone();
        Ok(joined.map_membership(|member| Membership {
            member: Some(member),
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
        if self.removals.0.set(handler).is_err() {
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

    /// Active rooms, sorted by name; at most [`listing::MAX_AGE`] old (see
    /// [`Listing`]).
    pub async fn rooms(&self) -> Result<Arc<Vec<RoomSummary>>, Unavailable> {
        self.listing
            .get(async {
                match &self.engine {
                    Engine::Memory(hub) => Ok(hub.rooms()),
                    Engine::Redis(hub) => self.counted(hub.rooms().await),
                }
            })
            .await
    }
}

/// A member of a room; leaving the room is dropping it.
pub struct Membership {
    /// `None` only while being dropped.
    member: Option<EngineMembership>,
    listing: Arc<Listing>,
    metrics: Arc<Metrics>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        // Leave first, so the next room list no longer has this member.
        drop(self.member.take());
        self.listing.changed();
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

/// The current UTC time as RFC 3339 with millisecond precision, e.g. `2026-11-28T01:02:03.456Z`.
fn now_rfc3339() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .expect("a UTC timestamp always formats")
}

/// A room's lock held on another thread until dropped, as a long fan-out would hold
/// it: for tests of what must not wait for a busy room.
#[cfg(test)]
pub(crate) struct Busy {
    release: std::sync::mpsc::Sender<()>,
    holder: Option<std::thread::JoinHandle<()>>,
}

#[cfg(test)]
impl Busy {
    pub(crate) fn hold<R: Send + Sync + 'static, S: 'static>(
        room: Arc<R>,
        state: fn(&R) -> &std::sync::Mutex<S>,
    ) -> Busy {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (held, holding) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _state = lock(state(&room));
            held.send(()).unwrap();
            let _ = released.recv();
        });
        holding.recv().unwrap();
        Busy {
            release,
            holder: Some(holder),
        }
    }
}

#[cfg(test)]
impl Drop for Busy {
    fn drop(&mut self) {
        let _ = self.release.send(());
        if let Some(holder) = self.holder.take() {
            holder.join().unwrap();
        }
    }
}

#[cfg(test)]
mod tests;
