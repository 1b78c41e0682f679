//! `MemoryUserStore`: accounts in a map, for tests and `DATABASE_URL=memory://`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use parley_ports::domain::{Email, User, UserId, Username};
use parley_ports::{NewUserRecord, UserChanges, UserQuery, UserRecord, UserStore, UserStoreError};

use crate::lock;

#[derive(Default)]
pub struct MemoryUserStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last_id: i64,
    /// By id, so listing is in id order for free.
    users: BTreeMap<i64, UserRecord>,
}

fn same(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

impl State {
    /// The uniqueness rule, shared by create and update: `except` is the user
    /// being updated, who may keep their own values.
    fn check_unique(
        &self,
        email: Option<&Email>,
        username: Option<&Username>,
        except: Option<i64>,
    ) -> Result<(), UserStoreError> {
        let others = || self.users.values().filter(|r| Some(r.user.id.get()) != except);
        if let Some(email) = email
            && others().any(|r| same(r.user.email.as_str(), email.as_str()))
        {
            return Err(UserStoreError::EmailTaken);
        }
        if let Some(username) = username
            && others().any(|r| same(r.user.username.as_str(), username.as_str()))
        {
            return Err(UserStoreError::UsernameTaken);
        }
        Ok(())
    }
}

#[async_trait]
impl UserStore for MemoryUserStore {
    async fn create(&self, new: NewUserRecord) -> Result<User, UserStoreError> {
        let mut state = lock(&self.state);
        state.check_unique(Some(&new.email), Some(&new.username), None)?;
        state.last_id += 1;
        let user = User {
            id: UserId::new(state.last_id),
            email: new.email,
            username: new.username,
            full_name: new.full_name,
            is_active: new.is_active,
            is_admin: state.users.is_empty(),
            created_at: new.created_at,
            updated_at: None,
        };
        state.users.insert(user.id.get(), UserRecord { user: user.clone(), password_hash: new.password_hash });
        Ok(user)
    }

    async fn get(&self, id: UserId) -> Result<Option<User>, UserStoreError> {
        Ok(lock(&self.state).users.get(&id.get()).map(|r| r.user.clone()))
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, UserStoreError> {
        let state = lock(&self.state);
        let by_email = state.users.values().find(|r| same(r.user.email.as_str(), login));
        let found = by_email.or_else(|| state.users.values().find(|r| same(r.user.username.as_str(), login)));
        Ok(found.cloned())
    }

    async fn list(&self, query: &UserQuery) -> Result<Vec<User>, UserStoreError> {
        let needle = query.search.as_deref().map(str::to_lowercase);
        let matches = |user: &User| {
            let found = needle.as_deref().is_none_or(|needle| {
                let full_name = user.full_name.as_ref().map(|n| n.as_str()).unwrap_or_default();
                [user.username.as_str(), user.email.as_str(), full_name]
                    .iter()
                    .any(|f| f.to_lowercase().contains(needle))
            });
            found && query.is_active.is_none_or(|active| user.is_active == active)
        };
        let state = lock(&self.state);
        Ok(state
            .users
            .values()
            .map(|r| &r.user)
            .filter(|u| matches(u))
            .skip(usize::try_from(query.skip).unwrap_or(usize::MAX))
            .take(query.limit as usize)
            .cloned()
            .collect())
    }

    async fn update(&self, id: UserId, changes: UserChanges) -> Result<User, UserStoreError> {
        let mut state = lock(&self.state);
        if !state.users.contains_key(&id.get()) {
            return Err(UserStoreError::NotFound);
        }
        state.check_unique(changes.email.as_ref(), changes.username.as_ref(), Some(id.get()))?;
        let record = state.users.get_mut(&id.get()).ok_or(UserStoreError::NotFound)?;
        let user = &mut record.user;
        if let Some(email) = changes.email {
            user.email = email;
        }
        if let Some(username) = changes.username {
            user.username = username;
        }
        if let Some(full_name) = changes.full_name {
            user.full_name = full_name;
        }
        if let Some(is_active) = changes.is_active {
            user.is_active = is_active;
        }
        if let Some(is_admin) = changes.is_admin {
            user.is_admin = is_admin;
        }
        if let Some(hash) = changes.password_hash {
            record.password_hash = hash;
        }
        record.user.updated_at = Some(changes.updated_at);
        Ok(record.user.clone())
    }

    async fn delete(&self, id: UserId) -> Result<(), UserStoreError> {
        lock(&self.state).users.remove(&id.get()).map(drop).ok_or(UserStoreError::NotFound)
    }

    async fn ping(&self) -> Result<(), UserStoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    parley_ports::user_store_contract!(async { MemoryUserStore::default() });
}
