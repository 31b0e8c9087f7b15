//! The Pub/Sub subscriber: one task per server owns the Pub/Sub connection,
//! subscribes to a room's channel while this server has members there, and
//! delivers what arrives. After a lost connection it reconnects, resubscribes, fills
//! each room's gap from its stream and writes this server's presence back.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::PubSubSink;
use redis::streams::StreamRangeReply;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep};
use tokio_util::task::AbortOnDropHandle;

use super::keys::{self, RoomKeys};
use super::payload::{parse_payload, stamped_at, stored_frames};
use super::presence::Present;
use super::topology::{Target, cluster_client};
use super::{RECONNECT_MAX, RECONNECT_MIN, Room, RoomState, Shared, within};
use crate::hub::engine::Unavailable;
use crate::hub::fanout::FrameBytes;
use crate::hub::fanout::seats::FrameId;
use crate::hub::presence::announcements::parse_system;
use crate::observe::metrics::Metrics;
use crate::sync::lock;
use std::time::SystemTime;

pub(super) enum Subscription {
    Subscribe(Arc<str>, oneshot::Sender<Result<(), Unavailable>>),
    /// Unsubscribes unless the room has members again by then.
    Unsubscribe(Arc<str>),
}

/// How often the Pub/Sub connection is checked with a `PING`: a connection that
/// went silently dead (a hung Redis, a lost route) is replaced, not trusted.
const HEALTH_CHECK: Duration = Duration::from_secs(5);

/// Owns the Pub/Sub connection: subscribes and unsubscribes on request, delivers
/// messages, and after a lost connection reconnects, resubscribes and fills gaps.
///
/// Every call to Redis has a deadline ([`COMMAND_TIMEOUT`]); every failure (to
/// connect, to resume, to subscribe, a failed health check) waits longer before the
/// next attempt, doubling up to [`RECONNECT_MAX`], and is logged as a warning once per
/// outage (then at debug level), so a Redis that accepts connections but refuses
/// writes costs a few attempts a minute, not ten a second.
pub(super) async fn subscriber(
    shared: Weak<Shared>,
    mut requests: mpsc::UnboundedReceiver<Subscription>,
) {
    let mut outage = Outage::default();
    loop {
        let Some(current) = shared.upgrade() else {
            return;
        };
        let connected = within(pubsub(&current.target)).await;
        let pubsub = match connected {
            Ok(pubsub) => pubsub,
            Err(err) => {
                outage.failed("cannot connect to Redis for Pub/Sub", &err);
                drop(current);
                if !refuse_while_waiting(&mut requests, outage.delay()).await {
                    return;
                }
                continue;
            }
        };
        let (mut sink, mut messages) = pubsub.split();
        if let Err(err) = resume(&current, &mut sink, outage.ongoing()).await {
            outage.failed("could not resume after a Redis outage", &err);
            drop(current);
            if !refuse_while_waiting(&mut requests, outage.delay()).await {
                return;
            }
            continue;
        }
        if outage.ongoing() {
            tracing::info!("Redis is back: resubscribed and caught up");
            current.settings.metrics.redis_subscriber_reconnects.inc();
        }
        outage = Outage::default();
        drop(current);

        let mut health = tokio::time::interval_at(Instant::now() + HEALTH_CHECK, HEALTH_CHECK);
        let lost: redis::RedisError = loop {
            tokio::select! {
                request = requests.recv() => {
                    let Some(request) = request else { return };
                    let Some(current) = shared.upgrade() else { return };
                    match request {
                        Subscription::Subscribe(room, done) => {
                            let channel = RoomKeys::new(&room).channel;
                            match within(sink.subscribe(&channel)).await {
                                Ok(()) => {
                                    let _ = done.send(Ok(()));
                                }
                                // The connection is suspect: the join is refused (1013,
                                // retried by the client) and the connection replaced.
                                Err(err) => {
                                    let _ = done.send(Err(Unavailable::NotSubscribed));
                                    break err;
                                }
                            }
                        }
                        Subscription::Unsubscribe(room) => {
                            if !lock(&current.rooms).contains_key(&room) {
                                let channel = RoomKeys::new(&room).channel;
                                if let Err(err) = within(sink.unsubscribe(&channel)).await {
                                    break err;
                                }
                            }
                        }
                    }
                }
                _ = health.tick() => {
                    if let Err(err) = within(sink.ping::<redis::Value>()).await {
                        break err;
                    }
                }
                message = messages.next() => {
                    let Some(message) = message else {
                        break redis::RedisError::from((redis::ErrorKind::Io, "the Pub/Sub connection closed"));
                    };
                    let Some(current) = shared.upgrade() else { return };
                    current.receive(message.get_channel_name(), message.get_payload_bytes()).await;
                }
            }
        };
        outage.failed("lost the Redis Pub/Sub connection", &lost);
        if !refuse_while_waiting(&mut requests, outage.delay()).await {
            return;
        }
    }
}

/// The subscriber on a Redis Cluster: a room's channel is sharded (`SSUBSCRIBE`,
/// served by the shard of the room's slot), the control channel classic. The
/// cluster client follows slot moves and failovers and subscribes again by itself;
/// this task fills in what may have been missed meanwhile: a room's gap from its
/// stream when its subscription is confirmed again (or a message skips ids), and
/// this server's presence written back once a lost node is reachable again.
pub(super) async fn cluster_subscriber(
    shared: Weak<Shared>,
    mut requests: mpsc::UnboundedReceiver<Subscription>,
) {
    let mut outage = Outage::default();
    loop {
        let Some(current) = shared.upgrade() else {
            return;
        };
        let (pushes_to, mut pushes) = mpsc::unbounded_channel();
        let connected = match &current.target {
            Target::Cluster(nodes) => match cluster_client(nodes)
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(pushes_to)
                .build()
            {
                Ok(client) => within(client.get_async_connection()).await,
                Err(err) => Err(err),
            },
            Target::Single(_) => return,
        };
        let mut connection = match connected {
            Ok(connection) => connection,
            Err(err) => {
                outage.failed("cannot connect to the Redis Cluster for Pub/Sub", &err);
                drop(current);
                if !refuse_while_waiting(&mut requests, outage.delay()).await {
                    return;
                }
                continue;
            }
        };
        if let Err(err) = resume_sharded(&current, &mut connection, outage.ongoing()).await {
            outage.failed("could not resume after a Redis outage", &err);
            drop(current);
            if !refuse_while_waiting(&mut requests, outage.delay()).await {
                return;
            }
            continue;
        }
        if outage.ongoing() {
            tracing::info!("Redis is back: resubscribed and caught up");
            current.settings.metrics.redis_subscriber_reconnects.inc();
        }
        outage = Outage::default();
        drop(current);

        // When to catch up after a node was lost: the client reconnects and
        // resubscribes by itself, this server writes its presence back and fills gaps.
        let mut catch_up: Option<Instant> = None;
        // A catch-up runs beside the live messages, not instead of them: with
        // thousands of rooms it takes thousands of round trips, and run here it held
        // back every room's messages for tens of seconds (100,000 members on a busy
        // machine, where a slow PING was enough to start one). Aborted if this
        // connection is given up.
        let mut catching_up: Option<AbortOnDropHandle<redis::RedisResult<()>>> = None;
        let mut health = tokio::time::interval_at(Instant::now() + HEALTH_CHECK, HEALTH_CHECK);
        loop {
            let catch_up_at = catch_up.unwrap_or_else(|| Instant::now() + RECONNECT_MAX);
            tokio::select! {
                request = requests.recv() => {
                    let Some(request) = request else { return };
                    let Some(current) = shared.upgrade() else { return };
                    match request {
                        Subscription::Subscribe(room, done) => {
                            let channel = RoomKeys::new(&room).channel;
                            match within(connection.ssubscribe(&channel)).await {
                                Ok(()) => {
                                    let _ = done.send(Ok(()));
                                }
                                Err(err) => {
                                    let _ = done.send(Err(Unavailable::NotSubscribed));
                                    outage.failed("cannot subscribe on the Redis Cluster", &err);
                                    catch_up.get_or_insert(Instant::now() + outage.delay());
                                }
                            }
                        }
                        Subscription::Unsubscribe(room) => {
                            if !lock(&current.rooms).contains_key(&room) {
                                let channel = RoomKeys::new(&room).channel;
                                if let Err(err) = within(connection.sunsubscribe(&channel)).await {
                                    tracing::debug!(error = %err, "cannot unsubscribe on the Redis Cluster");
                                }
                            }
                        }
                    }
                }
                _ = health.tick() => {
                    if let Err(err) = within(redis::cmd("PING").query_async::<redis::Value>(&mut connection)).await {
                        outage.failed("the Redis Cluster did not answer", &err);
                        catch_up.get_or_insert(Instant::now() + outage.delay());
                    }
                }
                () = tokio::time::sleep_until(catch_up_at), if catch_up.is_some() && catching_up.is_none() => {
                    let Some(current) = shared.upgrade() else { return };
                    let mut connection = connection.clone();
                    catch_up = None;
                    catching_up = Some(AbortOnDropHandle::new(tokio::spawn(async move {
                        resume_sharded(&current, &mut connection, true).await
                    })));
                }
                caught_up = async { catching_up.as_mut().expect("guarded").await }, if catching_up.is_some() => {
                    catching_up = None;
                    let caught_up = caught_up.unwrap_or_else(|_| {
                        Err(redis::RedisError::from((redis::ErrorKind::Client, "the catch-up task failed")))
                    });
                    match caught_up {
                        Ok(()) => {
                            if outage.ongoing() {
                                tracing::info!("Redis is back: caught up");
                                if let Some(current) = shared.upgrade() {
                                    current.settings.metrics.redis_subscriber_reconnects.inc();
                                }
                            }
                            outage = Outage::default();
                        }
                        Err(err) => {
                            outage.failed("could not catch up after a Redis outage", &err);
                            catch_up.get_or_insert(Instant::now() + outage.delay());
                        }
                    }
                }
                push = pushes.recv() => {
                    let Some(push) = push else { break };
                    let Some(current) = shared.upgrade() else { return };
                    match push.kind {
                        redis::PushKind::Message | redis::PushKind::SMessage => {
                            if let [redis::Value::BulkString(channel), redis::Value::BulkString(payload), ..] = push.data.as_slice() {
                                current.receive(&String::from_utf8_lossy(channel), payload).await;
                            }
                        }
                        // Subscribed again after a lost node or a slot move: what was
                        // published meanwhile is in the room's stream. Read beside the
                        // live messages: a resubscription of every room confirms each,
                        // and thousands of reads here would hold all of them back.
                        redis::PushKind::SSubscribe => {
                            if let Some(redis::Value::BulkString(channel)) = push.data.first()
                                && let Some(room) = keys::room_of_channel(&String::from_utf8_lossy(channel))
                                    .and_then(|name| lock(&current.rooms).get(name).cloned())
                                && room.was_live()
                            {
                                tokio::spawn(async move {
                                    if let Err(err) = within(current.fill_gap(&room)).await {
                                        tracing::debug!(error = %err, "cannot fill a gap from the stream");
                                    }
                                });
                            }
                        }
                        redis::PushKind::Disconnection => {
                            let err = redis::RedisError::from((redis::ErrorKind::Io, "a Redis Cluster node closed its connection"));
                            outage.failed("lost a Redis Cluster connection", &err);
                            catch_up.get_or_insert(Instant::now() + outage.delay());
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// On a fresh cluster connection, or after a lost node: subscribe to the control
/// channel and every room with members here (again: a no-op where still
/// subscribed); after an outage also catch up on messages and write presence back.
async fn resume_sharded(
    shared: &Shared,
    connection: &mut redis::cluster_async::ClusterConnection,
    after_outage: bool,
) -> redis::RedisResult<()> {
    within(connection.subscribe(keys::control())).await?;
    let rooms: Vec<Arc<Room>> = lock(&shared.rooms).values().cloned().collect();
    for room in &rooms {
        within(connection.ssubscribe(&room.keys.channel)).await?;
    }
    if after_outage {
        shared.catch_up(&rooms).await?;
    }
    Ok(())
}

/// A Pub/Sub connection to a single Redis.
async fn pubsub(target: &Target) -> redis::RedisResult<redis::aio::PubSub> {
    match target {
        Target::Single(url) => redis::Client::open(url.as_str())?.get_async_pubsub().await,
        Target::Cluster(_) => Err(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "a cluster has no single Pub/Sub connection",
        ))),
    }
}

/// Consecutive failures since Pub/Sub last worked: how long to wait before the next
/// attempt, and whether this failure is worth a warning.
#[derive(Debug, Default)]
struct Outage {
    failures: u32,
}

impl Outage {
    fn ongoing(&self) -> bool {
        self.failures > 0
    }

    fn failed(&mut self, what: &str, err: &redis::RedisError) {
        if self.failures == 0 {
            tracing::warn!(error = %err, "{what}; retrying with backoff");
        } else {
            tracing::debug!(error = %err, attempt = self.failures, "{what}; retrying");
        }
        self.failures = self.failures.saturating_add(1);
    }

    /// `RECONNECT_MIN` after the first failure, doubling to `RECONNECT_MAX`.
    fn delay(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(16);
        RECONNECT_MIN
            .saturating_mul(1 << doublings)
            .min(RECONNECT_MAX)
    }
}

/// On a fresh Pub/Sub connection: subscribe to the control channel and every room
/// with members here; after an outage also catch up on messages and write presence
/// back. (A removal sent during an outage is missed here; the ban, in Redis, still
/// refuses the user's reconnects.)
async fn resume(
    shared: &Shared,
    sink: &mut PubSubSink,
    after_outage: bool,
) -> redis::RedisResult<()> {
    within(sink.subscribe(keys::control())).await?;
    let rooms: Vec<Arc<Room>> = lock(&shared.rooms).values().cloned().collect();
    for room in &rooms {
        within(sink.subscribe(&room.keys.channel)).await?;
    }
    if after_outage {
        shared.catch_up(&rooms).await?;
    }
    Ok(())
}

/// Waits `delay` while answering subscription requests with `unavailable`; `false`
/// once the hub is gone.
async fn refuse_while_waiting(
    requests: &mut mpsc::UnboundedReceiver<Subscription>,
    delay: Duration,
) -> bool {
    let wait = sleep(delay);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            () = &mut wait => return true,
            request = requests.recv() => match request {
                None => return false,
                Some(Subscription::Subscribe(_, done)) => {
                    let _ = done.send(Err(Unavailable::NotSubscribed));
                }
                Some(Subscription::Unsubscribe(_)) => {}
            },
        }
    }
}

impl Shared {
    /// Queues a frame from the room's channel for this server's members, or closes
    /// a removed user's sockets here (the control channel). A message whose id
    /// skips some (lost while a shard failed over, say) brings those from the
    /// room's stream first.
    async fn receive(&self, channel: &str, payload: &[u8]) {
        let Some(room_name) = keys::room_of_channel(channel) else {
            if channel == keys::control() {
                #[derive(serde::Deserialize)]
                struct Removal {
                    user_id: String,
                    reason: String,
                }
                match serde_json::from_slice::<Removal>(payload) {
                    Ok(removal) => self.removals.remove(&removal.user_id, &removal.reason),
                    Err(_) => tracing::warn!("ignoring a malformed removal"),
                }
            }
            return;
        };
        let Some((id, frame)) = parse_payload(payload) else {
            tracing::warn!(channel, "ignoring a malformed Pub/Sub message");
            return;
        };
        let Some(room) = lock(&self.rooms).get(room_name).cloned() else {
            return;
        };
        if let Some(id) = id
            && room.missed_before(id)
            && let Err(err) = within(self.fill_gap(&room)).await
        {
            tracing::debug!(room = room_name, error = %err, "cannot fill a gap from the stream");
        }
        room.deliver(id, &frame, &self.settings.metrics);
        if id.is_some()
            && let Some(stamped) = stamped_at(&frame)
        {
            // Wall clocks: the message was stamped by whichever server published it.
            let latency = SystemTime::now()
                .duration_since(stamped)
                .unwrap_or_default();
            self.settings.metrics.latency(latency);
        }
    }

    /// After an outage, once subscribed again: this server marked alive, and each
    /// room's presence written back and its gap filled from the stream.
    async fn catch_up(&self, rooms: &[Arc<Room>]) -> redis::RedisResult<()> {
        within(self.heartbeat()).await?;
        for room in rooms {
            within(self.restore_presence(room)).await?;
            within(self.fill_gap(room)).await?;
        }
        Ok(())
    }

    /// After an outage: messages stored while this server was cut off, in order.
    async fn fill_gap(&self, room: &Arc<Room>) -> redis::RedisResult<()> {
        let after = {
            let state = lock(&room.state);
            state.last_delivered.max(state.anchor)
        };
        // Nothing delivered and the room was empty at the first join: all of it is new.
        let start = match after {
            0 => "-".to_owned(),
            after => format!("({after}-0"),
        };
        let entries: StreamRangeReply = self
            .redis
            .clone()
            .xrange(&room.keys.log, start, "+")
            .await?;
        let metrics = &self.settings.metrics;
        for (id, frame) in stored_frames(entries) {
            if room.deliver(Some(id), &frame, metrics) {
                metrics.redis_gap_refills.inc();
            }
        }
        Ok(())
    }

    /// After an outage: this server's connections, written back into presence
    /// (Redis may have restarted empty, or reaped us while we were cut off).
    pub(super) async fn restore_presence(&self, room: &Room) -> redis::RedisResult<()> {
        // Joins in flight finish entering first; new ones wait for the write-back.
        let _entering = room.entering.write().await;
        let users: Vec<(Arc<str>, Arc<str>, usize)> = lock(&room.state)
            .users
            .iter()
            .map(|(id, (name, count))| (id.clone(), name.clone(), *count))
            .collect();
        let present: Vec<Present> = users
            .iter()
            .map(|(user_id, name, connections)| Present {
                user_id,
                name,
                connections: *connections,
            })
            .collect();
        self.set_share(&self.node, &room.name, &present).await
    }
}

impl Room {
    /// Whether message `id` comes after some that never arrived here: ids of a room
    /// follow each other, so a jump past the next one is a loss (or a sequence
    /// started afresh, which the stream tells apart).
    fn missed_before(&self, id: u64) -> bool {
        let state = lock(&self.state);
        state.last_delivered > 0 && id > state.last_delivered + 1
    }

    /// Whether the room has been live here: only then is there a gap to fill.
    fn was_live(&self) -> bool {
        let state = lock(&self.state);
        state.last_delivered > 0 || state.anchor > 0
    }

    /// Queues `frame` for this server's members unless it was delivered already;
    /// returns whether it was new. Joins and leaves go through the room's announcer,
    /// which gathers them during a burst; anything else goes after what it gathered.
    fn deliver(self: &Arc<Self>, id: FrameId, frame: &FrameBytes, metrics: &Arc<Metrics>) -> bool {
        let mut state = lock(&self.state);
        if let Some(id) = id {
            if id <= state.last_delivered {
                return false;
            }
            state.last_delivered = id;
        }
        let announcement = id.is_none().then(|| parse_system(frame)).flatten();
        if let Some((change, member)) = announcement {
            let user_id: Arc<str> = Arc::from(member.user_id);
            let step =
                state
                    .announcer
                    .announce(change, &user_id, &member.name, std::time::Instant::now());
            if let Some(at) = step.flush_at {
                self.flush_announcements_at(at, metrics.clone());
            }
            for frame in &step.frames {
                self.send(&mut state, None, frame, metrics);
            }
        } else {
            if let Some(gathered) = state.announcer.flush() {
                self.send(&mut state, None, &gathered, metrics);
            }
            self.send(&mut state, id, frame, metrics);
        }
        true
    }

    /// Sends one frame to this server's members; when it begins a busy room's batch,
    /// starts the batch's timer. Evicted members' connections close with 4008 and
    /// leave presence as they drop.
    fn send(
        self: &Arc<Self>,
        state: &mut RoomState,
        id: FrameId,
        frame: &FrameBytes,
        metrics: &Arc<Metrics>,
    ) {
        let sent = state.seats.send(id, frame, tokio::time::Instant::now());
        metrics.delivered(sent.delivery.queued, sent.delivery.evicted);
        if let Some(due) = sent.due {
            self.send_gathered_at(due, metrics.clone());
        }
    }

    /// Sends the busy room's batch at `at`. Holds the room weakly: a room gone from
    /// this server is done.
    fn send_gathered_at(self: &Arc<Self>, at: tokio::time::Instant, metrics: Arc<Metrics>) {
        let room = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let Some(room) = room.upgrade() else { return };
            let delivery = lock(&room.state)
                .seats
                .send_gathered(tokio::time::Instant::now());
            metrics.delivered(delivery.queued, delivery.evicted);
        });
    }

    /// Sends what the announcer gathered at `at`, and again every window while the
    /// burst goes on. Holds the room weakly: a room gone from this server is done.
    fn flush_announcements_at(self: &Arc<Self>, at: std::time::Instant, metrics: Arc<Metrics>) {
        let room = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut at = at;
            loop {
                tokio::time::sleep_until(at.into()).await;
                let Some(room) = room.upgrade() else { return };
                let mut state = lock(&room.state);
                let (gathered, next) = state.announcer.tick(std::time::Instant::now());
                if let Some(gathered) = gathered {
                    room.send(&mut state, None, &gathered, &metrics);
                }
                match next {
                    Some(next) => at = next,
                    None => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use redis::AsyncCommands;

    use super::super::CONCURRENT_JOINS;
    use super::super::tests::{TestRedis, connect, connection, who};
    use super::*;
    use chorus_protocol::RoomName;

    /// A user whose join is on its way when presence is written back (after an
    /// outage, beside the live messages) enters once: not written back before she
    /// entered, so neither listed in her own welcome nor counted twice in Redis (a
    /// connection that would never leave).
    #[tokio::test]
    async fn presence_written_back_during_a_join_counts_the_joining_user_once() {
        let redis = TestRedis::start();
        let hub = connect(&redis).await;
        let lobby = RoomName::parse("lobby").unwrap();
        let mut alice = hub.join(&lobby, who("alice"), None).await.unwrap();
        let shared = hub.shared.clone();
        let room = lock(&shared.rooms)["lobby"].clone();

        // Bob's join takes its seat, then waits for a turn to enter presence.
        let turns = shared
            .joins
            .acquire_many(CONCURRENT_JOINS as u32)
            .await
            .unwrap();
        let bob = tokio::spawn({
            let hub = hub.clone();
            let lobby = lobby.clone();
            async move { hub.join(&lobby, who("bob"), None).await }
        });
        while lock(&room.state).seats.len() < 2 {
            tokio::task::yield_now().await;
        }
        shared.restore_presence(&room).await.unwrap();
        drop(turns);
        let bob = bob.await.unwrap().unwrap();

        let listed: Vec<String> = bob
            .welcome
            .users
            .members()
            .into_iter()
            .map(|member| member.user_id)
            .collect();
        assert_eq!(
            listed,
            ["alice"],
            "bob's welcome lists who was there before"
        );
        let mut conn = connection(&redis).await;
        let bobs: i64 = conn.hget(&room.keys.users, "bob").await.unwrap();
        assert_eq!(bobs, 1, "bob has one connection");
        // Alice hears of both joins once each: hers, then bob's.
        let mut joins = Vec::new();
        while joins.len() < 2 {
            let frame = alice.queue.recv().await.expect("a frame for alice");
            joins.push(frame.text().to_owned());
        }
        assert!(joins[0].contains("\"user_id\":\"alice\""), "{joins:?}");
        assert!(joins[1].contains("\"user_id\":\"bob\""), "{joins:?}");
        drop(bob);
    }

    #[test]
    fn every_failure_waits_twice_as_long_up_to_the_cap() {
        let mut outage = Outage::default();
        assert!(!outage.ongoing());
        let error = redis::RedisError::from((redis::ErrorKind::Io, "down"));
        let mut delays = Vec::new();
        for _ in 0..8 {
            outage.failed("test", &error);
            delays.push(outage.delay().as_millis());
        }
        assert!(outage.ongoing());
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
