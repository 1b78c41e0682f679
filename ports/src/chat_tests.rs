//! `Chat` against mockall doubles of the fan-out, the log and the clock.

use std::sync::{Arc, Mutex};

use mockall::Sequence;
use time::macros::datetime;

use super::*;
use crate::chat_log::{MockChatLog, SearchOrder};
use crate::clock::MockClock;
use crate::fanout::{MockFanout, queue};

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
        kind: EventKind::Message,
        text: MessageText::parse(format!("said {id}")).unwrap(),
        timestamp: datetime!(2026-11-26 11:00:00 UTC),
    }
}
fn ids(events: &[ChatEvent]) -> Vec<u128> {
    events.iter().map(|e| e.id.as_u128()).collect()
}

struct Doubles {
    fanout: MockFanout,
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
        Self { fanout: MockFanout::new(), log, appended }
    }

    /// The fan-out carries the join, then is down for everything after it.
    fn fanout_goes_down_after_the_join(&mut self) {
        self.fanout.expect_subscribe().returning(|_, _| Ok(queue(8).1));
        let mut publishes = 0;
        self.fanout.expect_publish().returning(move |_| {
            publishes += 1;
            if publishes == 1 { Ok(()) } else { Err(FanoutError::Unavailable("down".into())) }
        });
    }

    /// Ann joins a room whose fan-out hands her the recent events with these ids.
    fn joining_after(&mut self, recent: &[u128]) {
        let recent: Vec<_> = recent.iter().map(|&id| Published::new(said(id))).collect();
        self.fanout.expect_subscribe().return_once(move |_, _| Ok(queue(8).1.with_recent(recent)));
        self.fanout.expect_publish().returning(|_| Ok(()));
    }

    /// Ann joins and is greeted, alone in the room; the greeting and her
    /// membership come back.
    async fn greet(mut self, since: Option<u128>, history: usize) -> (Greeting, Member) {
        self.fanout.expect_members().returning(|_| Ok(vec![ann()]));
        self.greet_as_set(since, history).await
    }

    /// As [`Self::greet`], with the fan-out's answer to who is here left to the test.
    async fn greet_as_set(self, since: Option<u128>, history: usize) -> (Greeting, Member) {
        let since = since.map(EventId::from_u128);
        let (greeted, _) = self
            .run(|chat| async move {
                let (member, mut subscription) = chat.join(room(), ann()).await.unwrap();
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
        let chat = Chat::new(Arc::new(self.fanout), log, recorder, clock, EventIds::new(9));
        let result = scenario(chat).await;
        writer.run().await;
        let appended = self.appended.lock().unwrap().clone();
        (result, appended)
    }
}

#[tokio::test]
async fn joining_subscribes_before_telling_the_room_and_logs_the_join() {
    let mut d = Doubles::new();
    let mut order = Sequence::new();
    d.fanout
        .expect_subscribe()
        .withf(|r, u| r.as_str() == "general" && u.as_str() == "ann")
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _| Ok(queue(8).1));
    d.fanout
        .expect_publish()
        .withf(|p| {
            p.event().kind == EventKind::Joined
                && p.event().user.as_str() == "ann"
                && p.event().text.as_str().is_empty()
        })
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Ok(()));
    let (joined, logged) = d.run(|chat| async move { chat.join(room(), ann()).await.map(|(m, _)| m) }).await;
    let member = joined.unwrap();
    assert_eq!((member.room(), member.user()), (&room(), &ann()));
    assert_eq!(logged.iter().map(|e| e.kind).collect::<Vec<_>>(), vec![EventKind::Joined]);
}

#[tokio::test]
async fn joining_with_the_fanout_down_is_unavailable_and_tells_nobody() {
    let mut d = Doubles::new();
    d.fanout.expect_subscribe().returning(|_, _| Err(FanoutError::Unavailable("redis down".into())));
    d.fanout.expect_publish().never();
    let (joined, logged) = d.run(|chat| async move { chat.join(room(), ann()).await.map(drop) }).await;
    assert!(matches!(joined, Err(ChatError::Unavailable(_))));
    assert!(logged.is_empty());
}

#[tokio::test]
async fn a_post_is_stamped_with_an_id_the_millisecond_and_its_author_then_fanned_out_and_logged() {
    let mut d = Doubles::new();
    d.fanout.expect_subscribe().returning(|_, _| Ok(queue(8).1));
    d.fanout.expect_publish().times(3).returning(|_| Ok(()));
    let (posted, logged) = d
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
async fn a_post_the_fanout_could_not_carry_is_unavailable_and_not_logged() {
    let mut d = Doubles::new();
    d.fanout_goes_down_after_the_join();
    let (posted, logged) = d
        .run(|chat| async move {
            let (member, _subscription) = chat.join(room(), ann()).await.unwrap();
            chat.post(&member, MessageText::parse("lost?").unwrap()).await.map(drop)
        })
        .await;
    assert!(matches!(posted, Err(ChatError::Unavailable(_))));
    assert_eq!(logged.len(), 1, "only the join was logged");
}

#[tokio::test]
async fn leaving_tells_the_room_and_logs_the_leave() {
    let mut d = Doubles::new();
    d.fanout.expect_subscribe().returning(|_, _| Ok(queue(8).1));
    d.fanout.expect_publish().returning(|_| Ok(()));
    let (left, logged) = d
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
async fn members_come_from_the_fanout() {
    let mut d = Doubles::new();
    d.fanout
        .expect_members()
        .returning(|_| Ok(vec![DisplayName::parse("ann").unwrap(), DisplayName::parse("bob").unwrap()]));
    let (members, _) = d.run(|chat| async move { chat.members(&room()).await.unwrap() }).await;
    assert_eq!(members.iter().map(|m| m.as_str()).collect::<Vec<_>>(), vec!["ann", "bob"]);
}

#[tokio::test]
async fn leaving_or_listing_members_with_the_fanout_down_is_unavailable() {
    let mut d = Doubles::new();
    d.fanout_goes_down_after_the_join();
    d.fanout.expect_members().returning(|_| Err(FanoutError::Unavailable("down".into())));
    let (results, logged) = d
        .run(|chat| async move {
            let (member, subscription) = chat.join(room(), ann()).await.unwrap();
            drop(subscription);
            (chat.leave(member).await, chat.members(&room()).await)
        })
        .await;
    assert!(matches!(results.0, Err(ChatError::Unavailable(_))));
    assert!(matches!(results.1, Err(ChatError::Unavailable(_))));
    assert_eq!(
        logged.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::Joined],
        "an undelivered leave is not logged"
    );
}

#[tokio::test]
async fn members_of_a_dead_process_are_announced_as_left_in_their_rooms_and_logged() {
    let mut d = Doubles::new();
    let bob = DisplayName::parse("bob").unwrap();
    let departed = vec![(room(), ann()), (RoomName::parse("other").unwrap(), bob.clone())];
    d.fanout.expect_departed().times(1).return_once(move || Ok(departed));
    let published = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&published);
    d.fanout.expect_publish().times(2).returning(move |event| {
        seen.lock().unwrap().push(event.event().clone());
        Ok(())
    });
    let (told, logged) = d.run(|chat| async move { chat.announce_departures().await.unwrap() }).await;
    assert_eq!(told, 2);
    let published = published.lock().unwrap().clone();
    let said: Vec<_> = published.iter().map(|e| (e.room.as_str(), e.user.as_str(), e.kind)).collect();
    assert_eq!(said, [("general", "ann", EventKind::Left), ("other", "bob", EventKind::Left)]);
    assert_eq!(logged, published, "the leaves are in the chat log, as any leave is");
}

#[tokio::test]
async fn no_departures_when_the_fan_out_cannot_say() {
    let mut d = Doubles::new();
    d.fanout.expect_departed().returning(|| Err(FanoutError::Unavailable("down".into())));
    d.fanout.expect_publish().never();
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
    assert_eq!(greeting.members.unwrap(), vec![ann()]);
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
async fn when_the_fanout_cannot_say_who_is_here_the_greeting_still_gives_the_past() {
    let mut d = Doubles::new();
    d.joining_after(&[1, 2]);
    d.fanout.expect_members().returning(|_| Err(FanoutError::Unavailable("down".into())));
    let (greeting, _) = d.greet_as_set(None, 2).await;
    assert!(matches!(greeting.members, Err(ChatError::Unavailable(_))));
    assert_eq!(ids(&greeting.events), [1, 2]);
}
