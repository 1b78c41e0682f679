//! Registration and login.

use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::json;

use crate::helpers::{PASSWORD, assert_detail, assert_invalid, body, new_user, spawn_app};

#[tokio::test]
async fn register_returns_201_with_the_user_and_the_first_user_becomes_admin() {
    let app = spawn_app().await;
    let first = app.post_register(&new_user("ann")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let ann = body(first).await;
    assert_eq!(ann["username"], "ann");
    assert_eq!(ann["email"], "ann@example.com");
    assert_eq!(ann["full_name"], "ann Example");
    assert_eq!((ann["is_active"].as_bool(), ann["is_admin"].as_bool()), (Some(true), Some(true)));
    assert!(ann["updated_at"].is_null());
    assert!(ann.get("password").is_none() && ann.get("hashed_password").is_none());
    let created = ann["created_at"].as_str().unwrap();
    assert!(
        created.ends_with('Z')
            && time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339).is_ok(),
        "{created}"
    );

    let bob = body(app.post_register(&new_user("bob")).await).await;
    assert_eq!(bob["is_admin"], false);
    assert!(bob["id"].as_i64() > ann["id"].as_i64());
}

#[tokio::test]
async fn register_with_a_taken_email_or_username_is_a_400_saying_which() {
    let app = spawn_app().await;
    app.account("ann").await;
    let same_email = json!({"email": "ANN@example.com", "username": "other", "password": PASSWORD});
    assert_detail(app.post_register(&same_email).await, StatusCode::BAD_REQUEST, "Email already registered").await;
    let same_name = json!({"email": "other@example.com", "username": "ann", "password": PASSWORD});
    assert_detail(app.post_register(&same_name).await, StatusCode::BAD_REQUEST, "Username already taken").await;
}

#[tokio::test]
async fn register_refuses_bad_input_with_fastapi_shaped_422s() {
    let app = spawn_app().await;
    let cases = [
        (json!({"username": "ann", "password": PASSWORD}), vec!["body", "email"], "missing"),
        (
            json!({"email": "not-an-email", "username": "ann", "password": PASSWORD}),
            vec!["body", "email"],
            "value_error.email",
        ),
        (
            json!({"email": "a@example.com", "username": "ann", "password": "short"}),
            vec!["body", "password"],
            "string_too_short",
        ),
        (
            json!({"email": "a@example.com", "username": 12, "password": PASSWORD}),
            vec!["body", "username"],
            "string_type",
        ),
        (json!({"email": null, "username": "ann", "password": PASSWORD}), vec!["body", "email"], "string_type"),
        (
            json!({"email": "a@example.com", "username": "a\u{0}b", "password": PASSWORD}),
            vec!["body", "username"],
            "string_pattern_mismatch",
        ),
        (
            json!({"email": "a@example.com", "username": "x".repeat(51), "password": PASSWORD}),
            vec!["body", "username"],
            "string_too_long",
        ),
        (
            json!({"email": "a@example.com", "username": "ann", "password": PASSWORD, "is_active": "yes"}),
            vec!["body", "is_active"],
            "bool_type",
        ),
        (
            json!({"email": "a@example.com", "username": "ann", "password": PASSWORD, "full_name": "x".repeat(101)}),
            vec!["body", "full_name"],
            "string_too_long",
        ),
    ];
    for (request, loc, kind) in cases {
        assert_invalid(app.post_register(&request).await, &loc, kind).await;
    }
    for raw in ["{not json", "[1, 2]", ""] {
        let response = app
            .client
            .post(app.url("/api/v1/auth/register"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{raw:?}");
    }
    assert_eq!(app.get("/api/v1/users/", None).await.status(), StatusCode::UNAUTHORIZED, "nothing was created");
}

#[tokio::test]
async fn register_reports_every_problem_at_once() {
    let app = spawn_app().await;
    let response = app.post_register(&json!({"email": "bad", "password": "short"})).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problems = body(response).await["detail"].as_array().unwrap().len();
    assert_eq!(problems, 3, "email, username and password");
}

#[tokio::test]
async fn login_takes_the_username_or_the_email_as_a_form_or_as_json() {
    let app = spawn_app().await;
    app.account("ann").await;
    for response in [
        app.post_login_form("ann", PASSWORD).await,
        app.post_login_form("ann@example.com", PASSWORD).await,
        app.post_login_json("ANN", PASSWORD).await,
        app.post_login_json("Ann@Example.com", PASSWORD).await,
    ] {
        assert_eq!(response.status(), StatusCode::OK);
        let token = body(response).await;
        assert_eq!(token["token_type"], "bearer");
        assert_eq!(token["expires_in"], 1800);
        let me = app.get("/api/v1/users/me", token["access_token"].as_str()).await;
        assert_eq!(body(me).await["username"], "ann");
    }
}

#[tokio::test]
async fn login_with_wrong_credentials_is_a_401_with_www_authenticate() {
    let app = spawn_app().await;
    app.account("ann").await;
    for response in [app.post_login_form("ann", "wrong password").await, app.post_login_form("nobody", PASSWORD).await]
    {
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
        assert_detail(response, StatusCode::UNAUTHORIZED, "Incorrect username or password").await;
    }
}

#[tokio::test]
async fn an_inactive_user_cannot_log_in() {
    let app = spawn_app().await;
    app.account("admin").await;
    let mut inactive = new_user("ann");
    inactive["is_active"] = json!(false);
    assert_eq!(app.post_register(&inactive).await.status(), StatusCode::CREATED);
    assert_detail(app.post_login_form("ann", PASSWORD).await, StatusCode::FORBIDDEN, "Inactive user").await;
}

#[tokio::test]
async fn login_without_its_fields_is_a_422() {
    let app = spawn_app().await;
    let response = app.client.post(app.url("/api/v1/auth/login")).form(&[("username", "ann")]).send().await.unwrap();
    assert_invalid(response, &["body", "password"], "missing").await;
    let response =
        app.client.post(app.url("/api/v1/auth/login")).json(&json!({"password": PASSWORD})).send().await.unwrap();
    assert_invalid(response, &["body", "username"], "missing").await;
}
