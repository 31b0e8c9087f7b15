//! A room's members on this server and their queues: the last hop of every broadcast.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TrySendError};

use super::FrameBytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct MemberId(pub(super) u64);

/// A message's id, or `None` for frames that are not stored (system events).
pub(super) type FrameId = Option<u64>;

#[derive(Default)]
pub(super) struct Seats {
    members: HashMap<MemberId, Seat>,
}

struct Seat {
    user_id: Arc<str>,
    queue: mpsc::Sender<FrameBytes>,
    /// Frames that arrived while the member's backlog was being read, when that
    /// happens outside the room's lock (the Redis engine). `None` once live.
    held: Option<Vec<(FrameId, FrameBytes)>>,
}

impl Seats {
    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Seats a member; a `held` seat buffers frames until [`Seats::release`].
    pub(super) fn insert(
        &mut self,
        member_id: MemberId,
        user_id: Arc<str>,
        queue: mpsc::Sender<FrameBytes>,
        held: bool,
    ) {
        let held = held.then(Vec::new);
        let seat = Seat {
            user_id,
            queue,
            held,
        };
        self.members.insert(member_id, seat);
    }

    /// Takes a member out; returns its user id. Removing an absent member is a no-op.
    pub(super) fn remove(&mut self, member_id: MemberId) -> Option<Arc<str>> {
        self.members.remove(&member_id).map(|seat| seat.user_id)
    }

    pub(super) fn user_of(&self, member_id: MemberId) -> Option<&Arc<str>> {
        self.members.get(&member_id).map(|seat| &seat.user_id)
    }

    /// Pushes `frame` into every member's queue. Members whose queue is full (too
    /// slow) or closed (gone) are removed; their user ids are returned so the caller
    /// can settle presence.
    pub(super) fn deliver(&mut self, id: FrameId, frame: &FrameBytes) -> Vec<Arc<str>> {
        let mut lagging = Vec::new();
        for (member_id, seat) in &mut self.members {
            let capacity = seat.queue.max_capacity();
            let outcome = match &mut seat.held {
                Some(held) if held.len() < capacity => {
                    held.push((id, frame.clone()));
                    Ok(())
                }
                Some(_) => Err(TrySendError::Full(())),
                None => seat.queue.try_send(frame.clone()).map_err(|err| match err {
                    TrySendError::Full(_) => TrySendError::Full(()),
                    TrySendError::Closed(_) => TrySendError::Closed(()),
                }),
            };
            match outcome {
                Ok(()) => {}
                Err(TrySendError::Full(())) => {
                    tracing::info!(
                        room_member = member_id.0,
                        "evicting a member too slow to keep up"
                    );
                    lagging.push(*member_id);
                }
                // The connection is gone; its membership is being dropped right now.
                Err(TrySendError::Closed(())) => lagging.push(*member_id),
            }
        }
        lagging
            .into_iter()
            .filter_map(|member_id| self.remove(member_id))
            .collect()
    }

    /// Makes a held seat live: its buffered frames are queued, except messages with
    /// ids up to `covered_through`, which its backlog already had. Returns the user id
    /// if the member had to be evicted (its queue overflowed) or was already gone.
    pub(super) fn release(
        &mut self,
        member_id: MemberId,
        covered_through: Option<u64>,
    ) -> Result<(), Option<Arc<str>>> {
        let Some(seat) = self.members.get_mut(&member_id) else {
            return Err(None);
        };
        let held = seat.held.take().unwrap_or_default();
        let fresh = held
            .into_iter()
            .filter(|(id, _)| match (id, covered_through) {
                (Some(id), Some(covered)) => *id > covered,
                _ => true,
            });
        for (_, frame) in fresh {
            if seat.queue.try_send(frame).is_err() {
                return Err(self.remove(member_id));
            }
        }
        Ok(())
    }
}
