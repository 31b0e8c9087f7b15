//! A soak member: connects to any server, reconnects with `since`, and checks its
//! room's messages once and in order across its connections.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::rules::Continuity;
use super::{LEAVE_SHARE, Phase, Plan, Stats};
use crate::load::{Socket, try_connect};

/// The fields of a server frame the soak looks at.
#[derive(Deserialize)]
pub(crate) struct Frame {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    id: Option<u64>,
    content: Option<String>,
    last_id: Option<u64>,
    recovered: Option<bool>,
    #[serde(rename = "ref")]
    pub(crate) reference: Option<String>,
    pub(crate) code: Option<String>,
}

/// What a read from a socket brought, as the soak sees it.
pub(crate) enum Incoming {
    Frame(Frame),
    /// The close code (1006: the connection just ended).
    Closed(u16),
    /// Anything else: a WebSocket ping, a frame that is not JSON.
    Other,
}

pub(crate) fn incoming(
    next: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> Incoming {
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

pub(crate) const PONG: &str = r#"{"type":"pong"}"#;

/// Connects to any server that answers, as a client behind a load balancer does,
/// retrying with backoff while servers restart; `None` once the run ends.
pub(crate) async fn connect_any(
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
pub(crate) struct MemberReport {
    pub(crate) log: Continuity,
    /// Still there at the end (the slot's last user), so it should have everything.
    pub(crate) to_the_end: bool,
}

/// One member slot of a room: a user who reconnects now and then with `since`, and
/// sometimes leaves for good, someone new taking its place.
pub(crate) async fn member(
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
