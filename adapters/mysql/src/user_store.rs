//! `MysqlUserStore`: accounts in the original app's `users` table. Its
//! case-insensitive collation makes e-mail and username uniqueness, login
//! and search ignore case in any script.

use std::sync::Arc;

use async_trait::async_trait;
use parley_ports::domain::{Email, FullName, PasswordHash, User, UserId, Username};
use parley_ports::{NewUserRecord, UserChanges, UserQuery, UserRecord, UserStore, UserStoreError};
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlPool, Row};
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::errors;

const COLUMNS: &str = "id, username, email, full_name, hashed_password, is_active, is_admin, created_at, updated_at";

pub struct MysqlUserStore {
    pool: MySqlPool,
    _keep: Option<Arc<dyn Send + Sync>>,
}

impl MysqlUserStore {
    pub(crate) fn new(pool: MySqlPool, keep: Option<Arc<dyn Send + Sync>>) -> Self {
        Self { pool, _keep: keep }
    }

    /// `EmailTaken` or `UsernameTaken` if another user (not `except`) has the
    /// value; the e-mail is checked first, as the original did.
    async fn check_unique(
        &self,
        email: Option<&Email>,
        username: Option<&Username>,
        except: i64,
    ) -> Result<(), UserStoreError> {
        if let Some(email) = email {
            let taken = sqlx::query("SELECT 1 FROM users WHERE email = ? AND id <> ?")
                .bind(email.as_str())
                .bind(except)
                .fetch_optional(&self.pool)
                .await
                .map_err(errors::user_store)?;
            if taken.is_some() {
                return Err(UserStoreError::EmailTaken);
            }
        }
        if let Some(username) = username {
            let taken = sqlx::query("SELECT 1 FROM users WHERE username = ? AND id <> ?")
                .bind(username.as_str())
                .bind(except)
                .fetch_optional(&self.pool)
                .await
                .map_err(errors::user_store)?;
            if taken.is_some() {
                return Err(UserStoreError::UsernameTaken);
            }
        }
        Ok(())
    }

    async fn fetch(&self, id: i64) -> Result<Option<UserRecord>, UserStoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(errors::user_store)?;
        row.map(|row| record(&row)).transpose()
    }
}

/// A duplicate key that slipped past the check (a concurrent write), named
/// by its index.
fn unique_violation(error: sqlx::Error) -> UserStoreError {
    if let sqlx::Error::Database(db) = &error
        && db.is_unique_violation()
    {
        if db.message().contains("email") {
            return UserStoreError::EmailTaken;
        }
        if db.message().contains("username") {
            return UserStoreError::UsernameTaken;
        }
    }
    errors::user_store(error)
}

/// DATETIME columns hold UTC.
fn utc(at: OffsetDateTime) -> PrimitiveDateTime {
    let at = at.to_offset(UtcOffset::UTC);
    PrimitiveDateTime::new(at.date(), at.time())
}

fn record(row: &MySqlRow) -> Result<UserRecord, UserStoreError> {
    let read = |e: sqlx::Error| UserStoreError::Failed(Box::new(e));
    let created: PrimitiveDateTime = row.try_get("created_at").map_err(read)?;
    let updated: Option<PrimitiveDateTime> = row.try_get("updated_at").map_err(read)?;
    let user = User {
        id: UserId::new(row.try_get::<i64, _>("id").map_err(read)?),
        email: Email::from_storage(row.try_get("email").map_err(read)?),
        username: Username::from_storage(row.try_get("username").map_err(read)?),
        full_name: row.try_get::<Option<String>, _>("full_name").map_err(read)?.map(FullName::from_storage),
        is_active: row.try_get("is_active").map_err(read)?,
        is_admin: row.try_get("is_admin").map_err(read)?,
        created_at: created.assume_utc(),
        updated_at: updated.map(PrimitiveDateTime::assume_utc),
    };
    Ok(UserRecord { user, password_hash: PasswordHash::new(row.try_get("hashed_password").map_err(read)?) })
}

#[async_trait]
impl UserStore for MysqlUserStore {
    async fn create(&self, new: NewUserRecord) -> Result<User, UserStoreError> {
        self.check_unique(Some(&new.email), Some(&new.username), 0).await?;
        // One statement: "the first user is an administrator" cannot race.
        let done = sqlx::query(
            "INSERT INTO users (username, email, full_name, hashed_password, is_active, is_admin, created_at) \
             SELECT ?, ?, ?, ?, ?, NOT EXISTS (SELECT 1 FROM users), ?",
        )
        .bind(new.username.as_str())
        .bind(new.email.as_str())
        .bind(new.full_name.as_ref().map(FullName::as_str))
        .bind(new.password_hash.as_str())
        .bind(new.is_active)
        .bind(utc(new.created_at))
        .execute(&self.pool)
        .await
        .map_err(unique_violation)?;
        let id = i64::try_from(done.last_insert_id()).map_err(|e| UserStoreError::Failed(Box::new(e)))?;
        let created = self.fetch(id).await?.ok_or_else(|| UserStoreError::Failed("the new user vanished".into()))?;
        Ok(created.user)
    }

    async fn get(&self, id: UserId) -> Result<Option<User>, UserStoreError> {
        Ok(self.fetch(id.get()).await?.map(|r| r.user))
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, UserStoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM users WHERE email = ? OR username = ? ORDER BY email = ? DESC LIMIT 1"
        ))
        .bind(login)
        .bind(login)
        .bind(login)
        .fetch_optional(&self.pool)
        .await
        .map_err(errors::user_store)?;
        row.map(|row| record(&row)).transpose()
    }

    async fn list(&self, query: &UserQuery) -> Result<Vec<User>, UserStoreError> {
        // LOCATE follows the column's collation: a case-insensitive substring,
        // with no LIKE wildcards to escape.
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM users \
             WHERE (? IS NULL OR LOCATE(?, username) > 0 OR LOCATE(?, email) > 0 OR LOCATE(?, COALESCE(full_name, '')) > 0) \
               AND (? IS NULL OR is_active = ?) \
             ORDER BY id LIMIT ? OFFSET ?"
        ))
        .bind(query.search.as_deref())
        .bind(query.search.as_deref())
        .bind(query.search.as_deref())
        .bind(query.search.as_deref())
        .bind(query.is_active)
        .bind(query.is_active)
        .bind(u64::from(query.limit))
        .bind(query.skip)
        .fetch_all(&self.pool)
        .await
        .map_err(errors::user_store)?;
        rows.iter().map(|row| record(row).map(|r| r.user)).collect()
    }

    async fn update(&self, id: UserId, changes: UserChanges) -> Result<User, UserStoreError> {
        self.check_unique(changes.email.as_ref(), changes.username.as_ref(), id.get()).await?;
        let (set_full_name, full_name) = match &changes.full_name {
            None => (false, None),
            Some(name) => (true, name.as_ref().map(FullName::as_str)),
        };
        let done = sqlx::query(
            "UPDATE users SET email = COALESCE(?, email), username = COALESCE(?, username), \
               full_name = IF(?, ?, full_name), hashed_password = COALESCE(?, hashed_password), \
               is_active = COALESCE(?, is_active), is_admin = COALESCE(?, is_admin), updated_at = ? \
             WHERE id = ?",
        )
        .bind(changes.email.as_ref().map(Email::as_str))
        .bind(changes.username.as_ref().map(Username::as_str))
        .bind(set_full_name)
        .bind(full_name)
        .bind(changes.password_hash.as_ref().map(PasswordHash::as_str))
        .bind(changes.is_active)
        .bind(changes.is_admin)
        .bind(utc(changes.updated_at))
        .bind(id.get())
        .execute(&self.pool)
        .await
        .map_err(unique_violation)?;
        let _ = done;
        self.fetch(id.get()).await?.map(|r| r.user).ok_or(UserStoreError::NotFound)
    }

    async fn delete(&self, id: UserId) -> Result<(), UserStoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id.get())
            .execute(&self.pool)
            .await
            .map_err(errors::user_store)?;
        if done.rows_affected() == 0 { Err(UserStoreError::NotFound) } else { Ok(()) }
    }

    async fn ping(&self) -> Result<(), UserStoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop).map_err(errors::user_store)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::fresh_database;

    parley_ports::user_store_contract!(optional async { fresh_database().await.map(|db| db.users()) });
}

#[cfg(test)]
mod adoption {
    use std::time::Duration;

    use parley_ports::UserStore;
    use sqlx::Connection;

    use crate::MysqlDatabase;
    use crate::testing::empty_database;

    /// The table as the original app's SQLAlchemy model created it, on a
    /// latin1 server default, holding a user with a passlib bcrypt hash.
    const ORIGINAL_TABLE: &str = "CREATE TABLE users (
        id INTEGER NOT NULL AUTO_INCREMENT, username VARCHAR(50), email VARCHAR(100),
        hashed_password VARCHAR(255), full_name VARCHAR(100), is_active BOOL, is_admin BOOL,
        created_at DATETIME DEFAULT now(), updated_at DATETIME,
        PRIMARY KEY (id), UNIQUE INDEX ix_users_username (username), UNIQUE INDEX ix_users_email (email), INDEX ix_users_id (id)
    )";

    #[tokio::test]
    async fn the_original_apps_table_is_adopted_in_place_with_its_users() {
        let Some((url, _guard)) = empty_database().await else { return };
        let mut connection = sqlx::MySqlConnection::connect(&url).await.unwrap();
        sqlx::query(ORIGINAL_TABLE).execute(&mut connection).await.unwrap();
        sqlx::query(
            "INSERT INTO users (username, email, hashed_password, full_name, is_active, is_admin) \
             VALUES ('legacy', 'legacy@example.com', '$2b$12$abcdefghijklmnopqrstuuBVtuhOyJmCvDG8wKMJgyfGmSJ4J7lde', 'Old Timer', 1, 1)",
        )
        .execute(&mut connection)
        .await
        .unwrap();

        let database = MysqlDatabase::connect(&url, Duration::from_secs(10)).await.unwrap();
        let users = database.users();
        let found = users.find_by_login("LEGACY@example.com").await.unwrap().expect("the original's user is there");
        assert_eq!((found.user.username.as_str(), found.user.is_admin), ("legacy", true));
        assert!(found.password_hash.as_str().starts_with("$2b$12$"), "its bcrypt hash is kept for the next login");

        let charset: String = sqlx::query_scalar(
            "SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users' AND COLUMN_NAME = 'full_name'",
        )
        .fetch_one(&mut connection)
        .await
        .unwrap();
        assert_eq!(charset, "utf8mb4", "converted in place so names in any script fit");
        let new = parley_ports::NewUserRecord {
            email: parley_ports::domain::Email::parse("zoë@example.com").unwrap(),
            username: parley_ports::domain::Username::parse("zoe").unwrap(),
            full_name: Some(parley_ports::domain::FullName::parse("Zoë 日本").unwrap()),
            password_hash: parley_ports::domain::PasswordHash::new("$argon2id$x".into()),
            is_active: true,
            created_at: time::OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        let zoe = users.create(new).await.unwrap();
        assert!(!zoe.is_admin, "the adopted table already had its first user");
        assert_eq!(zoe.full_name.unwrap().as_str(), "Zoë 日本");
    }
}
