//! The `TokenIssuer` contract. The factory is a function from a clock to an
//! issuer: each call must give an issuer with its own fresh key, and the
//! issuer must read time only from the clock it is given.

use std::sync::Arc;
use std::time::Duration;

use time::macros::datetime;

use super::ManualClock;
use crate::Clock;
use crate::domain::UserId;
use crate::token_issuer::{TokenError, TokenIssuer};

/// Runs every `TokenIssuer` rule against `$make`, a `Fn(Arc<dyn Clock>) -> impl
/// TokenIssuer` giving an issuer with a fresh key on the given clock.
#[macro_export]
macro_rules! token_issuer_contract {
    ($($args:tt)+) => {
        $crate::__contract_tests!(token_issuer, [
            an_issued_token_names_its_user,
            a_token_with_any_character_changed_is_invalid,
            malformed_tokens_are_invalid,
            a_token_from_another_issuer_is_invalid,
            a_token_is_valid_until_its_lifetime_has_passed,
        ], factory $($args)+);
    };
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(datetime!(2026-11-26 12:00 UTC)))
}

/// Verifying an issued token gives back the user it was issued for.
pub async fn an_issued_token_names_its_user<I: TokenIssuer>(make: impl Fn(Arc<dyn Clock>) -> I) {
    let issuer = make(clock());
    for id in [1, 42, i64::MAX] {
        let token = issuer.issue(UserId::new(id)).await.unwrap();
        assert!(token.expires_in > Duration::ZERO);
        assert_eq!(issuer.verify(&token.token).await.unwrap(), UserId::new(id));
    }
}

/// Changing any single character of a token makes it invalid.
pub async fn a_token_with_any_character_changed_is_invalid<I: TokenIssuer>(make: impl Fn(Arc<dyn Clock>) -> I) {
    let issuer = make(clock());
    let token = issuer.issue(UserId::new(7)).await.unwrap().token;
    // Only the last character can have bits that decoding ignores (base64
    // padding bits); every other position must matter.
    for position in 0..token.len() - 1 {
        let mut bytes = token.clone().into_bytes();
        bytes[position] = if bytes[position] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        if forged != token {
            assert!(matches!(issuer.verify(&forged).await, Err(TokenError::Invalid)), "changed at {position}");
        }
    }
}

/// Strings that are not tokens are `Invalid`, never a panic or `Failed`.
pub async fn malformed_tokens_are_invalid<I: TokenIssuer>(make: impl Fn(Arc<dyn Clock>) -> I) {
    let issuer = make(clock());
    for garbage in ["", "abc", "a.b.c", "....", "Bearer x", "\0\u{1}", "eyJ.eyJ.", &"x".repeat(10_000)] {
        assert!(matches!(issuer.verify(garbage).await, Err(TokenError::Invalid)), "{garbage:?}");
    }
}

/// A token signed by another issuer (another key) is `Invalid`.
pub async fn a_token_from_another_issuer_is_invalid<I: TokenIssuer>(make: impl Fn(Arc<dyn Clock>) -> I) {
    let ours = make(clock());
    let theirs = make(clock());
    let foreign = theirs.issue(UserId::new(7)).await.unwrap().token;
    assert!(matches!(ours.verify(&foreign).await, Err(TokenError::Invalid)));
}

/// A token verifies until its lifetime (plus at most a minute's leeway) is over,
/// then is `Expired`.
pub async fn a_token_is_valid_until_its_lifetime_has_passed<I: TokenIssuer>(make: impl Fn(Arc<dyn Clock>) -> I) {
    let clock = clock();
    let issuer = make(clock.clone());
    let token = issuer.issue(UserId::new(7)).await.unwrap();
    clock.advance(token.expires_in - Duration::from_secs(1));
    assert_eq!(issuer.verify(&token.token).await.unwrap(), UserId::new(7));
    clock.advance(Duration::from_secs(62));
    assert!(matches!(issuer.verify(&token.token).await, Err(TokenError::Expired)));
}
