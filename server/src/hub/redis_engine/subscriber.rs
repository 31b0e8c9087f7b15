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
use tokio::time::sleep;

use app::protocol::ServerFrame;

use super::keys::{self, RoomKeys};
use super::payload::{parse_payload, stored_frames};
use super::{COMMAND_TIMEOUT, RECONNECT_MAX, RECONNECT_MIN, Room, Shared};
use crate::hub::seats::FrameId;
use crate::hub::{FrameBytes, Unavailable, lock};

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
                            let result = sink.subscribe(&channel).await.map_err(Unavailable::from);
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
                    let _ = done.send(Err(Unavailable::NotSubscribed));
                }
                Some(Subscription::Unsubscribe(_)) => {}
            },
        }
    }
}

impl Shared {
    /// Queues a frame from the room's channel for this server's members.
    fn deliver(&self, channel: &str, payload: &[u8]) {
        let Some(room_name) = keys::room_of_channel(channel) else {
            return;
        };
        let Some((id, frame)) = parse_payload(payload) else {
            tracing::warn!(channel, "ignoring a malformed Pub/Sub message");
            return;
        };
        let Some(room) = lock(&self.rooms).get(room_name).cloned() else {
            return;
        };
        room.deliver(id, &frame);
    }

    /// After an outage: messages stored while this server was cut off, in order.
    async fn fill_gap(&self, room: &Room) -> redis::RedisResult<()> {
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
        for (id, frame) in stored_frames(entries) {
            room.deliver(Some(id), &frame);
        }
        Ok(())
    }

    /// After an outage: this server's connections, written back into presence
    /// (Redis may have restarted empty, or reaped us while we were cut off).
    async fn restore_presence(&self, room: &Room) -> redis::RedisResult<()> {
        let users: Vec<(Arc<str>, Arc<str>, usize)> = lock(&room.state)
            .users
            .iter()
            .map(|(id, (name, count))| (id.clone(), name.clone(), *count))
            .collect();
        let mut invocation = self.presence_script(&self.scripts.restore, room);
        for (id, name, count) in users {
            invocation
                .arg(&*id)
                .arg(count)
                .arg(ServerFrame::joined(&id, &name).to_json())
                .arg(ServerFrame::left(&id, &name).to_json());
        }
        invocation.invoke_async(&mut self.redis.clone()).await
    }
}

impl Room {
    fn deliver(&self, id: FrameId, frame: &FrameBytes) {
        let mut state = lock(&self.state);
        if let Some(id) = id {
            if id <= state.last_delivered {
                return;
            }
            state.last_delivered = id;
        }
        // Evicted members' connections close with 4008 and leave presence as they drop.
        state.seats.deliver(id, frame);
    }
}
