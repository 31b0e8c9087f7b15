//! This server's liveness key, and the reaping of servers that stopped refreshing
//! theirs: a server that dies without leaving (crash, SIGKILL) has its members
//! removed from presence by the next server to notice, within about `node_ttl`.

use std::sync::Weak;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::time::MissedTickBehavior;

use super::{Shared, keys};

/// Refreshes this server's liveness key and reaps servers that stopped refreshing theirs.
pub(super) async fn liveness(shared: Weak<Shared>) {
    let Some(period) = shared.upgrade().map(|shared| shared.node_ttl / 3) else {
        return;
    };
    every(period, shared, "liveness check failed", async |current| {
        current.heartbeat().await?;
        current.list_occupied().await?;
        current.reap_dead_nodes().await
    })
    .await;
}

/// Announces the leaves whose grace is over, every room's, with the other servers
/// doing the same (each leave is announced once): so a leave is announced even when
/// the server that began it has stopped.
pub(super) async fn finish_leaves(shared: Weak<Shared>) {
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
    shared: Weak<Shared>,
    failed: &str,
    work: impl AsyncFn(&Shared) -> redis::RedisResult<()>,
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

impl Shared {
    /// Marks this server alive and known, so others can reap it if it dies.
    pub(super) async fn heartbeat(&self) -> redis::RedisResult<()> {
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
        redis.sadd(keys::nodes(), &self.node).await
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
