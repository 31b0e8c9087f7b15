//! This server's liveness key, and the reaping of servers that stopped refreshing
//! theirs: a server that dies without leaving (crash, SIGKILL) has its members
//! removed from presence by the next server to notice, within about `node_ttl`.

use std::sync::Weak;

use redis::AsyncCommands;
use tokio::time::MissedTickBehavior;

use super::{Shared, keys};

/// Refreshes this server's liveness key and reaps servers that stopped refreshing theirs.
pub(super) async fn liveness(shared: Weak<Shared>) {
    let Some(period) = shared.upgrade().map(|shared| shared.node_ttl / 3) else {
        return;
    };
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
        let outcome = async {
            current.heartbeat().await?;
            current.reap_dead_nodes().await
        }
        .await;
        if let Err(err) = outcome {
            tracing::debug!(error = %err, "liveness check failed");
        }
    }
}

impl Shared {
    /// Marks this server alive and known, so others can reap it if it dies.
    pub(super) async fn heartbeat(&self) -> redis::RedisResult<()> {
        let ttl = self.node_ttl.as_millis().max(1) as u64;
        redis::pipe()
            .cmd("SET")
            .arg(keys::node(&self.node))
            .arg(1)
            .arg("PX")
            .arg(ttl)
            .ignore()
            .sadd(keys::nodes(), &self.node)
            .ignore()
            .query_async(&mut self.redis.clone())
            .await
    }

    /// Removes the presence of servers whose liveness key has expired.
    async fn reap_dead_nodes(&self) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let nodes: Vec<String> = redis.smembers(keys::nodes()).await?;
        for node in nodes.iter().filter(|node| **node != self.node) {
            let rooms: usize = self
                .scripts
                .reap
                .key(keys::nodes())
                .arg(node)
                .arg(keys::PREFIX)
                .invoke_async(&mut redis)
                .await?;
            if rooms > 0 {
                tracing::info!(node, rooms, "reaped the members of a server that stopped");
            }
        }
        Ok(())
    }
}
