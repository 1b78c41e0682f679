//! `Accounts` against mockall doubles: every rule, every error path.

use std::sync::Arc;
use std::time::Duration;

use mockall::predicate::eq;
use time::OffsetDateTime;
use time::macros::datetime;

use super::*;
use crate::clock::MockClock;
use crate::domain::{Email, FullName, Username};
use crate::password_hasher::MockPasswordHasher;
use crate::token_issuer::MockTokenIssuer;
use crate::user_store::{MockUserStore, UserRecord};

const NOW: OffsetDateTime = datetime!(2026-11-26 12:00:00.750 UTC);

struct Doubles {
    users: MockUserStore,
    hasher: MockPasswordHasher,
    tokens: MockTokenIssuer,
}

impl Doubles {
    fn new() -> Self {
        Self { users: MockUserStore::new(), hasher: MockPasswordHasher::new(), tokens: MockTokenIssuer::new() }
    }

    fn accounts(self) -> Accounts {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(NOW);
        Accounts::new(Arc::new(self.users), Arc::new(self.hasher), Arc::new(self.tokens), Arc::new(clock))
    }
}

fn user(id: i64, name: &str) -> User {
    User {
        id: UserId::new(id),
        email: Email::parse(format!("{name}@example.com")).unwrap(),
        username: Username::parse(name).unwrap(),
        full_name: Some(FullName::parse(format!("{name} Example")).unwrap()),
        is_active: true,
        is_admin: false,
        created_at: datetime!(2026-01-01 0:00 UTC),
        updated_at: None,
    }
}

fn admin(id: i64, name: &str) -> User {
    User { is_admin: true, ..user(id, name) }
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        email: Email::parse(format!("{name}@example.com")).unwrap(),
        username: Username::parse(name).unwrap(),
        full_name: None,
        password: Password::parse("correct horse").unwrap(),
        is_active: true,
    }
}

fn hash(text: &str) -> PasswordHash {
    PasswordHash::new(text.to_owned())
}

fn record(user: User) -> UserRecord {
    UserRecord { user, password_hash: hash("$stored") }
}

fn down() -> UserStoreError {
    UserStoreError::Unavailable("connection refused".into())
}

// --- register -----------------------------------------------------------------

#[tokio::test]
async fn register_stores_the_hash_never_the_password_and_stamps_the_second() {
    let mut d = Doubles::new();
    d.hasher.expect_hash().withf(|p| p.expose() == "correct horse").returning(|_| Ok(hash("$argon2id$new")));
    d.users
        .expect_create()
        .withf(|r| r.password_hash.as_str() == "$argon2id$new" && r.created_at == datetime!(2026-11-26 12:00:00 UTC))
        .returning(|r| Ok(User { email: r.email, ..user(1, "ann") }));
    let created = d.accounts().register(new_user("ann")).await.unwrap();
    assert_eq!(created.id, UserId::new(1));
}

#[tokio::test]
async fn register_reports_a_taken_email_and_a_taken_username_distinctly() {
    for (store_error, expected) in [
        (UserStoreError::EmailTaken, "Email already registered"),
        (UserStoreError::UsernameTaken, "Username already taken"),
    ] {
        let mut d = Doubles::new();
        d.hasher.expect_hash().returning(|_| Ok(hash("$h")));
        let mut once = Some(store_error);
        d.users.expect_create().returning(move |_| Err(once.take().unwrap_or(UserStoreError::NotFound)));
        let error = d.accounts().register(new_user("ann")).await.unwrap_err();
        assert_eq!(error.to_string(), expected);
    }
}

#[tokio::test]
async fn register_with_the_store_down_is_unavailable() {
    let mut d = Doubles::new();
    d.hasher.expect_hash().returning(|_| Ok(hash("$h")));
    d.users.expect_create().returning(|_| Err(down()));
    assert!(matches!(d.accounts().register(new_user("ann")).await, Err(AccountError::Unavailable(_))));
}

#[tokio::test]
async fn register_fails_without_storing_when_hashing_fails() {
    let mut d = Doubles::new();
    d.hasher.expect_hash().returning(|_| Err(HashError("blocking pool gone".into())));
    d.users.expect_create().never();
    assert!(matches!(d.accounts().register(new_user("ann")).await, Err(AccountError::Failed(_))));
}

// --- login --------------------------------------------------------------------

#[tokio::test]
async fn login_with_the_right_password_issues_a_token_for_that_user() {
    let mut d = Doubles::new();
    d.users.expect_find_by_login().with(eq("ann@example.com")).returning(|_| Ok(Some(record(user(7, "ann")))));
    d.hasher
        .expect_verify()
        .returning(|_, h| Ok(if h.as_str() == "$stored" { Verdict::Match } else { Verdict::Mismatch }));
    d.tokens
        .expect_issue()
        .with(eq(UserId::new(7)))
        .returning(|_| Ok(AccessToken { token: "t7".into(), expires_in: Duration::from_secs(1800) }));
    let token = d.accounts().login("ann@example.com", "correct horse").await.unwrap();
    assert_eq!(token.token, "t7");
}

#[tokio::test]
async fn login_of_an_unknown_user_costs_a_hash_check_and_says_only_bad_credentials() {
    let mut d = Doubles::new();
    d.users.expect_find_by_login().returning(|_| Ok(None));
    d.hasher.expect_hash().times(1).returning(|_| Ok(hash("$decoy")));
    d.hasher.expect_verify().withf(|_, h| h.as_str() == "$decoy").times(1).returning(|_, _| Ok(Verdict::Match));
    d.tokens.expect_issue().never();
    let error = d.accounts().login("nobody", "whatever1").await.unwrap_err();
    assert!(matches!(error, AccountError::BadCredentials));
}

#[tokio::test]
async fn login_with_a_wrong_password_is_bad_credentials_even_for_an_inactive_user() {
    let mut d = Doubles::new();
    d.users.expect_find_by_login().returning(|_| Ok(Some(record(User { is_active: false, ..user(7, "ann") }))));
    d.hasher.expect_verify().returning(|_, _| Ok(Verdict::Mismatch));
    d.tokens.expect_issue().never();
    assert!(matches!(d.accounts().login("ann", "wrong pass").await, Err(AccountError::BadCredentials)));
}

#[tokio::test]
async fn login_of_an_inactive_user_with_the_right_password_is_refused_as_inactive() {
    let mut d = Doubles::new();
    d.users.expect_find_by_login().returning(|_| Ok(Some(record(User { is_active: false, ..user(7, "ann") }))));
    d.hasher.expect_verify().returning(|_, _| Ok(Verdict::Match));
    d.tokens.expect_issue().never();
    assert!(matches!(d.accounts().login("ann", "correct horse").await, Err(AccountError::Inactive)));
}

#[tokio::test]
async fn login_with_an_outdated_hash_stores_a_fresh_one() {
    let mut d = Doubles::new();
    d.users.expect_find_by_login().returning(|_| Ok(Some(record(user(7, "ann")))));
    d.hasher.expect_verify().returning(|_, _| Ok(Verdict::MatchButOutdated));
    d.hasher.expect_hash().times(1).returning(|_| Ok(hash("$argon2id$fresh")));
    d.users
        .expect_update()
        .withf(|id, c| *id == UserId::new(7) && c.password_hash == Some(hash("$argon2id$fresh")) && c.email.is_none())
        .times(1)
        .returning(|_, _| Ok(user(7, "ann")));
    d.tokens.expect_issue().returning(|_| Ok(AccessToken { token: "t".into(), expires_in: Duration::from_secs(60) }));
    assert!(d.accounts().login("ann", "correct horse").await.is_ok());
}

#[tokio::test]
async fn login_succeeds_even_when_upgrading_an_outdated_hash_fails() {
    let mut d = Doubles::new();
    d.users.expect_find_by_login().returning(|_| Ok(Some(record(user(7, "ann")))));
    d.hasher.expect_verify().returning(|_, _| Ok(Verdict::MatchButOutdated));
    d.hasher.expect_hash().returning(|_| Ok(hash("$fresh")));
    d.users.expect_update().returning(|_, _| Err(down()));
    d.tokens.expect_issue().returning(|_| Ok(AccessToken { token: "t".into(), expires_in: Duration::from_secs(60) }));
    assert!(d.accounts().login("ann", "correct horse").await.is_ok());
}

#[tokio::test]
async fn login_with_the_store_down_is_unavailable_not_bad_credentials() {
    let mut d = Doubles::new();
    d.users.expect_find_by_login().returning(|_| Err(down()));
    assert!(matches!(d.accounts().login("ann", "correct horse").await, Err(AccountError::Unavailable(_))));
}

#[tokio::test]
async fn login_with_an_absurdly_long_password_is_refused_before_any_lookup() {
    let mut d = Doubles::new();
    d.users.expect_find_by_login().never();
    d.hasher.expect_verify().never();
    assert!(matches!(d.accounts().login("ann", &"x".repeat(10_000)).await, Err(AccountError::BadCredentials)));
}

#[tokio::test]
async fn login_fails_when_the_issuer_cannot_sign() {
    let mut d = Doubles::new();
    d.users.expect_find_by_login().returning(|_| Ok(Some(record(user(7, "ann")))));
    d.hasher.expect_verify().returning(|_, _| Ok(Verdict::Match));
    d.tokens.expect_issue().returning(|_| Err(TokenError::Failed("no key".into())));
    assert!(matches!(d.accounts().login("ann", "correct horse").await, Err(AccountError::Failed(_))));
}

// --- authenticate -------------------------------------------------------------

#[tokio::test]
async fn authenticate_returns_the_active_user_the_token_names() {
    let mut d = Doubles::new();
    d.tokens.expect_verify().with(eq("good")).returning(|_| Ok(UserId::new(3)));
    d.users.expect_get().with(eq(UserId::new(3))).returning(|_| Ok(Some(user(3, "cat"))));
    let caller = d.accounts().authenticate("good").await.unwrap();
    assert_eq!(caller.id(), UserId::new(3));
}

#[tokio::test]
async fn authenticate_refuses_invalid_and_expired_tokens_alike() {
    for error in [TokenError::Invalid, TokenError::Expired] {
        let mut d = Doubles::new();
        let mut once = Some(error);
        d.tokens.expect_verify().returning(move |_| Err(once.take().unwrap_or(TokenError::Invalid)));
        d.users.expect_get().never();
        assert!(matches!(d.accounts().authenticate("bad").await, Err(AccountError::InvalidToken)));
    }
}

#[tokio::test]
async fn authenticate_refuses_a_valid_token_of_a_deleted_user() {
    let mut d = Doubles::new();
    d.tokens.expect_verify().returning(|_| Ok(UserId::new(3)));
    d.users.expect_get().returning(|_| Ok(None));
    assert!(matches!(d.accounts().authenticate("t").await, Err(AccountError::InvalidToken)));
}

#[tokio::test]
async fn authenticate_refuses_an_inactive_user() {
    let mut d = Doubles::new();
    d.tokens.expect_verify().returning(|_| Ok(UserId::new(3)));
    d.users.expect_get().returning(|_| Ok(Some(User { is_active: false, ..user(3, "cat") })));
    assert!(matches!(d.accounts().authenticate("t").await, Err(AccountError::Inactive)));
}

#[tokio::test]
async fn authenticate_with_the_store_down_is_unavailable() {
    let mut d = Doubles::new();
    d.tokens.expect_verify().returning(|_| Ok(UserId::new(3)));
    d.users.expect_get().returning(|_| Err(down()));
    assert!(matches!(d.accounts().authenticate("t").await, Err(AccountError::Unavailable(_))));
}

// --- reading ------------------------------------------------------------------

#[tokio::test]
async fn any_active_user_reads_any_user_and_a_missing_one_is_not_found() {
    let mut d = Doubles::new();
    d.users.expect_get().with(eq(UserId::new(2))).returning(|_| Ok(Some(admin(2, "boss"))));
    d.users.expect_get().with(eq(UserId::new(9))).returning(|_| Ok(None));
    let accounts = d.accounts();
    let caller = Caller(user(1, "ann"));
    assert_eq!(accounts.get(&caller, UserId::new(2)).await.unwrap().username.as_str(), "boss");
    assert!(matches!(accounts.get(&caller, UserId::new(9)).await, Err(AccountError::UserNotFound)));
}

#[tokio::test]
async fn list_caps_the_limit_and_passes_the_filters_through() {
    let mut d = Doubles::new();
    d.users
        .expect_list()
        .withf(|q| {
            q.limit == MAX_LIST_LIMIT && q.skip == 5 && q.search.as_deref() == Some("an") && q.is_active == Some(true)
        })
        .returning(|_| Ok(vec![user(1, "ann")]));
    let query = UserQuery { skip: 5, limit: 1_000_000, search: Some("an".into()), is_active: Some(true) };
    let listed = d.accounts().list(&Caller(user(1, "ann")), query).await.unwrap();
    assert_eq!(listed.len(), 1);
}

// --- create -------------------------------------------------------------------

#[tokio::test]
async fn only_an_administrator_creates_accounts_for_others() {
    let mut d = Doubles::new();
    d.users.expect_create().never();
    let refused = d.accounts().create(&Caller(user(1, "ann")), new_user("bob")).await;
    assert!(matches!(refused, Err(AccountError::Forbidden(Forbidden::AdminOnly))));

    let mut d = Doubles::new();
    d.hasher.expect_hash().returning(|_| Ok(hash("$h")));
    d.users.expect_create().times(1).returning(|_| Ok(user(2, "bob")));
    let created = d.accounts().create(&Caller(admin(1, "boss")), new_user("bob")).await.unwrap();
    assert_eq!(created.id, UserId::new(2));
}

// --- update -------------------------------------------------------------------

#[tokio::test]
async fn a_user_may_not_change_someone_else() {
    let mut d = Doubles::new();
    d.users.expect_get().never();
    d.users.expect_update().never();
    let patch = UserPatch { full_name: Some(None), ..UserPatch::default() };
    let refused = d.accounts().update(&Caller(user(1, "ann")), UserId::new(2), patch).await;
    assert!(matches!(refused, Err(AccountError::Forbidden(Forbidden::NotYourAccount))));
}

#[tokio::test]
async fn a_user_changes_their_own_fields_and_a_new_password_is_hashed() {
    let mut d = Doubles::new();
    d.users.expect_get().returning(|_| Ok(Some(user(1, "ann"))));
    d.hasher.expect_hash().withf(|p| p.expose() == "new password").returning(|_| Ok(hash("$new")));
    d.users
        .expect_update()
        .withf(|id, c| {
            *id == UserId::new(1)
                && c.password_hash == Some(hash("$new"))
                && c.full_name == Some(None)
                && c.is_active.is_none()
                && c.updated_at == datetime!(2026-11-26 12:00:00 UTC)
        })
        .returning(|_, _| Ok(User { full_name: None, ..user(1, "ann") }));
    let patch = UserPatch {
        full_name: Some(None),
        password: Some(Password::parse("new password").unwrap()),
        ..UserPatch::default()
    };
    let updated = d.accounts().update(&Caller(user(1, "ann")), UserId::new(1), patch).await.unwrap();
    assert_eq!(updated.full_name, None);
}

#[tokio::test]
async fn nobody_changes_their_own_activity_or_admin_flag_not_even_an_administrator() {
    let cases = [
        (user(1, "ann"), UserPatch { is_active: Some(false), ..UserPatch::default() }),
        (user(1, "ann"), UserPatch { is_admin: Some(true), ..UserPatch::default() }),
        (admin(1, "boss"), UserPatch { is_admin: Some(false), ..UserPatch::default() }),
        (admin(1, "boss"), UserPatch { is_active: Some(false), ..UserPatch::default() }),
    ];
    for (me, patch) in cases {
        let mut d = Doubles::new();
        let stored = me.clone();
        d.users.expect_get().returning(move |_| Ok(Some(stored.clone())));
        d.users.expect_update().never();
        let refused = d.accounts().update(&Caller(me), UserId::new(1), patch).await;
        assert!(matches!(refused, Err(AccountError::Forbidden(Forbidden::OwnPrivileges))));
    }
}

#[tokio::test]
async fn sending_back_ones_own_unchanged_flags_is_allowed() {
    let mut d = Doubles::new();
    d.users.expect_get().returning(|_| Ok(Some(user(1, "ann"))));
    d.users.expect_update().times(1).returning(|_, _| Ok(user(1, "ann")));
    let patch = UserPatch { is_active: Some(true), is_admin: Some(false), ..UserPatch::default() };
    assert!(d.accounts().update(&Caller(user(1, "ann")), UserId::new(1), patch).await.is_ok());
}

#[tokio::test]
async fn an_administrator_changes_anyone_elses_flags() {
    let mut d = Doubles::new();
    d.users.expect_get().returning(|_| Ok(Some(user(2, "bob"))));
    d.users
        .expect_update()
        .withf(|id, c| *id == UserId::new(2) && c.is_active == Some(false) && c.is_admin == Some(true))
        .returning(|_, _| Ok(User { is_active: false, is_admin: true, ..user(2, "bob") }));
    let patch = UserPatch { is_active: Some(false), is_admin: Some(true), ..UserPatch::default() };
    let updated = d.accounts().update(&Caller(admin(1, "boss")), UserId::new(2), patch).await.unwrap();
    assert!(updated.is_admin && !updated.is_active);
}

#[tokio::test]
async fn updating_a_missing_user_is_not_found() {
    let mut d = Doubles::new();
    d.users.expect_get().returning(|_| Ok(None));
    d.users.expect_update().never();
    let result = d.accounts().update(&Caller(admin(1, "boss")), UserId::new(9), UserPatch::default()).await;
    assert!(matches!(result, Err(AccountError::UserNotFound)));
}

#[tokio::test]
async fn updating_to_a_taken_email_or_username_is_reported_distinctly() {
    for (error, expected) in [
        (UserStoreError::EmailTaken, "Email already registered"),
        (UserStoreError::UsernameTaken, "Username already taken"),
    ] {
        let mut d = Doubles::new();
        d.users.expect_get().returning(|_| Ok(Some(user(1, "ann"))));
        let mut once = Some(error);
        d.users.expect_update().returning(move |_, _| Err(once.take().unwrap_or(UserStoreError::NotFound)));
        let patch = UserPatch { username: Some(Username::parse("taken").unwrap()), ..UserPatch::default() };
        let result = d.accounts().update(&Caller(user(1, "ann")), UserId::new(1), patch).await;
        assert_eq!(result.unwrap_err().to_string(), expected);
    }
}

#[tokio::test]
async fn updating_with_the_store_down_is_unavailable() {
    let mut d = Doubles::new();
    d.users.expect_get().returning(|_| Err(down()));
    let result = d.accounts().update(&Caller(user(1, "ann")), UserId::new(1), UserPatch::default()).await;
    assert!(matches!(result, Err(AccountError::Unavailable(_))));
}

// --- delete -------------------------------------------------------------------

#[tokio::test]
async fn a_user_deletes_only_themself_and_an_administrator_anyone() {
    let mut d = Doubles::new();
    d.users.expect_delete().never();
    let refused = d.accounts().delete(&Caller(user(1, "ann")), UserId::new(2)).await;
    assert!(matches!(refused, Err(AccountError::Forbidden(Forbidden::AdminOnly))));

    let mut d = Doubles::new();
    d.users.expect_delete().with(eq(UserId::new(1))).times(1).returning(|_| Ok(()));
    assert!(d.accounts().delete(&Caller(user(1, "ann")), UserId::new(1)).await.is_ok());

    let mut d = Doubles::new();
    d.users.expect_delete().with(eq(UserId::new(2))).times(1).returning(|_| Ok(()));
    assert!(d.accounts().delete(&Caller(admin(1, "boss")), UserId::new(2)).await.is_ok());
}

#[tokio::test]
async fn deleting_a_missing_user_is_not_found_and_storage_failure_is_reported() {
    let mut d = Doubles::new();
    d.users.expect_delete().with(eq(UserId::new(9))).returning(|_| Err(UserStoreError::NotFound));
    d.users.expect_delete().with(eq(UserId::new(8))).returning(|_| Err(UserStoreError::Failed("disk full".into())));
    let accounts = d.accounts();
    let boss = Caller(admin(1, "boss"));
    assert!(matches!(accounts.delete(&boss, UserId::new(9)).await, Err(AccountError::UserNotFound)));
    assert!(matches!(accounts.delete(&boss, UserId::new(8)).await, Err(AccountError::Failed(_))));
}
