//! `MemoryFanout`: rooms inside one process — the hot path of every message.
//!
//! Publishing offers one shared event to each member's bounded queue
//! ([`parley_ports::fanout::queue`]) and never waits on a member: sockets are
//! written by each connection's own writer, outside any lock here. The room's
//! lock is held across the offers so that concurrent publishers cannot
//! interleave differently for different members (one order per room).
//!
//! Knows rooms and queues; knows nothing of sockets or wire formats.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use async_trait::async_trait;
use parley_ports::domain::{DisplayName, RoomName};
use parley_ports::fanout::{Inbox, Offer, queue};
use parley_ports::{Fanout, FanoutError, Notice, Published, Subscription};

use crate::lock;

/// Events a member may have queued before it counts as too slow. Queued
/// events are shared pointers (8 bytes each; the event itself exists once),
/// so this bounds a stuck member to 32 KiB of queue. 256 cut members off in
/// a 5 000-member join storm on the original protocol (every join is a
/// notice to everyone: 12.5 M deliveries in a few seconds), where a member's
/// task can wait behind hundreds of joins before it runs.
pub const DEFAULT_QUEUE: usize = 4096;
/// Events each room keeps for newcomers and resuming clients.
pub const RECENT_EVENTS: usize = 256;

type Rooms = RwLock<HashMap<RoomName, Arc<Room>>>;

pub struct MemoryFanout {
    rooms: Arc<Rooms>,
    queue_capacity: usize,
    next_member: AtomicU64,
}

#[derive(Default)]
struct Room {
    state: Mutex<RoomState>,
}

#[derive(Default)]
struct RoomState {
    members: Vec<Member>,
    /// The last events published, for newcomers and reconnecting clients.
    recent: VecDeque<Arc<Published>>,
}

struct Member {
    id: u64,
    name: DisplayName,
    inbox: Inbox,
}

impl MemoryFanout {
    /// A fan-out whose members may each have `queue_capacity` events queued.
    pub fn new(queue_capacity: usize) -> Self {
        Self { rooms: Arc::default(), queue_capacity, next_member: AtomicU64::new(0) }
    }

    /// How many rooms have members now.
    pub fn room_count(&self) -> usize {
        self.rooms.read().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Tells every member of every room `notice` (news about the fan-out
    /// itself, such as a process relaying rooms losing its link).
    pub fn notify_all(&self, notice: Notice) {
        let rooms: Vec<Arc<Room>> =
            self.rooms.read().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect();
        for room in rooms {
            for member in &lock(&room.state).members {
                member.inbox.notify(notice);
            }
        }
    }

    fn room(&self, name: &RoomName) -> Option<Arc<Room>> {
        self.rooms.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(name).cloned()
    }
}

impl Default for MemoryFanout {
    fn default() -> Self {
        Self::new(DEFAULT_QUEUE)
    }
}

#[async_trait]
impl Fanout for MemoryFanout {
    async fn publish(&self, event: Arc<Published>) -> Result<(), FanoutError> {
        let Some(room) = self.room(&event.event().room) else {
            return Ok(());
        };
        // Cut-off members are forgotten here; their `Subscription`'s drop hook
        // removes the room itself once it is empty.
        let mut state = lock(&room.state);
        state.members.retain(|member| member.inbox.offer(&event) == Offer::Queued);
        if state.recent.len() == RECENT_EVENTS {
            state.recent.pop_front();
        }
        state.recent.push_back(event);
        Ok(())
    }

    async fn subscribe(&self, room: &RoomName, member: &DisplayName) -> Result<Subscription, FanoutError> {
        let (inbox, subscription) = queue(self.queue_capacity);
        let id = self.next_member.fetch_add(1, Ordering::Relaxed);
        let recent = {
            // The registry's write lock is held while the member is added, so a
            // concurrent last leave cannot remove the room in between; the room's
            // lock makes "recent" and "live from now" meet exactly.
            let mut rooms = self.rooms.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = rooms.entry(room.clone()).or_default();
            let mut state = lock(&entry.state);
            state.members.push(Member { id, name: member.clone(), inbox });
            state.recent.iter().cloned().collect()
        };
        let rooms = Arc::downgrade(&self.rooms);
        let room = room.clone();
        Ok(subscription.with_recent(recent).on_drop(move || leave(&rooms, &room, id)))
    }

    async fn members(&self, room: &RoomName) -> Result<Vec<DisplayName>, FanoutError> {
        let Some(room) = self.room(room) else {
            return Ok(Vec::new());
        };
        let mut names: Vec<DisplayName> = lock(&room.state)
            .members
            .iter()
            .filter(|member| !member.inbox.is_gone())
            .map(|member| member.name.clone())
            .collect();
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    async fn rooms(&self) -> Result<Vec<(RoomName, usize)>, FanoutError> {
        let rooms: Vec<(RoomName, Arc<Room>)> = {
            let rooms = self.rooms.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            rooms.iter().map(|(name, room)| (name.clone(), Arc::clone(room))).collect()
        };
        let mut counted: Vec<(RoomName, usize)> = rooms
            .into_iter()
            .map(|(name, room)| (name, lock(&room.state).members.len()))
            .filter(|(_, members)| *members > 0)
            .collect();
        counted.sort();
        Ok(counted)
    }

    async fn ping(&self) -> Result<(), FanoutError> {
        Ok(())
    }
}

/// Removes a member whose subscription was dropped, and its room once empty.
fn leave(rooms: &Weak<Rooms>, room: &RoomName, id: u64) {
    let Some(rooms) = rooms.upgrade() else {
        return;
    };
    let mut rooms = rooms.write().unwrap_or_else(std::sync::PoisonError::into_inner);
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_ports::domain::{ChatEvent, EventId, EventKind, MessageText};

    parley_ports::fanout_contract!(async { MemoryFanout::new(256) });

    fn event(room: &str) -> Arc<Published> {
        Published::new(ChatEvent {
            id: EventId::from_u128(1),
            room: RoomName::parse(room).unwrap(),
            user: DisplayName::parse("ann").unwrap(),
            kind: EventKind::Message,
            text: MessageText::parse("hi").unwrap(),
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
        })
    }

    #[tokio::test]
    async fn every_member_receives_the_very_same_shared_event() {
        let fanout = MemoryFanout::default();
        let room = RoomName::parse("general").unwrap();
        let mut a = fanout.subscribe(&room, &DisplayName::parse("a").unwrap()).await.unwrap();
        let mut b = fanout.subscribe(&room, &DisplayName::parse("b").unwrap()).await.unwrap();
        let published = event("general");
        fanout.publish(Arc::clone(&published)).await.unwrap();
        assert!(Arc::ptr_eq(&a.next().await.unwrap(), &published));
        assert!(Arc::ptr_eq(&b.next().await.unwrap(), &published));
    }

    #[tokio::test]
    async fn a_room_is_forgotten_when_its_last_member_leaves() {
        let fanout = MemoryFanout::default();
        let room = RoomName::parse("general").unwrap();
        let a = fanout.subscribe(&room, &DisplayName::parse("a").unwrap()).await.unwrap();
        let b = fanout.subscribe(&room, &DisplayName::parse("b").unwrap()).await.unwrap();
        assert_eq!(fanout.room_count(), 1);
        drop(a);
        assert_eq!(fanout.room_count(), 1);
        drop(b);
        assert_eq!(fanout.room_count(), 0);
        fanout.publish(event("general")).await.unwrap();
    }

    #[tokio::test]
    async fn a_notice_reaches_every_member_of_every_room() {
        let fanout = MemoryFanout::default();
        let mut ann =
            fanout.subscribe(&RoomName::parse("one").unwrap(), &DisplayName::parse("ann").unwrap()).await.unwrap();
        let mut bob =
            fanout.subscribe(&RoomName::parse("two").unwrap(), &DisplayName::parse("bob").unwrap()).await.unwrap();
        fanout.notify_all(Notice::Degraded);
        assert_eq!(ann.take_notice(), Some(Notice::Degraded));
        assert_eq!(bob.take_notice(), Some(Notice::Degraded));
        assert!(ann.try_next().unwrap().is_none(), "a notice is not a room event");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_joining_and_leaving_while_others_publish_lose_nothing_in_order() {
        let fanout = Arc::new(MemoryFanout::new(10_000));
        let room = RoomName::parse("busy").unwrap();
        let mut steady = fanout.subscribe(&room, &DisplayName::parse("steady").unwrap()).await.unwrap();
        let churn = {
            let fanout = Arc::clone(&fanout);
            let room = room.clone();
            tokio::spawn(async move {
                for n in 0..2_000 {
                    let name = DisplayName::parse(format!("churn{n}")).unwrap();
                    drop(fanout.subscribe(&room, &name).await.unwrap());
                }
            })
        };
        for _ in 0..5_000 {
            fanout.publish(event("busy")).await.unwrap();
        }
        churn.await.unwrap();
        for _ in 0..5_000 {
            assert!(steady.try_next().unwrap().is_some());
        }
        assert!(steady.try_next().unwrap().is_none());
        assert_eq!(fanout.members(&room).await.unwrap(), [DisplayName::parse("steady").unwrap()]);
    }
}
