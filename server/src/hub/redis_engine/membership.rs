//! A member's seat in a room on this server: publishing, and leaving (the `Drop`).

use std::sync::Arc;

use app::protocol::{REF_WINDOW_SECS, ServerFrame};

use super::payload::message_template;
use super::{Room, Shared};
use crate::hub::seats::MemberId;
use crate::hub::{PublishError, Published, lock};

/// A seat in a room; leaving the room is dropping it.
pub struct RedisMembership {
    pub(super) shared: Arc<Shared>,
    pub(super) room: Arc<Room>,
    pub(super) member_id: MemberId,
    pub(super) user_id: Arc<str>,
    pub(super) name: Arc<str>,
    /// Whether Redis presence counts this connection.
    pub(super) present: bool,
}

impl RedisMembership {
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
        let (prefix, suffix) = message_template(&self.user_id, &self.name, content);
        let shared = &self.shared;
        let keys = &self.room.keys;
        let mut invocation = shared.scripts.publish.prepare_invoke();
        invocation
            .key(&keys.seq)
            .key(&keys.first)
            .key(&keys.log)
            .key(&keys.channel)
            .arg(shared.settings.history_size)
            .arg(prefix)
            .arg(suffix)
            .arg(shared.retention.as_millis().max(1) as u64);
        if let Some(reference) = reference {
            invocation
                .key(keys.reference(&self.user_id, reference))
                .arg(REF_WINDOW_SECS * 1000);
        }
        let (id, repeated): (u64, u8) = invocation
            .invoke_async(&mut shared.redis.clone())
            .await
            .map_err(|err| {
                tracing::warn!(room = %self.room.name, error = %err, "cannot publish to Redis");
                PublishError::Unavailable
            })?;
        Ok(Published {
            id,
            repeated: repeated == 1,
        })
    }
}

impl Drop for RedisMembership {
    fn drop(&mut self) {
        let shared = &self.shared;
        // The room's lock only, then (if it emptied) the map's: never both at once.
        let local_room_empty = {
            let mut state = lock(&self.room.state);
            state.seats.remove(self.member_id);
            if let Some((_, count)) = state.users.get_mut(&self.user_id) {
                *count -= 1;
                if *count == 0 {
                    state.users.remove(&self.user_id);
                }
            }
            let empty = state.seats.is_empty() && !state.removed;
            if empty {
                state.removed = true;
            }
            empty
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
        tokio::spawn(async move {
            let outcome: redis::RedisResult<i64> = shared
                .presence_script(&shared.scripts.leave, &room)
                .arg(&*user_id)
                .arg(left)
                .arg(if local_room_empty { 1 } else { 0 })
                .arg(shared.grace_ms())
                .invoke_async(&mut shared.redis.clone())
                .await;
            if let Err(err) = outcome {
                // Written back from the local seats when Redis returns.
                tracing::warn!(room = %room.name, error = %err, "cannot record a leave in Redis");
            }
        });
    }
}
