//! sqlx's errors sorted into the ports' "unavailable" (retry later) and
//! "failed", in one place.

use parley_ports::{ChatLogError, UserStoreError};

/// The server cannot be reached (refused, reset, timed out) or is shedding
/// load; a later retry may work.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Tls(_) => true,
        // Server shutting down (1053), too many connections (1040), lost
        // connection (2013) and gone away (2006).
        sqlx::Error::Database(_) => matches!(server_error_number(error), Some(1053 | 1040 | 2013 | 2006)),
        _ => false,
    }
}

/// The server's own error number (sqlx's `code()` is the SQLSTATE).
pub fn server_error_number(error: &sqlx::Error) -> Option<u16> {
    match error {
        sqlx::Error::Database(db) => db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map(|e| e.number()),
        _ => None,
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
