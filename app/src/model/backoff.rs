//! When to try again after a connection is lost.
//!
//! Exponential backoff with jitter: 0.5 s doubling up to a 30 s cap, each delay
//! drawn between half and all of its step so that clients dropped together (a
//! server restart) do not come back together.

use std::time::Duration;

/// The wait before the first attempt after a loss.
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest wait between attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// A connection that stayed open this long counts as healthy: the next loss
/// starts the backoff over.
pub const STABLE_AFTER: Duration = Duration::from_secs(5);

/// The bounds of a backoff schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The first step (the first delay is drawn from its upper half).
    pub first: Duration,
    /// No step is longer.
    pub max: Duration,
    /// A connection open this long resets the schedule.
    pub stable_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            first: FIRST_DELAY,
            max: MAX_DELAY,
            stable_after: STABLE_AFTER,
        }
    }
}

/// Where a reconnecting socket is in its schedule: the attempt number and its policy.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
}

impl Backoff {
    /// A schedule with the default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// A schedule with these bounds.
    pub fn with_policy(policy: BackoffPolicy) -> Self {
        Backoff { policy, attempt: 0 }
    }

    /// Reconnect attempts since the last healthy connection.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Records a failed or lost connection and returns the delay before the next
    /// attempt. `jitter` is a uniform random number in `[0, 1)`.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        let step = self
            .policy
            .first
            .saturating_mul(1 << (self.attempt - 1).min(16))
            .min(self.policy.max);
        step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// A connection stayed open for `open_for`: forget old failures if it was long enough.
    pub fn connected_for(&mut self, open_for: Duration) {
        if open_for >= self.policy.stable_after {
            self.attempt = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_half_a_second_to_the_cap() {
        let mut backoff = Backoff::new();
        let steps: Vec<Duration> = (0..10).map(|_| backoff.next_delay(0.999_999)).collect();
        let millis: Vec<u128> = steps.iter().map(|step| step.as_millis()).collect();
        assert_eq!(
            millis,
            [
                499, 999, 1999, 3999, 7999, 15999, 29999, 29999, 29999, 29999
            ]
        );
        assert_eq!(backoff.attempt(), 10);
    }

    #[test]
    fn jitter_spreads_a_delay_over_the_upper_half_of_its_step() {
        let mut low = Backoff::new();
        let mut high = Backoff::new();
        for _ in 0..3 {
            low.next_delay(0.0);
            high.next_delay(0.999);
        }
        assert_eq!(low.next_delay(0.0), Duration::from_secs(2));
        assert!(high.next_delay(0.999) > Duration::from_millis(3990));
    }

    #[test]
    fn only_a_stable_connection_resets_the_backoff() {
        let mut backoff = Backoff::new();
        backoff.next_delay(0.0);
        backoff.next_delay(0.0);
        backoff.connected_for(Duration::from_secs(1));
        assert_eq!(backoff.attempt(), 2);
        backoff.connected_for(STABLE_AFTER);
        assert_eq!(backoff.attempt(), 0);
        assert_eq!(backoff.next_delay(0.0), Duration::from_millis(250));
    }

    #[test]
    fn a_policy_sets_the_bounds() {
        let mut backoff = Backoff::with_policy(BackoffPolicy {
            first: Duration::from_millis(100),
            max: Duration::from_millis(300),
            stable_after: Duration::from_secs(1),
        });
        let delays: Vec<Duration> = (0..4).map(|_| backoff.next_delay(1.0)).collect();
        assert_eq!(
            delays,
            [100, 200, 300, 300].map(Duration::from_millis),
            "doubling from the first step up to the cap"
        );
        backoff.connected_for(Duration::from_secs(1));
        assert_eq!(backoff.attempt(), 0);
    }

    #[test]
    fn a_long_outage_never_overflows() {
        let mut backoff = Backoff::new();
        for _ in 0..1000 {
            assert!(backoff.next_delay(0.5) <= MAX_DELAY);
        }
    }
}
