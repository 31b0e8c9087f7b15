//! One room on this server: its keys, its members' seats, what was delivered to
//! them, and who of them entered presence in Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::keys::RoomKeys;
use crate::hub::engine::HubSettings;
use crate::hub::fanout::seats::Seats;
use crate::hub::presence::announcements::Announcer;

pub(super) struct LocalRoom {
    pub(super) name: Arc<str>,
    pub(super) keys: RoomKeys,
    pub(super) state: Mutex<LocalRoomState>,
    /// Set once this server is subscribed to the room's channel.
    pub(super) subscribed: OnceCell<()>,
    /// Held (shared) by a join from entering presence in Redis until `users` counts
    /// it, and (exclusive) while presence is written back after an outage: the
    /// write-back sees a join either done or not begun, never half-way. (Listed
    /// before it entered, a user would be announced by the write-back, then find
    /// herself in her own welcome; counted after, she would be taken out.)
    pub(super) entering: tokio::sync::RwLock<()>,
}

pub(super) struct LocalRoomState {
    pub(super) seats: Seats,
    /// The newest message id queued to this server's members: Pub/Sub repeats and
    /// gap fills below it are dropped.
    pub(super) last_delivered: u64,
    /// The room's last id when its first member here read the backlog: messages up
    /// to it reached every member here through backlogs, so an outage's gap starts
    /// no earlier.
    pub(super) anchor: u64,
    /// This server's connections that entered the room's presence in Redis, per
    /// user (with the name): written back after an outage; while there are any,
    /// the heartbeat lists the room again.
    pub(super) users: HashMap<Arc<str>, (Arc<str>, usize)>,
    /// Emptied here and being taken out of the rooms map: joins make a new room.
    pub(super) removed: bool,
    /// Announces the joins and leaves that arrive by Pub/Sub to this server's
    /// members, one by one or gathered during a burst.
    pub(super) announcer: Announcer,
}

impl LocalRoom {
    pub(super) fn new(name: Arc<str>, settings: &HubSettings) -> Self {
        let state = LocalRoomState {
            seats: Seats::new(settings.write_delay, settings.queue_bytes),
            last_delivered: 0,
            anchor: 0,
            users: HashMap::new(),
            removed: false,
            announcer: Announcer::new(settings.presence_burst),
        };
        LocalRoom {
            keys: RoomKeys::new(&name),
            name,
            state: Mutex::new(state),
            subscribed: OnceCell::new(),
            entering: tokio::sync::RwLock::new(()),
        }
    }
}
