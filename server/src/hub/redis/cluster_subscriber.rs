//! The subscriber on a Redis Cluster: sharded Pub/Sub for rooms, classic for the
//! control channel, and what a lost node or a slot move makes it catch up on.

use std::sync::{Arc, Weak};

use redis::cluster_async::ClusterConnection;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use super::keys::{self, RoomKeys};
use super::node::Node;
use super::node::Subscription;
use super::room::LocalRoom;
use super::subscriber::{HEALTH_CHECK, Outage};
use super::topology::{RECONNECT_MAX, in_time};
use super::topology::{Target, cluster_client};
use crate::hub::engine::Unavailable;
use crate::sync::lock;

/// The subscriber on a Redis Cluster: a room's channel is sharded (`SSUBSCRIBE`,
/// served by the shard of the room's slot), the control channel classic. The
/// cluster client follows slot moves and failovers and subscribes again by itself;
/// this task fills in what may have been missed meanwhile: a room's gap from its
/// stream when its subscription is confirmed again (or a message skips ids), and
/// this server's presence written back once a lost node is reachable again.
pub(super) async fn cluster_subscriber(
    shared: Weak<Node>,
    mut requests: mpsc::UnboundedReceiver<Subscription>,
) {
    let mut outage = Outage::default();
    loop {
        let Some(current) = shared.upgrade() else {
            return;
        };
        let Target::Cluster(nodes) = &current.target else {
            return;
        };
        let (pushes_to, pushes) = mpsc::unbounded_channel();
        let resumed = async {
            let connect = "cannot connect to the Redis Cluster for Pub/Sub";
            let client = cluster_client(nodes)
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(pushes_to)
                .build()
                .map_err(|err| (connect, err))?;
            let mut connection = in_time(client.get_async_connection())
                .await
                .map_err(|err| (connect, err))?;
            resume_sharded(&current, &mut connection, outage.ongoing())
                .await
                .map_err(|err| ("could not resume after a Redis outage", err))?;
            Ok::<_, (&str, redis::RedisError)>(connection)
        };
        let connection = match resumed.await {
            Ok(connection) => connection,
            Err((what, err)) => {
                drop(current);
                if !outage.retry_later(what, &err, &mut requests).await {
                    return;
                }
                continue;
            }
        };
        if outage.ongoing() {
            tracing::info!("Redis is back: resubscribed and caught up");
            current.settings.metrics.redis_subscriber_reconnects.inc();
        }
        drop(current);
        let mut session = Session {
            shared: shared.clone(),
            connection,
            outage: Outage::default(),
            catch_up: None,
            catching_up: None,
        };
        if session.serve(&mut requests, pushes).await == Served::Stop {
            return;
        }
        outage = session.outage;
    }
}

/// Whether the task goes on (with a new connection) or ends (the hub is gone).
#[derive(Debug, PartialEq, Eq)]
enum Served {
    Reconnect,
    Stop,
}

/// One cluster connection's life: requests, health checks, pushes, and the
/// catch-ups a lost node makes due.
struct Session {
    shared: Weak<Node>,
    connection: ClusterConnection,
    outage: Outage,
    /// When to catch up after a node was lost: the client reconnects and
    /// resubscribes by itself, this server writes its presence back and fills gaps.
    catch_up: Option<Instant>,
    /// A catch-up runs beside the live messages, not instead of them: with
    /// thousands of rooms it takes thousands of round trips, and run in the loop it
    /// held back every room's messages for tens of seconds (100,000 members on a busy
    /// machine, where a slow PING was enough to start one). Aborted if this
    /// connection is given up.
    catching_up: Option<AbortOnDropHandle<redis::RedisResult<()>>>,
}

impl Session {
    /// Serves until the pushes end (a new connection is due) or the hub is gone.
    async fn serve(
        &mut self,
        requests: &mut mpsc::UnboundedReceiver<Subscription>,
        mut pushes: mpsc::UnboundedReceiver<redis::PushInfo>,
    ) -> Served {
        let mut health = tokio::time::interval_at(Instant::now() + HEALTH_CHECK, HEALTH_CHECK);
        loop {
            let catch_up_at = self
                .catch_up
                .unwrap_or_else(|| Instant::now() + RECONNECT_MAX);
            let catch_up_due = self.catch_up.is_some() && self.catching_up.is_none();
            tokio::select! {
                request = requests.recv() => {
                    let (Some(request), Some(current)) = (request, self.shared.upgrade()) else {
                        return Served::Stop;
                    };
                    self.request(&current, request).await;
                }
                _ = health.tick() => self.check_health().await,
                () = tokio::time::sleep_until(catch_up_at), if catch_up_due => {
                    let Some(current) = self.shared.upgrade() else { return Served::Stop };
                    self.start_catch_up(current);
                }
                caught_up = async { self.catching_up.as_mut().expect("guarded").await },
                    if self.catching_up.is_some() => self.caught_up(caught_up),
                push = pushes.recv() => {
                    let Some(push) = push else { return Served::Reconnect };
                    let Some(current) = self.shared.upgrade() else { return Served::Stop };
                    self.push(current, push).await;
                }
            }
        }
    }

    /// A failure that may have lost messages or presence: a catch-up is due.
    fn lost(&mut self, what: &str, err: &redis::RedisError) {
        self.outage.failed(what, err);
        self.catch_up
            .get_or_insert(Instant::now() + self.outage.delay());
    }

    async fn request(&mut self, current: &Node, request: Subscription) {
        match request {
            Subscription::Subscribe(room, done) => {
                let channel = RoomKeys::new(&room).channel;
                match in_time(self.connection.ssubscribe(&channel)).await {
                    Ok(()) => {
                        let _ = done.send(Ok(()));
                    }
                    Err(err) => {
                        let _ = done.send(Err(Unavailable::NotSubscribed));
                        self.lost("cannot subscribe on the Redis Cluster", &err);
                    }
                }
            }
            Subscription::Unsubscribe(room) => {
                if !lock(&current.rooms).contains_key(&room) {
                    let channel = RoomKeys::new(&room).channel;
                    if let Err(err) = in_time(self.connection.sunsubscribe(&channel)).await {
                        tracing::debug!(error = %err, "cannot unsubscribe on the Redis Cluster");
                    }
                }
            }
        }
    }

    async fn check_health(&mut self) {
        let ping = redis::cmd("PING");
        if let Err(err) = in_time(ping.query_async::<redis::Value>(&mut self.connection)).await {
            self.lost("the Redis Cluster did not answer", &err);
        }
    }

    fn start_catch_up(&mut self, current: Arc<Node>) {
        let mut connection = self.connection.clone();
        self.catch_up = None;
        self.catching_up = Some(AbortOnDropHandle::new(tokio::spawn(async move {
            resume_sharded(&current, &mut connection, true).await
        })));
    }

    fn caught_up(&mut self, joined: Result<redis::RedisResult<()>, tokio::task::JoinError>) {
        self.catching_up = None;
        let caught_up = joined.unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "the catch-up task failed",
            )))
        });
        match caught_up {
            Ok(()) => {
                if self.outage.ongoing() {
                    tracing::info!("Redis is back: caught up");
                    if let Some(current) = self.shared.upgrade() {
                        current.settings.metrics.redis_subscriber_reconnects.inc();
                    }
                }
                self.outage = Outage::default();
            }
            Err(err) => self.lost("could not catch up after a Redis outage", &err),
        }
    }

    async fn push(&mut self, current: Arc<Node>, push: redis::PushInfo) {
        match push.kind {
            redis::PushKind::Message | redis::PushKind::SMessage => {
                if let [
                    redis::Value::BulkString(channel),
                    redis::Value::BulkString(payload),
                    ..,
                ] = push.data.as_slice()
                {
                    current
                        .receive(&String::from_utf8_lossy(channel), payload)
                        .await;
                }
            }
            // Subscribed again after a lost node or a slot move: what was published
            // meanwhile is in the room's stream. Read beside the live messages: a
            // resubscription of every room confirms each, and thousands of reads here
            // would hold all of them back.
            redis::PushKind::SSubscribe => {
                if let Some(redis::Value::BulkString(channel)) = push.data.first()
                    && let Some(room) = keys::room_of_channel(&String::from_utf8_lossy(channel))
                        .and_then(|name| lock(&current.rooms).get(name).cloned())
                    && room.was_live()
                {
                    tokio::spawn(async move {
                        if let Err(err) = in_time(current.fill_gap(&room)).await {
                            tracing::debug!(error = %err, "cannot fill a gap from the stream");
                        }
                    });
                }
            }
            redis::PushKind::Disconnection => {
                let err = redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "a Redis Cluster node closed its connection",
                ));
                self.lost("lost a Redis Cluster connection", &err);
            }
            _ => {}
        }
    }
}

/// On a fresh cluster connection, or after a lost node: subscribe to the control
/// channel and every room with members here (again: a no-op where still
/// subscribed); after an outage also catch up on messages and write presence back.
async fn resume_sharded(
    shared: &Node,
    connection: &mut ClusterConnection,
    after_outage: bool,
) -> redis::RedisResult<()> {
    in_time(connection.subscribe(keys::control())).await?;
    let rooms: Vec<Arc<LocalRoom>> = lock(&shared.rooms).values().cloned().collect();
    for room in &rooms {
        in_time(connection.ssubscribe(&room.keys.channel)).await?;
    }
    if after_outage {
        shared.catch_up(&rooms).await?;
    }
    Ok(())
}
