//! The real clock: the system's UTC time, and tokio's timer.

use std::time::Duration;

use async_trait::async_trait;
use parley_ports::Clock;
use time::OffsetDateTime;

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
