//! Parley's MySQL / MariaDB storage (MySQL 8, MariaDB 10.11+): users
//! ([`MysqlUserStore`]) in the original app's own `users` table, and a chat
//! log ([`MysqlChatLog`]) with FULLTEXT search for deployments without
//! Elasticsearch.
//!
//! Knows SQL and MySQL; knows nothing of HTTP, hashing or the fan-out.

mod chat_log;
mod errors;
mod user_store;

#[doc(hidden)]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use sqlx::MySqlPool;
use sqlx::migrate::MigrateDatabase;
use sqlx::mysql::MySqlPoolOptions;

pub use chat_log::MysqlChatLog;
pub use user_store::MysqlUserStore;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/mysql");

/// How long a request waits for a connection before answering "unavailable":
/// a database that is down makes requests fail fast, not hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// A connected, migrated database; hands out the adapters sharing its pool.
#[derive(Clone)]
pub struct MysqlDatabase {
    pool: MySqlPool,
    /// Whatever must outlive every adapter of this database (tests: the
    /// guard that drops their throwaway database).
    keep: Option<Arc<dyn Send + Sync>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot reach the database within {waited:?}: {last}")]
    Unreachable { waited: Duration, last: sqlx::Error },
    #[error("{0}")]
    Refused(sqlx::Error),
    #[error("migrating: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// MySQL's "Unknown database" (1049).
fn is_unknown_database(error: &sqlx::Error) -> bool {
    errors::server_error_number(error) == Some(1049)
}

impl MysqlDatabase {
    /// Connects to `url` (`mysql://user:password@host:port/db`), retrying with
    /// backoff while the server is unreachable, for at most `deadline`; then
    /// applies the embedded migrations.
    pub async fn connect(url: &str, deadline: Duration) -> Result<Self, ConnectError> {
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(200);
        let pool = loop {
            // An attempt may not outlast the deadline (but gets at least a second).
            let left = deadline.saturating_sub(started.elapsed()).max(Duration::from_secs(1));
            let attempt = MySqlPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(ACQUIRE_TIMEOUT.min(left))
                .connect(url)
                .await;
            match attempt {
                Ok(pool) => break pool,
                Err(error) if errors::is_unavailable(&error) => {
                    if started.elapsed() + backoff > deadline {
                        return Err(ConnectError::Unreachable { waited: started.elapsed(), last: error });
                    }
                    tracing::warn!(%error, retry_in = ?backoff, "database unreachable; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(error) if is_unknown_database(&error) => {
                    // Like the original, which created its table at startup,
                    // go one step further and create the database too.
                    tracing::info!("the database in DATABASE_URL does not exist; creating it");
                    sqlx::MySql::create_database(url).await.map_err(ConnectError::Refused)?;
                }
                Err(error) => return Err(ConnectError::Refused(error)),
            }
        };
        MIGRATIONS.run(&pool).await?;
        Ok(Self { pool, keep: None })
    }

    pub fn users(&self) -> MysqlUserStore {
        MysqlUserStore::new(self.pool.clone(), self.keep.clone())
    }

    pub fn chat_log(&self) -> MysqlChatLog {
        MysqlChatLog::new(self.pool.clone(), self.keep.clone())
    }
}
