//! `Rooms` with mock broker and presence: what goes where. The rules every
//! member relies on are the rooms contract (`testkit::rooms`), run by the
//! memory adapter against local and shared rooms.

use std::sync::Arc;

use super::*;
use crate::broker::MockBroker;
use crate::delivery::Notice;
use crate::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText, Present};
use crate::presence::MockPresence;

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

fn name(name: &str) -> DisplayName {
    DisplayName::parse(name).unwrap()
}

fn who(member: &str) -> Present {
    Present::new(name(member), false)
}

fn broker() -> MockBroker {
    let mut broker = MockBroker::new();
    broker.expect_start().return_const(());
    broker.expect_relay().returning(|_| Box::pin(async { Ok(()) }));
    broker.expect_stop_relaying().return_const(());
    broker
}

#[tokio::test]
async fn a_join_waits_for_relaying_and_presence_unless_the_link_is_down() {
    let mut slow = MockBroker::new();
    slow.expect_start().return_const(());
    slow.expect_stop_relaying().return_const(());
    let (relayed, relaying) = tokio::sync::oneshot::channel::<()>();
    let mut relaying = Some(relaying);
    slow.expect_relay().returning(move |_| {
        let relaying = relaying.take();
        Box::pin(async move {
            if let Some(relaying) = relaying {
                let _ = relaying.await;
            }
            Ok(())
        })
    });
    let rooms = Arc::new(Rooms::shared(8, Arc::new(slow), None));
    let joining = tokio::spawn({
        let rooms = Arc::clone(&rooms);
        async move { rooms.join(&room("r"), &who("ann")).await.unwrap() }
    });
    tokio::task::yield_now().await;
    assert!(!joining.is_finished(), "waits for the room to be relayed here");
    relayed.send(()).unwrap();
    drop(joining.await.unwrap());

    rooms.hub().link(Notice::Degraded);
    let mut bob = rooms.join(&room("s"), &who("bob")).await.unwrap();
    assert_eq!(bob.take_notice(), Some(Notice::Degraded), "joined at once, told why");
}

#[tokio::test]
async fn presence_hears_each_join_and_leave() {
    let mut presence = MockPresence::new();
    presence.expect_joined().times(1).returning(|_, _| Box::pin(async { Ok(()) }));
    // A guest: presence is told so, to list it as one elsewhere.
    let guest = Present::new(name("ann"), true);
    let expected = guest.clone();
    presence.expect_left().withf(move |r, n| r.as_str() == "r" && *n == expected).times(1).return_const(());
    let rooms = Rooms::shared(8, Arc::new(broker()), Some(Arc::new(presence)));
    drop(rooms.join(&room("r"), &guest).await.unwrap());
}

#[tokio::test]
async fn rooms_here_and_elsewhere_are_added_up_by_name() {
    let mut presence = MockPresence::new();
    presence.expect_joined().returning(|_, _| Box::pin(async { Ok(()) }));
    presence.expect_left().return_const(());
    presence.expect_rooms_elsewhere().returning(|| Ok(vec![(room("r"), 2), (room("s"), 1), (room("r"), 1)]));
    let rooms = Rooms::shared(8, Arc::new(broker()), Some(Arc::new(presence)));
    let _ann = rooms.join(&room("r"), &who("ann")).await.unwrap();
    assert_eq!(rooms.rooms().await, [(room("r"), 4), (room("s"), 1)]);
}

#[tokio::test]
async fn a_control_message_applies_here_and_goes_to_the_others() {
    let mut broker = broker();
    broker
        .expect_control()
        .withf(|c| *c == Control::CloseRoom { room: RoomName::parse("r").unwrap() })
        .times(1)
        .returning(|_| Ok(()));
    broker.expect_publish().returning(|_| Ok(()));
    let rooms = Rooms::shared(8, Arc::new(broker), None);
    let mut ann = rooms.join(&room("r"), &who("ann")).await.unwrap();
    rooms.control(Control::CloseRoom { room: room("r") }).await.unwrap();
    assert_eq!(ann.next().await.map(|_| ()), Err(crate::Ended::RoomClosed));
    rooms
        .publish(Published::new(ChatEvent {
            id: EventId::from_u128(1),
            room: room("r"),
            user: name("ann"),
            guest: false,
            kind: EventKind::Message,
            text: MessageText::parse("after").unwrap(),
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
        }))
        .await;
}
