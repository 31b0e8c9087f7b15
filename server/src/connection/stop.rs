//! What ends a connection from outside: the server shutting down, or the server API
//! removing the connection's user.
//!
//! Both are cancellation tokens, and a token takes a lock on every poll — the
//! shutdown token's lock is shared by every socket. The connection's loop wakes for
//! every delivery and polls each of its branches, so [`Stop`] polls the tokens only
//! after they asked to be: their wake-up sets a flag, and a poll without it costs
//! two uncontended atomics on the connection's own flag.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Why a connection was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    ShuttingDown,
    Removed,
}

/// Completes when the server shuts down or the user is removed. Cancel-safe, for
/// `select!`.
pub struct Stop<F> {
    signals: Pin<Box<F>>,
    woken: Arc<Flag>,
}

/// Set by the signals' wake-up; wakes the connection's task.
struct Flag {
    set: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.set.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F: Future<Output = Stopped>> Stop<F> {
    /// `signals` completes with the reason; it is polled first at once, then only
    /// when it wakes.
    pub fn new(signals: F) -> Self {
        Stop {
            signals: Box::pin(signals),
            woken: Arc::new(Flag {
                set: AtomicBool::new(true),
                task: AtomicWaker::new(),
            }),
        }
    }
}

impl<F: Future<Output = Stopped>> Future for Stop<F> {
    type Output = Stopped;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Stopped> {
        // Registered before the flag is read: a wake-up in between is not lost.
        self.woken.task.register(cx.waker());
        if !self.woken.set.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(self.woken.clone());
        self.signals.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            assert!(futures_util::poll!(stop.as_mut()).is_pending(), "polled again unwoken");
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
        assert_eq!(stop_on(shutdown.clone(), removed.clone()).await, Stopped::Removed);
    }

    #[tokio::test]
    async fn wakes_the_task_that_waits_on_it() {
        let (shutdown, removed) = (CancellationToken::new(), CancellationToken::new());
        let stop = stop_on(shutdown.clone(), removed.clone());
        let waiting = tokio::spawn(stop);
        tokio::task::yield_now().await;
        shutdown.cancel();
        assert_eq!(waiting.await.unwrap(), Stopped::ShuttingDown);
    }
}
