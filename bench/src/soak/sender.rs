//! A soak sender: one message at a time, acknowledged, resent under the same `ref`
//! after an error or a lost connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::member::{Incoming, PONG, connect_any, incoming};
use super::{Phase, Plan, Stats};
use crate::load::{Socket, now_us};

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
pub(crate) async fn sender(
    plan: Arc<Plan>,
    room: usize,
    phase: watch::Receiver<Phase>,
    stats: Arc<Stats>,
) {
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
