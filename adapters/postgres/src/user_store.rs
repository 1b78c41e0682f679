//! `PostgresUserStore`: accounts in the `users` table. E-mail and username
//! uniqueness, login and search compare through `parley_fold` (Unicode lower
//! case), so they ignore case in any script.

use std::sync::Arc;

use async_trait::async_trait;
use parley_ports::domain::{Email, FullName, PasswordHash, User, UserId, Username};
use parley_ports::{NewUserRecord, UserChanges, UserQuery, UserRecord, UserStore, UserStoreError};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use crate::errors;

const COLUMNS: &str = "id, username, email, full_name, hashed_password, is_active, is_admin, created_at, updated_at";

pub struct PostgresUserStore {
    pool: PgPool,
    _keep: Option<Arc<dyn Send + Sync>>,
}

impl PostgresUserStore {
    pub(crate) fn new(pool: PgPool, keep: Option<Arc<dyn Send + Sync>>) -> Self {
        Self { pool, _keep: keep }
    }
}

/// `EmailTaken` or `UsernameTaken` if another user (not `except`) has the
/// value; the e-mail is reported first, as the original did.
async fn check_unique(
    connection: &mut PgConnection,
    email: Option<&Email>,
    username: Option<&Username>,
    except: i64,
) -> Result<(), UserStoreError> {
    if email.is_none() && username.is_none() {
        return Ok(());
    }
    let row = sqlx::query(
        "SELECT bool_or(parley_fold(email) = parley_fold($1)) AS email, \
                bool_or(parley_fold(username) = parley_fold($2)) AS username \
         FROM users \
         WHERE id <> $3 AND (parley_fold(email) = parley_fold($1) OR parley_fold(username) = parley_fold($2))",
    )
    .bind(email.map(Email::as_str))
    .bind(username.map(Username::as_str))
    .bind(except)
    .fetch_one(connection)
    .await
    .map_err(errors::user_store)?;
    let read = |e: sqlx::Error| UserStoreError::Failed(Box::new(e));
    if row.try_get::<Option<bool>, _>("email").map_err(read)? == Some(true) {
        return Err(UserStoreError::EmailTaken);
    }
    if row.try_get::<Option<bool>, _>("username").map_err(read)? == Some(true) {
        return Err(UserStoreError::UsernameTaken);
    }
    Ok(())
}

/// A unique index violation that slipped past the check (an update racing
/// another write), named by its index.
fn unique_violation(error: sqlx::Error) -> UserStoreError {
    if let sqlx::Error::Database(db) = &error
        && db.is_unique_violation()
    {
        match db.constraint() {
            Some("users_email_unique") => return UserStoreError::EmailTaken,
            Some("users_username_unique") => return UserStoreError::UsernameTaken,
            _ => {}
        }
    }
    errors::user_store(error)
}

/// PostgreSQL's text cannot hold NUL, and no stored e-mail, username or name
/// contains one (they are printable): a text with NUL matches no one.
fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

fn record(row: &PgRow) -> Result<UserRecord, UserStoreError> {
    let read = |e: sqlx::Error| UserStoreError::Failed(Box::new(e));
    let user = User {
        id: UserId::new(row.try_get("id").map_err(read)?),
        email: Email::from_storage(row.try_get("email").map_err(read)?),
        username: Username::from_storage(row.try_get("username").map_err(read)?),
        full_name: row.try_get::<Option<String>, _>("full_name").map_err(read)?.map(FullName::from_storage),
        is_active: row.try_get("is_active").map_err(read)?,
        is_admin: row.try_get("is_admin").map_err(read)?,
        created_at: row.try_get("created_at").map_err(read)?,
        updated_at: row.try_get("updated_at").map_err(read)?,
    };
    Ok(UserRecord { user, password_hash: PasswordHash::new(row.try_get("hashed_password").map_err(read)?) })
}

#[async_trait]
impl UserStore for PostgresUserStore {
    async fn create(&self, new: NewUserRecord) -> Result<User, UserStoreError> {
        let mut transaction = self.pool.begin().await.map_err(errors::user_store)?;
        // "The first user is an administrator" must not race: a statement's
        // NOT EXISTS sees only what was committed when it began, so two
        // first registrations would both be administrators. This lock (which
        // readers do not wait for) takes user writes one at a time; with it
        // the uniqueness check cannot race either.
        sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *transaction)
            .await
            .map_err(errors::user_store)?;
        check_unique(&mut transaction, Some(&new.email), Some(&new.username), 0).await?;
        let row = sqlx::query(&format!(
            "INSERT INTO users (username, email, full_name, hashed_password, is_active, is_admin, created_at) \
             VALUES ($1, $2, $3, $4, $5, NOT EXISTS (SELECT 1 FROM users), $6) RETURNING {COLUMNS}"
        ))
        .bind(new.username.as_str())
        .bind(new.email.as_str())
        .bind(new.full_name.as_ref().map(FullName::as_str))
        .bind(new.password_hash.as_str())
        .bind(new.is_active)
        .bind(new.created_at)
        .fetch_one(&mut *transaction)
        .await
        .map_err(unique_violation)?;
        transaction.commit().await.map_err(errors::user_store)?;
        Ok(record(&row)?.user)
    }

    async fn get(&self, id: UserId) -> Result<Option<User>, UserStoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await
            .map_err(errors::user_store)?;
        row.map(|row| record(&row).map(|r| r.user)).transpose()
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, UserStoreError> {
        if has_nul(login) {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM users \
             WHERE parley_fold(email) = parley_fold($1) OR parley_fold(username) = parley_fold($1) \
             ORDER BY parley_fold(email) = parley_fold($1) DESC LIMIT 1"
        ))
        .bind(login)
        .fetch_optional(&self.pool)
        .await
        .map_err(errors::user_store)?;
        row.map(|row| record(&row)).transpose()
    }

    async fn list(&self, query: &UserQuery) -> Result<Vec<User>, UserStoreError> {
        if query.search.as_deref().is_some_and(has_nul) {
            return Ok(Vec::new());
        }
        // strpos: a substring with no LIKE wildcards to escape; a NULL full
        // name matches nothing.
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM users \
             WHERE ($1::text IS NULL OR strpos(parley_fold(username), parley_fold($1)) > 0 \
                    OR strpos(parley_fold(email), parley_fold($1)) > 0 \
                    OR strpos(parley_fold(full_name), parley_fold($1)) > 0) \
               AND ($2::boolean IS NULL OR is_active = $2) \
             ORDER BY id LIMIT $3 OFFSET $4"
        ))
        .bind(query.search.as_deref())
        .bind(query.is_active)
        .bind(i64::from(query.limit))
        .bind(i64::try_from(query.skip).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(errors::user_store)?;
        rows.iter().map(|row| record(row).map(|r| r.user)).collect()
    }

    async fn update(&self, id: UserId, changes: UserChanges) -> Result<User, UserStoreError> {
        let mut connection = self.pool.acquire().await.map_err(errors::user_store)?;
        check_unique(&mut connection, changes.email.as_ref(), changes.username.as_ref(), id.get()).await?;
        let (set_full_name, full_name) = match &changes.full_name {
            None => (false, None),
            Some(name) => (true, name.as_ref().map(FullName::as_str)),
        };
        let row = sqlx::query(&format!(
            "UPDATE users SET email = COALESCE($1, email), username = COALESCE($2, username), \
               full_name = CASE WHEN $3 THEN $4 ELSE full_name END, \
               hashed_password = COALESCE($5, hashed_password), \
               is_active = COALESCE($6, is_active), is_admin = COALESCE($7, is_admin), updated_at = $8 \
             WHERE id = $9 RETURNING {COLUMNS}"
        ))
        .bind(changes.email.as_ref().map(Email::as_str))
        .bind(changes.username.as_ref().map(Username::as_str))
        .bind(set_full_name)
        .bind(full_name)
        .bind(changes.password_hash.as_ref().map(PasswordHash::as_str))
        .bind(changes.is_active)
        .bind(changes.is_admin)
        .bind(changes.updated_at)
        .bind(id.get())
        .fetch_optional(&mut *connection)
        .await
        .map_err(unique_violation)?;
        row.map(|row| record(&row).map(|r| r.user)).transpose()?.ok_or(UserStoreError::NotFound)
    }

    async fn delete(&self, id: UserId) -> Result<(), UserStoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
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
mod postgres {
    use std::sync::Arc;

    use parley_ports::domain::{Email, PasswordHash, Username};
    use parley_ports::{NewUserRecord, UserQuery, UserStore, UserStoreError};

    use crate::testing::fresh_database;

    fn record(name: &str) -> NewUserRecord {
        NewUserRecord {
            email: Email::parse(format!("{name}@example.com")).unwrap(),
            username: Username::parse(name).unwrap(),
            full_name: None,
            password_hash: PasswordHash::new("$argon2id$x".into()),
            is_active: true,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_simultaneous_first_registrations_exactly_one_is_an_administrator() {
        let Some(database) = fresh_database().await else { return };
        // Open the connections beforehand, so that the registrations really
        // are at the same time rather than spaced out by connecting.
        let mut warm = Vec::new();
        for _ in 0..8 {
            warm.push(database.pool.acquire().await.unwrap());
        }
        drop(warm);
        let users = Arc::new(database.users());
        // A race is not lost every time: several rounds, each on an empty store.
        for round in 0..5 {
            let registrations: Vec<_> = (0..8)
                .map(|n| {
                    let users = Arc::clone(&users);
                    tokio::spawn(async move { users.create(record(&format!("r{round}n{n}"))).await })
                })
                .collect();
            let mut created = Vec::new();
            for registration in registrations {
                created.push(registration.await.unwrap().unwrap());
            }
            assert_eq!(created.iter().filter(|u| u.is_admin).count(), 1, "round {round}");
            for user in created {
                users.delete(user.id).await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn a_violated_unique_index_is_told_by_its_name() {
        let Some(database) = fresh_database().await else { return };
        let insert = |email: &'static str, username: &'static str| {
            sqlx::query("INSERT INTO users (username, email, hashed_password) VALUES ($1, $2, 'x')")
                .bind(username)
                .bind(email)
                .execute(&database.pool)
        };
        insert("ann@example.com", "ann").await.unwrap();
        let email = insert("ANN@example.com", "other").await.unwrap_err();
        assert!(matches!(super::unique_violation(email), UserStoreError::EmailTaken));
        let username = insert("other@example.com", "ANN").await.unwrap_err();
        assert!(matches!(super::unique_violation(username), UserStoreError::UsernameTaken));
    }

    #[tokio::test]
    async fn a_login_or_search_with_nul_matches_no_one_instead_of_failing() {
        let Some(database) = fresh_database().await else { return };
        let users = database.users();
        users.create(record("ann")).await.unwrap();
        assert!(users.find_by_login("ann\0").await.unwrap().is_none());
        let search = UserQuery { search: Some("a\0".into()), ..UserQuery::default() };
        assert!(users.list(&search).await.unwrap().is_empty());
    }
}
