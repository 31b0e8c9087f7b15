//! A member's outbound queue, bounded in bytes rather than frames: small frames get
//! room for a burst (a storm of presence frames, a spike of short messages) while the
//! memory one slow member can pin stays bounded, as Centrifugo's client queue does.
//!
//! One short lock per frame queued and one per batch taken: the connection takes
//! everything queued at once by swapping buffers with the queue, so a busy member
//! costs the hub a push and itself one lock per write, and no allocation once the
//! buffers have grown to the member's usual burst. An idle member's queue holds no
//! buffer at all (a channel would keep its first block of slots allocated). Frames
//! are shared (`FrameBytes`, or a busy room's batch of them already framed), so the
//! bytes counted are an upper bound on what the member holds alone.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::mem;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use tungstenite::Bytes;

use super::FrameBytes;
use crate::sync::lock;

/// What a member's queue holds: one frame's JSON, or several frames already framed
/// for the wire, shared by every member of a busy room (see `framed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// One frame's JSON, written as a text message.
    Text(FrameBytes),
    /// Whole WebSocket frames, written to the socket as they are.
    Framed(Bytes),
}

impl Outbound {
    /// Bytes it takes in a queue.
    pub fn bytes(&self) -> usize {
        match self {
            Outbound::Text(text) => text.len(),
            Outbound::Framed(bytes) => bytes.len(),
        }
    }

    /// The frames' JSON, as the client reads them.
    #[cfg(test)]
    pub fn texts(&self) -> Vec<String> {
        match self {
            Outbound::Text(text) => vec![text.as_str().to_owned()],
            Outbound::Framed(bytes) => super::framed::read_as_client(bytes),
        }
    }

    /// One frame's JSON.
    #[cfg(test)]
    pub fn text(&self) -> &str {
        match self {
            Outbound::Text(text) => text.as_str(),
            Outbound::Framed(_) => panic!("framed, not text: {self:?}"),
        }
    }
}

impl From<FrameBytes> for Outbound {
    fn from(text: FrameBytes) -> Self {
        Outbound::Text(text)
    }
}

/// A drained buffer larger than this many frames is freed rather than kept for the
/// next batch: a burst does not pin its high-water mark for the member's life.
const KEEP_FRAMES: usize = 32;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The member has `max_bytes` queued already: too slow to keep up.
    Full,
    /// The member's connection is gone.
    Closed,
}

#[derive(Debug, Default)]
struct QueueState {
    frames: VecDeque<Outbound>,
    /// Bytes in `frames`.
    bytes: usize,
    /// The connection, when it waits for frames.
    waiting: Option<Waker>,
    /// One end was dropped: the hub's (the member was evicted) or the connection's.
    closed: bool,
}

type Queue = Arc<Mutex<QueueState>>;

/// The hub's end. Dropping it ends the queue (the member was evicted or left).
#[derive(Debug)]
pub(crate) struct QueueSender {
    queue: Queue,
    max_bytes: usize,
}

/// The connection's end.
#[derive(Debug)]
pub struct MemberQueue {
    queue: Queue,
    /// The buffer handed back to the queue at the next [`Self::take_all`].
    spare: VecDeque<Outbound>,
}

/// A queue that holds at most `max_bytes` of frames (and always at least one frame,
/// however large).
pub(crate) fn member_queue(max_bytes: usize) -> (QueueSender, MemberQueue) {
    let queue = Queue::default();
    (
        QueueSender {
            queue: queue.clone(),
            max_bytes,
        },
        MemberQueue {
            queue,
            spare: VecDeque::new(),
        },
    )
}

impl QueueSender {
    pub(crate) fn try_send(&self, frame: impl Into<Outbound>) -> Result<(), Refused> {
        let frame = frame.into();
        let len = frame.bytes();
        let mut shared = lock(&self.queue);
        if shared.closed {
            return Err(Refused::Closed);
        }
        if shared.bytes > 0 && shared.bytes + len > self.max_bytes {
            return Err(Refused::Full);
        }
        shared.frames.push_back(frame);
        shared.bytes += len;
        let waiting = shared.waiting.take();
        drop(shared);
        if let Some(waker) = waiting {
            waker.wake();
        }
        Ok(())
    }

    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

impl Drop for QueueSender {
    fn drop(&mut self) {
        let mut shared = lock(&self.queue);
        shared.closed = true;
        let waiting = shared.waiting.take();
        drop(shared);
        if let Some(waker) = waiting {
            waker.wake();
        }
    }
}

impl Drop for MemberQueue {
    fn drop(&mut self) {
        let mut shared = lock(&self.queue);
        shared.closed = true;
        // Frames nobody will read are released now, not when the hub lets go.
        shared.frames = VecDeque::new();
        shared.bytes = 0;
    }
}

impl MemberQueue {
    /// Waits until a frame is queued (`true`) or the queue has ended with nothing
    /// left in it (`false`: the hub evicted the member). Cancel-safe, for `select!`.
    pub async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            let mut shared = lock(&self.queue);
            if !shared.frames.is_empty() {
                return Poll::Ready(true);
            }
            if shared.closed {
                return Poll::Ready(false);
            }
            match &shared.waiting {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => shared.waiting = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// Everything queued, in order, in one lock. The buffer is lent: hand it back
    /// empty with [`Self::give_back`] so the next batch reuses it.
    pub fn take_all(&mut self) -> VecDeque<Outbound> {
        let mut shared = lock(&self.queue);
        shared.bytes = 0;
        mem::replace(&mut shared.frames, mem::take(&mut self.spare))
    }

    /// Returns a drained buffer from [`Self::take_all`].
    pub fn give_back(&mut self, mut frames: VecDeque<Outbound>) {
        frames.clear();
        if frames.capacity() <= KEEP_FRAMES {
            self.spare = frames;
        }
    }

    /// The next frame, if one is queued; `Err(true)` once the queue has ended.
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Result<Outbound, bool> {
        let mut shared = lock(&self.queue);
        match shared.frames.pop_front() {
            Some(frame) => {
                shared.bytes -= frame.bytes();
                Ok(frame)
            }
            None => Err(shared.closed),
        }
    }

    /// The next frame; `None` once the queue has ended and is empty.
    #[cfg(test)]
    pub async fn recv(&mut self) -> Option<Outbound> {
        if self.ready().await {
            self.try_recv().ok()
        } else {
            None
        }
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    pub fn queued_bytes(&self) -> usize {
        lock(&self.queue).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> FrameBytes {
        FrameBytes::from("x".repeat(len))
    }

    #[test]
    fn bytes_not_frames_bound_the_queue() {
        let (sender, mut queue) = member_queue(100);
        for _ in 0..10 {
            assert_eq!(sender.try_send(frame(10)), Ok(()));
        }
        assert_eq!(sender.try_send(frame(1)), Err(Refused::Full));
        assert_eq!(queue.queued_bytes(), 100);
        queue.try_recv().unwrap();
        assert_eq!(
            sender.try_send(frame(10)),
            Ok(()),
            "room again once one is read"
        );
        assert_eq!(sender.try_send(frame(1)), Err(Refused::Full));
    }

    #[test]
    fn one_frame_larger_than_the_bound_still_goes_into_an_empty_queue() {
        let (sender, mut queue) = member_queue(100);
        assert_eq!(sender.try_send(frame(500)), Ok(()));
        assert_eq!(sender.try_send(frame(1)), Err(Refused::Full));
        assert_eq!(queue.try_recv().unwrap().bytes(), 500);
        assert_eq!(queue.queued_bytes(), 0);
    }

    #[test]
    fn a_closed_queue_refuses_and_keeps_no_count() {
        let (sender, queue) = member_queue(100);
        sender.try_send(frame(10)).unwrap();
        drop(queue);
        assert_eq!(sender.try_send(frame(10)), Err(Refused::Closed));
        assert_eq!(lock(&sender.queue).bytes, 0);
        assert!(lock(&sender.queue).frames.is_empty());
    }

    #[test]
    fn an_evicted_queue_is_read_to_the_end_then_ends() {
        let (sender, mut queue) = member_queue(100);
        sender.try_send(frame(1)).unwrap();
        sender.try_send(frame(2)).unwrap();
        drop(sender);
        assert_eq!(queue.try_recv().unwrap().bytes(), 1);
        assert_eq!(queue.try_recv().unwrap().bytes(), 2);
        assert_eq!(queue.try_recv(), Err(true));
    }

    #[tokio::test]
    async fn ready_waits_for_a_frame_or_the_end() {
        let (sender, mut queue) = member_queue(100);
        let waiting = tokio::spawn(async move {
            let first = queue.ready().await;
            let frames = queue.take_all();
            let lens: Vec<usize> = frames.iter().map(Outbound::bytes).collect();
            queue.give_back(frames);
            (first, lens, queue.ready().await)
        });
        tokio::task::yield_now().await;
        sender.try_send(frame(3)).unwrap();
        sender.try_send(frame(4)).unwrap();
        drop(sender);
        let (first, lens, after) = waiting.await.unwrap();
        assert!(first);
        // Either both frames came in the first batch, or the second is still queued
        // and `ready` says so before the end.
        assert!(
            lens == [3, 4] && !after || lens == [3] && after,
            "{lens:?} {after}"
        );
    }

    #[test]
    fn take_all_hands_over_everything_in_order_and_frees_the_count() {
        let (sender, mut queue) = member_queue(100);
        for len in 1..=5 {
            sender.try_send(frame(len)).unwrap();
        }
        let frames = queue.take_all();
        assert_eq!(
            frames.iter().map(Outbound::bytes).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(queue.queued_bytes(), 0);
        queue.give_back(frames);
        for _ in 0..10 {
            sender.try_send(frame(10)).unwrap();
        }
        assert_eq!(sender.try_send(frame(1)), Err(Refused::Full));
        assert_eq!(queue.take_all().len(), 10);
    }
}
