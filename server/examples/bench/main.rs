//! Fan-out benchmark: N members in one room, one sender, M messages.
//!
//! Starts the release server as a child process (or targets `--url`, e.g. the
//! FastAPI peer), connects the members, then prints delivery throughput, latency
//! percentiles, the server's resident memory per connection and its CPU time.
//!
//!     make bench                      # defaults: 2000 members, 200 messages at 50/s
//!     target/release/examples/bench --members 5000 --messages 100 --rate 500
//!     target/release/examples/bench --url ws://127.0.0.1:8001 --secret dev-secret-change-me-to-32-bytes-or-more --pid PID
//!
//! Figures, not pass/fail: compare runs on the same machine.

mod load;
mod scale;
mod soak;

use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// N members in one room, one sender publishing M messages at a rate.
    Fanout,
    /// N members connect to one room at once; time until everyone knows everyone.
    Storm,
    /// N members, each alone in a room, idle but answering pings for `--hold`:
    /// server memory per connection.
    Idle,
    /// N members in `--rooms` rooms, a sender per room publishing M messages at
    /// `--rate` per second each: many small rooms.
    Rooms,
    /// N members over `--nodes` servers sharing rooms through a Redis the bench
    /// starts (`--cluster`: a three-master Redis Cluster), in rooms of every size
    /// (one of N/10, rooms of 1,000, rooms of 10), every room publishing steadily
    /// for `--hold`, the members spread over load processes.
    Scale,
    /// Members of rooms of 20 over `--nodes` servers sharing a Redis the bench starts
    /// (with an append-only file), for `--duration`: members reconnect with `since`
    /// every `--churn` on average (one in ten leaves for good, someone new taking
    /// its place), servers restart one at a time (SIGTERM, once SIGKILL), Redis
    /// restarts once, `--rate` messages a second over all rooms. Reports losses and
    /// duplicates (which must be none) and the memory slope of every server and Redis.
    Soak,
}

/// A reference server from `../shared/peers/`, built and started by the bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Peer {
    /// The naive axum port (tokio broadcast per room) the targets are stated against.
    AxumNaive,
    /// The FastAPI server Chorus grew from.
    FastapiSeed,
}

#[derive(Parser)]
struct Args {
    /// Measure a reference peer instead of Chorus (built in target/peers on first use).
    #[arg(long, value_enum, conflicts_with_all = ["url", "redis_url"])]
    peer: Option<Peer>,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Fanout)]
    scenario: Scenario,
    /// Members connected to the room (all receive every message).
    #[arg(long, default_value_t = 2000)]
    members: usize,
    /// Rooms the members are spread over (rooms scenario).
    #[arg(long, default_value_t = 1000)]
    rooms: usize,
    /// How long the idle scenario holds its connections.
    #[arg(long, default_value = "10s", value_parser = chorus_server::config::parse_duration)]
    hold: Duration,
    /// Messages the sender publishes.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Messages per second from the sender.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Bytes of filler per message.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Target an already running server (`ws://host:port`) instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// Process id of the `--url` server, to report its memory and CPU.
    #[arg(long)]
    pid: Option<u32>,
    /// HS256 secret of the target server.
    #[arg(long, default_value = "bench-secret-of-at-least-32-bytes")]
    secret: String,
    /// Start the server with `--redis-url` (the Redis engine) instead of in-memory rooms.
    #[arg(long)]
    redis_url: Option<String>,
    /// With `--redis-url`: servers to start; members are spread over them round-robin
    /// and the sender uses the first, so most deliveries cross servers.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    nodes: u32,
    /// The server binary to start.
    #[arg(long, default_value = "target/release/chorus")]
    server: String,
    /// Scale scenario: start a three-master Redis Cluster instead of one Redis.
    #[arg(long)]
    cluster: bool,
    /// How long the soak runs.
    #[arg(long, default_value = "30m", value_parser = chorus_server::config::parse_duration)]
    duration: Duration,
    /// Soak: a member's mean time between reconnects.
    #[arg(long, default_value = "60s", value_parser = chorus_server::config::parse_duration)]
    churn: Duration,
    /// Scale scenario: this long into the hold, cut every client connection of the
    /// (first) Redis node (`CLIENT KILL TYPE normal`, then `pubsub`), as a network
    /// blip would.
    #[arg(long, value_parser = chorus_server::config::parse_duration, conflicts_with = "redis_url")]
    cut_redis_at: Option<Duration>,
    /// Scale scenario: load processes (default: enough for 17,000 sockets each).
    #[arg(long)]
    workers: Option<usize>,
    /// Runs one load process of the scale scenario (started by the bench itself).
    #[arg(long, hide = true)]
    scale_worker: Option<String>,
}

struct Server {
    child: tokio::process::Child,
    base: String,
}

async fn start_server(args: &Args) -> Server {
    start_server_on(args, args.redis_url.as_deref()).await
}

async fn start_server_on(args: &Args, redis_url: Option<&str>) -> Server {
    start_server_at(args, redis_url, "127.0.0.1:0").await
}

/// A server listening on `addr` (the soak restarts one where it was).
async fn start_server_at(args: &Args, redis_url: Option<&str>, addr: &str) -> Server {
    let mut child = tokio::process::Command::new(&args.server)
        .args(["--addr", addr, "--jwt-secret", &args.secret])
        // Every simulated member connects from loopback: lift the per-address limits.
        .args([
            "--connect-rate-limit",
            "1000000",
            "--connect-rate-limit-burst",
            "1000000",
        ])
        .args(["--max-connections", "100000"])
        // The idle scenario puts every member in a room of its own.
        .args(["--max-rooms", "1000000"])
        .args(["--rate-limit", "1000000", "--rate-limit-burst", "1000000"])
        .args(redis_url.iter().flat_map(|url| ["--redis-url", *url]))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err} (run `make bench`)", args.server));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next_line().await.unwrap().expect("server exited");
        if let Some((_, addr)) = line.split_once("listening on http://") {
            break format!("ws://{}", addr.trim());
        }
    };
    // `BENCH_SERVER_LOGS=1` passes the servers' logs on, prefixed with their address.
    let echo = std::env::var_os("BENCH_SERVER_LOGS").map(|_| base.clone());
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(base) = &echo {
                eprintln!("{base} {line}");
            }
        }
    });
    Server { child, base }
}

/// Where the reference peers live, beside the project.
const PEERS: &str = "../shared/peers";

/// Builds (once) and starts a reference peer on a free port with `secret`.
async fn start_peer(peer: Peer, secret: &str) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = |program: &str, args: &[&str], dir: Option<&str>| {
        let mut command = std::process::Command::new(program);
        command.args(args);
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let status = command
            .status()
            .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
        assert!(status.success(), "{program} {args:?} failed");
    };
    let mut child = match peer {
        Peer::AxumNaive => {
            let manifest = format!("{PEERS}/axum_naive/Cargo.toml");
            run(
                "cargo",
                &[
                    "build",
                    "--release",
                    "--manifest-path",
                    &manifest,
                    "--target-dir",
                    "target/peers",
                ],
                None,
            );
            tokio::process::Command::new("target/peers/release/axum_naive")
                .env("PORT", port.to_string())
                .env("JWT_SECRET", secret)
                .kill_on_drop(true)
                .spawn()
                .expect("the axum peer starts")
        }
        Peer::FastapiSeed => {
            let venv = "target/peers/venv";
            if !std::path::Path::new(&format!("{venv}/bin/uvicorn")).exists() {
                run("python3", &["-m", "venv", venv], None);
                run(
                    &format!("{venv}/bin/pip"),
                    &[
                        "install",
                        "--quiet",
                        "fastapi",
                        "uvicorn[standard]",
                        "pyjwt",
                    ],
                    None,
                );
            }
            let uvicorn = std::fs::canonicalize(format!("{venv}/bin/uvicorn")).unwrap();
            tokio::process::Command::new(uvicorn)
                .args([
                    "app:app",
                    "--port",
                    &port.to_string(),
                    "--log-level",
                    "warning",
                ])
                .current_dir(format!("{PEERS}/fastapi_seed"))
                .env("JWT_SECRET", secret)
                .kill_on_drop(true)
                .spawn()
                .expect("the FastAPI peer starts")
        }
    };
    // Ready once it accepts connections.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the peer did not start"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the peer exited: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        child,
        base: format!("ws://127.0.0.1:{port}"),
    }
}

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// User + system CPU time of a process.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Some(spec) = &args.scale_worker {
        scale::worker(spec).await;
        return;
    }
    if args.scenario == Scenario::Scale {
        run_scale(&args).await;
        return;
    }
    if args.scenario == Scenario::Soak {
        soak::run(&args).await;
        return;
    }
    assert!(
        args.nodes == 1 || (args.redis_url.is_some() && args.url.is_none()),
        "--nodes needs --redis-url (servers share rooms through Redis)"
    );
    let mut servers = Vec::new();
    if let Some(peer) = args.peer {
        servers.push(start_peer(peer, &args.secret).await);
    } else if args.url.is_none() {
        for _ in 0..args.nodes {
            servers.push(start_server(&args).await);
        }
    }
    let bases: Vec<String> = match &args.url {
        Some(url) => vec![url.clone()],
        None => servers.iter().map(|server| server.base.clone()).collect(),
    };
    let pids: Vec<u32> = match &args.url {
        Some(_) => args.pid.into_iter().collect(),
        None => servers
            .iter()
            .filter_map(|server| server.child.id())
            .collect(),
    };
    // Every server's resident memory and CPU time, summed.
    let measured = !pids.is_empty();
    let rss = || -> Option<u64> {
        let total: Option<u64> = pids.iter().map(|pid| rss_bytes(*pid)).sum();
        total.filter(|_| measured)
    };
    let cpu = || -> Option<Duration> {
        let total: Option<Duration> = pids.iter().map(|pid| cpu_time(*pid)).sum();
        total.filter(|_| measured)
    };
    let target = load::Target {
        bases,
        secret: args.secret.clone(),
        room: "bench".into(),
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = rss();
    if args.scenario == Scenario::Idle {
        let (still_open, connected_rss) = load::idle(&target, args.members, args.hold, rss).await;
        println!("chorus idle connections");
        println!(
            "  members            {} held {:?}, {} still open at the end",
            args.members, args.hold, still_open
        );
        if let (Some(base), Some(connected)) = (baseline, connected_rss) {
            println!(
                "  server memory      {:.1} MiB idle, {:.1} MiB connected: {:.1} KiB per connection",
                base as f64 / 1048576.0,
                connected as f64 / 1048576.0,
                connected.saturating_sub(base) as f64 / 1024.0 / args.members.max(1) as f64
            );
        }
        if let Some(after) = rss() {
            println!("  after the hold     {:.1} MiB", after as f64 / 1048576.0);
        }
        return;
    }
    if args.scenario == Scenario::Storm {
        let cpu_before = cpu();
        // The peers send no member list: only their join texts say who is there.
        let report = load::storm(&target, args.members, args.peer.is_none()).await;
        let cpu_used = cpu().zip(cpu_before).map(|(after, before)| after - before);
        // Every member still connected: what the room costs once the storm is over.
        let settled_rss = rss();
        match args.peer {
            Some(peer) => println!("join storm (reference peer {peer:?})"),
            None => println!("chorus join storm"),
        }
        println!("  members            {}", report.members);
        println!(
            "  all welcomed       {:.2} s",
            report.all_welcomed.as_secs_f64()
        );
        println!(
            "  all settled        {:.2} s ({} never did{})",
            report.all_settled.as_secs_f64(),
            report.unsettled,
            if args.peer.is_some() {
                "; settled: every member saw its own and every later join"
            } else {
                ""
            }
        );
        println!(
            "  presence frames    {} ({:.1} per member)",
            report.presence_frames,
            report.presence_frames as f64 / report.members.max(1) as f64
        );
        if let Some(cpu) = cpu_used {
            println!("  server CPU         {:.2} s", cpu.as_secs_f64());
        }
        if let (Some(base), Some(settled)) = (baseline, settled_rss) {
            println!(
                "  server RSS         {:.1} MiB after ({:.1} KiB per member)",
                settled as f64 / 1048576.0,
                settled.saturating_sub(base) as f64 / 1024.0 / report.members.max(1) as f64
            );
        }
        return;
    }
    let (report, (connected_rss, cpu_before)) = if args.scenario == Scenario::Rooms {
        let per_room = (args.members / args.rooms.max(1)).max(1);
        load::rooms(
            &target,
            args.rooms,
            per_room,
            args.messages,
            f64::from(args.rate),
            || (rss(), cpu()),
        )
        .await
    } else {
        load::fanout(
            &target,
            args.members,
            args.messages,
            args.rate,
            args.size,
            || (rss(), cpu()),
        )
        .await
    };
    let delivered = report.delivered;
    let connect_time = report.connect_time;
    let latencies = &report.latencies_us;
    let elapsed = report.elapsed;
    let cpu_used = cpu().zip(cpu_before).map(|(after, before)| after - before);

    let expected = report.members * args.messages;
    let engine = match (&args.url, &args.redis_url) {
        _ if args.peer.is_some() => format!("reference peer {:?}", args.peer.unwrap()),
        (Some(url), _) => url.clone(),
        (None, Some(_)) => format!("release binary × {} on Redis", args.nodes),
        (None, None) => "release binary, in-memory rooms".to_owned(),
    };
    if args.scenario == Scenario::Rooms {
        println!("chorus many-rooms benchmark ({engine})");
        println!(
            "  members            {} in {} rooms",
            report.members, args.rooms
        );
        println!(
            "  messages           {} per room at {}/s in every room",
            args.messages, args.rate
        );
    } else {
        println!("chorus fan-out benchmark ({engine})");
        println!("  members            {}", report.members);
        println!(
            "  messages           {} × {} bytes at {}/s",
            args.messages, args.size, args.rate
        );
    }
    println!(
        "  connect            {:.2} s ({:.0} connections/s)",
        connect_time.as_secs_f64(),
        args.members as f64 / connect_time.as_secs_f64()
    );
    println!(
        "  delivered          {delivered} of {expected} ({:.2} %)",
        delivered as f64 * 100.0 / expected as f64
    );
    println!(
        "  closed             {} evicted (4008), {} with other codes",
        report.evicted, report.other_closes
    );
    println!(
        "  errors             {} duplicates, {} out of order, {} lost by members still open",
        report.duplicates,
        report.out_of_order,
        report.lost_by_members_still_open()
    );
    println!(
        "  throughput         {:.0} deliveries/s over {:.2} s",
        delivered as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  latency (ms)       p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        percentile(latencies, 0.5),
        percentile(latencies, 0.9),
        percentile(latencies, 0.99),
        percentile(latencies, 1.0)
    );
    if let (Some(base_rss), Some(rss)) = (baseline, connected_rss) {
        println!(
            "  server memory      {:.1} MiB idle, {:.1} MiB connected: {:.1} KiB per connection",
            base_rss as f64 / 1048576.0,
            rss as f64 / 1048576.0,
            (rss.saturating_sub(base_rss)) as f64 / 1024.0 / args.members as f64
        );
    }
    if let Some(cpu) = cpu_used {
        println!(
            "  server CPU         {:.2} s for the broadcast ({:.1} µs per delivery)",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64
        );
    }
}

/// A `redis-server` the scale scenario started, in a directory of its own.
struct StartedRedis {
    child: tokio::process::Child,
    port: u16,
}

/// A port nothing listens on, below 55536 (a cluster node's bus is on port + 10000).
fn free_low_port() -> u16 {
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

async fn start_redis(dir: &std::path::Path, cluster: bool) -> StartedRedis {
    start_redis_on(dir, free_low_port(), cluster, false).await
}

/// A Redis on `port`, its files in `dir/port`; `durable` keeps an append-only file
/// there, so a Redis restarted on the same port has its data back, as an operator's
/// would.
async fn start_redis_on(
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
    let child = command
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server runs (apt-get install redis-server)");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    StartedRedis { child, port }
}

/// The scale scenario's coordinator: Redis, the servers, the load processes, the
/// figures.
async fn run_scale(args: &Args) {
    let dir = std::env::temp_dir().join(format!("chorus-scale-{}", std::process::id()));
    let mut redis = Vec::new();
    let url = match (&args.redis_url, args.cluster) {
        (Some(url), _) => url.clone(),
        (None, false) => {
            redis.push(start_redis(&dir, false).await);
            format!("redis://127.0.0.1:{}", redis[0].port)
        }
        (None, true) => {
            for _ in 0..3 {
                redis.push(start_redis(&dir, true).await);
            }
            let nodes: Vec<String> = redis
                .iter()
                .map(|node| format!("127.0.0.1:{}", node.port))
                .collect();
            let created = std::process::Command::new("redis-cli")
                .args(["--cluster", "create"])
                .args(&nodes)
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .stdout(Stdio::null())
                .status()
                .expect("redis-cli runs");
            assert!(created.success(), "redis-cli --cluster create failed");
            // Every node must agree before the servers start.
            for node in &nodes {
                loop {
                    let info = std::process::Command::new("redis-cli")
                        .args(["-p", node.rsplit(':').next().unwrap(), "cluster", "info"])
                        .output()
                        .expect("redis-cli runs");
                    if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            format!("redis+cluster://{}", nodes.join(","))
        }
    };
    let mut servers = Vec::new();
    for _ in 0..args.nodes {
        servers.push(start_server_on(args, Some(&url)).await);
    }
    let bases: Vec<String> = servers.iter().map(|server| server.base.clone()).collect();
    let server_pids: Vec<u32> = servers
        .iter()
        .filter_map(|server| server.child.id())
        .collect();
    let redis_pids: Vec<u32> = redis.iter().filter_map(|node| node.child.id()).collect();

    let rooms = scale::mix(args.members);
    let sockets = args.members + rooms.len();
    let workers = args.workers.unwrap_or(sockets.div_ceil(17_000)).max(1);
    let chunk = args.members.div_ceil(workers);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = std::env::current_exe().expect("the bench's own path");
    let baseline: Vec<u64> = server_pids
        .iter()
        .map(|pid| rss_bytes(*pid).unwrap_or(0))
        .collect();
    let started = std::time::Instant::now();
    let mut processes = Vec::new();
    for worker in 0..workers {
        let first = worker * chunk;
        let spec = scale::WorkerSpec {
            bases: bases.clone(),
            secret: args.secret.clone(),
            rooms: rooms.clone(),
            first,
            count: chunk.min(args.members.saturating_sub(first)),
            worker,
            workers,
            hold: args.hold,
        };
        let path = dir.join(format!("worker-{worker}.json"));
        std::fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
        let mut child = tokio::process::Command::new(&exe)
            .arg("--scale-worker")
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("a load process starts");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        processes.push((child, lines));
    }
    let mut connected = 0;
    for (_, lines) in &mut processes {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("a load process said ready");
        connected += line
            .trim_start_matches("ready ")
            .parse::<usize>()
            .unwrap_or(0);
    }
    let connect_time = started.elapsed();
    let connected_rss: Vec<u64> = server_pids
        .iter()
        .map(|pid| rss_bytes(*pid).unwrap_or(0))
        .collect();
    let cpu_at = |pids: &[u32]| -> Vec<Duration> {
        pids.iter()
            .map(|pid| cpu_time(*pid).unwrap_or_default())
            .collect()
    };
    let (servers_before, redis_before) = (cpu_at(&server_pids), cpu_at(&redis_pids));
    let run_started = std::time::Instant::now();
    for (child, _) in &mut processes {
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").await.unwrap();
        stdin.flush().await.unwrap();
    }
    let cut = args.cut_redis_at.map(|after| {
        let port = redis
            .first()
            .map(|node| node.port)
            .expect("a Redis the bench started");
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let mut count = 0;
            // Commands' connections, then subscribers' (RESP2 Pub/Sub, or RESP3 with
            // subscriptions, as a cluster's are).
            for kind in ["normal", "pubsub"] {
                let killed = tokio::process::Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "CLIENT", "KILL", "TYPE", kind])
                    .output()
                    .await
                    .expect("redis-cli runs");
                count += String::from_utf8_lossy(&killed.stdout)
                    .trim()
                    .parse::<usize>()
                    .unwrap_or(0);
            }
            eprintln!("cut {count} client connections of the Redis on port {port}");
            count
        })
    });
    let mut reports = Vec::new();
    for (_, lines) in &mut processes {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("a load process reported");
        reports.push(serde_json::from_str::<scale::WorkerReport>(&line).expect("a report"));
    }
    let elapsed = run_started.elapsed();
    // Every report is in: the load processes may end.
    for (child, _) in &mut processes {
        drop(child.stdin.take());
    }
    let (servers_after, redis_after) = (cpu_at(&server_pids), cpu_at(&redis_pids));
    let still = server_pids
        .iter()
        .map(|pid| rss_bytes(*pid).unwrap_or(0))
        .collect::<Vec<_>>();

    let mut same = scale::Histogram::default();
    let mut cross = scale::Histogram::default();
    let mut delivered = vec![0_u64; servers.len()];
    let (mut expected, mut lost, mut duplicates, mut out_of_order, mut evicted, mut other) =
        (0, 0, 0, 0, 0, 0);
    let (mut refused, mut rejoined) = (0, 0);
    for report in &reports {
        same.merge(&report.same_server);
        cross.merge(&report.cross_server);
        for (server, count) in report.delivered.iter().enumerate() {
            delivered[server] += count;
        }
        expected += report.expected;
        lost += report.lost_by_open;
        duplicates += report.duplicates;
        out_of_order += report.out_of_order;
        evicted += report.evicted;
        other += report.other_closes;
        refused += report.refused;
        rejoined += report.rejoined;
    }
    let total: u64 = delivered.iter().sum();
    let redis_kind = if args.cluster {
        "a 3-master Redis Cluster".to_owned()
    } else if args.redis_url.is_some() {
        url.clone()
    } else {
        "one Redis".to_owned()
    };
    println!(
        "chorus scale benchmark: {} servers on {redis_kind}",
        servers.len()
    );
    println!(
        "  members            {connected} connected of {} in {} rooms, by {workers} load processes, in {:.1} s ({rejoined} joins refused with 1013 and made again)",
        args.members,
        rooms.len(),
        connect_time.as_secs_f64()
    );
    println!(
        "  held               {:.0} s, every room publishing (1/s in the largest, 0.5/s in rooms of 1,000, 0.2/s in rooms of 10)",
        elapsed.as_secs_f64()
    );
    if let (Some(cut), Some(after)) = (cut, args.cut_redis_at) {
        if cut.is_finished() {
            let count = cut.await.unwrap_or_default();
            println!(
                "  cut                {count} Redis client connections, {} s into the hold",
                after.as_secs()
            );
        } else {
            cut.abort();
            println!("  cut                none: the hold ended first");
        }
    }
    println!(
        "  delivered          {total} of {expected}: {:.0} deliveries/s",
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  errors             {lost} lost, {duplicates} duplicated, {out_of_order} out of order; {evicted} evicted (4008), {other} closed otherwise; {refused} sends refused and made again"
    );
    println!(
        "  latency (ms)       same server p50 {:.2} p99 {:.2}; other server p50 {:.2} p99 {:.2}",
        same.percentile_ms(0.5),
        same.percentile_ms(0.99),
        cross.percentile_ms(0.5),
        cross.percentile_ms(0.99)
    );
    for (n, pid) in server_pids.iter().enumerate() {
        let cpu = servers_after[n].saturating_sub(servers_before[n]);
        let members_here = (0..args.members)
            .filter(|m| m % servers.len() == n)
            .count()
            .max(1);
        println!(
            "  server {n} (pid {pid}) CPU {:.1} s, {:.2} µs per delivery; {:.1} KiB per connection, {:.1} MiB after",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / delivered[n].max(1) as f64,
            connected_rss[n].saturating_sub(baseline[n]) as f64 / 1024.0 / members_here as f64,
            still[n] as f64 / 1048576.0
        );
    }
    if !redis_pids.is_empty() {
        let cpu: Duration = redis_after
            .iter()
            .zip(&redis_before)
            .map(|(after, before)| after.saturating_sub(*before))
            .sum();
        println!(
            "  Redis              CPU {:.1} s over {} process(es), {:.2} µs per delivery",
            cpu.as_secs_f64(),
            redis_pids.len(),
            cpu.as_secs_f64() * 1e6 / total.max(1) as f64
        );
    }
    drop(processes);
    drop(servers);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
