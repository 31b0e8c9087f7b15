//! The scale scenario: several servers sharing rooms through one Redis or a Redis
//! Cluster, members in rooms of every size connected by several load processes
//! (one process may open at most 20,000 files), a steady publishing rate for the
//! whole hold, and what it cost: losses, duplicates and reordering (which must be
//! none), latency for members on the sender's server and on others, CPU per
//! delivery for each server and for Redis, memory per connection.
//!
//! The bench itself is every load process: `--scale-worker SPEC` runs one share of
//! the members (SPEC is a JSON file the coordinator wrote), says `ready` on stdout
//! once they are all in, starts on `go` from stdin, reports as a line of JSON once
//! its members have every message, and ends when stdin closes (its senders may still
//! be talking to members of other processes until then).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

pub(crate) mod coordinator;

use crate::load::{Tally, Target, connect, count_messages, now_us, try_connect};

/// One room of the mix: how many members, and how many messages a second its
/// sender publishes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoomPlan {
    pub name: String,
    pub members: usize,
    pub rate: f64,
}

/// Rooms of every size for `members`: one of a tenth of them (10,000 of 100,000),
/// rooms of 1,000 for four tenths, rooms of 10 for the rest. Many small rooms talk
/// slowly, the large ones faster, as chat rooms do.
pub(crate) fn mix(members: usize) -> Vec<RoomPlan> {
    let mut rooms = Vec::new();
    let mut room = |members: usize, rate: f64| {
        let name = format!("scale-{}-{members}", rooms.len());
        rooms.push(RoomPlan {
            name,
            members,
            rate,
        });
    };
    let large = members / 10;
    if large > 0 {
        room(large, 1.0);
    }
    for _ in 0..members * 4 / 10 / 1000 {
        room(1000, 0.5);
    }
    let placed: usize = large + members * 4 / 10 / 1000 * 1000;
    let rest = members - placed;
    for _ in 0..rest / 10 {
        room(10, 0.2);
    }
    if !rest.is_multiple_of(10) {
        room(rest % 10, 0.2);
    }
    rooms
}

/// What one load process does.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WorkerSpec {
    pub bases: Vec<String>,
    pub secret: String,
    pub rooms: Vec<RoomPlan>,
    /// This process's share: the members `first..first + count` (numbered room after
    /// room), and the senders of rooms `r` with `r % workers == worker`.
    pub first: usize,
    pub count: usize,
    pub worker: usize,
    pub workers: usize,
    pub hold: Duration,
}

impl WorkerSpec {
    /// How many messages room `r` publishes over the hold.
    fn messages(&self, r: usize) -> usize {
        ((self.hold.as_secs_f64() * self.rooms[r].rate).round() as usize).max(1)
    }

    /// The server of member `m` and of room `r`'s sender.
    fn member_server(&self, m: usize) -> usize {
        m % self.bases.len()
    }

    fn sender_server(&self, r: usize) -> usize {
        r % self.bases.len()
    }
}

/// Latencies, in 50 µs steps: sparse, so a process's millions of deliveries fit in
/// a line of JSON.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Histogram {
    pub steps: BTreeMap<u32, u64>,
}

const STEP_US: u64 = 50;

impl Histogram {
    fn add(&mut self, us: u64) {
        *self
            .steps
            .entry((us / STEP_US).min(u64::from(u32::MAX)) as u32)
            .or_default() += 1;
    }

    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (step, count) in &other.steps {
            *self.steps.entry(*step).or_default() += count;
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.steps.values().sum()
    }

    /// The latency below which `p` of them fall, in milliseconds.
    pub(crate) fn percentile_ms(&self, p: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return f64::NAN;
        }
        let wanted = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (step, count) in &self.steps {
            seen += count;
            if seen >= wanted {
                return ((u64::from(*step) + 1) * STEP_US) as f64 / 1000.0;
            }
        }
        f64::NAN
    }
}

/// What a load process saw, per server its members were on.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct WorkerReport {
    pub connected: usize,
    /// Distinct messages received by members on each server.
    pub delivered: Vec<u64>,
    pub expected: u64,
    pub lost_by_open: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub evicted: u64,
    pub other_closes: u64,
    /// Sends the servers refused with an `error` frame, and the senders made again
    /// under the same `ref`.
    pub refused: u64,
    /// Joins the servers refused (1013) and the member made again.
    pub rejoined: u64,
    /// Members on the sender's server, and on another.
    pub same_server: Histogram,
    pub cross_server: Histogram,
}

pub(crate) const PONG: &str = r#"{"type":"pong"}"#;

/// How long a sender waits before sending a refused message again.
const RESEND_AFTER: Duration = Duration::from_millis(200);

/// The `ref` of a server frame (an ack, an error), if it has one.
fn reference_of(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Referenced {
        #[serde(rename = "ref")]
        reference: Option<String>,
    }
    serde_json::from_str::<Referenced>(text).ok()?.reference
}

/// How the wait for the run's start ended.
enum Start {
    Go,
    /// A message came first: its sender, maybe in another load process, heard `go`
    /// before this one did. It counts.
    Early(Message),
    Closed,
}

/// Until the run starts: pings answered (the heartbeat closes a socket that does
/// not), presence read and dropped (a member that does not read is evicted).
async fn until_go<W, R>(
    write: &mut W,
    read: &mut R,
    go: &mut tokio::sync::watch::Receiver<bool>,
) -> Start
where
    W: futures_util::Sink<Message> + Unpin,
    R: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while !*go.borrow_and_update() {
        tokio::select! {
            changed = go.changed() => if changed.is_err() { return Start::Closed },
            frame = read.next() => match frame {
                Some(Ok(Message::Text(text))) if text.contains(r#""type":"ping""#) => {
                    let _ = write.send(Message::text(PONG)).await;
                }
                Some(Ok(Message::Text(text))) if text.contains(r#""type":"message""#) => {
                    return Start::Early(Message::Text(text));
                }
                Some(Ok(_)) => {}
                _ => return Start::Closed,
            },
        }
    }
    Start::Go
}

/// Reads until the server's welcome (answering pings); false if the connection
/// closed first.
async fn welcome(ws: &mut crate::load::Socket) -> bool {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) if text.contains(r#""type":"welcome""#) => return true,
            Some(Ok(Message::Text(text))) if text.contains(r#""type":"ping""#) => {
                let _ = ws.send(Message::text(PONG)).await;
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => return false,
            Some(Ok(_)) => {}
        }
    }
}

/// Runs one load process: `--scale-worker SPEC`.
pub(crate) async fn worker(spec_path: &str) {
    let spec: WorkerSpec = serde_json::from_slice(
        &std::fs::read(spec_path).unwrap_or_else(|err| panic!("cannot read {spec_path}: {err}")),
    )
    .expect("a worker spec");
    let nodes = spec.bases.len();
    // Where each member is: its room, by the rooms' sizes.
    let mut starts = Vec::with_capacity(spec.rooms.len());
    let mut at = 0;
    for room in &spec.rooms {
        starts.push(at);
        at += room.members;
    }
    let room_of = |m: usize| starts.partition_point(|start| *start <= m) - 1;

    let (go_tx, _) = tokio::sync::watch::channel(false);
    let (tallies, mut collected) = mpsc::unbounded_channel::<(usize, usize, Tally)>();
    let (welcomed_tx, mut welcomed) = mpsc::unbounded_channel::<()>();
    let rejoined = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut connected = 0;
    for m in spec.first..spec.first + spec.count {
        let r = room_of(m);
        let target = Target {
            bases: spec.bases.clone(),
            secret: spec.secret.clone(),
            room: spec.rooms[r].name.clone(),
        };
        let url = target.url(&format!("m{m}"), m);
        let mut ws = connect(&url, m - spec.first).await;
        connected += 1;
        let messages = spec.messages(r);
        let tallies = tallies.clone();
        let welcomed = welcomed_tx.clone();
        let rejoined = rejoined.clone();
        let mut go = go_tx.subscribe();
        let (server, sender_server) = (spec.member_server(m), spec.sender_server(r));
        let n = m - spec.first;
        tokio::spawn(async move {
            // A join the server could not seat in time (1013, retry later: Redis slow
            // under the connect storm) is retried, as a client does, until welcomed.
            while !welcome(&mut ws).await {
                rejoined.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                ws = loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Ok(ws) = try_connect(&url, n).await {
                        break ws;
                    }
                };
            }
            let _ = welcomed.send(());
            let (mut write, mut read) = ws.split();
            // Closed before the run: counted as such by the tally.
            let early = match until_go(&mut write, &mut read, &mut go).await {
                Start::Early(message) => Some(Ok(message)),
                Start::Go | Start::Closed => None,
            };
            let mut frames = futures_util::stream::iter(early).chain(&mut read);
            let tally = count_messages(&mut frames, &mut write, messages).await;
            if std::env::var_os("SCALE_DEBUG").is_some() && tally.seen.contains(&false) {
                let missing: Vec<usize> = (0..messages).filter(|n| !tally.seen[*n]).collect();
                eprintln!("member {m} of room {r} (server {server}) missed {missing:?}");
            }
            let open = tally.closed_with.is_none();
            let _ = tallies.send((server, sender_server, tally));
            // Connected to the end, pings answered: members leaving while other
            // rooms still talk would be a load of their own.
            while open && let Some(Ok(frame)) = read.next().await {
                if let Message::Text(text) = frame
                    && text.contains(r#""type":"ping""#)
                {
                    let _ = write.send(Message::text(PONG)).await;
                }
            }
        });
    }
    drop(tallies);
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut senders = 0;
    for r in (spec.worker..spec.rooms.len()).step_by(spec.workers) {
        let target = Target {
            bases: spec.bases.clone(),
            secret: spec.secret.clone(),
            room: spec.rooms[r].name.clone(),
        };
        // `url` picks server `n % servers`: the sender's.
        let url = target.url(&format!("sender-{r}"), spec.sender_server(r));
        let ws = connect(&url, spec.count + senders).await;
        senders += 1;
        let refused = refused.clone();
        let messages = spec.messages(r);
        let interval = Duration::from_secs_f64(1.0 / spec.rooms[r].rate);
        // Rooms start spread over one interval, as independent rooms would.
        let offset = interval.mul_f64((r as f64 * 0.618_034) % 1.0);
        let mut go = go_tx.subscribe();
        tokio::spawn(async move {
            let (mut write, mut read) = ws.split();
            // Connecting 100,000 members takes minutes: a sender that did not answer
            // pings meanwhile would be closed before it said a word.
            if let Start::Closed = until_go(&mut write, &mut read, &mut go).await {
                return;
            }
            let start = tokio::time::Instant::now() + offset;
            let mut sequence = 0;
            // Sent and not acknowledged yet, by `ref`; and what a refusal put back,
            // due again a moment later.
            let mut unacked: HashMap<String, String> = HashMap::new();
            let mut again: VecDeque<(tokio::time::Instant, String)> = VecDeque::new();
            // Sends on time, sends again under the same `ref` what the server
            // refused (as the browser's outbox does; its first timestamp stays, so
            // the wait counts in the latency), and stays connected with its pings
            // answered until the process ends.
            loop {
                let due = start + interval * sequence as u32;
                let again_at = again.front().map(|(at, _)| *at);
                tokio::select! {
                    () = tokio::time::sleep_until(due), if sequence < messages => {
                        let reference = format!("{r}-{sequence}");
                        let content = format!("{} {sequence}", now_us());
                        let frame = serde_json::json!({"type": "message", "content": content, "ref": reference}).to_string();
                        if write.send(Message::text(frame.clone())).await.is_err() {
                            return;
                        }
                        unacked.insert(reference, frame);
                        sequence += 1;
                    }
                    () = tokio::time::sleep_until(again_at.unwrap_or(due)), if again_at.is_some() => {
                        let (_, frame) = again.pop_front().expect("guarded");
                        if write.send(Message::text(frame)).await.is_err() {
                            return;
                        }
                    }
                    frame = read.next() => match frame {
                        Some(Ok(Message::Text(text))) if text.contains(r#""type":"ping""#) => {
                            let _ = write.send(Message::text(PONG)).await;
                        }
                        Some(Ok(Message::Text(text))) if text.contains(r#""type":"ack""#) => {
                            if let Some(reference) = reference_of(&text) {
                                unacked.remove(&reference);
                            }
                        }
                        Some(Ok(Message::Text(text))) if text.contains(r#""type":"error""#) => {
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if let Some(frame) = reference_of(&text).and_then(|reference| unacked.get(&reference)) {
                                again.push_back((tokio::time::Instant::now() + RESEND_AFTER, frame.clone()));
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                }
            }
        });
    }
    drop(welcomed_tx);
    for _ in 0..connected {
        let _ = welcomed.recv().await;
    }
    eprintln!(
        "load process {}: {connected} members and {senders} senders in",
        spec.worker
    );
    println!("ready {connected}");

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = stdin.next_line().await {
        if line.trim() == "go" {
            break;
        }
    }
    let _ = go_tx.send(true);

    let mut report = WorkerReport {
        connected,
        delivered: vec![0; nodes],
        ..WorkerReport::default()
    };
    // One tally per member; the members stay connected after theirs.
    for _ in 0..connected {
        let Some((server, sender_server, tally)) = collected.recv().await else {
            break;
        };
        let distinct = tally.seen.iter().filter(|seen| **seen).count() as u64;
        report.expected += tally.seen.len() as u64;
        report.delivered[server] += distinct;
        report.duplicates += tally.duplicates as u64;
        report.out_of_order += tally.out_of_order as u64;
        match tally.closed_with {
            Some(4008) => report.evicted += 1,
            Some(_) => report.other_closes += 1,
            None => report.lost_by_open += tally.seen.len() as u64 - distinct,
        }
        let latencies = if server == sender_server {
            &mut report.same_server
        } else {
            &mut report.cross_server
        };
        for us in tally.latencies {
            latencies.add(us);
        }
    }
    report.refused = refused.load(std::sync::atomic::Ordering::Relaxed);
    report.rejoined = rejoined.load(std::sync::atomic::Ordering::Relaxed);
    let mut stdout = tokio::io::stdout();
    let line = serde_json::to_string(&report).expect("a report") + "\n";
    stdout.write_all(line.as_bytes()).await.expect("stdout");
    stdout.flush().await.expect("stdout");
    // This process's senders talk to rooms whose members other processes count:
    // it ends when the coordinator has every report and closes stdin, not before.
    while let Ok(Some(_)) = stdin.next_line().await {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_places_every_member_once() {
        let rooms = mix(100_000);
        assert_eq!(
            rooms.iter().map(|room| room.members).sum::<usize>(),
            100_000
        );
        assert_eq!(rooms[0].members, 10_000);
        assert_eq!(rooms.iter().filter(|room| room.members == 1000).count(), 40);
        assert_eq!(rooms.iter().filter(|room| room.members == 10).count(), 5000);
        let small = mix(1234);
        assert_eq!(small.iter().map(|room| room.members).sum::<usize>(), 1234);
    }

    #[test]
    fn percentiles_come_from_the_steps() {
        let mut histogram = Histogram::default();
        for us in [10, 60, 60, 1000] {
            histogram.add(us);
        }
        assert_eq!(histogram.percentile_ms(0.5), 0.1);
        assert_eq!(histogram.percentile_ms(1.0), 1.05);
    }
}
