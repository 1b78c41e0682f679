//! Rooms across several Parley processes, through Redis.
//!
//! - [`RedisBroker`]: the `Broker` port on Redis pub/sub — one channel per
//!   room and one for control messages; a process subscribes to a room's
//!   channel while the room has members there ([`relay`]) and publishes its
//!   own events in order, a batch per round trip ([`publisher`]); whether
//!   both ways work is told to the hub ([`links`]).
//! - [`RedisPresence`]: the `Presence` port — each process's members in keys
//!   of its own that expire unless its heartbeat renews them; a dead
//!   process's members are claimed once, by one survivor ([`presence`]).
//!
//! Both take [`RedisSettings`]: the deployment's key prefix and the timings
//! (shorter in tests, never by `cfg!(test)`).
//!
//! Knows Redis and its keys and channels; knows nothing of sockets, HTTP,
//! storage or the other adapters.

mod broker;
mod links;
mod presence;
mod publisher;
mod relay;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use broker::RedisBroker;
pub use presence::RedisPresence;

/// How Parley uses a Redis: names and timings.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// Prefixes every key and channel, so that deployments (or tests)
    /// sharing one Redis stay apart.
    pub deployment: String,
    /// How often a process renews its presence, and pings its relay.
    pub heartbeat: Duration,
    /// How long a process counts as alive after its last heartbeat: its
    /// members leave every listing this long after it dies.
    pub expiry: Duration,
    /// How much longer a dead process's member lists are kept, to be claimed.
    pub grace: Duration,
    /// How long a process must have reached Redis without a break before it
    /// takes another for dead: long enough for every live process to renew
    /// its keys after an outage.
    pub claim_after: Duration,
    /// How long after the link comes back a publisher checks that each event
    /// reached as many processes as before the outage, publishing it again
    /// (once-only: receivers drop repeats) until it does.
    pub recovery: Duration,
    /// How long a join waits for its room to be relayed and its presence
    /// written, before going on without them (Redis slow or down: the room
    /// still works inside this process).
    pub join_patience: Duration,
}

impl RedisSettings {
    /// Production timings: a dead process leaves listings within 8 s.
    pub fn new(deployment: &str) -> Self {
        Self {
            deployment: deployment.to_owned(),
            heartbeat: Duration::from_secs(2),
            // Four heartbeats, so one slow one does not blink a process out.
            expiry: Duration::from_secs(8),
            grace: Duration::from_secs(60),
            claim_after: Duration::from_secs(8),
            recovery: Duration::from_secs(5),
            join_patience: Duration::from_secs(2),
        }
    }

    /// Timings for tests: a dead process expires within a second.
    pub fn quick(deployment: &str) -> Self {
        Self {
            heartbeat: Duration::from_millis(200),
            expiry: Duration::from_millis(800),
            grace: Duration::from_secs(10),
            claim_after: Duration::ZERO,
            ..Self::new(deployment)
        }
    }
}

/// Longest pause between reconnection attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A name for this process, unique enough across a deployment.
pub(crate) fn origin() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos:x}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A client for `url` and a connection manager on it that reconnects by
/// itself: few retries of its own on the first connection (the caller
/// decides how long to wait), and no command waits forever on a stalled Redis.
pub(crate) async fn connect(url: &str) -> redis::RedisResult<(redis::Client, ConnectionManager)> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_max_delay(MAX_BACKOFF)
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let connection = client.get_connection_manager_with_config(config).await?;
    Ok((client, connection))
}
