//! The in-memory engine: one server, rooms in this process.
//!
//! Each room's lock covers its ids, history, presence and members, so allocating an
//! id, storing the message and queueing it for every member is one step, and every
//! member sees the room's frames in one order.
//!
//! - `mod.rs`: [`MemoryHub`], what the hub asks of the engine;
//! - `rooms.rs`: `Rooms`, the rooms map and what spans rooms (the history budget,
//!   `--max-rooms`, member ids, bans);
//! - `room.rs`: one room's state and what happens under its lock;
//! - `membership.rs`: a member's seat; `timers.rs`: leaves after their grace and
//!   gathered announcements;
//! - `bans.rs`, `refs.rs`: bans and recent `ref`s, kept in this process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus_protocol::{RoomName, RoomSummary};

use crate::hub::engine::{
    HistoryPage, HubSettings, Joined, MemberConnections, Participant, Published, Unavailable,
};
use crate::hub::fanout::queue::member_queue;
use crate::hub::fanout::seats::MemberId;
use crate::sync::lock;
use bans::Bans;
pub use membership::MemoryMembership;
use room::{Author, Room};
use rooms::Rooms;
use timers::schedule;

mod bans;
mod membership;
mod refs;
mod room;
mod rooms;
mod timers;

/// The rooms of one server.
pub struct MemoryHub {
    shared: Arc<Rooms>,
}

impl MemoryHub {
    /// An empty hub with these settings.
    pub fn new(settings: HubSettings) -> Self {
        assert!(settings.queue_bytes > 0, "queue bound must be positive");
        MemoryHub {
            shared: Arc::new(Rooms {
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
    /// retained message after that id; without it, the last [`JOIN_HISTORY`](chorus_protocol::JOIN_HISTORY).
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

    /// What each of `names` is now: its summary, or `None` with nobody in it.
    pub fn room_summaries(&self, names: Vec<String>) -> Vec<(String, Option<RoomSummary>)> {
        let rooms = lock(&self.shared.rooms);
        names
            .into_iter()
            .map(|name| {
                let summary = rooms
                    .get(name.as_str())
                    .map(|room| room.summary())
                    .filter(|summary| summary.connections > 0);
                (name, summary)
            })
            .collect()
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

    /// Rooms held now, with members or not.
    pub fn room_count(&self) -> usize {
        lock(&self.shared.rooms).len()
    }
}
