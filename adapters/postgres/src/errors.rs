//! sqlx's errors sorted into the ports' "unavailable" (retry later) and
//! "failed", in one place, by PostgreSQL's SQLSTATE codes.

use std::borrow::Cow;

use parley_ports::{ChatLogError, UserStoreError};

/// The server cannot be reached (refused, reset, timed out), is starting or
/// shutting down, or has no connection to spare; a later retry may work.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Tls(_) => true,
        // Class 08: connection exceptions; 53300: too many connections;
        // 57P01..57P03: shutting down, crashed, still starting up.
        sqlx::Error::Database(_) => sqlstate(error)
            .is_some_and(|code| code.starts_with("08") || matches!(&*code, "53300" | "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// The server's SQLSTATE, for errors the server reported.
pub fn sqlstate(error: &sqlx::Error) -> Option<Cow<'_, str>> {
    match error {
        sqlx::Error::Database(db) => db.code(),
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
