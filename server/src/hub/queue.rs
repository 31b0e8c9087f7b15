//! A member's outbound queue, bounded in bytes rather than frames: small frames get
//! room for a burst (a storm of presence frames, a spike of short messages) while the
//! memory one slow member can pin stays bounded, as Centrifugo's client queue does.
//!
//! The count is one atomic add on send and one subtract on receive: no lock and no
//! allocation beyond the channel's own blocks. Frames are shared (`FrameBytes`), so
//! the bytes counted are an upper bound on what the member holds alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc::{self, error::TryRecvError};

use super::FrameBytes;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// The member has `max_bytes` queued already: too slow to keep up.
    Full,
    /// The member's connection is gone.
    Closed,
}

/// The hub's end.
#[derive(Debug)]
pub(super) struct QueueSender {
    frames: mpsc::UnboundedSender<FrameBytes>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The connection's end. Ends (`None`) once the hub dropped the sender: the member
/// was evicted.
#[derive(Debug)]
pub struct MemberQueue {
    frames: mpsc::UnboundedReceiver<FrameBytes>,
    queued: Arc<AtomicUsize>,
}

/// A queue that holds at most `max_bytes` of frames (and always at least one frame,
/// however large).
pub(super) fn member_queue(max_bytes: usize) -> (QueueSender, MemberQueue) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        QueueSender {
            frames: sender,
            queued: queued.clone(),
            max_bytes,
        },
        MemberQueue {
            frames: receiver,
            queued,
        },
    )
}

impl QueueSender {
    pub(super) fn try_send(&self, frame: FrameBytes) -> Result<(), Refused> {
        let len = frame.len();
        let before = self.queued.fetch_add(len, Ordering::Relaxed);
        if before > 0 && before + len > self.max_bytes {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return Err(Refused::Full);
        }
        self.frames.send(frame).map_err(|_| {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            Refused::Closed
        })
    }

    pub(super) fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

impl MemberQueue {
    pub async fn recv(&mut self) -> Option<FrameBytes> {
        let frame = self.frames.recv().await?;
        self.queued.fetch_sub(frame.len(), Ordering::Relaxed);
        Some(frame)
    }

    pub fn try_recv(&mut self) -> Result<FrameBytes, TryRecvError> {
        let frame = self.frames.try_recv()?;
        self.queued.fetch_sub(frame.len(), Ordering::Relaxed);
        Ok(frame)
    }

    #[cfg(test)]
    pub fn blocking_recv(&mut self) -> Option<FrameBytes> {
        let frame = self.frames.blocking_recv()?;
        self.queued.fetch_sub(frame.len(), Ordering::Relaxed);
        Some(frame)
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
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
        assert_eq!(queue.try_recv().unwrap().len(), 500);
        assert_eq!(queue.queued_bytes(), 0);
    }

    #[test]
    fn a_closed_queue_refuses_and_keeps_no_count() {
        let (sender, queue) = member_queue(100);
        drop(queue);
        assert_eq!(sender.try_send(frame(10)), Err(Refused::Closed));
        assert_eq!(sender.queued.load(Ordering::Relaxed), 0);
    }
}
