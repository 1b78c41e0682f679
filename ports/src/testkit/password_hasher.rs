//! The `PasswordHasher` contract.

use crate::domain::{Password, PasswordHash};
use crate::password_hasher::{PasswordHasher, Verdict};

/// Runs every `PasswordHasher` rule against `$make`, an `async` block giving a hasher.
#[macro_export]
macro_rules! password_hasher_contract {
    ($($args:tt)+) => {
        $crate::__contract_tests!(password_hasher, [
            a_hash_verifies_with_its_password,
            a_wrong_password_is_a_mismatch,
            hashing_the_same_password_twice_gives_different_salted_hashes,
            a_hash_never_contains_the_password,
            an_unreadable_stored_hash_is_a_mismatch_not_an_error,
            passwords_in_any_script_verify,
        ], $($args)+);
    };
}

fn password(text: &str) -> Password {
    Password::parse(text).unwrap()
}

async fn hash(hasher: &dyn PasswordHasher, text: &str) -> PasswordHash {
    hasher.hash(&password(text)).await.unwrap_or_else(|e| panic!("hash: {e}"))
}

/// The password a hash was made from verifies against it.
pub async fn a_hash_verifies_with_its_password(hasher: &dyn PasswordHasher) {
    let stored = hash(hasher, "correct horse battery").await;
    assert_eq!(hasher.verify(&password("correct horse battery"), &stored).await.unwrap(), Verdict::Match);
}

/// Any other password, even one character off, does not.
pub async fn a_wrong_password_is_a_mismatch(hasher: &dyn PasswordHasher) {
    let stored = hash(hasher, "correct horse battery").await;
    for wrong in ["correct horse batterY", "correct horse battery ", "incorrect"] {
        assert_eq!(hasher.verify(&password(wrong), &stored).await.unwrap(), Verdict::Mismatch, "{wrong:?}");
    }
}

/// Hashes are salted: equal passwords do not give equal hashes.
pub async fn hashing_the_same_password_twice_gives_different_salted_hashes(hasher: &dyn PasswordHasher) {
    assert_ne!(hash(hasher, "same password").await, hash(hasher, "same password").await);
}

/// The stored form does not reveal the password.
pub async fn a_hash_never_contains_the_password(hasher: &dyn PasswordHasher) {
    let stored = hash(hasher, "plainly-visible").await;
    assert!(!stored.as_str().contains("plainly-visible"));
}

/// Garbage where a hash should be is a `Mismatch`: a corrupt row is no 500.
pub async fn an_unreadable_stored_hash_is_a_mismatch_not_an_error(hasher: &dyn PasswordHasher) {
    for garbage in ["", "not a hash", "$argon2id$v=19$broken", "$2b$12$short"] {
        let verdict = hasher.verify(&password("whatever pass"), &PasswordHash::new(garbage.into())).await;
        assert_eq!(verdict.unwrap(), Verdict::Mismatch, "{garbage:?}");
    }
}

/// Non-ASCII passwords hash and verify like any other.
pub async fn passwords_in_any_script_verify(hasher: &dyn PasswordHasher) {
    let stored = hash(hasher, "pässwörd 日本語 🔑").await;
    assert_eq!(hasher.verify(&password("pässwörd 日本語 🔑"), &stored).await.unwrap(), Verdict::Match);
    assert_eq!(hasher.verify(&password("passwörd 日本語 🔑"), &stored).await.unwrap(), Verdict::Mismatch);
}
