//! Throwaway databases for tests: each named uniquely, dropped when the last
//! adapter using it is dropped. Not for production use.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::Connection;

use crate::MysqlDatabase;

/// The server tests use: `PARLEY_TEST_MYSQL_URL`, or root without a password
/// on 127.0.0.1:3306 (this project's machines).
pub fn server_url() -> String {
    std::env::var("PARLEY_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}

struct DropDatabase {
    server: String,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs outside any async context we could borrow: use a thread
        // with a small runtime of its own, and wait for it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut connection = sqlx::MySqlConnection::connect(&server).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`")).execute(&mut connection).await.ok()
            })
        });
        let _ = dropped.join();
    }
}

/// A fresh, migrated database on the test server, or `None` (with the
/// reason printed) when there is no server — which under `CI=true` is a
/// failure instead.
pub async fn fresh_database() -> Option<MysqlDatabase> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let server = server_url();
    let mut admin = match sqlx::MySqlConnection::connect(&server).await {
        Ok(connection) => connection,
        Err(error) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but the MySQL/MariaDB test server at {server} is unreachable: {error}");
            }
            eprintln!("skipped: no MySQL/MariaDB test server at {server} ({error}); set PARLEY_TEST_MYSQL_URL");
            return None;
        }
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name = format!("parley_test_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    sqlx::query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
    let guard = DropDatabase { server: server.clone(), name: name.clone() };
    let mut database = MysqlDatabase::connect(&format!("{server}/{name}"), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("connecting to the test database {name}: {e}"));
    database.keep = Some(Arc::new(guard));
    Some(database)
}

/// An empty database on the test server, not yet migrated, with the guard
/// that drops it; `None` as for [`fresh_database`].
pub async fn empty_database() -> Option<(String, Arc<dyn Send + Sync>)> {
    let server = server_url();
    let mut admin = match sqlx::MySqlConnection::connect(&server).await {
        Ok(connection) => connection,
        Err(error) => {
            assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "CI=true but no MySQL at {server}: {error}");
            eprintln!("skipped: no MySQL/MariaDB test server at {server} ({error})");
            return None;
        }
    };
    let name = format!(
        "parley_adopt_{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
    );
    sqlx::query(&format!("CREATE DATABASE `{name}` CHARACTER SET latin1")).execute(&mut admin).await.ok()?;
    let guard: Arc<dyn Send + Sync> = Arc::new(DropDatabase { server: server.clone(), name: name.clone() });
    Some((format!("{server}/{name}"), guard))
}
