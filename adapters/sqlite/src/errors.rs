//! sqlx's errors, sorted into the ports' "unavailable" (retry later) and
//! "failed" (a bug or corruption), in one place.

use parley_ports::{ChatLogError, UserStoreError};

/// Whether the error means the database cannot be reached or is busy, so
/// that a later retry may work.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6): another writer holds the lock.
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("5" | "6" | "261" | "517")),
        _ => false,
    }
}

pub fn user_store(error: sqlx::Error) -> UserStoreError {
    if is_unavailable(&error) {
        UserStoreError::Unavailable(Box::new(error))
    } else {
        UserStoreError::Failed(Box::new(error))
    }
}

pub fn chat_log(error: sqlx::Error) -> ChatLogError {
    if is_unavailable(&error) {
        ChatLogError::Unavailable(Box::new(error))
    } else {
        ChatLogError::Failed(Box::new(error))
    }
}
