//! Throwaway databases for tests: each named uniquely, dropped when the last
//! adapter using it is dropped. Not for production use.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::Connection;

use crate::PostgresDatabase;

/// The server tests use: `PARLEY_TEST_POSTGRES_URL` (no database in it), or
/// the user `postgres` without a password on 127.0.0.1:5432 (this project's
/// machines).
pub fn server_url() -> String {
    std::env::var("PARLEY_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// The URL of database `name` on `server`, keeping the server's parameters
/// (`?sslmode=…`).
pub fn database_url(server: &str, name: &str) -> String {
    match server.split_once('?') {
        Some((location, parameters)) => format!("{}/{name}?{parameters}", location.trim_end_matches('/')),
        None => format!("{}/{name}", server.trim_end_matches('/')),
    }
}

/// A database name no other test, here or in another process, uses.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Drops database `name` on `server` when dropped, closing whatever
/// connections are still open to it.
pub struct DropDatabase {
    pub server: String,
    pub name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs outside any async context we could borrow: use a thread
        // with a small runtime of its own, and wait for it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut connection = sqlx::PgConnection::connect(&server).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut connection)
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}

/// A connection to the test server, or `None` (with the reason printed)
/// when there is none — which under `CI=true` is a failure instead.
pub async fn admin_connection() -> Option<(String, sqlx::PgConnection)> {
    let server = server_url();
    match sqlx::PgConnection::connect(&server).await {
        Ok(connection) => Some((server, connection)),
        Err(error) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but the PostgreSQL test server at {server} is unreachable: {error}");
            }
            eprintln!("skipped: no PostgreSQL test server at {server} ({error}); set PARLEY_TEST_POSTGRES_URL");
            None
        }
    }
}

/// A fresh, migrated database on the test server, or `None` as for
/// [`admin_connection`].
pub async fn fresh_database() -> Option<PostgresDatabase> {
    let (server, mut admin) = admin_connection().await?;
    let name = unique_name("parley_test");
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
    let guard = DropDatabase { server: server.clone(), name: name.clone() };
    let mut database = PostgresDatabase::connect(&database_url(&server, &name), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("connecting to the test database {name}: {e}"));
    database.keep = Some(Arc::new(guard));
    Some(database)
}
