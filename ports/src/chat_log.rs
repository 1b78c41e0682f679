//! The `ChatLog` port: what was said in each room, searchable, pageable.
//!
//! Knows events and queries; knows nothing of indexes, SQL or HTTP.

use async_trait::async_trait;

use crate::BoxError;
use crate::domain::{ChatEvent, EventId, RoomName};

/// How search results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchOrder {
    /// Best match first (the original app's order); ties newest first.
    #[default]
    Relevance,
    /// Newest first, regardless of how well each matched.
    Newest,
}

/// A text search in one room's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    pub room: RoomName,
    /// Words to look for; a message matches if it contains any of them, ignoring case.
    pub text: String,
    pub order: SearchOrder,
    /// Results to skip (paging).
    pub offset: u32,
    pub limit: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatLogError {
    /// The log's backing service cannot be reached; retrying later may work.
    #[error("chat log unavailable: {0}")]
    Unavailable(#[source] BoxError),
    #[error("chat log failed: {0}")]
    Failed(#[source] BoxError),
}

#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ChatLog: Send + Sync {
    /// Stores events. Idempotent by event id: appending an event again (a retry)
    /// changes nothing, so a failed batch can always be sent again whole.
    ///
    /// # Errors
    /// [`ChatLogError::Unavailable`] when the backing service cannot be
    /// reached (the writer retries the batch until it can);
    /// [`ChatLogError::Failed`] when it refuses the batch (the writer tries a
    /// few times, then gives the batch up, naming its events in the log).
    async fn append(&self, events: &[ChatEvent]) -> Result<(), ChatLogError>;

    /// Messages (never joins or leaves) of the query's room containing any of
    /// its words, ignoring case, ordered as asked, paged by offset and limit.
    ///
    /// # Errors
    /// [`ChatLogError::Unavailable`] when the backing service cannot be
    /// reached; [`ChatLogError::Failed`] for anything else (a stored row that
    /// cannot be read back, a query the backend refuses).
    async fn search(&self, query: &SearchQuery) -> Result<Vec<ChatEvent>, ChatLogError>;

    /// A room's events of every kind, newest first: the latest `limit`, or
    /// with `before`, the `limit` events just older than that id (a cursor).
    ///
    /// # Errors
    /// As [`ChatLog::search`].
    async fn history(
        &self,
        room: &RoomName,
        before: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<ChatEvent>, ChatLogError>;

    /// A room's events newer than `after`, oldest first, at most `limit`: what
    /// a client that saw `after` has missed.
    ///
    /// # Errors
    /// As [`ChatLog::search`].
    async fn since(&self, room: &RoomName, after: EventId, limit: u32) -> Result<Vec<ChatEvent>, ChatLogError>;

    /// Whether the log answers now (for readiness checks).
    ///
    /// # Errors
    /// [`ChatLogError::Unavailable`] when it does not.
    async fn ping(&self) -> Result<(), ChatLogError>;
}
