//! The `UserStore` port: where accounts live.
//!
//! Knows accounts and their uniqueness rules; knows nothing of SQL, hashing
//! algorithms or HTTP.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::BoxError;
use crate::domain::{Email, FullName, PasswordHash, User, UserId, Username};

/// An account to store: checked fields, the password already hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUserRecord {
    pub email: Email,
    pub username: Username,
    pub full_name: Option<FullName>,
    pub password_hash: PasswordHash,
    pub is_active: bool,
    pub created_at: OffsetDateTime,
}

/// A partial update: `None` leaves a field unchanged; `updated_at` is always set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChanges {
    pub email: Option<Email>,
    pub username: Option<Username>,
    pub full_name: Option<Option<FullName>>,
    pub password_hash: Option<PasswordHash>,
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
    pub updated_at: OffsetDateTime,
}

impl UserChanges {
    /// A change that only stamps `updated_at`; set the fields to change on it.
    pub fn at(updated_at: OffsetDateTime) -> Self {
        Self {
            email: None,
            username: None,
            full_name: None,
            password_hash: None,
            is_active: None,
            is_admin: None,
            updated_at,
        }
    }
}

/// Which users to list: ordered by id, `skip` then at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    pub skip: u64,
    pub limit: u32,
    /// Case-insensitive substring of the username, e-mail or full name.
    pub search: Option<String>,
    pub is_active: Option<bool>,
}

impl Default for UserQuery {
    fn default() -> Self {
        Self { skip: 0, limit: 100, search: None, is_active: None }
    }
}

/// A user together with what only login needs: the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user: User,
    pub password_hash: PasswordHash,
}

/// Why a user store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UserStoreError {
    #[error("email already registered")]
    EmailTaken,
    #[error("username already taken")]
    UsernameTaken,
    #[error("user not found")]
    NotFound,
    /// The store cannot be reached right now (connection refused, pool timed
    /// out); retrying later may work.
    #[error("user store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Anything else the store could not do.
    #[error("user store failed: {0}")]
    Failed(#[source] BoxError),
}

/// Stores accounts. E-mail addresses and usernames are unique regardless of
/// letter case.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Stores a new account with a fresh id, greater than every id given before.
    /// The first account ever stored (the store holds no user) is an
    /// administrator, decided atomically; every later one is not.
    ///
    /// # Errors
    /// `EmailTaken` if another user has this e-mail (checked first),
    /// `UsernameTaken` if another has this username.
    async fn create(&self, user: NewUserRecord) -> Result<User, UserStoreError>;

    /// The user with this id, if any.
    async fn get(&self, id: UserId) -> Result<Option<User>, UserStoreError>;

    /// The user whose e-mail or username equals `login`, ignoring case; an
    /// e-mail match wins over a username match.
    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, UserStoreError>;

    /// Users matching `query`, in ascending id order.
    async fn list(&self, query: &UserQuery) -> Result<Vec<User>, UserStoreError>;

    /// Applies `changes` and returns the user as stored afterwards.
    ///
    /// # Errors
    /// `NotFound` if no user has this id; `EmailTaken` / `UsernameTaken` if
    /// another user already has the new value.
    async fn update(&self, id: UserId, changes: UserChanges) -> Result<User, UserStoreError>;

    /// Removes the user; their e-mail and username become free.
    ///
    /// # Errors
    /// `NotFound` if no user has this id.
    async fn delete(&self, id: UserId) -> Result<(), UserStoreError>;

    /// Whether the store answers now (for readiness checks).
    ///
    /// # Errors
    /// `Unavailable` when it cannot be reached.
    async fn ping(&self) -> Result<(), UserStoreError>;
}
