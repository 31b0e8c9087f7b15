//! Join and leave announcements for one room on one server.
//!
//! While they are sparse each goes out at once as its own `system` frame, as it
//! always has. When more than a burst (`--presence-burst`) come within one [`WINDOW`] (a storm of joins,
//! a server restart), the rest are gathered and sent as one `presence` frame per
//! window, so N joins cost each member a frame per window instead of N frames: a
//! storm of N members is O(N) frames in all, not O(N²). Batching ends after a whole
//! window without an announcement.
//!
//! A batch names each user at most once, so its joins and leaves can be applied in
//! any order; a user announced again in the same window flushes the batch first.
//! Anything else the room sends (a message) flushes the batch before it goes, so
//! members see joins, leaves and messages in the order they happened.
//!
//! Pure logic: the engines call it under their room lock and run the timer it asks
//! for ([`Step::flush_at`]), then call [`Announcer::tick`] when it fires.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_protocol::{Member, ServerFrame, SystemEvent};

use super::user_list::USERS_PER_FRAME;
use crate::hub::fanout::FrameBytes;

/// How long a batch gathers announcements; also the window a burst is counted in.
pub(crate) const WINDOW: Duration = Duration::from_millis(250);

/// A join or a leave to announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Join,
    Leave,
}

/// What to do after an announcement.
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct Step {
    /// Frames to queue for every member now, in order.
    pub(crate) frames: Vec<FrameBytes>,
    /// Start a timer and call [`Announcer::tick`] at this instant.
    pub(crate) flush_at: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct Announcer {
    /// Announcements sent one by one per window before batching starts.
    burst: u32,
    /// Announcements sent one by one since `window_start`.
    sent: u32,
    window_start: Option<Instant>,
    /// `Some` while batching (possibly with nothing gathered yet).
    batch: Option<Batch>,
}

#[derive(Debug, Default)]
struct Batch {
    joins: Vec<Member>,
    leaves: Vec<Member>,
    named: HashSet<Arc<str>>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.named.is_empty()
    }

    /// The gathered announcements as one frame (none if nothing was gathered).
    fn take_frame(&mut self) -> Option<FrameBytes> {
        if self.is_empty() {
            return None;
        }
        self.named.clear();
        let frame = ServerFrame::Presence {
            joins: std::mem::take(&mut self.joins),
            leaves: std::mem::take(&mut self.leaves),
        };
        Some(frame.to_json().into())
    }
}

impl Announcer {
    pub(crate) fn new(burst: u32) -> Self {
        Announcer {
            burst,
            sent: 0,
            window_start: None,
            batch: None,
        }
    }
}

impl Announcer {
    /// Announces that `user_id` (shown as `name`) joined or left.
    pub(crate) fn announce(
        &mut self,
        change: Change,
        user_id: &Arc<str>,
        name: &str,
        now: Instant,
    ) -> Step {
        if let Some(batch) = &mut self.batch {
            let mut step = Step::default();
            if batch.named.contains(user_id) {
                step.frames.extend(batch.take_frame());
            }
            batch.named.insert(user_id.clone());
            let member = Member {
                user_id: user_id.to_string(),
                name: name.to_owned(),
            };
            match change {
                Change::Join => batch.joins.push(member),
                Change::Leave => batch.leaves.push(member),
            }
            // Bounded like every frame: a full batch goes at once.
            if batch.named.len() >= USERS_PER_FRAME {
                step.frames.extend(batch.take_frame());
            }
            return step;
        }
        let window_over = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= WINDOW);
        if window_over {
            self.window_start = Some(now);
            self.sent = 0;
        }
        if self.sent < self.burst {
            self.sent += 1;
            let frame = match change {
                Change::Join => ServerFrame::joined(user_id, name),
                Change::Leave => ServerFrame::left(user_id, name),
            };
            return Step {
                frames: vec![frame.to_json().into()],
                flush_at: None,
            };
        }
        // A burst: from now on, gather.
        self.batch = Some(Batch::default());
        let mut step = self.announce(change, user_id, name, now);
        step.flush_at = Some(now + WINDOW);
        step
    }

    /// The gathered announcements, to send before another frame of the room so
    /// they keep their place in its order. Batching goes on.
    pub(crate) fn flush(&mut self) -> Option<FrameBytes> {
        self.batch.as_mut().and_then(Batch::take_frame)
    }

    /// The timer asked for by a [`Step`] (or by the previous tick) fired: the frame to
    /// send, if anything was gathered, and when to tick again — `None` once a whole
    /// window passed without an announcement, which ends the batching.
    pub(crate) fn tick(&mut self, now: Instant) -> (Option<FrameBytes>, Option<Instant>) {
        let Some(batch) = &mut self.batch else {
            return (None, None);
        };
        if batch.is_empty() {
            self.batch = None;
            self.window_start = Some(now);
            self.sent = 0;
            return (None, None);
        }
        (batch.take_frame(), Some(now + WINDOW))
    }
}

/// `system` join/leave frames (as the Redis engine receives them from Pub/Sub) read
/// back into an announcement; `None` for every other frame.
pub(crate) fn parse_system(frame: &str) -> Option<(Change, Member)> {
    // Cheap test first: most frames are messages.
    if !frame.starts_with("{\"type\":\"system\"") {
        return None;
    }
    match serde_json::from_str(frame).ok()? {
        ServerFrame::System {
            event,
            user_id,
            user,
            ..
        } => {
            let change = match event {
                SystemEvent::Join => Change::Join,
                SystemEvent::Leave => Change::Leave,
                SystemEvent::Unknown => return None,
            };
            Some((
                change,
                Member {
                    user_id,
                    name: user,
                },
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const BURST: u32 = 16;

    fn frame_json(frame: &FrameBytes) -> Value {
        serde_json::from_str(frame.as_str()).unwrap()
    }

    fn user(id: &str) -> Arc<str> {
        Arc::from(id)
    }

    /// Announces joins of `u0`, `u1`, … at `now`; returns every step.
    fn joins(announcer: &mut Announcer, ids: std::ops::Range<u32>, now: Instant) -> Vec<Step> {
        ids.map(|i| {
            let id = user(&format!("u{i}"));
            announcer.announce(Change::Join, &id, &format!("n{i}"), now)
        })
        .collect()
    }

    #[test]
    fn sparse_announcements_go_out_one_by_one_as_system_frames() {
        let mut announcer = Announcer::new(BURST);
        let start = Instant::now();
        for i in 0..100 {
            // BURST per window, window after window.
            let now = start + WINDOW * (i / BURST) + Duration::from_millis(1);
            let step = announcer.announce(Change::Join, &user("u"), "alice", now);
            assert_eq!(step.flush_at, None);
            assert_eq!(step.frames.len(), 1);
            assert_eq!(frame_json(&step.frames[0])["type"], "system");
        }
        let step = announcer.announce(Change::Leave, &user("u"), "alice", start + WINDOW * 100);
        assert_eq!(
            frame_json(&step.frames[0]),
            json!({"type":"system","message":"alice left the room","event":"leave","user_id":"u","user":"alice"})
        );
    }

    #[test]
    fn a_burst_is_gathered_into_one_presence_frame_per_window() {
        let mut announcer = Announcer::new(BURST);
        let now = Instant::now();
        let steps = joins(&mut announcer, 0..BURST + 50, now);
        let (single, gathered) = steps.split_at(BURST as usize);
        assert!(single.iter().all(|step| step.frames.len() == 1));
        assert_eq!(gathered[0].flush_at, Some(now + WINDOW), "one timer");
        assert!(gathered.iter().all(|step| step.frames.is_empty()
            && (step.flush_at.is_none() || step.flush_at == Some(now + WINDOW))));
        assert_eq!(
            gathered
                .iter()
                .filter(|step| step.flush_at.is_some())
                .count(),
            1
        );
        let leaver = user("u0");
        assert!(
            announcer
                .announce(Change::Leave, &leaver, "n0", now)
                .frames
                .is_empty()
        );

        let (frame, next) = announcer.tick(now + WINDOW);
        let frame = frame_json(&frame.unwrap());
        assert_eq!(frame["type"], "presence");
        let joined = frame["joins"].as_array().unwrap();
        assert_eq!(joined.len(), 50);
        assert_eq!(
            joined[0],
            json!({"user_id": format!("u{BURST}"), "name": format!("n{BURST}")})
        );
        assert_eq!(frame["leaves"], json!([{"user_id":"u0","name":"n0"}]));
        assert_eq!(next, Some(now + WINDOW * 2), "still batching");

        // Still batching in the next window, however few come.
        assert!(
            announcer
                .announce(Change::Join, &user("late"), "late", now + WINDOW)
                .frames
                .is_empty()
        );
        let (frame, next) = announcer.tick(now + WINDOW * 2);
        assert_eq!(
            frame_json(&frame.unwrap())["joins"],
            json!([{"user_id":"late","name":"late"}])
        );
        assert_eq!(next, Some(now + WINDOW * 3));
        // A quiet window ends it: announcements go out one by one again.
        assert_eq!(announcer.tick(now + WINDOW * 3), (None, None));
        let step = announcer.announce(Change::Join, &user("x"), "x", now + WINDOW * 3);
        assert_eq!(frame_json(&step.frames[0])["type"], "system");
        assert_eq!(step.flush_at, None);
    }

    #[test]
    fn a_user_named_twice_flushes_the_batch_first() {
        let mut announcer = Announcer::new(BURST);
        let now = Instant::now();
        let _ = joins(&mut announcer, 0..BURST + 2, now);
        let again = user(&format!("u{BURST}"));
        let step = announcer.announce(Change::Leave, &again, "n", now);
        assert_eq!(step.frames.len(), 1);
        let first = frame_json(&step.frames[0]);
        assert_eq!(first["joins"].as_array().unwrap().len(), 2);
        assert_eq!(first["leaves"], json!([]));
        let (second, _) = announcer.tick(now + WINDOW);
        let second = frame_json(&second.unwrap());
        assert_eq!(second["joins"], json!([]));
        assert_eq!(
            second["leaves"],
            json!([{"user_id": format!("u{BURST}"), "name":"n"}])
        );
    }

    #[test]
    fn a_full_batch_goes_at_once() {
        let mut announcer = Announcer::new(BURST);
        let now = Instant::now();
        let count = BURST + USERS_PER_FRAME as u32 + 5;
        let sent: Vec<FrameBytes> = joins(&mut announcer, 0..count, now)
            .into_iter()
            .flat_map(|step| step.frames)
            .collect();
        assert_eq!(sent.len(), BURST as usize + 1);
        let full = frame_json(sent.last().unwrap());
        assert_eq!(full["joins"].as_array().unwrap().len(), USERS_PER_FRAME);
        let (rest, _) = announcer.tick(now + WINDOW);
        assert_eq!(
            frame_json(&rest.unwrap())["joins"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
    }

    #[test]
    fn flush_sends_what_was_gathered_and_keeps_batching() {
        let mut announcer = Announcer::new(BURST);
        let now = Instant::now();
        assert_eq!(announcer.flush(), None, "not batching");
        let _ = joins(&mut announcer, 0..BURST + 3, now);
        let frame = frame_json(&announcer.flush().unwrap());
        assert_eq!(frame["joins"].as_array().unwrap().len(), 3);
        assert_eq!(announcer.flush(), None, "nothing more gathered");
        let step = announcer.announce(Change::Join, &user("u0"), "n0", now);
        assert!(step.frames.is_empty(), "flushed users may come again");
        assert!(announcer.tick(now + WINDOW).0.is_some());
    }

    #[test]
    fn a_member_seated_at_any_point_ends_with_the_true_member_list() {
        // A member seated mid-burst is welcomed with the list as it is then, and gets
        // the batch that was already gathering: applying it must still end right.
        let mut announcer = Announcer::new(BURST);
        let now = Instant::now();
        let _ = joins(&mut announcer, 0..BURST, now);
        let mut truth = HashSet::new();
        // (the list right after an announcement, the frames sent from then on)
        let mut seen_at = Vec::new();
        let mut frames: Vec<FrameBytes> = Vec::new();
        for i in 0..60u32 {
            let id = format!("v{}", i % 7);
            let change = if i % 3 == 0 {
                Change::Leave
            } else {
                Change::Join
            };
            match change {
                Change::Join => truth.insert(id.clone()),
                Change::Leave => truth.remove(&id),
            };
            frames.extend(announcer.announce(change, &user(&id), "v", now).frames);
            seen_at.push((truth.clone(), frames.len()));
            if i == 30 {
                frames.extend(announcer.flush());
            }
        }
        frames.extend(announcer.tick(now + WINDOW).0);
        let apply = |mut list: HashSet<String>, frame: &FrameBytes| {
            let frame = frame_json(frame);
            for member in frame["joins"].as_array().unwrap() {
                list.insert(member["user_id"].as_str().unwrap().to_owned());
            }
            for member in frame["leaves"].as_array().unwrap() {
                list.remove(member["user_id"].as_str().unwrap());
            }
            list
        };
        assert!(frames.len() > 2, "some batches were flushed early");
        for (welcomed_with, sent_before) in seen_at {
            let end = frames[sent_before..].iter().fold(welcomed_with, apply);
            assert_eq!(end, truth);
        }
    }

    #[test]
    fn system_frames_are_read_back_and_others_are_not() {
        let join = ServerFrame::joined("u1", "alice").to_json();
        assert_eq!(
            parse_system(&join),
            Some((
                Change::Join,
                Member {
                    user_id: "u1".into(),
                    name: "alice".into()
                }
            ))
        );
        let leave = ServerFrame::left("u1", "alice").to_json();
        assert_eq!(
            parse_system(&leave).map(|(change, _)| change),
            Some(Change::Leave)
        );
        for other in [
            r#"{"type":"message","id":1,"user_id":"u","user":"u","content":"{\"type\":\"system\"","timestamp":"t"}"#,
            r#"{"type":"system","message":"x","event":"reboot","user_id":"u","user":"u"}"#,
            r#"{"type":"system""#,
            "",
        ] {
            assert_eq!(parse_system(other), None, "{other}");
        }
    }
}
