//! The Redis engine: any number of servers share rooms.
//!
//! Redis holds what must be shared (ids, history, presence: the key table is in
//! [`keys`]); each server keeps only its own members' seats and queues.
//!
//! Every change that must be ordered is one Lua script: a message's id, its stream
//! entry and its `PUBLISH` happen together, so Pub/Sub order is id order on every
//! server. A server subscribes to a room's channel while it has members there (one
//! subscription per room per server). A joining member's seat is held while its
//! backlog is read from the stream; frames arriving meanwhile are kept and the ones
//! the backlog already had are dropped, so nothing is lost or repeated.
//!
//! Faults: if Redis is unreachable a send fails with `unavailable` and joins are
//! refused (1013); the subscriber reconnects with backoff, resubscribes, fills each
//! room's gap from its stream, and writes this server's presence back. A server that
//! dies without leaving stops refreshing its liveness key; the next server to notice
//! removes its members from presence and announces their leave.
//!
//! Here: connecting, joining (with the backlog read), the room list, and leaving at
//! shutdown. Beside it: `connection` where Redis is (one server or a Redis Cluster)
//! and the connection commands go over; [`keys`] every key's name (a room's under
//! one hash tag: one cluster slot); `payload` what goes into Redis and comes back;
//! `membership` a member's seat (publish; drop = leave); `presence` presence across
//! servers (room scripts, and the sets that span rooms in steps of their own);
//! `scripts` the Lua (`lua/*.lua`); `subscriber` the Pub/Sub task (sharded on a
//! cluster), with the outage recovery it runs (gap fill, presence written back);
//! `liveness` this server's liveness key and the reaping of dead servers.

pub mod keys;
mod liveness;
mod membership;
mod payload;
mod presence;
mod scripts;
mod subscriber;
mod topology;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_protocol::{JOIN_HISTORY, Member, REF_WINDOW_SECS, RoomName, RoomSummary};
use rand::Rng;
use redis::AsyncCommands;
use redis::streams::StreamRangeReply;
use tokio::sync::{OnceCell, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use keys::RoomKeys;
use liveness::liveness;
pub use membership::RedisMembership;
use payload::{entry_id, message_template, stored_frames};
use scripts::Scripts;
use subscriber::{Subscription, cluster_subscriber, subscriber};
use topology::{Redis, Target};

use crate::hub::engine::{
    HistoryPage, HubSettings, Joined, MAX_BAN, MemberConnections, Participant, Published, Removals,
    Unavailable, Welcome,
};
use crate::hub::fanout::FrameBytes;
use crate::hub::fanout::queue::member_queue;
use crate::hub::fanout::seats::{MemberId, Seats};
use crate::hub::presence::announcements::Announcer;
use crate::hub::presence::user_list::UserList;
use crate::hub::recovery::{self, RoomIds, Start};
use crate::sync::lock;

/// How long a Redis command may take before the caller is told `unavailable`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Joins in flight to Redis at once; more wait their turn.
const CONCURRENT_JOINS: usize = 32;
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// How to reach Redis, and how fast dead servers are noticed.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub url: String,
    /// A server that has not refreshed its liveness key for this long is dead and
    /// its members leave presence.
    pub node_ttl: Duration,
    /// A room's history and id sequence are dropped after this long without a message.
    pub retention: Duration,
}

/// Redis could not be used at start.
#[derive(Debug, thiserror::Error)]
#[error("cannot use Redis at {url}")]
pub struct RedisStartError {
    /// The URL without its password.
    url: String,
    #[source]
    source: redis::RedisError,
}

/// The rooms of one server in a Redis-backed group.
pub struct RedisHub {
    shared: Arc<Shared>,
}

struct Shared {
    settings: HubSettings,
    node: String,
    node_ttl: Duration,
    retention: Duration,
    /// Where Redis is: the subscriber opens its own connections there.
    target: Target,
    /// Commands and scripts.
    redis: Redis,
    rooms: Mutex<HashMap<Arc<str>, Arc<Room>>>,
    subscriptions: mpsc::UnboundedSender<Subscription>,
    next_member_id: AtomicU64,
    /// Joins talking to Redis at once.
    joins: Semaphore,
    scripts: Scripts,
    stop: CancellationToken,
    /// Closes removed users' sockets here (the `control` channel).
    removals: Removals,
}

struct Room {
    name: Arc<str>,
    keys: RoomKeys,
    state: Mutex<RoomState>,
    /// Set once this server is subscribed to the room's channel.
    subscribed: OnceCell<()>,
    /// Held (shared) by a join from entering presence in Redis until `users` counts
    /// it, and (exclusive) while presence is written back after an outage: the
    /// write-back sees a join either done or not begun, never half-way. (Listed
    /// before it entered, a user would be announced by the write-back, then find
    /// herself in her own welcome; counted after, she would be taken out.)
    entering: tokio::sync::RwLock<()>,
}

struct RoomState {
    seats: Seats,
    /// The newest message id queued to this server's members: Pub/Sub repeats and
    /// gap fills below it are dropped.
    last_delivered: u64,
    /// The room's last id when its first member here read the backlog: messages up
    /// to it reached every member here through backlogs, so an outage's gap starts
    /// no earlier.
    anchor: u64,
    /// This server's connections that entered the room's presence in Redis, per
    /// user (with the name): written back after an outage; while there are any,
    /// the heartbeat lists the room again.
    users: HashMap<Arc<str>, (Arc<str>, usize)>,
    /// Emptied here and being taken out of the rooms map: joins make a new room.
    removed: bool,
    /// Announces the joins and leaves that arrive by Pub/Sub to this server's
    /// members, one by one or gathered during a burst.
    announcer: Announcer,
}

impl RedisHub {
    /// Connects to Redis; fails if it cannot be reached now.
    pub async fn connect(
        settings: HubSettings,
        options: RedisOptions,
        removals: Removals,
    ) -> Result<Self, RedisStartError> {
        let start_error = |source| RedisStartError {
            url: redact(&options.url),
            source,
        };
        let mut target = topology::target(&options.url).map_err(start_error)?;
        let mut redis = Redis::connect(&target).await.map_err(start_error)?;
        let _: () = redis::cmd("PING")
            .query_async(&mut redis)
            .await
            .map_err(start_error)?;
        match (&redis, &target) {
            // A cluster never held keys from before hash tags: those scripts could
            // not run on one.
            (Redis::Single(_), _) => {
                let renamed = rename_untagged_keys(&mut redis)
                    .await
                    .map_err(start_error)?;
                if renamed > 0 {
                    tracing::info!(keys = renamed, "renamed room keys from before hash tags");
                }
            }
            // A `redis://` URL of a cluster node: the node is the cluster's seed.
            (Redis::Cluster(_), Target::Single(url)) => {
                target = Target::Cluster(vec![url.clone()]);
            }
            (Redis::Cluster(_), Target::Cluster(_)) => {}
        }
        let sharded = redis.is_cluster();

        let node = format!("{:016x}", rand::rng().random::<u64>());
        let (subscriptions, requests) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            settings,
            node,
            node_ttl: options.node_ttl,
            retention: options.retention,
            target,
            redis,
            rooms: Mutex::new(HashMap::new()),
            subscriptions,
            next_member_id: AtomicU64::new(1),
            joins: Semaphore::new(CONCURRENT_JOINS),
            scripts: Scripts::new(sharded),
            stop: CancellationToken::new(),
            removals,
        });
        shared.heartbeat().await.map_err(start_error)?;
        tracing::info!(
            node = shared.node,
            url = %redact(&options.url),
            cluster = sharded,
            "sharing rooms through Redis"
        );
        if sharded {
            tokio::spawn(cluster_subscriber(Arc::downgrade(&shared), requests));
        } else {
            tokio::spawn(subscriber(Arc::downgrade(&shared), requests));
        }
        tokio::spawn(liveness(Arc::downgrade(&shared)));
        tokio::spawn(liveness::finish_leaves(Arc::downgrade(&shared)));
        Ok(RedisHub { shared })
    }

    pub async fn join(
        &self,
        room_name: &RoomName,
        who: Participant,
        since: Option<u64>,
    ) -> Result<Joined<RedisMembership>, Unavailable> {
        let room_name = room_name.as_str();
        let shared = &self.shared;
        let (sender, queue) = member_queue(shared.settings.queue_bytes);
        let member_id = MemberId(shared.next_member_id.fetch_add(1, Ordering::Relaxed));
        let user_id: Arc<str> = Arc::from(who.id.as_str());
        let name: Arc<str> = Arc::from(who.name.as_str());

        // The rooms map is held only to find or create the room, never while waiting
        // for a room's lock: a busy room must not stall joins to the others.
        let room = loop {
            let room = lock(&shared.rooms)
                .entry(Arc::from(room_name))
                .or_insert_with_key(|name| Arc::new(Room::new(name.clone(), &self.shared.settings)))
                .clone();
            let mut state = lock(&room.state);
            if state.removed {
                // Emptied and on its way out of the map: help it out, then start afresh.
                drop(state);
                shared.unlist(&room);
                continue;
            }
            state.seats.insert(member_id, user_id.clone(), sender, true);
            drop(state);
            break room;
        };
        // From here on, dropping the membership undoes the seat (and presence).
        let mut membership = RedisMembership {
            shared: shared.clone(),
            room: room.clone(),
            member_id,
            user_id,
            name,
            present: false,
            counted: false,
            at_once: false,
        };
        room.subscribed
            .get_or_try_init(|| shared.subscribe(room.name.clone()))
            .await?;

        // A join storm (say, every client of a restarted server at once) waits here
        // rather than queueing thousands of scripts that would all time out.
        let _turn = shared
            .joins
            .acquire()
            .await
            .map_err(|_| Unavailable::ShuttingDown)?;
        let entering = room.entering.read().await;
        // If the outcome is unknown (a timeout), leaving undoes whatever it did.
        membership.present = true;
        let present = match shared.enter(&room, &who).await {
            // Refused before it changed anything: nothing to undo.
            Err(refused @ (Unavailable::TooManyRooms | Unavailable::Banned)) => {
                membership.present = false;
                return Err(refused);
            }
            other => other?,
        };
        lock(&room.state)
            .users
            .entry(membership.user_id.clone())
            .or_insert((membership.name.clone(), 0))
            .1 += 1;
        membership.counted = true;
        drop(entering);
        let mut users: Vec<Member> = present
            .into_iter()
            .map(|(user_id, name)| Member { user_id, name })
            .collect();
        let users = UserList::from_members(&mut users);

        let (backlog, recovered, last_id) = shared.backlog(&room.keys, since).await?;
        let covered_through = backlog.last().map(|(id, _)| *id);
        let released = {
            let mut state = lock(&room.state);
            if state.anchor == 0 {
                state.anchor = last_id;
            }
            state.seats.release(member_id, covered_through)
        };
        if released.is_err() {
            // Overflowed while the backlog was read; the empty queue reports 4008.
            tracing::info!(room = room_name, "evicted a member before it went live");
        }
        let welcome = Welcome {
            room: room_name.to_owned(),
            user_id: who.id,
            user: who.name,
            users,
            recovered,
            last_id,
        };
        Ok(Joined {
            membership,
            welcome,
            backlog: backlog.into_iter().map(|(_, frame)| frame).collect(),
            queue,
        })
    }

    /// Publishes as `author` whether or not anyone is in `room` (the server API): the
    /// same script as a member's message, with the idempotency key remembered under
    /// the empty user id, which no token's `sub` can be.
    pub async fn publish(
        &self,
        room: &RoomName,
        author: Participant,
        content: String,
        idempotency_key: Option<&str>,
    ) -> Result<Published, Unavailable> {
        let keys = RoomKeys::new(room.as_str());
        let reference = idempotency_key.map(|key| keys.reference("", key));
        Ok(self
            .shared
            .publish(&keys, &author.id, &author.name, content, reference)
            .await?)
    }

    /// The newest `limit` messages of the room's stream before `before`, oldest first.
    pub async fn history(
        &self,
        room: &RoomName,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, Unavailable> {
        let keys = RoomKeys::new(room.as_str());
        let end = match before {
            Some(before) => format!("({before}-0"),
            None => "+".to_owned(),
        };
        // One more than asked for says whether there are older ones.
        let mut newest: StreamRangeReply = self
            .shared
            .redis
            .clone()
            .xrevrange_count(&keys.log, end, "-", limit + 1)
            .await?;
        let has_more = newest.ids.len() > limit;
        newest.ids.truncate(limit);
        newest.ids.reverse();
        let messages = stored_frames(newest)
            .into_iter()
            .map(|(_, frame)| frame)
            .collect();
        Ok(HistoryPage { messages, has_more })
    }

    /// Who is listed in `room` (every server's members), sorted by name.
    pub async fn members(&self, room: &RoomName) -> Result<Vec<MemberConnections>, Unavailable> {
        let keys = RoomKeys::new(room.as_str());
        let (names, counts): (HashMap<String, String>, HashMap<String, usize>) = redis::pipe()
            .hgetall(&keys.names)
            .hgetall(&keys.users)
            .query_async(&mut self.shared.redis.clone())
            .await?;
        let mut members: Vec<MemberConnections> = names
            .into_iter()
            .map(|(user_id, name)| MemberConnections {
                connections: counts.get(&user_id).copied().unwrap_or(0),
                user_id,
                name,
            })
            .collect();
        members.sort_by(|a, b| (&a.name, &a.user_id).cmp(&(&b.name, &b.user_id)));
        Ok(members)
    }

    /// Bans `user_id` (when asked) in Redis, then closes its sockets here and tells
    /// every other server to close theirs.
    pub async fn disconnect(
        &self,
        user_id: &str,
        reason: &str,
        ban: Option<Duration>,
    ) -> Result<(), Unavailable> {
        let mut redis = self.shared.redis.clone();
        if let Some(ban) = ban {
            let seconds = ban.min(MAX_BAN).as_secs().max(1);
            let _: () = redis.set_ex(keys::ban(user_id), 1, seconds).await?;
        }
        self.shared.removals.remove(user_id, reason);
        let removal = serde_json::json!({"user_id": user_id, "reason": reason}).to_string();
        let _: usize = redis.publish(keys::control(), removal).await?;
        Ok(())
    }

    /// Rooms with members on this server.
    pub fn occupied_rooms(&self) -> usize {
        lock(&self.shared.rooms).len()
    }

    /// Rooms with members on any server, sorted by name.
    pub async fn rooms(&self) -> Result<Vec<RoomSummary>, Unavailable> {
        let mut redis = self.shared.redis.clone();
        let mut names: Vec<String> = redis.smembers(keys::rooms()).await?;
        names.sort();
        // One read per room, all in flight at once: rooms live on different shards
        // of a cluster, which one pipeline cannot span.
        let counts: Vec<Vec<usize>> =
            futures_util::future::try_join_all(names.iter().map(|name| {
                let mut redis = redis.clone();
                async move { redis.hvals(RoomKeys::new(name).users).await }
            }))
            .await?;
        Ok(names
            .into_iter()
            .zip(counts)
            .filter(|(_, users)| !users.is_empty())
            .map(|(name, users)| RoomSummary {
                name,
                members: users.len(),
                connections: users.iter().sum(),
            })
            .collect())
    }

    /// Leaves presence now instead of waiting to be reaped: for a graceful shutdown,
    /// after every socket has closed.
    pub async fn close(&self) {
        let shared = &self.shared;
        shared.stop.cancel();
        let mut redis = shared.redis.clone();
        let _: Result<(), _> = redis.del(keys::node(&shared.node)).await;
        if let Err(err) = shared.reap(&shared.node).await {
            tracing::warn!(error = %err, "could not leave presence; other servers will reap it");
        }
    }
}

impl Room {
    fn new(name: Arc<str>, settings: &HubSettings) -> Self {
        let state = RoomState {
            seats: Seats::new(settings.write_delay, settings.queue_bytes),
            last_delivered: 0,
            anchor: 0,
            users: HashMap::new(),
            removed: false,
            announcer: Announcer::new(settings.presence_burst),
        };
        Room {
            keys: RoomKeys::new(&name),
            name,
            state: Mutex::new(state),
            subscribed: OnceCell::new(),
            entering: tokio::sync::RwLock::new(()),
        }
    }
}

impl Shared {
    /// Stores a message from `user_id` (shown as `name`) in the room of `keys` and
    /// publishes it to every server. With a `reference` key already set within the
    /// ref window, only the first message's id comes back.
    async fn publish(
        &self,
        keys: &RoomKeys,
        user_id: &str,
        name: &str,
        content: String,
        reference: Option<String>,
    ) -> redis::RedisResult<Published> {
        let (prefix, suffix) = message_template(user_id, name, content);
        let mut invocation = self.scripts.publish.prepare_invoke();
        invocation
            .key(&keys.seq)
            .key(&keys.first)
            .key(&keys.log)
            .key(&keys.channel)
            .arg(self.settings.history_size)
            .arg(prefix)
            .arg(suffix)
            .arg(self.retention.as_millis().max(1) as u64);
        if let Some(reference) = reference {
            invocation.key(reference).arg(REF_WINDOW_SECS * 1000);
        }
        let (id, repeated): (u64, u8) = invocation.invoke_async(&mut self.redis.clone()).await?;
        Ok(Published {
            id,
            repeated: repeated == 1,
        })
    }

    /// `--presence-grace`, as the scripts take it.
    fn grace_ms(&self) -> u64 {
        self.settings.presence_grace.as_millis() as u64
    }

    /// Takes a room emptied here out of the map (unless a new room of that name took
    /// its place) and lets the subscriber unsubscribe from its channel.
    fn unlist(&self, room: &Arc<Room>) {
        let mut rooms = lock(&self.rooms);
        let listed = rooms
            .get(&room.name)
            .is_some_and(|listed| Arc::ptr_eq(listed, room));
        if listed {
            rooms.remove(&room.name);
            let _ = self
                .subscriptions
                .send(Subscription::Unsubscribe(room.name.clone()));
        }
    }

    async fn subscribe(&self, room: Arc<str>) -> Result<(), Unavailable> {
        let (done, confirmed) = oneshot::channel();
        self.subscriptions
            .send(Subscription::Subscribe(room, done))
            .map_err(|_| Unavailable::NotSubscribed)?;
        confirmed.await.map_err(|_| Unavailable::NotSubscribed)?
    }

    /// The frames (with ids) a joining member gets before live traffic, whether they
    /// cover what it asked for, and the room's last id at the time.
    async fn backlog(
        &self,
        keys: &RoomKeys,
        since: Option<u64>,
    ) -> Result<(Vec<(u64, FrameBytes)>, bool, u64), Unavailable> {
        let mut redis = self.redis.clone();
        let (first, seq, oldest): (Option<u64>, u64, Option<String>) = self
            .scripts
            .ids
            .key(&keys.seq)
            .key(&keys.first)
            .key(&keys.log)
            .arg(self.retention.as_millis().max(1) as u64)
            .invoke_async(&mut redis)
            .await?;
        let plan = recovery::plan(
            since,
            RoomIds {
                // Set together with `seq`; only a Redis that lost keys lacks it.
                first_id: first.unwrap_or(seq + 1),
                next_id: seq + 1,
                oldest_retained: oldest.as_deref().and_then(entry_id),
            },
        );
        let entries: StreamRangeReply = match plan.start {
            Start::Recent => {
                let mut newest: StreamRangeReply = redis
                    .xrevrange_count(&keys.log, "+", "-", JOIN_HISTORY)
                    .await?;
                newest.ids.reverse();
                newest
            }
            Start::After(0) => redis.xrange_all(&keys.log).await?,
            Start::After(seen) => redis.xrange(&keys.log, format!("({seen}-0"), "+").await?,
        };
        Ok((stored_frames(entries), plan.recovered, seq))
    }
}

/// Renames room keys written before they carried hash tags ([`keys::untagged`]), so
/// ids, history and presence carry over an upgrade; returns how many it renamed.
/// With several servers starting at once, each renames what the others have not.
async fn rename_untagged_keys(redis: &mut Redis) -> redis::RedisResult<usize> {
    let pattern = format!("{}room:*", keys::PREFIX);
    let mut cursor: u64 = 0;
    let mut renamed = 0;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await?;
        for key in found {
            let Some(tagged) = keys::untagged(&key) else {
                continue;
            };
            let moved: redis::RedisResult<bool> = redis::cmd("RENAMENX")
                .arg(&key)
                .arg(&tagged)
                .query_async(redis)
                .await;
            match moved {
                Ok(true) => renamed += 1,
                // Written under its new name since: the old one is stale.
                Ok(false) => redis.del(&key).await?,
                // Another server renamed it first.
                Err(err)
                    if err.kind()
                        == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {}
                Err(err) => return Err(err),
            }
        }
        if next == 0 {
            return Ok(renamed);
        }
        cursor = next;
    }
}

/// A Redis call with the deadline every call has.
async fn within<T>(call: impl Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
    tokio::time::timeout(COMMAND_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer within 2 s",
    ))
}

/// The URL without a password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
impl RedisHub {
    /// Holds a room's local lock on another thread (see [`crate::hub::engine::Busy`]).
    fn busy(&self, room: &str) -> crate::hub::engine::Busy {
        let room = lock(&self.shared.rooms)[room].clone();
        crate::hub::engine::Busy::hold(room, |room| &room.state)
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};

    use super::*;
    use crate::hub::Participant;

    /// A `redis-server` of the test's own on a free port, gone when dropped.
    pub(super) struct TestRedis {
        child: Child,
        pub(super) url: String,
    }

    impl TestRedis {
        pub(super) fn start() -> TestRedis {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server is installed (scripts/setup.sh --test)");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "redis-server did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            TestRedis {
                child,
                url: format!("redis://127.0.0.1:{port}"),
            }
        }
    }

    impl Drop for TestRedis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    pub(super) fn who(name: &str) -> Participant {
        Participant {
            id: name.into(),
            name: name.into(),
        }
    }

    /// A connection to `redis`, for a test to look at or change what it holds.
    pub(super) async fn connection(redis: &TestRedis) -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// A hub on `redis` that announces leaves at once.
    pub(super) async fn connect(redis: &TestRedis) -> Arc<RedisHub> {
        let settings = HubSettings {
            history_size: 10,
            queue_bytes: 64 * 1024,
            max_rooms: usize::MAX,
            history_memory: usize::MAX,
            presence_grace: Duration::ZERO,
            presence_burst: 16,
            write_delay: Duration::ZERO,
            metrics: Default::default(),
        };
        let options = RedisOptions {
            url: redis.url.clone(),
            node_ttl: Duration::from_secs(10),
            retention: Duration::from_secs(3600),
        };
        Arc::new(
            RedisHub::connect(settings, options, Removals::default())
                .await
                .unwrap(),
        )
    }

    /// Runs `join` on a thread of its own: a join stuck on a lock blocks its thread,
    /// and must not block the test's. Reports when the member is in.
    fn join_on_a_thread(
        hub: &Arc<RedisHub>,
        room: &'static str,
        name: &'static str,
    ) -> std::sync::mpsc::Receiver<()> {
        let (done, finished) = std::sync::mpsc::channel();
        let hub = hub.clone();
        let runtime = tokio::runtime::Handle::current();
        std::thread::spawn(move || {
            let joined =
                runtime.block_on(hub.join(&RoomName::parse(room).unwrap(), who(name), None));
            assert!(joined.is_ok(), "{name} could not join {room}");
            let _ = done.send(());
            drop(joined);
        });
        finished
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_room_does_not_stall_joins_to_other_rooms() {
        let redis = TestRedis::start();
        let hub = connect(&redis).await;
        let mut alice = hub
            .join(&RoomName::parse("busy").unwrap(), who("alice"), None)
            .await
            .unwrap();
        // Her own join comes back through Pub/Sub: once it is in, nothing more is on
        // its way to the busy room, whose lock would hold up the subscriber (and with
        // it every other room's subscription) in a way no real room does.
        let own_join = alice.queue.recv().await.expect("alice's own join");
        assert!(
            own_join.text().contains("\"event\":\"join\""),
            "{own_join:?}"
        );
        let busy = hub.busy("busy");
        // A join to the busy room waits for it...
        let waiting = join_on_a_thread(&hub, "busy", "bob");
        // ...(given a moment to start waiting; if it has not, this proves less)...
        tokio::time::sleep(Duration::from_millis(50)).await;
        // ...while a join elsewhere goes straight in.
        let elsewhere = join_on_a_thread(&hub, "quiet", "carol");
        let in_time = |finished: std::sync::mpsc::Receiver<()>| {
            tokio::task::spawn_blocking(move || {
                finished.recv_timeout(Duration::from_secs(5)).is_ok()
            })
        };
        assert!(
            in_time(elsewhere).await.unwrap(),
            "a join to another room waited for the busy one"
        );
        drop(busy);
        assert!(
            in_time(waiting).await.unwrap(),
            "the busy room admits once free"
        );
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(redact("redis://user:pw@host"), "redis://user:***@host");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
