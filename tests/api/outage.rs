//! Storage down: requests fail fast with 503 and `Retry-After`, `/readyz`
//! names what is down, and nothing is a 500. The services are wired here by
//! hand over adapters that refuse every call.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parley_auth::{Argon2Hasher, HashCost, JwtAlgorithm, JwtIssuer};
use parley_memory::SystemClock;
use parley_ports::domain::{ChatEvent, EventId, EventIds, RoomName, User, UserId};
use parley_ports::hub::DEFAULT_QUEUE;
use parley_ports::{
    Accounts, Chat, ChatLog, ChatLogError, ChatRecorder, NewUserRecord, Rooms, SearchQuery, UserChanges, UserQuery,
    UserRecord, UserStore, UserStoreError,
};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, body, new_user};

struct Down;

fn refused() -> parley_ports::BoxError {
    "connection refused".into()
}

#[async_trait]
impl UserStore for Down {
    async fn create(&self, _: NewUserRecord) -> Result<User, UserStoreError> {
        Err(UserStoreError::Unavailable(refused()))
    }
    async fn get(&self, _: UserId) -> Result<Option<User>, UserStoreError> {
        Err(UserStoreError::Unavailable(refused()))
    }
    async fn find_by_login(&self, _: &str) -> Result<Option<UserRecord>, UserStoreError> {
        Err(UserStoreError::Unavailable(refused()))
    }
    async fn list(&self, _: &UserQuery) -> Result<Vec<User>, UserStoreError> {
        Err(UserStoreError::Unavailable(refused()))
    }
    async fn update(&self, _: UserId, _: UserChanges) -> Result<User, UserStoreError> {
        Err(UserStoreError::Unavailable(refused()))
    }
    async fn delete(&self, _: UserId) -> Result<(), UserStoreError> {
        Err(UserStoreError::Unavailable(refused()))
    }
    async fn ping(&self) -> Result<(), UserStoreError> {
        Err(UserStoreError::Unavailable(refused()))
    }
}

#[async_trait]
impl ChatLog for Down {
    async fn append(&self, _: &[ChatEvent]) -> Result<(), ChatLogError> {
        Err(ChatLogError::Unavailable(refused()))
    }
    async fn search(&self, _: &SearchQuery) -> Result<Vec<ChatEvent>, ChatLogError> {
        Err(ChatLogError::Unavailable(refused()))
    }
    async fn history(&self, _: &RoomName, _: Option<EventId>, _: u32) -> Result<Vec<ChatEvent>, ChatLogError> {
        Err(ChatLogError::Unavailable(refused()))
    }
    async fn since(&self, _: &RoomName, _: EventId, _: u32) -> Result<Vec<ChatEvent>, ChatLogError> {
        Err(ChatLogError::Unavailable(refused()))
    }
    async fn ping(&self) -> Result<(), ChatLogError> {
        Err(ChatLogError::Unavailable(refused()))
    }
}

async fn spawn_with_storage_down() -> (String, reqwest::Client) {
    spawn_with(Arc::new(Down), Arc::new(Down)).await
}

async fn spawn_with(users: Arc<dyn UserStore>, log: Arc<dyn ChatLog>) -> (String, reqwest::Client) {
    let clock = Arc::new(SystemClock);
    let hasher = Arc::new(Argon2Hasher::new(HashCost::FAST_INSECURE, 2).unwrap());
    let tokens = Arc::new(JwtIssuer::new(b"secret", JwtAlgorithm::HS256, Duration::from_secs(60), clock.clone()));
    let accounts = Arc::new(Accounts::new(users, hasher, tokens, clock.clone()));
    let (recorder, _writer) = ChatRecorder::new(log.clone(), clock.clone(), 16);
    let chat = Arc::new(Chat::new(Rooms::local(DEFAULT_QUEUE), log, recorder, clock, EventIds::new(1)));
    let api = parley_http::Api {
        accounts,
        chat,
        body_limit: 64 * 1024,
        body_timeout: Duration::from_secs(5),
        websockets: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(parley_http::serve(listener, api, parley_http::ServerConfig::default(), std::future::pending()));
    (address, reqwest::Client::new())
}

#[tokio::test]
async fn with_storage_down_requests_get_503_with_retry_after_and_readyz_says_what_is_down() {
    let (address, client) = spawn_with_storage_down().await;
    let register = client.post(format!("{address}/api/v1/auth/register")).json(&new_user("ann")).send().await.unwrap();
    let login = client
        .post(format!("{address}/api/v1/auth/login"))
        .form(&[("username", "ann"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let me = client.get(format!("{address}/api/v1/users/me")).bearer_auth("x.y.z").send().await.unwrap();
    let search = client.get(format!("{address}/search?room=general&query=hello")).send().await.unwrap();
    for response in [register, login, search] {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "5");
        let detail = body(response).await["detail"].as_str().unwrap().to_owned();
        assert!(!detail.contains("refused"), "the cause stays in the server's log: {detail}");
    }
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "a bad token is refused before storage is asked");

    let ready = client.get(format!("{address}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready = body(ready).await;
    assert_eq!(ready["status"], "unavailable");
    assert_eq!(ready["checks"]["fanout"], "ok");
    assert_eq!(ready["checks"]["user_store"], "unavailable", "not the backend's own words: {ready}");
    assert_eq!(ready["checks"]["chat_log"], "unavailable", "not the backend's own words: {ready}");
    assert_eq!(body(client.get(format!("{address}/healthz")).send().await.unwrap()).await, json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_tells_why_an_adapter_is_down_to_an_administrator_only() {
    let (address, client) = spawn_with(Arc::new(parley_memory::MemoryUserStore::default()), Arc::new(Down)).await;
    let mut tokens = Vec::new();
    for name in ["boss", "ann"] {
        let registered = client.post(format!("{address}/api/v1/auth/register")).json(&new_user(name)).send().await;
        assert_eq!(registered.unwrap().status(), StatusCode::CREATED, "the first registered is the administrator");
        let login = [("username", name), ("password", PASSWORD)];
        let login = client.post(format!("{address}/api/v1/auth/login")).form(&login).send().await.unwrap();
        tokens.push(body(login).await["access_token"].as_str().unwrap().to_owned());
    }
    let readyz = |token: Option<&str>| {
        let request = client.get(format!("{address}/readyz"));
        let request = if let Some(token) = token { request.bearer_auth(token) } else { request };
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            body(response).await
        }
    };
    for caller in [None, Some(tokens[1].as_str()), Some("not.a.token")] {
        let ready = readyz(caller).await;
        assert_eq!(
            ready["checks"],
            json!({"user_store": "ok", "fanout": "ok", "chat_log": "unavailable"}),
            "{caller:?}"
        );
    }
    let ready = readyz(Some(&tokens[0])).await;
    assert_eq!(ready["checks"]["user_store"], "ok");
    let why = ready["checks"]["chat_log"].as_str().unwrap();
    assert!(why.contains("connection refused"), "the administrator reads the cause: {ready}");
}
