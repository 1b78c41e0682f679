//! The `TokenIssuer` port: access tokens that name a user for a limited time.

use std::time::Duration;

use async_trait::async_trait;

use crate::BoxError;
use crate::domain::UserId;

/// A bearer token and how long it stays valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Malformed, signed with another key or algorithm, or missing claims.
    #[error("invalid token")]
    Invalid,
    #[error("token expired")]
    Expired,
    #[error("token issuing failed: {0}")]
    Failed(#[source] BoxError),
}

#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenIssuer: Send + Sync {
    /// A token naming `user`, valid from now for the issuer's configured lifetime.
    async fn issue(&self, user: UserId) -> Result<AccessToken, TokenError>;

    /// The user a token names.
    ///
    /// # Errors
    /// `Invalid` for anything not issued by this issuer's key and algorithm;
    /// `Expired` once its lifetime has passed by this issuer's clock.
    async fn verify(&self, token: &str) -> Result<UserId, TokenError>;
}
