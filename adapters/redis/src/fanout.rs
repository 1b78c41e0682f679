//! `RedisFanout`: local members are served by an in-process `MemoryFanout`
//! at once, whatever Redis is doing; every event is also published once to
//! the room's Redis channel ([`crate::publisher`]), and the relay
//! ([`crate::relay`]) delivers the other processes' events to this
//! process's members. One Redis subscription per room per process — made
//! when the room's first local member joins, dropped when its last one
//! leaves — never one per connection. Presence is written beside it
//! ([`crate::presence`]); [`crate::health`] tells members when events stop
//! crossing, and when they cross again.
//!
//! Order: a process publishes its events to Redis in the order they were
//! published locally (one publishing task), and Redis keeps a channel's
//! order, so every member sees each publisher's events in order.
//!
//! Recent events (for newcomers and `since=`) are the local fan-out's: a
//! room's events from every process since it has had members here. Older
//! ones come from the chat log, which several processes share (they must:
//! accounts live there too).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use parley_memory::MemoryFanout;
use parley_ports::domain::{DisplayName, RoomName};
use parley_ports::{Fanout, FanoutError, Notice, Published, Subscription};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::health::Health;
use crate::presence::{self, Here, Keys};
use crate::publisher::publish_task;
use crate::relay::{Relay, relay_task};

/// Events waiting to be published to Redis; past this, new ones reach this
/// process's members only (counted and logged).
const OUTBOX: usize = 10_000;
/// How long a join waits for the room's Redis subscription and for its
/// presence to be written, before going on without them (Redis slow or
/// down: the room still works inside this process).
const JOIN_PATIENCE: Duration = Duration::from_secs(2);
/// How long a presence listing waits for the other processes' part.
const READ_PATIENCE: Duration = Duration::from_secs(1);
/// How long this process must have reached Redis without a break before
/// it takes another for dead: long enough for every live process to renew
/// its keys after an outage (they renew within a heartbeat or two).
const CLAIM_AFTER: Duration = if cfg!(test) { Duration::ZERO } else { presence::EXPIRY };
/// Longest pause between reconnection attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub struct RedisFanout {
    shared: Arc<Shared>,
    outbox: mpsc::Sender<Arc<Published>>,
    connection: ConnectionManager,
    keys: Keys,
    /// The number of the last presence change written to Redis.
    written: watch::Receiver<u64>,
    /// Dropped with the fan-out: the tasks stop.
    _stop: watch::Sender<()>,
}

/// What the fan-out shares with its tasks.
pub(crate) struct Shared {
    pub(crate) local: Arc<MemoryFanout>,
    here: Mutex<Here>,
    relay: mpsc::UnboundedSender<Relay>,
    pub(crate) presence_changed: Notify,
    /// Events that reached this process's members only.
    pub(crate) unrelayed: AtomicU64,
    pub(crate) health: Health,
    /// This process, as named to the others.
    pub(crate) origin: String,
    /// What every room's channel name starts with.
    pub(crate) prefix: String,
}

impl RedisFanout {
    /// Connects to Redis at `url`. `deployment` prefixes every key and
    /// channel name, so that deployments (or tests) sharing one Redis stay apart.
    pub async fn connect(url: &str, deployment: &str, queue_capacity: usize) -> Result<Self, FanoutError> {
        let unavailable = |error: redis::RedisError| FanoutError::Unavailable(error.into());
        let client = redis::Client::open(url).map_err(unavailable)?;
        // Few retries of its own on the first connection (the caller decides
        // how long to wait), and no command waits forever on a stalled Redis.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_max_delay(MAX_BACKOFF)
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let connection = client.get_connection_manager_with_config(config).await.map_err(unavailable)?;
        let local = Arc::new(MemoryFanout::new(queue_capacity));
        let (relay, requests) = mpsc::unbounded_channel();
        let origin = origin();
        let shared = Arc::new(Shared {
            health: Health::new(Arc::clone(&local)),
            local,
            here: Mutex::default(),
            relay,
            presence_changed: Notify::new(),
            unrelayed: AtomicU64::new(0),
            prefix: format!("{deployment}:room:"),
            origin: origin.clone(),
        });
        let (outbox, pending) = mpsc::channel(OUTBOX);
        let (stop, stopped) = watch::channel(());
        let (written_to, written) = watch::channel(0);
        tokio::spawn(relay_task(client, Arc::clone(&shared), requests, stopped.clone()));
        tokio::spawn(publish_task(connection.clone(), pending, Arc::clone(&shared)));
        let writer_keys = Keys::new(deployment, &origin);
        tokio::spawn(presence::write_task(connection.clone(), writer_keys, Arc::clone(&shared), written_to, stopped));
        let keys = Keys::new(deployment, &origin);
        Ok(Self { shared, outbox, connection, keys, written, _stop: stop })
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

pub(crate) fn channel(prefix: &str, room: &RoomName) -> String {
    format!("{prefix}{}", room.as_str())
}

impl Shared {
    pub(crate) fn here(&self) -> MutexGuard<'_, Here> {
        self.here.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn left(&self, room: &RoomName, name: &DisplayName) {
        {
            let mut here = self.here();
            // Asked under the lock, as the join's subscribe is: the relay
            // sees a room's subscribe and unsubscribe in the order they happened.
            if here.leave(room, name) {
                let _ = self.relay.send(Relay::Unsubscribe(room.clone()));
            }
        }
        self.presence_changed.notify_one();
    }
}

/// A member counted here: uncounted when dropped, even if its join was
/// abandoned half-way (the client left while Redis was slow).
struct Counted {
    shared: Arc<Shared>,
    room: RoomName,
    name: DisplayName,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.shared.left(&self.room, &self.name);
    }
}

#[async_trait]
impl Fanout for RedisFanout {
    async fn publish(&self, event: Arc<Published>) -> Result<(), FanoutError> {
        self.shared.local.publish(Arc::clone(&event)).await?;
        if self.outbox.try_send(event).is_err() {
            let count = self.shared.unrelayed.fetch_add(1, Ordering::Relaxed) + 1;
            if count.is_power_of_two() {
                tracing::warn!(count, "Redis is not keeping up: events reach this process's members only");
            }
        }
        Ok(())
    }

    async fn subscribe(&self, room: &RoomName, member: &DisplayName) -> Result<Subscription, FanoutError> {
        let (counted, subscribed, change) = {
            let mut here = self.shared.here();
            let (first, change) = here.join(room, member);
            let subscribed = first.then(|| {
                let (done, subscribed) = oneshot::channel();
                let _ = self.shared.relay.send(Relay::Subscribe(room.clone(), done));
                subscribed
            });
            let counted = Counted { shared: Arc::clone(&self.shared), room: room.clone(), name: member.clone() };
            (counted, subscribed, change)
        };
        self.shared.presence_changed.notify_one();
        if !self.shared.health.degraded() {
            // Once welcomed, the member hears every process and every
            // process lists it.
            let mut written = self.written.clone();
            let ready = async move {
                if let Some(subscribed) = subscribed {
                    let _ = subscribed.await;
                }
                let _ = written.wait_for(|written| *written >= change).await;
            };
            if tokio::time::timeout(JOIN_PATIENCE, ready).await.is_err() {
                tracing::warn!(room = room.as_str(), "Redis is slow: the room may work in this process only for now");
            }
        }
        let mut subscription = self.shared.local.subscribe(room, member).await?;
        // Read after joining: a change of health now either shows here or
        // is told to this member among the rest.
        if self.shared.health.degraded() {
            subscription = subscription.with_notice(Notice::Degraded);
        }
        Ok(subscription.on_drop(move || drop(counted)))
    }

    async fn members(&self, room: &RoomName) -> Result<Vec<DisplayName>, FanoutError> {
        let mut names = self.shared.local.members(room).await?;
        if !self.shared.health.degraded() {
            let mut connection = self.connection.clone();
            let elsewhere = presence::members_elsewhere(&mut connection, &self.keys, room);
            match tokio::time::timeout(READ_PATIENCE, elsewhere).await {
                Ok(Ok(others)) => names.extend(others),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "presence elsewhere unavailable; listing this process's members")
                }
                Err(_) => tracing::warn!("Redis is slow: listing this process's members only"),
            }
        }
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    async fn rooms(&self) -> Result<Vec<(RoomName, usize)>, FanoutError> {
        let mut rooms: HashMap<RoomName, usize> = self.shared.local.rooms().await?.into_iter().collect();
        if !self.shared.health.degraded() {
            let mut connection = self.connection.clone();
            match tokio::time::timeout(READ_PATIENCE, presence::rooms_elsewhere(&mut connection, &self.keys)).await {
                Ok(Ok(others)) => {
                    for (room, connections) in others {
                        *rooms.entry(room).or_default() += connections;
                    }
                }
                Ok(Err(error)) => tracing::warn!(%error, "rooms elsewhere unavailable; listing this process's rooms"),
                Err(_) => tracing::warn!("Redis is slow: listing this process's rooms only"),
            }
        }
        let mut rooms: Vec<(RoomName, usize)> = rooms.into_iter().collect();
        rooms.sort();
        Ok(rooms)
    }

    async fn departed(&self) -> Result<Vec<(RoomName, DisplayName)>, FanoutError> {
        // Just after Redis came back, every process's alive key may have
        // lapsed in the outage: give the living time to say so again.
        if self.shared.health.steady_for() < CLAIM_AFTER {
            return Ok(Vec::new());
        }
        // No timeout around the claim: cut short, a claimed process's members
        // would never be told of (each command has its own 2 s timeout).
        let mut connection = self.connection.clone();
        let claimed = presence::claim_departed(&mut connection, &self.keys)
            .await
            .map_err(|error| FanoutError::Unavailable(error.into()))?;
        let mut by_room: HashMap<RoomName, Vec<DisplayName>> = HashMap::new();
        for (room, name) in claimed {
            by_room.entry(room).or_default().push(name);
        }
        let mut departed = Vec::new();
        for (room, mut names) in by_room {
            // Still here under that name (another tab, or already reconnected): not gone.
            let here = self.members(&room).await?;
            names.sort_unstable();
            names.dedup();
            departed.extend(names.into_iter().filter(|name| !here.contains(name)).map(|name| (room.clone(), name)));
        }
        Ok(departed)
    }

    async fn ping(&self) -> Result<(), FanoutError> {
        let mut connection = self.connection.clone();
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
        assert!(b.shared.here().rooms.is_empty(), "the room is unsubscribed with its last member");
        let mut carol = b.subscribe(&room, &DisplayName::parse("carol").unwrap()).await.unwrap();
        a.publish(event(7)).await.unwrap();
        assert_eq!(next(&mut carol).await, 7, "and subscribed again with the next one");
    }

    fn name(name: &str) -> DisplayName {
        DisplayName::parse(name).unwrap()
    }

    /// What `check` says within 5 s, polled: presence is written behind the room.
    async fn eventually<T: PartialEq + std::fmt::Debug>(wanted: T, mut check: impl AsyncFnMut() -> T) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let now = check().await;
            if now == wanted || tokio::time::Instant::now() > deadline {
                assert_eq!(now, wanted);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn presence_lists_members_of_every_process_until_their_last_connection_leaves() {
        let Some((a, b)) = two_processes().await else { return };
        let room = RoomName::parse("lobby").unwrap();
        let _ann = a.subscribe(&room, &name("ann")).await.unwrap();
        let bob = b.subscribe(&room, &name("bob")).await.unwrap();
        let bob_again = b.subscribe(&room, &name("bob")).await.unwrap();
        assert_eq!(a.members(&room).await.unwrap(), [name("ann"), name("bob")], "listed once joined");
        assert_eq!(b.members(&room).await.unwrap(), [name("ann"), name("bob")]);
        assert_eq!(a.rooms().await.unwrap(), [(room.clone(), 3)], "connections of both processes");
        drop(bob);
        eventually(vec![(room.clone(), 2)], async || a.rooms().await.unwrap()).await;
        assert_eq!(a.members(&room).await.unwrap(), [name("ann"), name("bob")], "bob's other tab is still here");
        drop(bob_again);
        eventually(vec![name("ann")], async || a.members(&room).await.unwrap()).await;
    }

    #[tokio::test]
    async fn an_event_published_twice_by_a_retry_is_delivered_once() {
        let Some((a, _b)) = two_processes().await else { return };
        let room = RoomName::parse("lobby").unwrap();
        let mut ann = a.subscribe(&room, &name("ann")).await.unwrap();
        let mut redis = redis::Client::open(server()).unwrap().get_multiplexed_async_connection().await.unwrap();
        for (seq, n) in [(1, 1), (1, 1), (2, 2)] {
            let payload = crate::wire::encode("elsewhere", seq, event(n).event());
            let _: i64 = redis::cmd("PUBLISH")
                .arg(channel(&a.shared.prefix, &room))
                .arg(payload)
                .query_async(&mut redis)
                .await
                .unwrap();
        }
        assert_eq!(next(&mut ann).await, 1);
        assert_eq!(next(&mut ann).await, 2, "the repeat was dropped");
    }

    #[tokio::test]
    async fn a_dead_processs_members_are_claimed_once_unless_they_are_still_here() {
        let Some((a, b)) = two_processes().await else { return };
        let room = RoomName::parse("lobby").unwrap();
        let _ann = a.subscribe(&room, &name("ann")).await.unwrap();
        // A process that wrote its presence and died: its alive key is gone.
        let dead = Keys::new(&a.keys.prefix, "dead-process");
        let mut redis = redis::Client::open(server()).unwrap().get_multiplexed_async_connection().await.unwrap();
        let mut pipe = redis::pipe();
        pipe.cmd("SADD").arg(dead.procs()).arg("dead-process").ignore();
        pipe.cmd("HSET").arg(dead.rooms("dead-process")).arg("lobby").arg(3).ignore();
        pipe.cmd("SADD").arg(dead.members("dead-process", "lobby")).arg(&["bob", "cyd", "ann"]).ignore();
        pipe.query_async::<()>(&mut redis).await.unwrap();
        let (from_a, from_b) = tokio::join!(a.departed(), b.departed());
        let mut told = [from_a.unwrap(), from_b.unwrap()];
        told.sort_by_key(Vec::len);
        assert!(told[0].is_empty(), "one claimant only: {told:?}");
        assert_eq!(told[1], [(room.clone(), name("bob")), (room.clone(), name("cyd"))], "ann is still here, on A");
        assert!(a.departed().await.unwrap().is_empty(), "told once");
        let left: i64 =
            redis::cmd("EXISTS").arg(dead.members("dead-process", "lobby")).query_async(&mut redis).await.unwrap();
        assert_eq!(left, 0, "the claimed lists are deleted");
    }
}
