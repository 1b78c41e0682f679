//! `Chat` on a real hub, with mockall doubles of the broker, presence, the
//! log and the clock.

use std::sync::{Arc, Mutex};

use time::macros::datetime;

use super::*;
use crate::broker::MockBroker;
use crate::chat_log::{MockChatLog, SearchOrder};
use crate::clock::MockClock;
use crate::presence::MockPresence;

fn room() -> RoomName {
    RoomName::parse("general").unwrap()
}
fn ann() -> DisplayName {
    DisplayName::parse("ann").unwrap()
}

struct Doubles {
    /// With one, rooms are shared with other processes through it.
    broker: Option<MockBroker>,
    presence: Option<MockPresence>,
    log: MockChatLog,
    /// What reached the chat log through the recorder, batch by batch.
    appended: Arc<Mutex<Vec<ChatEvent>>>,
}

impl Doubles {
    fn new() -> Self {
        let appended = Arc::new(Mutex::new(Vec::new()));
        let mut log = MockChatLog::new();
        let sink = Arc::clone(&appended);
        log.expect_append().returning(move |events| {
            sink.lock().unwrap().extend_from_slice(events);
            Ok(())
        });
        Self { broker: None, presence: None, log, appended }
    }

    /// A broker that relays at once and takes every publish with `publish`.
    fn broker(&mut self) -> &mut MockBroker {
        self.broker.get_or_insert_with(|| {
            let mut broker = MockBroker::new();
            broker.expect_start().return_const(());
            broker.expect_relay().returning(|_| Box::pin(async { Ok(()) }));
            broker.expect_stop_relaying().return_const(());
            broker
        })
    }

    /// Presence where joins are written at once and nobody is elsewhere.
    fn presence(&mut self) -> &mut MockPresence {
        self.presence.get_or_insert_with(|| {
            let mut presence = MockPresence::new();
            presence.expect_joined().returning(|_, _| Box::pin(async { Ok(()) }));
            presence.expect_left().return_const(());
            presence
        })
    }

    /// Runs `scenario` on a `Chat`, then drains the chat-log writer so
    /// `appended` holds everything that was recorded.
    async fn run<F, Fut, T>(self, scenario: F) -> (T, Vec<ChatEvent>)
    where
        F: FnOnce(Chat) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(datetime!(2026-11-26 12:00:00.123456 UTC));
        let clock: Arc<dyn Clock> = Arc::new(clock);
        let log: Arc<dyn ChatLog> = Arc::new(self.log);
        let (recorder, writer) = ChatRecorder::new(Arc::clone(&log), Arc::clone(&clock), 64);
        let presence = self.presence.map(|p| Arc::new(p) as Arc<dyn crate::Presence>);
        let rooms = match self.broker {
            Some(broker) => Rooms::shared(8, Arc::new(broker), presence),
            None => Rooms::local(8),
        };
        let chat = Chat::new(rooms, log, recorder, clock, EventIds::new(9));
        let result = scenario(chat).await;
        writer.run().await;
        let appended = self.appended.lock().unwrap().clone();
        (result, appended)
    }
}

#[tokio::test]
async fn joining_subscribes_before_telling_the_room_and_logs_the_join() {
    let (joined, logged) = Doubles::new()
        .run(|chat| async move {
            let (member, mut subscription) = chat.join(room(), ann()).await.unwrap();
            (member, subscription.try_next().unwrap().map(|p| p.event().clone()))
        })
        .await;
    let (member, first) = joined;
    assert_eq!((member.room(), member.user()), (&room(), &ann()));
    let first = first.expect("the newcomer hears its own join");
    assert_eq!((first.kind, first.user.as_str(), first.text.as_str()), (EventKind::Joined, "ann", ""));
    assert_eq!(member.joined(), first.id);
    assert_eq!(logged, [first]);
}

#[tokio::test]
async fn a_post_is_stamped_with_an_id_the_millisecond_and_its_author_then_fanned_out_and_logged() {
    let (posted, logged) = Doubles::new()
        .run(|chat| async move {
            let (member, _subscription) = chat.join(room(), ann()).await.unwrap();
            let first = chat.post(&member, MessageText::parse("hello").unwrap()).await.unwrap();
            let second = chat.post(&member, MessageText::parse("again").unwrap()).await.unwrap();
            (first, second)
        })
        .await;
    let (first, second) = posted;
    let event = first.event();
    assert_eq!(
        (event.kind, event.text.as_str(), event.user.as_str(), event.room.as_str()),
        (EventKind::Message, "hello", "ann", "general")
    );
    assert_eq!(event.timestamp, datetime!(2026-11-26 12:00:00.123 UTC));
    assert!(second.event().id > event.id, "ids increase within a millisecond");
    assert_eq!(logged.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(), vec!["", "hello", "again"]);
}

#[tokio::test]
async fn a_post_the_broker_could_not_carry_still_reaches_the_room_here_and_is_logged() {
    let mut d = Doubles::new();
    let mut publishes = 0;
    d.broker().expect_publish().returning(move |_| {
        publishes += 1;
        if publishes == 1 { Ok(()) } else { Err(BrokerError::Unavailable("down".into())) }
    });
    d.broker().expect_unrelayed().return_const(1u64);
    let (posted, logged) = d
        .run(|chat| async move {
            let (member, mut subscription) = chat.join(room(), ann()).await.unwrap();
            let posted = chat.post(&member, MessageText::parse("here").unwrap()).await.map(drop);
            let heard: Vec<String> = std::iter::from_fn(|| subscription.try_next().unwrap())
                .map(|p| p.event().text.as_str().to_owned())
                .collect();
            (posted, heard, chat.unrelayed())
        })
        .await;
    let (posted, heard, unrelayed) = posted;
    assert!(posted.is_ok(), "{posted:?}");
    assert_eq!(heard, ["", "here"], "the members here have it");
    assert_eq!(unrelayed, 1, "counted as unrelayed, as the broker says");
    assert_eq!(logged.len(), 2, "and logged");
}

#[tokio::test]
async fn leaving_tells_the_room_and_logs_the_leave() {
    let (left, logged) = Doubles::new()
        .run(|chat| async move {
            let (member, subscription) = chat.join(room(), ann()).await.unwrap();
            drop(subscription);
            chat.leave(member).await
        })
        .await;
    assert!(left.is_ok());
    assert_eq!(logged.iter().map(|e| e.kind).collect::<Vec<_>>(), vec![EventKind::Joined, EventKind::Left]);
}

#[tokio::test]
async fn search_and_history_cap_the_page_and_pass_the_query_through() {
    let mut d = Doubles::new();
    d.log
        .expect_search()
        .withf(|q| q.limit == MAX_PAGE && q.offset == 20 && q.text == "hello" && q.order == SearchOrder::Newest)
        .returning(|_| Ok(Vec::new()));
    d.log
        .expect_history()
        .withf(|r, before, limit| r.as_str() == "general" && before.is_none() && *limit == MAX_PAGE)
        .returning(|_, _, _| Ok(Vec::new()));
    d.log
        .expect_since()
        .withf(|_, after, limit| after.as_u128() == 5 && *limit == 10)
        .returning(|_, _, _| Ok(Vec::new()));
    let (results, _) = d
        .run(|chat| async move {
            let query = SearchQuery {
                room: room(),
                text: "hello".into(),
                order: SearchOrder::Newest,
                offset: 20,
                limit: 50_000,
            };
            (
                chat.search(query).await.is_ok(),
                chat.history(&room(), None, u32::MAX).await.is_ok(),
                chat.since(&room(), EventId::from_u128(5), 10).await.is_ok(),
            )
        })
        .await;
    assert_eq!(results, (true, true, true));
}

#[tokio::test]
async fn search_and_history_with_the_log_down_are_unavailable() {
    let mut d = Doubles::new();
    d.log.expect_search().returning(|_| Err(ChatLogError::Unavailable("refused".into())));
    d.log.expect_history().returning(|_, _, _| Err(ChatLogError::Failed("bad mapping".into())));
    let (results, _) = d
        .run(|chat| async move {
            let query =
                SearchQuery { room: room(), text: "x".into(), order: SearchOrder::Relevance, offset: 0, limit: 10 };
            (chat.search(query).await, chat.history(&room(), None, 10).await)
        })
        .await;
    assert!(matches!(results.0, Err(ChatError::Unavailable(_))));
    assert!(matches!(results.1, Err(ChatError::Failed(_))));
}

#[tokio::test]
async fn members_here_and_elsewhere_are_listed_once_each() {
    let mut d = Doubles::new();
    d.broker().expect_publish().returning(|_| Ok(()));
    d.presence()
        .expect_members_elsewhere()
        .returning(|_| Ok(vec![DisplayName::parse("bob").unwrap(), DisplayName::parse("ann").unwrap()]));
    let (members, _) = d
        .run(|chat| async move {
            let (_member, _subscription) = chat.join(room(), ann()).await.unwrap();
            chat.members(&room()).await.unwrap()
        })
        .await;
    assert_eq!(members.iter().map(|m| m.as_str()).collect::<Vec<_>>(), vec!["ann", "bob"]);
}

#[tokio::test]
async fn with_presence_down_the_members_here_are_listed() {
    let mut d = Doubles::new();
    d.broker().expect_publish().returning(|_| Ok(()));
    d.presence().expect_members_elsewhere().returning(|_| Err(PresenceError::Unavailable("down".into())));
    let (members, _) = d
        .run(|chat| async move {
            let (_member, _subscription) = chat.join(room(), ann()).await.unwrap();
            chat.members(&room()).await.unwrap()
        })
        .await;
    assert_eq!(members, [ann()]);
}

#[tokio::test]
async fn members_of_a_dead_process_are_announced_as_left_unless_still_here_and_logged() {
    let mut d = Doubles::new();
    let bob = DisplayName::parse("bob").unwrap();
    let cyd = DisplayName::parse("cyd").unwrap();
    let departed = vec![(room(), cyd.clone()), (RoomName::parse("other").unwrap(), bob.clone()), (room(), ann())];
    d.broker().expect_publish().returning(|_| Ok(()));
    d.presence().expect_claim_departed().times(1).return_once(move || Ok(departed));
    d.presence().expect_members_elsewhere().returning(|_| Ok(Vec::new()));
    let (told, logged) = d
        .run(|chat| async move {
            // Ann has reconnected here: she has not gone.
            let (_member, _subscription) = chat.join(room(), ann()).await.unwrap();
            chat.announce_departures().await.unwrap()
        })
        .await;
    assert_eq!(told, 2);
    let said: Vec<_> = logged.iter().map(|e| (e.room.as_str(), e.user.as_str(), e.kind)).collect();
    assert_eq!(
        said,
        [("general", "ann", EventKind::Joined), ("general", "cyd", EventKind::Left), ("other", "bob", EventKind::Left)]
    );
}

#[tokio::test]
async fn no_departures_when_presence_cannot_say() {
    let mut d = Doubles::new();
    d.broker().expect_publish().never();
    d.presence().expect_claim_departed().returning(|| Err(PresenceError::Unavailable("down".into())));
    let (result, logged) = d.run(|chat| async move { chat.announce_departures().await }).await;
    assert!(matches!(result, Err(ChatError::Unavailable(_))), "{result:?}");
    assert!(logged.is_empty());
}
