//! A room's members on this server and their queues: the last hop of every broadcast.
//!
//! A frame goes into every member's queue at once, unless the room is busy
//! (`pacing`): then frames are gathered and go out together when the batch is due,
//! framed once into one buffer that every member's queue shares (`framed`). The
//! engine runs the timer: [`Seats::send`] says when the batch is due, and
//! [`Seats::send_gathered`] sends it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::FrameBytes;
use super::framed;
use super::pacing::Pacing;
use super::queue::{Outbound, QueueSender, Refused};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct MemberId(pub(crate) u64);

/// A message's id, or `None` for frames that are not stored (system events).
pub(crate) type FrameId = Option<u64>;

/// What one broadcast did on this server.
#[derive(Default)]
pub(crate) struct Delivery {
    /// Users whose seat was removed (evicted, or already gone).
    pub(crate) gone: Vec<Arc<str>>,
    /// Frames queued, counted once per member.
    pub(crate) queued: usize,
    pub(crate) evicted: usize,
}

/// What [`Seats::send`] did: what went out now, and when the batch the frame joined
/// is due (only when that batch was begun by this frame).
#[must_use]
pub(crate) struct Sent {
    pub(crate) delivery: Delivery,
    pub(crate) due: Option<Instant>,
}

pub(crate) struct Seats {
    members: HashMap<MemberId, Seat>,
    pacing: Pacing,
    /// A busy room's frames waiting for their batch, and the bytes they take framed.
    gathered: Vec<(FrameId, FrameBytes)>,
    gathered_bytes: usize,
    /// Gathered bytes that send the batch at once (a quarter of a member's queue):
    /// gathering must never cost an eviction.
    max_gathered: usize,
}

struct Seat {
    user_id: Arc<str>,
    queue: QueueSender,
    /// Frames that arrived while the member's backlog was being read, when that
    /// happens outside the room's lock (the Redis engine), with their bytes. `None`
    /// once live.
    held: Option<(Vec<(FrameId, FrameBytes)>, usize)>,
    /// Gathered frames that were there before this seat: not for it.
    seated_after: usize,
    /// For a seat made live by [`Seats::release`]: messages up to this id its
    /// backlog already had. One can still arrive live: Pub/Sub may bring it after
    /// the stream was read. Forgotten once a later message is delivered.
    covered_through: Option<u64>,
}

impl Seats {
    /// Seats for a room whose busy frames go out at most once per `delay` (zero: each
    /// at once), for members' queues of `queue_bytes`.
    pub(crate) fn new(delay: Duration, queue_bytes: usize) -> Self {
        Seats {
            members: HashMap::new(),
            pacing: Pacing::new(delay, Instant::now()),
            gathered: Vec::new(),
            gathered_bytes: 0,
            max_gathered: queue_bytes / 4,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Seats a member; a `held` seat buffers frames until [`Seats::release`].
    pub(crate) fn insert(
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
            seated_after: self.gathered.len(),
            covered_through: None,
        };
        self.members.insert(member_id, seat);
    }

    /// Takes a member out; returns its user id. Removing an absent member is a no-op.
    pub(crate) fn remove(&mut self, member_id: MemberId) -> Option<Arc<str>> {
        self.members.remove(&member_id).map(|seat| seat.user_id)
    }

    pub(crate) fn user_of(&self, member_id: MemberId) -> Option<&Arc<str>> {
        self.members.get(&member_id).map(|seat| &seat.user_id)
    }

    /// Sends `frame` to every member: at once, or, while the room is busy, in the
    /// next batch. Frames always reach members in the order they were sent.
    pub(crate) fn send(&mut self, id: FrameId, frame: &FrameBytes, now: Instant) -> Sent {
        let due = if self.gathered.is_empty() {
            match self.pacing.hold_until(now) {
                None => {
                    self.pacing.wrote(1, now);
                    return Sent {
                        delivery: self.fan_out(id, frame),
                        due: None,
                    };
                }
                due => due,
            }
        } else {
            None
        };
        self.gathered.push((id, frame.clone()));
        self.gathered_bytes += framed::framed_len(frame.len());
        let delivery = if self.gathered_bytes >= self.max_gathered {
            self.send_gathered(now)
        } else {
            Delivery::default()
        };
        Sent { delivery, due }
    }

    /// Sends the gathered batch, if any: framed once, shared by every live member's
    /// queue. (A batch already sent early leaves nothing for its timer.)
    pub(crate) fn send_gathered(&mut self, now: Instant) -> Delivery {
        let gathered = std::mem::take(&mut self.gathered);
        let capacity = std::mem::take(&mut self.gathered_bytes);
        if gathered.is_empty() {
            return Delivery::default();
        }
        self.pacing.wrote(gathered.len(), now);
        // Room for all of it at once, and no more: the buffer is shared as it is, and
        // a queue counts only its length against the member's bound.
        let mut bytes = Vec::with_capacity(capacity);
        let mut offsets = Vec::with_capacity(gathered.len());
        for (_, frame) in &gathered {
            offsets.push(bytes.len());
            framed::push_text_frame(&mut bytes, frame);
        }
        let framed = tungstenite::Bytes::from(bytes);
        let mut delivery = Delivery::default();
        let mut lagging = Vec::new();
        for (member_id, seat) in &mut self.members {
            let from = std::mem::take(&mut seat.seated_after);
            let Some(fresh) = gathered.get(from..).filter(|fresh| !fresh.is_empty()) else {
                continue;
            };
            let covered = seat.covered_through;
            if fresh.iter().any(|(id, _)| *id > covered) {
                seat.covered_through = None;
            }
            let outcome = match (&mut seat.held, covered) {
                (Some(held), _) => fresh
                    .iter()
                    .try_for_each(|(id, frame)| hold(held, *id, frame, seat.queue.max_bytes())),
                (None, Some(covered)) => uncovered(fresh, Some(covered))
                    .try_for_each(|frame| seat.queue.try_send(frame.clone())),
                (None, None) => seat
                    .queue
                    .try_send(Outbound::Framed(framed.slice(offsets[from]..))),
            };
            tally(
                &mut delivery,
                &mut lagging,
                *member_id,
                outcome,
                fresh.len(),
            );
        }
        delivery.gone = self.remove_all(lagging);
        delivery
    }

    /// Pushes `frame` into every member's queue. Members whose queue is full (too
    /// slow) or closed (gone) are removed; their user ids are returned so the caller
    /// can settle presence.
    #[cfg(test)]
    pub(crate) fn deliver(&mut self, id: FrameId, frame: &FrameBytes) -> Vec<Arc<str>> {
        self.fan_out(id, frame).gone
    }

    /// [`Self::deliver`], also saying how many queues took the frame and how many
    /// members were evicted for a full queue (for the metrics).
    fn fan_out(&mut self, id: FrameId, frame: &FrameBytes) -> Delivery {
        let mut delivery = Delivery::default();
        let mut lagging = Vec::new();
        for (member_id, seat) in &mut self.members {
            let outcome = match &mut seat.held {
                Some(held) => hold(held, id, frame, seat.queue.max_bytes()),
                None if id.is_some() && seat.covered_through.is_some() => {
                    if id <= seat.covered_through {
                        continue;
                    }
                    seat.covered_through = None;
                    seat.queue.try_send(frame.clone())
                }
                None => seat.queue.try_send(frame.clone()),
            };
            tally(&mut delivery, &mut lagging, *member_id, outcome, 1);
        }
        delivery.gone = self.remove_all(lagging);
        delivery
    }

    fn remove_all(&mut self, members: Vec<MemberId>) -> Vec<Arc<str>> {
        members
            .into_iter()
            .filter_map(|member_id| self.remove(member_id))
            .collect()
    }

    /// Makes a held seat live: its buffered frames are queued, except messages with
    /// ids up to `covered_through`, which its backlog already had (and so are those
    /// still gathered for the next batch). Returns the user id if the member had to
    /// be evicted (its queue overflowed) or was already gone.
    pub(crate) fn release(
        &mut self,
        member_id: MemberId,
        covered_through: Option<u64>,
    ) -> Result<(), Option<Arc<str>>> {
        let Some(seat) = self.members.get_mut(&member_id) else {
            return Err(None);
        };
        let (held, _) = seat.held.take().unwrap_or_default();
        seat.covered_through = covered_through;
        let sent = uncovered(&held, covered_through)
            .try_for_each(|frame| seat.queue.try_send(frame.clone()));
        if sent.is_err() {
            return Err(self.remove(member_id));
        }
        Ok(())
    }
}

/// Buffers a frame for a held seat; held frames count against the same bound as
/// queued ones.
fn hold(
    (held, bytes): &mut (Vec<(FrameId, FrameBytes)>, usize),
    id: FrameId,
    frame: &FrameBytes,
    max_bytes: usize,
) -> Result<(), Refused> {
    if !held.is_empty() && *bytes + frame.len() > max_bytes {
        return Err(Refused::Full);
    }
    *bytes += frame.len();
    held.push((id, frame.clone()));
    Ok(())
}

/// The frames of `frames` a backlog through `covered_through` did not have.
fn uncovered(
    frames: &[(FrameId, FrameBytes)],
    covered_through: Option<u64>,
) -> impl Iterator<Item = &FrameBytes> {
    frames
        .iter()
        .filter(move |(id, _)| match (id, covered_through) {
            (Some(id), Some(covered)) => *id > covered,
            _ => true,
        })
        .map(|(_, frame)| frame)
}

/// Counts what one member's delivery did; a refused member is to be removed.
fn tally(
    delivery: &mut Delivery,
    lagging: &mut Vec<MemberId>,
    member_id: MemberId,
    outcome: Result<(), Refused>,
    frames: usize,
) {
    match outcome {
        Ok(()) => delivery.queued += frames,
        Err(Refused::Full) => {
            delivery.evicted += 1;
            tracing::info!(
                room_member = member_id.0,
                "evicting a member too slow to keep up"
            );
            lagging.push(member_id);
        }
        // The connection is gone; its membership is being dropped right now.
        Err(Refused::Closed) => lagging.push(member_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::fanout::queue::{MemberQueue, member_queue};

    /// A seat whose queue holds `max_bytes` (the test frames are a byte or two each).
    fn seats_with(max_bytes: usize, held: bool) -> (Seats, MemberQueue) {
        let mut seats = Seats::new(Duration::ZERO, max_bytes);
        let (queue, receiver) = member_queue(max_bytes);
        seats.insert(MemberId(1), Arc::from("alice"), queue, held);
        (seats, receiver)
    }

    fn frame(text: &'static str) -> FrameBytes {
        FrameBytes::from_static(text)
    }

    fn drain(receiver: &mut MemberQueue) -> Vec<String> {
        std::iter::from_fn(|| receiver.try_recv().ok())
            .map(|frame| frame.text().to_owned())
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
    fn a_message_its_backlog_had_is_not_sent_again_when_it_arrives_live() {
        let (mut seats, mut receiver) = seats_with(64, true);
        assert_eq!(seats.release(MemberId(1), Some(5)), Ok(()));
        // Pub/Sub brings 5 after the stream was read; then 6, and later ones.
        assert!(seats.deliver(Some(5), &frame("m5")).is_empty());
        assert!(seats.deliver(None, &frame("join")).is_empty());
        assert!(seats.deliver(Some(6), &frame("m6")).is_empty());
        assert!(seats.deliver(Some(7), &frame("m7")).is_empty());
        assert_eq!(drain(&mut receiver), ["join", "m6", "m7"]);
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

    const DELAY: Duration = Duration::from_millis(20);

    /// Seats whose room is busy at the returned instant: a whole window of frames
    /// went out one by one just before.
    fn busy_room(members: &[&str], max_bytes: usize) -> (Seats, Vec<MemberQueue>, Instant) {
        use crate::hub::fanout::pacing::{BUSY_FRAMES, WINDOW};
        let mut seats = Seats::new(DELAY, max_bytes);
        let mut queues = Vec::new();
        for (n, name) in members.iter().enumerate() {
            let (queue, receiver) = member_queue(max_bytes);
            seats.insert(MemberId(n as u64), Arc::from(*name), queue, false);
            queues.push(receiver);
        }
        let start = Instant::now();
        for at in [start; BUSY_FRAMES as usize]
            .into_iter()
            .chain([start + WINDOW])
        {
            let sent = seats.send(None, &frame("warm"), at);
            assert!(sent.due.is_none(), "not busy until the window has ended");
        }
        for queue in &mut queues {
            read(queue);
        }
        (seats, queues, start + WINDOW + Duration::from_millis(1))
    }

    /// Everything queued, as a client reads it.
    fn read(receiver: &mut MemberQueue) -> Vec<String> {
        std::iter::from_fn(|| receiver.try_recv().ok())
            .flat_map(|queued| queued.texts())
            .collect()
    }

    #[test]
    fn a_busy_room_gathers_its_frames_into_one_batch_framed_once_for_everyone() {
        let (mut seats, mut queues, now) = busy_room(&["alice", "bob"], 1 << 20);
        let first = seats.send(Some(1), &frame("m1"), now);
        assert!(first.due.is_some_and(|due| due > now && due <= now + DELAY));
        for text in ["m2", "m3"] {
            let sent = seats.send(Some(2), &frame(text), now);
            assert!(sent.due.is_none(), "one timer per batch");
            assert_eq!(sent.delivery.queued, 0, "gathered, not sent");
        }
        assert!(queues[0].try_recv().is_err());
        let delivery = seats.send_gathered(now + DELAY);
        assert_eq!(
            delivery.queued,
            2 * 3,
            "three frames to each of two members"
        );
        let batches: Vec<Outbound> = queues
            .iter_mut()
            .map(|queue| queue.try_recv().unwrap())
            .collect();
        match (&batches[0], &batches[1]) {
            (Outbound::Framed(a), Outbound::Framed(b)) => {
                assert_eq!(a.as_ptr(), b.as_ptr(), "one buffer, shared");
            }
            other => panic!("not framed: {other:?}"),
        }
        assert_eq!(batches[0].texts(), ["m1", "m2", "m3"]);
        if let Outbound::Framed(framed) = &batches[0] {
            assert_eq!(
                framed.len(),
                3 * (2 + 2),
                "three 2-byte texts, 2-byte headers"
            );
        }
        assert_eq!(
            seats.send_gathered(now + DELAY).queued,
            0,
            "a timer with nothing gathered sends nothing"
        );
    }

    #[test]
    fn a_member_seated_while_frames_are_gathered_gets_only_the_later_ones() {
        let (mut seats, mut queues, now) = busy_room(&["alice"], 1 << 20);
        let _ = seats.send(Some(1), &frame("before"), now);
        let (queue, mut late) = member_queue(1 << 20);
        seats.insert(MemberId(9), Arc::from("carol"), queue, false);
        let _ = seats.send(Some(2), &frame("after"), now);
        seats.send_gathered(now + DELAY);
        assert_eq!(read(&mut queues[0]), ["before", "after"]);
        assert_eq!(read(&mut late), ["after"], "its backlog had the first");
    }

    #[test]
    fn a_seat_made_live_while_frames_are_gathered_skips_what_its_backlog_had() {
        let (mut seats, _queues, now) = busy_room(&["alice"], 1 << 20);
        let (queue, mut joining) = member_queue(1 << 20);
        seats.insert(MemberId(9), Arc::from("carol"), queue, true);
        for (id, text) in [(Some(5), "m5"), (None, "join"), (Some(6), "m6")] {
            let _ = seats.send(id, &frame(text), now);
        }
        // Its backlog, read meanwhile, went through m5.
        assert_eq!(seats.release(MemberId(9), Some(5)), Ok(()));
        let _ = seats.send(Some(7), &frame("m7"), now);
        seats.send_gathered(now + DELAY);
        assert_eq!(read(&mut joining), ["join", "m6", "m7"]);
    }

    #[test]
    fn a_batch_goes_at_once_when_it_reaches_a_quarter_of_a_queue() {
        let (mut seats, mut queues, now) = busy_room(&["alice"], 400);
        let _ = seats.send(Some(1), &frame("a"), now);
        let mut sent_early = 0;
        for n in 0..100 {
            let sent = seats.send(Some(2 + n), &frame("bbbbbbbbbbbbbbbbbbbb"), now);
            sent_early += sent.delivery.queued;
            if sent_early > 0 {
                break;
            }
        }
        assert!(sent_early > 0, "never sent before the timer");
        let texts = read(&mut queues[0]);
        assert!(
            texts.concat().len() <= 100 + 30,
            "{} bytes",
            texts.concat().len()
        );
        assert_eq!(texts[0], "a");
    }

    #[test]
    fn a_batch_a_member_has_no_room_for_evicts_it() {
        let (mut seats, mut queues, now) = busy_room(&["alice", "slow"], 1000);
        let fifty: &'static str = Box::leak("y".repeat(50).into_boxed_str());
        let mut evicted = Vec::new();
        let mut batches = 0;
        // The room stays busy (the clock does not move): every batch is gathered.
        while evicted.is_empty() && batches < 100 {
            for n in 0..3 {
                let sent = seats.send(Some(n), &frame(fifty), now);
                assert_eq!(sent.delivery.queued, 0, "gathered");
            }
            let delivery = seats.send_gathered(now);
            batches += 1;
            read(&mut queues[0]);
            evicted.extend(delivery.gone);
        }
        assert_eq!(evicted, [Arc::from("slow")]);
        assert_eq!(batches, 7, "six batches of 168 bytes fit in 1000");
        assert_eq!(seats.len(), 1);
        assert_eq!(
            read(&mut queues[1]).len(),
            6 * 3,
            "what it had stays to be read"
        );
    }
}
