//! Presence in Redis: who is in each room, across servers.
//!
//! A room's presence (`users`, `names`, `nodes`, `leaving`) changes only in that
//! room's scripts, one slot each. The sets that span rooms change by commands of
//! their own, in an order that a server stopping between two steps cannot break:
//!
//! - `rooms` (the room list, and the most rooms): a joining connection is admitted
//!   there before it enters the room; a room found empty is taken out after. A join
//!   and a leave on two servers can cross so that an occupied room is taken out;
//!   every server's heartbeat lists its occupied rooms again.
//! - a server's rooms (for reaping it): a room goes in before this server's first
//!   connection enters it, and out after the last one left.
//! - `leaves` (leaves waiting out the presence grace): the user goes in before its
//!   room records the leave, so a leave recorded is always finished by some server
//!   (`room_finalize.lua`); an entry whose user came back is dropped then.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{AsyncCommands, Script, ScriptInvocation};

use super::keys::{self, RoomKeys};
use super::node::Node;
use super::room::LocalRoom;
use crate::hub::engine::{Participant, Unavailable};

/// How long a taken leave may take to finish before another server takes it again.
const LEAVE_RETRY: Duration = Duration::from_secs(30);

/// Milliseconds since the epoch, by this server's clock: due times of leaves.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |now| now.as_millis() as u64)
}

/// The `leaves` member of `user`'s leave of `room`.
fn leave_entry(room: &str, user: &str) -> String {
    format!("{room}\n{user}")
}

/// One user of a server in a room, as [`Node::set_share`] writes it back.
pub(super) struct Present<'a> {
    pub(super) user_id: &'a str,
    pub(super) name: &'a str,
    pub(super) connections: usize,
}

impl Node {
    /// A room presence script with the keys they all take (one room's), and this
    /// server first among the arguments.
    fn room_script<'a>(&self, script: &'a Script, keys: &RoomKeys) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&keys.users)
            .key(&keys.names)
            .key(&keys.nodes)
            .key(&keys.channel)
            .key(&keys.leaving);
        invocation
    }

    /// When a leave starting now is due (`0`: announced at once).
    fn leave_due(&self, at_once: bool) -> u64 {
        if at_once || self.settings.presence_grace.is_zero() {
            0
        } else {
            now_ms() + self.grace_ms()
        }
    }

    /// A connection of `who` enters `room`'s presence; who was there before comes
    /// back (user id → name). Refused, before anything changes, for a banned user or
    /// a new room beyond the most rooms.
    pub(super) async fn enter(
        &self,
        room: &LocalRoom,
        who: &Participant,
    ) -> Result<std::collections::HashMap<String, String>, Unavailable> {
        let mut redis = self.redis.clone();
        let banned: bool = redis.exists(keys::ban(&who.id)).await?;
        if banned {
            return Err(Unavailable::Banned);
        }
        let admitted: redis::RedisResult<()> = self
            .scripts
            .admit
            .key(keys::rooms())
            .arg(&*room.name)
            .arg(self.settings.max_rooms)
            .invoke_async(&mut redis)
            .await;
        match admitted {
            Err(err) if err.code() == Some("TOOMANYROOMS") => {
                return Err(Unavailable::TooManyRooms);
            }
            other => other?,
        }
        let _: () = redis
            .sadd(keys::node_rooms(&self.node), &*room.name)
            .await?;
        let joined = chorus_protocol::ServerFrame::joined(&who.id, &who.name).to_json();
        let before: std::collections::HashMap<String, String> = self
            .room_script(&self.scripts.join, &room.keys)
            .arg(&self.node)
            .arg(&who.id)
            .arg(&who.name)
            .arg(joined)
            .invoke_async(&mut redis)
            .await?;
        Ok(before)
    }

    /// A connection of `user_id` leaves `room`'s presence. `last_here`: the user has
    /// no other connection on this server (only then can it be the last anywhere);
    /// `room_empty_here`: nobody is left in the room on this server.
    pub(super) async fn depart(
        &self,
        room: &LocalRoom,
        user_id: &str,
        left: String,
        last_here: bool,
        room_empty_here: bool,
        at_once: bool,
    ) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let due = self.leave_due(at_once);
        if due != 0 && last_here {
            let _: () = redis
                .zadd(keys::leaves(), leave_entry(&room.name, user_id), due)
                .await?;
        }
        let (_left_anywhere, empty): (i64, u8) = self
            .room_script(&self.scripts.leave, &room.keys)
            .arg(&self.node)
            .arg(user_id)
            .arg(left)
            .arg(due)
            .invoke_async(&mut redis)
            .await?;
        if room_empty_here {
            let _: () = redis
                .srem(keys::node_rooms(&self.node), &*room.name)
                .await?;
        }
        if empty == 1 {
            let _: () = redis.srem(keys::rooms(), &*room.name).await?;
        }
        Ok(())
    }

    /// Sets server `node`'s share of `room`'s presence to `users`: this server's,
    /// written back after an outage, or nothing for a server that stopped.
    pub(super) async fn set_share(
        &self,
        node: &str,
        room: &str,
        users: &[Present<'_>],
    ) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let keys = RoomKeys::new(room);
        let due = self.leave_due(false);
        if due != 0 {
            // Those of the node's users who may be left with no connection go into
            // `leaves` first.
            let fields: Vec<String> = redis.hkeys(&keys.nodes).await?;
            let mut pipe = redis::pipe();
            for field in &fields {
                if let Some((of, user)) = field.split_once('|')
                    && of == node
                    && !users.iter().any(|present| present.user_id == user)
                {
                    pipe.zadd(keys::leaves(), leave_entry(room, user), due)
                        .ignore();
                }
            }
            // An empty pipeline is an error ("empty command"), not a no-op: it made
            // every catch-up after an outage, graceful leave and reap of a room
            // without such users fail, over and over, with the default grace.
            if !pipe.is_empty() {
                let _: () = pipe.query_async(&mut redis).await?;
            }
        }
        if !users.is_empty() {
            let _: () = redis.sadd(keys::rooms(), room).await?;
            let _: () = redis.sadd(keys::node_rooms(node), room).await?;
        }
        let mut invocation = self.room_script(&self.scripts.share, &keys);
        invocation.arg(node).arg(due);
        for present in users {
            invocation
                .arg(present.user_id)
                .arg(present.connections)
                .arg(chorus_protocol::ServerFrame::joined(present.user_id, present.name).to_json())
                .arg(chorus_protocol::ServerFrame::left(present.user_id, present.name).to_json());
        }
        let empty: u8 = invocation.invoke_async(&mut redis).await?;
        if empty == 1 {
            let _: () = redis.srem(keys::rooms(), room).await?;
        }
        Ok(())
    }

    /// Takes server `node` (stopped, or this one leaving) out of every room's
    /// presence; returns in how many rooms it had members.
    pub(super) async fn reap(&self, node: &str) -> redis::RedisResult<usize> {
        let mut redis = self.redis.clone();
        let rooms: Vec<String> = redis.smembers(keys::node_rooms(node)).await?;
        for room in &rooms {
            self.set_share(node, room, &[]).await?;
        }
        let _: () = redis.del(keys::node_rooms(node)).await?;
        let _: () = redis.srem(keys::nodes(), node).await?;
        Ok(rooms.len())
    }

    /// Announces up to `most` leaves whose grace is over, every room's; returns how
    /// many it took. Any server may run it at any time: each leave is announced once.
    pub(super) async fn finish_leaves(&self, most: usize) -> redis::RedisResult<usize> {
        let mut redis = self.redis.clone();
        let now = now_ms();
        let retry_at = now + LEAVE_RETRY.as_millis() as u64;
        let taken: Vec<(String, f64)> = self
            .scripts
            .take_due
            .key(keys::leaves())
            .arg(now)
            .arg(most)
            .arg(retry_at)
            .invoke_async(&mut redis)
            .await?;
        for (entry, due) in &taken {
            if let Some((room, user)) = entry.split_once('\n') {
                let keys = RoomKeys::new(room);
                let (_announced, empty): (u8, u8) = self
                    .scripts
                    .finalize
                    .key(&keys.users)
                    .key(&keys.names)
                    .key(&keys.channel)
                    .key(&keys.leaving)
                    .arg(user)
                    .arg(*due as u64)
                    .invoke_async(&mut redis)
                    .await?;
                if empty == 1 {
                    let _: () = redis.srem(keys::rooms(), room).await?;
                }
            }
            let _: u8 = self
                .scripts
                .done
                .key(keys::leaves())
                .arg(entry)
                .arg(retry_at)
                .invoke_async(&mut redis)
                .await?;
        }
        Ok(taken.len())
    }

    /// Lists the rooms where this server has members again, in `rooms` and its
    /// own set: a join and a leave crossing on two servers may have taken one out.
    pub(super) async fn list_occupied(&self) -> redis::RedisResult<()> {
        // The map is let go before any room's lock is taken.
        let rooms: Vec<std::sync::Arc<LocalRoom>> =
            crate::sync::lock(&self.rooms).values().cloned().collect();
        let occupied: Vec<std::sync::Arc<str>> = rooms
            .iter()
            .filter(|room| !crate::sync::lock(&room.state).users.is_empty())
            .map(|room| room.name.clone())
            .collect();
        let mut redis = self.redis.clone();
        for chunk in occupied.chunks(1000) {
            let names: Vec<&str> = chunk.iter().map(|name| &**name).collect();
            let _: () = redis.sadd(keys::rooms(), &names).await?;
            let _: () = redis.sadd(keys::node_rooms(&self.node), &names).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use redis::AsyncCommands;

    use super::super::scripts::Scripts;
    use super::super::tests::{TestRedis, connection};
    use super::*;

    #[tokio::test]
    async fn a_taken_leave_comes_back_unless_done_and_a_newer_one_is_kept() {
        let redis = TestRedis::start();
        let mut conn = connection(&redis).await;
        let scripts = Scripts::new(false);
        let leaves = keys::leaves();
        let take = async |conn: &mut redis::aio::MultiplexedConnection, now: u64, retry_at: u64| {
            scripts
                .take_due
                .key(keys::leaves())
                .arg(now)
                .arg(10)
                .arg(retry_at)
                .invoke_async::<Vec<(String, f64)>>(conn)
                .await
                .unwrap()
        };
        let done = async |conn: &mut redis::aio::MultiplexedConnection, retry_at: u64| {
            scripts
                .done
                .key(keys::leaves())
                .arg("r\nu")
                .arg(retry_at)
                .invoke_async::<u8>(conn)
                .await
                .unwrap()
        };
        let _: () = conn.zadd(&leaves, "r\nu", 100).await.unwrap();
        let _: () = conn.zadd(&leaves, "r\nlater", 900).await.unwrap();
        assert_eq!(
            take(&mut conn, 200, 1000).await,
            [("r\nu".to_owned(), 100.0)]
        );
        // Taken, it is not due again until the retry time...
        assert_eq!(take(&mut conn, 800, 1000).await, []);
        let score: f64 = conn.zscore(&leaves, "r\nu").await.unwrap();
        assert_eq!(score, 1000.0);
        // ...and a newer leave of the same user (due later) outlives the old one's end.
        let _: () = conn.zadd(&leaves, "r\nu", 1500).await.unwrap();
        assert_eq!(done(&mut conn, 1000).await, 0);
        // A server that took one and stopped: it comes back at the retry time.
        assert_eq!(
            take(&mut conn, 1600, 3000).await,
            [("r\nlater".to_owned(), 900.0), ("r\nu".to_owned(), 1500.0)]
        );
        assert_eq!(done(&mut conn, 3000).await, 1);
        assert_eq!(take(&mut conn, 2999, 4000).await, []);
        assert_eq!(
            take(&mut conn, 3000, 4000).await,
            [("r\nlater".to_owned(), 3000.0)]
        );
    }

    #[tokio::test]
    async fn a_leave_is_announced_once_and_not_for_a_user_back_or_gone_again() {
        let redis = TestRedis::start();
        let mut conn = connection(&redis).await;
        let scripts = Scripts::new(false);
        let room = RoomKeys::new("lobby");
        let finalize = async |conn: &mut redis::aio::MultiplexedConnection, due: u64| {
            scripts
                .finalize
                .key(&room.users)
                .key(&room.names)
                .key(&room.channel)
                .key(&room.leaving)
                .arg("u")
                .arg(due)
                .invoke_async::<(u8, u8)>(conn)
                .await
                .unwrap()
        };
        let _: () = conn.hset(&room.names, "u", "Una").await.unwrap();
        let _: () = conn.hset(&room.leaving, "u", 100).await.unwrap();
        // Left again at 500: the entry due at 100 is not that leave.
        let _: () = conn.hset(&room.leaving, "u", 500).await.unwrap();
        assert_eq!(finalize(&mut conn, 100).await, (0, 0));
        // Back in the room: no leave at all.
        let _: () = conn.hset(&room.users, "u", 1).await.unwrap();
        assert_eq!(finalize(&mut conn, 500).await, (0, 0));
        let _: () = conn.hdel(&room.users, "u").await.unwrap();
        // Due and gone: announced once, and the room is empty.
        assert_eq!(finalize(&mut conn, 500).await, (1, 1));
        assert_eq!(finalize(&mut conn, 500).await, (0, 1));
        let name: Option<String> = conn.hget(&room.names, "u").await.unwrap();
        assert_eq!(name, None);
    }
}
