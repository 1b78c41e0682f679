//! `MemoryBroker`: processes simulated inside one: every instance of a
//! [`MemoryNetwork`] shares its rooms with the others, as Redis or NATS
//! would between processes. The reference broker: it keeps the port's
//! promise with nothing in the way, and lets tests and benchmarks run
//! several hubs in one process. A process alone needs no broker at all.
//!
//! Knows instances and the rooms each relays; nothing of sockets or wire
//! formats (it carries the shared event itself, never bytes, except what a
//! test puts on a room's channel raw).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use parley_ports::domain::RoomName;
use parley_ports::envelope::{self, Body, Heard};
use parley_ports::{Broker, BrokerError, Control, Incoming, Notice, Published, Relaying};

use crate::lock;

/// What every instance of one network shares: the instances, and whether
/// the network is up.
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    shared: Arc<Network>,
}

#[derive(Default)]
struct Network {
    instances: Mutex<Vec<Weak<Instance>>>,
    down: AtomicBool,
    next: AtomicU64,
}

/// One process's link to the network.
pub struct MemoryBroker {
    instance: Arc<Instance>,
    network: Arc<Network>,
}

struct Instance {
    id: u64,
    incoming: Mutex<Option<Weak<dyn Incoming>>>,
    rooms: Mutex<HashSet<RoomName>>,
    /// Raw envelopes heard, for once-only delivery of a retried one.
    heard: Mutex<Heard>,
    unrelayed: AtomicU64,
}

impl Instance {
    fn incoming(&self) -> Option<Arc<dyn Incoming>> {
        lock(&self.incoming).as_ref().and_then(Weak::upgrade)
    }

    fn relays(&self, room: &RoomName) -> bool {
        lock(&self.rooms).contains(room)
    }
}

fn down() -> BrokerError {
    BrokerError::Unavailable("the in-memory network is down".into())
}

impl MemoryNetwork {
    /// A new process's broker on this network.
    pub fn instance(&self) -> MemoryBroker {
        let instance = Arc::new(Instance {
            id: self.shared.next.fetch_add(1, Ordering::Relaxed),
            incoming: Mutex::new(None),
            rooms: Mutex::default(),
            heard: Mutex::default(),
            unrelayed: AtomicU64::new(0),
        });
        lock(&self.shared.instances).push(Arc::downgrade(&instance));
        MemoryBroker { instance, network: Arc::clone(&self.shared) }
    }

    /// Takes the network down, or brings it back: every instance is told.
    pub fn set_up(&self, up: bool) {
        if self.shared.down.swap(!up, Ordering::SeqCst) == up {
            let notice = if up { Notice::Restored } else { Notice::Degraded };
            for instance in self.shared.live() {
                if let Some(incoming) = instance.incoming() {
                    incoming.link(notice);
                }
            }
        }
    }

    /// Hands `bytes` to every instance relaying `room`, as a publisher
    /// would put them on the room's channel.
    pub fn send_raw(&self, room: &RoomName, bytes: &[u8]) {
        let Some(envelope) = envelope::open(bytes) else { return };
        let Body::Event(event) = envelope.body else { return };
        for instance in self.shared.live().into_iter().filter(|i| i.relays(room)) {
            if lock(&instance.heard).first_time(&envelope.origin, envelope.seq)
                && let Some(incoming) = instance.incoming()
            {
                incoming.event(Published::new(event.clone()));
            }
        }
    }
}

impl Network {
    fn live(&self) -> Vec<Arc<Instance>> {
        let mut instances = lock(&self.instances);
        instances.retain(|i| i.strong_count() > 0);
        instances.iter().filter_map(Weak::upgrade).collect()
    }

    fn others(&self, me: u64) -> impl Iterator<Item = Arc<Instance>> {
        self.live().into_iter().filter(move |i| i.id != me)
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn start(&self, incoming: Weak<dyn Incoming>) {
        *lock(&self.instance.incoming) = Some(incoming);
    }

    async fn publish(&self, event: &Arc<Published>) -> Result<(), BrokerError> {
        if self.network.is_down() {
            self.instance.unrelayed.fetch_add(1, Ordering::Relaxed);
            return Err(down());
        }
        let room = &event.event().room;
        for other in self.network.others(self.instance.id).filter(|i| i.relays(room)) {
            if let Some(incoming) = other.incoming() {
                incoming.event(Arc::clone(event));
            }
        }
        Ok(())
    }

    fn relay(&self, room: &RoomName) -> Relaying {
        lock(&self.instance.rooms).insert(room.clone());
        let result = if self.network.is_down() { Err(down()) } else { Ok(()) };
        Box::pin(async move { result })
    }

    fn stop_relaying(&self, room: &RoomName) {
        lock(&self.instance.rooms).remove(room);
    }

    async fn control(&self, control: &Control) -> Result<(), BrokerError> {
        if self.network.is_down() {
            return Err(down());
        }
        for other in self.network.others(self.instance.id) {
            if let Some(incoming) = other.incoming() {
                incoming.control(control.clone());
            }
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        if self.network.is_down() { Err(down()) } else { Ok(()) }
    }

    fn unrelayed(&self) -> u64 {
        self.instance.unrelayed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_ports::Rooms;
    use parley_ports::testkit::broker::BrokerBackend;

    #[async_trait]
    impl BrokerBackend for MemoryNetwork {
        async fn instance(&self) -> Arc<dyn Broker> {
            Arc::new(MemoryNetwork::instance(self))
        }
        async fn send_raw(&self, room: &RoomName, bytes: Vec<u8>) {
            MemoryNetwork::send_raw(self, room, &bytes);
        }
        async fn stop(&self) {
            self.set_up(false);
        }
        async fn restart(&self) {
            self.set_up(true);
        }
    }

    parley_ports::broker_contract!(
        shared: async { Some(MemoryNetwork::default()) },
        own: async { Some(MemoryNetwork::default()) },
    );

    mod alone {
        use super::*;
        parley_ports::rooms_contract!(async { Rooms::local(256) });
    }

    mod shared {
        use super::*;
        parley_ports::rooms_contract!(async {
            Rooms::shared(256, Arc::new(MemoryNetwork::default().instance()), None)
        });
    }
}
