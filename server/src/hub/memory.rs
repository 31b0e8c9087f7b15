//! The in-memory engine: one server, rooms in this process.
//!
//! Each room's lock covers its ids, history, presence and members, so allocating an
//! id, storing the message and queueing it for every member is one step, and every
//! member sees the room's frames in one order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use app::protocol::{ChatMessage, JOIN_HISTORY, Member, ServerFrame};
use tokio::sync::mpsc;

use super::recovery::{self, RoomIds, Start};
use super::refs::RecentRefs;
use super::seats::{MemberId, Seats};
use super::{
    FrameBytes, HubSettings, Joined, Participant, PublishError, Published, RoomName, RoomSummary,
    Unavailable, Welcome, lock,
};

/// The rooms of one server.
pub struct MemoryHub {
    shared: Arc<Shared>,
}

struct Shared {
    rooms: Mutex<HashMap<Arc<str>, Arc<Room>>>,
    settings: HubSettings,
    next_member_id: AtomicU64,
    /// Bytes of retained history in every room, against `settings.history_memory`.
    history_bytes: Arc<AtomicUsize>,
    /// Ticks at every publish: a room's last tick says how recently it was active.
    activity: AtomicU64,
    /// Held by the one publisher trimming history back under the budget.
    trimming: Mutex<()>,
}

impl MemoryHub {
    pub fn new(settings: HubSettings) -> Self {
        assert!(
            settings.queue_capacity > 0,
            "queue capacity must be positive"
        );
        MemoryHub {
            shared: Arc::new(Shared {
                rooms: Mutex::new(HashMap::new()),
                settings,
                next_member_id: AtomicU64::new(1),
                history_bytes: Arc::default(),
                activity: AtomicU64::new(0),
                trimming: Mutex::new(()),
            }),
        }
    }

    /// Joins `room` (creating it if needed). With `since`, the backlog is every
    /// retained message after that id; without it, the last [`JOIN_HISTORY`].
    pub fn join(
        &self,
        room: &RoomName,
        who: Participant,
        since: Option<u64>,
    ) -> Result<Joined<MemoryMembership>, Unavailable> {
        let room_name = room.as_str();
        let (sender, queue) = mpsc::channel(self.shared.settings.queue_capacity);
        let member_id = MemberId(self.shared.next_member_id.fetch_add(1, Ordering::Relaxed));

        // The rooms map is held only to find or create the room, never while waiting
        // for a room's lock: a busy room must not stall joins to the others.
        let (room, welcome, backlog) = loop {
            let room = {
                let mut rooms = lock(&self.shared.rooms);
                if rooms.len() >= self.shared.settings.max_rooms && !rooms.contains_key(room_name) {
                    return Err(Unavailable::TooManyRooms);
                }
                rooms
                    .entry(Arc::from(room_name))
                    .or_insert_with_key(|name| {
                        Arc::new(Room::new(
                            name.clone(),
                            &self.shared.settings,
                            self.shared.history_bytes.clone(),
                        ))
                    })
                    .clone()
            };
            let mut state = room.lock();
            if state.removed {
                // Emptied and on its way out of the map: help it out, then start afresh.
                drop(state);
                self.shared.unlist(&room);
                continue;
            }
            let (welcome, backlog) = state.admit(room_name, member_id, who, since, sender);
            let leaves = state.take_pending_leaves();
            drop(state);
            schedule_leaves(&self.shared, &room, leaves);
            break (room, welcome, backlog);
        };

        Ok(Joined {
            membership: MemoryMembership {
                shared: self.shared.clone(),
                room,
                member_id,
            },
            welcome,
            backlog,
            queue,
        })
    }

    /// Active rooms, sorted by name.
    pub fn rooms(&self) -> Vec<RoomSummary> {
        let rooms: Vec<Arc<Room>> = lock(&self.shared.rooms).values().cloned().collect();
        let mut summaries: Vec<RoomSummary> = rooms.iter().map(|room| room.summary()).collect();
        summaries.retain(|summary| summary.connections > 0);
        summaries.sort_by(|a, b| a.name.cmp(&b.name));
        summaries
    }

    /// Holds `room`'s lock, as a long fan-out would: for tests of what must not wait
    /// for it.
    #[cfg(test)]
    pub(super) fn busy(&self, room: &str) -> super::Busy {
        let room = lock(&self.shared.rooms)[room].clone();
        super::Busy::hold(room, |room| &room.state)
    }

    /// Bytes of retained history, as counted against `--history-memory`.
    pub fn history_bytes(&self) -> usize {
        self.shared.history_bytes.load(Ordering::Relaxed)
    }

    pub fn room_count(&self) -> usize {
        lock(&self.shared.rooms).len()
    }
}

impl Shared {
    /// Past the history budget: the least recently active rooms lose their oldest
    /// messages until retained history is back to 90 % of it (so a server at its
    /// limit does not trim on every message). A `since` into what was dropped is
    /// answered `recovered: false`, as for any message no longer retained.
    fn trim_history(&self) {
        let budget = self.settings.history_memory;
        if self.history_bytes.load(Ordering::Relaxed) <= budget {
            return;
        }
        // One trimmer at a time; the others' messages are covered by its pass.
        let Ok(_trimming) = self.trimming.try_lock() else {
            return;
        };
        let target = budget - budget / 10;
        let mut rooms: Vec<Arc<Room>> = lock(&self.rooms).values().cloned().collect();
        rooms.sort_by_key(|room| room.last_active.load(Ordering::Relaxed));
        for room in rooms {
            if self.history_bytes.load(Ordering::Relaxed) <= target {
                break;
            }
            room.lock()
                .drop_oldest_while(|| self.history_bytes.load(Ordering::Relaxed) > target);
        }
    }

    /// Marks an empty room removed (under its own lock, so no join can enter it
    /// after), then takes it out of the map.
    fn remove_if_empty(&self, room: &Arc<Room>) {
        {
            let mut state = room.lock();
            if !state.is_empty() || state.removed {
                return;
            }
            state.removed = true;
        }
        self.unlist(room);
    }

    /// Takes a removed room out of the map, unless a new room of that name took its place.
    fn unlist(&self, room: &Arc<Room>) {
        let mut rooms = lock(&self.rooms);
        let still_listed = rooms
            .get(room.name())
            .is_some_and(|listed| Arc::ptr_eq(listed, room));
        if still_listed {
            rooms.remove(room.name());
            // Give the memory of a burst of rooms back once they are gone.
            if rooms.is_empty() || rooms.len() < rooms.capacity() / 4 {
                rooms.shrink_to_fit();
            }
        }
    }
}

/// A seat in a room; leaving the room is dropping it.
pub struct MemoryMembership {
    shared: Arc<Shared>,
    room: Arc<Room>,
    member_id: MemberId,
}

impl MemoryMembership {
    pub fn room(&self) -> &str {
        self.room.name()
    }

    /// Stores `content` as the room's next message and queues it for every member.
    pub fn publish(&self, content: String) -> Result<u64, PublishError> {
        self.publish_once(content, None)
            .map(|published| published.id)
    }

    /// [`Self::publish`], unless this user's message with the same `reference` was
    /// published within the ref window: then only its id comes back.
    pub fn publish_once(
        &self,
        content: String,
        reference: Option<&str>,
    ) -> Result<Published, PublishError> {
        // Formatted before taking the lock: the room lock covers only what must be ordered.
        let timestamp = super::now_rfc3339();
        let mut state = self.room.lock();
        let outcome = state.publish(self.member_id, content, reference, timestamp);
        let leaves = state.take_pending_leaves();
        drop(state);
        schedule_leaves(&self.shared, &self.room, leaves);
        let (published, emptied) = outcome?;
        if !published.repeated {
            let tick = self.shared.activity.fetch_add(1, Ordering::Relaxed);
            self.room.last_active.store(tick, Ordering::Relaxed);
            self.shared.trim_history();
        }
        if emptied {
            self.shared.remove_if_empty(&self.room);
        }
        Ok(published)
    }
}

impl Drop for MemoryMembership {
    fn drop(&mut self) {
        let (emptied, leaves) = {
            let mut state = self.room.lock();
            (state.remove(self.member_id), state.take_pending_leaves())
        };
        schedule_leaves(&self.shared, &self.room, leaves);
        if emptied {
            self.shared.remove_if_empty(&self.room);
        }
    }
}

/// Announces each leave when its grace is over, unless the user is back by then. The
/// timers hold the hub weakly: a hub that is gone (a server shutting down) announces
/// nothing, so a restart never tells anyone that everyone left.
fn schedule_leaves(shared: &Arc<Shared>, room: &Arc<Room>, leaves: Vec<(Arc<str>, u64)>) {
    let grace = shared.settings.presence_grace;
    for (user_id, token) in leaves {
        let hub = Arc::downgrade(shared);
        let room = room.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let Some(shared) = hub.upgrade() else {
                return;
            };
            let (emptied, more) = {
                let mut state = room.lock();
                state.finish_leave(&user_id, token);
                (state.is_empty(), state.take_pending_leaves())
            };
            schedule_leaves(&shared, &room, more);
            if emptied {
                shared.remove_if_empty(&room);
            }
        });
    }
}

struct Room {
    name: Arc<str>,
    state: Mutex<RoomState>,
    /// The hub's activity tick at this room's last message.
    last_active: AtomicU64,
}

impl Room {
    fn new(name: Arc<str>, settings: &HubSettings, history_bytes: Arc<AtomicUsize>) -> Self {
        Room {
            name,
            state: Mutex::new(RoomState::new(
                settings.history_size,
                history_bytes,
                !settings.presence_grace.is_zero(),
            )),
            last_active: AtomicU64::new(0),
        }
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, RoomState> {
        lock(&self.state)
    }

    fn summary(&self) -> RoomSummary {
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

struct Presence {
    name: Arc<str>,
    connections: usize,
    /// The user's last connection went away: its leave is announced when the grace
    /// with this token ends, unless the user is back by then.
    leaving: Option<u64>,
}

struct StoredMessage {
    id: u64,
    frame: FrameBytes,
}

struct RoomState {
    /// The id of this room's first message. Seeded from the clock (microseconds since
    /// the Unix epoch) so ids keep increasing when a room is emptied and re-created or
    /// the server restarts: a client's `since` from before then never hides new messages.
    first_id: u64,
    next_id: u64,
    history: VecDeque<StoredMessage>,
    history_size: usize,
    /// The hub's count of retained history bytes, kept by this room's pushes and pops.
    history_bytes: Arc<AtomicUsize>,
    seats: Seats,
    /// Keyed by user id: one entry per user however many tabs they have open.
    presence: BTreeMap<Arc<str>, Presence>,
    /// Recent messages' refs, so a resend gets the original id.
    refs: RecentRefs,
    /// Emptied and being taken out of the rooms map: joins make a new room instead.
    removed: bool,
    /// Whether leaves wait out `--presence-grace` before they are announced.
    grace: bool,
    next_leave_token: u64,
    /// Leaves begun under this lock, for the caller to time once it is released.
    pending_leaves: Vec<(Arc<str>, u64)>,
}

impl RoomState {
    fn new(history_size: usize, history_bytes: Arc<AtomicUsize>, grace: bool) -> Self {
        let first_id = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_micros() as u64)
            .max(1);
        RoomState {
            first_id,
            next_id: first_id,
            history: VecDeque::with_capacity(history_size.min(16)),
            history_size,
            history_bytes,
            seats: Seats::default(),
            presence: BTreeMap::new(),
            refs: RecentRefs::default(),
            removed: false,
            grace,
            next_leave_token: 0,
            pending_leaves: Vec::new(),
        }
    }

    /// No connection, and nobody whose leave is still to be announced.
    fn is_empty(&self) -> bool {
        self.seats.is_empty() && self.presence.is_empty()
    }

    fn take_pending_leaves(&mut self) -> Vec<(Arc<str>, u64)> {
        std::mem::take(&mut self.pending_leaves)
    }

    /// The grace of `user_id`'s leave with `token` is over: announces the leave unless
    /// the user came back meanwhile (or left again, with a newer token).
    fn finish_leave(&mut self, user_id: &Arc<str>, token: u64) {
        let gone = self
            .presence
            .get(user_id)
            .is_some_and(|presence| presence.connections == 0 && presence.leaving == Some(token));
        if gone && let Some(left) = self.presence.remove(user_id) {
            self.deliver(ServerFrame::left(user_id, &left.name).to_json().into());
        }
    }

    /// Seats a new member. Returns its welcome frame and backlog; the join
    /// announcement (first connection of a user only) goes through the queues, so
    /// the newcomer receives it right after its backlog.
    fn admit(
        &mut self,
        room: &str,
        member_id: MemberId,
        who: Participant,
        since: Option<u64>,
        queue: mpsc::Sender<FrameBytes>,
    ) -> (Welcome, Vec<FrameBytes>) {
        let (backlog, recovered) = self.backlog(since);
        // Who was here before: the newcomer's own `join` (if this is its first
        // connection) follows, so `users` plus the events is always the member list.
        let users = self.members();
        let user_id: Arc<str> = Arc::from(who.id.as_str());
        self.seats.insert(member_id, user_id.clone(), queue, false);
        let presence = self.presence.entry(user_id).or_insert_with(|| Presence {
            name: Arc::from(who.name.as_str()),
            connections: 0,
            leaving: None,
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
            self.deliver(ServerFrame::joined(&who.id, &who.name).to_json().into());
        }
        (welcome, backlog)
    }

    /// Allocates the next id, stores the message and queues it for every member.
    /// Returns the id and whether the room is now empty (the sender itself may have
    /// been evicted for not reading its own queue).
    fn publish(
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
        let now = Instant::now();
        if let Some(reference) = reference
            && let Some(id) = self.refs.get(&user_id, reference, now)
        {
            return Ok((Published { id, repeated: true }, self.is_empty()));
        }
        let user = self.presence[&user_id].name.to_string();
        let id = self.next_id;
        self.next_id += 1;
        if let Some(reference) = reference {
            self.refs.insert(user_id.clone(), reference, id, now);
        }
        let frame: FrameBytes = ServerFrame::Message(ChatMessage {
            id,
            user_id: user_id.to_string(),
            user,
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
        Ok((
            Published {
                id,
                repeated: false,
            },
            self.is_empty(),
        ))
    }

    fn pop_oldest(&mut self) {
        if let Some(oldest) = self.history.pop_front() {
            self.history_bytes
                .fetch_sub(retained_bytes(&oldest.frame), Ordering::Relaxed);
        }
    }

    /// Drops the oldest messages while `over` says history is over its budget.
    fn drop_oldest_while(&mut self, over: impl Fn() -> bool) {
        while !self.history.is_empty() && over() {
            self.pop_oldest();
        }
    }

    /// Removes a member; announces the leave when it was the user's last connection.
    /// Returns whether the room is now empty. Removing an absent member is a no-op.
    fn remove(&mut self, member_id: MemberId) -> bool {
        if let Some(user_id) = self.seats.remove(member_id)
            && let Some(left) = self.disconnect(&user_id)
        {
            self.deliver(ServerFrame::left(&user_id, &left).to_json().into());
        }
        self.is_empty()
    }

    /// One connection of `user_id` is gone; returns the user's name when it was the
    /// last and the leave is to be announced now. With a grace, the leave waits
    /// ([`Self::pending_leaves`]) and the user is still listed meanwhile.
    fn disconnect(&mut self, user_id: &Arc<str>) -> Option<Arc<str>> {
        let presence = self.presence.get_mut(user_id)?;
        presence.connections -= 1;
        if presence.connections > 0 {
            return None;
        }
        if self.grace {
            self.next_leave_token += 1;
            presence.leaving = Some(self.next_leave_token);
            self.pending_leaves
                .push((user_id.clone(), self.next_leave_token));
            return None;
        }
        self.presence.remove(user_id).map(|gone| gone.name)
    }

    /// Queues `frame` for every member. Members evicted for a full queue leave, and
    /// their leave is announced the same way, which may evict further members.
    fn deliver(&mut self, frame: FrameBytes) {
        let mut pending = VecDeque::from([frame]);
        while let Some(frame) = pending.pop_front() {
            for user_id in self.seats.deliver(None, &frame) {
                if let Some(left) = self.disconnect(&user_id) {
                    pending.push_back(ServerFrame::left(&user_id, &left).to_json().into());
                }
            }
        }
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

    /// Who is present, sorted by name (then user id).
    fn members(&self) -> Vec<Member> {
        let mut members: Vec<Member> = self
            .presence
            .iter()
            .map(|(user_id, presence)| Member {
                user_id: user_id.to_string(),
                name: presence.name.to_string(),
            })
            .collect();
        members.sort_by(|a, b| (&a.name, &a.user_id).cmp(&(&b.name, &b.user_id)));
        members
    }
}

/// What one retained message counts against the history budget: its JSON and the
/// bookkeeping around it.
fn retained_bytes(frame: &FrameBytes) -> usize {
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
