//! `MysqlChatLog`: events in `chat_events`, messages searched with InnoDB
//! FULLTEXT in natural-language mode (any of the words, best first).
//! InnoDB skips words under three letters and its stopwords.

use std::sync::Arc;

use async_trait::async_trait;
use parley_ports::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText, RoomName};
use parley_ports::{ChatLog, ChatLogError, SearchOrder, SearchQuery};
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlPool, Row};
use time::{PrimitiveDateTime, UtcOffset};

use crate::errors;

const COLUMNS: &str = "id, room, `user`, guest, kind, message, ts";

pub struct MysqlChatLog {
    pool: MySqlPool,
    _keep: Option<Arc<dyn Send + Sync>>,
}

impl MysqlChatLog {
    pub(crate) fn new(pool: MySqlPool, keep: Option<Arc<dyn Send + Sync>>) -> Self {
        Self { pool, _keep: keep }
    }
}

fn failed(error: impl std::error::Error + Send + Sync + 'static) -> ChatLogError {
    ChatLogError::Failed(Box::new(error))
}

/// A text column; those with a binary collation (`id`, `room`: exact,
/// ordered comparison) arrive as bytes.
fn text(row: &MySqlRow, column: &str) -> Result<String, ChatLogError> {
    match row.try_get::<String, _>(column) {
        Ok(text) => Ok(text),
        Err(_) => String::from_utf8(row.try_get::<Vec<u8>, _>(column).map_err(failed)?).map_err(failed),
    }
}

fn event(row: &MySqlRow) -> Result<ChatEvent, ChatLogError> {
    let id = text(row, "id")?;
    let kind = text(row, "kind")?;
    let ts: PrimitiveDateTime = row.try_get("ts").map_err(failed)?;
    Ok(ChatEvent {
        id: id.parse().map_err(failed)?,
        room: RoomName::from_storage(text(row, "room")?),
        user: DisplayName::from_storage(text(row, "user")?),
        guest: row.try_get("guest").map_err(failed)?,
        kind: EventKind::parse(&kind)
            .ok_or_else(|| ChatLogError::Failed(format!("unknown event kind {kind:?}").into()))?,
        text: MessageText::from_storage(text(row, "message")?),
        timestamp: ts.assume_utc(),
    })
}

#[async_trait]
impl ChatLog for MysqlChatLog {
    async fn append(&self, events: &[ChatEvent]) -> Result<(), ChatLogError> {
        if events.is_empty() {
            return Ok(());
        }
        // One multi-row INSERT per batch; IGNORE makes a retried batch a no-op.
        let mut builder =
            sqlx::QueryBuilder::new("INSERT IGNORE INTO chat_events (id, room, `user`, guest, kind, message, ts) ");
        builder.push_values(events, |mut row, event| {
            let at = event.timestamp.to_offset(UtcOffset::UTC);
            row.push_bind(event.id.to_string())
                .push_bind(event.room.as_str())
                .push_bind(event.user.as_str())
                .push_bind(event.guest)
                .push_bind(event.kind.as_str())
                .push_bind(event.text.as_str())
                .push_bind(PrimitiveDateTime::new(at.date(), at.time()));
        });
        builder.build().execute(&self.pool).await.map(drop).map_err(errors::chat_log)
    }

    async fn search(&self, query: &SearchQuery) -> Result<Vec<ChatEvent>, ChatLogError> {
        let order = match query.order {
            SearchOrder::Relevance => "score DESC, id DESC",
            SearchOrder::Newest => "id DESC",
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, MATCH (message) AGAINST (? IN NATURAL LANGUAGE MODE) AS score FROM chat_events \
             WHERE room = ? AND kind = 'message' AND MATCH (message) AGAINST (? IN NATURAL LANGUAGE MODE) \
             ORDER BY {order} LIMIT ? OFFSET ?"
        ))
        .bind(&query.text)
        .bind(query.room.as_str())
        .bind(&query.text)
        .bind(query.limit)
        .bind(query.offset)
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
        let before = before.map(|id| id.to_string());
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM chat_events WHERE room = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?"
        ))
        .bind(room.as_str())
        .bind(before.as_deref())
        .bind(before.as_deref())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(errors::chat_log)?;
        rows.iter().map(event).collect()
    }

    async fn since(&self, room: &RoomName, after: EventId, limit: u32) -> Result<Vec<ChatEvent>, ChatLogError> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM chat_events WHERE room = ? AND id > ? ORDER BY id LIMIT ?"))
                .bind(room.as_str())
                .bind(after.to_string())
                .bind(limit)
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
    use crate::testing::fresh_database;

    parley_ports::chat_log_contract!(optional async { fresh_database().await.map(|db| db.chat_log()) });
}
