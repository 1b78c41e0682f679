//! The `PasswordHasher` port: turning passwords into stored hashes and back to
//! a yes or no. Implementations run the work off the async threads.

use async_trait::async_trait;

use crate::BoxError;
use crate::domain::{Password, PasswordHash};

/// The answer to "is this the password?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Mismatch,
    Match,
    /// The password is right, but the hash uses an older algorithm or weaker
    /// parameters than today's: store a fresh hash.
    MatchButOutdated,
}

impl Verdict {
    pub fn is_match(self) -> bool {
        !matches!(self, Verdict::Mismatch)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(#[source] pub BoxError);

#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// A salted hash of `password` in PHC string form.
    ///
    /// # Errors
    /// [`HashError`] when the work could not be done (the hashing pool is
    /// gone, memory for the hash could not be had): never for a password.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;

    /// Whether `password` matches `hash`. A hash this hasher cannot read is a
    /// `Mismatch`, not an error: a corrupt row must not become a 500.
    ///
    /// # Errors
    /// [`HashError`] only when the work could not be done, as for [`PasswordHasher::hash`].
    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<Verdict, HashError>;
}
