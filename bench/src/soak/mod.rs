//! The soak scenario: members of many rooms over several servers sharing one Redis,
//! for a long time, while what an operator lives with happens around them: members
//! come, go, and reconnect with `since`; servers are restarted one at a time (SIGTERM,
//! and once SIGKILL); Redis is restarted. Every member checks that it got its room's
//! messages once and in order across all its connections, each sender resends what
//! was not acknowledged under the same `ref` (as the web client does), and the
//! coordinator samples the memory of every server and of Redis, reporting its slope
//! after warm-up.

mod member;
pub(crate) mod rules;
mod sender;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_server::auth::Auth;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::args::Args;
use crate::measure::rss_bytes;
use crate::redis_servers::{free_low_port, start_redis_on};
use crate::servers::{Server, start_server_at, start_server_on};
use member::member;
use rules::{Continuity, slope};
use sender::sender;

/// The run's shape, shared by every member and sender.
struct Plan {
    /// `ws://host:port` of each server; a restarted server comes back on its port.
    bases: Vec<String>,
    auth: Auth,
    rooms: usize,
    /// Messages each room's sender publishes, one per `interval`.
    messages: u64,
    interval: Duration,
    /// A member's mean time between reconnects.
    churn: Duration,
    token_lifetime: Duration,
}

impl Plan {
    fn url(&self, server: usize, room: usize, user: &str, since: Option<u64>) -> String {
        let token = self.auth.issue(user, Some(user), self.token_lifetime).token;
        let since = since.map(|id| format!("&since={id}")).unwrap_or_default();
        format!(
            "{}/ws/chat/soak-{room}?token={token}{since}",
            self.bases[server]
        )
    }
}

/// Members reconnect while the run churns, stop churning to let every member catch
/// up with the last messages, and leave at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Churn,
    Settle,
    End,
}

/// Of the reconnects a member makes while churning, the share that are a user
/// leaving for good, someone new taking its place.
const LEAVE_SHARE: f64 = 0.1;

#[derive(Default)]
struct Stats {
    connects: AtomicU64,
    /// Connections that resumed with `since`.
    resumes: AtomicU64,
    /// Welcomes after a `since` that said some messages were no longer retained.
    unrecovered: AtomicU64,
    leaves: AtomicU64,
    failed_connects: AtomicU64,
    published: AtomicU64,
    resent: AtomicU64,
    /// Close codes the servers sent (1006: the connection just ended).
    closes: Mutex<BTreeMap<u16, u64>>,
    /// Error codes the senders got back.
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    fn closed(&self, code: u16) {
        *self.closes.lock().unwrap().entry(code).or_default() += 1;
    }

    fn refused(&self, code: &str) {
        *self
            .errors
            .lock()
            .unwrap()
            .entry(code.to_owned())
            .or_default() += 1;
    }
}

/// What happens to the deployment during the run, at a share of its duration.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// A server stopped with this signal and started again on its port.
    Restart(usize, i32),
    /// Redis stopped (SIGTERM: it writes its append-only file) and started again.
    RestartRedis,
}

fn events(servers: usize) -> [(f64, Event); 5] {
    [
        (0.15, Event::Restart(0, libc::SIGTERM)),
        (0.30, Event::Restart(1 % servers, libc::SIGTERM)),
        (0.45, Event::RestartRedis),
        (0.60, Event::Restart(2 % servers, libc::SIGTERM)),
        (0.75, Event::Restart(1 % servers, libc::SIGKILL)),
    ]
}

/// Stops a process with `signal` and waits for it to end.
#[allow(unsafe_code)] // kill(2): libc has no safe wrapper for it.
async fn stop(child: &mut tokio::process::Child, signal: i32) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a pid this process started and has not reaped.
        unsafe { libc::kill(pid as i32, signal) };
    }
    let _ = child.wait().await;
}

/// A field of `redis-cli INFO`, or of any `name:value` lines.
fn info_field(info: &str, name: &str) -> Option<u64> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
}

fn redis_cli(port: u16, command: &[&str]) -> Option<String> {
    let output = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(command)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One server's life between two restarts, and its memory over it.
struct Instance {
    server: usize,
    started: f64,
    /// (minutes into the run, MiB)
    rss: Vec<(f64, f64)>,
}

/// The soak's coordinator.
pub(crate) async fn run(args: &Args) {
    let nodes = args.nodes as usize;
    assert!(nodes >= 2, "the soak needs --nodes 2 or more");
    let duration = args.duration;
    let minutes = |at: Instant, since: Instant| (at - since).as_secs_f64() / 60.0;
    let warm_up = Duration::from_secs(300).min(duration / 6);
    let dir = std::env::temp_dir().join(format!("chorus-soak-{}", std::process::id()));
    let redis_port = free_low_port();
    let mut redis = start_redis_on(&dir, redis_port, false, true).await;
    let url = format!("redis://127.0.0.1:{redis_port}");
    let mut servers: Vec<Server> = Vec::new();
    for _ in 0..nodes {
        servers.push(start_server_on(args, Some(&url)).await);
    }
    let bases: Vec<String> = servers.iter().map(|server| server.base.clone()).collect();
    let rooms = args.members.div_ceil(ROOM_SIZE).max(1);
    let interval = Duration::from_secs_f64(rooms as f64 / f64::from(args.rate));
    // Senders stop a little before the end, churn and restarts earlier still, so
    // every member can be seen to catch up.
    let messages = (duration.mul_f64(0.95).as_secs_f64() / interval.as_secs_f64()) as u64;
    let plan = Arc::new(Plan {
        bases: bases.clone(),
        auth: Auth::new(args.secret.as_bytes()),
        rooms,
        messages,
        interval,
        churn: args.churn,
        token_lifetime: duration + Duration::from_secs(3600),
    });
    eprintln!(
        "soak: {} members in {rooms} rooms over {nodes} servers, {} messages/s, {:?}; each member reconnects every {:?} on average",
        args.members, args.rate, duration, args.churn
    );

    let (phase_tx, phase) = watch::channel(Phase::Churn);
    let stats = Arc::new(Stats::default());
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    for slot in 0..args.members {
        tokio::spawn(member(
            plan.clone(),
            slot,
            phase.clone(),
            reports_tx.clone(),
            stats.clone(),
        ));
    }
    drop(reports_tx);
    for room in 0..rooms {
        tokio::spawn(sender(plan.clone(), room, phase.clone(), stats.clone()));
    }

    let started = Instant::now();
    let mut instances: Vec<Instance> = (0..nodes)
        .map(|server| Instance {
            server,
            started: 0.0,
            rss: Vec::new(),
        })
        .collect();
    let mut current: Vec<usize> = (0..nodes).collect();
    let mut redis_memory: Vec<(f64, f64)> = Vec::new();
    let schedule = events(nodes);
    let mut next_event = 0;
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while started.elapsed() < duration {
        tick.tick().await;
        let now = minutes(Instant::now(), started);
        for (server, instance) in current.iter().enumerate() {
            if let Some(rss) = servers[server].child.id().and_then(rss_bytes) {
                instances[*instance].rss.push((now, rss as f64 / 1048576.0));
            }
        }
        if let Some(used) = redis_cli(redis_port, &["info", "memory"])
            .and_then(|info| info_field(&info, "used_memory"))
        {
            redis_memory.push((now, used as f64 / 1048576.0));
        }
        if started.elapsed() >= duration.mul_f64(0.9) && *phase_tx.borrow() == Phase::Churn {
            eprintln!("{now:5.1} min: churn stops; members catch up");
            let _ = phase_tx.send(Phase::Settle);
        }
        let Some((share, event)) = schedule.get(next_event).copied() else {
            continue;
        };
        if started.elapsed() < duration.mul_f64(share) {
            continue;
        }
        next_event += 1;
        match event {
            Event::Restart(server, signal) => {
                let name = if signal == libc::SIGKILL {
                    "SIGKILL"
                } else {
                    "SIGTERM"
                };
                eprintln!("{now:5.1} min: server {} gets {name}", server + 1);
                stop(&mut servers[server].child, signal).await;
                let addr = bases[server].trim_start_matches("ws://").to_owned();
                servers[server] = start_server_at(args, Some(&url), &addr).await;
                current[server] = instances.len();
                instances.push(Instance {
                    server,
                    started: minutes(Instant::now(), started),
                    rss: Vec::new(),
                });
            }
            Event::RestartRedis => {
                eprintln!("{now:5.1} min: Redis restarts");
                stop(&mut redis.child, libc::SIGTERM).await;
                redis = start_redis_on(&dir, redis_port, false, true).await;
            }
        }
    }
    let _ = phase_tx.send(Phase::Settle);

    // Every member slot reports once at the end (and once per user who left).
    let mut totals = Continuity::default();
    let (mut to_the_end, mut incomplete) = (0, 0);
    let settle = tokio::time::sleep(SETTLE_LIMIT);
    tokio::pin!(settle);
    loop {
        let report = tokio::select! {
            report = reports.recv() => report,
            () = &mut settle, if *phase_tx.borrow() != Phase::End => {
                eprintln!("some members still wait for messages after {SETTLE_LIMIT:?}");
                let _ = phase_tx.send(Phase::End);
                continue;
            }
        };
        let Some(report) = report else {
            break;
        };
        if report.to_the_end {
            to_the_end += 1;
            if !report.log.has_all(messages) {
                incomplete += 1;
            }
        }
        totals.received += report.log.received;
        totals.lost += report.log.lost;
        totals.duplicates += report.log.duplicates;
        if to_the_end == args.members {
            break;
        }
    }
    let _ = phase_tx.send(Phase::End);
    let elapsed = started.elapsed();
    let keys = redis_cli(redis_port, &["dbsize"]).unwrap_or_default();

    let counter = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let published = counter(&stats.published);
    println!(
        "soak: {:.1} min, {nodes} servers on one Redis, {} members in {rooms} rooms, {} messages/s",
        elapsed.as_secs_f64() / 60.0,
        args.members,
        args.rate
    );
    println!(
        "  connections        {} ({} resumed with since, {} refused or failed and retried), {} users left for good",
        counter(&stats.connects),
        counter(&stats.resumes),
        counter(&stats.failed_connects),
        counter(&stats.leaves)
    );
    println!(
        "  published          {published} of {} ({} resent after an error or a lost connection)",
        messages * rooms as u64,
        counter(&stats.resent)
    );
    println!("  senders' errors    {:?}", stats.errors.lock().unwrap());
    println!("  closes             {:?}", stats.closes.lock().unwrap());
    println!(
        "  delivered          {} ; lost {} ; duplicated or reordered {} ; not recovered {} ; without the last message {incomplete} of {to_the_end}",
        totals.received,
        totals.lost,
        totals.duplicates,
        counter(&stats.unrecovered)
    );
    let warm = warm_up.as_secs_f64() / 60.0;
    println!("  memory after {warm:.1} min of warm-up (each server's life since its last start):");
    for instance in &instances {
        let after: Vec<(f64, f64)> = instance
            .rss
            .iter()
            .copied()
            .filter(|(at, _)| *at >= instance.started + warm)
            .collect();
        let (Some(first), Some(last)) = (after.first(), after.last()) else {
            continue;
        };
        println!(
            "    server {} from {:4.1} min: RSS {:6.1} → {:6.1} MiB over {:4.1} min, slope {:+.3} MiB/min",
            instance.server + 1,
            instance.started,
            first.1,
            last.1,
            last.0 - first.0,
            slope(&after)
        );
    }
    let redis_after: Vec<(f64, f64)> = redis_memory
        .iter()
        .copied()
        .filter(|(at, _)| *at >= warm)
        .collect();
    let peak = redis_after.iter().map(|(_, mib)| *mib).fold(0.0, f64::max);
    if let (Some(first), Some(last)) = (redis_after.first(), redis_after.last()) {
        println!(
            "    Redis used_memory {:6.1} → {:6.1} MiB (peak {peak:.1}), slope {:+.3} MiB/min; {} keys at the end",
            first.1,
            last.1,
            slope(&redis_after),
            keys.trim()
        );
    }
    drop(servers);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Members per room.
const ROOM_SIZE: usize = 20;
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How long members may take to catch up once the senders are done.
const SETTLE_LIMIT: Duration = Duration::from_secs(120);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_are_read_by_name() {
        assert_eq!(
            info_field("a:1\r\nused_memory:42\r\n", "used_memory"),
            Some(42)
        );
        assert_eq!(info_field("used_memory_rss:7\r\n", "used_memory"), None);
    }
}
