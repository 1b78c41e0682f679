//! The relay: a subscription per room with members here, and one to the
//! control subject, each read by a task of its own that hands what other
//! processes publish to the hub — each envelope once.
//!
//! A task per subscription, not one merged stream: the client gives each
//! subscription its own queue, so only within one subscription do a
//! publisher's envelopes keep their order, and the once-only check
//! ([`Heard`]) is kept per subscription. The client subscribes everything
//! again by itself after a lost connection, so the relay does nothing then.
//!
//! Knows NATS subscriptions and envelopes; nothing of members or sockets.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Weak;
use std::time::Duration;

use async_nats::{Client, Subscriber};
use futures_util::StreamExt;
use parley_ports::domain::RoomName;
use parley_ports::envelope::{self, Body, Heard};
use parley_ports::{Incoming, Published};
use tokio::sync::{mpsc, oneshot};

use crate::ANSWER_WITHIN;
use crate::broker::Subjects;
use crate::link::Probe;

/// What the relay is asked to do, by room, in the order asked.
pub(crate) enum Request {
    /// Relay the room; say when the server has the subscription.
    Start(RoomName, oneshot::Sender<()>),
    Stop(RoomName),
}

pub(crate) struct Relay {
    pub(crate) client: Client,
    pub(crate) subjects: Subjects,
    pub(crate) probe: Probe,
    pub(crate) incoming: Weak<dyn Incoming>,
}

impl Relay {
    /// Takes requests until the broker is dropped; every room's task stops then too.
    pub(crate) async fn run(self, control: Subscriber, mut requests: mpsc::UnboundedReceiver<Request>) {
        let (_control_stop, stopped) = oneshot::channel();
        tokio::spawn(self.reader().read(control, stopped));
        // A room's task stops when its sender here is dropped or used.
        let mut rooms: HashMap<RoomName, oneshot::Sender<()>> = HashMap::new();
        while let Some(request) = requests.recv().await {
            match request {
                Request::Start(room, done) => {
                    if let Entry::Vacant(vacant) = rooms.entry(room) {
                        let subscriber = match self.client.subscribe(self.subjects.room(vacant.key())).await {
                            Ok(subscriber) => subscriber,
                            Err(error) => {
                                // Only a closed client refuses: the broker is going.
                                tracing::warn!(%error, "could not subscribe to a room's NATS subject");
                                continue;
                            }
                        };
                        let (stop, stopped) = oneshot::channel();
                        tokio::spawn(self.reader().read(subscriber, stopped));
                        vacant.insert(stop);
                    }
                    tokio::spawn(confirm(self.probe.clone(), done));
                }
                Request::Stop(room) => {
                    if let Some(stop) = rooms.remove(&room) {
                        let _ = stop.send(());
                    }
                }
            }
        }
    }

    fn reader(&self) -> Reader {
        Reader { origin: self.subjects.origin.clone(), incoming: self.incoming.clone() }
    }
}

/// Says `done` once the server has handled everything sent before (the
/// subscription among it), asking again while NATS does not answer, until
/// nobody waits any more.
async fn confirm(probe: Probe, done: oneshot::Sender<()>) {
    loop {
        if probe.round_trip(ANSWER_WITHIN).await.is_ok() {
            let _ = done.send(());
            return;
        }
        if done.is_closed() {
            return;
        }
        // A refusal comes at once (a closed client): do not spin on it.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads one subscription.
struct Reader {
    origin: String,
    incoming: Weak<dyn Incoming>,
}

impl Reader {
    /// Hands each envelope over once, until told to stop (then unsubscribes
    /// at once: a stop is honoured before anything that arrived with it),
    /// or until the hub is gone.
    async fn read(self, mut subscriber: Subscriber, mut stop: oneshot::Receiver<()>) {
        let mut heard = Heard::default();
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => {
                    let _ = subscriber.unsubscribe().await;
                    return;
                }
                message = subscriber.next() => match message {
                    None => return,
                    Some(message) => {
                        if !self.hand_over(&mut heard, &message.payload) {
                            return;
                        }
                    }
                },
            }
        }
    }

    /// Hands an envelope from another process to the hub, once. Returns
    /// false once the hub is gone.
    fn hand_over(&self, heard: &mut Heard, payload: &[u8]) -> bool {
        let Some(envelope) = envelope::open(payload) else { return true };
        if envelope.origin == self.origin {
            return true;
        }
        let Some(incoming) = self.incoming.upgrade() else { return false };
        if heard.first_time(&envelope.origin, envelope.seq) {
            match envelope.body {
                Body::Event(event) => incoming.event(Published::new(event)),
                Body::Control(control) => incoming.control(control),
            }
        }
        true
    }
}
