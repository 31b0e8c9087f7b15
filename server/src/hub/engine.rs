//! What the facade ([`super::Hub`]) and both engines have in common: the settings,
//! who joins, what a join and a publish give back, why a request is refused, and the
//! server API's records.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chorus_protocol::{WelcomeHead, users_frame};

use crate::hub::fanout::FrameBytes;
use crate::hub::fanout::queue::MemberQueue;
use crate::hub::presence::user_list::UserList;
use crate::observe::metrics::Metrics;
#[cfg(test)]
use crate::sync::lock;

/// Tuning for the hub.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Messages kept per room for history and `since` recovery.
    pub history_size: usize,
    /// Bytes of frames a member's outbound queue holds before the member is evicted
    /// as too slow (`--send-queue-memory`).
    pub queue_bytes: usize,
    /// Rooms that may exist at once (with Redis: across every server); a join that
    /// would create one more is refused, joins to existing rooms are not.
    pub max_rooms: usize,
    /// Bytes of retained history all rooms together may hold (in-memory engine; with
    /// Redis, Redis's `maxmemory` bounds it); beyond it the least recently active
    /// rooms lose their oldest messages first.
    pub history_memory: usize,
    /// How long a user whose last connection went away is still listed before its
    /// leave is announced: a reconnect within it announces nothing. Zero: at once.
    pub presence_grace: Duration,
    /// Joins and leaves announced one by one per window before they are gathered.
    pub presence_burst: u32,
    /// How often at most a busy room (hundreds of frames a second) sends to its
    /// members: its frames wait for each other and go out together, framed once
    /// (see `pacing`). Zero: every frame at once.
    pub write_delay: Duration,
    /// Where deliveries, evictions, latency and Redis trouble are counted.
    pub metrics: Arc<Metrics>,
}

/// Who joins a room: `id` tells connections apart for presence, `name` is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Tells users apart: the token's `sub`.
    pub id: String,
    /// The display name.
    pub name: String,
}

/// What the hub knows for a member's `welcome` frame; the connection adds its own
/// part (the heartbeat timing) in [`Welcome::into_frames`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The room's name.
    pub room: String,
    /// The member's user id.
    pub user_id: String,
    /// The member's display name.
    pub user: String,
    /// Who was present before this connection, sorted by name.
    pub users: UserList,
    /// `false` when a `since` could not bring back every missed message.
    pub recovered: bool,
    /// The newest message id in the room when the backlog was read (the id just
    /// before its first message when it has none yet).
    pub last_id: u64,
}

impl Welcome {
    /// The `welcome` frame and, for a room of more than [`USERS_PER_FRAME`](crate::hub::USERS_PER_FRAME) users,
    /// the `users` frames that list the rest, in order. The member list is spliced in
    /// as it was kept (already serialized) rather than parsed and written again.
    pub fn into_frames(
        self,
        heartbeat_interval: Duration,
        heartbeat_timeout: Duration,
    ) -> Vec<FrameBytes> {
        let head = WelcomeHead {
            room: &self.room,
            user_id: &self.user_id,
            user: &self.user,
            recovered: self.recovered,
            last_id: self.last_id,
            heartbeat_interval_ms: heartbeat_interval.as_millis() as u64,
            heartbeat_timeout_ms: heartbeat_timeout.as_millis() as u64,
        };
        let mut shares = self.users.shares();
        let first = shares.next().unwrap_or_default();
        let mut frames = vec![FrameBytes::from(head.frame(first))];
        frames.extend(shares.map(|share| FrameBytes::from(users_frame(share))));
        frames
    }
}

/// What a new member receives; send `welcome`, then `backlog`, then drain `queue`.
/// Engines hand it back with their own membership type; [`super::Hub::join`] with
/// [`super::Membership`].
pub struct Joined<M> {
    pub membership: M,
    pub welcome: Welcome,
    pub backlog: Vec<FrameBytes>,
    /// Live frames. Ends (`None`) when the hub evicted this member for being too slow.
    pub queue: MemberQueue,
}

impl<M> Joined<M> {
    pub(super) fn map_membership<N>(self, wrap: impl FnOnce(M) -> N) -> Joined<N> {
        Joined {
            membership: wrap(self.membership),
            welcome: self.welcome,
            backlog: self.backlog,
            queue: self.queue,
        }
    }
}

/// A message stored by [`Membership::publish_once`](super::Membership::publish_once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The message's id.
    pub id: u64,
    /// The same user's message with the same `ref` was already stored (with this
    /// id); nothing was published this time.
    pub repeated: bool,
}

/// Why a member's message was not published.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    /// The member was evicted (too slow) and its connection is closing.
    #[error("not a member of the room any more")]
    NotMember,
    /// The message could not be stored (the broker is unreachable); it was not sent.
    #[error("messages cannot be stored right now")]
    Unavailable,
}

/// The engine cannot serve the request right now.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// Redis refused the request or did not answer in time.
    #[error("rooms are unavailable right now")]
    Redis(#[from] redis::RedisError),
    /// The Pub/Sub connection is down (being re-established) or its task has ended.
    #[error("rooms are unavailable right now: the Redis subscription is down")]
    NotSubscribed,
    /// The server is stopping: no new joins.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Creating the room would exceed `--max-rooms`.
    #[error("there are as many rooms as the server may hold")]
    TooManyRooms,
    /// The user is banned for now (server API `disconnect` with `ban_seconds`).
    #[error("the user is banned for now")]
    Banned,
}

/// The longest ban: longer ones are cut to it.
pub const MAX_BAN: Duration = Duration::from_secs(10 * 365 * 86_400);

/// A page of a room's history, for the server API: each message exactly as members
/// receive it, oldest first.
#[derive(Debug, Default)]
pub struct HistoryPage {
    /// Oldest first.
    pub messages: Vec<FrameBytes>,
    /// Older messages are retained before the first of these.
    pub has_more: bool,
}

/// A user listed in a room, for the server API: its connections on every server (0
/// while its leave waits out the presence grace).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberConnections {
    /// The token's `sub`.
    pub user_id: String,
    /// The display name.
    pub name: String,
    /// Open sockets on every server.
    pub connections: usize,
}

/// Called with a user id and the reason when the server API removes that user (on
/// every server, with Redis): the sockets layer closes the user's sockets here.
pub type RemovalHandler = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Where removals go: set once at start ([`Hub::on_removal`](super::Hub::on_removal)).
#[derive(Clone, Default)]
pub struct Removals(Arc<OnceLock<RemovalHandler>>);

impl Removals {
    /// Sets where removals go; `false` if that was set already (it stays as it was).
    pub(super) fn set(&self, handler: RemovalHandler) -> bool {
        self.0.set(handler).is_ok()
    }

    /// Closes `user_id`'s sockets on this server, with `reason`.
    pub fn remove(&self, user_id: &str, reason: &str) {
        if let Some(handler) = self.0.get() {
            handler(user_id, reason);
        }
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

/// A room's lock held on another thread until dropped, as a long fan-out would hold
/// it: for tests of what must not wait for a busy room.
#[cfg(test)]
pub(crate) struct Busy {
    release: std::sync::mpsc::Sender<()>,
    holder: Option<std::thread::JoinHandle<()>>,
}

#[cfg(test)]
impl Busy {
    pub(crate) fn hold<R: Send + Sync + 'static, S: 'static>(
        room: Arc<R>,
        state: fn(&R) -> &std::sync::Mutex<S>,
    ) -> Busy {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (held, holding) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _state = lock(state(&room));
            held.send(()).unwrap();
            let _ = released.recv();
        });
        holding.recv().unwrap();
        Busy {
            release,
            holder: Some(holder),
        }
    }
}

#[cfg(test)]
impl Drop for Busy {
    fn drop(&mut self) {
        let _ = self.release.send(());
        if let Some(holder) = self.holder.take() {
            holder.join().unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use chorus_protocol::{Member, ServerFrame};

    use super::*;
    use crate::hub::USERS_PER_FRAME;

    /// What the connection sends a member of a large room reads back as one
    /// `welcome` and `users` frames that list everyone, in order, each once.
    #[test]
    fn a_welcome_and_its_users_frames_read_back_as_the_whole_list() {
        let mut members: Vec<Member> = (0..USERS_PER_FRAME * 2 + 3)
            .map(|n| Member {
                user_id: format!("u-{n:04}"),
                name: format!("name \"{n:04}\" \\ 🎉"),
            })
            .collect();
        let users = UserList::from_members(&mut members);
        let welcome = Welcome {
            room: "lobby".into(),
            user_id: "u-me".into(),
            user: "me".into(),
            users,
            recovered: true,
            last_id: 41,
        };
        let frames = welcome.into_frames(Duration::from_secs(30), Duration::from_secs(10));
        assert_eq!(frames.len(), 3, "a welcome and two users frames");
        let mut listed = Vec::new();
        for (at, frame) in frames.iter().enumerate() {
            match ServerFrame::from_json(frame).expect("a server frame") {
                ServerFrame::Welcome {
                    room,
                    user_id,
                    users,
                    recovered,
                    last_id,
                    heartbeat_interval_ms,
                    heartbeat_timeout_ms,
                    ..
                } if at == 0 => {
                    assert_eq!((room.as_str(), user_id.as_str()), ("lobby", "u-me"));
                    assert_eq!((recovered, last_id), (true, 41));
                    assert_eq!(
                        (heartbeat_interval_ms, heartbeat_timeout_ms),
                        (30_000, 10_000)
                    );
                    assert_eq!(users.len(), USERS_PER_FRAME);
                    listed.extend(users);
                }
                ServerFrame::Users { users } if at > 0 => listed.extend(users),
                other => panic!("frame {at}: {other:?}"),
            }
        }
        assert_eq!(listed, members, "everyone, sorted, once");
    }
}
