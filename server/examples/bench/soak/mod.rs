//! The soak scenario: members of many rooms over several servers sharing one Redis,
//! for a long time, while what an operator lives with happens around them: members
//! come, go, and reconnect with `since`; servers are restarted one at a time (SIGTERM,
//! and once SIGKILL); Redis is restarted. Every member checks that it got its room's
//! messages once and in order across all its connections, each sender resends what
//! was not acknowledged under the same `ref` (as the web client does), and the
//! coordinator samples the memory of every server and of Redis, reporting its slope
//! after warm-up.

pub(crate) mod rules;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_server::auth::Auth;
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::load::{Socket, now_us, try_connect};
use crate::{Args, Server, rss_bytes, start_redis_on, start_server_at, start_server_on};
use rules::{Continuity, slope};

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

/// The fields of a server frame the soak looks at.
#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    id: Option<u64>,
    content: Option<String>,
    last_id: Option<u64>,
    recovered: Option<bool>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    code: Option<String>,
}

/// What a read from a socket brought, as the soak sees it.
enum Incoming {
    Frame(Frame),
    /// The close code (1006: the connection just ended).
    Closed(u16),
    /// Anything else: a WebSocket ping, a frame that is not JSON.
    Other,
}

fn incoming(next: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> Incoming {
    match next {
        Some(Ok(Message::Text(text))) => {
            serde_json::from_str(text.as_str()).map_or(Incoming::Other, Incoming::Frame)
        }
        Some(Ok(Message::Close(frame))) => {
            Incoming::Closed(frame.map_or(1005, |frame| u16::from(frame.code)))
        }
        Some(Ok(_)) => Incoming::Other,
        Some(Err(_)) | None => Incoming::Closed(1006),
    }
}

const PONG: &str = r#"{"type":"pong"}"#;

/// Connects to any server that answers, as a client behind a load balancer does,
/// retrying with backoff while servers restart; `None` once the run ends.
async fn connect_any(
    plan: &Plan,
    room: usize,
    user: &str,
    since: Option<u64>,
    rng: &mut StdRng,
    stats: &Stats,
    phase: &watch::Receiver<Phase>,
) -> Option<(Socket, usize)> {
    let mut backoff = Duration::from_millis(100);
    while *phase.borrow() != Phase::End {
        let server = rng.random_range(0..plan.bases.len());
        let url = plan.url(server, room, user, since);
        if let Ok(Ok(ws)) = tokio::time::timeout(CONNECT_LIMIT, try_connect(&url, 0)).await {
            stats.connects.fetch_add(1, Ordering::Relaxed);
            if since.is_some() {
                stats.resumes.fetch_add(1, Ordering::Relaxed);
            }
            return Some((ws, server));
        }
        stats.failed_connects.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(backoff.mul_f64(rng.random_range(0.5..1.5))).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    None
}

const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// How one connection of a member ended.
enum Ended {
    /// Its time to reconnect came.
    Churn,
    /// The server closed it (or it just ended: 1006).
    Closed(u16),
    /// The run is settling and the member has every message.
    Complete,
    End,
}

async fn session(
    ws: &mut Socket,
    log: &mut Continuity,
    plan: &Plan,
    churn_at: Instant,
    phase: &mut watch::Receiver<Phase>,
    stats: &Stats,
    who: &str,
) -> Ended {
    let connected = Instant::now();
    let debug = std::env::var_os("SOAK_DEBUG").is_some();
    let churn = tokio::time::sleep_until(churn_at);
    tokio::pin!(churn);
    loop {
        let now = *phase.borrow_and_update();
        match now {
            Phase::End => return Ended::End,
            Phase::Settle if log.has_all(plan.messages) => return Ended::Complete,
            _ => {}
        }
        let frame = tokio::select! {
            () = &mut churn, if now == Phase::Churn => return Ended::Churn,
            changed = phase.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return Ended::End,
            },
            frame = ws.next() => frame,
        };
        let frame = match incoming(frame) {
            Incoming::Frame(frame) => frame,
            Incoming::Closed(code) => return Ended::Closed(code),
            Incoming::Other => continue,
        };
        match frame.kind.as_str() {
            "ping" => {
                let _ = ws.send(Message::text(PONG)).await;
            }
            "welcome" => {
                if frame.recovered == Some(false) && log.since().is_some() {
                    stats.unrecovered.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(last_id) = frame.last_id {
                    log.welcome(last_id);
                }
            }
            "message" => {
                let seq = frame
                    .content
                    .as_deref()
                    .and_then(|content| content.split(' ').nth(1))
                    .and_then(|seq| seq.parse().ok());
                if let (Some(id), Some(seq)) = (frame.id, seq) {
                    let duplicates = log.duplicates;
                    log.message(id, seq);
                    if log.duplicates > duplicates && debug {
                        eprintln!(
                            "{who}: message {id} (number {seq}) again, {:.3} s into this connection; now {log:?}",
                            connected.elapsed().as_secs_f64(),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

/// What a member reports when its user leaves for good or the run ends.
struct MemberReport {
    log: Continuity,
    /// Still there at the end (the slot's last user), so it should have everything.
    to_the_end: bool,
}

/// One member slot of a room: a user who reconnects now and then with `since`, and
/// sometimes leaves for good, someone new taking its place.
async fn member(
    plan: Arc<Plan>,
    slot: usize,
    mut phase: watch::Receiver<Phase>,
    reports: mpsc::UnboundedSender<MemberReport>,
    stats: Arc<Stats>,
) {
    let room = slot % plan.rooms;
    let mut rng = StdRng::seed_from_u64(slot as u64);
    let mut generation = 0;
    let mut log = Continuity::default();
    let mut last_server = None;
    loop {
        let user = format!("soak-{slot}-{generation}");
        let Some((mut ws, server)) =
            connect_any(&plan, room, &user, log.since(), &mut rng, &stats, &phase).await
        else {
            break;
        };
        last_server = Some(server);
        let churn_at = Instant::now() + plan.churn.mul_f64(rng.random_range(0.1..1.9));
        let who = format!("{user} on server {} since {:?}", server + 1, log.since());
        match session(&mut ws, &mut log, &plan, churn_at, &mut phase, &stats, &who).await {
            Ended::Churn => {
                let _ = ws.close(None).await;
                if rng.random_bool(LEAVE_SHARE) {
                    stats.leaves.fetch_add(1, Ordering::Relaxed);
                    let log = std::mem::take(&mut log);
                    let _ = reports.send(MemberReport {
                        log,
                        to_the_end: false,
                    });
                    generation += 1;
                }
                let away = Duration::from_millis(rng.random_range(0..2000));
                tokio::time::sleep(away).await;
            }
            Ended::Closed(code) => {
                stats.closed(code);
                let backoff = Duration::from_millis(rng.random_range(0..500));
                tokio::time::sleep(backoff).await;
            }
            Ended::Complete => {
                let _ = ws.close(None).await;
                break;
            }
            Ended::End => break,
        }
    }
    log.finish(plan.messages);
    if std::env::var_os("SOAK_DEBUG").is_some() && log.lost > 0 {
        eprintln!(
            "member {slot} of room {room}, last on server {:?}, missed {:?}",
            last_server.map(|server| server + 1),
            log.gaps
        );
    }
    let _ = reports.send(MemberReport {
        log,
        to_the_end: true,
    });
}

/// How one attempt at sending a message went.
enum Sent {
    Acknowledged,
    /// Answered with an `error` (e.g. `unavailable` while Redis restarts).
    Refused(String),
    /// The connection ended first.
    Closed(u16),
    NoAnswer,
}

async fn send_once(ws: &mut Socket, frame: &str, reference: &str) -> Sent {
    if ws.send(Message::text(frame)).await.is_err() {
        return Sent::Closed(1006);
    }
    let deadline = tokio::time::sleep(ACK_LIMIT);
    tokio::pin!(deadline);
    loop {
        let next = tokio::select! {
            () = &mut deadline => return Sent::NoAnswer,
            next = ws.next() => next,
        };
        let answer = match incoming(next) {
            Incoming::Frame(answer) => answer,
            Incoming::Closed(code) => return Sent::Closed(code),
            Incoming::Other => continue,
        };
        let ours = answer.reference.as_deref() == Some(reference);
        match answer.kind.as_str() {
            "ping" => {
                let _ = ws.send(Message::text(PONG)).await;
            }
            "ack" if ours => return Sent::Acknowledged,
            "error" if ours => return Sent::Refused(answer.code.unwrap_or_default()),
            _ => {}
        }
    }
}

const ACK_LIMIT: Duration = Duration::from_secs(10);

/// Reads (and answers pings) until `until`; false if the connection ended.
async fn idle_until(ws: &mut Socket, until: Instant, stats: &Stats) -> bool {
    loop {
        let next = tokio::select! {
            () = tokio::time::sleep_until(until) => return true,
            next = ws.next() => next,
        };
        match incoming(next) {
            Incoming::Frame(frame) if frame.kind == "ping" => {
                let _ = ws.send(Message::text(PONG)).await;
            }
            Incoming::Closed(code) => {
                stats.closed(code);
                return false;
            }
            Incoming::Frame(_) | Incoming::Other => {}
        }
    }
}

/// A room's sender: a message every `interval`, each sent until acknowledged (again
/// after an error or a lost connection, under the same `ref`), one at a time so
/// they are published in order.
async fn sender(plan: Arc<Plan>, room: usize, phase: watch::Receiver<Phase>, stats: Arc<Stats>) {
    let user = format!("soak-sender-{room}");
    let mut rng = StdRng::seed_from_u64(u64::MAX - room as u64);
    // Rooms start spread over one interval, as independent rooms would.
    let start = Instant::now() + plan.interval.mul_f64((room as f64 * 0.618_034) % 1.0);
    let mut ws: Option<Socket> = None;
    for seq in 0..plan.messages {
        let due = start + plan.interval * seq as u32;
        match ws.as_mut() {
            Some(socket) => {
                if !idle_until(socket, due, &stats).await {
                    ws = None;
                }
            }
            None => tokio::time::sleep_until(due).await,
        }
        let reference = format!("{room}-{seq}");
        let frame = serde_json::json!({
            "type": "message",
            "content": format!("{} {seq}", now_us()),
            "ref": reference,
        })
        .to_string();
        let mut attempts = 0;
        loop {
            if ws.is_none() {
                ws = connect_any(&plan, room, &user, None, &mut rng, &stats, &phase)
                    .await
                    .map(|(socket, _)| socket);
            }
            let Some(socket) = ws.as_mut() else {
                return;
            };
            attempts += 1;
            match send_once(socket, &frame, &reference).await {
                Sent::Acknowledged => break,
                Sent::Refused(code) => {
                    stats.refused(&code);
                    tokio::time::sleep(Duration::from_millis(rng.random_range(100..400))).await;
                }
                Sent::Closed(code) => {
                    stats.closed(code);
                    ws = None;
                }
                Sent::NoAnswer => {}
            }
        }
        stats.published.fetch_add(1, Ordering::Relaxed);
        stats.resent.fetch_add(attempts - 1, Ordering::Relaxed);
    }
    if let Some(mut socket) = ws {
        let _ = socket.close(None).await;
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
    let redis_port = crate::free_low_port();
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
