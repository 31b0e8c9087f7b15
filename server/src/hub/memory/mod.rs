//! The in-memory engine: one server, rooms in this process.
//!
//! Each room's lock covers its ids, history, presence and members, so allocating an
//! id, storing the message and queueing it for every member is one step, and every
//! member sees the room's frames in one order.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chorus_protocol::{ChatMessage, JOIN_HISTORY, RoomName, RoomSummary, ServerFrame};

mod bans;
mod refs;

use crate::hub::engine::{
    HistoryPage, HubSettings, Joined, MemberConnections, Participant, PublishError, Published,
    Unavailable, Welcome,
};
use crate::hub::fanout::FrameBytes;
use crate::hub::fanout::queue::{QueueSender, member_queue};
use crate::hub::fanout::seats::{Delivery, MemberId, Seats};
use crate::hub::presence::announcements::{Announcer, Change};
use crate::hub::presence::user_list::Roll;
use crate::hub::recovery::{self, RoomIds, Start};
use crate::observe::metrics::Metrics;
use crate::sync::lock;
use bans::Bans;
use refs::RecentRefs;

/// The rooms of one server.
pub struct MemoryHub {
    shared: Arc<Shared>,
}

struct Shared {
    rooms: Mutex<HashMap<Arc<str>, Arc<Room>>>,
    settings: HubSettings,
    next_member_id: AtomicU64,
    /// Users whose joins are refused for now (server API `disconnect` with a ban).
    bans: Bans,
    /// Bytes of retained history in every room, against `settings.history_memory`.
    history_bytes: Arc<AtomicUsize>,
    /// Ticks at every publish: a room's last tick says how recently it was active.
    activity: AtomicU64,
    /// Held by the one publisher trimming history back under the budget.
    trimming: Mutex<()>,
}

impl MemoryHub {
    pub fn new(settings: HubSettings) -> Self {
        assert!(settings.queue_bytes > 0, "queue bound must be positive");
        MemoryHub {
            shared: Arc::new(Shared {
                rooms: Mutex::new(HashMap::new()),
                settings,
                next_member_id: AtomicU64::new(1),
                bans: Bans::default(),
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
        let (sender, queue) = member_queue(self.shared.settings.queue_bytes);
        let member_id = MemberId(self.shared.next_member_id.fetch_add(1, Ordering::Relaxed));

        if self.shared.bans.is_banned(&who.id) {
            return Err(Unavailable::Banned);
        }
        // The rooms map is held only to find or create the room, never while waiting
        // for a room's lock: a busy room must not stall joins to the others.
        let (room, welcome, backlog) = loop {
            let room = self.shared.room(room_name)?;
            let mut state = room.lock();
            if state.removed {
                // Emptied and on its way out of the map: help it out, then start afresh.
                drop(state);
                self.shared.unlist(&room);
                continue;
            }
            let (welcome, backlog) = state.admit(room_name, member_id, who, since, sender);
            let followups = state.take_followups();
            drop(state);
            schedule(&self.shared, &room, followups);
            break (room, welcome, backlog);
        };

        Ok(Joined {
            membership: MemoryMembership {
                shared: self.shared.clone(),
                room,
                member_id,
                at_once: false,
            },
            welcome,
            backlog,
            queue,
        })
    }

    /// Publishes `content` in `room` as `author`, whether or not anyone is there (the
    /// server API). With an `idempotency_key` used in this room within the ref window,
    /// only the first message's id comes back.
    pub fn publish(
        &self,
        room: &RoomName,
        author: Participant,
        content: String,
        idempotency_key: Option<&str>,
    ) -> Result<Published, Unavailable> {
        let timestamp = crate::hub::engine::now_rfc3339();
        let stamped = Instant::now();
        let author = Author {
            user_id: Arc::from(author.id.as_str()),
            name: author.name,
        };
        loop {
            let room = self.shared.room(room.as_str())?;
            let mut state = room.lock();
            if state.removed {
                drop(state);
                self.shared.unlist(&room);
                continue;
            }
            // Remembered among members' refs under the empty user id, which no
            // token's `sub` can be.
            let published = state.publish_as(
                &author,
                &Arc::from(""),
                content.clone(),
                idempotency_key,
                timestamp.clone(),
            );
            let followups = state.take_followups();
            let forgotten = state.is_forgettable();
            drop(state);
            if !published.repeated {
                self.shared.settings.metrics.latency(stamped.elapsed());
            }
            schedule(&self.shared, &room, followups);
            self.shared.published(&room, published);
            if forgotten {
                // Nobody there and no history kept (`--history-size 0`).
                self.shared.remove_if_empty(&room);
            }
            return Ok(published);
        }
    }

    /// The newest `limit` retained messages of `room` before `before` (or the newest),
    /// oldest first, and whether older ones are retained.
    pub fn history(&self, room: &RoomName, before: Option<u64>, limit: usize) -> HistoryPage {
        let Some(room) = lock(&self.shared.rooms).get(room.as_str()).cloned() else {
            return HistoryPage::default();
        };
        let state = room.lock();
        let end = match before {
            Some(before) => state.history.partition_point(|stored| stored.id < before),
            None => state.history.len(),
        };
        let start = end.saturating_sub(limit);
        HistoryPage {
            messages: state
                .history
                .range(start..end)
                .map(|stored| stored.frame.clone())
                .collect(),
            has_more: start > 0,
        }
    }

    /// Who is listed in `room`, with their connections (0 while in the presence grace).
    pub fn members(&self, room: &RoomName) -> Vec<MemberConnections> {
        let Some(room) = lock(&self.shared.rooms).get(room.as_str()).cloned() else {
            return Vec::new();
        };
        let state = room.lock();
        let mut members: Vec<MemberConnections> = state
            .presence
            .iter()
            .map(|(user_id, presence)| MemberConnections {
                user_id: user_id.to_string(),
                name: presence.name.to_string(),
                connections: presence.connections,
            })
            .collect();
        members.sort_by(|a, b| (&a.name, &a.user_id).cmp(&(&b.name, &b.user_id)));
        members
    }

    /// Refuses `user_id`'s joins for `ban` from now.
    pub fn ban(&self, user_id: &str, ban: Duration) {
        self.shared.bans.ban(user_id, ban);
    }

    /// Rooms with members (for the metrics).
    pub fn occupied_rooms(&self) -> usize {
        let rooms: Vec<Arc<Room>> = lock(&self.shared.rooms).values().cloned().collect();
        rooms
            .iter()
            .filter(|room| !room.lock().seats.is_empty())
            .count()
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
    pub(super) fn busy(&self, room: &str) -> crate::hub::engine::Busy {
        let room = lock(&self.shared.rooms)[room].clone();
        crate::hub::engine::Busy::hold(room, |room| &room.state)
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
    /// The room named `name`, created if needed. At `--max-rooms`, the least recently
    /// active room nobody is in (kept only for its history) makes way; if every room
    /// has members, there is no room for another.
    fn room(&self, name: &str) -> Result<Arc<Room>, Unavailable> {
        loop {
            let idle = {
                let mut rooms = lock(&self.rooms);
                if let Some(room) = rooms.get(name) {
                    return Ok(room.clone());
                }
                if rooms.len() < self.settings.max_rooms {
                    let name: Arc<str> = Arc::from(name);
                    let room = Arc::new(Room::new(
                        name.clone(),
                        &self.settings,
                        self.history_bytes.clone(),
                    ));
                    rooms.insert(name, room.clone());
                    return Ok(room);
                }
                let mut idle: Vec<Arc<Room>> = rooms.values().cloned().collect();
                idle.sort_by_key(|room| room.last_active.load(Ordering::Relaxed));
                idle
            };
            // Each candidate's emptiness is checked under its own lock, with the map's
            // released (lock order).
            let evicted = idle.iter().find(|room| {
                let mut state = room.lock();
                let evictable = state.is_empty() && !state.removed;
                if evictable {
                    state.removed = true;
                }
                evictable
            });
            match evicted {
                Some(room) => self.unlist(room),
                None => return Err(Unavailable::TooManyRooms),
            }
        }
    }

    /// After a message: the room is the most recently active, and history may be
    /// over its budget.
    fn published(&self, room: &Room, published: Published) {
        if !published.repeated {
            let tick = self.activity.fetch_add(1, Ordering::Relaxed);
            room.last_active.store(tick, Ordering::Relaxed);
            self.trim_history();
        }
    }

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
            let forgotten = {
                let mut state = room.lock();
                state.drop_oldest_while(|| self.history_bytes.load(Ordering::Relaxed) > target);
                state.is_forgettable()
            };
            // Kept only for its history, which is gone now.
            if forgotten {
                self.remove_if_empty(&room);
            }
        }
    }

    /// Marks a room with neither members nor history removed (under its own lock, so
    /// no join can enter it after), then takes it out of the map. A room nobody is in
    /// keeps its history (for the server API, and members coming back) until the
    /// history budget or `--max-rooms` needs the space.
    fn remove_if_empty(&self, room: &Arc<Room>) {
        {
            let mut state = room.lock();
            if !state.is_forgettable() || state.removed {
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
    /// Leave without the presence grace ([`Self::leave_at_once`]).
    at_once: bool,
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
        let timestamp = crate::hub::engine::now_rfc3339();
        let stamped = Instant::now();
        let mut state = self.room.lock();
        let outcome = state.publish(self.member_id, content, reference, timestamp);
        let followups = state.take_followups();
        drop(state);
        if matches!(
            outcome,
            Ok((
                Published {
                    repeated: false,
                    ..
                },
                _
            ))
        ) {
            self.shared.settings.metrics.latency(stamped.elapsed());
        }
        schedule(&self.shared, &self.room, followups);
        let (published, emptied) = outcome?;
        self.shared.published(&self.room, published);
        if emptied {
            self.shared.remove_if_empty(&self.room);
        }
        Ok(published)
    }

    /// When this connection goes, its user's leave (if it was the last) is announced
    /// at once, without the presence grace: the user was removed.
    pub fn leave_at_once(&mut self) {
        self.at_once = true;
    }

    /// Tells the room this member's user is typing (a frame for every member, never
    /// stored).
    pub fn typing(&self) {
        let followups = {
            let mut state = self.room.lock();
            state.typing(self.member_id);
            state.take_followups()
        };
        schedule(&self.shared, &self.room, followups);
    }
}

impl Drop for MemoryMembership {
    fn drop(&mut self) {
        let (emptied, followups) = {
            let mut state = self.room.lock();
            (
                state.remove(self.member_id, self.at_once),
                state.take_followups(),
            )
        };
        schedule(&self.shared, &self.room, followups);
        if emptied {
            self.shared.remove_if_empty(&self.room);
        }
    }
}

/// Runs the timers a room asked for under its lock: each leave is announced when its
/// grace is over unless the user is back by then, and gathered announcements go out
/// once per window while a burst lasts. The timers hold the hub weakly: a hub that
/// is gone (a server shutting down) announces nothing, so a restart never tells
/// anyone that everyone left.
fn schedule(shared: &Arc<Shared>, room: &Arc<Room>, followups: Followups) {
    let grace = shared.settings.presence_grace;
    for (user_id, token) in followups.leaves {
        after(shared, room, grace, move |state| {
            state.finish_leave(&user_id, token)
        });
    }
    if let Some(at) = followups.flush_at {
        flush_announcements_at(shared, room, at);
    }
    if let Some(at) = followups.send_at {
        let wait = at.saturating_duration_since(tokio::time::Instant::now());
        after(shared, room, wait, |state| {
            state.send_gathered(tokio::time::Instant::now())
        });
    }
}

/// Sends what the room's announcer gathered at `at`; while the burst goes on, the
/// flush asks for the next one through the followups.
fn flush_announcements_at(shared: &Arc<Shared>, room: &Arc<Room>, at: Instant) {
    let wait = at.saturating_duration_since(Instant::now());
    after(shared, room, wait, |state| {
        state.flush_announcements(Instant::now())
    });
}

/// Runs `then` on the room's state after `wait`, unless the hub is gone by then;
/// schedules what it leads to and removes the room if it is left empty.
fn after(
    shared: &Arc<Shared>,
    room: &Arc<Room>,
    wait: Duration,
    then: impl FnOnce(&mut RoomState) + Send + 'static,
) {
    let hub = Arc::downgrade(shared);
    let room = room.clone();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        let Some(shared) = hub.upgrade() else {
            return;
        };
        let (emptied, followups) = {
            let mut state = room.lock();
            then(&mut state);
            (state.is_empty(), state.take_followups())
        };
        schedule(&shared, &room, followups);
        if emptied {
            shared.remove_if_empty(&room);
        }
    });
}

/// Timers a room's state asked for under its lock, started once the lock is released.
#[derive(Default)]
struct Followups {
    /// Leaves whose grace began: (user id, leave token).
    leaves: Vec<(Arc<str>, u64)>,
    /// Gathered announcements are to go out at this instant.
    flush_at: Option<Instant>,
    /// The busy room's gathered batch is due at this instant (the runtime's clock,
    /// which tests can pause).
    send_at: Option<tokio::time::Instant>,
}

/// Who a message is from.
struct Author {
    user_id: Arc<str>,
    name: String,
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
            state: Mutex::new(RoomState::new(settings, history_bytes)),
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
    presence: HashMap<Arc<str>, Presence>,
    /// The same users in the order a welcome lists them.
    roll: Roll,
    /// Recent messages' refs, so a resend gets the original id.
    refs: RecentRefs,
    /// Emptied and being taken out of the rooms map: joins make a new room instead.
    removed: bool,
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
    fn new(settings: &HubSettings, history_bytes: Arc<AtomicUsize>) -> Self {
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
    fn is_empty(&self) -> bool {
        self.seats.is_empty() && self.presence.is_empty()
    }

    /// Empty, and keeping no history either: nothing is lost by removing the room.
    fn is_forgettable(&self) -> bool {
        self.is_empty() && self.history.is_empty()
    }

    fn take_followups(&mut self) -> Followups {
        std::mem::take(&mut self.followups)
    }

    /// The grace of `user_id`'s leave with `token` is over: announces the leave unless
    /// the user came back meanwhile (or left again, with a newer token).
    fn finish_leave(&mut self, user_id: &Arc<str>, token: u64) {
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
    fn admit(
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
        let author = Author {
            name: self.presence[&user_id].name.to_string(),
            user_id: user_id.clone(),
        };
        let published = self.publish_as(&author, &user_id, content, reference, timestamp);
        Ok((published, self.is_empty()))
    }

    /// Publishes as `author`, idempotent per `reference` among `refs_of`'s refs.
    fn publish_as(
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
    fn drop_oldest_while(&mut self, over: impl Fn() -> bool) {
        while !self.history.is_empty() && over() {
            self.pop_oldest();
        }
    }

    /// Removes a member; announces the leave when it was the user's last connection.
    /// Returns whether the room is now empty. Removing an absent member is a no-op.
    fn remove(&mut self, member_id: MemberId, at_once: bool) -> bool {
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
    fn unlist(&mut self, user_id: &Arc<str>) -> Option<Arc<str>> {
        let gone = self.presence.remove(user_id)?;
        self.roll.remove(user_id, &gone.name);
        Some(gone.name)
    }

    /// Passes on that `member_id`'s user is typing, if it is still here.
    fn typing(&mut self, member_id: MemberId) {
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
    fn flush_announcements(&mut self, now: Instant) {
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
    fn send_gathered(&mut self, now: tokio::time::Instant) {
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
