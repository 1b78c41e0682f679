//! The relay: one Redis subscription per room with members here, whose
//! events (the other processes') go to this process's members through the
//! local fan-out. Reconnects and resubscribes after Redis goes away.
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
use crate::wire;

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
            connected = connect(&client, &shared) => connected,
            _ = stop.changed() => return,
        };
        let (mut sink, mut stream) = match connected {
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
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    None => return,
                    Some(Relay::Subscribe(room, done)) => {
                        if sink.subscribe(channel(&shared.prefix, &room)).await.is_err() {
                            break;
                        }
                        let _ = done.send(());
                    }
                    Some(Relay::Unsubscribe(room)) => {
                        if sink.unsubscribe(channel(&shared.prefix, &room)).await.is_err() {
                            break;
                        }
                    }
                },
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
        tracing::warn!("the Redis subscription connection dropped; reconnecting");
    }
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
