//! A Redis Cluster of a test's own: three masters from Debian's `redis-server`, each
//! append-only (a restarted master keeps what it acknowledged), joined by
//! `redis-cli --cluster create`.

use std::time::Duration;

use super::PATIENCE;
use super::redis_server::{RedisServer, RedisUrl};

pub(crate) struct RedisCluster {
    pub masters: Vec<RedisServer>,
}

impl RedisUrl for RedisCluster {
    /// `redis+cluster://` with every master: the client needs one, and finds the rest.
    fn url(&self) -> String {
        let nodes: Vec<String> = self
            .masters
            .iter()
            .map(|master| format!("127.0.0.1:{}", master.port()))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }
}

impl RedisCluster {
    pub(crate) async fn start() -> RedisCluster {
        let mut masters = Vec::new();
        for _ in 0..3 {
            masters.push(RedisServer::start_cluster_node().await);
        }
        let mut create = tokio::process::Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for master in &masters {
            create.arg(format!("127.0.0.1:{}", master.port()));
        }
        let created = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .expect("redis-cli runs");
        assert!(created.success(), "redis-cli --cluster create failed");
        let cluster = RedisCluster { masters };
        cluster.wait_until_ok().await;
        cluster
    }

    /// Waits until every master says the cluster serves all its slots.
    pub(crate) async fn wait_until_ok(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        for master in &self.masters {
            loop {
                let info: String = master.query(redis::cmd("CLUSTER").arg("INFO")).await;
                if info.lines().any(|line| line.trim() == "cluster_state:ok") {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the cluster did not come up: {info}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Which master serves `key` (its index in `masters`).
    pub(crate) async fn master_of(&self, key: &str) -> usize {
        let slot: u16 = self.masters[0]
            .query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .await;
        let slots: Vec<(u16, u16, Vec<redis::Value>)> = self.masters[0]
            .query(redis::cmd("CLUSTER").arg("SLOTS"))
            .await;
        for (first, last, master) in slots {
            if (first..=last).contains(&slot) {
                let port = match master.get(1) {
                    Some(redis::Value::Int(port)) => *port as u16,
                    other => panic!("CLUSTER SLOTS gave {other:?}"),
                };
                return self
                    .masters
                    .iter()
                    .position(|master| master.port() == port)
                    .expect("a master of ours");
            }
        }
        panic!("no master serves slot {slot}");
    }

    /// How many times `command` ran on each master (`INFO commandstats`).
    pub(crate) async fn calls(&self, command: &str) -> Vec<u64> {
        let mut calls = Vec::new();
        for master in &self.masters {
            let stats: String = master.query(redis::cmd("INFO").arg("commandstats")).await;
            let prefix = format!("cmdstat_{command}:calls=");
            calls.push(
                stats
                    .lines()
                    .find_map(|line| line.strip_prefix(&prefix))
                    .and_then(|rest| rest.split(',').next())
                    .and_then(|count| count.parse().ok())
                    .unwrap_or(0),
            );
        }
        calls
    }
}
