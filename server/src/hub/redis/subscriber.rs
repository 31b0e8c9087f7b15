//! The Pub/Sub subscriber: one task per server owns the Pub/Sub connection,
//! subscribes to a room's channel while this server has members there, and
//! delivers what arrives. After a lost connection it reconnects, resubscribes, fills
//! each room's gap from its stream and writes this server's presence back.
//!
//! On a Redis Cluster the subscriber is `cluster_subscriber.rs`'s; what either
//! receives is handled in `catch_up.rs` (messages, gaps, presence written back)
//! and `delivery.rs` (into this server's member queues).

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};

use super::keys::{self, RoomKeys};
use super::node::{Node, Subscription};
use super::room::LocalRoom;
use super::topology::Target;
use super::topology::{RECONNECT_MAX, RECONNECT_MIN, in_time};
use crate::hub::engine::Unavailable;
use crate::sync::lock;

/// How often the Pub/Sub connection is checked with a `PING`: a connection that
/// went silently dead (a hung Redis, a lost route) is replaced, not trusted.
pub(super) const HEALTH_CHECK: Duration = Duration::from_secs(5);

/// Owns the Pub/Sub connection: subscribes and unsubscribes on request, delivers
/// messages, and after a lost connection reconnects, resubscribes and fills gaps.
///
/// Every call to Redis has a deadline ([`COMMAND_TIMEOUT`]); every failure (to
/// connect, to resume, to subscribe, a failed health check) waits longer before the
/// next attempt, doubling up to [`RECONNECT_MAX`], and is logged as a warning once per
/// outage (then at debug level), so a Redis that accepts connections but refuses
/// writes costs a few attempts a minute, not ten a second.
pub(super) async fn subscriber(
    shared: Weak<Node>,
    mut requests: mpsc::UnboundedReceiver<Subscription>,
) {
    let mut outage = Outage::default();
    loop {
        let Some(current) = shared.upgrade() else {
            return;
        };
        let resumed = async {
            let pubsub = in_time(pubsub(&current.target))
                .await
                .map_err(|err| ("cannot connect to Redis for Pub/Sub", err))?;
            let (mut sink, messages) = pubsub.split();
            resume(&current, &mut sink, outage.ongoing())
                .await
                .map_err(|err| ("could not resume after a Redis outage", err))?;
            Ok::<_, (&str, redis::RedisError)>((sink, messages))
        };
        let (mut sink, mut messages) = match resumed.await {
            Ok(connected) => connected,
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
                            match in_time(sink.subscribe(&channel)).await {
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
                                if let Err(err) = in_time(sink.unsubscribe(&channel)).await {
                                    break err;
                                }
                            }
                        }
                    }
                }
                _ = health.tick() => {
                    if let Err(err) = in_time(sink.ping::<redis::Value>()).await {
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
        if !outage
            .retry_later("lost the Redis Pub/Sub connection", &lost, &mut requests)
            .await
        {
            return;
        }
    }
}

/// A Pub/Sub connection to a single Redis.
pub(super) async fn pubsub(target: &Target) -> redis::RedisResult<redis::aio::PubSub> {
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
pub(super) struct Outage {
    failures: u32,
}

impl Outage {
    /// Counts `err` (what failed) and waits before the next attempt, refusing
    /// subscriptions meanwhile; `false` once the hub is gone.
    pub(super) async fn retry_later(
        &mut self,
        what: &str,
        err: &redis::RedisError,
        requests: &mut mpsc::UnboundedReceiver<Subscription>,
    ) -> bool {
        self.failed(what, err);
        refuse_while_waiting(requests, self.delay()).await
    }

    pub(super) fn ongoing(&self) -> bool {
        self.failures > 0
    }

    pub(super) fn failed(&mut self, what: &str, err: &redis::RedisError) {
        if self.failures == 0 {
            tracing::warn!(error = %err, "{what}; retrying with backoff");
        } else {
            tracing::debug!(error = %err, attempt = self.failures, "{what}; retrying");
        }
        self.failures = self.failures.saturating_add(1);
    }

    /// `RECONNECT_MIN` after the first failure, doubling to `RECONNECT_MAX`.
    pub(super) fn delay(&self) -> Duration {
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
pub(super) async fn resume(
    shared: &Node,
    sink: &mut PubSubSink,
    after_outage: bool,
) -> redis::RedisResult<()> {
    in_time(sink.subscribe(keys::control())).await?;
    let rooms: Vec<Arc<LocalRoom>> = lock(&shared.rooms).values().cloned().collect();
    for room in &rooms {
        in_time(sink.subscribe(&room.keys.channel)).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
