//! The `Broker` contract: every rule runs two or three instances — processes
//! — on one backend, each handing what arrives to a recorder, and checks the
//! promise the port's doc makes: once, in order per publisher, nothing back
//! to the sender, relaying only while asked, control messages to the others,
//! and a lost link reported, recovered, and nothing silently lost.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use time::macros::datetime;
use tokio::sync::Notify;

use crate::broker::{Broker, Control, Incoming};
use crate::delivery::{Notice, Published};
use crate::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText, RoomName};
use crate::envelope::{Contents, seal};

/// How long a rule waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a rule waits to be sure something does not happen.
const QUIET: Duration = Duration::from_millis(300);
/// How long the backend stays down in the outage rule: long enough for
/// reconnection attempts to back off to a few seconds apart.
const OUTAGE: Duration = Duration::from_secs(3);

/// The backend a broker runs on, as the suite needs it.
#[async_trait]
pub trait BrokerBackend: Send + Sync {
    /// A new instance — as another process would connect — sharing this
    /// backend's rooms with every other instance of it.
    async fn instance(&self) -> Arc<dyn Broker>;
    /// Puts raw bytes on `room`'s channel, as a publisher would (for a
    /// retried publish, or a stranger's message).
    async fn send_raw(&self, room: &RoomName, bytes: Vec<u8>);
    /// Stops the backend's server: every instance loses its link.
    async fn stop(&self);
    /// Starts it again, empty (as a server that keeps nothing restarts).
    async fn restart(&self);
}

/// Runs every `Broker` rule: `shared:` gives a backend on the server tests
/// share (`Option`: `None` skips, printing why), `own:` one on a server of
/// the backend's own that rules may stop and restart.
#[macro_export]
macro_rules! broker_contract {
    (shared: $shared:expr, own: $own:expr $(,)?) => {
        #[allow(unused_imports)]
        mod broker {
            use super::*;
            $crate::broker_contract!(@rules $shared;
                an_event_reaches_the_other_process_once_in_order,
                each_publishers_order_holds_in_every_process,
                events_reach_only_processes_relaying_their_room,
                a_retried_publish_is_delivered_once,
                relaying_stops_after_the_last_local_member_leaves,
                a_control_message_reaches_the_other_processes,
                a_working_broker_answers_ping,
            );
            $crate::broker_contract!(@rules $own;
                a_lost_link_is_reported_and_recovers_and_nothing_is_lost,
            );
        }
    };
    (@rules $make:expr; $($rule:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $rule() {
                let Some(backend) = $make.await else { return };
                $crate::testkit::broker::$rule(&backend).await;
            }
        )*
    };
}

/// What an instance was handed, in order.
#[derive(Default)]
pub struct Recorder {
    seen: Mutex<Seen>,
    changed: Notify,
}

#[derive(Default)]
struct Seen {
    events: Vec<ChatEvent>,
    controls: Vec<Control>,
    links: Vec<Notice>,
}

impl Incoming for Recorder {
    fn event(&self, event: Arc<Published>) {
        self.seen().events.push(event.event().clone());
        self.changed.notify_waiters();
    }
    fn control(&self, control: Control) {
        self.seen().controls.push(control);
        self.changed.notify_waiters();
    }
    fn link(&self, notice: Notice) {
        self.seen().links.push(notice);
        self.changed.notify_waiters();
    }
}

impl Recorder {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `done` holds of what was seen, or panics after [`PATIENCE`].
    async fn until(&self, what: &str, done: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let changed = self.changed.notified();
            if done(&self.seen()) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() && !done(&self.seen()) {
                panic!("{what}: not within {PATIENCE:?}");
            }
        }
    }

    /// The ids of the events seen so far.
    fn ids(&self) -> Vec<u128> {
        self.seen().events.iter().map(|e| e.id.as_u128()).collect()
    }

    async fn ids_after_quiet(&self) -> Vec<u128> {
        tokio::time::sleep(QUIET).await;
        self.ids()
    }
}

/// An instance with its recorder (which it holds weakly: keep both).
pub struct Process {
    pub broker: Arc<dyn Broker>,
    pub heard: Arc<Recorder>,
}

pub async fn process(backend: &dyn BrokerBackend) -> Process {
    let broker = backend.instance().await;
    let heard = Arc::new(Recorder::default());
    let incoming: Arc<dyn Incoming> = Arc::clone(&heard) as Arc<dyn Incoming>;
    broker.start(Arc::downgrade(&incoming));
    Process { broker, heard }
}

impl Process {
    async fn relay(&self, room_name: &str) {
        self.broker.relay(&room(room_name)).await.unwrap_or_else(|e| panic!("relay {room_name}: {e}"));
    }

    async fn publish(&self, room_name: &str, n: u128) {
        self.broker.publish(&event(room_name, n)).await.unwrap_or_else(|e| panic!("publish: {e}"));
    }
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

fn chat_event(room_name: &str, n: u128) -> ChatEvent {
    ChatEvent {
        id: EventId::from_u128(n),
        room: room(room_name),
        user: DisplayName::parse("ann").unwrap(),
        guest: false,
        kind: EventKind::Message,
        text: MessageText::parse(format!("m{n}")).unwrap(),
        timestamp: datetime!(2026-11-26 12:00 UTC),
    }
}

fn event(room_name: &str, n: u128) -> Arc<Published> {
    Published::new(chat_event(room_name, n))
}

/// Events reach a process relaying the room, each once, in order, and are
/// not handed back to the process that published them.
pub async fn an_event_reaches_the_other_process_once_in_order(backend: &dyn BrokerBackend) {
    let (a, b) = (process(backend).await, process(backend).await);
    a.relay("lobby").await;
    b.relay("lobby").await;
    for n in 1..=50 {
        a.publish("lobby", n).await;
    }
    b.heard.until("50 events at B", |seen| seen.events.len() >= 50).await;
    assert_eq!(b.heard.ids_after_quiet().await, (1..=50).collect::<Vec<_>>(), "once each, in order");
    assert!(a.heard.ids().is_empty(), "nothing comes back to the publisher");
}

/// Two processes publishing at once: a third sees each one's events in the
/// order that one published them.
pub async fn each_publishers_order_holds_in_every_process(backend: &dyn BrokerBackend) {
    let (a, b, c) = (process(backend).await, process(backend).await, process(backend).await);
    for p in [&a, &b, &c] {
        p.relay("lobby").await;
    }
    let publish = |p: &Process, base: u128| {
        let broker = Arc::clone(&p.broker);
        async move {
            for n in 0..100 {
                broker.publish(&event("lobby", base + n)).await.unwrap_or_else(|e| panic!("publish: {e}"));
            }
        }
    };
    tokio::join!(publish(&a, 1_000), publish(&b, 2_000));
    c.heard.until("200 events at C", |seen| seen.events.len() >= 200).await;
    let ids = c.heard.ids_after_quiet().await;
    assert_eq!(ids.len(), 200, "each once");
    for base in [1_000, 2_000] {
        let from: Vec<u128> = ids.iter().copied().filter(|id| id / 1_000 == base / 1_000).collect();
        assert_eq!(from, (base..base + 100).collect::<Vec<_>>(), "publisher {base} kept its order");
    }
    b.heard.until("A's 100 at B", |seen| seen.events.len() >= 100).await;
    assert!(b.heard.ids().iter().all(|id| *id < 2_000), "B hears only A");
}

/// A process hears only the rooms it relays (room names are exact).
pub async fn events_reach_only_processes_relaying_their_room(backend: &dyn BrokerBackend) {
    let (a, b) = (process(backend).await, process(backend).await);
    b.relay("general").await;
    a.publish("General", 1).await;
    a.publish("elsewhere", 2).await;
    a.publish("general", 3).await;
    b.heard.until("the general event", |seen| !seen.events.is_empty()).await;
    assert_eq!(b.heard.ids_after_quiet().await, [3]);
}

/// The same envelope twice — a publisher that lost the reply and retried —
/// is handed over once; a stranger's bytes are ignored.
pub async fn a_retried_publish_is_delivered_once(backend: &dyn BrokerBackend) {
    let b = process(backend).await;
    b.relay("lobby").await;
    let sealed = |seq: u64, n: u128| seal("a-process-that-retries", seq, Contents::Event(&chat_event("lobby", n)));
    backend.send_raw(&room("lobby"), sealed(1, 1)).await;
    backend.send_raw(&room("lobby"), sealed(1, 1)).await;
    backend.send_raw(&room("lobby"), b"not an envelope".to_vec()).await;
    backend.send_raw(&room("lobby"), sealed(2, 2)).await;
    b.heard.until("two events", |seen| seen.events.len() >= 2).await;
    assert_eq!(b.heard.ids_after_quiet().await, [1, 2], "the repeat was dropped");
}

/// Once a process stops relaying a room it hears none of it; relaying it
/// again brings the room's events again.
pub async fn relaying_stops_after_the_last_local_member_leaves(backend: &dyn BrokerBackend) {
    let (a, b) = (process(backend).await, process(backend).await);
    b.relay("lobby").await;
    a.publish("lobby", 1).await;
    b.heard.until("the first event", |seen| !seen.events.is_empty()).await;
    b.broker.stop_relaying(&room("lobby"));
    // A request to stop is ordered before the next relay: wait for one to be live.
    b.relay("marker").await;
    a.publish("lobby", 2).await;
    assert_eq!(b.heard.ids_after_quiet().await, [1], "not relayed any more");
    b.relay("lobby").await;
    a.publish("lobby", 3).await;
    b.heard.until("the third event", |seen| seen.events.len() >= 2).await;
    assert_eq!(b.heard.ids(), [1, 3]);
}

/// A control message reaches every other process, and not its sender.
pub async fn a_control_message_reaches_the_other_processes(backend: &dyn BrokerBackend) {
    let (a, b, c) = (process(backend).await, process(backend).await, process(backend).await);
    // Relaying some room proves each instance's link is live.
    for p in [&a, &b, &c] {
        p.relay("lobby").await;
    }
    let control = Control::DeleteEvent { room: room("lobby"), id: EventId::from_u128(7) };
    a.broker.control(&control).await.unwrap_or_else(|e| panic!("control: {e}"));
    for p in [&b, &c] {
        p.heard.until("the control message", |seen| !seen.controls.is_empty()).await;
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(b.heard.seen().controls, std::slice::from_ref(&control), "once");
    assert_eq!(c.heard.seen().controls, [control]);
    assert!(a.heard.seen().controls.is_empty(), "not back to the sender");
}

/// A broker whose backend works answers `ping`.
pub async fn a_working_broker_answers_ping(backend: &dyn BrokerBackend) {
    let a = process(backend).await;
    a.relay("lobby").await;
    a.broker.ping().await.unwrap_or_else(|e| panic!("ping: {e}"));
}

/// The backend stops for a while (long enough for reconnection attempts to
/// back off) and starts again: every process is told the link went and came
/// back; `ping` fails meanwhile; events published meanwhile, or at once
/// after, arrive late, once and in order, or are counted as unrelayed; and
/// once every process answers `ping` again, every event published reaches
/// the others.
pub async fn a_lost_link_is_reported_and_recovers_and_nothing_is_lost(backend: &dyn BrokerBackend) {
    let (a, b, c) = (process(backend).await, process(backend).await, process(backend).await);
    for p in [&a, &b, &c] {
        p.relay("lobby").await;
    }
    a.publish("lobby", 1).await;
    b.heard.until("the event before the outage", |seen| !seen.events.is_empty()).await;

    backend.stop().await;
    for p in [&a, &b, &c] {
        p.heard.until("told the link is down", |seen| seen.links.contains(&Notice::Degraded)).await;
    }
    assert!(a.broker.ping().await.is_err(), "ping fails while the link is down");
    for n in 2..=11 {
        // May fail: then the event must be counted as unrelayed.
        let _ = c.broker.publish(&event("lobby", n)).await;
    }
    tokio::time::sleep(OUTAGE).await;

    backend.restart().await;
    // At once, before anyone has subscribed again.
    let _ = a.broker.publish(&event("lobby", 12)).await;
    // As a load balancer would: readiness alone says when to go on.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while a.broker.ping().await.is_err() || b.broker.ping().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "ping never answered again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in 13..=22 {
        a.publish("lobby", n).await;
    }
    for p in [&a, &b, &c] {
        p.heard.until("told the link is back", |seen| seen.links.last() == Some(&Notice::Restored)).await;
    }
    b.heard.until("every event after the outage", |seen| seen.events.iter().any(|e| e.id.as_u128() == 22)).await;
    let ids = b.heard.ids_after_quiet().await;
    let from_c: Vec<u128> = ids.iter().copied().filter(|id| (2..=11).contains(id)).collect();
    let from_a: Vec<u128> = ids.iter().copied().filter(|id| !(2..=11).contains(id)).collect();
    for from in [&from_a, &from_c] {
        assert!(from.windows(2).all(|w| w[0] < w[1]), "once each, in order per publisher: {ids:?}");
    }
    assert!((13..=22).all(|n| ids.contains(&n)), "nothing published once ready again is lost: {ids:?}");
    let missing_from_a = u64::from(!ids.contains(&12));
    assert!(missing_from_a <= a.broker.unrelayed(), "the event published at once is delivered or counted: {ids:?}");
    let missing_from_c = 10 - from_c.len() as u64;
    assert!(
        missing_from_c <= c.broker.unrelayed(),
        "events published during the outage are delivered or counted: {} delivered, {} counted",
        from_c.len(),
        c.broker.unrelayed()
    );
}
