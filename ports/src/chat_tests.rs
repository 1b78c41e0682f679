//! `Chat` on a real hub, with mockall doubles of the broker, presence, the
//! log and the clock.

use std::sync::{Arc, Mutex};

use time::macros::datetime;

use super::*;
use crate::broker::MockBroker;
use crate::chat_log::{MockChatLog, SearchOrder};
use crate::clock::MockClock;
use crate::presence::MockPresence;

fn present(name: &str, guest: bool) -> Present {
    Present::new(DisplayName::parse(name).unwrap(), guest)
}

fn room() -> RoomName {
    RoomName::parse("general").unwrap()
}
fn ann() -> DisplayName {
    DisplayName::parse("ann").unwrap()
}
/// A message in the room with this id: ids this small all came before any join.
fn said(id: u128) -> ChatEvent {
    ChatEvent {
        id: EventId::from_u128(id),
        room: room(),
        user: DisplayName::parse("bob").unwrap(),
        guest: false,
        kind: EventKind::Message,
        text: MessageText::parse(format!("said {id}")).unwrap(),
        timestamp: datetime!(2026-11-26 11:00:00 UTC),
    }
}
fn ids(events: &[ChatEvent]) -> Vec<u128> {
    events.iter().map(|e| e.id.as_u128()).collect()
}

struct Doubles {
    /// With one, rooms are shared with other processes through it.
    broker: Option<MockBroker>,
    presence: Option<MockPresence>,
    /// Events the room has recently delivered when the scenario starts.
    recent: Vec<ChatEvent>,
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
        Self { broker: None, presence: None, recent: Vec::new(), log, appended }
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

    /// Ann joins a room whose hub hands her the recent events with these
    /// ids (said while another tab of hers was in the room).
    fn joining_after(&mut self, recent: &[u128]) {
        self.recent = recent.iter().map(|&id| said(id)).collect();
    }

    /// Ann joins and is greeted, alone in the room; the greeting and her
    /// membership come back.
    async fn greet(self, since: Option<u128>, history: usize) -> (Greeting, Member) {
        let since = since.map(EventId::from_u128);
        let (greeted, _) = self
            .run(|chat| async move {
                let (member, mut subscription) = chat.join(room(), ann(), false).await.unwrap();
                (chat.welcome(&member, &mut subscription, since, history).await, member)
            })
            .await;
        greeted
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
        let earlier_tab = match self.recent.is_empty() {
            true => None,
            false => Some(rooms.join(&room(), &Present::new(ann(), false)).await.unwrap()),
        };
        for event in self.recent {
            rooms.hub().deliver(&Published::new(event));
        }
        let chat = Chat::new(rooms, log, recorder, clock, EventIds::new(9));
        let result = scenario(chat).await;
        drop(earlier_tab);
        writer.run().await;
        let appended = self.appended.lock().unwrap().clone();
        (result, appended)
    }
}

#[tokio::test]
async fn joining_subscribes_before_telling_the_room_and_logs_the_join() {
    let (joined, logged) = Doubles::new()
        .run(|chat| async move {
            let (member, mut subscription) = chat.join(room(), ann(), false).await.unwrap();
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
            let (member, _subscription) = chat.join(room(), ann(), false).await.unwrap();
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
            let (member, mut subscription) = chat.join(room(), ann(), false).await.unwrap();
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
            let (member, subscription) = chat.join(room(), ann(), false).await.unwrap();
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
        .returning(|_| Ok(vec![present("bob", false), present("ann", false), present("gus", true)]));
    let (members, _) = d
        .run(|chat| async move {
            let (_member, _subscription) = chat.join(room(), ann(), false).await.unwrap();
            chat.members(&room()).await.unwrap()
        })
        .await;
    assert_eq!(members, [present("ann", false), present("bob", false), present("gus", true)], "guests as guests");
}

#[tokio::test]
async fn with_presence_down_the_members_here_are_listed() {
    let mut d = Doubles::new();
    d.broker().expect_publish().returning(|_| Ok(()));
    d.presence().expect_members_elsewhere().returning(|_| Err(PresenceError::Unavailable("down".into())));
    let (members, _) = d
        .run(|chat| async move {
            let (_member, _subscription) = chat.join(room(), ann(), false).await.unwrap();
            chat.members(&room()).await.unwrap()
        })
        .await;
    assert_eq!(members, [present("ann", false)]);
}

#[tokio::test]
async fn members_of_a_dead_process_are_announced_as_left_unless_still_here_and_logged() {
    let mut d = Doubles::new();
    let departed = vec![
        (room(), present("cyd", false)),
        (RoomName::parse("other").unwrap(), present("bob", false)),
        (room(), present("ann", false)),
        (room(), present("gus", true)),
    ];
    d.broker().expect_publish().returning(|_| Ok(()));
    d.presence().expect_claim_departed().times(1).return_once(move || Ok(departed));
    d.presence().expect_members_elsewhere().returning(|_| Ok(Vec::new()));
    let (told, logged) = d
        .run(|chat| async move {
            // Ann has reconnected here: she has not gone.
            let (_member, _subscription) = chat.join(room(), ann(), false).await.unwrap();
            chat.announce_departures().await.unwrap()
        })
        .await;
    assert_eq!(told, 3);
    let said: Vec<_> = logged.iter().map(|e| (e.room.as_str(), e.user.as_str(), e.guest, e.kind)).collect();
    assert_eq!(
        said,
        [
            ("general", "ann", false, EventKind::Joined),
            ("general", "cyd", false, EventKind::Left),
            ("general", "gus", true, EventKind::Left),
            ("other", "bob", false, EventKind::Left)
        ],
        "a departed guest leaves as a guest"
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

#[tokio::test]
async fn the_greeting_says_who_is_here_and_gives_the_latest_recent_events_without_the_log() {
    let mut d = Doubles::new();
    d.joining_after(&[1, 2, 3, 4]);
    d.log.expect_history().never();
    let (greeting, _) = d.greet(None, 3).await;
    assert_eq!(greeting.members.unwrap(), vec![present("ann", false)]);
    assert_eq!(ids(&greeting.events), [2, 3, 4], "the last three, oldest first");
    assert!(greeting.complete);
    assert!(greeting.log_failure.is_none());
}

#[tokio::test]
async fn too_few_recent_events_are_topped_up_from_the_log_before_the_oldest_of_them() {
    let mut d = Doubles::new();
    d.joining_after(&[5, 6]);
    d.log
        .expect_history()
        .withf(|r, before, limit| r == &room() && *before == Some(EventId::from_u128(5)) && *limit == 2)
        .times(1)
        .returning(|_, _, _| Ok(vec![said(4), said(3)]));
    let (greeting, _) = d.greet(None, 4).await;
    assert_eq!(ids(&greeting.events), [3, 4, 5, 6], "the log's newest-first page, turned oldest first");
    assert!(greeting.complete);
}

#[tokio::test]
async fn with_no_recent_events_the_log_gives_a_capped_page_from_before_the_join() {
    let mut d = Doubles::new();
    d.joining_after(&[]);
    let asked = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&asked);
    d.log.expect_history().times(1).returning(move |_, before, limit| {
        *seen.lock().unwrap() = Some((before, limit));
        Ok(vec![said(2), said(1)])
    });
    let (greeting, member) = d.greet(None, usize::MAX).await;
    assert_eq!(*asked.lock().unwrap(), Some((Some(member.joined()), MAX_PAGE)));
    assert_eq!(ids(&greeting.events), [1, 2]);
}

#[tokio::test]
async fn a_chat_log_that_cannot_be_read_is_reported_and_the_recent_events_still_greet() {
    let mut d = Doubles::new();
    d.joining_after(&[5, 6]);
    d.log.expect_history().returning(|_, _, _| Err(ChatLogError::Unavailable("refused".into())));
    let (greeting, _) = d.greet(None, 10).await;
    assert!(matches!(greeting.log_failure, Some(ChatError::Unavailable(_))), "{:?}", greeting.log_failure);
    assert_eq!(ids(&greeting.events), [5, 6]);
    assert!(greeting.complete, "the recent events still meet the live stream");
}

#[tokio::test]
async fn resuming_from_a_recent_event_gives_what_followed_it_without_the_log() {
    let mut d = Doubles::new();
    d.joining_after(&[3, 4, 5]);
    d.log.expect_since().never();
    let (greeting, _) = d.greet(Some(3), 50).await;
    assert_eq!(ids(&greeting.events), [4, 5]);
    assert!(greeting.complete);
}

#[tokio::test]
async fn resuming_from_an_older_event_joins_the_log_to_the_recent_events() {
    let mut d = Doubles::new();
    d.joining_after(&[5, 6]);
    d.log
        .expect_since()
        .withf(|r, after, limit| r == &room() && after.as_u128() == 2 && *limit == MAX_PAGE)
        .times(1)
        // The log may already hold events at and after the join: the member gets those live.
        .returning(|_, _, _| Ok(vec![said(3), said(4), said(5), said(u128::MAX)]));
    let (greeting, _) = d.greet(Some(2), 50).await;
    assert_eq!(ids(&greeting.events), [3, 4, 5, 6], "once each, oldest first, none from after the join");
    assert!(greeting.complete);
    assert!(greeting.log_failure.is_none());
}

#[tokio::test]
async fn a_resume_whose_log_does_not_reach_the_recent_events_is_incomplete() {
    let mut d = Doubles::new();
    d.joining_after(&[7, 8]);
    d.log.expect_since().returning(|_, _, _| Ok(vec![said(3), said(4)]));
    let (greeting, _) = d.greet(Some(2), 50).await;
    assert_eq!(ids(&greeting.events), [3, 4, 7, 8]);
    assert!(!greeting.complete, "5 and 6 may have been said but not yet logged");
    assert!(greeting.log_failure.is_none());
}

#[tokio::test]
async fn a_resume_from_an_event_nobody_knows_is_incomplete() {
    let mut d = Doubles::new();
    d.joining_after(&[]);
    d.log.expect_since().returning(|_, _, _| Ok(Vec::new()));
    let (greeting, _) = d.greet(Some(2), 50).await;
    assert!(greeting.events.is_empty());
    assert!(!greeting.complete);
}

#[tokio::test]
async fn a_resume_with_the_chat_log_down_is_reported_and_incomplete() {
    let mut d = Doubles::new();
    d.joining_after(&[5, 6]);
    d.log.expect_since().returning(|_, _, _| Err(ChatLogError::Failed("bad mapping".into())));
    let (greeting, _) = d.greet(Some(2), 50).await;
    assert!(matches!(greeting.log_failure, Some(ChatError::Failed(_))), "{:?}", greeting.log_failure);
    assert_eq!(ids(&greeting.events), [5, 6], "what the fan-out still has");
    assert!(!greeting.complete);
}

#[tokio::test]
async fn when_presence_cannot_say_who_is_elsewhere_the_greeting_lists_those_here_and_gives_the_past() {
    let mut d = Doubles::new();
    d.joining_after(&[1, 2]);
    d.broker().expect_publish().returning(|_| Ok(()));
    d.presence().expect_members_elsewhere().returning(|_| Err(PresenceError::Unavailable("down".into())));
    let (greeting, _) = d.greet(None, 2).await;
    assert_eq!(greeting.members.unwrap(), [present("ann", false)]);
    assert_eq!(ids(&greeting.events), [1, 2]);
}
