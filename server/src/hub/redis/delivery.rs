//! A frame from Redis into this server's member queues: once, in id order, with
//! joins and leaves through the room's announcer and busy rooms' batches timed.

use std::sync::Arc;

use super::room::{LocalRoom, LocalRoomState};
use crate::hub::fanout::FrameBytes;
use crate::hub::fanout::seats::FrameId;
use crate::hub::presence::announcements::parse_system;
use crate::observe::metrics::Metrics;
use crate::sync::lock;

impl LocalRoom {
    /// Whether message `id` comes after some that never arrived here: ids of a room
    /// follow each other, so a jump past the next one is a loss (or a sequence
    /// started afresh, which the stream tells apart).
    pub(super) fn missed_before(&self, id: u64) -> bool {
        let state = lock(&self.state);
        state.last_delivered > 0 && id > state.last_delivered + 1
    }

    /// Whether the room has been live here: only then is there a gap to fill.
    pub(super) fn was_live(&self) -> bool {
        let state = lock(&self.state);
        state.last_delivered > 0 || state.anchor > 0
    }

    /// Queues `frame` for this server's members unless it was delivered already;
    /// returns whether it was new. Joins and leaves go through the room's announcer,
    /// which gathers them during a burst; anything else goes after what it gathered.
    pub(super) fn deliver(
        self: &Arc<Self>,
        id: FrameId,
        frame: &FrameBytes,
        metrics: &Arc<Metrics>,
    ) -> bool {
        let mut state = lock(&self.state);
        if let Some(id) = id {
            if id <= state.last_delivered {
                return false;
            }
            state.last_delivered = id;
        }
        let announcement = id.is_none().then(|| parse_system(frame)).flatten();
        if let Some((change, member)) = announcement {
            let user_id: Arc<str> = Arc::from(member.user_id);
            let step =
                state
                    .announcer
                    .announce(change, &user_id, &member.name, std::time::Instant::now());
            if let Some(at) = step.flush_at {
                self.flush_announcements_at(at, metrics.clone());
            }
            for frame in &step.frames {
                self.send(&mut state, None, frame, metrics);
            }
        } else {
            if let Some(gathered) = state.announcer.flush() {
                self.send(&mut state, None, &gathered, metrics);
            }
            self.send(&mut state, id, frame, metrics);
        }
        true
    }

    /// Sends one frame to this server's members; when it begins a busy room's batch,
    /// starts the batch's timer. Evicted members' connections close with 4008 and
    /// leave presence as they drop.
    fn send(
        self: &Arc<Self>,
        state: &mut LocalRoomState,
        id: FrameId,
        frame: &FrameBytes,
        metrics: &Arc<Metrics>,
    ) {
        let sent = state.seats.send(id, frame, tokio::time::Instant::now());
        metrics.delivered(sent.delivery.queued, sent.delivery.evicted);
        if let Some(due) = sent.due {
            self.send_gathered_at(due, metrics.clone());
        }
    }

    /// Sends the busy room's batch at `at`. Holds the room weakly: a room gone from
    /// this server is done.
    fn send_gathered_at(self: &Arc<Self>, at: tokio::time::Instant, metrics: Arc<Metrics>) {
        let room = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let Some(room) = room.upgrade() else { return };
            let delivery = lock(&room.state)
                .seats
                .send_gathered(tokio::time::Instant::now());
            metrics.delivered(delivery.queued, delivery.evicted);
        });
    }

    /// Sends what the announcer gathered at `at`, and again every window while the
    /// burst goes on. Holds the room weakly: a room gone from this server is done.
    fn flush_announcements_at(self: &Arc<Self>, at: std::time::Instant, metrics: Arc<Metrics>) {
        let room = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut at = at;
            loop {
                tokio::time::sleep_until(at.into()).await;
                let Some(room) = room.upgrade() else { return };
                let mut state = lock(&room.state);
                let (gathered, next) = state.announcer.tick(std::time::Instant::now());
                if let Some(gathered) = gathered {
                    room.send(&mut state, None, &gathered, &metrics);
                }
                match next {
                    Some(next) => at = next,
                    None => return,
                }
            }
        });
    }
}
