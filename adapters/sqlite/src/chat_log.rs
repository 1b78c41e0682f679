//! `SqliteChatLog`: events in `chat_events`, messages searched through the
//! FTS5 index `chat_search` (unicode61: words split at anything not a letter
//! or digit, case folded — the same words the other chat logs see).

use async_trait::async_trait;
use parley_ports::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText, RoomName};
use parley_ports::{ChatLog, ChatLogError, SearchOrder, SearchQuery};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

use crate::errors;

pub struct SqliteChatLog {
    pool: SqlitePool,
}

impl SqliteChatLog {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

fn failed(error: impl std::error::Error + Send + Sync + 'static) -> ChatLogError {
    ChatLogError::Failed(Box::new(error))
}

fn event(row: &SqliteRow) -> Result<ChatEvent, ChatLogError> {
    let id: String = row.try_get("id").map_err(failed)?;
    let kind: String = row.try_get("kind").map_err(failed)?;
    let millis: i64 = row.try_get("ts").map_err(failed)?;
    Ok(ChatEvent {
        id: id.parse().map_err(failed)?,
        room: RoomName::from_storage(row.try_get("room").map_err(failed)?),
        user: DisplayName::from_storage(row.try_get("user").map_err(failed)?),
        guest: row.try_get("guest").map_err(failed)?,
        kind: EventKind::parse(&kind)
            .ok_or_else(|| ChatLogError::Failed(format!("unknown event kind {kind:?}").into()))?,
        text: MessageText::from_storage(row.try_get("message").map_err(failed)?),
        timestamp: OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).map_err(failed)?,
    })
}

/// The query's words as an FTS5 expression matching any of them; each word
/// quoted, so nothing a client types is FTS syntax.
fn match_any(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

#[async_trait]
impl ChatLog for SqliteChatLog {
    async fn append(&self, events: &[ChatEvent]) -> Result<(), ChatLogError> {
        let mut transaction = self.pool.begin().await.map_err(errors::chat_log)?;
        for event in events {
            sqlx::query(
                "INSERT OR IGNORE INTO chat_events (id, room, user, guest, kind, message, ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(event.id.to_string())
            .bind(event.room.as_str())
            .bind(event.user.as_str())
            .bind(event.guest)
            .bind(event.kind.as_str())
            .bind(event.text.as_str())
            .bind(i64::try_from(event.timestamp.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
            .execute(&mut *transaction)
            .await
            .map_err(errors::chat_log)?;
        }
        transaction.commit().await.map_err(errors::chat_log)
    }

    async fn search(&self, query: &SearchQuery) -> Result<Vec<ChatEvent>, ChatLogError> {
        let Some(expression) = match_any(&query.text) else {
            return Ok(Vec::new());
        };
        let order = match query.order {
            SearchOrder::Relevance => "bm25(chat_search), e.id DESC",
            SearchOrder::Newest => "e.id DESC",
        };
        let rows = sqlx::query(&format!(
            "SELECT e.id, e.room, e.user, e.guest, e.kind, e.message, e.ts \
             FROM chat_search JOIN chat_events e ON e.rowid = chat_search.rowid \
             WHERE chat_search MATCH ?1 AND e.room = ?2 AND e.kind = 'message' \
             ORDER BY {order} LIMIT ?3 OFFSET ?4"
        ))
        .bind(expression)
        .bind(query.room.as_str())
        .bind(i64::from(query.limit))
        .bind(i64::from(query.offset))
        .fetch_all(&self.pool)
        .await
        .map_err(errors::chat_log)?;
        rows.iter().map(event).collect()
    }

    async fn history(
        &self,
        room: &RoomName,
        before: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<ChatEvent>, ChatLogError> {
        let rows = sqlx::query(
            "SELECT id, room, user, guest, kind, message, ts FROM chat_events \
             WHERE room = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
        )
        .bind(room.as_str())
        .bind(before.map(|id| id.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(errors::chat_log)?;
        rows.iter().map(event).collect()
    }

    async fn since(&self, room: &RoomName, after: EventId, limit: u32) -> Result<Vec<ChatEvent>, ChatLogError> {
        let rows = sqlx::query(
            "SELECT id, room, user, guest, kind, message, ts FROM chat_events WHERE room = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(room.as_str())
        .bind(after.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(errors::chat_log)?;
        rows.iter().map(event).collect()
    }

    async fn ping(&self) -> Result<(), ChatLogError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop).map_err(errors::chat_log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteDatabase;

    parley_ports::chat_log_contract!(async { SqliteDatabase::open_in_memory().await.unwrap().chat_log() });

    #[test]
    fn search_words_are_quoted_so_nothing_typed_is_fts_syntax() {
        assert_eq!(match_any("hello world").as_deref(), Some("\"hello\" OR \"world\""));
        assert_eq!(match_any("NEAR(a b) OR \"x\" *").as_deref(), Some("\"NEAR\" OR \"a\" OR \"b\" OR \"OR\" OR \"x\""));
        assert_eq!(match_any("?!"), None);
    }

    #[tokio::test]
    async fn a_database_file_keeps_users_and_events_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("parley.db");
        let first = SqliteDatabase::open_file(&path).await.unwrap();
        let event = ChatEvent {
            id: EventId::from_u128(1 << 90),
            room: RoomName::parse("general").unwrap(),
            user: DisplayName::parse("ann").unwrap(),
            guest: false,
            kind: EventKind::Message,
            text: MessageText::parse("kept on disk").unwrap(),
            timestamp: time::macros::datetime!(2026-11-26 12:00:00.250 UTC),
        };
        first.chat_log().append(std::slice::from_ref(&event)).await.unwrap();
        drop(first);
        let again = SqliteDatabase::open_file(&path).await.unwrap();
        let history = again.chat_log().history(&event.room, None, 10).await.unwrap();
        assert_eq!(history, vec![event]);
    }
}
