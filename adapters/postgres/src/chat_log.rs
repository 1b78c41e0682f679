//! `PostgresChatLog`: events in `chat_events`, messages searched through the
//! generated `tsvector` column `search` (GIN-indexed). Messages and queries
//! are cut into words by the same SQL function, `parley_words`: runs of
//! letters and digits, lower-cased, no stemming and no stop words — the same
//! words the other chat logs see. Relevance is `ts_rank`.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use parley_ports::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText, RoomName};
use parley_ports::{ChatLog, ChatLogError, SearchOrder, SearchQuery};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use time::OffsetDateTime;

use crate::errors;

const COLUMNS: &str = "id, room, \"user\", guest, kind, message, ts";

pub struct PostgresChatLog {
    pool: PgPool,
    _keep: Option<Arc<dyn Send + Sync>>,
}

impl PostgresChatLog {
    pub(crate) fn new(pool: PgPool, keep: Option<Arc<dyn Send + Sync>>) -> Self {
        Self { pool, _keep: keep }
    }
}

fn failed(error: impl std::error::Error + Send + Sync + 'static) -> ChatLogError {
    ChatLogError::Failed(Box::new(error))
}

/// PostgreSQL's text cannot hold NUL, which a message from a process of an
/// older version may contain (messages refuse it now): it is stored as
/// U+FFFD, rather than failing the whole batch it came in.
fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') { Cow::Owned(text.replace('\0', "\u{FFFD}")) } else { Cow::Borrowed(text) }
}

fn event(row: &PgRow) -> Result<ChatEvent, ChatLogError> {
    let id: String = row.try_get("id").map_err(failed)?;
    let kind: String = row.try_get("kind").map_err(failed)?;
    Ok(ChatEvent {
        id: id.parse().map_err(failed)?,
        room: RoomName::from_storage(row.try_get("room").map_err(failed)?),
        user: DisplayName::from_storage(row.try_get("user").map_err(failed)?),
        guest: row.try_get("guest").map_err(failed)?,
        kind: EventKind::parse(&kind)
            .ok_or_else(|| ChatLogError::Failed(format!("unknown event kind {kind:?}").into()))?,
        text: MessageText::from_storage(row.try_get("message").map_err(failed)?),
        timestamp: row.try_get("ts").map_err(failed)?,
    })
}

#[async_trait]
impl ChatLog for PostgresChatLog {
    async fn append(&self, events: &[ChatEvent]) -> Result<(), ChatLogError> {
        if events.is_empty() {
            return Ok(());
        }
        // A column per array: one statement (prepared once) whatever the
        // batch's size; ON CONFLICT makes a retried batch a no-op.
        let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
        let rooms: Vec<&str> = events.iter().map(|e| e.room.as_str()).collect();
        let users: Vec<&str> = events.iter().map(|e| e.user.as_str()).collect();
        let guests: Vec<bool> = events.iter().map(|e| e.guest).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let messages: Vec<Cow<'_, str>> = events.iter().map(|e| storable(e.text.as_str())).collect();
        let messages: Vec<&str> = messages.iter().map(AsRef::as_ref).collect();
        let timestamps: Vec<OffsetDateTime> = events.iter().map(|e| e.timestamp).collect();
        sqlx::query(
            "INSERT INTO chat_events (id, room, \"user\", guest, kind, message, ts) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::text[], $6::text[], \
             $7::timestamptz[]) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(ids)
        .bind(rooms)
        .bind(users)
        .bind(guests)
        .bind(kinds)
        .bind(messages)
        .bind(timestamps)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(errors::chat_log)
    }

    async fn search(&self, query: &SearchQuery) -> Result<Vec<ChatEvent>, ChatLogError> {
        // No letter or digit, no word: nothing can match (and PostgreSQL
        // would answer an empty query with a notice).
        if !query.text.chars().any(char::is_alphanumeric) {
            return Ok(Vec::new());
        }
        let order = match query.order {
            SearchOrder::Relevance => "ts_rank(search, words) DESC, id DESC",
            SearchOrder::Newest => "id DESC",
        };
        // The query's words joined by `|` (any of them): letters and digits
        // only, so nothing typed is tsquery syntax.
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM chat_events, to_tsquery('simple', replace(parley_words($2), ' ', ' | ')) AS words \
             WHERE room = $1 AND kind = 'message' AND search @@ words \
             ORDER BY {order} LIMIT $3 OFFSET $4"
        ))
        .bind(query.room.as_str())
        .bind(storable(&query.text).as_ref())
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
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM chat_events WHERE room = $1 AND ($2::text IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(room.as_str())
        .bind(before.map(|id| id.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(errors::chat_log)?;
        rows.iter().map(event).collect()
    }

    async fn since(&self, room: &RoomName, after: EventId, limit: u32) -> Result<Vec<ChatEvent>, ChatLogError> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM chat_events WHERE room = $1 AND id > $2 ORDER BY id LIMIT $3"))
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
    use crate::testing::fresh_database;

    parley_ports::chat_log_contract!(optional async { fresh_database().await.map(|db| db.chat_log()) });
}

#[cfg(test)]
mod postgres {
    use parley_ports::domain::{ChatEvent, DisplayName, EventId, EventKind, MessageText, RoomName};
    use parley_ports::{ChatLog, SearchOrder, SearchQuery};

    use crate::testing::fresh_database;

    fn say(n: u128, text: &str) -> ChatEvent {
        ChatEvent {
            id: EventId::from_u128((1 << 90) + n),
            room: RoomName::parse("general").unwrap(),
            user: DisplayName::parse("ann").unwrap(),
            guest: false,
            kind: EventKind::Message,
            // Unchecked: messages refuse NUL now, but a log may still be
            // handed one (an event from a process of an older version).
            text: MessageText::from_storage(text.to_owned()),
            timestamp: time::macros::datetime!(2026-11-26 12:00:00 UTC),
        }
    }

    fn query(text: &str) -> SearchQuery {
        SearchQuery {
            room: RoomName::parse("general").unwrap(),
            text: text.into(),
            order: SearchOrder::Relevance,
            offset: 0,
            limit: 10,
        }
    }

    #[tokio::test]
    async fn a_message_with_nul_is_kept_with_its_batch() {
        let Some(database) = fresh_database().await else { return };
        let log = database.chat_log();
        log.append(&[say(1, "before"), say(2, "a\0b"), say(3, "after")]).await.unwrap();
        let history = log.history(&RoomName::parse("general").unwrap(), None, 10).await.unwrap();
        let texts: Vec<&str> = history.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["after", "a\u{FFFD}b", "before"]);
        assert_eq!(log.search(&query("b\0")).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn punctuation_splits_words_and_is_never_query_syntax() {
        let Some(database) = fresh_database().await else { return };
        let log = database.chat_log();
        log.append(&[say(1, "mail ann@example.com or see https://example.org/e-mail")]).await.unwrap();
        for found in ["ANN", "example", "ann@example.com", "e-mail", "org"] {
            assert_eq!(log.search(&query(found)).await.unwrap().len(), 1, "{found:?}");
        }
        for nothing in ["!", "'", "a & !b", "(", ":*", "<->", "\\"] {
            assert!(log.search(&query(nothing)).await.unwrap().is_empty(), "{nothing:?}");
        }
    }
}
