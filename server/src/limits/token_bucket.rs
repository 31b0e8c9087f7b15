//! A token bucket: `burst` messages at once, refilled at `per_second`.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        TokenBucket {
            capacity: f64::from(burst.max(1)),
            per_second: f64::from(per_second.max(1)),
            tokens: f64::from(burst.max(1)),
            refilled_at: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self) -> bool {
        self.try_take_at(Instant::now())
    }

    fn try_take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.refilled_at = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until the next token, for error messages.
    pub(crate) fn retry_after(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens).max(0.0)) / self.per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_the_sustained_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(20, 40);
        bucket.refilled_at = start;
        let taken = (0..100).filter(|_| bucket.try_take_at(start)).count();
        assert_eq!(taken, 40);
        assert!(!bucket.try_take_at(start + Duration::from_millis(10)));
        assert!(bucket.retry_after() > Duration::ZERO);
        // 20 per second: one more token every 50 ms.
        assert!(bucket.try_take_at(start + Duration::from_millis(60)));
        assert!(!bucket.try_take_at(start + Duration::from_millis(61)));
        let later = start + Duration::from_secs(10);
        let taken = (0..100).filter(|_| bucket.try_take_at(later)).count();
        assert_eq!(taken, 40, "refill is capped at the burst size");
    }
}
