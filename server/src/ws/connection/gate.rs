//! Futures polled only after they asked to be.
//!
//! A connection's loop wakes for every delivery and polls each of its branches. Some
//! are costly to poll and rarely ready: the shutdown and removal tokens take a lock
//! on every poll (the shutdown token's lock is shared by every socket), and a read
//! goes through tungstenite and the socket's readiness. A [`Gate`] polls its future
//! with a waker of its own; that waker opens the gate and wakes the task, and while
//! the gate is shut a poll costs two uncontended atomics on the connection's flag.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// One connection's gate for one kind of future (one read after another, say).
pub(super) struct Gate {
    flag: Arc<Flag>,
}

/// Set by the gated future's wake-up; wakes the connection's task.
struct Flag {
    open: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.open.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Gate {
    /// An open gate: the first future is polled at once.
    pub(super) fn new() -> Self {
        Gate {
            flag: Arc::new(Flag {
                open: AtomicBool::new(true),
                task: AtomicWaker::new(),
            }),
        }
    }

    /// Polls `future` if the gate is open. A future that completes leaves it open,
    /// so the next one (the next read, with more data already buffered) is polled.
    pub(super) fn poll<F: Future>(
        &self,
        cx: &mut Context<'_>,
        future: Pin<&mut F>,
    ) -> Poll<F::Output> {
        // Registered before the flag is read: a wake-up in between is not lost.
        self.flag.task.register(cx.waker());
        if !self.flag.open.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(self.flag.clone());
        let outcome = future.poll(&mut Context::from_waker(&waker));
        if outcome.is_ready() {
            self.flag.open.store(true, Ordering::Release);
        }
        outcome
    }

    /// `future`, through the gate. Cancel-safe if `future` is.
    pub(super) async fn pass<F: Future>(&self, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        poll_fn(|cx| self.poll(cx, future.as_mut())).await
    }
}

/// Why a connection was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stopped {
    ShuttingDown,
    Removed,
}

/// Completes when the server shuts down or the user is removed (`signals`), polled
/// through a gate. Cancel-safe, for `select!`.
pub(super) struct Stop<F> {
    signals: Pin<Box<F>>,
    gate: Gate,
}

impl<F: Future<Output = Stopped>> Stop<F> {
    pub(super) fn new(signals: F) -> Self {
        Stop {
            signals: Box::pin(signals),
            gate: Gate::new(),
        }
    }
}

impl<F: Future<Output = Stopped>> Future for Stop<F> {
    type Output = Stopped;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Stopped> {
        let this = &mut *self;
        this.gate.poll(cx, this.signals.as_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio_util::sync::CancellationToken;

    fn stop_on(
        shutdown: CancellationToken,
        removed: CancellationToken,
    ) -> Stop<impl Future<Output = Stopped>> {
        Stop::new(async move {
            tokio::select! {
                () = shutdown.cancelled() => Stopped::ShuttingDown,
                () = removed.cancelled() => Stopped::Removed,
            }
        })
    }

    #[tokio::test]
    async fn completes_when_either_signal_fires_after_waiting() {
        for (fire_shutdown, expected) in [(true, Stopped::ShuttingDown), (false, Stopped::Removed)]
        {
            let (shutdown, removed) = (CancellationToken::new(), CancellationToken::new());
            let mut stop = std::pin::pin!(stop_on(shutdown.clone(), removed.clone()));
            assert!(futures_util::poll!(stop.as_mut()).is_pending());
            assert!(
                futures_util::poll!(stop.as_mut()).is_pending(),
                "polled again unwoken"
            );
            if fire_shutdown {
                shutdown.cancel();
            } else {
                removed.cancel();
            }
            assert_eq!(stop.await, expected);
        }
    }

    #[tokio::test]
    async fn a_signal_fired_before_the_first_poll_is_seen() {
        let (shutdown, removed) = (CancellationToken::new(), CancellationToken::new());
        removed.cancel();
        assert_eq!(
            stop_on(shutdown.clone(), removed.clone()).await,
            Stopped::Removed
        );
    }

    #[tokio::test]
    async fn wakes_the_task_that_waits_on_it() {
        let (shutdown, removed) = (CancellationToken::new(), CancellationToken::new());
        let waiting = tokio::spawn(stop_on(shutdown.clone(), removed.clone()));
        tokio::task::yield_now().await;
        shutdown.cancel();
        assert_eq!(waiting.await.unwrap(), Stopped::ShuttingDown);
    }

    /// A stream of reads: what a gated read sees, and how often the stream is polled.
    #[tokio::test]
    async fn a_gated_stream_is_polled_only_after_it_woke_or_yielded() {
        use futures_util::StreamExt;
        /// A read whose body (run at its first poll) counts the polls.
        async fn counted(
            polls: &AtomicUsize,
            receiver: &mut futures_channel::mpsc::UnboundedReceiver<u32>,
        ) -> Option<u32> {
            polls.fetch_add(1, Ordering::Relaxed);
            receiver.next().await
        }
        let (sender, mut receiver) = futures_channel::mpsc::unbounded::<u32>();
        let polls = AtomicUsize::new(0);
        let gate = Gate::new();
        sender.unbounded_send(1).unwrap();
        sender.unbounded_send(2).unwrap();
        assert_eq!(gate.pass(counted(&polls, &mut receiver)).await, Some(1));
        assert_eq!(
            gate.pass(counted(&polls, &mut receiver)).await,
            Some(2),
            "buffered"
        );
        {
            let mut read = std::pin::pin!(gate.pass(counted(&polls, &mut receiver)));
            assert!(futures_util::poll!(read.as_mut()).is_pending());
        }
        let before = polls.load(Ordering::Relaxed);
        for _ in 0..3 {
            let mut read = std::pin::pin!(gate.pass(std::future::poll_fn(|_| {
                polls.fetch_add(1, Ordering::Relaxed);
                Poll::<Option<u32>>::Pending
            })));
            assert!(futures_util::poll!(read.as_mut()).is_pending());
        }
        assert_eq!(polls.load(Ordering::Relaxed), before, "shut: not polled");
        sender.unbounded_send(3).unwrap();
        assert_eq!(
            gate.pass(counted(&polls, &mut receiver)).await,
            Some(3),
            "woken"
        );
    }
}
