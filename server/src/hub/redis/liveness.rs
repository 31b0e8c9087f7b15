//! This server's liveness key, and the reaping of servers that stopped refreshing
//! theirs: a server that dies without leaving (crash, SIGKILL) has its members
//! removed from presence by the next server to notice, within about `node_ttl`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::AsyncCommands;
use tokio::time::MissedTickBehavior;

use super::keys;
use super::node::Node;
use super::room::LocalRoom;
use super::topology::in_time;
use crate::sync::lock;

/// Refreshes this server's liveness key and reaps servers that stopped refreshing theirs.
///
/// A server that could not refresh its key in time (stalled, or cut off from the
/// key's shard) is taken for dead and reaped while its members are still connected.
/// A reap takes the server out of `nodes` last, after its members: found missing
/// there, this server has been reaped (completely) and writes its members back.
pub(super) async fn liveness(shared: Weak<Node>) {
    let Some(period) = shared.upgrade().map(|shared| shared.node_ttl / 3) else {
        return;
    };
    // Owed from the heartbeat that found this server reaped until written back.
    let write_back = Arc::new(AtomicBool::new(false));
    every(
        period,
        shared,
        "liveness check failed",
        async move |current| {
            current.stay_listed(&write_back).await?;
            current.list_occupied().await?;
            current.reap_dead_nodes().await
        },
    )
    .await;
}

/// Announces the leaves whose grace is over, every room's, with the other servers
/// doing the same (each leave is announced once): so a leave is announced even when
/// the server that began it has stopped.
pub(super) async fn finish_leaves(shared: Weak<Node>) {
    /// Leaves announced in one call at most: a backlog is worked off call by call.
    const BATCH: usize = 1000;
    let Some(grace) = shared
        .upgrade()
        .map(|shared| shared.settings.presence_grace)
    else {
        return;
    };
    if grace.is_zero() {
        return;
    }
    let period = (grace / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    every(
        period,
        shared,
        "could not finish due leaves",
        async |current| current.finish_leaves(BATCH).await.map(drop),
    )
    .await;
}

/// Runs `work` every `period` until the hub is gone or stopping; a failure is logged
/// (at debug level: the next turn tries again) as `failed`.
async fn every(
    period: Duration,
    shared: Weak<Node>,
    failed: &str,
    work: impl AsyncFn(&Node) -> redis::RedisResult<()>,
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(current) = shared.upgrade() else {
            return;
        };
        if current.stop.is_cancelled() {
            return;
        }
        if let Err(err) = work(&current).await {
            tracing::debug!(error = %err, "{failed}");
        }
    }
}

impl Node {
    /// Marks this server alive and known, so others can reap it if it dies; `true`
    /// if it was not listed among the servers (reaped, or just started).
    pub(super) async fn heartbeat(&self) -> redis::RedisResult<bool> {
        let ttl = self.node_ttl.as_millis().max(1) as u64;
        let mut redis = self.redis.clone();
        // Two keys of two slots: two commands.
        let _: () = redis
            .set_options(
                keys::node(&self.node),
                1,
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl)),
            )
            .await?;
        let added: u8 = redis.sadd(keys::nodes(), &self.node).await?;
        Ok(added == 1)
    }

    /// The heartbeat, and this server's members written back if it finds it was
    /// reaped (`write_back` keeps that owed until done).
    async fn stay_listed(&self, write_back: &AtomicBool) -> redis::RedisResult<()> {
        if self.heartbeat().await? {
            tracing::warn!(
                node = self.node,
                "this server was taken for dead (its liveness key expired) and reaped; writing its members back"
            );
            write_back.store(true, Ordering::Relaxed);
        }
        if write_back.load(Ordering::Relaxed) {
            let rooms: Vec<Arc<LocalRoom>> = lock(&self.rooms).values().cloned().collect();
            for room in &rooms {
                in_time(self.restore_presence(room)).await?;
            }
            write_back.store(false, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Removes the presence of servers whose liveness key has expired.
    async fn reap_dead_nodes(&self) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let nodes: Vec<String> = redis.smembers(keys::nodes()).await?;
        for node in nodes.iter().filter(|node| **node != self.node) {
            let alive: bool = redis.exists(keys::node(node)).await?;
            if alive {
                continue;
            }
            let rooms = self.reap(node).await?;
            if rooms > 0 {
                tracing::info!(node, rooms, "reaped the members of a server that stopped");
            }
        }
        Ok(())
    }
}
