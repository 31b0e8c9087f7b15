//! The Redis engine's background tasks: the Pub/Sub subscriber and the liveness loop.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{MissedTickBehavior, sleep};

use super::{COMMAND_TIMEOUT, RECONNECT_MAX, RECONNECT_MIN, Room, RoomKeys, Shared, unavailable};
use crate::hub::{Unavailable, lock};

pub(super) enum Subscription {
    Subscribe(Arc<str>, oneshot::Sender<Result<(), Unavailable>>),
    /// Unsubscribes unless the room has members again by then.
    Unsubscribe(Arc<str>),
}

/// Owns the Pub/Sub connection: subscribes and unsubscribes on request, delivers
/// messages, and after a lost connection reconnects, resubscribes and fills gaps.
pub(super) async fn subscriber(
    shared: Weak<Shared>,
    mut requests: mpsc::UnboundedReceiver<Subscription>,
) {
    let mut delay = RECONNECT_MIN;
    let mut outage = false;
    loop {
        let Some(current) = shared.upgrade() else {
            return;
        };
        let connected =
            tokio::time::timeout(COMMAND_TIMEOUT, current.client.get_async_pubsub()).await;
        let pubsub = match connected {
            Ok(Ok(pubsub)) => pubsub,
            failed => {
                let error = match failed {
                    Ok(Err(err)) => err.to_string(),
                    _ => "timed out".to_owned(),
                };
                if !outage {
                    tracing::warn!(error, "lost the Redis Pub/Sub connection; reconnecting");
                    outage = true;
                }
                drop(current);
                if !refuse_while_waiting(&mut requests, delay).await {
                    return;
                }
                delay = (delay * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        let (mut sink, mut messages) = pubsub.split();
        if let Err(err) = resume(&current, &mut sink, outage).await {
            tracing::warn!(error = %err, "could not resume after a Redis outage; retrying");
            drop(current);
            if !refuse_while_waiting(&mut requests, delay).await {
                return;
            }
            continue;
        }
        if outage {
            tracing::info!("Redis is back: resubscribed and caught up");
        }
        delay = RECONNECT_MIN;
        drop(current);

        loop {
            tokio::select! {
                request = requests.recv() => {
                    let Some(request) = request else { return };
                    let Some(current) = shared.upgrade() else { return };
                    match request {
                        Subscription::Subscribe(room, done) => {
                            let channel = RoomKeys::new(&room).channel;
                            let result = sink.subscribe(&channel).await.map_err(unavailable);
                            let _ = done.send(result);
                        }
                        Subscription::Unsubscribe(room) => {
                            if !lock(&current.rooms).contains_key(&room) {
                                let channel = RoomKeys::new(&room).channel;
                                let _ = sink.unsubscribe(&channel).await;
                            }
                        }
                    }
                }
                message = messages.next() => {
                    let Some(message) = message else { break };
                    let Some(current) = shared.upgrade() else { return };
                    current.deliver(message.get_channel_name(), message.get_payload_bytes());
                }
            }
        }
        outage = true;
        tracing::warn!("lost the Redis Pub/Sub connection; reconnecting");
        if !refuse_while_waiting(&mut requests, RECONNECT_MIN).await {
            return;
        }
    }
}

/// On a fresh Pub/Sub connection: subscribe to every room with members here; after
/// an outage also catch up on messages and write presence back.
async fn resume(
    shared: &Shared,
    sink: &mut PubSubSink,
    after_outage: bool,
) -> redis::RedisResult<()> {
    let rooms: Vec<Arc<Room>> = lock(&shared.rooms).values().cloned().collect();
    for room in &rooms {
        sink.subscribe(&room.keys.channel).await?;
    }
    if after_outage {
        shared.heartbeat().await?;
        for room in &rooms {
            shared.restore_presence(room).await?;
            shared.fill_gap(room).await?;
        }
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
                    let _ = done.send(Err(Unavailable("Redis is unreachable".into())));
                }
                Some(Subscription::Unsubscribe(_)) => {}
            },
        }
    }
}

/// Refreshes this server's liveness key and reaps servers that stopped refreshing theirs.
pub(super) async fn liveness(shared: Weak<Shared>) {
    let Some(period) = shared.upgrade().map(|shared| shared.node_ttl / 3) else {
        return;
    };
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(current) = shared.upgrade() else {
            return;
        };
        if current.stop.is_cancelled() {
            return;
        }
        let outcome = async {
            current.heartbeat().await?;
            current.reap_dead_nodes().await
        }
        .await;
        if let Err(err) = outcome {
            tracing::debug!(error = %err, "liveness check failed");
        }
    }
}
