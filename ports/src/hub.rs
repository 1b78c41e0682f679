//! `Hub`: the rooms of this process — who is in each, their bounded queues,
//! and each room's recent events — and the hot path of every message.
//!
//! Delivering offers one shared event to each local member's queue
//! ([`crate::delivery::queue`]) and never waits on a member: sockets are
//! written by each connection's own task, outside any lock here. The room's
//! lock is held across the offers so that concurrent publishers cannot
//! interleave differently for different members (one order per room, within
//! this process).
//!
//! The hub tells the [`Broker`] (when there is one) to start relaying a room
//! when it gets its first local member and to stop when it loses its last,
//! under the registry's lock, so the broker sees those requests in the order
//! they happened. What the broker brings from other processes comes back in
//! through [`Incoming`].
//!
//! Knows rooms and queues; knows nothing of sockets, wire formats, or what
//! carries events between processes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use crate::broker::{Broker, Control, Incoming, Relaying};
use crate::delivery::{Ended, Inbox, Notice, Offer, Published, Subscription, queue};
use crate::domain::{DisplayName, RoomName};

/// Events a member may have queued before it counts as too slow. Queued
/// events are shared pointers (8 bytes each; the event itself exists once),
/// so this bounds a stuck member to 32 KiB of queue. 256 cut members off in
/// a 5 000-member join storm on the original protocol (every join is a
/// notice to everyone: 12.5 M deliveries in a few seconds), where a member's
/// task can wait behind hundreds of joins before it runs.
pub const DEFAULT_QUEUE: usize = 4096;
/// Events each room keeps for newcomers and resuming clients.
pub const RECENT_EVENTS: usize = 256;

pub struct Hub {
    registry: Arc<Registry>,
    queue_capacity: usize,
    next_member: AtomicU64,
    /// Whether events may not cross between processes now: a member joining
    /// meanwhile is told so at once.
    degraded: AtomicBool,
}

/// The rooms, and whom to tell when one opens or closes here.
struct Registry {
    rooms: RwLock<HashMap<RoomName, Arc<Room>>>,
    broker: Option<Arc<dyn Broker>>,
}

#[derive(Default)]
struct Room {
    state: Mutex<RoomState>,
}

#[derive(Default)]
struct RoomState {
    members: Vec<Member>,
    /// The last events delivered, for newcomers and reconnecting clients.
    recent: VecDeque<Arc<Published>>,
}

struct Member {
    id: u64,
    name: DisplayName,
    inbox: Inbox,
}

/// A member just added to the hub.
pub struct Joined {
    pub subscription: Subscription,
    /// Whether the room has just opened here: its relaying, if there is a
    /// broker, which the join may wait for.
    pub relaying: Option<Relaying>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves the data consistent even if it
    // panicked half-way, and none awaits.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<RoomName, Arc<Room>>> {
        self.rooms.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<RoomName, Arc<Room>>> {
        self.rooms.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn room(&self, name: &RoomName) -> Option<Arc<Room>> {
        self.read().get(name).cloned()
    }

    /// Removes a member whose subscription was dropped, and its room once empty.
    fn leave(&self, room: &RoomName, id: u64) {
        let mut rooms = self.write();
        let Some(entry) = rooms.get(room) else {
            return;
        };
        let now_empty = {
            let mut state = lock(&entry.state);
            if let Some(index) = state.members.iter().position(|member| member.id == id) {
                state.members.swap_remove(index);
            }
            state.members.is_empty()
        };
        if now_empty {
            rooms.remove(room);
            if let Some(broker) = &self.broker {
                broker.stop_relaying(room);
            }
        }
    }
}

impl Hub {
    /// A hub whose members may each have `queue_capacity` events queued,
    /// relaying its rooms through `broker` if there is one.
    pub fn new(queue_capacity: usize, broker: Option<Arc<dyn Broker>>) -> Self {
        Self {
            registry: Arc::new(Registry { rooms: RwLock::default(), broker }),
            queue_capacity,
            next_member: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
        }
    }

    /// Offers the event to every member of its room here, without waiting
    /// for any of them; members who overflow are cut off.
    pub fn deliver(&self, event: &Arc<Published>) {
        let Some(room) = self.registry.room(&event.event().room) else {
            return;
        };
        // Cut-off members are forgotten here; their `Subscription`'s drop hook
        // removes the room itself once it is empty.
        let mut state = lock(&room.state);
        state.members.retain(|member| member.inbox.offer(event) == Offer::Queued);
        if state.recent.len() == RECENT_EVENTS {
            state.recent.pop_front();
        }
        state.recent.push_back(Arc::clone(event));
    }

    /// Adds `member` to the room: it receives every event delivered to the
    /// room from now until the subscription is dropped, and is handed the
    /// room's recent events ([`Subscription::take_recent`]).
    pub fn join(&self, room: &RoomName, member: &DisplayName) -> Joined {
        let (inbox, subscription) = queue(self.queue_capacity);
        let id = self.next_member.fetch_add(1, Ordering::Relaxed);
        let (recent, relaying) = {
            // The registry's write lock is held while the member is added, so a
            // concurrent last leave cannot remove the room in between, and the
            // broker hears of the room's opening and closing in order; the
            // room's lock makes "recent" and "live from now" meet exactly.
            let mut rooms = self.registry.write();
            let mut relaying = None;
            let entry = rooms.entry(room.clone()).or_insert_with(|| {
                relaying = self.registry.broker.as_ref().map(|broker| broker.relay(room));
                Arc::default()
            });
            let mut state = lock(&entry.state);
            state.members.push(Member { id, name: member.clone(), inbox });
            (state.recent.iter().cloned().collect(), relaying)
        };
        let registry = Arc::downgrade(&self.registry);
        let room = room.clone();
        let mut subscription = subscription.with_recent(recent).on_drop(move || leave(&registry, &room, id));
        // Read after joining: a change of link now either shows here or is
        // told to this member among the rest.
        if self.degraded.load(Ordering::Acquire) {
            subscription = subscription.with_notice(Notice::Degraded);
        }
        Joined { subscription, relaying }
    }

    /// Who is in the room here, each name once, sorted.
    pub fn members(&self, room: &RoomName) -> Vec<DisplayName> {
        let Some(room) = self.registry.room(room) else {
            return Vec::new();
        };
        let mut names: Vec<DisplayName> = lock(&room.state)
            .members
            .iter()
            .filter(|member| !member.inbox.is_gone())
            .map(|member| member.name.clone())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Rooms with members here, and how many connections each has, by name.
    pub fn rooms(&self) -> Vec<(RoomName, usize)> {
        let rooms: Vec<(RoomName, Arc<Room>)> =
            self.registry.read().iter().map(|(name, room)| (name.clone(), Arc::clone(room))).collect();
        let mut counted: Vec<(RoomName, usize)> = rooms
            .into_iter()
            .map(|(name, room)| (name, lock(&room.state).members.len()))
            .filter(|(_, members)| *members > 0)
            .collect();
        counted.sort();
        counted
    }

    /// Whether events may not cross between processes now.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// Applies a control message here (one this process sent, or one the
    /// broker brought from another).
    pub fn apply(&self, control: &Control) {
        match control {
            Control::DeleteEvent { room, id } => {
                if let Some(room) = self.registry.room(room) {
                    lock(&room.state).recent.retain(|event| event.event().id != *id);
                }
            }
            Control::CloseRoom { room } => {
                if let Some(room) = self.registry.room(room) {
                    // Each member's task sees its queue end and closes; its
                    // drop hook then removes the room.
                    for member in &lock(&room.state).members {
                        member.inbox.end(Ended::RoomClosed);
                    }
                }
            }
        }
    }

    fn rooms_now(&self) -> Vec<Arc<Room>> {
        self.registry.read().values().cloned().collect()
    }
}

/// Removes a member whose subscription was dropped (the hub may be gone).
fn leave(registry: &Weak<Registry>, room: &RoomName, id: u64) {
    if let Some(registry) = registry.upgrade() {
        registry.leave(room, id);
    }
}

impl Incoming for Hub {
    fn event(&self, event: Arc<Published>) {
        self.deliver(&event);
    }

    fn control(&self, control: Control) {
        self.apply(&control);
    }

    fn link(&self, notice: Notice) {
        // Set before the members are told: a member joining now either sees
        // the flag or is among those told.
        self.degraded.store(notice == Notice::Degraded, Ordering::Release);
        for room in self.rooms_now() {
            for member in &lock(&room.state).members {
                member.inbox.notify(notice);
            }
        }
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(DEFAULT_QUEUE, None)
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
