//! One room's state: members and their queues, presence, ids and history.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use app::protocol::{ChatMessage, JOIN_HISTORY, ServerFrame};
use tokio::sync::mpsc::{self, error::TrySendError};

use super::{FrameBytes, HubSettings, Participant, PublishError, RoomSummary, lock};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct MemberId(pub(super) u64);

pub(super) struct Room {
    name: Arc<str>,
    state: Mutex<RoomState>,
}

impl Room {
    pub(super) fn new(name: Arc<str>, settings: &HubSettings) -> Self {
        Room {
            name,
            state: Mutex::new(RoomState::new(settings.history_size)),
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
            members: state.presence.len(),
            connections: state.members.len(),
        }
    }
}

struct Seat {
    user_id: Arc<str>,
    queue: mpsc::Sender<FrameBytes>,
}

struct Presence {
    name: Arc<str>,
    connections: usize,
}

struct StoredMessage {
    id: u64,
    frame: FrameBytes,
}

pub(super) struct RoomState {
    /// The id of this room's first message. Seeded from the clock (microseconds since
    /// the Unix epoch) so ids keep increasing when a room is emptied and re-created or
    /// the server restarts: a client's `since` from before then never hides new messages.
    first_id: u64,
    next_id: u64,
    history: VecDeque<StoredMessage>,
    history_size: usize,
    members: HashMap<MemberId, Seat>,
    /// Keyed by user id: one entry per user however many tabs they have open.
    presence: BTreeMap<Arc<str>, Presence>,
}

impl RoomState {
    fn new(history_size: usize) -> Self {
        let first_id = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_micros() as u64)
            .max(1);
        RoomState {
            first_id,
            next_id: first_id,
            history: VecDeque::with_capacity(history_size.min(16)),
            history_size,
            members: HashMap::new(),
            presence: BTreeMap::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.members.is_empty()
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
        queue: mpsc::Sender<FrameBytes>,
    ) -> (FrameBytes, Vec<FrameBytes>) {
        let (backlog, recovered) = self.backlog(since);
        // Who was here before: the newcomer's own `join` (if this is its first
        // connection) follows, so `users` plus the events is always the member list.
        let users = self.user_names();
        let user_id: Arc<str> = Arc::from(who.id);
        self.members.insert(
            member_id,
            Seat {
                user_id: user_id.clone(),
                queue,
            },
        );
        let presence = self.presence.entry(user_id).or_insert_with(|| Presence {
            name: Arc::from(who.name.as_str()),
            connections: 0,
        });
        presence.connections += 1;
        let first_connection = presence.connections == 1;

        let welcome = ServerFrame::Welcome {
            room: room.to_owned(),
            user: who.name.clone(),
            users,
            recovered,
        };
        if first_connection {
            self.deliver(ServerFrame::joined(&who.name).to_json().into());
        }
        (welcome.to_json().into(), backlog)
    }

    /// Allocates the next id, stores the message and queues it for every member.
    /// Returns the id and whether the room is now empty (the sender itself may have
    /// been evicted for not reading its own queue).
    pub(super) fn publish(
        &mut self,
        member_id: MemberId,
        content: String,
        timestamp: String,
    ) -> Result<(u64, bool), PublishError> {
        let seat = self
            .members
            .get(&member_id)
            .ok_or(PublishError::NotMember)?;
        let user = self.presence[&seat.user_id].name.to_string();
        let id = self.next_id;
        self.next_id += 1;
        let frame: FrameBytes = ServerFrame::Message(ChatMessage {
            id,
            user,
            content,
            timestamp,
        })
        .to_json()
        .into();
        if self.history_size > 0 {
            if self.history.len() == self.history_size {
                self.history.pop_front();
            }
            self.history.push_back(StoredMessage {
                id,
                frame: frame.clone(),
            });
        }
        self.deliver(frame);
        Ok((id, self.is_empty()))
    }

    /// Removes a member; announces the leave when it was the user's last connection.
    /// Returns whether the room is now empty. Removing an absent member is a no-op.
    pub(super) fn remove(&mut self, member_id: MemberId) -> bool {
        if let Some(left) = self.unseat(member_id) {
            self.deliver(ServerFrame::left(&left).to_json().into());
        }
        self.is_empty()
    }

    /// Takes a member out; returns the user's name when it was their last connection.
    fn unseat(&mut self, member_id: MemberId) -> Option<Arc<str>> {
        let seat = self.members.remove(&member_id)?;
        let presence = self.presence.get_mut(&seat.user_id)?;
        presence.connections -= 1;
        if presence.connections > 0 {
            return None;
        }
        self.presence.remove(&seat.user_id).map(|gone| gone.name)
    }

    /// Pushes `frame` into every member's queue. A member whose queue is full is
    /// evicted (its sender is dropped, ending its queue), and its leave is announced
    /// the same way, which may evict further members.
    fn deliver(&mut self, frame: FrameBytes) {
        let mut pending = VecDeque::from([frame]);
        let mut lagging = Vec::new();
        while let Some(frame) = pending.pop_front() {
            for (member_id, seat) in &self.members {
                match seat.queue.try_send(frame.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        tracing::info!(
                            room_member = member_id.0,
                            "evicting a member too slow to keep up"
                        );
                        lagging.push(*member_id);
                    }
                    // The connection is gone; its membership is being dropped right now.
                    Err(TrySendError::Closed(_)) => lagging.push(*member_id),
                }
            }
            for member_id in lagging.drain(..) {
                if let Some(left) = self.unseat(member_id) {
                    pending.push_back(ServerFrame::left(&left).to_json().into());
                }
            }
        }
    }

    /// The frames a joining member gets before live traffic, and whether they cover
    /// everything it asked for.
    fn backlog(&self, since: Option<u64>) -> (Vec<FrameBytes>, bool) {
        let frames = |from: usize| -> Vec<FrameBytes> {
            self.history
                .range(from..)
                .map(|stored| stored.frame.clone())
                .collect()
        };
        let retained_from = self
            .history
            .front()
            .map_or(self.next_id, |oldest| oldest.id);
        match since {
            None => (
                frames(self.history.len().saturating_sub(JOIN_HISTORY)),
                true,
            ),
            // `since=0`: the client has seen nothing; everything this room still has.
            Some(0) => (frames(0), retained_from == self.first_id),
            Some(seen) if seen >= self.next_id => {
                // Ids the room never issued: a bogus `since`, or a clock that went
                // backwards. Say so, and start the client over from recent history.
                (
                    frames(self.history.len().saturating_sub(JOIN_HISTORY)),
                    false,
                )
            }
            Some(seen) => {
                let start = self.history.partition_point(|stored| stored.id <= seen);
                // Messages older than this room's first id were in an earlier
                // incarnation of the room and are gone with it.
                let recovered =
                    seen >= self.first_id.saturating_sub(1) && seen + 1 >= retained_from;
                (frames(start), recovered)
            }
        }
    }

    fn user_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.presence.values().map(|p| p.name.to_string()).collect();
        names.sort();
        names
    }
}

/// The current UTC time as RFC 3339 with millisecond precision, e.g. `2026-11-28T01:02:03.456Z`.
pub(super) fn now_rfc3339() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .expect("a UTC timestamp always formats")
}
