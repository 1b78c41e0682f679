//! The `ChatLog` contract.

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::chat_log::{ChatLog, SearchOrder, SearchQuery};
use crate::domain::{ChatEvent, DisplayName, EventId, EventIds, EventKind, MessageText, RoomName};

/// Runs every `ChatLog` rule against `$make`, an `async` block giving a fresh, empty log.
#[macro_export]
macro_rules! chat_log_contract {
    ($($args:tt)+) => {
        $crate::__contract_tests!(chat_log, [
            history_is_newest_first_with_every_field_intact,
            a_guests_events_stay_a_guests_in_history_since_and_search,
            history_pages_backwards_with_the_before_cursor,
            history_keeps_rooms_apart,
            since_returns_what_came_after_the_cursor_oldest_first,
            appending_the_same_event_twice_stores_it_once,
            search_matches_whole_words_ignoring_case,
            search_matches_any_of_the_words,
            search_stays_in_its_room,
            search_finds_only_messages_not_joins_or_leaves,
            search_newest_first_pages_with_offset_and_limit,
            search_by_relevance_returns_every_match_once,
            empty_room_and_no_match_give_empty_results,
            text_in_any_script_round_trips,
            a_working_log_answers_ping,
        ], $($args)+);
    };
}

const START: OffsetDateTime = datetime!(2026-11-26 09:00:00.000 UTC);

/// Makes a room's events a second apart, with real ids, in order.
struct Script {
    ids: EventIds,
    at: OffsetDateTime,
}

impl Script {
    fn new() -> Self {
        Self { ids: EventIds::new(0x5EED), at: START }
    }

    fn event(&mut self, room: &str, user: &str, kind: EventKind, text: &str) -> ChatEvent {
        self.at += Duration::milliseconds(1_001);
        ChatEvent {
            id: self.ids.next(self.at),
            room: RoomName::parse(room).unwrap(),
            user: DisplayName::parse(user).unwrap(),
            guest: false,
            kind,
            text: MessageText::parse(text).unwrap(),
            timestamp: self.at,
        }
    }

    fn say(&mut self, room: &str, text: &str) -> ChatEvent {
        self.event(room, "ann", EventKind::Message, text)
    }
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

fn texts(events: &[ChatEvent]) -> Vec<&str> {
    events.iter().map(|e| e.text.as_str()).collect()
}

fn query(room_name: &str, text: &str, order: SearchOrder) -> SearchQuery {
    SearchQuery { room: room(room_name), text: text.to_owned(), order, offset: 0, limit: 100 }
}

async fn append(log: &dyn ChatLog, events: &[ChatEvent]) {
    log.append(events).await.unwrap_or_else(|e| panic!("append: {e}"));
}

/// History lists a room's events newest first, each exactly as appended.
pub async fn history_is_newest_first_with_every_field_intact(log: &dyn ChatLog) {
    let mut script = Script::new();
    let events = vec![
        script.event("general", "ann", EventKind::Joined, ""),
        script.say("general", "hello there"),
        script.event("general", "ann", EventKind::Left, ""),
    ];
    append(log, &events).await;
    let history = log.history(&room("general"), None, 10).await.unwrap();
    let mut expected = events.clone();
    expected.reverse();
    assert_eq!(history, expected);
}

/// Whether an author was a guest is kept with each event, and read back
/// wherever the event is: history, since, search.
pub async fn a_guests_events_stay_a_guests_in_history_since_and_search(log: &dyn ChatLog) {
    let mut script = Script::new();
    let start = script.say("general", "before anyone");
    let guest = ChatEvent { guest: true, ..script.event("general", "ann", EventKind::Joined, "") };
    let spoke = ChatEvent { guest: true, ..script.say("general", "guest words") };
    let registered = script.event("general", "ann", EventKind::Message, "registered words");
    append(log, &[start.clone(), guest.clone(), spoke.clone(), registered.clone()]).await;
    let guests = |events: &[ChatEvent]| events.iter().map(|e| e.guest).collect::<Vec<_>>();
    let history = log.history(&room("general"), None, 10).await.unwrap();
    assert_eq!(guests(&history), [false, true, true, false], "history, newest first");
    let since = log.since(&room("general"), start.id, 10).await.unwrap();
    assert_eq!(since, [guest, spoke.clone(), registered.clone()]);
    let found = log.search(&query("general", "words", SearchOrder::Newest)).await.unwrap();
    assert_eq!(found, [registered, spoke]);
}

/// `before` continues where the previous page ended; `limit` bounds each page.
pub async fn history_pages_backwards_with_the_before_cursor(log: &dyn ChatLog) {
    let mut script = Script::new();
    let events: Vec<ChatEvent> = (1..=7).map(|n| script.say("general", &format!("m{n}"))).collect();
    append(log, &events[..4]).await;
    append(log, &events[4..]).await;
    let first = log.history(&room("general"), None, 3).await.unwrap();
    assert_eq!(texts(&first), ["m7", "m6", "m5"]);
    let second = log.history(&room("general"), Some(first[2].id), 3).await.unwrap();
    assert_eq!(texts(&second), ["m4", "m3", "m2"]);
    let last = log.history(&room("general"), Some(second[2].id), 3).await.unwrap();
    assert_eq!(texts(&last), ["m1"]);
}

/// A room's history holds only that room's events.
pub async fn history_keeps_rooms_apart(log: &dyn ChatLog) {
    let mut script = Script::new();
    append(
        log,
        &[
            script.say("general", "in general"),
            script.say("random", "in random"),
            script.say("General", "case differs"),
        ],
    )
    .await;
    assert_eq!(texts(&log.history(&room("random"), None, 10).await.unwrap()), ["in random"]);
    assert_eq!(texts(&log.history(&room("general"), None, 10).await.unwrap()), ["in general"]);
}

/// `since` returns the events after the cursor, oldest first, up to `limit`.
pub async fn since_returns_what_came_after_the_cursor_oldest_first(log: &dyn ChatLog) {
    let mut script = Script::new();
    let events: Vec<ChatEvent> = (1..=5).map(|n| script.say("general", &format!("m{n}"))).collect();
    append(log, &events).await;
    append(log, &[script.say("other", "elsewhere")]).await;
    assert_eq!(texts(&log.since(&room("general"), events[1].id, 10).await.unwrap()), ["m3", "m4", "m5"]);
    assert_eq!(texts(&log.since(&room("general"), events[0].id, 2).await.unwrap()), ["m2", "m3"]);
    assert!(log.since(&room("general"), events[4].id, 10).await.unwrap().is_empty());
}

/// Appending is idempotent by id: a retried batch adds nothing.
pub async fn appending_the_same_event_twice_stores_it_once(log: &dyn ChatLog) {
    let mut script = Script::new();
    let a = script.say("general", "once");
    let b = script.say("general", "twice");
    append(log, std::slice::from_ref(&a)).await;
    append(log, &[a.clone(), b.clone()]).await;
    assert_eq!(log.history(&room("general"), None, 10).await.unwrap(), vec![b, a]);
    assert_eq!(log.search(&query("general", "once", SearchOrder::Newest)).await.unwrap().len(), 1);
}

/// A word matches in any letter case, as a word, not inside another word.
pub async fn search_matches_whole_words_ignoring_case(log: &dyn ChatLog) {
    let mut script = Script::new();
    append(
        log,
        &[script.say("general", "Hello World"), script.say("general", "say hello!"), script.say("general", "othello")],
    )
    .await;
    let found = log.search(&query("general", "HELLO", SearchOrder::Newest)).await.unwrap();
    assert_eq!(texts(&found), ["say hello!", "Hello World"]);
}

/// A message matches if it contains any of the query's words.
pub async fn search_matches_any_of_the_words(log: &dyn ChatLog) {
    let mut script = Script::new();
    append(
        log,
        &[script.say("general", "red apple"), script.say("general", "green pear"), script.say("general", "blue sky")],
    )
    .await;
    let found = log.search(&query("general", "apple sky", SearchOrder::Newest)).await.unwrap();
    assert_eq!(texts(&found), ["blue sky", "red apple"]);
}

/// Matches in other rooms are not returned.
pub async fn search_stays_in_its_room(log: &dyn ChatLog) {
    let mut script = Script::new();
    append(log, &[script.say("general", "deploy now"), script.say("ops", "deploy later")]).await;
    assert_eq!(texts(&log.search(&query("ops", "deploy", SearchOrder::Newest)).await.unwrap()), ["deploy later"]);
}

/// Joins and leaves are history, not searchable messages.
pub async fn search_finds_only_messages_not_joins_or_leaves(log: &dyn ChatLog) {
    let mut script = Script::new();
    let join = script.event("general", "joined", EventKind::Joined, "");
    append(log, &[join, script.say("general", "who joined?")]).await;
    let found = log.search(&query("general", "joined", SearchOrder::Relevance)).await.unwrap();
    assert_eq!(found.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::Message]);
}

/// Newest-first results page with offset and limit.
pub async fn search_newest_first_pages_with_offset_and_limit(log: &dyn ChatLog) {
    let mut script = Script::new();
    let events: Vec<ChatEvent> = (1..=6).map(|n| script.say("general", &format!("ping {n}"))).collect();
    append(log, &events).await;
    let page = |offset, limit| SearchQuery { offset, limit, ..query("general", "ping", SearchOrder::Newest) };
    assert_eq!(texts(&log.search(&page(0, 2)).await.unwrap()), ["ping 6", "ping 5"]);
    assert_eq!(texts(&log.search(&page(2, 3)).await.unwrap()), ["ping 4", "ping 3", "ping 2"]);
    assert_eq!(texts(&log.search(&page(5, 3)).await.unwrap()), ["ping 1"]);
    assert!(log.search(&page(6, 3)).await.unwrap().is_empty());
}

/// Relevance order may rank as it likes but returns each match exactly once.
pub async fn search_by_relevance_returns_every_match_once(log: &dyn ChatLog) {
    let mut script = Script::new();
    append(log, &[script.say("general", "cat"), script.say("general", "cat cat cat"), script.say("general", "dog")])
        .await;
    let mut found = texts(&log.search(&query("general", "cat", SearchOrder::Relevance)).await.unwrap())
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    found.sort();
    assert_eq!(found, ["cat", "cat cat cat"]);
}

/// Nothing said, or nothing matching, is an empty list rather than an error.
pub async fn empty_room_and_no_match_give_empty_results(log: &dyn ChatLog) {
    assert!(log.history(&room("empty"), None, 10).await.unwrap().is_empty());
    assert!(log.since(&room("empty"), EventId::from_u128(1), 10).await.unwrap().is_empty());
    let mut script = Script::new();
    append(log, &[script.say("general", "hello")]).await;
    assert!(log.search(&query("general", "absent", SearchOrder::Relevance)).await.unwrap().is_empty());
}

/// Rooms, names and messages in any script come back exactly.
pub async fn text_in_any_script_round_trips(log: &dyn ChatLog) {
    let mut script = Script::new();
    let event = script.event("日本", "zoë", EventKind::Message, "Grüße, 世界! 🔵 \"quoted\" \\ back\nslash");
    append(log, std::slice::from_ref(&event)).await;
    assert_eq!(log.history(&room("日本"), None, 1).await.unwrap(), vec![event.clone()]);
    assert_eq!(log.search(&query("日本", "grüße", SearchOrder::Newest)).await.unwrap(), vec![event]);
}

/// A log that is up answers `ping`.
pub async fn a_working_log_answers_ping(log: &dyn ChatLog) {
    log.ping().await.unwrap_or_else(|e| panic!("ping: {e}"));
}
