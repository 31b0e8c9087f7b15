//! One room of the memory engine: its ids, history, presence and seats under one lock.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chorus_protocol::{ChatMessage, JOIN_HISTORY, RoomSummary, ServerFrame};

use super::refs::RecentRefs;
use crate::hub::engine::{HubSettings, Participant, PublishError, Published, Welcome};
use crate::hub::fanout::FrameBytes;
use crate::hub::fanout::queue::QueueSender;
use crate::hub::fanout::seats::{Delivery, MemberId, Seats};
use crate::hub::presence::announcements::{Announcer, Change};
use crate::hub::presence::user_list::Roll;
use crate::hub::recovery::{self, RoomIds, Start};
use crate::observe::metrics::Metrics;
use crate::sync::lock;

/// Who a message is from.
pub(super) struct Author {
    pub(super) user_id: Arc<str>,
    pub(super) name: String,
}

pub(super) struct Room {
    name: Arc<str>,
    pub(super) state: Mutex<RoomState>,
    /// The hub's activity tick at this room's last message.
    pub(super) last_active: AtomicU64,
}

impl Room {
    pub(super) fn new(
        name: Arc<str>,
        settings: &HubSettings,
        history_bytes: Arc<AtomicUsize>,
    ) -> Self {
        Room {
            name,
            state: Mutex::new(RoomState::new(settings, history_bytes)),
            last_active: AtomicU64::new(0),
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, RoomState> {
        lock(&self.state)
    }

    pub(super) fn summary(&self) -> RoomSummary {
        let state = self.lock();
        RoomSummary {
            name: self.name.to_string(),
            members: state
                .presence
                .values()
                .filter(|presence| presence.connections > 0)
                .count(),
            connections: state.seats.len(),
        }
    }
}

pub(super) struct Presence {
    pub(super) name: Arc<str>,
    pub(super) connections: usize,
    /// The user's last connection went away: its leave is announced when the grace
    /// with this token ends, unless the user is back by then.
    leaving: Option<u64>,
}

pub(super) struct StoredMessage {
    pub(super) id: u64,
    pub(super) frame: FrameBytes,
}

pub(super) struct RoomState {
    /// The id of this room's first message. Seeded from the clock (microseconds since
    /// the Unix epoch) so ids keep increasing when a room is emptied and re-created or
    /// the server restarts: a client's `since` from before then never hides new messages.
    first_id: u64,
    next_id: u64,
    pub(super) history: VecDeque<StoredMessage>,
    history_size: usize,
    /// The hub's count of retained history bytes, kept by this room's pushes and pops.
    history_bytes: Arc<AtomicUsize>,
    pub(super) seats: Seats,
    /// Keyed by user id: one entry per user however many tabs they have open.
    pub(super) presence: HashMap<Arc<str>, Presence>,
    /// The same users in the order a welcome lists them.
    roll: Roll,
    /// Recent messages' refs, so a resend gets the original id.
    refs: RecentRefs,
    /// Emptied and being taken out of the rooms map: joins make a new room instead.
    pub(super) removed: bool,
    /// Whether leaves wait out `--presence-grace` before they are announced.
    grace: bool,
    next_leave_token: u64,
    /// Announces joins and leaves, one by one or gathered during a burst.
    announcer: Announcer,
    /// Timers asked for under this lock, for the caller to start once it is released.
    followups: Followups,
    metrics: Arc<Metrics>,
}

impl RoomState {
    pub(super) fn new(settings: &HubSettings, history_bytes: Arc<AtomicUsize>) -> Self {
        let history_size = settings.history_size;
        let first_id = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_micros() as u64)
            .max(1);
        RoomState {
            first_id,
            next_id: first_id,
            // Grows with the first message: a room nobody posts in holds no buffer.
            history: VecDeque::new(),
            history_size,
            history_bytes,
            seats: Seats::new(settings.write_delay, settings.queue_bytes),
            presence: HashMap::new(),
            roll: Roll::default(),
            refs: RecentRefs::default(),
            removed: false,
            grace: !settings.presence_grace.is_zero(),
            next_leave_token: 0,
            announcer: Announcer::new(settings.presence_burst),
            followups: Followups::default(),
            metrics: settings.metrics.clone(),
        }
    }

    /// No connection, and nobody whose leave is still to be announced.
    pub(super) fn is_empty(&self) -> bool {
        self.seats.is_empty() && self.presence.is_empty()
    }

    /// Empty, and keeping no history either: nothing is lost by removing the room.
    pub(super) fn is_forgettable(&self) -> bool {
        self.is_empty() && self.history.is_empty()
    }

    pub(super) fn take_followups(&mut self) -> Followups {
        std::mem::take(&mut self.followups)
    }

    /// The grace of `user_id`'s leave with `token` is over: announces the leave unless
    /// the user came back meanwhile (or left again, with a newer token).
    pub(super) fn finish_leave(&mut self, user_id: &Arc<str>, token: u64) {
        let gone = self
            .presence
            .get(user_id)
            .is_some_and(|presence| presence.connections == 0 && presence.leaving == Some(token));
        if gone && let Some(left) = self.unlist(user_id) {
            self.announce(Change::Leave, user_id, &left);
        }
    }

    /// Seats a new member. Returns its welcome frame and backlog; the join
    /// announcement (first connection of a user only) goes through the queues, so
    /// the newcomer receives it right after its backlog.
    pub(super) fn admit(
        &mut self,
        room: &str,
        member_id: MemberId,
        who: Participant,
        since: Option<u64>,
        queue: QueueSender,
    ) -> (Welcome, Vec<FrameBytes>) {
        let (backlog, recovered) = self.backlog(since);
        // Who was here before: the newcomer's own `join` (if this is its first
        // connection) follows, so `users` plus the events is always the member list.
        let users = self.roll.list();
        let user_id: Arc<str> = Arc::from(who.id.as_str());
        self.seats.insert(member_id, user_id.clone(), queue, false);
        let presence = self.presence.entry(user_id.clone()).or_insert_with(|| {
            let name = Arc::from(who.name.as_str());
            self.roll.insert(&user_id, &name);
            Presence {
                name,
                connections: 0,
                leaving: None,
            }
        });
        presence.connections += 1;
        // Back within the grace of a leave: nobody was told it left, so nobody is
        // told it joined.
        let returning = presence.leaving.take().is_some();
        let first_connection = presence.connections == 1 && !returning;

        let welcome = Welcome {
            room: room.to_owned(),
            user_id: who.id.clone(),
            user: who.name.clone(),
            users,
            recovered,
            // Ids are consecutive from `first_id`; before the first, this is the id
            // just below it.
            last_id: self.next_id - 1,
        };
        if first_connection {
            self.announce(Change::Join, &user_id, &who.name);
        }
        (welcome, backlog)
    }

    /// Allocates the next id, stores the message and queues it for every member.
    /// Returns the id and whether the room is now empty (the sender itself may have
    /// been evicted for not reading its own queue).
    pub(super) fn publish(
        &mut self,
        member_id: MemberId,
        content: String,
        reference: Option<&str>,
        timestamp: String,
    ) -> Result<(Published, bool), PublishError> {
        let user_id = self
            .seats
            .user_of(member_id)
            .ok_or(PublishError::NotMember)?
            .clone();
        let author = Author {
            name: self.presence[&user_id].name.to_string(),
            user_id: user_id.clone(),
        };
        let published = self.publish_as(&author, &user_id, content, reference, timestamp);
        Ok((published, self.is_empty()))
    }

    /// Publishes as `author`, idempotent per `reference` among `refs_of`'s refs.
    pub(super) fn publish_as(
        &mut self,
        author: &Author,
        refs_of: &Arc<str>,
        content: String,
        reference: Option<&str>,
        timestamp: String,
    ) -> Published {
        let now = Instant::now();
        if let Some(reference) = reference
            && let Some(id) = self.refs.get(refs_of, reference, now)
        {
            return Published { id, repeated: true };
        }
        let id = self.next_id;
        self.next_id += 1;
        if let Some(reference) = reference {
            self.refs.insert(refs_of.clone(), reference, id, now);
        }
        let frame: FrameBytes = ServerFrame::Message(ChatMessage {
            id,
            user_id: author.user_id.to_string(),
            user: author.name.clone(),
            content,
            timestamp,
        })
        .to_json()
        .into();
        if self.history_size > 0 {
            if self.history.len() == self.history_size {
                self.pop_oldest();
            }
            self.history_bytes
                .fetch_add(retained_bytes(&frame), Ordering::Relaxed);
            self.history.push_back(StoredMessage {
                id,
                frame: frame.clone(),
            });
        }
        self.deliver(frame);
        Published {
            id,
            repeated: false,
        }
    }

    fn pop_oldest(&mut self) {
        if let Some(oldest) = self.history.pop_front() {
            self.history_bytes
                .fetch_sub(retained_bytes(&oldest.frame), Ordering::Relaxed);
        }
    }

    /// Drops the oldest messages while `over` says history is over its budget.
    pub(super) fn drop_oldest_while(&mut self, over: impl Fn() -> bool) {
        while !self.history.is_empty() && over() {
            self.pop_oldest();
        }
    }

    /// Removes a member; announces the leave when it was the user's last connection.
    /// Returns whether the room is now empty. Removing an absent member is a no-op.
    pub(super) fn remove(&mut self, member_id: MemberId, at_once: bool) -> bool {
        if let Some(user_id) = self.seats.remove(member_id)
            && let Some(left) = self.disconnect(&user_id, at_once)
        {
            self.announce(Change::Leave, &user_id, &left);
        }
        self.is_empty()
    }

    /// One connection of `user_id` is gone; returns the user's name when it was the
    /// last and the leave is to be announced now. With a grace, the leave waits
    /// ([`Followups::leaves`]) and the user is still listed meanwhile.
    fn disconnect(&mut self, user_id: &Arc<str>, at_once: bool) -> Option<Arc<str>> {
        let presence = self.presence.get_mut(user_id)?;
        presence.connections -= 1;
        if presence.connections > 0 {
            return None;
        }
        if self.grace && !at_once {
            self.next_leave_token += 1;
            presence.leaving = Some(self.next_leave_token);
            self.followups
                .leaves
                .push((user_id.clone(), self.next_leave_token));
            return None;
        }
        self.unlist(user_id)
    }

    /// Takes a user out of presence; returns its name if it was there.
    pub(super) fn unlist(&mut self, user_id: &Arc<str>) -> Option<Arc<str>> {
        let gone = self.presence.remove(user_id)?;
        self.roll.remove(user_id, &gone.name);
        Some(gone.name)
    }

    /// Passes on that `member_id`'s user is typing, if it is still here.
    pub(super) fn typing(&mut self, member_id: MemberId) {
        let Some(user_id) = self.seats.user_of(member_id).cloned() else {
            return;
        };
        let Some(name) = self
            .presence
            .get(&user_id)
            .map(|presence| presence.name.clone())
        else {
            return;
        };
        let frame = ServerFrame::Typing {
            user_id: user_id.to_string(),
            user: name.to_string(),
        };
        self.deliver(FrameBytes::from(frame.to_json()));
    }

    /// Queues `frame` for every member, after the announcements gathered so far.
    fn deliver(&mut self, frame: FrameBytes) {
        let mut frames: VecDeque<FrameBytes> = self.announcer.flush().into_iter().collect();
        frames.push_back(frame);
        self.send_in_order(frames);
    }

    /// Announces a join or leave, at once or (during a burst) gathered for later.
    fn announce(&mut self, change: Change, user_id: &Arc<str>, name: &str) {
        let frames = self.announcement(change, user_id, name);
        self.send_in_order(frames);
    }

    /// The frames an announcement sends now; a timer it needs goes in the followups.
    fn announcement(
        &mut self,
        change: Change,
        user_id: &Arc<str>,
        name: &str,
    ) -> VecDeque<FrameBytes> {
        let step = self
            .announcer
            .announce(change, user_id, name, Instant::now());
        if step.flush_at.is_some() {
            self.followups.flush_at = step.flush_at;
        }
        step.frames.into()
    }

    /// The window of a burst is over: sends what was gathered, and while the burst
    /// goes on asks (in the followups) to flush again.
    pub(super) fn flush_announcements(&mut self, now: Instant) {
        let (frame, next) = self.announcer.tick(now);
        if next.is_some() {
            self.followups.flush_at = next;
        }
        self.send_in_order(frame.into_iter().collect());
    }

    /// Sends each frame to every member (at once, or in the busy room's next batch).
    /// Members evicted for a full queue leave, and their leave is announced the same
    /// way, which may evict further members.
    fn send_in_order(&mut self, mut frames: VecDeque<FrameBytes>) {
        let now = tokio::time::Instant::now();
        while let Some(frame) = frames.pop_front() {
            let sent = self.seats.send(None, &frame, now);
            if sent.due.is_some() {
                self.followups.send_at = sent.due;
            }
            frames.extend(self.settle(sent.delivery));
        }
    }

    /// The busy room's batch is due: sends it, then announces who it evicted.
    pub(super) fn send_gathered(&mut self, now: tokio::time::Instant) {
        let delivery = self.seats.send_gathered(now);
        let frames = self.settle(delivery);
        self.send_in_order(frames.into());
    }

    /// Counts a delivery; members it evicted leave presence. Returns the frames that
    /// announce their leaves.
    fn settle(&mut self, delivery: Delivery) -> Vec<FrameBytes> {
        self.metrics.delivered(delivery.queued, delivery.evicted);
        let mut frames = Vec::new();
        for user_id in delivery.gone {
            if let Some(left) = self.disconnect(&user_id, false) {
                frames.extend(self.announcement(Change::Leave, &user_id, &left));
            }
        }
        frames
    }

    /// The frames a joining member gets before live traffic, and whether they cover
    /// everything it asked for.
    fn backlog(&self, since: Option<u64>) -> (Vec<FrameBytes>, bool) {
        let plan = recovery::plan(
            since,
            RoomIds {
                first_id: self.first_id,
                next_id: self.next_id,
                oldest_retained: self.history.front().map(|oldest| oldest.id),
            },
        );
        let from = match plan.start {
            Start::Recent => self.history.len().saturating_sub(JOIN_HISTORY),
            Start::After(seen) => self.history.partition_point(|stored| stored.id <= seen),
        };
        let frames = self
            .history
            .range(from..)
            .map(|stored| stored.frame.clone())
            .collect();
        (frames, plan.recovered)
    }
}

/// What one retained message counts against the history budget: its JSON and the
/// bookkeeping around it.
pub(super) fn retained_bytes(frame: &FrameBytes) -> usize {
    const PER_MESSAGE: usize = 64;
    frame.len() + PER_MESSAGE
}

impl Drop for RoomState {
    /// A room that goes away gives its history's bytes back to the budget.
    fn drop(&mut self) {
        let held: usize = self
            .history
            .iter()
            .map(|stored| retained_bytes(&stored.frame))
            .sum();
        self.history_bytes.fetch_sub(held, Ordering::Relaxed);
    }
}

/// Timers a room's state asked for under its lock, started once the lock is released.
#[derive(Default)]
pub(super) struct Followups {
    /// Leaves whose grace began: (user id, leave token).
    pub(super) leaves: Vec<(Arc<str>, u64)>,
    /// Gathered announcements are to go out at this instant.
    pub(super) flush_at: Option<Instant>,
    /// The busy room's gathered batch is due at this instant (the runtime's clock,
    /// which tests can pause).
    pub(super) send_at: Option<tokio::time::Instant>,
}
