//! The publisher: this process's events and control messages to Redis, in
//! the order they were published here, a batch per round trip.
//!
//! While Redis is away it retries (the connection manager reconnects), so
//! what was published meanwhile goes out late and in order. Redis pub/sub
//! keeps nothing for a subscriber that is not subscribed yet, so for a
//! while after the link comes back ([`crate::RedisSettings::recovery`]) the
//! publisher sends one envelope at a time and checks Redis's answer — how
//! many subscriptions received it — against how many did before the
//! outage: short, it publishes the same envelope again (receivers drop
//! repeats) until the others have subscribed again, or counts it as
//! unrelayed once recovery is over. A refusal (wrong password, no
//! permission) is counted at once: retrying would hold back every later event.
//!
//! Knows Redis commands and envelopes; nothing of members.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parley_ports::envelope::{Contents, seal};
use parley_ports::{Control, Published};
use redis::aio::ConnectionManager;
use std::time::Instant;
use tokio::sync::mpsc;

use crate::MAX_BACKOFF;
use crate::broker::Channels;
use crate::links::{Link, Links};

/// Envelopes sent per round trip at most.
const BATCH: usize = 64;
/// Channels whose audience is remembered at most (a hostile client may name
/// endless rooms; forgetting only costs the check after an outage).
const AUDIENCES: usize = 65_536;
/// How long to wait before publishing again an envelope that reached too few.
const RECHECK: Duration = Duration::from_millis(50);

/// What waits to be published.
pub(crate) enum Outgoing {
    Event(Arc<Published>),
    Control(Control),
}

pub(crate) struct Publisher {
    pub(crate) connection: ConnectionManager,
    pub(crate) channels: Channels,
    pub(crate) links: Arc<Links>,
    pub(crate) unrelayed: Arc<AtomicU64>,
    pub(crate) recovery: Duration,
}

/// An envelope ready to go.
struct Sealed {
    channel: String,
    bytes: Vec<u8>,
}

impl Publisher {
    pub(crate) async fn run(mut self, mut pending: mpsc::Receiver<Outgoing>) {
        let (mut events, mut controls) = (0u64, 0u64);
        // How many subscriptions each channel's last envelope reached.
        let mut audiences: HashMap<String, i64> = HashMap::new();
        // Whether the last attempt failed: the link is being recovered.
        let mut outage = false;
        let mut recovering_until: Option<Instant> = None;
        let mut batch = Vec::with_capacity(BATCH);
        while pending.recv_many(&mut batch, BATCH).await > 0 {
            let sealed: Vec<Sealed> = batch
                .drain(..)
                .map(|outgoing| match outgoing {
                    Outgoing::Event(event) => {
                        events += 1;
                        let event = event.event();
                        let channel = self.channels.room(&event.room);
                        Sealed { channel, bytes: seal(&self.channels.origin, events, Contents::Event(event)) }
                    }
                    Outgoing::Control(control) => {
                        controls += 1;
                        let bytes = seal(&self.channels.origin, controls, Contents::Control(&control));
                        Sealed { channel: self.channels.control(), bytes }
                    }
                })
                .collect();
            let mut from = 0;
            let mut backoff = Duration::from_millis(50);
            // When the envelope at `from` was first found to reach too few.
            let mut short_since: Option<Instant> = None;
            while from < sealed.len() {
                // With a link down, or just after an outage (which other
                // processes are likely to have shared), go one by one.
                let recovering = outage
                    || self.links.down().is_some()
                    || [recovering_until, self.links.restored_at().map(|at| at + self.recovery)]
                        .into_iter()
                        .flatten()
                        .any(|until| Instant::now() < until);
                let take = if recovering { 1 } else { sealed.len() - from };
                let mut pipe = redis::pipe();
                for envelope in &sealed[from..from + take] {
                    pipe.cmd("PUBLISH").arg(&envelope.channel).arg(&envelope.bytes);
                }
                match pipe.query_async::<Vec<i64>>(&mut self.connection).await {
                    Ok(reached) => {
                        self.links.set(Link::Publishing, true);
                        backoff = Duration::from_millis(50);
                        if outage {
                            outage = false;
                            recovering_until = Some(Instant::now() + self.recovery);
                        }
                        if recovering {
                            let envelope = &sealed[from];
                            let before = audiences.get(&envelope.channel).copied().unwrap_or(0);
                            let now = reached.first().copied().unwrap_or(0);
                            if now < before {
                                // Each envelope waits at most `recovery`; then
                                // its channel's smaller audience is the truth.
                                let since = *short_since.get_or_insert_with(Instant::now);
                                if since.elapsed() < self.recovery {
                                    tokio::time::sleep(RECHECK).await;
                                    continue;
                                }
                                self.unrelayed.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(
                                    channel = envelope.channel,
                                    reached = now,
                                    before,
                                    "an event published around a Redis outage may not have reached every process"
                                );
                            }
                        }
                        short_since = None;
                        if audiences.len() >= AUDIENCES {
                            audiences.clear();
                        }
                        for (envelope, reached) in sealed[from..from + take].iter().zip(reached) {
                            audiences.insert(envelope.channel.clone(), reached);
                        }
                        from += take;
                    }
                    Err(error) if transient(&error) => {
                        self.links.set(Link::Publishing, false);
                        outage = true;
                        tracing::warn!(%error, "could not publish to Redis; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                    Err(error) => {
                        self.links.set(Link::Publishing, false);
                        self.unrelayed.fetch_add(take as u64, Ordering::Relaxed);
                        tracing::error!(%error, events = take, "Redis refused to publish: these reached this process's members only");
                        from += take;
                    }
                }
            }
        }
    }
}

/// Whether trying again may work: the connection failed or timed out, or
/// Redis asked to wait (loading, busy). A refusal is not worth the wait.
fn transient(error: &redis::RedisError) -> bool {
    use redis::RetryMethod;
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(error.retry_method(), RetryMethod::WaitAndRetry | RetryMethod::RetryImmediately)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_connection_is_retried_and_a_refusal_is_not() {
        let dropped = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(transient(&dropped));
        let refused = redis::RedisError::from((redis::ErrorKind::AuthenticationFailed, "WRONGPASS invalid password"));
        assert!(!transient(&refused));
    }
}
