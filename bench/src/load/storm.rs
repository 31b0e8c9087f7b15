//! The join storm: members connecting to one room at once, each reading until it
//! knows every other.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::*;

/// What a join storm cost.
#[derive(Debug, Default)]
pub(crate) struct StormReport {
    pub members: usize,
    /// From the first connect until every member had its `welcome`.
    pub all_welcomed: Duration,
    /// ...until every member knew every other (welcome list plus join events).
    pub all_settled: Duration,
    /// Join and leave frames (`system` or gathered `presence`) the members received,
    /// all together.
    pub presence_frames: usize,
    /// Members that never settled (closed, or silent for 30 s).
    pub unsettled: usize,
}

/// Which storm members (`storm-<n>`) a member knows of: a bit each, so reading the
/// O(members²) entries of a storm costs the generator no allocation.
struct Known {
    seen: Vec<bool>,
    count: usize,
}

impl Known {
    fn new(members: usize) -> Self {
        Known {
            seen: vec![false; members],
            count: 0,
        }
    }

    /// Whether `user_id` was new.
    fn insert(&mut self, user_id: &str) -> bool {
        let n = user_id
            .strip_prefix("storm-")
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(seen) = n.and_then(|n| self.seen.get_mut(n))
            && !*seen
        {
            *seen = true;
            self.count += 1;
            return true;
        }
        false
    }
}

/// The parts of a server frame the storm reads, borrowed from its text.
#[derive(serde::Deserialize)]
struct StormFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow, default)]
    user_id: Option<&'a str>,
    #[serde(borrow, default)]
    event: Option<&'a str>,
    #[serde(borrow, default)]
    message: Option<&'a str>,
    #[serde(borrow, default)]
    users: Vec<StormUser<'a>>,
    #[serde(borrow, default)]
    joins: Vec<StormUser<'a>>,
}

#[derive(serde::Deserialize)]
struct StormUser<'a> {
    #[serde(borrow)]
    user_id: &'a str,
}

/// `members` members connect to one room at once; each reads until it knows every
/// other member.
///
/// A server without a member list (the reference peers announce joins only as text,
/// and send no welcome) cannot tell a member who came before it: there, the storm is
/// over once every member has seen its own join and every later one, N(N+1)/2
/// announcements in all, counted over every member.
pub(crate) async fn storm(target: &Target, members: usize, lists_members: bool) -> StormReport {
    let started = Instant::now();
    let (done, mut finished) =
        mpsc::unbounded_channel::<(Option<Duration>, Option<Duration>, usize)>();
    let seen_everywhere = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let all_seen = members * (members + 1) / 2;
    let (over, _) = tokio::sync::watch::channel(false);
    for n in 0..members {
        let url = target.url(&format!("storm-{n}"), n);
        let done = done.clone();
        let seen_everywhere = seen_everywhere.clone();
        let over = over.clone();
        let mut is_over = over.subscribe();
        tokio::spawn(async move {
            let ws = connect(&url, n).await;
            let (mut write, mut read) = ws.split();
            let mut known = Known::new(members);
            let mut welcomed = (!lists_members).then(|| started.elapsed());
            let mut presence = 0;
            let settled = loop {
                let next = tokio::select! {
                    next = tokio::time::timeout(Duration::from_secs(30), read.next()) => next,
                    _ = is_over.wait_for(|over| *over) => break Some(started.elapsed()),
                };
                let Ok(Some(Ok(message))) = next else {
                    break None;
                };
                let Message::Text(text) = message else {
                    if matches!(message, Message::Close(_)) {
                        break None;
                    }
                    continue;
                };
                // Read without building a JSON tree: a storm's welcomes and presence
                // frames add up to O(members²) entries, read by this one process.
                let Ok(frame) = serde_json::from_str::<StormFrame>(text.as_str()) else {
                    continue;
                };
                match frame.kind {
                    // The rest of a large room's list, right after the welcome.
                    "users" => {
                        for user in &frame.users {
                            known.insert(user.user_id);
                        }
                    }
                    "welcome" => {
                        welcomed = Some(started.elapsed());
                        known.insert(frame.user_id.unwrap_or_default());
                        for user in &frame.users {
                            known.insert(user.user_id);
                        }
                    }
                    "system" => {
                        presence += 1;
                        if frame.event == Some("join") {
                            known.insert(frame.user_id.unwrap_or_default());
                        } else if let Some(name) = frame
                            .message
                            .and_then(|text| text.strip_suffix(" joined the room"))
                        {
                            // A peer: the name is only in the text.
                            if known.insert(name) {
                                let seen = seen_everywhere.fetch_add(1, Ordering::Relaxed) + 1;
                                if seen == all_seen {
                                    over.send_replace(true);
                                }
                            }
                        }
                    }
                    // Joins gathered during the burst.
                    "presence" => {
                        presence += 1;
                        for user in &frame.joins {
                            known.insert(user.user_id);
                        }
                    }
                    "ping" => {
                        let _ = write.send(Message::text(r#"{"type":"pong"}"#)).await;
                    }
                    _ => {}
                }
                if lists_members && welcomed.is_some() && known.count >= members {
                    break Some(started.elapsed());
                }
            };
            let _ = done.send((welcomed, settled, presence));
            // Stay in the room until every member has settled.
            tokio::time::sleep(Duration::from_secs(31)).await;
            drop((write, read));
        });
    }
    drop(done);
    let mut report = StormReport {
        members,
        ..StormReport::default()
    };
    for _ in 0..members {
        let Some((welcomed, settled, presence)) = finished.recv().await else {
            break;
        };
        report.presence_frames += presence;
        report.all_welcomed = report.all_welcomed.max(welcomed.unwrap_or_default());
        match settled {
            Some(settled) => report.all_settled = report.all_settled.max(settled),
            None => report.unsettled += 1,
        }
    }
    report
}
