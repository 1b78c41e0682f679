//! `NatsBroker`: the `Broker` port on core NATS. One connection per
//! process, a subscription per relayed room ([`crate::relay`]), one
//! publishing task ([`crate::publisher`]) and one that watches the link
//! ([`Monitor`]).
//!
//! Order: a process publishes in the order it was asked, on one connection,
//! and NATS keeps a connection's order on a subject, so every process hears
//! each publisher's events in a room in order.
//!
//! Knows NATS subjects; nothing of members or sockets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_nats::{Client, Subscriber};
use async_trait::async_trait;
use parley_ports::domain::RoomName;
use parley_ports::{Broker, BrokerError, Control, Incoming, Published, Relaying};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::link::{Link, Probe, unavailable};
use crate::publisher::{Outgoing, Publisher};
use crate::relay::{Relay, Request};
use crate::{ANSWER_WITHIN, NatsSettings, connect, hex, origin};

/// Envelopes waiting to be published; past this, new events reach this
/// process's members only (counted and logged).
const OUTBOX: usize = 10_000;

/// This process's name and the deployment's subjects.
#[derive(Debug, Clone)]
pub(crate) struct Subjects {
    pub(crate) origin: String,
    prefix: String,
}

impl Subjects {
    pub(crate) fn room(&self, room: &RoomName) -> String {
        format!("{}.room.{}", self.prefix, hex(room.as_str()))
    }

    pub(crate) fn control(&self) -> String {
        format!("{}.control", self.prefix)
    }

    /// Nobody subscribes here: the server answers "no responders".
    fn probe(&self) -> String {
        format!("{}.probe.{}", self.prefix, self.origin)
    }
}

pub struct NatsBroker {
    client: Client,
    subjects: Subjects,
    settings: NatsSettings,
    link: Arc<Link>,
    probe: Probe,
    /// Wakes the monitor: the connection came back, or a round trip failed.
    doubt: Arc<Notify>,
    unrelayed: Arc<AtomicU64>,
    outbox: mpsc::Sender<Outgoing>,
    relay: mpsc::UnboundedSender<Request>,
    /// The tasks' ends, until [`Broker::start`] starts them.
    unstarted: Mutex<Option<Unstarted>>,
    /// Dropped with the broker: the monitor stops (the other tasks stop as
    /// their channels close).
    _stop_monitor: oneshot::Sender<()>,
}

struct Unstarted {
    pending: mpsc::Receiver<Outgoing>,
    requests: mpsc::UnboundedReceiver<Request>,
    control: Subscriber,
    stop: oneshot::Receiver<()>,
}

impl NatsBroker {
    /// Connects to NATS at `url` (`nats://host:4222`), subscribed to the
    /// control subject.
    ///
    /// # Errors
    /// [`BrokerError::Unavailable`] if NATS cannot be reached now.
    pub async fn connect(url: &str, settings: NatsSettings) -> Result<Self, BrokerError> {
        let link = Arc::new(Link::new());
        let doubt = Arc::new(Notify::new());
        let client = {
            let (link, doubt) = (Arc::clone(&link), Arc::clone(&doubt));
            connect(url, &settings, move |event| match event {
                async_nats::Event::Disconnected => link.lost(),
                async_nats::Event::Connected => doubt.notify_one(),
                async_nats::Event::SlowConsumer(_) => {
                    tracing::warn!("a NATS subscription fell behind: some events from other processes were dropped");
                }
                _ => {}
            })
            .await
            .map_err(|error| BrokerError::Unavailable(error.into()))?
        };
        let subjects = Subjects { origin: origin(), prefix: settings.name() };
        let control =
            client.subscribe(subjects.control()).await.map_err(|error| BrokerError::Unavailable(error.into()))?;
        let probe = Probe { client: client.clone(), subject: subjects.probe(), link: Arc::clone(&link) };
        let (outbox, pending) = mpsc::channel(OUTBOX);
        let (relay, requests) = mpsc::unbounded_channel();
        let (stop_monitor, stop) = oneshot::channel();
        Ok(Self {
            client,
            subjects,
            settings,
            link,
            probe,
            doubt,
            unrelayed: Arc::default(),
            outbox,
            relay,
            unstarted: Mutex::new(Some(Unstarted { pending, requests, control, stop })),
            _stop_monitor: stop_monitor,
        })
    }

    /// Puts raw bytes on `room`'s subject (tests: a retried publish).
    #[doc(hidden)]
    pub async fn send_raw(&self, room: &RoomName, bytes: Vec<u8>) -> Result<(), BrokerError> {
        self.client
            .publish(self.subjects.room(room), bytes.into())
            .await
            .map_err(|e| BrokerError::Unavailable(e.into()))?;
        self.client.flush().await.map_err(|e| BrokerError::Unavailable(e.into()))
    }

    fn unrelayed_one(&self) {
        let count = self.unrelayed.fetch_add(1, Ordering::Relaxed) + 1;
        if count.is_power_of_two() {
            tracing::warn!(count, "NATS is not keeping up: events reach this process's members only");
        }
    }
}

#[async_trait]
impl Broker for NatsBroker {
    fn start(&self, incoming: Weak<dyn Incoming>) {
        let Some(unstarted) = self.unstarted.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return;
        };
        self.link.tell(incoming.clone());
        let publisher = Publisher {
            client: self.client.clone(),
            subjects: self.subjects.clone(),
            link: Arc::clone(&self.link),
            probe: self.probe.clone(),
            unrelayed: Arc::clone(&self.unrelayed),
            recovery: self.settings.recovery,
            doubt: Arc::clone(&self.doubt),
        };
        let relay =
            Relay { client: self.client.clone(), subjects: self.subjects.clone(), probe: self.probe.clone(), incoming };
        let monitor = Monitor {
            link: Arc::clone(&self.link),
            probe: self.probe.clone(),
            doubt: Arc::clone(&self.doubt),
            heartbeat: self.settings.heartbeat,
        };
        tokio::spawn(publisher.run(unstarted.pending));
        tokio::spawn(relay.run(unstarted.control, unstarted.requests));
        tokio::spawn(monitor.run(unstarted.stop));
    }

    async fn publish(&self, event: &Arc<Published>) -> Result<(), BrokerError> {
        if self.outbox.try_send(Outgoing::Event(Arc::clone(event))).is_err() {
            self.unrelayed_one();
            return Err(unavailable("the NATS outbox is full"));
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
                Ok(Err(_)) => Err(unavailable("the NATS relay has stopped")),
                Err(_) => Err(unavailable("NATS is slow to subscribe; still trying")),
            }
        })
    }

    fn stop_relaying(&self, room: &RoomName) {
        let _ = self.relay.send(Request::Stop(room.clone()));
    }

    async fn control(&self, control: &Control) -> Result<(), BrokerError> {
        self.outbox.try_send(Outgoing::Control(control.clone())).map_err(|_| unavailable("the NATS outbox is full"))
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        if !self.link.is_up() {
            return Err(unavailable("the NATS link is down: events do not cross between processes"));
        }
        self.probe.round_trip(Duration::from_secs(1)).await
    }

    fn unrelayed(&self) -> u64 {
        self.unrelayed.load(Ordering::Relaxed)
    }
}

/// Probes the link every heartbeat, and at once when the connection comes
/// back or a round trip failed: the link is up while probes come back.
struct Monitor {
    link: Arc<Link>,
    probe: Probe,
    doubt: Arc<Notify>,
    heartbeat: Duration,
}

impl Monitor {
    async fn run(self, mut stop: oneshot::Receiver<()>) {
        let mut beat = tokio::time::interval(self.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let probed = tokio::select! {
                probed = self.probe.round_trip(ANSWER_WITHIN) => probed,
                _ = &mut stop => return,
            };
            // A stalled server: the client would take a few pings to notice.
            if let Err(error) = probed
                && self.link.is_up()
            {
                tracing::warn!(%error, "NATS stopped answering");
                self.link.lost();
            }
            tokio::select! {
                _ = beat.tick() => {}
                _ = self.doubt.notified() => {}
                _ = &mut stop => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use parley_ports::testkit::broker::BrokerBackend;

    use super::*;
    use crate::testing::{OwnNats, deployment, shared_nats};

    /// Instances on one server, with a deployment of their own.
    struct Backend {
        url: String,
        deployment: String,
        own: Option<Mutex<OwnNats>>,
        raw: NatsBroker,
    }

    impl Backend {
        async fn on(url: String, own: Option<OwnNats>) -> Self {
            let deployment = deployment("broker");
            let raw = NatsBroker::connect(&url, NatsSettings::quick(&deployment)).await.unwrap();
            Self { url, deployment, own: own.map(Mutex::new), raw }
        }

        fn own(&self) -> std::sync::MutexGuard<'_, OwnNats> {
            self.own.as_ref().expect("a server of the test's own").lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    #[async_trait]
    impl BrokerBackend for Backend {
        async fn instance(&self) -> Arc<dyn Broker> {
            let settings = NatsSettings::quick(&self.deployment);
            Arc::new(NatsBroker::connect(&self.url, settings).await.unwrap_or_else(|e| panic!("{e}")))
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
        shared: async { Some(Backend::on(shared_nats()?, None).await) },
        own: async {
            let own = OwnNats::start()?;
            Some(Backend::on(own.url(), Some(own)).await)
        },
    );

    /// The rooms of the events handed over, in order.
    #[derive(Default)]
    struct Rooms(Mutex<Vec<String>>);

    impl Incoming for Rooms {
        fn event(&self, event: Arc<Published>) {
            self.0.lock().unwrap().push(event.event().room.as_str().to_owned());
        }
        fn control(&self, _: Control) {}
        fn link(&self, _: parley_ports::Notice) {}
    }

    fn event(room: &str) -> Arc<Published> {
        use parley_ports::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText};
        Published::new(ChatEvent {
            id: EventId::from_u128(1),
            room: RoomName::parse(room).unwrap(),
            user: DisplayName::parse("ann").unwrap(),
            guest: false,
            kind: EventKind::Message,
            text: MessageText::parse("hi").unwrap(),
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
        })
    }

    async fn rooms() -> Option<parley_ports::Rooms> {
        let url = shared_nats()?;
        let settings = NatsSettings::quick(&deployment("rooms"));
        let broker = Arc::new(NatsBroker::connect(&url, settings.clone()).await.unwrap());
        let presence = Arc::new(crate::NatsPresence::connect(&url, settings).await.unwrap());
        Some(parley_ports::Rooms::shared(256, broker, Some(presence)))
    }

    parley_ports::rooms_contract!(optional rooms());

    #[tokio::test]
    async fn room_names_that_mean_something_to_nats_stay_apart() {
        let Some(url) = shared_nats() else { return };
        let backend = Backend::on(url, None).await;
        let (a, b) = (backend.instance().await, backend.instance().await);
        let heard = Arc::new(Rooms::default());
        let incoming: Arc<dyn Incoming> = Arc::clone(&heard) as Arc<dyn Incoming>;
        b.start(Arc::downgrade(&incoming));
        a.start(Weak::<Rooms>::new());
        // Wildcards, and dots that would separate tokens.
        let relayed = ["*", ">", "a.b", "a b"];
        for name in relayed {
            b.relay(&RoomName::parse(name).unwrap()).await.unwrap();
        }
        for name in ["a.*", "a", "b", "*", ">", "a.b", "a b", "a.>"] {
            a.publish(&event(name)).await.unwrap();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while heard.0.lock().unwrap().len() < relayed.len() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(*heard.0.lock().unwrap(), relayed, "each exactly, once");
    }
}
