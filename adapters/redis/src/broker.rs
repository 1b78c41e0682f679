//! `RedisBroker`: the `Broker` port on Redis pub/sub. One subscription
//! connection per process ([`crate::relay`]) and one publishing task
//! ([`crate::publisher`]), never one per room or connection.
//!
//! Order: a process publishes in the order it was asked, on one connection,
//! and Redis keeps a channel's order, so every process hears each
//! publisher's events in order.
//!
//! Knows Redis channels; nothing of members or sockets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parley_ports::domain::RoomName;
use parley_ports::{Broker, BrokerError, Control, Incoming, Published, Relaying};
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot, watch};

use crate::links::{Link, Links};
use crate::publisher::{Outgoing, Publisher};
use crate::relay::{Relay, Request};
use crate::{RedisSettings, connect, origin};

/// Envelopes waiting to be published; past this, new events reach this
/// process's members only (counted and logged).
const OUTBOX: usize = 10_000;

/// This process's name and the deployment's channel names.
#[derive(Debug, Clone)]
pub(crate) struct Channels {
    pub(crate) origin: String,
    prefix: String,
}

impl Channels {
    pub(crate) fn room(&self, room: &RoomName) -> String {
        format!("{}:room:{}", self.prefix, room.as_str())
    }

    pub(crate) fn control(&self) -> String {
        format!("{}:control", self.prefix)
    }
}

pub struct RedisBroker {
    client: redis::Client,
    connection: ConnectionManager,
    channels: Channels,
    settings: RedisSettings,
    links: Arc<Links>,
    unrelayed: Arc<AtomicU64>,
    outbox: mpsc::Sender<Outgoing>,
    relay: mpsc::UnboundedSender<Request>,
    /// The tasks' ends, until [`Broker::start`] starts them.
    unstarted: Mutex<Option<(mpsc::Receiver<Outgoing>, mpsc::UnboundedReceiver<Request>)>>,
    /// Dropped with the broker: the tasks stop.
    stop: watch::Sender<()>,
}

impl RedisBroker {
    /// Connects to Redis at `url` (`redis://` or `rediss://`).
    ///
    /// # Errors
    /// [`BrokerError::Unavailable`] if Redis cannot be reached now.
    pub async fn connect(url: &str, settings: RedisSettings) -> Result<Self, BrokerError> {
        let (client, connection) = connect(url).await.map_err(|error| BrokerError::Unavailable(error.into()))?;
        let channels = Channels { origin: origin(), prefix: settings.deployment.clone() };
        let (outbox, pending) = mpsc::channel(OUTBOX);
        let (relay, requests) = mpsc::unbounded_channel();
        Ok(Self {
            client,
            connection,
            channels,
            settings,
            links: Arc::new(Links::new()),
            unrelayed: Arc::default(),
            outbox,
            relay,
            unstarted: Mutex::new(Some((pending, requests))),
            stop: watch::channel(()).0,
        })
    }

    /// Puts raw bytes on `room`'s channel (tests: a retried publish).
    #[doc(hidden)]
    pub async fn send_raw(&self, room: &RoomName, bytes: Vec<u8>) -> redis::RedisResult<()> {
        let mut connection = self.connection.clone();
        redis::cmd("PUBLISH").arg(self.channels.room(room)).arg(bytes).query_async(&mut connection).await
    }

    fn unrelayed_one(&self) {
        let count = self.unrelayed.fetch_add(1, Ordering::Relaxed) + 1;
        if count.is_power_of_two() {
            tracing::warn!(count, "Redis is not keeping up: events reach this process's members only");
        }
    }
}

fn unavailable(why: &str) -> BrokerError {
    BrokerError::Unavailable(why.to_owned().into())
}

#[async_trait]
impl Broker for RedisBroker {
    fn start(&self, incoming: Weak<dyn Incoming>) {
        let Some((pending, requests)) = self.unstarted.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return;
        };
        self.links.tell(incoming.clone());
        let publisher = Publisher {
            connection: self.connection.clone(),
            channels: self.channels.clone(),
            links: Arc::clone(&self.links),
            unrelayed: Arc::clone(&self.unrelayed),
            recovery: self.settings.recovery,
        };
        let relay = Relay {
            client: self.client.clone(),
            channels: self.channels.clone(),
            links: Arc::clone(&self.links),
            incoming,
            heartbeat: self.settings.heartbeat,
        };
        tokio::spawn(publisher.run(pending));
        tokio::spawn(relay.run(requests, self.stop.subscribe()));
    }

    async fn publish(&self, event: &Arc<Published>) -> Result<(), BrokerError> {
        if self.outbox.try_send(Outgoing::Event(Arc::clone(event))).is_err() {
            self.unrelayed_one();
            return Err(unavailable("the Redis outbox is full"));
        }
        Ok(())
    }

    fn relay(&self, room: &RoomName) -> Relaying {
        let (done, subscribed) = oneshot::channel();
        let _ = self.relay.send(Request::Start(room.clone(), done));
        let patience = self.settings.join_patience;
        Box::pin(async move {
            match tokio::time::timeout(patience, subscribed).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(unavailable("the Redis relay has stopped")),
                Err(_) => Err(unavailable("Redis is slow to subscribe; still trying")),
            }
        })
    }

    fn stop_relaying(&self, room: &RoomName) {
        let _ = self.relay.send(Request::Stop(room.clone()));
    }

    async fn control(&self, control: &Control) -> Result<(), BrokerError> {
        self.outbox.try_send(Outgoing::Control(control.clone())).map_err(|_| unavailable("the Redis outbox is full"))
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        match self.links.down() {
            Some(Link::Relaying) => return Err(unavailable("events from other processes do not reach this one")),
            Some(Link::Publishing) => return Err(unavailable("this process's events do not reach Redis")),
            None => {}
        }
        let mut connection = self.connection.clone();
        let answer =
            tokio::time::timeout(Duration::from_secs(1), redis::cmd("PING").query_async::<String>(&mut connection))
                .await;
        match answer {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(BrokerError::Unavailable(error.into())),
            Err(_) => Err(unavailable("Redis did not answer PING within 1 s")),
        }
    }

    fn unrelayed(&self) -> u64 {
        self.unrelayed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use parley_ports::Rooms;
    use parley_ports::testkit::broker::BrokerBackend;

    use super::*;
    use crate::testing::{OwnRedis, deployment, shared_redis};

    /// Instances on one Redis, with a deployment of their own.
    struct Backend {
        url: String,
        deployment: String,
        own: Option<Mutex<OwnRedis>>,
        raw: RedisBroker,
    }

    impl Backend {
        async fn on(url: String, own: Option<OwnRedis>) -> Self {
            let deployment = deployment("broker");
            let raw = RedisBroker::connect(&url, RedisSettings::quick(&deployment)).await.unwrap();
            Self { url, deployment, own: own.map(Mutex::new), raw }
        }

        fn own(&self) -> std::sync::MutexGuard<'_, OwnRedis> {
            self.own.as_ref().expect("a Redis of the test's own").lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    #[async_trait]
    impl BrokerBackend for Backend {
        async fn instance(&self) -> Arc<dyn Broker> {
            let settings = RedisSettings::quick(&self.deployment);
            Arc::new(RedisBroker::connect(&self.url, settings).await.unwrap_or_else(|e| panic!("{e}")))
        }
        async fn send_raw(&self, room: &RoomName, bytes: Vec<u8>) {
            self.raw.send_raw(room, bytes).await.unwrap();
        }
        async fn stop(&self) {
            self.own().down();
        }
        async fn restart(&self) {
            self.own().up();
        }
    }

    parley_ports::broker_contract!(
        shared: async { Some(Backend::on(shared_redis()?, None).await) },
        own: async {
            let own = OwnRedis::start()?;
            Some(Backend::on(own.url(), Some(own)).await)
        },
    );

    async fn rooms() -> Option<Rooms> {
        let url = shared_redis()?;
        let settings = RedisSettings::quick(&deployment("rooms"));
        let broker = Arc::new(RedisBroker::connect(&url, settings.clone()).await.unwrap());
        let presence = Arc::new(crate::RedisPresence::connect(&url, settings).await.unwrap());
        Some(Rooms::shared(256, broker, Some(presence)))
    }

    parley_ports::rooms_contract!(optional rooms());
}
