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
