//! The relay: one Redis subscription per room with members here, whose
//! events (the other processes') go to this process's members through the
//! local fan-out. Reconnects and resubscribes after Redis goes away, and
//! pings it between events: a subscription waits silently, so a stalled
//! Redis or a connection lost without a reset would otherwise look like a
//! quiet room forever.
//!
//! Knows Redis pub/sub and the wire form; nothing of sockets or presence.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parley_ports::domain::RoomName;
use parley_ports::{Fanout, Published};
use tokio::sync::{mpsc, oneshot, watch};

use crate::fanout::{MAX_BACKOFF, Shared, channel};
use crate::health::Link;
use crate::presence::HEARTBEAT;
use crate::wire;

/// How long Redis gets to answer the relay (connect, subscribe, ping).
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// What the relay is asked to do, by room.
pub(crate) enum Relay {
    Subscribe(RoomName, oneshot::Sender<()>),
    Unsubscribe(RoomName),
}

pub(crate) async fn relay_task(
    client: redis::Client,
    shared: Arc<Shared>,
    mut requests: mpsc::UnboundedReceiver<Relay>,
    mut stop: watch::Receiver<()>,
) {
    // The last number heard from each process: a publish it retried after
    // losing the reply arrives twice, and is delivered once.
    let mut heard: HashMap<String, u64> = HashMap::new();
    let mut backoff = Duration::from_millis(50);
    loop {
        let connected = tokio::select! {
            connected = tokio::time::timeout(ANSWER_WITHIN, connect(&client, &shared)) => connected,
            _ = stop.changed() => return,
        };
        let (mut sink, mut stream) = match connected.unwrap_or_else(|_| Err(timed_out())) {
            Ok(pubsub) => pubsub,
            Err(error) => {
                shared.health.set(Link::Relaying, false);
                tracing::warn!(%error, "no Redis subscription connection; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        shared.health.set(Link::Relaying, true);
        backoff = Duration::from_millis(50);
        let mut probe = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    None => return,
                    Some(Relay::Subscribe(room, done)) => {
                        let subscribed = tokio::time::timeout(ANSWER_WITHIN, sink.subscribe(channel(&shared.prefix, &room)));
                        if !matches!(subscribed.await, Ok(Ok(()))) {
                            break;
                        }
                        let _ = done.send(());
                    }
                    Some(Relay::Unsubscribe(room)) => {
                        let unsubscribed = tokio::time::timeout(ANSWER_WITHIN, sink.unsubscribe(channel(&shared.prefix, &room)));
                        if !matches!(unsubscribed.await, Ok(Ok(()))) {
                            break;
                        }
                    }
                },
                _ = probe.tick() => {
                    if !matches!(tokio::time::timeout(ANSWER_WITHIN, sink.ping::<redis::Value>()).await, Ok(Ok(_))) {
                        break;
                    }
                }
                message = stream.next() => match message {
                    None => break,
                    Some(message) => {
                        let Some(relayed) = wire::decode(message.get_payload_bytes()) else { continue };
                        if relayed.origin == shared.origin {
                            continue;
                        }
                        let last = heard.entry(relayed.origin).or_default();
                        if relayed.seq <= *last {
                            continue;
                        }
                        *last = relayed.seq;
                        let _ = shared.local.publish(Published::new(relayed.event)).await;
                    }
                },
                _ = stop.changed() => return,
            }
        }
        shared.health.set(Link::Relaying, false);
        tracing::warn!("the Redis subscription connection dropped or stopped answering; reconnecting");
    }
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "Redis did not answer in time"))
}

/// A subscription connection, subscribed to every room with members here.
async fn connect(
    client: &redis::Client,
    shared: &Shared,
) -> redis::RedisResult<(redis::aio::PubSubSink, redis::aio::PubSubStream)> {
    let (mut sink, stream) = client.get_async_pubsub().await?.split();
    let wanted: Vec<String> = shared.here().rooms.keys().map(|room| channel(&shared.prefix, room)).collect();
    if !wanted.is_empty() {
        sink.subscribe(&wanted).await?;
    }
    Ok((sink, stream))
}
