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
//! What the hub holds is bounded ([`Bounds`]): each member's queue in events
//! and bytes, each room's recent events in count and bytes, and the number of
//! rooms; past a bound a member is cut off, an old event forgotten (the chat
//! log still has it) or a join refused ([`TooManyRooms`]).
//!
//! Knows rooms and queues; knows nothing of sockets, wire formats, or what
//! carries events between processes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use crate::broker::{Broker, Control, Incoming, Relaying};
use crate::delivery::{Capacity, Ended, Inbox, Notice, Offer, Published, Subscription, queue};
use crate::domain::{EventId, Present, RoomName};

/// Events a member may have queued before it counts as too slow. 256 cut
/// members off in a 5 000-member join storm on the original protocol (every
/// join is a notice to everyone: 12.5 M deliveries in a few seconds), where a
/// member's task can wait behind hundreds of joins before it runs.
pub const DEFAULT_QUEUE: usize = 4096;
/// Bytes ([`Published::bytes`]) a member may have queued before it counts as
/// too slow: centrifuge's `ClientQueueMaxSize` is 1 MB. A join notice weighs
/// about 120 bytes, so a full [`DEFAULT_QUEUE`] of them (the join storm) is
/// about 480 KiB, under this; 64 messages of 16 KiB are over it.
pub const DEFAULT_QUEUE_BYTES: usize = 1024 * 1024;
/// Events each room keeps for newcomers and resuming clients.
pub const RECENT_EVENTS: usize = 256;
/// Bytes each room's recent events may weigh, each counted
/// [`RECENT_COPIES`] times. 256 ordinary messages (~250 bytes each, so
/// ~750 counted) fit well under it; 16 KiB messages, about 21.
pub const DEFAULT_RECENT_BYTES: usize = 1024 * 1024;
/// What a kept event costs, in multiples of [`Published::bytes`]: the event
/// itself and the frames cached with it (one per wire format in use, two
/// here). A constant, so the bound holds whichever formats were asked for.
pub const RECENT_COPIES: usize = 3;
/// Rooms with members in this process at once. Each may keep
/// [`DEFAULT_RECENT_BYTES`] of recent events, so this is also what bounds
/// their sum (10 GiB in the worst case, each room full of 16 KiB messages).
pub const DEFAULT_MAX_ROOMS: usize = 10_000;

/// How much the hub may hold; see the constants for each default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Each member's queue: past it the member is cut off.
    pub queue: Capacity,
    /// Each room's recent events, at most this many…
    pub recent_events: usize,
    /// …weighing at most this ([`RECENT_COPIES`] × their bytes): past either,
    /// the oldest is forgotten here (the chat log keeps it).
    pub recent_bytes: usize,
    /// Rooms with members here at once: past it a join to a new room is refused.
    pub rooms: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            queue: Capacity { events: DEFAULT_QUEUE, bytes: DEFAULT_QUEUE_BYTES },
            recent_events: RECENT_EVENTS,
            recent_bytes: DEFAULT_RECENT_BYTES,
            rooms: DEFAULT_MAX_ROOMS,
        }
    }
}

impl From<usize> for Bounds {
    /// A member's queue of `queue_events` events; every other bound its default.
    fn from(queue_events: usize) -> Self {
        let mut bounds = Bounds::default();
        bounds.queue.events = queue_events;
        bounds
    }
}

/// A join to a new room while [`Bounds::rooms`] rooms are open here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many rooms: {open} are open here, the most allowed")]
pub struct TooManyRooms {
    pub open: usize,
}

pub struct Hub {
    registry: Arc<Registry>,
    bounds: Bounds,
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
    /// What `recent` weighs ([`RECENT_COPIES`] × its events' bytes).
    recent_bytes: usize,
    /// The newest event let go of from `recent`, if any.
    dropped: Option<EventId>,
}

impl RoomState {
    /// Keeps `event` among the recent ones, forgetting the oldest past either bound.
    fn remember(&mut self, event: &Arc<Published>, bounds: &Bounds) {
        self.recent.push_back(Arc::clone(event));
        self.recent_bytes += recent_weight(event);
        while self.recent.len() > bounds.recent_events || self.recent_bytes > bounds.recent_bytes {
            let Some(oldest) = self.recent.pop_front() else {
                break;
            };
            self.recent_bytes = self.recent_bytes.saturating_sub(recent_weight(&oldest));
            self.dropped = Some(oldest.event().id);
        }
    }
}

fn recent_weight(event: &Published) -> usize {
    event.bytes() * RECENT_COPIES
}

struct Member {
    id: u64,
    who: Present,
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
    /// A hub holding at most `bounds` (a number: a member's queue in events,
    /// the rest default), relaying its rooms through `broker` if there is one.
    pub fn new(bounds: impl Into<Bounds>, broker: Option<Arc<dyn Broker>>) -> Self {
        Self {
            registry: Arc::new(Registry { rooms: RwLock::default(), broker }),
            bounds: bounds.into(),
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
        state.remember(event, &self.bounds);
    }

    /// Adds `member` to the room: it receives every event delivered to the
    /// room from now until the subscription is dropped, and is handed the
    /// room's recent events ([`Subscription::take_recent`]).
    ///
    /// # Errors
    /// [`TooManyRooms`] when the room is not open here and [`Bounds::rooms`] are.
    pub fn join(&self, room: &RoomName, member: &Present) -> Result<Joined, TooManyRooms> {
        let (inbox, subscription) = queue(self.bounds.queue);
        let id = self.next_member.fetch_add(1, Ordering::Relaxed);
        let (recent, dropped, relaying) = {
            // The registry's write lock is held while the member is added, so a
            // concurrent last leave cannot remove the room in between, and the
            // broker hears of the room's opening and closing in order; the
            // room's lock makes "recent" and "live from now" meet exactly.
            let mut rooms = self.registry.write();
            if rooms.len() >= self.bounds.rooms && !rooms.contains_key(room) {
                return Err(TooManyRooms { open: rooms.len() });
            }
            let mut relaying = None;
            let entry = rooms.entry(room.clone()).or_insert_with(|| {
                relaying = self.registry.broker.as_ref().map(|broker| broker.relay(room));
                Arc::default()
            });
            let mut state = lock(&entry.state);
            state.members.push(Member { id, who: member.clone(), inbox });
            (state.recent.iter().cloned().collect(), state.dropped, relaying)
        };
        let registry = Arc::downgrade(&self.registry);
        let room = room.clone();
        let mut subscription = subscription.with_recent(recent, dropped).on_drop(move || leave(&registry, &room, id));
        // Read after joining: a change of link now either shows here or is
        // told to this member among the rest.
        if self.degraded.load(Ordering::Acquire) {
            subscription = subscription.with_notice(Notice::Degraded);
        }
        Ok(Joined { subscription, relaying })
    }

    /// Who is in the room here, each name once, sorted; a name connected
    /// both as a guest and registered is listed as registered.
    pub fn members(&self, room: &RoomName) -> Vec<Present> {
        let Some(room) = self.registry.room(room) else {
            return Vec::new();
        };
        let mut present: Vec<Present> = lock(&room.state)
            .members
            .iter()
            .filter(|member| !member.inbox.is_gone())
            .map(|member| member.who.clone())
            .collect();
        once_per_name(&mut present);
        present
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
                    let mut state = lock(&room.state);
                    state.recent.retain(|event| event.event().id != *id);
                    state.recent_bytes = state.recent.iter().map(|event| recent_weight(event)).sum();
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

/// Sorts `present` by name and keeps each name once: registered when it is
/// there both ways (a registered entry sorts first), since the account's
/// presence is what a list of names can vouch for.
pub(crate) fn once_per_name(present: &mut Vec<Present>) {
    present.sort_unstable();
    present.dedup_by(|later, first| later.name == first.name);
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
        Self::new(Bounds::default(), None)
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
