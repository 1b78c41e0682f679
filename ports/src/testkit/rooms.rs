//! The rooms contract: what [`Rooms`] promises its members, alone or on any
//! broker and presence (each broker runs it with one process; the
//! [`crate::testkit::broker`] suite checks two). The factory must give each
//! member a queue of between [`MIN_QUEUE`] and [`MAX_QUEUE`] events: rules
//! queue up to `MIN_QUEUE` unread events, and the slow-member rule
//! overflows `MAX_QUEUE`.

use std::sync::Arc;
use std::time::Duration;

use time::macros::datetime;

use crate::broker::Control;
use crate::delivery::{Ended, Published, Subscription};
use crate::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText, Present, RoomName};
use crate::rooms::Rooms;

/// The smallest per-member queue the factory may configure for this suite.
pub const MIN_QUEUE: usize = 128;
/// The largest per-member queue the factory may configure for this suite.
pub const MAX_QUEUE: usize = 1000;
/// How long a rule waits for a delivery before calling it lost.
const PATIENCE: Duration = Duration::from_secs(5);

/// Runs every rooms rule against `$make`, an `async` block giving fresh
/// [`Rooms`] whose per-member queues hold at most [`MAX_QUEUE`] events.
#[macro_export]
macro_rules! rooms_contract {
    ($($args:tt)+) => {
        $crate::__contract_tests!(rooms, [
            a_member_receives_the_rooms_events_in_publish_order,
            every_member_receives_every_event_in_the_same_order,
            events_stay_in_their_room,
            a_member_receives_only_what_is_published_after_it_joined,
            a_member_that_stops_reading_is_cut_off_and_the_others_miss_nothing,
            dropping_a_subscription_leaves_the_room,
            members_lists_each_name_once_in_order,
            publishing_to_an_empty_room_succeeds,
            working_rooms_answer_ping,
            a_control_message_applies_here_at_once,
            a_newcomer_is_handed_the_recent_events_it_missed,
            rooms_lists_each_room_with_members_and_its_connections,
        ], $($args)+);
    };
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

fn name(name: &str) -> DisplayName {
    DisplayName::parse(name).unwrap()
}

fn event(room_name: &str, n: u128) -> Arc<Published> {
    Published::new(ChatEvent {
        id: EventId::from_u128(n),
        room: room(room_name),
        user: name("ann"),
        guest: false,
        kind: EventKind::Message,
        text: MessageText::parse(format!("m{n}")).unwrap(),
        timestamp: datetime!(2026-11-26 12:00 UTC),
    })
}

async fn publish(rooms: &Rooms, room_name: &str, n: u128) {
    rooms.publish(event(room_name, n)).await;
}

async fn join(rooms: &Rooms, room_name: &str, member: &str) -> Subscription {
    rooms.join(&room(room_name), &Present::new(name(member), false)).await.expect("the contract opens few rooms")
}

/// The id of the next event, waiting at most [`PATIENCE`].
async fn next_id(subscription: &mut Subscription) -> Result<u128, Ended> {
    match tokio::time::timeout(PATIENCE, subscription.next()).await {
        Ok(received) => received.map(|p| p.event().id.as_u128()),
        Err(_) => panic!("no event within {PATIENCE:?}"),
    }
}

async fn next_ids(subscription: &mut Subscription, count: usize) -> Vec<u128> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        ids.push(next_id(subscription).await.unwrap_or_else(|e| panic!("subscription ended: {e}")));
    }
    ids
}

/// A member gets its room's events in the order they were published.
pub async fn a_member_receives_the_rooms_events_in_publish_order(rooms: &Rooms) {
    let mut ann = join(rooms, "general", "ann").await;
    for n in 1..=5 {
        publish(rooms, "general", n).await;
    }
    assert_eq!(next_ids(&mut ann, 5).await, [1, 2, 3, 4, 5]);
}

/// Several members, several publishers: all see the same sequence.
pub async fn every_member_receives_every_event_in_the_same_order(rooms: &Rooms) {
    let mut members = Vec::new();
    for member in ["ann", "bob", "cat"] {
        members.push(join(rooms, "general", member).await);
    }
    let publishers: Vec<_> = (0..4u128)
        .map(|p| async move {
            for n in 0..25u128 {
                publish(rooms, "general", 1 + p * 100 + n).await;
            }
        })
        .collect();
    futures_join_all(publishers).await;
    let first = next_ids(&mut members[0], 100).await;
    for member in &mut members[1..] {
        assert_eq!(next_ids(member, 100).await, first);
    }
    for p in 0..4u128 {
        let from_p: Vec<u128> = first.iter().copied().filter(|id| id / 100 == p).collect();
        assert_eq!(from_p, (0..25).map(|n| 1 + p * 100 + n).collect::<Vec<_>>(), "publisher {p} kept its order");
    }
}

/// A room's events reach only that room's members (room names are exact).
pub async fn events_stay_in_their_room(rooms: &Rooms) {
    let mut general = join(rooms, "general", "ann").await;
    let mut other = join(rooms, "General", "bob").await;
    publish(rooms, "General", 1).await;
    publish(rooms, "general", 2).await;
    assert_eq!(next_id(&mut general).await, Ok(2));
    assert_eq!(next_id(&mut other).await, Ok(1));
}

/// Nothing published before a member joined is delivered to it.
pub async fn a_member_receives_only_what_is_published_after_it_joined(rooms: &Rooms) {
    let mut early = join(rooms, "general", "ann").await;
    publish(rooms, "general", 1).await;
    assert_eq!(next_id(&mut early).await, Ok(1));
    let mut late = join(rooms, "general", "bob").await;
    publish(rooms, "general", 2).await;
    assert_eq!(next_id(&mut late).await, Ok(2));
}

/// A member whose queue overflows ends `TooSlow`; a reading member gets everything.
pub async fn a_member_that_stops_reading_is_cut_off_and_the_others_miss_nothing(rooms: &Rooms) {
    let mut stalled = join(rooms, "general", "stalled").await;
    let mut reader = join(rooms, "general", "reader").await;
    let total = 2 * MAX_QUEUE as u128 + 10;
    for n in 1..=total {
        publish(rooms, "general", n).await;
        assert_eq!(next_id(&mut reader).await, Ok(n));
    }
    assert_eq!(next_id(&mut stalled).await, Err(Ended::TooSlow));
    assert!(!rooms.members(&room("general")).await.iter().any(|p| p.name == name("stalled")), "cut off members leave");
}

/// Once its subscription is dropped, a member is no longer in the room.
pub async fn dropping_a_subscription_leaves_the_room(rooms: &Rooms) {
    let ann = join(rooms, "general", "ann").await;
    let mut bob = join(rooms, "general", "bob").await;
    drop(ann);
    let members = eventually_members(rooms, "general", 1).await;
    assert_eq!(members, [Present::new(name("bob"), false)]);
    publish(rooms, "general", 1).await;
    assert_eq!(next_id(&mut bob).await, Ok(1));
}

/// `members` names each member once (two connections, one name), sorted.
pub async fn members_lists_each_name_once_in_order(rooms: &Rooms) {
    let _subscriptions = [
        join(rooms, "general", "cat").await,
        join(rooms, "general", "ann").await,
        join(rooms, "general", "cat").await,
        join(rooms, "other", "dan").await,
    ];
    assert_eq!(
        rooms.members(&room("general")).await,
        [Present::new(name("ann"), false), Present::new(name("cat"), false)]
    );
    assert!(rooms.members(&room("nobody-here")).await.is_empty());
}

/// Publishing where nobody listens is not an error.
pub async fn publishing_to_an_empty_room_succeeds(rooms: &Rooms) {
    publish(rooms, "empty", 1).await;
    let mut ann = join(rooms, "empty", "ann").await;
    publish(rooms, "empty", 2).await;
    assert_eq!(next_id(&mut ann).await, Ok(2));
}

/// Presence may settle asynchronously (a networked fan-out); wait for it briefly.
async fn eventually_members(rooms: &Rooms, room_name: &str, count: usize) -> Vec<Present> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let members = rooms.members(&room(room_name)).await;
        if members.len() == count || tokio::time::Instant::now() > deadline {
            return members;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs futures concurrently on the current task, without a dependency for it.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        futures.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futures.is_empty() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
}

/// Rooms whose links work answer `ping` (once a member's join says the room
/// is relayed, they are known to work).
pub async fn working_rooms_answer_ping(rooms: &Rooms) {
    let _ann = join(rooms, "general", "ann").await;
    rooms.ping().await.unwrap_or_else(|e| panic!("ping: {e}"));
}

/// A control message sent from here applies here at once: closing a room
/// lets its members go, and only its members.
pub async fn a_control_message_applies_here_at_once(rooms: &Rooms) {
    let mut ann = join(rooms, "closing", "ann").await;
    let mut bob = join(rooms, "staying", "bob").await;
    rooms.control(Control::CloseRoom { room: room("closing") }).await.unwrap_or_else(|e| panic!("control: {e}"));
    assert_eq!(next_id(&mut ann).await, Err(Ended::RoomClosed));
    publish(rooms, "staying", 1).await;
    assert_eq!(next_id(&mut bob).await, Ok(1));
}

/// A newcomer's subscription carries the events published just before it joined, oldest first.
pub async fn a_newcomer_is_handed_the_recent_events_it_missed(rooms: &Rooms) {
    let mut ann = join(rooms, "general", "ann").await;
    for n in 1..=3 {
        publish(rooms, "general", n).await;
    }
    assert_eq!(next_ids(&mut ann, 3).await, [1, 2, 3]);
    let mut bob = join(rooms, "general", "bob").await;
    let recent: Vec<u128> = bob.take_recent().iter().map(|p| p.event().id.as_u128()).collect();
    assert_eq!(recent, [1, 2, 3]);
    assert!(bob.take_recent().is_empty(), "handed over once");
    publish(rooms, "general", 4).await;
    assert_eq!(next_id(&mut bob).await, Ok(4), "live events follow without overlap");
}

/// `rooms` names every room with members and counts its connections.
pub async fn rooms_lists_each_room_with_members_and_its_connections(rooms: &Rooms) {
    let _subscriptions =
        [join(rooms, "general", "ann").await, join(rooms, "general", "ann").await, join(rooms, "zoo", "bob").await];
    let dropped = join(rooms, "empty-soon", "cat").await;
    drop(dropped);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let listed = rooms.rooms().await;
        if listed == [(room("general"), 2), (room("zoo"), 1)] {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "rooms never settled: {listed:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
