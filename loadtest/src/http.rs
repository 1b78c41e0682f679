//! The HTTP mix: each user registers once, then logs in, reads itself, lists
//! users and searches, weighted as clients of the original app did.

use goose::prelude::*;
use serde_json::json;

#[derive(Clone)]
struct Session {
    name: String,
    token: String,
}

fn name(user: &GooseUser) -> String {
    format!("lt{}_{}", std::process::id(), user.weighted_users_index)
}

pub async fn register(user: &mut GooseUser) -> TransactionResult {
    let name = name(user);
    let body = json!({"email": format!("{name}@example.com"), "username": name, "password": "load test password"});
    let _ = user.post_json("/api/v1/auth/register", &body).await?;
    user.set_session_data(Session { name, token: String::new() });
    login(user).await
}

pub async fn login(user: &mut GooseUser) -> TransactionResult {
    let name = user.get_session_data_unchecked::<Session>().name.clone();
    let form = [("username", name.as_str()), ("password", "load test password")];
    let request = user.get_request_builder(&GooseMethod::Post, "/api/v1/auth/login")?.form(&form);
    let goose = user.request(GooseRequest::builder().set_request_builder(request).build()).await?;
    if let Ok(response) = goose.response {
        let token: serde_json::Value = response.json().await.unwrap_or_default();
        if let Some(token) = token["access_token"].as_str() {
            user.get_session_data_unchecked_mut::<Session>().token = token.to_owned();
        }
    }
    Ok(())
}

async fn authorised_get(user: &mut GooseUser, path: &str) -> TransactionResult {
    let token = user.get_session_data_unchecked::<Session>().token.clone();
    let request = user.get_request_builder(&GooseMethod::Get, path)?.bearer_auth(token);
    user.request(GooseRequest::builder().set_request_builder(request).build()).await?;
    Ok(())
}

pub async fn me(user: &mut GooseUser) -> TransactionResult {
    authorised_get(user, "/api/v1/users/me").await
}

pub async fn list(user: &mut GooseUser) -> TransactionResult {
    authorised_get(user, "/api/v1/users/?limit=20").await
}

pub async fn search(user: &mut GooseUser) -> TransactionResult {
    let _ = user.get("/search?room=general&query=hello").await?;
    Ok(())
}
