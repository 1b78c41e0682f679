//! The hub alone, and what it tells a (mock) broker.

use std::sync::{Arc, Mutex};

use super::*;
use crate::broker::MockBroker;
use crate::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText, Present};

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

fn name(name: &str) -> DisplayName {
    DisplayName::parse(name).unwrap()
}

fn who(member: &str) -> Present {
    Present::new(name(member), false)
}

fn event(room_name: &str, n: u128) -> Arc<Published> {
    Published::new(ChatEvent {
        id: EventId::from_u128(n),
        room: room(room_name),
        user: name("ann"),
        guest: false,
        kind: EventKind::Message,
        text: MessageText::parse("hi").unwrap(),
        timestamp: time::OffsetDateTime::UNIX_EPOCH,
    })
}

fn message(room_name: &str, n: u128, text: &str) -> Arc<Published> {
    Published::new(ChatEvent {
        id: EventId::from_u128(n),
        room: room(room_name),
        user: name("ann"),
        kind: EventKind::Message,
        text: MessageText::parse(text).unwrap(),
        guest: false,
        timestamp: time::OffsetDateTime::UNIX_EPOCH,
    })
}

fn room_count(hub: &Hub) -> usize {
    hub.registry.read().len()
}

#[tokio::test]
async fn every_member_receives_the_very_same_shared_event() {
    let hub = Hub::default();
    let mut a = hub.join(&room("general"), &who("a")).unwrap().subscription;
    let mut b = hub.join(&room("general"), &who("b")).unwrap().subscription;
    let published = event("general", 1);
    hub.deliver(&published);
    assert!(Arc::ptr_eq(&a.next().await.unwrap(), &published));
    assert!(Arc::ptr_eq(&b.next().await.unwrap(), &published));
}

#[test]
fn a_room_is_forgotten_when_its_last_member_leaves() {
    let hub = Hub::default();
    let a = hub.join(&room("general"), &who("a")).unwrap().subscription;
    let b = hub.join(&room("general"), &who("b")).unwrap().subscription;
    assert_eq!(room_count(&hub), 1);
    drop(a);
    assert_eq!(room_count(&hub), 1);
    drop(b);
    assert_eq!(room_count(&hub), 0);
    hub.deliver(&event("general", 1));
    assert_eq!(room_count(&hub), 0, "delivering to nobody opens no room");
}

/// What a mock broker was asked, in order.
fn recording_broker() -> (MockBroker, Arc<Mutex<Vec<String>>>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let mut broker = MockBroker::new();
    let relays = Arc::clone(&asked);
    broker.expect_relay().returning(move |room| {
        relays.lock().unwrap().push(format!("relay {}", room.as_str()));
        Box::pin(async { Ok(()) })
    });
    let stops = Arc::clone(&asked);
    broker.expect_stop_relaying().returning(move |room| stops.lock().unwrap().push(format!("stop {}", room.as_str())));
    (broker, asked)
}

#[test]
fn the_broker_is_asked_to_relay_a_room_with_its_first_member_and_to_stop_with_its_last() {
    let (broker, asked) = recording_broker();
    let hub = Hub::new(8, Some(Arc::new(broker)));
    let first = hub.join(&room("r"), &who("ann")).unwrap();
    assert!(first.relaying.is_some(), "the join may wait for relaying");
    let second = hub.join(&room("r"), &who("bob")).unwrap();
    assert!(second.relaying.is_none(), "relayed already");
    drop(first.subscription);
    drop(second.subscription);
    let again = hub.join(&room("r"), &who("cyd")).unwrap();
    drop(again.subscription);
    assert_eq!(*asked.lock().unwrap(), ["relay r", "stop r", "relay r", "stop r"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_leaves_racing_leave_the_broker_asked_in_an_order_that_ends_right() {
    let (broker, asked) = recording_broker();
    let hub = Arc::new(Hub::new(8, Some(Arc::new(broker))));
    let churn = |member: &'static str| {
        let hub = Arc::clone(&hub);
        tokio::spawn(async move {
            for _ in 0..2_000 {
                drop(hub.join(&room("r"), &who(member)).unwrap().subscription);
            }
        })
    };
    let (a, b) = (churn("a"), churn("b"));
    a.await.unwrap();
    b.await.unwrap();
    let asked = asked.lock().unwrap();
    assert!(
        asked.iter().enumerate().all(|(i, said)| *said == if i % 2 == 0 { "relay r" } else { "stop r" }),
        "relay and stop alternate, whatever the interleaving"
    );
    assert_eq!(asked.last().map(String::as_str), Some("stop r"));
}

#[test]
fn a_link_notice_reaches_every_member_of_every_room_and_newcomers_while_degraded() {
    let hub = Hub::default();
    let mut ann = hub.join(&room("one"), &who("ann")).unwrap().subscription;
    let mut bob = hub.join(&room("two"), &who("bob")).unwrap().subscription;
    hub.link(Notice::Degraded);
    assert_eq!(ann.take_notice(), Some(Notice::Degraded));
    assert_eq!(bob.take_notice(), Some(Notice::Degraded));
    assert!(ann.try_next().unwrap().is_none(), "a notice is not a room event");
    let mut cyd = hub.join(&room("one"), &who("cyd")).unwrap().subscription;
    assert_eq!(cyd.take_notice(), Some(Notice::Degraded), "joined while degraded");
    hub.link(Notice::Restored);
    assert_eq!(cyd.take_notice(), Some(Notice::Restored));
    let mut dan = hub.join(&room("one"), &who("dan")).unwrap().subscription;
    assert_eq!(dan.take_notice(), None, "joined once restored");
}

#[tokio::test]
async fn closing_a_room_ends_its_members_and_deleting_an_event_forgets_it() {
    let hub = Hub::default();
    let mut ann = hub.join(&room("r"), &who("ann")).unwrap().subscription;
    hub.deliver(&event("r", 1));
    hub.deliver(&event("r", 2));
    hub.apply(&Control::DeleteEvent { room: room("r"), id: EventId::from_u128(1) });
    let mut bob = hub.join(&room("r"), &who("bob")).unwrap().subscription;
    let recent: Vec<u128> = bob.take_recent().iter().map(|p| p.event().id.as_u128()).collect();
    assert_eq!(recent, [2], "the deleted event is not handed to newcomers");
    let mut other = hub.join(&room("other"), &who("cyd")).unwrap().subscription;
    hub.apply(&Control::CloseRoom { room: room("r") });
    assert_eq!(ann.next().await.map(|_| ()), Err(Ended::RoomClosed), "before what was still queued");
    assert_eq!(bob.next().await.map(|_| ()), Err(Ended::RoomClosed));
    hub.deliver(&event("other", 3));
    assert!(other.try_next().unwrap().is_some(), "other rooms go on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_joining_and_leaving_while_others_publish_lose_nothing_in_order() {
    let hub = Arc::new(Hub::new(10_000, None));
    let mut steady = hub.join(&room("busy"), &who("steady")).unwrap().subscription;
    let churn = {
        let hub = Arc::clone(&hub);
        tokio::spawn(async move {
            for n in 0..2_000 {
                drop(hub.join(&room("busy"), &who(&format!("churn{n}"))).unwrap().subscription);
            }
        })
    };
    for n in 0..5_000 {
        hub.deliver(&event("busy", n));
    }
    churn.await.unwrap();
    for n in 0..5_000 {
        assert_eq!(steady.try_next().unwrap().map(|p| p.event().id.as_u128()), Some(n));
    }
    assert!(steady.try_next().unwrap().is_none());
    assert_eq!(hub.members(&room("busy")), [who("steady")]);
}

#[test]
fn a_rooms_recent_events_are_bounded_in_bytes_as_well_as_in_count() {
    let big = "x".repeat(1000);
    let one = RECENT_COPIES * message("r", 0, &big).bytes();
    let bounds = Bounds { recent_events: 100, recent_bytes: 4 * one, ..Bounds::default() };
    let hub = Hub::new(bounds, None);
    let _ann = hub.join(&room("r"), &who("ann")).unwrap();
    for n in 1..=10 {
        hub.deliver(&message("r", n, &big));
    }
    let mut bob = hub.join(&room("r"), &who("bob")).unwrap().subscription;
    let recent: Vec<u128> = bob.take_recent().iter().map(|p| p.event().id.as_u128()).collect();
    assert_eq!(recent, [7, 8, 9, 10], "four events' worth of bytes, far under 100 events");
    assert_eq!(bob.dropped_before_recent(), Some(EventId::from_u128(6)), "the newest one let go");
}

#[test]
fn a_room_that_never_let_an_event_go_says_so() {
    let hub = Hub::default();
    let _ann = hub.join(&room("r"), &who("ann")).unwrap();
    hub.deliver(&event("r", 1));
    let bob = hub.join(&room("r"), &who("bob")).unwrap().subscription;
    assert_eq!(bob.dropped_before_recent(), None);
}

#[test]
fn a_join_to_a_new_room_past_the_cap_is_refused_while_open_rooms_still_take_members() {
    let hub = Hub::new(Bounds { rooms: 2, ..Bounds::default() }, None);
    let one = hub.join(&room("one"), &who("ann")).unwrap();
    let _two = hub.join(&room("two"), &who("ann")).unwrap();
    assert_eq!(hub.join(&room("three"), &who("ann")).err(), Some(TooManyRooms { open: 2 }));
    assert!(hub.join(&room("one"), &who("bob")).is_ok(), "an open room is not a new one");
    drop(one);
    assert!(hub.join(&room("three"), &who("ann")).is_ok(), "a room closed frees its place");
}

#[test]
fn members_say_who_is_a_guest_and_a_name_there_both_ways_is_registered() {
    let hub = Hub::default();
    let guest = |member: &str| Present::new(name(member), true);
    let _gus = hub.join(&room("r"), &guest("gus")).unwrap();
    let _ann_guest = hub.join(&room("r"), &guest("ann")).unwrap();
    let _ann = hub.join(&room("r"), &who("ann")).unwrap();
    assert_eq!(hub.members(&room("r")), [who("ann"), guest("gus")]);
}
