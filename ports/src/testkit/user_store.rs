//! The `UserStore` contract.

use time::OffsetDateTime;
use time::macros::datetime;

use crate::domain::{Email, FullName, PasswordHash, User, UserId, Username};
use crate::user_store::{NewUserRecord, UserChanges, UserQuery, UserStore, UserStoreError};

/// Runs every `UserStore` rule against `$make`, an `async` block giving a fresh, empty store.
#[macro_export]
macro_rules! user_store_contract {
    ($($args:tt)+) => {
        $crate::__contract_tests!(user_store, [
            create_returns_the_stored_user_with_a_fresh_id,
            ids_increase_with_each_user,
            the_first_user_is_an_administrator_and_later_ones_are_not,
            a_taken_email_is_reported_as_email_taken_whatever_its_case,
            a_taken_username_is_reported_as_username_taken_whatever_its_case,
            when_both_are_taken_the_email_is_reported,
            get_of_an_unknown_id_is_none,
            find_by_login_matches_the_email_or_the_username_ignoring_case,
            find_by_login_of_an_unknown_login_is_none,
            list_is_in_id_order_and_pages_with_skip_and_limit,
            list_search_is_a_case_insensitive_substring_of_username_email_or_full_name,
            list_filters_on_is_active,
            update_changes_only_the_given_fields_and_stamps_updated_at,
            update_can_clear_the_full_name_and_change_flags_and_password,
            update_to_another_users_email_or_username_is_reported_distinctly,
            update_keeping_ones_own_email_and_username_is_no_clash,
            update_of_an_unknown_user_is_not_found,
            delete_removes_the_user_and_frees_the_email_and_username,
            delete_of_an_unknown_user_is_not_found,
            text_in_any_script_round_trips,
            a_working_store_answers_ping,
        ], $($args)+);
    };
}

const CREATED: OffsetDateTime = datetime!(2026-11-26 10:00:00 UTC);
const UPDATED: OffsetDateTime = datetime!(2026-11-26 11:30:00 UTC);

fn record(name: &str) -> NewUserRecord {
    NewUserRecord {
        email: Email::parse(format!("{name}@example.com")).unwrap(),
        username: Username::parse(name).unwrap(),
        full_name: Some(FullName::parse(format!("{name} Example")).unwrap()),
        password_hash: PasswordHash::new(format!("$argon2id$hash-of-{name}")),
        is_active: true,
        created_at: CREATED,
    }
}

async fn create(store: &dyn UserStore, name: &str) -> User {
    store.create(record(name)).await.unwrap_or_else(|e| panic!("creating {name}: {e}"))
}

fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}

/// A created user comes back with every given field, a fresh id and no `updated_at`.
pub async fn create_returns_the_stored_user_with_a_fresh_id(store: &dyn UserStore) {
    let created = create(store, "ann").await;
    assert_eq!(created.email.as_str(), "ann@example.com");
    assert_eq!(created.username.as_str(), "ann");
    assert_eq!(created.full_name.as_ref().map(FullName::as_str), Some("ann Example"));
    assert!(created.is_active);
    assert_eq!(created.created_at, CREATED);
    assert_eq!(created.updated_at, None);
    assert_eq!(store.get(created.id).await.unwrap(), Some(created));
}

/// Each new user gets an id greater than every earlier one.
pub async fn ids_increase_with_each_user(store: &dyn UserStore) {
    let a = create(store, "ann").await;
    let b = create(store, "bob").await;
    let c = create(store, "cat").await;
    assert!(a.id < b.id && b.id < c.id);
}

/// The very first user is an administrator; later ones are not.
pub async fn the_first_user_is_an_administrator_and_later_ones_are_not(store: &dyn UserStore) {
    assert!(create(store, "ann").await.is_admin);
    assert!(!create(store, "bob").await.is_admin);
}

/// Registering an e-mail someone has, in any letter case, is `EmailTaken`.
pub async fn a_taken_email_is_reported_as_email_taken_whatever_its_case(store: &dyn UserStore) {
    create(store, "ann").await;
    let clash = NewUserRecord { email: Email::parse("ANN@Example.com").unwrap(), ..record("other") };
    assert!(matches!(store.create(clash).await, Err(UserStoreError::EmailTaken)));
}

/// Registering a username someone has, in any letter case, is `UsernameTaken`.
pub async fn a_taken_username_is_reported_as_username_taken_whatever_its_case(store: &dyn UserStore) {
    create(store, "ann").await;
    let clash = NewUserRecord { username: Username::parse("ANN").unwrap(), ..record("other") };
    assert!(matches!(store.create(clash).await, Err(UserStoreError::UsernameTaken)));
}

/// With both taken, the e-mail is the one reported (the original app checked it first).
pub async fn when_both_are_taken_the_email_is_reported(store: &dyn UserStore) {
    create(store, "ann").await;
    assert!(matches!(store.create(record("ann")).await, Err(UserStoreError::EmailTaken)));
}

/// An id nobody has gives `None`, not an error.
pub async fn get_of_an_unknown_id_is_none(store: &dyn UserStore) {
    create(store, "ann").await;
    assert_eq!(store.get(UserId::new(987_654)).await.unwrap(), None);
}

/// Login finds a user by e-mail or username, in any case, with the password hash.
pub async fn find_by_login_matches_the_email_or_the_username_ignoring_case(store: &dyn UserStore) {
    let ann = create(store, "ann").await;
    create(store, "bob").await;
    for login in ["ann", "ANN", "ann@example.com", "Ann@EXAMPLE.com"] {
        let found = store.find_by_login(login).await.unwrap().unwrap_or_else(|| panic!("{login} not found"));
        assert_eq!(found.user, ann);
        assert_eq!(found.password_hash.as_str(), "$argon2id$hash-of-ann");
    }
}

/// A login that is nobody's gives `None`.
pub async fn find_by_login_of_an_unknown_login_is_none(store: &dyn UserStore) {
    create(store, "ann").await;
    for login in ["nobody", "nobody@example.com", "an", ""] {
        assert!(store.find_by_login(login).await.unwrap().is_none(), "{login:?}");
    }
}

/// Listing is by ascending id; skip and limit page through it.
pub async fn list_is_in_id_order_and_pages_with_skip_and_limit(store: &dyn UserStore) {
    for name in ["eve", "bob", "dan", "ann", "cat"] {
        create(store, name).await;
    }
    let all = store.list(&UserQuery::default()).await.unwrap();
    assert_eq!(names(&all), ["eve", "bob", "dan", "ann", "cat"]);
    let page = store.list(&UserQuery { skip: 1, limit: 2, ..UserQuery::default() }).await.unwrap();
    assert_eq!(names(&page), ["bob", "dan"]);
    let past_end = store.list(&UserQuery { skip: 10, ..UserQuery::default() }).await.unwrap();
    assert!(past_end.is_empty());
}

/// Search matches a substring of username, e-mail or full name, ignoring case.
pub async fn list_search_is_a_case_insensitive_substring_of_username_email_or_full_name(store: &dyn UserStore) {
    create(store, "annabel").await;
    create(store, "bob").await;
    store
        .create(NewUserRecord {
            email: Email::parse("carl@joanna.org").unwrap(),
            full_name: Some(FullName::parse("Carl Smith").unwrap()),
            ..record("carl")
        })
        .await
        .unwrap();
    store
        .create(NewUserRecord { full_name: Some(FullName::parse("Dana JOANNA Lee").unwrap()), ..record("dana") })
        .await
        .unwrap();
    let search = |text: &str| UserQuery { search: Some(text.to_owned()), ..UserQuery::default() };
    assert_eq!(names(&store.list(&search("ANNA")).await.unwrap()), ["annabel", "carl", "dana"]);
    assert_eq!(names(&store.list(&search("smith")).await.unwrap()), ["carl"]);
    assert!(store.list(&search("zzz")).await.unwrap().is_empty());
    let paged = UserQuery { skip: 1, limit: 1, ..search("anna") };
    assert_eq!(names(&store.list(&paged).await.unwrap()), ["carl"]);
}

/// `is_active` filters when given.
pub async fn list_filters_on_is_active(store: &dyn UserStore) {
    create(store, "ann").await;
    store.create(NewUserRecord { is_active: false, ..record("bob") }).await.unwrap();
    create(store, "cat").await;
    let active = UserQuery { is_active: Some(true), ..UserQuery::default() };
    let inactive = UserQuery { is_active: Some(false), ..UserQuery::default() };
    assert_eq!(names(&store.list(&active).await.unwrap()), ["ann", "cat"]);
    assert_eq!(names(&store.list(&inactive).await.unwrap()), ["bob"]);
}

/// An update changes what it names, keeps the rest, and sets `updated_at`.
pub async fn update_changes_only_the_given_fields_and_stamps_updated_at(store: &dyn UserStore) {
    let ann = create(store, "ann").await;
    let changes = UserChanges { email: Some(Email::parse("new@example.org").unwrap()), ..UserChanges::at(UPDATED) };
    let updated = store.update(ann.id, changes).await.unwrap();
    let expected = User { email: Email::parse("new@example.org").unwrap(), updated_at: Some(UPDATED), ..ann.clone() };
    assert_eq!(updated, expected);
    assert_eq!(store.get(ann.id).await.unwrap(), Some(expected));
    let record = store.find_by_login("ann").await.unwrap().unwrap();
    assert_eq!(record.password_hash.as_str(), "$argon2id$hash-of-ann", "the hash was not touched");
}

/// Full name can be cleared; flags, username and password hash can change.
pub async fn update_can_clear_the_full_name_and_change_flags_and_password(store: &dyn UserStore) {
    create(store, "ann").await;
    let bob = create(store, "bob").await;
    let changes = UserChanges {
        full_name: Some(None),
        username: Some(Username::parse("robert").unwrap()),
        is_active: Some(false),
        is_admin: Some(true),
        password_hash: Some(PasswordHash::new("$argon2id$new".into())),
        ..UserChanges::at(UPDATED)
    };
    let updated = store.update(bob.id, changes).await.unwrap();
    assert_eq!(
        (updated.full_name, updated.username.as_str(), updated.is_active, updated.is_admin),
        (None, "robert", false, true)
    );
    let record = store.find_by_login("robert").await.unwrap().unwrap();
    assert_eq!(record.password_hash.as_str(), "$argon2id$new");
    assert!(store.find_by_login("bob").await.unwrap().is_none(), "the old username is gone");
}

/// Taking another user's e-mail or username, in any case, is refused distinctly.
pub async fn update_to_another_users_email_or_username_is_reported_distinctly(store: &dyn UserStore) {
    create(store, "ann").await;
    let bob = create(store, "bob").await;
    let email = UserChanges { email: Some(Email::parse("Ann@example.com").unwrap()), ..UserChanges::at(UPDATED) };
    assert!(matches!(store.update(bob.id, email).await, Err(UserStoreError::EmailTaken)));
    let username = UserChanges { username: Some(Username::parse("aNN").unwrap()), ..UserChanges::at(UPDATED) };
    assert!(matches!(store.update(bob.id, username).await, Err(UserStoreError::UsernameTaken)));
    assert_eq!(store.get(bob.id).await.unwrap(), Some(bob), "a refused update changes nothing");
}

/// Setting one's own e-mail or username again (even re-cased) is not a clash.
pub async fn update_keeping_ones_own_email_and_username_is_no_clash(store: &dyn UserStore) {
    let ann = create(store, "ann").await;
    let changes = UserChanges {
        email: Some(Email::parse("ANN@example.com").unwrap()),
        username: Some(Username::parse("Ann").unwrap()),
        ..UserChanges::at(UPDATED)
    };
    let updated = store.update(ann.id, changes).await.unwrap();
    assert_eq!((updated.email.as_str(), updated.username.as_str()), ("ANN@example.com", "Ann"));
}

/// Updating an id nobody has is `NotFound`.
pub async fn update_of_an_unknown_user_is_not_found(store: &dyn UserStore) {
    let result =
        store.update(UserId::new(987_654), UserChanges { is_active: Some(false), ..UserChanges::at(UPDATED) }).await;
    assert!(matches!(result, Err(UserStoreError::NotFound)));
}

/// A deleted user is gone, and their e-mail and username can be used again.
pub async fn delete_removes_the_user_and_frees_the_email_and_username(store: &dyn UserStore) {
    let ann = create(store, "ann").await;
    let bob = create(store, "bob").await;
    store.delete(ann.id).await.unwrap();
    assert_eq!(store.get(ann.id).await.unwrap(), None);
    assert!(store.find_by_login("ann").await.unwrap().is_none());
    assert_eq!(names(&store.list(&UserQuery::default()).await.unwrap()), ["bob"]);
    let again = create(store, "ann").await;
    assert!(again.id > bob.id, "ids are not reused");
}

/// Deleting an id nobody has is `NotFound`.
pub async fn delete_of_an_unknown_user_is_not_found(store: &dyn UserStore) {
    assert!(matches!(store.delete(UserId::new(987_654)).await, Err(UserStoreError::NotFound)));
}

/// Non-ASCII e-mail and full names come back exactly as stored.
pub async fn text_in_any_script_round_trips(store: &dyn UserStore) {
    let created = store
        .create(NewUserRecord {
            email: Email::parse("zoë@exämple.de").unwrap(),
            full_name: Some(FullName::parse("Zoë 日本 O'Brien").unwrap()),
            ..record("zoe")
        })
        .await
        .unwrap();
    let read = store.get(created.id).await.unwrap().unwrap();
    assert_eq!(read.email.as_str(), "zoë@exämple.de");
    assert_eq!(read.full_name.as_ref().map(FullName::as_str), Some("Zoë 日本 O'Brien"));
    assert_eq!(store.find_by_login("ZOË@EXÄMPLE.DE").await.unwrap().map(|r| r.user.id), Some(created.id));
}

/// A store that is up answers `ping`.
pub async fn a_working_store_answers_ping(store: &dyn UserStore) {
    store.ping().await.unwrap_or_else(|e| panic!("ping: {e}"));
}
