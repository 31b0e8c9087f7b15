//! What every room of this server shares: the settings, the connection, the rooms
//! map, the subscriber's requests, and the steps a join or a publish takes in Redis.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_protocol::{JOIN_HISTORY, REF_WINDOW_SECS};
use redis::AsyncCommands;
use redis::streams::StreamRangeReply;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::keys::RoomKeys;
use super::payload::{entry_id, message_template, stored_frames};
use super::room::LocalRoom;
use super::scripts::Scripts;
use super::topology::{Redis, Target};
use crate::hub::engine::{HubSettings, Published, Removals, Unavailable};
use crate::hub::fanout::FrameBytes;
use crate::hub::recovery::{self, RoomIds, Start};
use crate::sync::lock;

pub(super) struct Node {
    pub(super) settings: HubSettings,
    pub(super) node: String,
    pub(super) node_ttl: Duration,
    pub(super) retention: Duration,
    /// Where Redis is: the subscriber opens its own connections there.
    pub(super) target: Target,
    /// Commands and scripts.
    pub(super) redis: Redis,
    pub(super) rooms: Mutex<HashMap<Arc<str>, Arc<LocalRoom>>>,
    pub(super) subscriptions: mpsc::UnboundedSender<Subscription>,
    pub(super) next_member_id: AtomicU64,
    /// Joins talking to Redis at once.
    pub(super) joins: Semaphore,
    pub(super) scripts: Scripts,
    pub(super) stop: CancellationToken,
    /// Closes removed users' sockets here (the `control` channel).
    pub(super) removals: Removals,
}

impl Node {
    /// Stores a message from `user_id` (shown as `name`) in the room of `keys` and
    /// publishes it to every server. With a `reference` key already set within the
    /// ref window, only the first message's id comes back.
    pub(super) async fn publish(
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
    pub(super) fn grace_ms(&self) -> u64 {
        self.settings.presence_grace.as_millis() as u64
    }

    /// Takes a room emptied here out of the map (unless a new room of that name took
    /// its place) and lets the subscriber unsubscribe from its channel.
    pub(super) fn unlist(&self, room: &Arc<LocalRoom>) {
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

    pub(super) async fn subscribe(&self, room: Arc<str>) -> Result<(), Unavailable> {
        let (done, confirmed) = oneshot::channel();
        self.subscriptions
            .send(Subscription::Subscribe(room, done))
            .map_err(|_| Unavailable::NotSubscribed)?;
        confirmed.await.map_err(|_| Unavailable::NotSubscribed)?
    }

    /// The frames (with ids) a joining member gets before live traffic, whether they
    /// cover what it asked for, and the room's last id at the time.
    pub(super) async fn backlog(
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

/// What the subscriber task is asked to do.
pub(super) enum Subscription {
    Subscribe(Arc<str>, oneshot::Sender<Result<(), Unavailable>>),
    /// Unsubscribes unless the room has members again by then.
    Unsubscribe(Arc<str>),
}
