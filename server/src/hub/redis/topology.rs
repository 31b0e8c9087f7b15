//! Where Redis is, one server or a cluster, and the connection commands go over.
//!
//! `--redis-url` names a single Redis (`redis://host:port`), or a Redis Cluster:
//! `redis+cluster://host1:port,host2:port` lists some of its nodes (one is enough:
//! the client discovers the rest), and a `redis://` URL of a node whose
//! `INFO cluster` says `cluster_enabled:1` is used as a cluster too. On a cluster,
//! commands go through the redis crate's cluster client (slots, `MOVED`, failover)
//! and rooms' live traffic through sharded Pub/Sub (`SPUBLISH`/`SSUBSCRIBE`), so a
//! room's messages travel only to its shard.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// How long a Redis command may take before the caller is told `unavailable`.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// The first and the longest wait before connecting again after a failure.
pub(super) const RECONNECT_MIN: Duration = Duration::from_millis(100);
pub(super) const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// A Redis call with the deadline every call has.
pub(super) async fn in_time<T>(
    call: impl Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    tokio::time::timeout(COMMAND_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

pub(super) fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer within 2 s",
    ))
}

/// The URL without a password, for messages.
pub(super) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// What `--redis-url` says to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// One Redis server (which may still turn out to be a cluster node).
    Single(String),
    /// Some nodes of a Redis Cluster, each as a `redis://` URL.
    Cluster(Vec<String>),
}

/// Reads `--redis-url`: `redis+cluster://[user:password@]host:port[,host:port...][/?query]`
/// is a cluster; anything else a single server, as the redis crate reads it.
pub(super) fn target(url: &str) -> Result<Target, redis::RedisError> {
    let Some(rest) = url.strip_prefix("redis+cluster://") else {
        return Ok(Target::Single(url.to_owned()));
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(|host| format!("redis://{userinfo}{host}{tail}"))
        .collect();
    if nodes.is_empty() {
        return Err(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "a redis+cluster:// URL names no node",
        )));
    }
    Ok(Target::Cluster(nodes))
}

/// The connection commands and scripts go over: one multiplexed, reconnecting
/// connection to a single Redis, or the cluster client's (one per node).
#[derive(Clone)]
pub(super) enum Redis {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Redis {
    /// Connects to `target`; a single server that is a cluster node is used as a
    /// cluster. Fails if Redis cannot be reached within the command timeout.
    pub(super) async fn connect(target: &Target) -> redis::RedisResult<Redis> {
        match target {
            Target::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_response_timeout(Some(COMMAND_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_max_delay(RECONNECT_MAX);
                let mut single = in_time(client.get_connection_manager_with_config(config)).await?;
                let info: String =
                    in_time(redis::cmd("INFO").arg("cluster").query_async(&mut single)).await?;
                if info.lines().any(|line| line.trim() == "cluster_enabled:1") {
                    return Box::pin(Redis::connect(&Target::Cluster(vec![url.clone()]))).await;
                }
                Ok(Redis::Single(single))
            }
            Target::Cluster(nodes) => {
                let client = cluster_client(nodes).build()?;
                let cluster = in_time(client.get_async_connection()).await?;
                Ok(Redis::Cluster(cluster))
            }
        }
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Redis::Cluster(_))
    }
}

/// A cluster client for `nodes`, with the timeouts every call has.
pub(super) fn cluster_client(nodes: &[String]) -> ClusterClientBuilder {
    ClusterClientBuilder::new(nodes.to_vec())
        .connection_timeout(COMMAND_TIMEOUT)
        .response_timeout(COMMAND_TIMEOUT)
        .retries(2)
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Redis::Single(single) => single.req_packed_command(cmd),
            Redis::Cluster(cluster) => cluster.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Redis::Single(single) => single.req_packed_commands(pipeline, offset, count),
            Redis::Cluster(cluster) => cluster.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Redis::Single(single) => single.get_db(),
            Redis::Cluster(cluster) => cluster.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_url_names_its_nodes() {
        assert_eq!(
            target("redis+cluster://10.0.0.1:7000,10.0.0.2:7001").unwrap(),
            Target::Cluster(vec![
                "redis://10.0.0.1:7000".into(),
                "redis://10.0.0.2:7001".into()
            ])
        );
        assert_eq!(
            target("redis+cluster://user:secret@a:1,b:2/?protocol=3").unwrap(),
            Target::Cluster(vec![
                "redis://user:secret@a:1/?protocol=3".into(),
                "redis://user:secret@b:2/?protocol=3".into()
            ])
        );
        assert_eq!(
            target("redis+cluster://only:7000").unwrap(),
            Target::Cluster(vec!["redis://only:7000".into()])
        );
        assert!(target("redis+cluster://").is_err());
        assert!(target("redis+cluster://,,").is_err());
        assert_eq!(
            target("redis://127.0.0.1:6379").unwrap(),
            Target::Single("redis://127.0.0.1:6379".into())
        );
    }
}
