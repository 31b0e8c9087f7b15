//! `redis-server`s the scale and soak scenarios start, each in a directory of its
//! own, on a port a cluster's bus can use too.

use std::process::Stdio;
use std::time::Duration;

use crate::servers::accepting;

/// A `redis-server` the scale scenario started, in a directory of its own.
pub(crate) struct StartedRedis {
    pub(crate) child: tokio::process::Child,
    pub(crate) port: u16,
}

/// A port nothing listens on, below 55536 (a cluster node's bus is on port + 10000).
pub(crate) fn free_low_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < 55536 && std::net::TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

pub(crate) async fn start_redis(dir: &std::path::Path, cluster: bool) -> StartedRedis {
    start_redis_on(dir, free_low_port(), cluster, false).await
}

/// A Redis on `port`, its files in `dir/port`; `durable` keeps an append-only file
/// there, so a Redis restarted on the same port has its data back, as an operator's
/// would.
pub(crate) async fn start_redis_on(
    dir: &std::path::Path,
    port: u16,
    cluster: bool,
    durable: bool,
) -> StartedRedis {
    let dir = dir.join(port.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = tokio::process::Command::new("redis-server");
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--maxclients", "10000"])
        .args(["--appendonly", if durable { "yes" } else { "no" }])
        .current_dir(&dir);
    if cluster {
        command.args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-require-full-coverage",
            "no",
        ]);
    }
    let mut child = command
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server runs (apt-get install redis-server)");
    accepting(&mut child, port, Duration::from_secs(10), "redis-server").await;
    StartedRedis { child, port }
}
