//! A clock that moves only when told: expiry and backoff without waiting.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::Clock;

pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    pub fn at(now: OffsetDateTime) -> Self {
        Self { now: Mutex::new(now) }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeping moves the clock on and returns at once.
    async fn sleep(&self, duration: Duration) {
        self.advance(duration);
    }
}
