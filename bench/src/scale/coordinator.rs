//! The scale scenario's coordinator: Redis (or a cluster), the servers, the load
//! processes, and the figures they report.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};

use crate::args::Args;
use crate::measure::{cpu_time, rss_bytes};
use crate::redis_servers::start_redis;
use crate::servers::start_server_on;

/// The scale scenario's coordinator: Redis, the servers, the load processes, the
/// figures.
pub(crate) async fn run_scale(args: &Args) {
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

    let rooms = super::mix(args.members);
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
        let spec = super::WorkerSpec {
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
    for line in next_lines(&mut processes, "said ready").await {
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
    for line in next_lines(&mut processes, "reported").await {
        reports.push(serde_json::from_str::<super::WorkerReport>(&line).expect("a report"));
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

    let mut same = super::Histogram::default();
    let mut cross = super::Histogram::default();
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

/// The next line each load process writes, in order: what it `did` (said ready,
/// reported).
async fn next_lines(
    processes: &mut [(
        tokio::process::Child,
        Lines<BufReader<tokio::process::ChildStdout>>,
    )],
    did: &str,
) -> Vec<String> {
    let mut lines = Vec::with_capacity(processes.len());
    for (_, process) in processes.iter_mut() {
        let line = process.next_line().await.unwrap();
        lines.push(line.unwrap_or_else(|| panic!("a load process {did}")));
    }
    lines
}
