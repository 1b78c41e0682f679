//! `Accounts`: opening accounts, logging in, and the rules on who may read,
//! change and remove which account.
//!
//! The rules (a deliberate tightening of the original app, which let any user
//! change anyone): any active user may read and list users; only an
//! administrator creates accounts for others or deletes others; users change
//! themselves, administrators change anyone; nobody changes their own
//! `is_active` or `is_admin` (so nobody locks themself out by mistake);
//! inactive users cannot log in or act.

use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::domain::{NewUser, Password, PasswordHash, User, UserId, UserPatch};
use crate::password_hasher::{HashError, PasswordHasher, Verdict};
use crate::token_issuer::{AccessToken, TokenError, TokenIssuer};
use crate::user_store::{NewUserRecord, UserChanges, UserQuery, UserStore, UserStoreError};
use crate::{BoxError, Clock};

const DECOY_PASSWORD: &str = "a decoy password, never anyone's";

/// The most users one list call returns, whatever the client asks for.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// What an account operation refused, or why it failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("Email already registered")]
    EmailTaken,
    #[error("Username already taken")]
    UsernameTaken,
    #[error("User not found")]
    UserNotFound,
    /// Unknown login or wrong password; which one is never said.
    #[error("Incorrect username or password")]
    BadCredentials,
    /// A token that is malformed, forged, expired, or names a deleted user.
    #[error("Could not validate credentials")]
    InvalidToken,
    #[error("Inactive user")]
    Inactive,
    #[error("{0}")]
    Forbidden(Forbidden),
    /// A port's backing service is down; the client may retry.
    #[error("service unavailable: {0}")]
    Unavailable(#[source] BoxError),
    #[error("internal error: {0}")]
    Failed(#[source] BoxError),
}

/// Which authorisation rule refused an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    #[error("Only an administrator may do this")]
    AdminOnly,
    #[error("You may only change your own account")]
    NotYourAccount,
    #[error("You may not change your own is_active or is_admin")]
    OwnPrivileges,
}

impl From<UserStoreError> for AccountError {
    fn from(error: UserStoreError) -> Self {
        match error {
            UserStoreError::EmailTaken => AccountError::EmailTaken,
            UserStoreError::UsernameTaken => AccountError::UsernameTaken,
            UserStoreError::NotFound => AccountError::UserNotFound,
            UserStoreError::Unavailable(cause) => AccountError::Unavailable(cause),
            UserStoreError::Failed(cause) => AccountError::Failed(cause),
        }
    }
}

impl From<HashError> for AccountError {
    fn from(error: HashError) -> Self {
        AccountError::Failed(Box::new(error))
    }
}

/// An authenticated, active user: only [`Accounts::authenticate`] makes one, so
/// holding a `Caller` proves the token was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(User);

impl Caller {
    pub fn user(&self) -> &User {
        &self.0
    }
    pub fn id(&self) -> UserId {
        self.0.id
    }
    fn is_admin(&self) -> bool {
        self.0.is_admin
    }
}

pub struct Accounts {
    users: Arc<dyn UserStore>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenIssuer>,
    clock: Arc<dyn Clock>,
    /// Checked against when the login names nobody, so that costs what a wrong
    /// password costs and response times do not reveal which logins exist.
    decoy_hash: OnceCell<PasswordHash>,
}

impl Accounts {
    pub fn new(
        users: Arc<dyn UserStore>,
        hasher: Arc<dyn PasswordHasher>,
        tokens: Arc<dyn TokenIssuer>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { users, hasher, tokens, clock, decoy_hash: OnceCell::new() }
    }

    /// Opens an account. The very first account becomes an administrator.
    pub async fn register(&self, new: NewUser) -> Result<User, AccountError> {
        let password_hash = self.hasher.hash(&new.password).await?;
        let record = NewUserRecord {
            email: new.email,
            username: new.username,
            full_name: new.full_name,
            password_hash,
            is_active: new.is_active,
            created_at: self.now(),
        };
        Ok(self.users.create(record).await?)
    }

    /// Exchanges a login (e-mail or username) and password for an access token.
    pub async fn login(&self, login: &str, password: &str) -> Result<AccessToken, AccountError> {
        let Some(password) = Password::attempt(password) else {
            return Err(AccountError::BadCredentials);
        };
        let Some(record) = self.users.find_by_login(login).await? else {
            let decoy = self.decoy_hash().await?;
            self.hasher.verify(&password, decoy).await?;
            return Err(AccountError::BadCredentials);
        };
        let verdict = self.hasher.verify(&password, &record.password_hash).await?;
        if !verdict.is_match() {
            return Err(AccountError::BadCredentials);
        }
        if !record.user.is_active {
            return Err(AccountError::Inactive);
        }
        if verdict == Verdict::MatchButOutdated {
            self.upgrade_hash(record.user.id, &password).await;
        }
        self.tokens.issue(record.user.id).await.map_err(token_failure)
    }

    /// Whether `name` is a registered user's username (or e-mail), ignoring
    /// case: such a name is theirs, and a guest may be refused it.
    pub async fn is_registered(&self, name: &str) -> Result<bool, AccountError> {
        Ok(self.users.find_by_login(name).await?.is_some())
    }

    /// The active user an access token names.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AccountError> {
        let id = self.tokens.verify(token).await.map_err(token_failure)?;
        let user = self.users.get(id).await?.ok_or(AccountError::InvalidToken)?;
        if !user.is_active {
            return Err(AccountError::Inactive);
        }
        Ok(Caller(user))
    }

    pub async fn get(&self, _caller: &Caller, id: UserId) -> Result<User, AccountError> {
        self.users.get(id).await?.ok_or(AccountError::UserNotFound)
    }

    /// Users in id order; `limit` is capped at [`MAX_LIST_LIMIT`].
    pub async fn list(&self, _caller: &Caller, mut query: UserQuery) -> Result<Vec<User>, AccountError> {
        query.limit = query.limit.min(MAX_LIST_LIMIT);
        Ok(self.users.list(&query).await?)
    }

    /// An administrator opens an account for someone else.
    pub async fn create(&self, caller: &Caller, new: NewUser) -> Result<User, AccountError> {
        if !caller.is_admin() {
            return Err(AccountError::Forbidden(Forbidden::AdminOnly));
        }
        self.register(new).await
    }

    /// Changes the fields the patch names.
    pub async fn update(&self, caller: &Caller, id: UserId, patch: UserPatch) -> Result<User, AccountError> {
        let own = caller.id() == id;
        if !own && !caller.is_admin() {
            return Err(AccountError::Forbidden(Forbidden::NotYourAccount));
        }
        let current = self.users.get(id).await?.ok_or(AccountError::UserNotFound)?;
        // Sending back one's own unchanged flags (a client PUTting the whole
        // object) is not an attempt to change them.
        let privileges_change = patch.is_active.is_some_and(|active| active != current.is_active)
            || patch.is_admin.is_some_and(|admin| admin != current.is_admin);
        if own && privileges_change {
            return Err(AccountError::Forbidden(Forbidden::OwnPrivileges));
        }
        let password_hash = match &patch.password {
            Some(password) => Some(self.hasher.hash(password).await?),
            None => None,
        };
        let changes = UserChanges {
            email: patch.email,
            username: patch.username,
            full_name: patch.full_name,
            password_hash,
            is_active: patch.is_active,
            is_admin: patch.is_admin,
            updated_at: self.now(),
        };
        Ok(self.users.update(id, changes).await?)
    }

    /// Removes an account: an administrator removes anyone, a user themself.
    pub async fn delete(&self, caller: &Caller, id: UserId) -> Result<(), AccountError> {
        if caller.id() != id && !caller.is_admin() {
            return Err(AccountError::Forbidden(Forbidden::AdminOnly));
        }
        Ok(self.users.delete(id).await?)
    }

    /// Whether the user store answers now.
    pub async fn ping(&self) -> Result<(), AccountError> {
        Ok(self.users.ping().await?)
    }

    /// Stores a hash with today's parameters. Best effort: the login succeeds
    /// even if this fails, and the next login tries again.
    async fn upgrade_hash(&self, id: UserId, password: &Password) {
        let result = async {
            let hash = self.hasher.hash(password).await?;
            let changes = UserChanges { password_hash: Some(hash), ..UserChanges::at(self.now()) };
            self.users.update(id, changes).await?;
            Ok::<_, AccountError>(())
        };
        if let Err(error) = result.await {
            tracing::warn!(user = %id, %error, "could not upgrade an outdated password hash");
        }
    }

    async fn decoy_hash(&self) -> Result<&PasswordHash, AccountError> {
        let hasher = &self.hasher;
        let decoy = self
            .decoy_hash
            .get_or_try_init(|| async {
                let password = Password::parse(DECOY_PASSWORD).map_err(|e| AccountError::Failed(Box::new(e)))?;
                Ok::<_, AccountError>(hasher.hash(&password).await?)
            })
            .await?;
        Ok(decoy)
    }

    /// Timestamps are kept to the second: every store keeps them exactly so.
    fn now(&self) -> time::OffsetDateTime {
        let now = self.clock.now();
        now.replace_nanosecond(0).unwrap_or(now)
    }
}

fn token_failure(error: TokenError) -> AccountError {
    match error {
        TokenError::Invalid | TokenError::Expired => AccountError::InvalidToken,
        TokenError::Failed(cause) => AccountError::Failed(cause),
    }
}

#[cfg(test)]
#[path = "accounts_tests.rs"]
mod tests;
