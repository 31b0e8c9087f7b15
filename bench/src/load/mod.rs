//! The load generator behind `make bench`: members that answer pings and count what
//! they receive (every message once, in order, or a close code), so a run reports
//! losses, duplicates and evictions apart. Shared with the test suite, which runs
//! it once at tiny scale (`server/tests/load.rs`) and asserts nothing is lost or
//! repeated, never a speed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_server::auth::Auth;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio::sync::{Barrier, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

mod storm;

pub(crate) use storm::storm;

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Where the members connect: one or more servers sharing the room.
pub struct Target {
    /// `ws://host:port` of each server; members are spread over them round-robin.
    pub bases: Vec<String>,
    /// HS256 secret the servers verify tokens with.
    pub secret: String,
    /// The room every member joins.
    pub room: String,
}

impl Target {
    pub(crate) fn url(&self, name: &str, n: usize) -> String {
        let token = Auth::new(self.secret.as_bytes())
            .issue(name, Some(name), Duration::from_secs(3600))
            .token;
        format!(
            "{}/ws/chat/{}?token={token}",
            self.bases[n % self.bases.len()],
            self.room
        )
    }
}

/// Connects from 127.0.0.x, spreading clients over source addresses (one address has
/// only ~28k ephemeral ports).
pub(crate) async fn connect(url: &str, n: usize) -> Socket {
    try_connect(url, n).await.expect("connect")
}

/// [`connect`], for a member that expects servers to come and go: a refused
/// connection or handshake is the caller's to retry.
pub(crate) async fn try_connect(
    url: &str,
    n: usize,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let host = url.trim_start_matches("ws://").split('/').next().unwrap();
    let addr: SocketAddr = tokio::net::lookup_host(host).await?.next().unwrap();
    let socket = TcpSocket::new_v4()?;
    // The first 20,000 connect from 127.0.0.1 without a bind: binding to a port of
    // the kernel's choosing searches every bound port for a conflict, which made a
    // connect cost grow with the members already connected (the 10,000-member storm
    // spent more time binding than the server spent on it); `connect` picks a port
    // per destination at once.
    if addr.ip().is_loopback() && n >= PER_SOURCE_ADDRESS {
        let source = Ipv4Addr::new(127, 0, 0, 1 + (n / PER_SOURCE_ADDRESS) as u8);
        socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    }
    let stream = socket.connect(addr).await?;
    // tungstenite clears its whole read buffer before each read: at the default
    // 128 KiB that was half the generator's CPU. Frames here are small.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        url,
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
        Some(config),
    )
    .await?;
    // As browsers do: without it, Nagle held the sender's next message until the
    // server's ACK came back, which rode on the server's next write to the sender,
    // and every latency measured included the server's write delay twice. (Only
    // after the handshake: the client writes its request in pieces, and a join storm
    // of 10,000 sent each piece as a segment of its own.)
    if let tokio_tungstenite::MaybeTlsStream::Plain(stream) = ws.get_ref() {
        stream.set_nodelay(true)?;
    }
    Ok(ws)
}

/// Clients per source address (one address has only ~28k ephemeral ports).
const PER_SOURCE_ADDRESS: usize = 20_000;

/// A simulated member's read buffer.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// What the members of a fan-out run received.
#[derive(Debug, Default)]
pub struct FanoutReport {
    /// Members that took part.
    pub members: usize,
    /// Messages sent.
    pub messages: usize,
    /// Distinct messages received, over all members.
    pub delivered: usize,
    /// Distinct messages received by members that stayed open to the end.
    pub delivered_to_open: usize,
    /// Messages a member received more than once.
    pub duplicates: usize,
    /// Messages a member received before one sent earlier.
    pub out_of_order: usize,
    /// Members closed with 4008 (too slow), and with any other code.
    pub evicted: usize,
    /// Members closed with any code but 4008.
    pub other_closes: usize,
    /// Microseconds from send to receipt, sorted.
    pub latencies_us: Vec<u64>,
    /// How long connecting every member took.
    pub connect_time: Duration,
    /// From the first message sent to the last one received (or the silence limit).
    pub elapsed: Duration,
}

impl FanoutReport {
    /// Messages no member got, not counting members that were closed (they recover
    /// with `since` in a real client).
    pub fn lost_by_members_still_open(&self) -> usize {
        let open = self.members - self.evicted - self.other_closes;
        (open * self.messages).saturating_sub(self.delivered_to_open)
    }
}

/// Reads a member's socket until it has `messages` distinct messages (numbered by
/// their content, `"<sent µs since the epoch> <sequence> …"`), a close, or 30 s of
/// silence, answering pings meanwhile.
pub(crate) async fn count_messages<W, R>(read: &mut R, write: &mut W, messages: usize) -> Tally
where
    W: futures_util::Sink<Message> + Unpin,
    R: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut tally = Tally {
        seen: vec![false; messages],
        duplicates: 0,
        out_of_order: 0,
        latencies: Vec::with_capacity(messages),
        closed_with: None,
    };
    let mut highest = None::<usize>;
    let mut distinct = 0;
    // One timer for the silence limit, moved only when it fires: a timer per read
    // (`timeout`) cost the generator more than the server spends on a delivery.
    let silence = tokio::time::sleep(SILENCE);
    tokio::pin!(silence);
    let mut last_heard = tokio::time::Instant::now();
    while distinct < messages {
        let next = tokio::select! {
            next = read.next() => next,
            () = &mut silence => {
                let quiet_until = last_heard + SILENCE;
                if tokio::time::Instant::now() >= quiet_until {
                    break;
                }
                silence.as_mut().reset(quiet_until);
                continue;
            }
        };
        let Some(Ok(message)) = next else {
            break;
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => {
                tally.closed_with = Some(frame.map_or(1005, |frame| u16::from(frame.code)));
                break;
            }
            _ => continue,
        };
        // Borrowed, and only the two fields looked at: a `serde_json::Value` per frame
        // was most of the generator's work.
        let Ok(frame) = serde_json::from_str::<FanoutFrame>(text.as_str()) else {
            continue;
        };
        if frame.kind == "ping" {
            let _ = write.send(Message::text(r#"{"type":"pong"}"#)).await;
            continue;
        }
        if frame.kind != "message" {
            continue;
        }
        // Only a message proves the room still talks: pings and presence keep
        // coming to a member that missed one, which would otherwise wait forever.
        last_heard = tokio::time::Instant::now();
        let mut parts = frame.content.as_deref().unwrap_or_default().split(' ');
        let sent_us = parts.next().and_then(|t| t.parse::<u64>().ok());
        let sequence = parts.next().and_then(|t| t.parse::<usize>().ok());
        let (Some(sent_us), Some(sequence)) = (sent_us, sequence) else {
            continue;
        };
        if sequence >= messages {
            continue;
        }
        if tally.seen[sequence] {
            tally.duplicates += 1;
            continue;
        }
        tally.seen[sequence] = true;
        distinct += 1;
        if highest.is_some_and(|highest| sequence < highest) {
            tally.out_of_order += 1;
        }
        highest = highest.max(Some(sequence));
        tally.latencies.push(now_us().saturating_sub(sent_us));
    }
    tally
}

/// How long a member waits for its next message before it gives up.
const SILENCE: Duration = Duration::from_secs(30);

/// The fields of a server frame a fan-out member looks at, borrowed from its text.
#[derive(serde::Deserialize)]
struct FanoutFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    content: Option<std::borrow::Cow<'a, str>>,
}

/// Every member's tally, once all have finished.
async fn collect(
    mut tallies: mpsc::UnboundedReceiver<Tally>,
    members: usize,
    messages: usize,
    connect_time: Duration,
    started: Instant,
) -> FanoutReport {
    let mut report = FanoutReport {
        members,
        messages,
        connect_time,
        ..FanoutReport::default()
    };
    while let Some(tally) = tallies.recv().await {
        add_tally(&mut report, tally);
    }
    report.elapsed = started.elapsed();
    report.latencies_us.sort_unstable();
    report
}

/// Adds one member's tally to a report.
fn add_tally(report: &mut FanoutReport, tally: Tally) {
    let distinct = tally.seen.iter().filter(|seen| **seen).count();
    report.delivered += distinct;
    report.duplicates += tally.duplicates;
    report.out_of_order += tally.out_of_order;
    report.latencies_us.extend(tally.latencies);
    match tally.closed_with {
        Some(4008) => report.evicted += 1,
        Some(_) => report.other_closes += 1,
        None => report.delivered_to_open += distinct,
    }
}

/// One member's tally.
pub(crate) struct Tally {
    pub(crate) seen: Vec<bool>,
    pub(crate) duplicates: usize,
    pub(crate) out_of_order: usize,
    pub(crate) latencies: Vec<u64>,
    pub(crate) closed_with: Option<u16>,
}

/// The wall clock in microseconds: a message carries when it was sent, and members
/// in other processes (the scale scenario's) read the same clock.
pub(crate) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.as_micros() as u64)
}

/// `members` members in one room, one sender publishing `messages` of `size` bytes at
/// `rate` per second. `ready` runs once every member is in and idle, just before the
/// first message (to sample the server's memory and CPU); its result comes back.
pub async fn fanout<R>(
    target: &Target,
    members: usize,
    messages: usize,
    rate: u32,
    size: usize,
    ready: impl FnOnce() -> R,
) -> (FanoutReport, R) {
    let sender = connect(&target.url("sender", 0), 0).await;
    let (mut write, mut sender_read) = sender.split();
    // Keep reading the sender's socket so it answers pings and never lags.
    tokio::spawn(async move { while sender_read.next().await.is_some() {} });

    let all_in = Arc::new(Barrier::new(members + 1));
    let (tallies, collected) = mpsc::unbounded_channel::<Tally>();
    let connect_started = Instant::now();
    let last_joiner = format!("member-{}", members.saturating_sub(1));
    // The reference peers announce a join only as text.
    let last_joined_text = format!("{last_joiner} joined the room");
    for n in 0..members {
        let ws = connect(&target.url(&format!("member-{n}"), n + 1), n + 1).await;
        let (all_in, tallies) = (all_in.clone(), tallies.clone());
        let (last_joiner, last_joined_text) = (last_joiner.clone(), last_joined_text.clone());
        tokio::spawn(async move {
            let (mut write, mut read) = ws.split();
            // Read through the join announcements of everyone after us (the room
            // sends them in order), so the broadcast is measured on idle sockets.
            while let Some(Ok(Message::Text(text))) = read.next().await {
                let frame: serde_json::Value =
                    serde_json::from_str(text.as_str()).unwrap_or_default();
                let joined = frame["event"] == "join" && frame["user"] == last_joiner.as_str();
                // Chorus gathers a burst of joins into `presence` frames.
                let gathered = frame["joins"].as_array().is_some_and(|joins| {
                    joins
                        .iter()
                        .any(|user| user["name"] == last_joiner.as_str())
                });
                if joined || gathered || frame["message"] == last_joined_text.as_str() {
                    break;
                }
            }
            all_in.wait().await;
            let tally = count_messages(&mut read, &mut write, messages).await;
            let _ = tallies.send(tally);
        });
    }
    drop(tallies);
    let connect_time = connect_started.elapsed();
    all_in.wait().await;
    let sampled = ready();

    let filler = "x".repeat(size);
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let send_started = Instant::now();
    for n in 0..messages {
        tokio::time::sleep_until((send_started + interval * n as u32).into()).await;
        let content = format!("{} {n} {filler}", now_us());
        let frame = serde_json::json!({"type": "message", "content": content}).to_string();
        write.send(Message::text(frame)).await.expect("send");
    }
    let report = collect(collected, members, messages, connect_time, send_started).await;
    (report, sampled)
}

/// `members` members, each alone in a room of its own (no join fan-out), answering
/// pings for `hold`; returns how many were still connected at the end. `connected`
/// runs once all are in (to sample the server's memory).
pub(crate) async fn idle<R>(
    target: &Target,
    members: usize,
    hold: Duration,
    connected: impl FnOnce() -> R,
) -> (usize, R) {
    let all_in = Arc::new(Barrier::new(members + 1));
    let (done, mut finished) = mpsc::unbounded_channel::<bool>();
    for n in 0..members {
        let room_target = Target {
            bases: target.bases.clone(),
            secret: target.secret.clone(),
            room: format!("{}-{n}", target.room),
        };
        let ws = connect(&room_target.url(&format!("idle-{n}"), n), n).await;
        let (all_in, done) = (all_in.clone(), done.clone());
        tokio::spawn(async move {
            let (mut write, mut read) = ws.split();
            // The welcome, then our own join.
            let _ = read.next().await;
            all_in.wait().await;
            let open = tokio::time::timeout(hold, async {
                while let Some(Ok(message)) = read.next().await {
                    match message {
                        Message::Text(text) if text.as_str().contains(r#""type":"ping""#) => {
                            let _ = write.send(Message::text(r#"{"type":"pong"}"#)).await;
                        }
                        Message::Close(_) => return false,
                        _ => {}
                    }
                }
                false
            })
            .await
            .is_err();
            let _ = done.send(open);
        });
    }
    drop(done);
    all_in.wait().await;
    let sampled = connected();
    let mut still_open = 0;
    while let Some(open) = finished.recv().await {
        still_open += usize::from(open);
    }
    (still_open, sampled)
}

/// `rooms` rooms of `per_room` members each, with a sender per room publishing
/// `messages` messages at `rate` per second (every room at once): many small rooms
/// rather than one large one. `ready` runs once everyone is in.
pub(crate) async fn rooms<R>(
    target: &Target,
    rooms: usize,
    per_room: usize,
    messages: usize,
    rate: f64,
    ready: impl FnOnce() -> R,
) -> (FanoutReport, R) {
    let all_in = Arc::new(Barrier::new(rooms * (per_room + 1) + 1));
    let (tallies, collected) = mpsc::unbounded_channel::<Tally>();
    let connect_started = Instant::now();
    let mut n = 0;
    for room in 0..rooms {
        let room_target = Target {
            bases: target.bases.clone(),
            secret: target.secret.clone(),
            room: format!("{}-{room}", target.room),
        };
        for member in 0..per_room {
            n += 1;
            let ws = connect(&room_target.url(&format!("r{room}-m{member}"), n), n).await;
            let (all_in, tallies) = (all_in.clone(), tallies.clone());
            tokio::spawn(async move {
                let (mut write, mut read) = ws.split();
                all_in.wait().await;
                let tally = count_messages(&mut read, &mut write, messages).await;
                let _ = tallies.send(tally);
            });
        }
        n += 1;
        let sender = connect(&room_target.url(&format!("r{room}-sender"), n), n).await;
        let all_in = all_in.clone();
        tokio::spawn(async move {
            let (mut write, mut read) = sender.split();
            tokio::spawn(async move { while read.next().await.is_some() {} });
            all_in.wait().await;
            // Rooms start spread over one interval, as independent rooms would.
            let interval = Duration::from_secs_f64(1.0 / rate);
            let start = Instant::now() + interval.mul_f64(room as f64 / rooms.max(1) as f64);
            for sequence in 0..messages {
                tokio::time::sleep_until((start + interval * sequence as u32).into()).await;
                let content = format!("{} {sequence}", now_us());
                let frame = serde_json::json!({"type": "message", "content": content}).to_string();
                if write.send(Message::text(frame)).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tallies);
    let connect_time = connect_started.elapsed();
    all_in.wait().await;
    let sampled = ready();
    let started = Instant::now();
    let report = collect(collected, rooms * per_room, messages, connect_time, started).await;
    (report, sampled)
}
