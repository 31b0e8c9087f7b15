//! The Redis engine: any number of servers share rooms.
//!
//! Redis holds what must be shared; each server keeps only its own members' seats
//! and queues. Per room `R` (all keys under the `chorus:` prefix):
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `room:R:seq` | string | last message id (`INCR`; a new room starts from the clock in µs) |
//! | `room:R:first` | string | the room's first id, to tell whether a `since` is recoverable |
//! | `room:R:log` | stream | message frames, entry id `<id>-0`, `MAXLEN ~ history-size` |
//! | `room:R` | Pub/Sub | `"<id> <frame>"` (`0` for join/leave), fanned out to every server |
//! | `room:R:users` / `:names` | hashes | user id → connections on all servers / display name |
//! | `room:R:nodes` | hash | `"<node>\|<user id>"` → that server's connections |
//! | `rooms` | set | rooms with members |
//! | `node:N` / `node:N:rooms` / `nodes` | string with TTL / set / set | server liveness, for reaping |
//!
//! `seq`, `first` and `log` expire after `--redis-retention` without a message.
//!
//! Every change that must be ordered is one Lua script: a message's id, its stream
//! entry and its `PUBLISH` happen together, so Pub/Sub order is id order on every
//! server. A server subscribes to a room's channel while it has members there (one
//! subscription per room per server). A joining member's seat is held while its
//! backlog is read from the stream; frames arriving meanwhile are kept and the ones
//! the backlog already had are dropped, so nothing is lost or repeated.
//!
//! Faults: if Redis is unreachable a send fails with `unavailable` and joins are
//! refused (1013); the subscriber reconnects with backoff, resubscribes, fills each
//! room's gap from its stream, and writes this server's presence back. A server that
//! dies without leaving stops refreshing its liveness key; the next server to notice
//! removes its members from presence and announces their leave.
//!
//! Here: joining, publishing, leaving, and recovery reads. `scripts`: the Lua.
//! `subscriber`: the Pub/Sub task and the liveness loop.

mod scripts;
mod subscriber;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use app::protocol::{ChatMessage, JOIN_HISTORY, ServerFrame};
use rand::Rng;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::StreamRangeReply;
use redis::{AsyncCommands, Script, ScriptInvocation};
use tokio::sync::{OnceCell, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use scripts::Scripts;
use subscriber::{Subscription, liveness, subscriber};

use super::recovery::{self, RoomIds, Start};
use super::seats::{FrameId, MemberId, Seats};
use super::{FrameBytes, HubSettings, Participant, PublishError, RoomSummary, Unavailable, lock};

const PREFIX: &str = "chorus:";
/// How long a Redis command may take before the caller is told `unavailable`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Joins in flight to Redis at once; more wait their turn.
const CONCURRENT_JOINS: usize = 32;
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// How to reach Redis, and how fast dead servers are noticed.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub url: String,
    /// A server that has not refreshed its liveness key for this long is dead and
    /// its members leave presence.
    pub node_ttl: Duration,
    /// A room's history and id sequence are dropped after this long without a message.
    pub retention: Duration,
}

/// Redis could not be used at start.
#[derive(Debug, thiserror::Error)]
#[error("cannot use Redis at {url}: {source}")]
pub struct RedisStartError {
    /// The URL without its password.
    url: String,
    #[source]
    source: redis::RedisError,
}

/// The rooms of one server in a Redis-backed group.
pub struct RedisHub {
    shared: Arc<Shared>,
}

struct Shared {
    settings: HubSettings,
    node: String,
    node_ttl: Duration,
    retention: Duration,
    client: redis::Client,
    redis: ConnectionManager,
    rooms: Mutex<HashMap<Arc<str>, Arc<Room>>>,
    subscriptions: mpsc::UnboundedSender<Subscription>,
    next_member_id: AtomicU64,
    /// Joins talking to Redis at once.
    joins: Semaphore,
    scripts: Scripts,
    stop: CancellationToken,
}

struct Room {
    name: Arc<str>,
    keys: RoomKeys,
    state: Mutex<RoomState>,
    /// Set once this server is subscribed to the room's channel.
    subscribed: OnceCell<()>,
}

#[derive(Default)]
struct RoomState {
    seats: Seats,
    /// The newest message id queued to this server's members: Pub/Sub repeats and
    /// gap fills below it are dropped.
    last_delivered: u64,
    /// The room's last id when its first member here read the backlog: messages up
    /// to it reached every member here through backlogs, so an outage's gap starts
    /// no earlier.
    anchor: u64,
    /// This server's connections per user, to write presence back after an outage.
    users: HashMap<Arc<str>, (Arc<str>, usize)>,
}

struct RoomKeys {
    seq: String,
    first: String,
    log: String,
    channel: String,
    users: String,
    names: String,
    nodes: String,
}

impl RoomKeys {
    fn new(room: &str) -> Self {
        let base = format!("{PREFIX}room:{room}");
        RoomKeys {
            seq: format!("{base}:seq"),
            first: format!("{base}:first"),
            log: format!("{base}:log"),
            users: format!("{base}:users"),
            names: format!("{base}:names"),
            nodes: format!("{base}:nodes"),
            channel: base,
        }
    }
}

/// What [`RedisHub::join`] hands back; see [`super::Joined`].
pub struct RedisJoined {
    pub membership: RedisMembership,
    pub welcome: FrameBytes,
    pub backlog: Vec<FrameBytes>,
    pub queue: mpsc::Receiver<FrameBytes>,
}

impl RedisHub {
    /// Connects to Redis; fails if it cannot be reached now.
    pub async fn connect(
        settings: HubSettings,
        options: RedisOptions,
    ) -> Result<Self, RedisStartError> {
        let start_error = |source| RedisStartError {
            url: redact(&options.url),
            source,
        };
        let client = redis::Client::open(options.url.as_str()).map_err(start_error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(RECONNECT_MAX);
        let mut redis = tokio::time::timeout(
            COMMAND_TIMEOUT,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| start_error(timed_out()))?
        .map_err(start_error)?;
        let _: () = redis::cmd("PING")
            .query_async(&mut redis)
            .await
            .map_err(start_error)?;

        let node = format!("{:016x}", rand::rng().random::<u64>());
        let (subscriptions, requests) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            settings,
            node,
            node_ttl: options.node_ttl,
            retention: options.retention,
            client,
            redis,
            rooms: Mutex::new(HashMap::new()),
            subscriptions,
            next_member_id: AtomicU64::new(1),
            joins: Semaphore::new(CONCURRENT_JOINS),
            scripts: Scripts::new(),
            stop: CancellationToken::new(),
        });
        shared.heartbeat().await.map_err(start_error)?;
        tracing::info!(node = shared.node, url = %redact(&options.url), "sharing rooms through Redis");
        tokio::spawn(subscriber(Arc::downgrade(&shared), requests));
        tokio::spawn(liveness(Arc::downgrade(&shared)));
        Ok(RedisHub { shared })
    }

    pub async fn join(
        &self,
        room_name: &str,
        who: Participant,
        since: Option<u64>,
    ) -> Result<RedisJoined, Unavailable> {
        let shared = &self.shared;
        let (sender, queue) = mpsc::channel(shared.settings.queue_capacity);
        let member_id = MemberId(shared.next_member_id.fetch_add(1, Ordering::Relaxed));
        let user_id: Arc<str> = Arc::from(who.id.as_str());
        let name: Arc<str> = Arc::from(who.name.as_str());

        let room = {
            let mut rooms = lock(&shared.rooms);
            let room = rooms
                .entry(Arc::from(room_name))
                .or_insert_with_key(|name| Arc::new(Room::new(name.clone())))
                .clone();
            let mut state = lock(&room.state);
            state.seats.insert(member_id, user_id.clone(), sender, true);
            state
                .users
                .entry(user_id.clone())
                .or_insert((name.clone(), 0))
                .1 += 1;
            drop(state);
            room
        };
        // From here on, dropping the membership undoes the seat (and presence).
        let mut membership = RedisMembership {
            shared: shared.clone(),
            room: room.clone(),
            member_id,
            user_id,
            name,
            present: false,
        };
        room.subscribed
            .get_or_try_init(|| shared.subscribe(room.name.clone()))
            .await?;

        // A join storm (say, every client of a restarted server at once) waits here
        // rather than queueing thousands of scripts that would all time out.
        let _turn = shared
            .joins
            .acquire()
            .await
            .map_err(|_| Unavailable("the server is shutting down".into()))?;
        let joined = ServerFrame::joined(&who.name).to_json();
        // If the script's outcome is unknown (a timeout), leaving undoes whatever it did.
        membership.present = true;
        let mut users: Vec<String> = shared
            .presence_script(&shared.scripts.join, &room)
            .arg(&who.id)
            .arg(&who.name)
            .arg(joined)
            .invoke_async(&mut shared.redis.clone())
            .await
            .map_err(unavailable)?;
        users.sort();

        let (backlog, recovered, last_id) = shared.backlog(&room.keys, since).await?;
        let covered_through = backlog.last().map(|(id, _)| *id);
        let released = {
            let mut state = lock(&room.state);
            if state.anchor == 0 {
                state.anchor = last_id;
            }
            state.seats.release(member_id, covered_through)
        };
        if released.is_err() {
            // Overflowed while the backlog was read; the empty queue reports 4008.
            tracing::info!(room = room_name, "evicted a member before it went live");
        }
        let welcome = ServerFrame::Welcome {
            room: room_name.to_owned(),
            user: who.name,
            users,
            recovered,
        };
        Ok(RedisJoined {
            membership,
            welcome: welcome.to_json().into(),
            backlog: backlog.into_iter().map(|(_, frame)| frame).collect(),
            queue,
        })
    }

    /// Rooms with members on any server, sorted by name.
    pub async fn rooms(&self) -> Result<Vec<RoomSummary>, Unavailable> {
        let mut redis = self.shared.redis.clone();
        let mut names: Vec<String> = redis
            .smembers(format!("{PREFIX}rooms"))
            .await
            .map_err(unavailable)?;
        if names.is_empty() {
            // Redis answers an empty pipeline with nothing at all, not an empty list.
            return Ok(Vec::new());
        }
        names.sort();
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.hvals(RoomKeys::new(name).users);
        }
        let counts: Vec<Vec<usize>> = pipe.query_async(&mut redis).await.map_err(unavailable)?;
        Ok(names
            .into_iter()
            .zip(counts)
            .filter(|(_, users)| !users.is_empty())
            .map(|(name, users)| RoomSummary {
                name,
                members: users.len(),
                connections: users.iter().sum(),
            })
            .collect())
    }

    /// Leaves presence now instead of waiting to be reaped: for a graceful shutdown,
    /// after every socket has closed.
    pub async fn close(&self) {
        let shared = &self.shared;
        shared.stop.cancel();
        let mut redis = shared.redis.clone();
        let _: Result<(), _> = redis.del(shared.node_key()).await;
        let reaped: Result<usize, _> = shared
            .scripts
            .reap
            .key(format!("{PREFIX}nodes"))
            .arg(&shared.node)
            .arg(PREFIX)
            .invoke_async(&mut redis)
            .await;
        if let Err(err) = reaped {
            tracing::warn!(error = %err, "could not leave presence; other servers will reap it");
        }
    }
}

impl Room {
    fn new(name: Arc<str>) -> Self {
        Room {
            keys: RoomKeys::new(&name),
            name,
            state: Mutex::new(RoomState::default()),
            subscribed: OnceCell::new(),
        }
    }
}

impl Shared {
    fn node_key(&self) -> String {
        format!("{PREFIX}node:{}", self.node)
    }

    fn node_rooms_key(&self) -> String {
        format!("{PREFIX}node:{}:rooms", self.node)
    }

    /// A presence script (join, leave, restore) with what they all take first:
    /// KEYS users, names, nodes, rooms, node rooms, channel; ARGV room, node.
    fn presence_script<'a>(&self, script: &'a Script, room: &Room) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&room.keys.users)
            .key(&room.keys.names)
            .key(&room.keys.nodes)
            .key(format!("{PREFIX}rooms"))
            .key(self.node_rooms_key())
            .key(&room.keys.channel)
            .arg(&*room.name)
            .arg(&self.node);
        invocation
    }

    async fn subscribe(&self, room: Arc<str>) -> Result<(), Unavailable> {
        let (done, confirmed) = oneshot::channel();
        self.subscriptions
            .send(Subscription::Subscribe(room, done))
            .map_err(|_| Unavailable("the subscriber has stopped".into()))?;
        confirmed
            .await
            .map_err(|_| Unavailable("the subscriber has stopped".into()))?
    }

    /// Marks this server alive and known, so others can reap it if it dies.
    async fn heartbeat(&self) -> redis::RedisResult<()> {
        let ttl = self.node_ttl.as_millis().max(1) as u64;
        redis::pipe()
            .cmd("SET")
            .arg(self.node_key())
            .arg(1)
            .arg("PX")
            .arg(ttl)
            .ignore()
            .sadd(format!("{PREFIX}nodes"), &self.node)
            .ignore()
            .query_async(&mut self.redis.clone())
            .await
    }

    /// Removes the presence of servers whose liveness key has expired.
    async fn reap_dead_nodes(&self) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let nodes: Vec<String> = redis.smembers(format!("{PREFIX}nodes")).await?;
        for node in nodes.iter().filter(|node| **node != self.node) {
            let rooms: usize = self
                .scripts
                .reap
                .key(format!("{PREFIX}nodes"))
                .arg(node)
                .arg(PREFIX)
                .invoke_async(&mut redis)
                .await?;
            if rooms > 0 {
                tracing::info!(node, rooms, "reaped the members of a server that stopped");
            }
        }
        Ok(())
    }

    /// The frames (with ids) a joining member gets before live traffic, whether they
    /// cover what it asked for, and the room's last id at the time.
    async fn backlog(
        &self,
        keys: &RoomKeys,
        since: Option<u64>,
    ) -> Result<(Vec<(u64, FrameBytes)>, bool, u64), Unavailable> {
        let mut redis = self.redis.clone();
        let (first, seq, oldest): (Option<u64>, Option<u64>, StreamRangeReply) = redis::pipe()
            .get(&keys.first)
            .get(&keys.seq)
            .cmd("XRANGE")
            .arg(&keys.log)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut redis)
            .await
            .map_err(unavailable)?;
        // A room without messages yet starts at the clock, as its first id will.
        let now = clock_micros();
        let plan = recovery::plan(
            since,
            RoomIds {
                first_id: first.unwrap_or(now),
                next_id: seq.map_or(now, |seq| seq + 1),
                oldest_retained: oldest.ids.first().and_then(|entry| entry_id(&entry.id)),
            },
        );
        let entries: StreamRangeReply = match plan.start {
            Start::Recent => {
                let mut newest: StreamRangeReply = redis
                    .xrevrange_count(&keys.log, "+", "-", JOIN_HISTORY)
                    .await
                    .map_err(unavailable)?;
                newest.ids.reverse();
                newest
            }
            Start::After(0) => redis.xrange_all(&keys.log).await.map_err(unavailable)?,
            Start::After(seen) => redis
                .xrange(&keys.log, format!("({seen}-0"), "+")
                .await
                .map_err(unavailable)?,
        };
        Ok((stored_frames(entries), plan.recovered, seq.unwrap_or(0)))
    }

    /// Queues a frame from the room's channel for this server's members.
    fn deliver(&self, channel: &str, payload: &[u8]) {
        let Some(room_name) = channel
            .strip_prefix(PREFIX)
            .and_then(|c| c.strip_prefix("room:"))
        else {
            return;
        };
        let Some((id, frame)) = parse_payload(payload) else {
            tracing::warn!(channel, "ignoring a malformed Pub/Sub message");
            return;
        };
        let Some(room) = lock(&self.rooms).get(room_name).cloned() else {
            return;
        };
        room.deliver(id, &frame);
    }

    /// After an outage: messages stored while this server was cut off, in order.
    async fn fill_gap(&self, room: &Room) -> redis::RedisResult<()> {
        let after = {
            let state = lock(&room.state);
            state.last_delivered.max(state.anchor)
        };
        // Nothing delivered and the room was empty at the first join: all of it is new.
        let start = match after {
            0 => "-".to_owned(),
            after => format!("({after}-0"),
        };
        let entries: StreamRangeReply = self
            .redis
            .clone()
            .xrange(&room.keys.log, start, "+")
            .await?;
        for (id, frame) in stored_frames(entries) {
            room.deliver(Some(id), &frame);
        }
        Ok(())
    }

    /// After an outage: this server's connections, written back into presence
    /// (Redis may have restarted empty, or reaped us while we were cut off).
    async fn restore_presence(&self, room: &Room) -> redis::RedisResult<()> {
        let users: Vec<(Arc<str>, Arc<str>, usize)> = lock(&room.state)
            .users
            .iter()
            .map(|(id, (name, count))| (id.clone(), name.clone(), *count))
            .collect();
        let mut invocation = self.presence_script(&self.scripts.restore, room);
        for (id, name, count) in users {
            invocation
                .arg(&*id)
                .arg(count)
                .arg(ServerFrame::joined(&name).to_json())
                .arg(ServerFrame::left(&name).to_json());
        }
        invocation.invoke_async(&mut self.redis.clone()).await
    }
}

impl Room {
    fn deliver(&self, id: FrameId, frame: &FrameBytes) {
        let mut state = lock(&self.state);
        if let Some(id) = id {
            if id <= state.last_delivered {
                return;
            }
            state.last_delivered = id;
        }
        // Evicted members' connections close with 4008 and leave presence as they drop.
        state.seats.deliver(id, frame);
    }
}

/// A seat in a room; leaving the room is dropping it.
pub struct RedisMembership {
    shared: Arc<Shared>,
    room: Arc<Room>,
    member_id: MemberId,
    user_id: Arc<str>,
    name: Arc<str>,
    /// Whether Redis presence counts this connection.
    present: bool,
}

impl RedisMembership {
    pub fn room(&self) -> &str {
        &self.room.name
    }

    /// Stores `content` as the room's next message; every server's members get it
    /// through the room's channel, this one's included.
    pub async fn publish(&self, content: String) -> Result<u64, PublishError> {
        if lock(&self.room.state)
            .seats
            .user_of(self.member_id)
            .is_none()
        {
            return Err(PublishError::NotMember);
        }
        let (prefix, suffix) = message_template(&self.name, content);
        let shared = &self.shared;
        let id: u64 = shared
            .scripts
            .publish
            .key(&self.room.keys.seq)
            .key(&self.room.keys.first)
            .key(&self.room.keys.log)
            .key(&self.room.keys.channel)
            .arg(shared.settings.history_size)
            .arg(prefix)
            .arg(suffix)
            .arg(shared.retention.as_millis().max(1) as u64)
            .invoke_async(&mut shared.redis.clone())
            .await
            .map_err(|err| {
                tracing::warn!(room = %self.room.name, error = %err, "cannot publish to Redis");
                PublishError::Unavailable
            })?;
        Ok(id)
    }
}

impl Drop for RedisMembership {
    fn drop(&mut self) {
        let shared = &self.shared;
        let local_room_empty = {
            let mut rooms = lock(&shared.rooms);
            let mut state = lock(&self.room.state);
            state.seats.remove(self.member_id);
            if let Some((_, count)) = state.users.get_mut(&self.user_id) {
                *count -= 1;
                if *count == 0 {
                    state.users.remove(&self.user_id);
                }
            }
            let empty = state.seats.is_empty();
            drop(state);
            let listed = rooms
                .get(&self.room.name)
                .is_some_and(|listed| Arc::ptr_eq(listed, &self.room));
            if empty && listed {
                rooms.remove(&self.room.name);
                let _ = shared
                    .subscriptions
                    .send(Subscription::Unsubscribe(self.room.name.clone()));
            }
            empty
        };
        if !self.present {
            return;
        }
        let shared = shared.clone();
        let room = self.room.clone();
        let user_id = self.user_id.clone();
        let left = ServerFrame::left(&self.name).to_json();
        tokio::spawn(async move {
            let outcome: redis::RedisResult<i64> = shared
                .presence_script(&shared.scripts.leave, &room)
                .arg(&*user_id)
                .arg(left)
                .arg(if local_room_empty { 1 } else { 0 })
                .invoke_async(&mut shared.redis.clone())
                .await;
            if let Err(err) = outcome {
                // Written back from the local seats when Redis returns.
                tracing::warn!(room = %room.name, error = %err, "cannot record a leave in Redis");
            }
        });
    }
}

/// A message frame split around its id, so the id can be chosen inside Redis:
/// `prefix + id + suffix` is the frame's JSON.
fn message_template(user: &str, content: String) -> (String, String) {
    let placeholder = ServerFrame::Message(ChatMessage {
        id: 0,
        user: user.to_owned(),
        content,
        timestamp: super::now_rfc3339(),
    })
    .to_json();
    // `"id":0` cannot occur unescaped inside a string, and `id` is serialized before
    // any user-provided text.
    let at = placeholder
        .find("\"id\":0")
        .expect("a message frame has an id")
        + "\"id\":".len();
    (
        placeholder[..at].to_owned(),
        placeholder[at + 1..].to_owned(),
    )
}

/// `"<id> <frame>"` → (`Some(id)` for messages, `None` for `0`, frame).
fn parse_payload(payload: &[u8]) -> Option<(FrameId, FrameBytes)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (id, frame) = text.split_once(' ')?;
    let id: u64 = id.parse().ok()?;
    Some(((id > 0).then_some(id), FrameBytes::from(frame.to_owned())))
}

fn stored_frames(entries: StreamRangeReply) -> Vec<(u64, FrameBytes)> {
    entries
        .ids
        .into_iter()
        .filter_map(|entry| {
            let id = entry_id(&entry.id)?;
            let frame: String = entry.get("f")?;
            Some((id, FrameBytes::from(frame)))
        })
        .collect()
}

/// `"<id>-0"` → id.
fn entry_id(entry: &str) -> Option<u64> {
    entry.split_once('-')?.0.parse().ok()
}

fn clock_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_micros() as u64)
}

fn unavailable(err: redis::RedisError) -> Unavailable {
    Unavailable(err.to_string())
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer within 2 s",
    ))
}

/// The URL without a password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_template_rebuilds_the_frame_around_any_id() {
        let (prefix, suffix) = message_template("a\"id\":0,", "x \"id\":0, y".into());
        let frame = format!("{prefix}1764293000000001{suffix}");
        let parsed: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(parsed["id"], 1764293000000001_u64);
        assert_eq!(parsed["user"], "a\"id\":0,");
        assert_eq!(parsed["content"], "x \"id\":0, y");
        assert_eq!(parsed["type"], "message");
    }

    #[test]
    fn payloads_carry_an_id_or_zero() {
        let (id, frame) = parse_payload(b"42 {\"type\":\"message\"}").unwrap();
        assert_eq!(id, Some(42));
        assert_eq!(frame.as_str(), "{\"type\":\"message\"}");
        assert_eq!(parse_payload(b"0 {}").unwrap().0, None);
        assert!(parse_payload(b"nonsense").is_none());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(redact("redis://user:pw@host"), "redis://user:***@host");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
