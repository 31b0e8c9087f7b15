//! A `redis-server` of a test's own (Debian's package, append-only, free port), and
//! `Node`: a `chorus` process sharing rooms through it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::{Client, PATIENCE, SECRET, every_room, start_binary, ws_client};

/// A `redis-server` of our own, with an append-only file so a restart keeps its data.
pub(crate) struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// A node of a Redis Cluster (`RedisCluster`), not a server on its own.
    cluster: bool,
}

/// Where `Node`s find Redis: one server, or a cluster.
pub(crate) trait RedisUrl {
    fn url(&self) -> String;
}

impl RedisUrl for RedisServer {
    fn url(&self) -> String {
        RedisServer::url(self)
    }
}

impl RedisServer {
    pub(crate) async fn start() -> RedisServer {
        // The port is free when chosen, but another test may bind it before Redis
        // does (tests run in parallel, and the kernel hands out released ports
        // again): then Redis exits at once, and another port is tried.
        for _ in 0..5 {
            let mut redis = RedisServer::on_port(free_port());
            if redis.spawn().await.is_ok() {
                return redis;
            }
        }
        panic!("redis-server did not start on any of five free ports");
    }

    /// A server for `port`, not started yet, with a directory of its own.
    fn on_port(port: u16) -> RedisServer {
        let dir = std::env::temp_dir().join(format!("chorus-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for Redis");
        RedisServer {
            port,
            dir,
            child: None,
            cluster: false,
        }
    }

    /// A cluster node, started on a free port below 55536 (its cluster bus listens
    /// on the port + 10000), not yet part of a cluster.
    pub(super) async fn start_cluster_node() -> RedisServer {
        for _ in 0..10 {
            let port = free_port();
            if port >= 55536 || std::net::TcpListener::bind(("127.0.0.1", port + 10000)).is_err() {
                continue;
            }
            let mut redis = RedisServer::on_port(port);
            redis.cluster = true;
            if redis.spawn().await.is_ok() {
                return redis;
            }
        }
        panic!("no cluster node started on ten free ports");
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Restarts the process on its port and waits until it answers.
    pub(crate) async fn run(&mut self) {
        // Just released by the Redis before, the port may be taken for a moment.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.spawn().await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start again on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the process and waits until it answers; `Err` if it exited first
    /// (its port was taken).
    async fn spawn(&mut self) -> Result<(), Exited> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes", "--appendfsync", "always"])
            .args(if self.cluster {
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    // Other shards keep serving while one master is down.
                    "--cluster-require-full-coverage",
                    "no",
                ][..]
            } else {
                &[]
            })
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs (apt-get install redis-server; scripts/setup.sh --test installs it)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let exited = self
                .child
                .as_mut()
                .is_none_or(|child| matches!(child.try_wait(), Ok(Some(_))));
            if exited {
                self.child = None;
                return Err(Exited);
            }
            if self.try_connect().await.is_some() {
                return Ok(());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not answer on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A connection that has answered a PING, if Redis is up.
    async fn try_connect(&self) -> Option<MultiplexedConnection> {
        let client = redis::Client::open(self.url()).ok()?;
        let connect = client.get_multiplexed_async_connection();
        let mut connection = tokio::time::timeout(PATIENCE, connect).await.ok()?.ok()?;
        let pong: String = redis::cmd("PING").query_async(&mut connection).await.ok()?;
        (pong == "PONG").then_some(connection)
    }

    /// A connection to this Redis, for a test to look at or change what it holds.
    pub(crate) async fn connection(&self) -> MultiplexedConnection {
        self.try_connect().await.expect("Redis answers")
    }

    /// Runs one command on a fresh connection and returns its reply as `T`.
    pub(crate) async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        command
            .query_async(&mut self.connection().await)
            .await
            .unwrap_or_else(|err| panic!("Redis refused a command: {err}"))
    }

    /// Deletes the append-only file of a stopped Redis: it comes back empty.
    pub(crate) fn forget_everything(&self) {
        assert!(self.child.is_none(), "stop Redis first");
        std::fs::remove_dir_all(&self.dir).expect("Redis's directory");
        std::fs::create_dir_all(&self.dir).expect("a directory for Redis");
    }

    /// Kills Redis outright; its append-only file keeps what it had acknowledged.
    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("redis-server stops");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-server` exited before it answered: its port was taken.
#[derive(Debug)]
struct Exited;

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A `chorus` process using `redis`; dead servers are noticed after 1 s.
pub(crate) struct Node {
    pub addr: String,
    pub child: Child,
    _logs: JoinHandle<()>,
}

impl Node {
    pub(crate) async fn start(redis: &impl RedisUrl) -> Node {
        Node::start_with_ttl(redis, "1s").await
    }

    pub(crate) async fn start_with_ttl(redis: &impl RedisUrl, node_ttl: &str) -> Node {
        Node::start_with(redis, &["--redis-node-ttl", node_ttl]).await
    }

    pub(crate) async fn start_with(redis: &impl RedisUrl, args: &[&str]) -> Node {
        let url = redis.url();
        let mut all = vec!["--jwt-secret", SECRET, "--redis-url", &url];
        if !args.contains(&"--redis-node-ttl") {
            all.extend(["--redis-node-ttl", "1s"]);
        }
        if !args.contains(&"--presence-grace") {
            all.extend(["--presence-grace", "0s"]);
        }
        all.extend_from_slice(args);
        let binary = start_binary(&all, &[]).await;
        let mut lines = binary.lines;
        // Keep reading its log so the process never blocks on a full pipe.
        let logs = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Node {
            addr: binary.addr,
            child: binary.child,
            _logs: logs,
        }
    }

    /// SIGTERM: the graceful shutdown a deployment would ask for.
    pub(crate) async fn terminate(&self) {
        self.signal("TERM").await;
    }

    /// Sends the process a signal by name (`STOP` stalls it, `CONT` resumes it).
    pub(crate) async fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = tokio::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }

    pub(crate) async fn join(&self, room: &str, name: &str, since: Option<u64>) -> (Client, Value) {
        ws_client::join(&self.addr, room, name, since).await
    }

    /// `GET /api/rooms` as JSON, as a member who may join every room sees it.
    pub(crate) async fn rooms(&self) -> Value {
        every_room(self.addr.parse().unwrap()).await.json()
    }
}

#[tokio::test]
async fn a_redis_whose_port_was_taken_is_noticed_as_exited_not_waited_for() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("its address").port();
    let mut redis = RedisServer::on_port(port);
    assert!(redis.spawn().await.is_err());
    assert!(redis.child.is_none());
    // And a start goes on to a port that is free.
    let started = RedisServer::start().await;
    assert_ne!(started.port, port);
    started.query::<String>(&redis::cmd("PING")).await;
}
