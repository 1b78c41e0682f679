//! The users resource and who may do what to it.

use base64::Engine;
use jsonwebtoken::{EncodingKey, Header, encode};
use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::json;

use crate::helpers::{PASSWORD, SECRET, assert_detail, assert_invalid, body, new_user, spawn_app};

fn token(claims: serde_json::Value, secret: &str) -> String {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn me_needs_a_valid_token() {
    let app = spawn_app().await;
    let ann = app.account("ann").await;
    let missing = app.get("/api/v1/users/me", None).await;
    assert_eq!(missing.headers()[WWW_AUTHENTICATE], "Bearer");
    assert_detail(missing, StatusCode::UNAUTHORIZED, "Not authenticated").await;

    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let sub = ann.id.to_string();
    let bad_tokens = [
        "garbage".to_owned(),
        token(json!({"sub": sub, "exp": now() + 600}), "another secret, also 32 bytes.."),
        token(json!({"sub": sub, "exp": now() - 3600}), SECRET),
        token(json!({"sub": "999", "exp": now() + 600}), SECRET),
        format!("{}.{}.", b64(json!({"alg": "none", "typ": "JWT"})), b64(json!({"sub": sub, "exp": now() + 600}))),
    ];
    for bad in &bad_tokens {
        let response = app.get("/api/v1/users/me", Some(bad)).await;
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
        assert_detail(response, StatusCode::UNAUTHORIZED, "Could not validate credentials").await;
    }
    let original_style = token(json!({"sub": sub, "exp": now() + 600}), SECRET);
    assert_eq!(body(app.get("/api/v1/users/me", Some(&original_style)).await).await["id"], ann.id);
}

#[tokio::test]
async fn users_are_listed_with_or_without_the_trailing_slash_with_paging_search_and_filter() {
    let app = spawn_app().await;
    let admin = app.account("admin").await;
    for name in ["annabel", "bob", "carla"] {
        app.account(name).await;
    }
    app.put_user(4, &admin.token, &json!({"is_active": false})).await;
    let names = |v: serde_json::Value| {
        v.as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let token = Some(admin.token.as_str());
    assert_eq!(names(body(app.get("/api/v1/users/", token).await).await), ["admin", "annabel", "bob", "carla"]);
    assert_eq!(names(body(app.get("/api/v1/users", token).await).await), ["admin", "annabel", "bob", "carla"]);
    assert_eq!(names(body(app.get("/api/v1/users/?skip=1&limit=2", token).await).await), ["annabel", "bob"]);
    assert_eq!(names(body(app.get("/api/v1/users/?search=ANNA", token).await).await), ["annabel"]);
    assert_eq!(names(body(app.get("/api/v1/users/?is_active=false", token).await).await), ["carla"]);
    assert_eq!(
        names(body(app.get("/api/v1/users/?limit=100000", token).await).await).len(),
        4,
        "over-large limits are capped, not refused"
    );
    assert_invalid(app.get("/api/v1/users/?skip=-1", token).await, &["query", "skip"], "int_parsing").await;
    assert_invalid(app.get("/api/v1/users/?is_active=perhaps", token).await, &["query", "is_active"], "bool_parsing")
        .await;
}

#[tokio::test]
async fn any_active_user_reads_any_user_and_a_missing_one_is_404() {
    let app = spawn_app().await;
    let admin = app.account("admin").await;
    let ann = app.account("ann").await;
    assert_eq!(
        body(app.get(&format!("/api/v1/users/{}", admin.id), Some(&ann.token)).await).await["username"],
        "admin"
    );
    assert_detail(app.get("/api/v1/users/999", Some(&ann.token)).await, StatusCode::NOT_FOUND, "User not found").await;
    assert_invalid(app.get("/api/v1/users/abc", Some(&ann.token)).await, &["path", "user_id"], "int_parsing").await;
    assert_invalid(
        app.get("/api/v1/users/99999999999999999999", Some(&ann.token)).await,
        &["path", "user_id"],
        "int_parsing",
    )
    .await;
}

#[tokio::test]
async fn only_an_administrator_creates_users() {
    let app = spawn_app().await;
    let admin = app.account("admin").await;
    let ann = app.account("ann").await;
    assert_detail(
        app.post_user(&ann.token, &new_user("bob")).await,
        StatusCode::FORBIDDEN,
        "Only an administrator may do this",
    )
    .await;
    let created = app.post_user(&admin.token, &new_user("bob")).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(body(created).await["is_admin"], false);
    assert_detail(
        app.post_user(&admin.token, &new_user("bob")).await,
        StatusCode::BAD_REQUEST,
        "Email already registered",
    )
    .await;
}

#[tokio::test]
async fn users_change_themselves_but_not_their_own_flags_nor_anyone_else() {
    let app = spawn_app().await;
    let admin = app.account("admin").await;
    let ann = app.account("ann").await;
    let bob = app.account("bob").await;

    let renamed = app.put_user(ann.id, &ann.token, &json!({"full_name": null, "username": "annie"})).await;
    assert_eq!(renamed.status(), StatusCode::OK);
    let renamed = body(renamed).await;
    assert_eq!((renamed["username"].as_str(), renamed["full_name"].is_null()), (Some("annie"), true));
    assert!(renamed["updated_at"].as_str().is_some_and(|t| t.ends_with('Z')));

    let forbidden_own = "You may not change your own is_active or is_admin";
    assert_detail(
        app.put_user(ann.id, &ann.token, &json!({"is_admin": true})).await,
        StatusCode::FORBIDDEN,
        forbidden_own,
    )
    .await;
    assert_detail(
        app.put_user(admin.id, &admin.token, &json!({"is_active": false})).await,
        StatusCode::FORBIDDEN,
        forbidden_own,
    )
    .await;
    assert_eq!(
        app.put_user(ann.id, &ann.token, &json!({"is_active": true})).await.status(),
        StatusCode::OK,
        "unchanged flags are fine"
    );
    assert_detail(
        app.put_user(bob.id, &ann.token, &json!({"full_name": "Hacked"})).await,
        StatusCode::FORBIDDEN,
        "You may only change your own account",
    )
    .await;
    assert_detail(
        app.put_user(ann.id, &ann.token, &json!({"username": "bob"})).await,
        StatusCode::BAD_REQUEST,
        "Username already taken",
    )
    .await;
    assert_detail(
        app.put_user(999, &admin.token, &json!({"full_name": "x"})).await,
        StatusCode::NOT_FOUND,
        "User not found",
    )
    .await;
    assert_invalid(app.put_user(ann.id, &ann.token, &json!({"email": null})).await, &["body", "email"], "string_type")
        .await;

    let password = app.put_user(ann.id, &ann.token, &json!({"password": "a new password"})).await;
    assert_eq!(password.status(), StatusCode::OK);
    assert_eq!(app.post_login_form("annie", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.post_login_form("annie", "a new password").await.status(), StatusCode::OK);

    let deactivated = app.put_user(bob.id, &admin.token, &json!({"is_active": false})).await;
    assert_eq!(body(deactivated).await["is_active"], false);
    assert_detail(app.get("/api/v1/users/me", Some(&bob.token)).await, StatusCode::FORBIDDEN, "Inactive user").await;
    assert_detail(app.post_login_form("bob", PASSWORD).await, StatusCode::FORBIDDEN, "Inactive user").await;
}

#[tokio::test]
async fn users_delete_themselves_and_administrators_delete_anyone() {
    let app = spawn_app().await;
    let admin = app.account("admin").await;
    let ann = app.account("ann").await;
    let bob = app.account("bob").await;
    assert_detail(
        app.delete_user(bob.id, &ann.token).await,
        StatusCode::FORBIDDEN,
        "Only an administrator may do this",
    )
    .await;
    assert_eq!(app.delete_user(ann.id, &ann.token).await.status(), StatusCode::NO_CONTENT);
    assert_detail(
        app.get("/api/v1/users/me", Some(&ann.token)).await,
        StatusCode::UNAUTHORIZED,
        "Could not validate credentials",
    )
    .await;
    let deleted = app.delete_user(bob.id, &admin.token).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(deleted.text().await.unwrap().is_empty());
    assert_detail(app.delete_user(bob.id, &admin.token).await, StatusCode::NOT_FOUND, "User not found").await;
}
