//! A member's seat in a room on this server: publishing, and leaving (the `Drop`).

use std::sync::Arc;

use chorus_protocol::ServerFrame;

use super::node::Node;
use super::room::LocalRoom;
use super::scripts::Scripts;
use crate::hub::engine::{PublishError, Published};
use crate::hub::fanout::seats::MemberId;
use crate::sync::lock;

/// A seat in a room; leaving the room is dropping it.
pub struct RedisMembership {
    pub(super) shared: Arc<Node>,
    pub(super) room: Arc<LocalRoom>,
    pub(super) member_id: MemberId,
    pub(super) user_id: Arc<str>,
    pub(super) name: Arc<str>,
    /// Whether Redis presence counts this connection (or may: an unknown outcome).
    pub(super) present: bool,
    /// Whether it is counted in the room's `users` here (it entered presence).
    pub(super) counted: bool,
    /// Leave without the presence grace ([`Self::leave_at_once`]).
    pub(super) at_once: bool,
}

impl RedisMembership {
    /// The room's name.
    pub fn room(&self) -> &str {
        &self.room.name
    }

    /// Stores `content` as the room's next message; every server's members get it
    /// through the room's channel, this one's included. With a `reference` already
    /// used by this user in this room within the ref window, only the first
    /// message's id comes back (checked and recorded in the same script).
    pub async fn publish_once(
        &self,
        content: String,
        reference: Option<&str>,
    ) -> Result<Published, PublishError> {
        if lock(&self.room.state)
            .seats
            .user_of(self.member_id)
            .is_none()
        {
            return Err(PublishError::NotMember);
        }
        let reference =
            reference.map(|reference| self.room.keys.reference(&self.user_id, reference));
        self.shared
            .publish(
                &self.room.keys,
                &self.user_id,
                &self.name,
                content,
                reference,
            )
            .await
            .map_err(|err| {
                tracing::warn!(room = %self.room.name, error = %err, "cannot publish to Redis");
                PublishError::Unavailable
            })
    }
}

impl RedisMembership {
    /// Tells every server's members of the room that this user is typing: on the
    /// room's channel only, never in its stream. Best effort: with Redis away, the
    /// hint is dropped.
    pub async fn typing(&self) {
        if lock(&self.room.state)
            .seats
            .user_of(self.member_id)
            .is_none()
        {
            return;
        }
        let frame = ServerFrame::Typing {
            user_id: self.user_id.to_string(),
            user: self.name.to_string(),
        };
        // `0`: a frame without a message id (see `payload::parse_payload`).
        let payload = format!("0 {}", frame.to_json());
        let command = Scripts::publish_command(self.shared.redis.is_cluster());
        let sent: redis::RedisResult<i64> = redis::cmd(command)
            .arg(&self.room.keys.channel)
            .arg(payload)
            .query_async(&mut self.shared.redis.clone())
            .await;
        if let Err(err) = sent {
            tracing::debug!(room = %self.room.name, error = %err, "cannot pass on typing");
        }
    }

    /// When this connection goes, its user's leave (if it was the last anywhere) is
    /// announced at once, without the presence grace: the user was removed.
    pub fn leave_at_once(&mut self) {
        self.at_once = true;
    }
}

impl Drop for RedisMembership {
    fn drop(&mut self) {
        let shared = &self.shared;
        // The room's lock only, then (if it emptied) the map's: never both at once.
        let (last_here, local_room_empty) = {
            let mut state = lock(&self.room.state);
            state.seats.remove(self.member_id);
            if self.counted
                && let Some((_, count)) = state.users.get_mut(&self.user_id)
            {
                *count -= 1;
                if *count == 0 {
                    state.users.remove(&self.user_id);
                }
            }
            // Only connections that entered count: one still joining may never.
            let last_here = !state.users.contains_key(&self.user_id);
            let empty = state.seats.is_empty() && !state.removed;
            if empty {
                state.removed = true;
            }
            (last_here, empty)
        };
        if local_room_empty {
            shared.unlist(&self.room);
        }
        if !self.present {
            return;
        }
        let shared = shared.clone();
        let room = self.room.clone();
        let user_id = self.user_id.clone();
        let left = ServerFrame::left(&self.user_id, &self.name).to_json();
        let at_once = self.at_once;
        tokio::spawn(async move {
            let outcome = shared
                .depart(&room, &user_id, left, last_here, local_room_empty, at_once)
                .await;
            if let Err(err) = outcome {
                // Written back from the local seats when Redis returns.
                tracing::warn!(room = %room.name, error = %err, "cannot record a leave in Redis");
            }
        });
    }
}
