//! A token bucket per connection: a sustained rate with room for bursts.

use std::time::Instant;

pub struct TokenBucket {
    tokens: f64,
    per_second: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(per_second: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self { tokens: burst, per_second: f64::from(per_second.max(1)), burst, last: Instant::now() }
    }

    /// Takes a token if one is left.
    pub fn take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_sustained_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket { tokens: 3.0, per_second: 2.0, burst: 3.0, last: start };
        assert!((0..3).all(|_| bucket.take_at(start)));
        assert!(!bucket.take_at(start));
        assert!(bucket.take_at(start + Duration::from_millis(500)), "half a second refills one at 2/s");
        assert!(!bucket.take_at(start + Duration::from_millis(500)));
        assert!((0..3).all(|_| bucket.take_at(start + Duration::from_secs(60))), "refills to the burst, no more");
        assert!(!bucket.take_at(start + Duration::from_secs(60)));
    }
}
