//! Parley's embedded storage: users ([`SqliteUserStore`]) and the chat log
//! ([`SqliteChatLog`], searched with FTS5) in one SQLite file, in WAL mode.
//! The default when no `DATABASE_URL` is set: nothing to install or run.
//!
//! Knows SQL and SQLite; knows nothing of HTTP, hashing or the fan-out.

mod chat_log;
mod errors;
mod user_store;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use chat_log::SqliteChatLog;
pub use user_store::SqliteUserStore;

/// The migrations, embedded in the binary and applied at open.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// An open database; hands out the port adapters that share its pool.
#[derive(Clone)]
pub struct SqliteDatabase {
    pool: SqlitePool,
}

#[derive(Debug, thiserror::Error)]
#[error("SQLite: {0}")]
pub struct OpenError(#[from] sqlx::Error);

impl From<sqlx::migrate::MigrateError> for OpenError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        OpenError(sqlx::Error::Migrate(Box::new(error)))
    }
}

impl SqliteDatabase {
    /// Opens (creating if needed) the database file at `path` and migrates it.
    pub async fn open_file(path: &Path) -> Result<Self, OpenError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        // No liveness check on acquire: an embedded file has no connection
        // to lose, and the check cost a round trip to the connection's
        // worker thread before every query (measured on `/users/me`).
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    /// A database that lives in memory until dropped (one connection: each
    /// SQLite connection to `:memory:` is a database of its own).
    pub async fn open_in_memory() -> Result<Self, OpenError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    async fn migrated(pool: SqlitePool) -> Result<Self, OpenError> {
        MIGRATIONS.run(&pool).await?;
        Ok(Self { pool })
    }

    pub fn users(&self) -> SqliteUserStore {
        SqliteUserStore::new(self.pool.clone())
    }

    pub fn chat_log(&self) -> SqliteChatLog {
        SqliteChatLog::new(self.pool.clone())
    }
}
