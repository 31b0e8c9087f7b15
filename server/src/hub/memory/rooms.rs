//! What every room of the memory engine shares: the rooms map, the history budget,
//! member ids, bans and the activity clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::bans::Bans;
use super::room::Room;
use crate::hub::engine::{HubSettings, Published, Unavailable};
use crate::sync::lock;

pub(super) struct Rooms {
    pub(super) rooms: Mutex<HashMap<Arc<str>, Arc<Room>>>,
    pub(super) settings: HubSettings,
    pub(super) next_member_id: AtomicU64,
    /// Users whose joins are refused for now (server API `disconnect` with a ban).
    pub(super) bans: Bans,
    /// Bytes of retained history in every room, against `settings.history_memory`.
    pub(super) history_bytes: Arc<AtomicUsize>,
    /// Ticks at every publish: a room's last tick says how recently it was active.
    pub(super) activity: AtomicU64,
    /// Held by the one publisher trimming history back under the budget.
    pub(super) trimming: Mutex<()>,
}

impl Rooms {
    /// The room named `name`, created if needed. At `--max-rooms`, the least recently
    /// active room nobody is in (kept only for its history) makes way; if every room
    /// has members, there is no room for another.
    pub(super) fn room(&self, name: &str) -> Result<Arc<Room>, Unavailable> {
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
    pub(super) fn published(&self, room: &Room, published: Published) {
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
    pub(super) fn remove_if_empty(&self, room: &Arc<Room>) {
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
    pub(super) fn unlist(&self, room: &Arc<Room>) {
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
