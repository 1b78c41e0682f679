//! Parley's PostgreSQL storage: users ([`PostgresUserStore`]) and a chat log
//! ([`PostgresChatLog`]) searched through a `tsvector` with a GIN index, for
//! deployments without Elasticsearch.
//!
//! Knows SQL and PostgreSQL; knows nothing of HTTP, hashing or the fan-out.

mod chat_log;
mod errors;
mod user_store;

#[doc(hidden)]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;

pub use chat_log::PostgresChatLog;
pub use user_store::PostgresUserStore;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// How long a request waits for a connection before answering "unavailable":
/// a database that is down makes requests fail fast, not hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// A connected, migrated database; hands out the adapters sharing its pool.
#[derive(Clone)]
pub struct PostgresDatabase {
    pool: PgPool,
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

/// `invalid_catalog_name`: the database in the URL does not exist.
fn is_unknown_database(error: &sqlx::Error) -> bool {
    errors::sqlstate(error).as_deref() == Some("3D000")
}

/// `duplicate_database`: another process created it first.
fn is_duplicate_database(error: &sqlx::Error) -> bool {
    errors::sqlstate(error).as_deref() == Some("42P04")
}

impl PostgresDatabase {
    /// Connects to `url` (`postgres://user:password@host:port/db`), retrying
    /// with backoff while the server is unreachable or still starting, for at
    /// most `deadline`; creates the database if it does not exist; then
    /// applies the embedded migrations.
    pub async fn connect(url: &str, deadline: Duration) -> Result<Self, ConnectError> {
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(200);
        let mut created = false;
        let pool = loop {
            // An attempt may not outlast the deadline (but gets at least a second).
            let left = deadline.saturating_sub(started.elapsed()).max(Duration::from_secs(1));
            let attempt =
                PgPoolOptions::new().max_connections(16).acquire_timeout(ACQUIRE_TIMEOUT.min(left)).connect(url).await;
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
                Err(error) if is_unknown_database(&error) && !created => {
                    // As for MySQL: create the database too, not only the tables.
                    tracing::info!("the database in DATABASE_URL does not exist; creating it");
                    match sqlx::Postgres::create_database(url).await {
                        Ok(()) => {}
                        Err(error) if is_duplicate_database(&error) => {}
                        Err(error) => return Err(ConnectError::Refused(error)),
                    }
                    created = true;
                }
                Err(error) => return Err(ConnectError::Refused(error)),
            }
        };
        MIGRATIONS.run(&pool).await?;
        Ok(Self { pool, keep: None })
    }

    pub fn users(&self) -> PostgresUserStore {
        PostgresUserStore::new(self.pool.clone(), self.keep.clone())
    }

    pub fn chat_log(&self) -> PostgresChatLog {
        PostgresChatLog::new(self.pool.clone(), self.keep.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use parley_ports::UserStore;
    use parley_ports::domain::{Email, PasswordHash, Username};

    use super::{ConnectError, PostgresDatabase};
    use crate::testing::{DropDatabase, admin_connection, database_url, unique_name};

    fn ann() -> parley_ports::NewUserRecord {
        parley_ports::NewUserRecord {
            email: Email::parse("ann@example.com").unwrap(),
            username: Username::parse("ann").unwrap(),
            full_name: None,
            password_hash: PasswordHash::new("$argon2id$x".into()),
            is_active: true,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn a_missing_database_is_created_migrated_and_kept_across_reconnecting() {
        let Some((server, _admin)) = admin_connection().await else { return };
        let name = unique_name("parley_create");
        let _guard = DropDatabase { server: server.clone(), name: name.clone() };
        let url = database_url(&server, &name);

        let first = PostgresDatabase::connect(&url, Duration::from_secs(10)).await.expect("created and migrated");
        let ann = first.users().create(ann()).await.unwrap();
        first.pool.close().await;

        let again = PostgresDatabase::connect(&url, Duration::from_secs(10)).await.expect("migrations applied once");
        assert_eq!(again.users().get(ann.id).await.unwrap(), Some(ann));
        again.pool.close().await;
    }

    #[tokio::test]
    async fn an_unreachable_server_is_retried_until_the_deadline_then_reported() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let started = std::time::Instant::now();
        let result =
            PostgresDatabase::connect(&format!("postgres://postgres@127.0.0.1:{port}/parley"), Duration::from_secs(1))
                .await;
        assert!(matches!(result, Err(ConnectError::Unreachable { .. })), "{:?}", result.err());
        assert!(started.elapsed() < Duration::from_secs(5), "gave up near the deadline");
    }

    #[test]
    fn test_database_urls_keep_the_servers_parameters() {
        assert_eq!(database_url("postgres://u@h:5432", "db"), "postgres://u@h:5432/db");
        assert_eq!(database_url("postgres://u@h:5432/", "db"), "postgres://u@h:5432/db");
        assert_eq!(database_url("postgres://u@h?sslmode=require", "db"), "postgres://u@h/db?sslmode=require");
    }
}
