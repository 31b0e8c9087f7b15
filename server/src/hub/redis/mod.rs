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
//! # Layout
//!
//! - `mod.rs`: [`RedisHub`], what the hub asks of the engine (connect, join with
//!   the backlog read, publish, history, members, disconnect, the room list, leaving
//!   at shutdown);
//! - `node.rs`: this server in the group, what every room here shares, and a publish's and a
//!   backlog's steps in Redis; `room.rs`: one room here (seats, what was delivered,
//!   who entered presence);
//! - `membership.rs`: a member's seat (publish; drop = leave);
//! - `topology.rs`: where Redis is (one server or a Redis Cluster), the connection
//!   commands go over, and the deadline every call has;
//! - [`keys`]: every key's name (a room's under one hash tag: one cluster slot);
//!   `migrate.rs`: keys from before hash tags, renamed at start;
//! - `payload.rs`: what goes into Redis and comes back; `scripts.rs`: the Lua
//!   (`lua/*.lua`);
//! - `presence.rs`: presence across servers (room scripts, and the sets that span
//!   rooms in steps of their own); `liveness.rs`: this server's liveness key and the
//!   reaping of dead servers;
//! - `subscriber.rs` (one Redis) and `cluster_subscriber.rs` (sharded Pub/Sub): the
//!   Pub/Sub task; `catch_up.rs`: what arrives, and gaps and presence after an
//!   outage; `delivery.rs`: a frame into this server's member queues;
//! - `tests.rs`: a real `redis-server` per test, and the engine against it.

mod catch_up;
mod cluster_subscriber;
mod delivery;
pub mod keys;
mod liveness;
mod membership;
mod migrate;
mod node;
mod payload;
mod presence;
mod room;
mod scripts;
mod subscriber;
#[cfg(test)]
mod tests;
mod topology;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_protocol::{Member, RoomName, RoomSummary};
use rand::Rng;
use redis::AsyncCommands;
use redis::streams::StreamRangeReply;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::hub::engine::{
    HistoryPage, HubSettings, Joined, MAX_BAN, MemberConnections, Participant, Published, Removals,
    Unavailable, Welcome,
};
use crate::hub::fanout::queue::member_queue;
use crate::hub::fanout::seats::MemberId;
use crate::hub::presence::user_list::UserList;
use crate::sync::lock;
use cluster_subscriber::cluster_subscriber;
use keys::RoomKeys;
use liveness::liveness;
pub use membership::RedisMembership;
use migrate::rename_untagged_keys;
use node::Node;
use payload::stored_frames;
use room::LocalRoom;
use scripts::Scripts;
use subscriber::subscriber;
use topology::redact;
use topology::{Redis, Target};

/// Joins in flight to Redis at once; more wait their turn.
const CONCURRENT_JOINS: usize = 32;

/// How to reach Redis, and how fast dead servers are noticed.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://` (one server) or `redis+cluster://` (some nodes of a cluster).
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
    shared: Arc<Node>,
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
        let shared = Arc::new(Node {
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

    /// Joins `room`: holds the seat, enters presence (the join script), reads the backlog, then releases the seat without repeating what the backlog had.
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
                .or_insert_with_key(|name| {
                    Arc::new(LocalRoom::new(name.clone(), &self.shared.settings))
                })
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
            // Ids start at 1, so nothing is older; and `(0-0` is an error to Redis
            // (an exclusive range has no id below 0-0), which would make a
            // member's harmless request a 503, a warning and a Redis error count.
            Some(0 | 1) => return Ok(HistoryPage::default()),
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
        let mut names: Vec<String> = self.shared.redis.clone().smembers(keys::rooms()).await?;
        names.sort();
        Ok(self
            .room_summaries(names)
            .await?
            .into_iter()
            .filter_map(|(_, summary)| summary)
            .collect())
    }

    /// What each of `names` is now (every server's members): its summary, or `None`
    /// with nobody in it. One read per room, all in flight at once: rooms live on
    /// different shards of a cluster, which one pipeline cannot span.
    pub async fn room_summaries(
        &self,
        names: Vec<String>,
    ) -> Result<Vec<(String, Option<RoomSummary>)>, Unavailable> {
        let redis = &self.shared.redis;
        let counts: Vec<Vec<usize>> =
            futures_util::future::try_join_all(names.iter().map(|name| {
                let mut redis = redis.clone();
                async move { redis.hvals(RoomKeys::new(name).users).await }
            }))
            .await?;
        Ok(names
            .into_iter()
            .zip(counts)
            .map(|(name, users)| {
                let summary = (!users.is_empty()).then(|| RoomSummary {
                    name: name.clone(),
                    members: users.len(),
                    connections: users.iter().sum(),
                });
                (name, summary)
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

#[cfg(test)]
impl RedisHub {
    /// Holds a room's local lock on another thread (see [`crate::hub::engine::Busy`]).
    fn busy(&self, room: &str) -> crate::hub::engine::Busy {
        let room = lock(&self.shared.rooms)[room].clone();
        crate::hub::engine::Busy::hold(room, |room| &room.state)
    }
}
