//! Rooms across several Parley processes, through NATS.
//!
//! - [`NatsBroker`]: the `Broker` port on core NATS — one subject per room
//!   and one for control messages; a process subscribes to a room's subject
//!   while the room has members there ([`relay`]) and publishes its own
//!   events in order, each batch confirmed by a round trip ([`publisher`]);
//!   whether events cross is probed and told to the hub ([`link`]).
//! - [`NatsPresence`]: the `Presence` port in a JetStream key-value bucket —
//!   each process's members in keys of its own, alive while its heartbeat
//!   is recent by the server's clock; a dead process's members are claimed
//!   once, by one survivor ([`presence`]).
//!
//! Both take [`NatsSettings`]: the deployment's name and the timings
//! (shorter in tests, never by `cfg!(test)`).
//!
//! Room names are chosen by clients and may hold anything NATS gives a
//! meaning to (`.`, `*`, `>`, spaces): they reach subjects and keys only as
//! hex ([`hex`]).
//!
//! Knows NATS, its subjects and the bucket's keys; knows nothing of
//! sockets, HTTP, storage or the other adapters.

mod broker;
mod link;
mod presence;
mod publisher;
mod relay;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;

use std::time::Duration;

pub use broker::NatsBroker;
pub use presence::NatsPresence;

/// How Parley uses a NATS server: names and timings.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// Prefixes every subject and names the presence bucket, so that
    /// deployments (or tests) sharing one server stay apart. Characters
    /// other than ASCII letters, digits, `-` and `_` become `_`.
    pub deployment: String,
    /// How often a process renews its presence and probes its link.
    pub heartbeat: Duration,
    /// How long a process counts as alive after its last heartbeat: its
    /// members leave every listing this long after it dies.
    pub expiry: Duration,
    /// How much longer a dead process's member lists are kept, to be
    /// claimed (the bucket's `max_age` is `expiry + grace`).
    pub grace: Duration,
    /// How long a process must have written its presence without a break
    /// before it takes another for dead: long enough for every live process
    /// to renew its heartbeat after an outage.
    pub claim_after: Duration,
    /// How long after the link comes back the other processes may still be
    /// subscribing again: events published meanwhile may miss them, and are
    /// counted as unrelayed.
    pub recovery: Duration,
    /// How long a join waits for its room to be relayed and its presence
    /// written, before going on without them (NATS slow or down: the room
    /// still works inside this process).
    pub join_patience: Duration,
}

impl NatsSettings {
    /// Production timings: a dead process leaves listings within 10 s.
    pub fn new(deployment: &str) -> Self {
        Self {
            deployment: deployment.to_owned(),
            heartbeat: Duration::from_secs(2),
            // Four heartbeats, so one slow one does not blink a process out.
            expiry: Duration::from_secs(8),
            grace: Duration::from_secs(60),
            claim_after: Duration::from_secs(8),
            // Every other process retries within MAX_BACKOFF of the server's
            // return, then subscribes again at once: a few seconds cover it.
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

    /// The deployment as one subject token and bucket name.
    pub(crate) fn name(&self) -> String {
        let name: String = self
            .deployment
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        if name.is_empty() { "parley".to_owned() } else { name }
    }
}

/// Longest pause between reconnection attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How long the server gets to answer a round trip (a probe, a read).
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// A name for this process, unique enough across a deployment; safe in a
/// subject token and a key (hex digits and `-`).
pub(crate) fn origin() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:x}-{nanos:x}-{:x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `text` as lowercase hex: one subject token or key part whatever it holds.
pub(crate) fn hex(text: &str) -> String {
    use std::fmt::Write;
    text.bytes().fold(String::with_capacity(text.len() * 2), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// A client for `url` that reconnects by itself, soon after the server is
/// back (at most [`MAX_BACKOFF`] apart), and notices a silent server within
/// three heartbeats. The first connection is tried once: the caller decides
/// how long to wait. `no_echo`: this process's own messages are not sent
/// back to it (it delivered them itself).
pub(crate) async fn connect(
    url: &str,
    settings: &NatsSettings,
    events: impl Fn(async_nats::Event) + Send + Sync + 'static,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let events = std::sync::Arc::new(events);
    async_nats::ConnectOptions::new()
        .name(format!("parley {}", settings.name()))
        .no_echo()
        .connection_timeout(ANSWER_WITHIN)
        .ping_interval(settings.heartbeat)
        .max_reconnects(None)
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(move |event| {
            let events = std::sync::Arc::clone(&events);
            async move { events(event) }
        })
        .connect(url)
        .await
}

/// The pause before reconnection attempt `attempts`: none at first, then
/// doubling from 50 ms up to [`MAX_BACKOFF`].
fn reconnect_delay(attempts: usize) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16) as u32;
    if attempts <= 1 { Duration::ZERO } else { (Duration::from_millis(50) * 2u32.pow(doublings)).min(MAX_BACKOFF) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_room_name_becomes_one_safe_token() {
        for name in ["a.b", "a b", "*", ">", "général", "x.*.>"] {
            let token = hex(name);
            assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        }
        assert_ne!(hex("a.b"), hex("a_b"));
        assert_eq!(hex("é"), "c3a9");
    }

    #[test]
    fn the_deployment_name_is_one_token() {
        assert_eq!(NatsSettings::new("parley").name(), "parley");
        assert_eq!(NatsSettings::new("a.b c>*").name(), "a_b_c__");
        assert_eq!(NatsSettings::new("").name(), "parley");
    }

    #[test]
    fn reconnection_backs_off_to_a_second() {
        assert_eq!(reconnect_delay(0), Duration::ZERO);
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(100));
        assert_eq!(reconnect_delay(1000), MAX_BACKOFF);
    }
}
