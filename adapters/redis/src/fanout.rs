//! `RedisFanout`: local members are served by an in-process `MemoryFanout`
//! at once, whatever Redis is doing; every event is also published once to
//! the room's Redis channel, and a relay task delivers the other processes'
//! events to this process's members. One Redis subscription per room per
//! process — made when the room's first local member joins, dropped when
//! its last one leaves — never one per connection.
//!
//! Order: a process publishes its events to Redis in the order they were
//! published locally (one publishing task), and Redis keeps a channel's
//! order, so every member sees each publisher's events in order.
//!
//! Not yet here (issue 9, next steps): presence and recent events across
//! processes (`members`, `rooms` and the recent events are this process's),
//! and the degraded-delivery notice to members while Redis is down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use parley_memory::MemoryFanout;
use parley_ports::domain::{DisplayName, RoomName};
use parley_ports::{Fanout, FanoutError, Published, Subscription};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, oneshot};

use crate::wire;

/// Events waiting to be published to Redis; past this, new ones reach this
/// process's members only (counted and logged).
const OUTBOX: usize = 10_000;
/// How long a join waits for the room's Redis subscription before going on
/// without it (Redis down: the room still works inside this process).
const SUBSCRIBE_PATIENCE: Duration = Duration::from_secs(2);
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub struct RedisFanout {
    local: Arc<MemoryFanout>,
    shared: Arc<Shared>,
    outbox: mpsc::Sender<Arc<Published>>,
    publisher: ConnectionManager,
}

struct Shared {
    /// Local members per room: a room is subscribed while it has any.
    rooms: Mutex<HashMap<RoomName, usize>>,
    relay: mpsc::UnboundedSender<Relay>,
    /// Events that reached this process's members only.
    unrelayed: AtomicU64,
}

/// What the relay task is asked to do, by room.
enum Relay {
    Subscribe(RoomName, oneshot::Sender<()>),
    Unsubscribe(RoomName),
}

impl RedisFanout {
    /// Connects to Redis at `url`. `channels` prefixes every channel name, so
    /// that deployments (or tests) sharing one Redis stay apart.
    pub async fn connect(url: &str, channels: &str, queue_capacity: usize) -> Result<Self, FanoutError> {
        let unavailable = |error: redis::RedisError| FanoutError::Unavailable(error.into());
        let client = redis::Client::open(url).map_err(unavailable)?;
        // Few retries of its own on the first connection (the caller decides
        // how long to wait), and no command waits forever on a stalled Redis.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_max_delay(MAX_BACKOFF)
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let publisher = client.get_connection_manager_with_config(config).await.map_err(unavailable)?;
        let local = Arc::new(MemoryFanout::new(queue_capacity));
        let origin = origin();
        let (relay, requests) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared { rooms: Mutex::default(), relay, unrelayed: AtomicU64::new(0) });
        let (outbox, pending) = mpsc::channel(OUTBOX);
        let prefix = format!("{channels}:room:");
        tokio::spawn(relay_task(
            client,
            Arc::clone(&local),
            Arc::clone(&shared),
            requests,
            origin.clone(),
            prefix.clone(),
        ));
        tokio::spawn(publish_task(publisher.clone(), pending, origin, prefix));
        Ok(Self { local, shared, outbox, publisher })
    }

    /// Events that reached only this process's members (Redis down or slow).
    pub fn unrelayed(&self) -> u64 {
        self.shared.unrelayed.load(Ordering::Relaxed)
    }
}

/// A name for this process, unique enough across a deployment.
fn origin() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos:x}", std::process::id())
}

fn channel(prefix: &str, room: &RoomName) -> String {
    format!("{prefix}{}", room.as_str())
}

impl Shared {
    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<RoomName, usize>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn left(&self, room: &RoomName) {
        let mut rooms = self.rooms();
        if let Some(count) = rooms.get_mut(room) {
            *count -= 1;
            if *count == 0 {
                rooms.remove(room);
                let _ = self.relay.send(Relay::Unsubscribe(room.clone()));
            }
        }
    }
}

#[async_trait]
impl Fanout for RedisFanout {
    async fn publish(&self, event: Arc<Published>) -> Result<(), FanoutError> {
        self.local.publish(Arc::clone(&event)).await?;
        if self.outbox.try_send(event).is_err() {
            let count = self.shared.unrelayed.fetch_add(1, Ordering::Relaxed) + 1;
            if count.is_power_of_two() {
                tracing::warn!(count, "Redis is not keeping up: events reach this process's members only");
            }
        }
        Ok(())
    }

    async fn subscribe(&self, room: &RoomName, member: &DisplayName) -> Result<Subscription, FanoutError> {
        let subscription = self.local.subscribe(room, member).await?;
        let subscribing = {
            let mut rooms = self.shared.rooms();
            let count = rooms.entry(room.clone()).or_insert(0);
            *count += 1;
            // Asked under the lock, as `left` unsubscribes: the relay sees
            // a room's subscribe and unsubscribe in the order the counts changed.
            (*count == 1).then(|| {
                let (done, subscribed) = oneshot::channel();
                let _ = self.shared.relay.send(Relay::Subscribe(room.clone(), done));
                subscribed
            })
        };
        if let Some(subscribed) = subscribing
            && tokio::time::timeout(SUBSCRIBE_PATIENCE, subscribed).await.is_err()
        {
            tracing::warn!(room = room.as_str(), "no Redis subscription yet: the room works in this process only");
        }
        let shared = Arc::clone(&self.shared);
        let room = room.clone();
        Ok(subscription.on_drop(move || shared.left(&room)))
    }

    async fn members(&self, room: &RoomName) -> Result<Vec<DisplayName>, FanoutError> {
        self.local.members(room).await
    }

    async fn rooms(&self) -> Result<Vec<(RoomName, usize)>, FanoutError> {
        self.local.rooms().await
    }

    async fn ping(&self) -> Result<(), FanoutError> {
        let mut connection = self.publisher.clone();
        let answer =
            tokio::time::timeout(Duration::from_secs(1), redis::cmd("PING").query_async::<String>(&mut connection))
                .await;
        match answer {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(FanoutError::Unavailable(error.into())),
            Err(_) => Err(FanoutError::Unavailable("Redis did not answer PING within 1 s".into())),
        }
    }
}

/// Publishes this process's events to Redis, in order, retrying while Redis
/// is away (the connection manager reconnects on its own).
async fn publish_task(
    mut connection: ConnectionManager,
    mut pending: mpsc::Receiver<Arc<Published>>,
    origin: String,
    prefix: String,
) {
    while let Some(event) = pending.recv().await {
        let payload = wire::encode(&origin, event.event());
        let channel = channel(&prefix, &event.event().room);
        let mut backoff = Duration::from_millis(50);
        loop {
            match redis::cmd("PUBLISH").arg(&channel).arg(&payload).query_async::<i64>(&mut connection).await {
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "could not publish to Redis; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Keeps one Redis subscription per room with local members, and hands the
/// other processes' events to the local fan-out. Reconnects and
/// resubscribes after Redis goes away.
async fn relay_task(
    client: redis::Client,
    local: Arc<MemoryFanout>,
    shared: Arc<Shared>,
    mut requests: mpsc::UnboundedReceiver<Relay>,
    origin: String,
    prefix: String,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let (mut sink, mut stream) = match client.get_async_pubsub().await {
            Ok(pubsub) => pubsub.split(),
            Err(error) => {
                tracing::warn!(%error, "no Redis subscription connection; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let wanted: Vec<String> = shared.rooms().keys().map(|room| channel(&prefix, room)).collect();
        if !wanted.is_empty() && sink.subscribe(&wanted).await.is_err() {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        backoff = Duration::from_millis(50);
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    None => return,
                    Some(Relay::Subscribe(room, done)) => {
                        if sink.subscribe(channel(&prefix, &room)).await.is_err() {
                            break;
                        }
                        let _ = done.send(());
                    }
                    Some(Relay::Unsubscribe(room)) => {
                        if sink.unsubscribe(channel(&prefix, &room)).await.is_err() {
                            break;
                        }
                    }
                },
                message = stream.next() => match message {
                    None => break,
                    Some(message) => {
                        let Some((from, event)) = wire::decode(message.get_payload_bytes()) else { continue };
                        if from != origin {
                            let _ = local.publish(Published::new(event)).await;
                        }
                    }
                },
            }
        }
        tracing::warn!("the Redis subscription connection dropped; reconnecting");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> String {
        std::env::var("PARLEY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// A fan-out on the test Redis with channels of its own; `None` (with
    /// the reason printed) when there is no Redis, which under `CI=true` is
    /// a failure.
    async fn fanout(channels: &str) -> Option<RedisFanout> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let channels =
            format!("parley-test-{}-{}-{channels}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        match RedisFanout::connect(&server(), &channels, 256).await {
            Ok(fanout) => Some(fanout),
            Err(error) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("CI=true but the Redis test server at {} is unreachable: {error}", server());
                }
                eprintln!("skipped: no Redis test server at {} ({error}); set PARLEY_TEST_REDIS_URL", server());
                None
            }
        }
    }

    parley_ports::fanout_contract!(optional fanout("contract"));

    /// Two processes' fan-outs on one Redis, sharing their channels.
    async fn two_processes() -> Option<(RedisFanout, RedisFanout)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        // The first says whether there is a Redis at all (or fails under CI).
        let first = fanout("pair").await?;
        let channels = format!("parley-test-{}-pair-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let a = RedisFanout::connect(&server(), &channels, 256).await.ok()?;
        let b = RedisFanout::connect(&server(), &channels, 256).await.ok()?;
        drop(first);
        Some((a, b))
    }

    fn event(n: u128) -> Arc<Published> {
        use parley_ports::domain::{ChatEvent, EventId, EventKind, MessageText};
        Published::new(ChatEvent {
            id: EventId::from_u128(n),
            room: RoomName::parse("lobby").unwrap(),
            user: DisplayName::parse("ann").unwrap(),
            kind: EventKind::Message,
            text: MessageText::parse(format!("m{n}")).unwrap(),
            timestamp: time::macros::datetime!(2026-11-26 12:00 UTC),
        })
    }

    async fn next(subscription: &mut Subscription) -> u128 {
        let event = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await;
        event.expect("an event within 5 s").expect("still subscribed").event().id.as_u128()
    }

    #[tokio::test]
    async fn an_event_reaches_members_in_both_processes_once_each_in_order() {
        let Some((a, b)) = two_processes().await else { return };
        let room = RoomName::parse("lobby").unwrap();
        let mut ann = a.subscribe(&room, &DisplayName::parse("ann").unwrap()).await.unwrap();
        let mut bob = b.subscribe(&room, &DisplayName::parse("bob").unwrap()).await.unwrap();
        for n in 1..=50 {
            a.publish(event(n)).await.unwrap();
        }
        for n in 1..=50 {
            assert_eq!(next(&mut bob).await, n, "in order, in the other process");
            assert_eq!(next(&mut ann).await, n, "in order, in the publishing one");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(ann.try_next().unwrap().is_none(), "not echoed back to the publishing process");
        assert!(bob.try_next().unwrap().is_none(), "each event once");
    }

    #[tokio::test]
    async fn a_process_stops_relaying_a_room_its_members_have_left() {
        let Some((a, b)) = two_processes().await else { return };
        let room = RoomName::parse("lobby").unwrap();
        let bob = b.subscribe(&room, &DisplayName::parse("bob").unwrap()).await.unwrap();
        drop(bob);
        assert!(b.shared.rooms().is_empty(), "the room is unsubscribed with its last member");
        let mut carol = b.subscribe(&room, &DisplayName::parse("carol").unwrap()).await.unwrap();
        a.publish(event(7)).await.unwrap();
        assert_eq!(next(&mut carol).await, 7, "and subscribed again with the next one");
    }
}
