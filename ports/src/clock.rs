//! Time, as a port: services stamp events and accounts with it, the chat-log
//! writer backs off with it, token issuers check expiry against it; tests
//! drive a manual one instead of waiting.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

/// Where "now" comes from, and how to wait.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Clock: Send + Sync {
    /// The current time in UTC.
    fn now(&self) -> OffsetDateTime;
    /// Waits for `duration` (a manual test clock advances instead).
    async fn sleep(&self, duration: Duration);
}
