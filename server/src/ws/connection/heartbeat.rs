//! A connection's liveness timer: pings, the silence limit and the token's end.

use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::settings::ConnectionSettings;

/// The server's side of liveness: a ping every interval, the end of a client silent
/// (no frame of any kind) for the interval plus the timeout, and, for a chat member,
/// the end of its token. One timer serves all three: it is polled on every wake-up of
/// the connection's loop (every delivery), so one is cheaper than three, and a
/// connection keeps one timer entry instead of three.
pub(super) struct Heartbeat {
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    interval: Duration,
    next_ping: Instant,
    last_heard: Instant,
    silence_limit: Duration,
    /// When the connection's token expires (chat members).
    expires: Option<Instant>,
}

/// What the heartbeat asks for next.
pub(super) enum Beat {
    /// Time to ping the client.
    Ping,
    /// The client has been silent too long: close with 4009.
    Silent,
    /// The token has expired: close with 4002.
    Expired,
}

impl Heartbeat {
    pub(super) fn new(settings: &ConnectionSettings, expires: Option<Instant>) -> Self {
        let now = Instant::now();
        let next_ping = now + settings.heartbeat_interval;
        let mut heartbeat = Heartbeat {
            timer: Box::pin(sleep_until(next_ping)),
            interval: settings.heartbeat_interval,
            next_ping,
            last_heard: now,
            silence_limit: settings.heartbeat_interval + settings.heartbeat_timeout,
            expires,
        };
        heartbeat.arm();
        heartbeat
    }

    /// The client sent something: it is alive. (The timer is not moved: when it fires
    /// for the old silence limit, it finds the client heard and waits on.)
    pub(super) fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// The token was renewed: it now expires at `at`.
    pub(super) fn expires_at(&mut self, at: Instant) {
        self.expires = Some(at);
        self.arm();
    }

    /// Sets the timer for whichever comes first.
    pub(super) fn arm(&mut self) {
        let silent_at = self.last_heard + self.silence_limit;
        let mut due = self.next_ping.min(silent_at);
        if let Some(expires) = self.expires {
            due = due.min(expires);
        }
        if self.timer.deadline() != due {
            self.timer.as_mut().reset(due);
        }
    }

    /// Waits for the next ping, the silence limit or the token's end. Cancel-safe, for
    /// `select!`.
    pub(super) async fn next(&mut self) -> Beat {
        loop {
            self.timer.as_mut().await;
            let now = Instant::now();
            if self.expires.is_some_and(|expires| now >= expires) {
                return Beat::Expired;
            }
            if now >= self.last_heard + self.silence_limit {
                return Beat::Silent;
            }
            let ping = now >= self.next_ping;
            if ping {
                // Missed ticks are not made up: the next ping is an interval from now.
                self.next_ping = now + self.interval;
            }
            self.arm();
            if ping {
                return Beat::Ping;
            }
        }
    }
}
