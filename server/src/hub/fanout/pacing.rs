//! When a room's frames go out: at once, unless the room is busy.
//!
//! Every delivery is, for each member, a queue push, a wake-up, a `send` and, for
//! the client, a wake-up; a room that streams hundreds of frames a second would
//! otherwise cost its members one of each per frame. A room that sent more than
//! [`BUSY_FRAMES`] frames in the last [`WINDOW`] is busy, and its frames go out at
//! most once per `delay`, gathered into one batch framed once for every member
//! (`framed`). Everyone else (a chat at human speed) gets each frame at once: the
//! delay is only ever paid in rooms receiving faster than anyone reads, and never
//! exceeds `delay`.

use std::time::Duration;

use tokio::time::Instant;

/// How long a room's rate is measured over.
pub(crate) const WINDOW: Duration = Duration::from_millis(100);
/// Frames within one window that make a room busy (200 a second).
pub(crate) const BUSY_FRAMES: u32 = 20;

#[derive(Debug)]
pub(crate) struct Pacing {
    delay: Duration,
    last_write: Option<Instant>,
    window_start: Instant,
    frames_in_window: u32,
    /// Whether the last whole window had at least `BUSY_FRAMES`.
    busy: bool,
}

impl Pacing {
    pub(crate) fn new(delay: Duration, now: Instant) -> Self {
        Pacing {
            delay,
            last_write: None,
            window_start: now,
            frames_in_window: 0,
            busy: false,
        }
    }

    /// A frame is ready at `now`: `None` to send it at once, or when to.
    pub(crate) fn hold_until(&self, now: Instant) -> Option<Instant> {
        if !self.busy {
            return None;
        }
        let due = self.last_write? + self.delay;
        (now < due).then_some(due)
    }

    /// `frames` frames were sent at `now`.
    pub(crate) fn wrote(&mut self, frames: usize, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= WINDOW {
            // A window that ended long ago says nothing about the room's rate now.
            self.busy = elapsed < 2 * WINDOW && self.frames_in_window >= BUSY_FRAMES;
            self.window_start = now;
            self.frames_in_window = 0;
        }
        let frames = u32::try_from(frames).unwrap_or(u32::MAX);
        self.frames_in_window = self.frames_in_window.saturating_add(frames);
        self.last_write = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_millis(20);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Sends one frame every `every` until `until`, as the room would (gathering when
    /// told to); returns the pacing and the times frames actually went out.
    fn stream(every: Duration, until: Duration) -> (Pacing, Vec<Duration>) {
        let start = Instant::now();
        let mut pacing = Pacing::new(DELAY, start);
        let mut writes = Vec::new();
        let mut held_until: Option<Instant> = None;
        let mut waiting = 0;
        let mut at = Duration::ZERO;
        while at <= until {
            let now = start + at;
            if let Some(due) = held_until
                && now >= due
            {
                pacing.wrote(waiting, due);
                writes.push(due - start);
                waiting = 0;
                held_until = None;
            }
            waiting += 1;
            if held_until.is_none() {
                match pacing.hold_until(now) {
                    Some(due) => held_until = Some(due),
                    None => {
                        pacing.wrote(waiting, now);
                        writes.push(at);
                        waiting = 0;
                    }
                }
            }
            at += every;
        }
        (pacing, writes)
    }

    #[test]
    fn a_room_at_human_speed_sends_at_once() {
        let (pacing, writes) = stream(ms(10), ms(2000));
        assert!(!pacing.busy);
        assert_eq!(writes.len(), 201, "every frame its own write, none held");
    }

    #[test]
    fn a_busy_room_sends_its_frames_together_at_most_once_per_delay() {
        let (pacing, writes) = stream(ms(1), ms(2000));
        assert!(pacing.busy);
        let after_first_window: Vec<_> = writes.iter().filter(|at| **at > ms(200)).collect();
        for pair in after_first_window.windows(2) {
            assert!(*pair[1] - *pair[0] >= DELAY, "{pair:?}");
        }
        assert!(
            writes.len() < 200,
            "{} writes for 2000 frames",
            writes.len()
        );
    }

    #[test]
    fn a_frame_is_never_held_longer_than_the_delay() {
        let start = Instant::now();
        let mut pacing = Pacing::new(DELAY, start);
        for n in 0..=(2 * BUSY_FRAMES as u64) {
            pacing.wrote(1, start + ms(n * 5));
        }
        assert!(pacing.busy);
        let now = start + ms(2 * BUSY_FRAMES as u64 * 5 + 1);
        assert_eq!(pacing.hold_until(now), Some(now - ms(1) + DELAY));
        assert_eq!(pacing.hold_until(now + DELAY), None, "due already");
    }

    #[test]
    fn a_room_that_slows_down_is_no_longer_held() {
        let start = Instant::now();
        let mut pacing = Pacing::new(DELAY, start);
        pacing.wrote(50, start);
        pacing.wrote(1, start + ms(100));
        assert!(pacing.busy, "50 frames in the last window");
        pacing.wrote(1, start + ms(150));
        pacing.wrote(1, start + ms(200));
        assert!(!pacing.busy, "2 frames in the last window");
        assert_eq!(pacing.hold_until(start + ms(201)), None);
    }

    #[test]
    fn a_busy_room_that_went_quiet_starts_afresh() {
        let start = Instant::now();
        let mut pacing = Pacing::new(DELAY, start);
        pacing.wrote(50, start);
        pacing.wrote(50, start + ms(100));
        assert!(pacing.busy);
        pacing.wrote(1, start + ms(5000));
        assert!(!pacing.busy);
    }

    #[test]
    fn no_delay_means_never_held() {
        let start = Instant::now();
        let mut pacing = Pacing::new(Duration::ZERO, start);
        pacing.wrote(500, start);
        pacing.wrote(500, start + ms(100));
        assert_eq!(pacing.hold_until(start + ms(100)), None);
    }
}
