//! A room's members on this server and their queues: the last hop of every broadcast.

use std::collections::HashMap;
use std::sync::Arc;

use super::FrameBytes;
use super::queue::{QueueSender, Refused};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct MemberId(pub(super) u64);

/// A message's id, or `None` for frames that are not stored (system events).
pub(super) type FrameId = Option<u64>;

/// What one broadcast did on this server.
pub(super) struct Delivery {
    /// Users whose seat was removed (evicted, or already gone).
    pub(super) gone: Vec<Arc<str>>,
    pub(super) queued: usize,
    pub(super) evicted: usize,
}

#[derive(Default)]
pub(super) struct Seats {
    members: HashMap<MemberId, Seat>,
}

struct Seat {
    user_id: Arc<str>,
    queue: QueueSender,
    /// Frames that arrived while the member's backlog was being read, when that
    /// happens outside the room's lock (the Redis engine), with their bytes. `None`
    /// once live.
    held: Option<(Vec<(FrameId, FrameBytes)>, usize)>,
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
        queue: QueueSender,
        held: bool,
    ) {
        let held = held.then(|| (Vec::new(), 0));
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
    #[cfg(test)]
    pub(super) fn deliver(&mut self, id: FrameId, frame: &FrameBytes) -> Vec<Arc<str>> {
        self.fan_out(id, frame).gone
    }

    /// [`Self::deliver`], also saying how many queues took the frame and how many
    /// members were evicted for a full queue (for the metrics).
    pub(super) fn fan_out(&mut self, id: FrameId, frame: &FrameBytes) -> Delivery {
        let mut queued = 0;
        let mut evicted = 0;
        let mut lagging = Vec::new();
        for (member_id, seat) in &mut self.members {
            let outcome = match &mut seat.held {
                // Held frames count against the same bound as queued ones.
                Some((held, bytes))
                    if held.is_empty() || *bytes + frame.len() <= seat.queue.max_bytes() =>
                {
                    *bytes += frame.len();
                    held.push((id, frame.clone()));
                    Ok(())
                }
                Some(_) => Err(Refused::Full),
                None => seat.queue.try_send(frame.clone()),
            };
            match outcome {
                Ok(()) => queued += 1,
                Err(Refused::Full) => {
                    evicted += 1;
                    tracing::info!(
                        room_member = member_id.0,
                        "evicting a member too slow to keep up"
                    );
                    lagging.push(*member_id);
                }
                // The connection is gone; its membership is being dropped right now.
                Err(Refused::Closed) => lagging.push(*member_id),
            }
        }
        let gone = lagging
            .into_iter()
            .filter_map(|member_id| self.remove(member_id))
            .collect();
        Delivery {
            gone,
            queued,
            evicted,
        }
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
        let (held, _) = seat.held.take().unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::queue::{MemberQueue, member_queue};

    /// A seat whose queue holds `max_bytes` (the test frames are a byte or two each).
    fn seats_with(max_bytes: usize, held: bool) -> (Seats, MemberQueue) {
        let mut seats = Seats::default();
        let (queue, receiver) = member_queue(max_bytes);
        seats.insert(MemberId(1), Arc::from("alice"), queue, held);
        (seats, receiver)
    }

    fn frame(text: &'static str) -> FrameBytes {
        FrameBytes::from_static(text)
    }

    fn drain(receiver: &mut MemberQueue) -> Vec<String> {
        std::iter::from_fn(|| receiver.try_recv().ok())
            .map(|frame| frame.as_str().to_owned())
            .collect()
    }

    #[test]
    fn deliver_queues_until_full_then_evicts() {
        let (mut seats, mut receiver) = seats_with(2, false);
        assert!(seats.deliver(Some(1), &frame("a")).is_empty());
        assert!(seats.deliver(None, &frame("b")).is_empty());
        let evicted = seats.deliver(Some(2), &frame("c"));
        assert_eq!(evicted, [Arc::from("alice")]);
        assert!(seats.is_empty());
        assert_eq!(drain(&mut receiver), ["a", "b"]);
    }

    #[test]
    fn deliver_removes_members_whose_queue_is_gone() {
        let (mut seats, receiver) = seats_with(2, false);
        drop(receiver);
        assert_eq!(seats.deliver(Some(1), &frame("a")), [Arc::from("alice")]);
        assert!(seats.is_empty());
    }

    #[test]
    fn release_keeps_only_what_the_backlog_did_not_cover() {
        type Held = &'static [(FrameId, &'static str)];
        // (held frames, covered through, what reaches the queue)
        let cases: [(Held, Option<u64>, &[&str]); 5] = [
            (&[], Some(5), &[]),
            (
                &[(Some(4), "m4"), (Some(5), "m5"), (Some(6), "m6")],
                Some(5),
                &["m6"],
            ),
            (
                &[(Some(4), "m4"), (None, "join"), (Some(6), "m6")],
                Some(5),
                &["join", "m6"],
            ),
            (&[(Some(4), "m4"), (Some(5), "m5")], None, &["m4", "m5"]),
            (&[(None, "leave")], Some(9), &["leave"]),
        ];
        for (held, covered_through, expected) in cases {
            let (mut seats, mut receiver) = seats_with(64, true);
            for (id, text) in held {
                assert!(seats.deliver(*id, &frame(text)).is_empty());
            }
            assert_eq!(
                drain(&mut receiver),
                Vec::<String>::new(),
                "held, not queued"
            );
            assert_eq!(seats.release(MemberId(1), covered_through), Ok(()));
            assert_eq!(
                drain(&mut receiver),
                expected,
                "{held:?} through {covered_through:?}"
            );
            // Live from now on.
            assert!(seats.deliver(Some(99), &frame("live")).is_empty());
            assert_eq!(drain(&mut receiver), ["live"]);
        }
    }

    #[test]
    fn a_held_seat_that_overflows_is_evicted() {
        let (mut seats, _receiver) = seats_with(2, true);
        assert!(seats.deliver(Some(1), &frame("a")).is_empty());
        assert!(seats.deliver(Some(2), &frame("b")).is_empty());
        assert_eq!(seats.deliver(Some(3), &frame("c")), [Arc::from("alice")]);
        assert_eq!(seats.release(MemberId(1), None), Err(None), "already gone");
    }

    #[test]
    fn release_evicts_when_the_queue_cannot_take_what_was_held() {
        let (mut seats, receiver) = seats_with(2, true);
        seats.deliver(Some(1), &frame("a"));
        seats.deliver(Some(2), &frame("b"));
        drop(receiver);
        assert_eq!(
            seats.release(MemberId(1), None),
            Err(Some(Arc::from("alice")))
        );
        assert!(seats.is_empty());
    }
}
