//! The publisher: this process's events to Redis, in the order they were
//! published here, a batch per round trip. Retries while Redis is away (the
//! connection manager reconnects), gives up on a batch Redis refuses.
//!
//! Knows Redis commands and the wire form; nothing of members.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parley_ports::Published;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use crate::fanout::{MAX_BACKOFF, Shared, channel};
use crate::health::Link;
use crate::wire;

/// Events sent per round trip at most.
const BATCH: usize = 64;

pub(crate) async fn publish_task(
    mut connection: ConnectionManager,
    mut pending: mpsc::Receiver<Arc<Published>>,
    shared: Arc<Shared>,
) {
    let mut seq = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    while pending.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for event in batch.drain(..) {
            seq += 1;
            let event = event.event();
            let payload = wire::encode(&shared.origin, seq, event);
            pipe.cmd("PUBLISH").arg(channel(&shared.prefix, &event.room)).arg(payload).ignore();
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            match pipe.query_async::<()>(&mut connection).await {
                Ok(()) => {
                    shared.health.set(Link::Publishing, true);
                    break;
                }
                Err(error) if transient(&error) => {
                    shared.health.set(Link::Publishing, false);
                    tracing::warn!(%error, "could not publish to Redis; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(error) => {
                    // Retrying a refusal (a wrong password, no permission)
                    // would hold every later event back for nothing.
                    shared.health.set(Link::Publishing, false);
                    let events = pipe.len() as u64;
                    shared.unrelayed.fetch_add(events, Ordering::Relaxed);
                    tracing::error!(%error, events, "Redis refused to publish: these events reached this process's members only");
                    break;
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
