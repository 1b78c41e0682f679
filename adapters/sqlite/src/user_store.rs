//! `SqliteUserStore`: accounts in the `users` table.

use async_trait::async_trait;
use parley_ports::domain::{Email, FullName, PasswordHash, User, UserId, Username};
use parley_ports::{NewUserRecord, UserChanges, UserQuery, UserRecord, UserStore, UserStoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

use crate::errors;

const COLUMNS: &str = "id, username, email, full_name, hashed_password, is_active, is_admin, created_at, updated_at";

pub struct SqliteUserStore {
    pool: SqlitePool,
}

impl SqliteUserStore {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// `EmailTaken` or `UsernameTaken` if another user (not `except`) has
    /// the value; the e-mail is checked first, as the original did.
    async fn check_unique(
        &self,
        email: Option<&Email>,
        username: Option<&Username>,
        except: i64,
    ) -> Result<(), UserStoreError> {
        if let Some(email) = email {
            let taken = sqlx::query("SELECT 1 FROM users WHERE email_key = ? AND id <> ?")
                .bind(key(email.as_str()))
                .bind(except)
                .fetch_optional(&self.pool)
                .await
                .map_err(errors::user_store)?;
            if taken.is_some() {
                return Err(UserStoreError::EmailTaken);
            }
        }
        if let Some(username) = username {
            let taken = sqlx::query("SELECT 1 FROM users WHERE username_key = ? AND id <> ?")
                .bind(key(username.as_str()))
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
}

/// The case-folded form uniqueness and search compare.
fn key(text: &str) -> String {
    text.to_lowercase()
}

/// A unique-index violation that slipped past the check (a concurrent
/// write), named by its column.
fn unique_violation(error: sqlx::Error) -> UserStoreError {
    if let sqlx::Error::Database(db) = &error
        && db.is_unique_violation()
    {
        if db.message().contains("email_key") {
            return UserStoreError::EmailTaken;
        }
        if db.message().contains("username_key") {
            return UserStoreError::UsernameTaken;
        }
    }
    errors::user_store(error)
}

fn at(seconds: i64) -> Result<OffsetDateTime, UserStoreError> {
    OffsetDateTime::from_unix_timestamp(seconds).map_err(|e| UserStoreError::Failed(Box::new(e)))
}

fn record(row: &SqliteRow) -> Result<UserRecord, UserStoreError> {
    let read = |e: sqlx::Error| UserStoreError::Failed(Box::new(e));
    let updated: Option<i64> = row.try_get("updated_at").map_err(read)?;
    let user = User {
        id: UserId::new(row.try_get("id").map_err(read)?),
        email: Email::from_storage(row.try_get("email").map_err(read)?),
        username: Username::from_storage(row.try_get("username").map_err(read)?),
        full_name: row.try_get::<Option<String>, _>("full_name").map_err(read)?.map(FullName::from_storage),
        is_active: row.try_get("is_active").map_err(read)?,
        is_admin: row.try_get("is_admin").map_err(read)?,
        created_at: at(row.try_get("created_at").map_err(read)?)?,
        updated_at: updated.map(at).transpose()?,
    };
    Ok(UserRecord { user, password_hash: PasswordHash::new(row.try_get("hashed_password").map_err(read)?) })
}

#[async_trait]
impl UserStore for SqliteUserStore {
    async fn create(&self, new: NewUserRecord) -> Result<User, UserStoreError> {
        self.check_unique(Some(&new.email), Some(&new.username), 0).await?;
        // One statement: "the first user is an administrator" cannot race.
        let row = sqlx::query(&format!(
            "INSERT INTO users (username, username_key, email, email_key, full_name, full_name_key, hashed_password, \
             is_active, is_admin, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, NOT EXISTS (SELECT 1 FROM users), ?) RETURNING {COLUMNS}"
        ))
        .bind(new.username.as_str())
        .bind(key(new.username.as_str()))
        .bind(new.email.as_str())
        .bind(key(new.email.as_str()))
        .bind(new.full_name.as_ref().map(FullName::as_str))
        .bind(new.full_name.as_ref().map(|n| key(n.as_str())))
        .bind(new.password_hash.as_str())
        .bind(new.is_active)
        .bind(new.created_at.unix_timestamp())
        .fetch_one(&self.pool)
        .await
        .map_err(unique_violation)?;
        Ok(record(&row)?.user)
    }

    async fn get(&self, id: UserId) -> Result<Option<User>, UserStoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = ?"))
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await
            .map_err(errors::user_store)?;
        row.map(|row| record(&row).map(|r| r.user)).transpose()
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, UserStoreError> {
        let login = key(login);
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM users WHERE email_key = ?1 OR username_key = ?1 ORDER BY email_key = ?1 DESC LIMIT 1"
        ))
        .bind(login)
        .fetch_optional(&self.pool)
        .await
        .map_err(errors::user_store)?;
        row.map(|row| record(&row)).transpose()
    }

    async fn list(&self, query: &UserQuery) -> Result<Vec<User>, UserStoreError> {
        let needle = query.search.as_deref().map(key);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM users \
             WHERE (?1 IS NULL OR instr(username_key, ?1) > 0 OR instr(email_key, ?1) > 0 OR instr(coalesce(full_name_key, ''), ?1) > 0) \
               AND (?2 IS NULL OR is_active = ?2) \
             ORDER BY id LIMIT ?3 OFFSET ?4"
        ))
        .bind(needle)
        .bind(query.is_active)
        .bind(i64::from(query.limit))
        .bind(i64::try_from(query.skip).unwrap_or(i64::MAX))
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
        let row = sqlx::query(&format!(
            "UPDATE users SET \
               email = coalesce(?2, email), email_key = coalesce(?3, email_key), \
               username = coalesce(?4, username), username_key = coalesce(?5, username_key), \
               full_name = CASE WHEN ?6 THEN ?7 ELSE full_name END, \
               full_name_key = CASE WHEN ?6 THEN ?8 ELSE full_name_key END, \
               hashed_password = coalesce(?9, hashed_password), \
               is_active = coalesce(?10, is_active), is_admin = coalesce(?11, is_admin), updated_at = ?12 \
             WHERE id = ?1 RETURNING {COLUMNS}"
        ))
        .bind(id.get())
        .bind(changes.email.as_ref().map(Email::as_str))
        .bind(changes.email.as_ref().map(|e| key(e.as_str())))
        .bind(changes.username.as_ref().map(Username::as_str))
        .bind(changes.username.as_ref().map(|u| key(u.as_str())))
        .bind(set_full_name)
        .bind(full_name)
        .bind(full_name.map(key))
        .bind(changes.password_hash.as_ref().map(PasswordHash::as_str))
        .bind(changes.is_active)
        .bind(changes.is_admin)
        .bind(changes.updated_at.unix_timestamp())
        .fetch_optional(&self.pool)
        .await
        .map_err(unique_violation)?;
        match row {
            Some(row) => Ok(record(&row)?.user),
            None => Err(UserStoreError::NotFound),
        }
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
    use crate::SqliteDatabase;

    parley_ports::user_store_contract!(async { SqliteDatabase::open_in_memory().await.unwrap().users() });
}
