//! A chat log that fails for a while: chat goes on at full speed, and every
//! event reaches the log once it recovers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parley_auth::{Argon2Hasher, HashCost, JwtAlgorithm, JwtIssuer};
use parley_memory::{MemoryChatLog, MemoryUserStore, SystemClock};
use parley_ports::domain::{ChatEvent, EventId, EventIds, RoomName};
use parley_ports::hub::DEFAULT_QUEUE;
use parley_ports::{Accounts, Chat, ChatLog, ChatLogError, ChatRecorder, Rooms, SearchQuery};

use crate::helpers::serve;
use crate::ws::{connect, send, text};

/// Refuses the first `failures` appends, then stores like the memory log.
struct Flaky {
    inner: MemoryChatLog,
    failures: AtomicUsize,
    refused: AtomicUsize,
}

#[async_trait]
impl ChatLog for Flaky {
    async fn append(&self, events: &[ChatEvent]) -> Result<(), ChatLogError> {
        if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(ChatLogError::Unavailable("index is recovering".into()));
        }
        self.inner.append(events).await
    }
    async fn search(&self, query: &SearchQuery) -> Result<Vec<ChatEvent>, ChatLogError> {
        self.inner.search(query).await
    }
    async fn history(
        &self,
        room: &RoomName,
        before: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<ChatEvent>, ChatLogError> {
        self.inner.history(room, before, limit).await
    }
    async fn since(&self, room: &RoomName, after: EventId, limit: u32) -> Result<Vec<ChatEvent>, ChatLogError> {
        self.inner.since(room, after, limit).await
    }
    async fn ping(&self) -> Result<(), ChatLogError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_log_that_fails_for_a_while_delays_nothing_and_loses_nothing() {
    let clock = Arc::new(SystemClock);
    let log = Arc::new(Flaky {
        inner: MemoryChatLog::default(),
        failures: AtomicUsize::new(3),
        refused: AtomicUsize::new(0),
    });
    let (recorder, writer) = ChatRecorder::new(log.clone(), clock.clone(), 1000);
    tokio::spawn(writer.run());
    let chat = Arc::new(Chat::new(Rooms::local(DEFAULT_QUEUE), log.clone(), recorder, clock.clone(), EventIds::new(3)));
    let hasher = Arc::new(Argon2Hasher::new(HashCost::FAST_INSECURE, 2).unwrap());
    let tokens = Arc::new(JwtIssuer::new(b"secret", JwtAlgorithm::HS256, Duration::from_secs(60), clock.clone()));
    let accounts = Arc::new(Accounts::new(Arc::new(MemoryUserStore::default()), hasher, tokens, clock));
    let app = serve(accounts, Arc::clone(&chat)).await;

    let mut ann = connect(&app, "/ws/chat/general/ann").await;
    assert_eq!(text(&mut ann).await, "🔵 ann joined the room.");
    for n in 0..20 {
        send(&mut ann, &format!("m{n}")).await;
        assert_eq!(text(&mut ann).await, format!("ann: m{n}"), "chat does not wait for the log");
    }
    let room = RoomName::parse("general").unwrap();
    let mut logged = Vec::new();
    for _ in 0..500 {
        logged = chat.history(&room, None, 100).await.unwrap();
        if logged.len() == 21 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(logged.len(), 21, "the join and all 20 messages reached the log");
    assert_eq!(log.refused.load(Ordering::SeqCst), 3, "the log really did refuse the first writes");
    assert_eq!(chat.unlogged(), 0);
}
