//! `MemoryChatLog`: rooms' events in ordered maps, for tests and benchmarks.
//!
//! Search splits text into lower-cased words at anything that is not a letter
//! or digit, the way Elasticsearch's standard analyzer and SQLite's FTS5
//! tokenizer roughly do, so all chat logs agree on what matches.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;
use parley_ports::domain::{ChatEvent, EventId, EventKind, RoomName};
use parley_ports::{ChatLog, ChatLogError, SearchOrder, SearchQuery};

use crate::lock;

#[derive(Default)]
pub struct MemoryChatLog {
    rooms: Mutex<HashMap<RoomName, BTreeMap<EventId, ChatEvent>>>,
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

#[async_trait]
impl ChatLog for MemoryChatLog {
    async fn append(&self, events: &[ChatEvent]) -> Result<(), ChatLogError> {
        let mut rooms = lock(&self.rooms);
        for event in events {
            rooms.entry(event.room.clone()).or_default().insert(event.id, event.clone());
        }
        Ok(())
    }

    async fn search(&self, query: &SearchQuery) -> Result<Vec<ChatEvent>, ChatLogError> {
        let wanted: Vec<String> = words(&query.text).collect();
        let rooms = lock(&self.rooms);
        let Some(events) = rooms.get(&query.room) else {
            return Ok(Vec::new());
        };
        // Newest first, then (for relevance) a stable sort by hits keeps ties newest first.
        let mut scored: Vec<(usize, &ChatEvent)> = events
            .values()
            .rev()
            .filter(|e| e.kind == EventKind::Message)
            .map(|e| (words(e.text.as_str()).filter(|w| wanted.contains(w)).count(), e))
            .filter(|(hits, _)| *hits > 0)
            .collect();
        if query.order == SearchOrder::Relevance {
            scored.sort_by_key(|(hits, _)| std::cmp::Reverse(*hits));
        }
        Ok(scored.into_iter().skip(query.offset as usize).take(query.limit as usize).map(|(_, e)| e.clone()).collect())
    }

    async fn history(
        &self,
        room: &RoomName,
        before: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<ChatEvent>, ChatLogError> {
        let rooms = lock(&self.rooms);
        let Some(events) = rooms.get(room) else {
            return Ok(Vec::new());
        };
        let upper = before.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(events.range((Bound::Unbounded, upper)).rev().take(limit as usize).map(|(_, e)| e.clone()).collect())
    }

    async fn since(&self, room: &RoomName, after: EventId, limit: u32) -> Result<Vec<ChatEvent>, ChatLogError> {
        let rooms = lock(&self.rooms);
        let Some(events) = rooms.get(room) else {
            return Ok(Vec::new());
        };
        Ok(events
            .range((Bound::Excluded(after), Bound::Unbounded))
            .take(limit as usize)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn ping(&self) -> Result<(), ChatLogError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    parley_ports::chat_log_contract!(async { MemoryChatLog::default() });
}
