//! What arrives on a room's channel, and what is caught up after an outage: a
//! room's gap filled from its stream, this server's presence written back.

use std::sync::Arc;
use std::time::SystemTime;

use redis::AsyncCommands;
use redis::streams::StreamRangeReply;

use super::keys::{self};
use super::node::Node;
use super::payload::{parse_payload, stamped_at, stored_frames};
use super::presence::Present;
use super::room::LocalRoom;
use super::topology::in_time;
use crate::sync::lock;

impl Node {
    /// Queues a frame from the room's channel for this server's members, or closes
    /// a removed user's sockets here (the control channel). A message whose id
    /// skips some (lost while a shard failed over, say) brings those from the
    /// room's stream first.
    pub(super) async fn receive(&self, channel: &str, payload: &[u8]) {
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
            && let Err(err) = in_time(self.fill_gap(&room)).await
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
    pub(super) async fn catch_up(&self, rooms: &[Arc<LocalRoom>]) -> redis::RedisResult<()> {
        in_time(self.heartbeat()).await?;
        for room in rooms {
            in_time(self.restore_presence(room)).await?;
            in_time(self.fill_gap(room)).await?;
        }
        Ok(())
    }

    /// After an outage: messages stored while this server was cut off, in order.
    pub(super) async fn fill_gap(&self, room: &Arc<LocalRoom>) -> redis::RedisResult<()> {
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
    pub(super) async fn restore_presence(&self, room: &LocalRoom) -> redis::RedisResult<()> {
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
}
